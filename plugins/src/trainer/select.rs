//! The trainer's `select` parameter: successive halving over the copies of a train stage in a
//! sweep. The engine runs it (`ticketlab_engine::halving`); the trainer only declares it, so
//! that it is checked, documented and written like every other parameter.

use ticketlab_api::plugin::{ParamSpec, ParamType};

const METRICS: &[&str] = &["test_acc", "train_acc", "test_loss", "train_loss", "l2"];

/// The fields of `select`.
const FIELDS: &[ParamSpec] = &[
    ParamSpec::new("rungs", ParamType::IntList, "steps at which the sweep's points are ranked, ascending (evaluation steps; [] = no selection)").default("[]").min(1.0),
    ParamSpec::new("metric", ParamType::Choice(METRICS), "what ranks the points at a rung, at the last evaluation at or before it, averaged over seeds: accuracies rank higher first, losses and the weight norm `l2` lower first").default("\"test_acc\""),
    ParamSpec::new("keep", ParamType::Float, "the fraction of the points still training that goes on past each rung (at least one)").default("0.5").range(0.01, 1.0),
];

/// The trainer's `select` parameter.
pub(crate) const SELECT: ParamSpec = ParamSpec::new(
    "select",
    ParamType::Record(FIELDS),
    "successive halving over this stage's sweep points: at each step of `rungs` the points outside the best `keep` fraction by `metric` stop there (their states stay in the store, so a later run with a larger `keep` resumes them): `{ rungs: [1000, 3000, 9000], metric: test_acc, keep: 0.33 }`; not in the cache key, as an arm that trains to the end gets the same numbers",
)
.default(r#"{"keep": 0.5, "metric": "test_acc", "rungs": []}"#)
.not_in_key();
