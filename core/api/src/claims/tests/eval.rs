//! Evaluation on one seed: never, missing and failed arms, swept points, aggregations.

use super::{run, schema};
use crate::claims::{Claim, Evaluation, Fact, Outcome, SeedRule, Verdict, evaluate};

fn eval(text: &str) -> Evaluation {
    let claim = Claim::new("c", text, SeedRule::All, &schema())
        .unwrap_or_else(|e| panic!("{text:?} does not check: {e:#?}"));
    evaluate(&claim, &run(), 0)
}

use Verdict::{Fails as F, Holds as H, Undecided as U};

/// `(claim, verdict, words in the reasons when undecided)`.
#[test]
fn verdicts() {
    let cases: &[(&str, Verdict, &str)] = &[
        // Plain numbers and swept points.
        ("ticket_train[mask.rate=0.6].t_gen <= 0.2 * dense.t_gen", H, ""),
        ("ticket_train[mask.rate=0.5].t_gen <= 0.2 * dense.t_gen", F, ""),
        ("ticket_train[mask.rate=0.6].t_gen / dense.t_gen == 0.15", H, ""),
        ("wide[wide.width=128].steps == 5000", H, ""),
        ("grid_train[mask.rate=0.5, grid_train.uses=\"sgd\"].t_gen == 300", H, ""),
        ("compare.best_rate == 0.6", H, ""),
        ("-dense.t_gen < 0 and not (dense.t_gen != 10000)", H, ""),
        // never against numbers: later than every step.
        ("ticket_train[mask.rate=0.9].t_gen > 5000", H, ""),
        ("ticket_train[mask.rate=0.9].t_gen <= 0.2 * dense.t_gen", F, ""),
        ("ticket_train[mask.rate=0.9].t_gen < 1e300", F, ""),
        ("ticket_train[mask.rate=0.6].t_gen <= ticket_train[mask.rate=0.9].t_gen", H, ""),
        ("ticket_train[mask.rate=0.9].t_gen == never", H, ""),
        ("ticket_train[mask.rate=0.6].t_gen != never", H, ""),
        ("ticket_train[mask.rate=0.9].t_gen == 5000", F, ""),
        // never against never: equal, but not ordered.
        (
            "ticket_train[mask.rate=0.9].t_gen == grid_train[mask.rate=0.9, grid_train.uses=sgd].t_gen",
            H,
            "",
        ),
        (
            "ticket_train[mask.rate=0.9].t_gen <= 0.2 * grid_train[mask.rate=0.9, grid_train.uses=sgd].t_gen",
            U,
            "orders never against never",
        ),
        ("ticket_train[mask.rate=0.9].t_gen < never", U, "never against never"),
        // Arithmetic on never.
        ("ticket_train[mask.rate=0.9].t_gen + 1 == never", H, ""),
        ("ticket_train[mask.rate=0.9].t_gen - 1 == never", H, ""),
        ("ticket_train[mask.rate=0.9].t_gen / 2 == never", H, ""),
        ("dense.t_gen / ticket_train[mask.rate=0.9].t_gen == 0", H, ""),
        (
            "dense.t_gen - ticket_train[mask.rate=0.9].t_gen > 0",
            U,
            "`dense.t_gen - ticket_train[mask.rate=0.9].t_gen` has no value",
        ),
        ("0 * ticket_train[mask.rate=0.9].t_gen < 1", U, "has no value"),
        ("-1 * ticket_train[mask.rate=0.9].t_gen < 1", U, "has no value"),
        ("-ticket_train[mask.rate=0.9].t_gen < 1", U, "never cannot be negated"),
        ("never - never == 0", U, "has no value"),
        ("ticket_train[mask.rate=0.9].speedup_t_gen > 2", U, "has no speed-up"),
        ("ticket_train[mask.rate=0.6].speedup_t_gen > 1", H, ""),
        // Division by zero and non-finite values.
        (
            "dense.t_gen / (dense.t_gen - dense.t_gen) > 1",
            U,
            "`dense.t_gen / (dense.t_gen - dense.t_gen)` divides by zero",
        ),
        ("dense.final_test_loss < 1", U, "`dense.final_test_loss` is NaN, not a finite number"),
        ("1e300 * 1e300 > 1", U, "`1e300 * 1e300` is not a finite number"),
        // Missing and failed arms, and three-valued logic.
        (
            "ticket_train[mask.rate=0.8].final_test_acc > 0.9",
            U,
            "`ticket_train[mask.rate=0.8].final_test_acc` is missing: no arm",
        ),
        ("dense.t_gen > 1 or ticket_train[mask.rate=0.8].final_test_acc > 0.9", H, ""),
        ("dense.t_gen < 1 and ticket_train[mask.rate=0.8].final_test_acc > 0.9", F, ""),
        ("dense.t_gen > 1 and ticket_train[mask.rate=0.8].final_test_acc > 0.9", U, "is missing"),
        ("dense.t_gen < 1 or ticket_train[mask.rate=0.8].final_test_acc > 0.9", U, "is missing"),
        ("not (ticket_train[mask.rate=0.8].final_test_acc > 0.9)", U, "is missing"),
        ("wide[wide.width=64].steps > 1", U, "`wide[wide.width=64].steps` is missing"),
        // Aggregations over mask.rate = 0.0, 0.5, 0.6, 0.8, 0.9.
        ("argmin(mask.rate: ticket_train.t_gen) == 0.6", H, ""),
        ("min(mask.rate: ticket_train.t_gen) == 1500", H, ""),
        ("max(mask.rate: ticket_train.t_gen) == never", H, ""),
        ("argmax(mask.rate: ticket_train.t_gen) == 0.9", H, ""),
        ("argmax(mask.rate: ticket_train.final_train_acc) == 0", H, ""),
        ("argmin(mask.rate: ticket_train.final_train_acc) == 0", H, ""),
        ("count(mask.rate: ticket_train.t_gen == never) == 1", H, ""),
        ("count(mask.rate: ticket_train.t_gen < 0.3 * dense.t_gen) == 2", H, ""),
        ("all(mask.rate: ticket_train.t_gen < dense.t_gen)", F, ""),
        ("any(mask.rate: ticket_train.t_gen < 0.2 * dense.t_gen)", H, ""),
        ("min(mask.rate: ticket_train.t_gen / dense.t_gen) == 0.15", H, ""),
        (
            "argmax(mask.rate: grid_train[grid_train.uses=sgd].t_gen) == 0.9",
            U,
            "several values of `mask.rate` give never",
        ),
        ("max(mask.rate: grid_train[grid_train.uses=sgd].t_gen) == never", H, ""),
        ("all(mask.rate: all(grid_train.uses: grid_train.t_gen >= 100))", H, ""),
        ("all(grid_train.uses: min(mask.rate: grid_train.t_gen) == 100)", F, ""),
        // An aggregation over an arm that failed: min cannot know, all/any may still decide.
        (
            "min(mask.rate: ticket_train.final_test_acc) > 0.5",
            U,
            "`ticket_train[mask.rate=0.8].final_test_acc` is missing",
        ),
        ("count(mask.rate: ticket_train.final_test_acc > 0.5) == 4", U, "is missing"),
        // A count with undecided conditions decides when every count it may be agrees: here
        // 4 hold and 1 is missing, so the count is 4 or 5.
        ("count(mask.rate: ticket_train.final_test_acc > 0.5) >= 4", H, ""),
        ("4 <= count(mask.rate: ticket_train.final_test_acc > 0.5)", H, ""),
        ("count(mask.rate: ticket_train.final_test_acc > 0.5) > 5", F, ""),
        ("count(mask.rate: ticket_train.final_test_acc > 0.5) != 3", H, ""),
        ("count(mask.rate: ticket_train.final_test_acc > 0.5) < 5", U, "is missing"),
        ("count(mask.rate: ticket_train.final_test_acc > 0.995) >= 2", F, ""),
        ("count(mask.rate: ticket_train.final_test_acc > 0.5) + 1 >= 5", U, "is missing"),
        // Never against never inside a count (at k = 0.9) is one undecided condition among
        // decided ones (k = 0.8 holds, the others fail): the count is 1 or 2.
        (
            "count(mask.rate: ticket_train.t_gen < 0.5 * grid_train[grid_train.uses=sgd].t_gen) >= 1",
            H,
            "",
        ),
        (
            "count(mask.rate: ticket_train.t_gen < 0.5 * grid_train[grid_train.uses=sgd].t_gen) >= 2",
            U,
            "orders never against never",
        ),
        ("all(mask.rate: ticket_train.final_test_acc > 0.995)", F, ""),
        ("all(mask.rate: ticket_train.final_test_acc > 0.5)", U, "is missing"),
        ("any(mask.rate: ticket_train.final_test_acc > 0.5)", H, ""),
    ];
    for (text, verdict, reason) in cases {
        let e = eval(text);
        assert_eq!(e.verdict, *verdict, "{text:?}: {e}");
        let reasons = e.reasons().join("; ");
        if *verdict == U {
            assert!(reasons.contains(reason), "{text:?}: {reasons:?}");
        } else {
            assert!(reasons.is_empty(), "{text:?}: {reasons:?}");
        }
    }
}

#[test]
fn references_are_recorded_with_their_values() {
    let e = eval("ticket_train[mask.rate=0.9].t_gen <= 0.2 * dense.t_gen");
    let got: Vec<(String, String)> =
        e.references.iter().map(|o| (o.reference.clone(), o.fact.to_string())).collect();
    assert_eq!(
        got,
        [
            ("ticket_train[mask.rate=0.9].t_gen".to_string(), "never".to_string()),
            ("dense.t_gen".to_string(), "10000".to_string()),
        ]
    );
    assert_eq!(e.never, ["ticket_train[mask.rate=0.9].t_gen"]);
    assert_eq!(e.to_string(), "fails (never: ticket_train[mask.rate=0.9].t_gen)");
    assert_eq!(e.seed, Some(0));
    assert_eq!(e.value, Outcome::Bool(false));
    let o = &e.references[0];
    assert_eq!((o.stage.as_str(), o.metric.as_str()), ("ticket_train", "t_gen"));
    assert_eq!(o.point.get("mask.rate"), Some(&serde_json::json!(0.9)));
}

#[test]
fn every_reference_is_evaluated_even_when_one_side_decides() {
    let e = eval("dense.t_gen > 1 or ticket_train[mask.rate=0.8].final_test_acc > 0.9");
    assert_eq!(e.verdict, H);
    assert_eq!(e.references.len(), 2);
    assert!(matches!(&e.references[1].fact, Fact::Missing(r) if r.contains("no arm")));
}

#[test]
fn aggregations_record_one_arm_per_axis_value() {
    let e = eval("min(mask.rate: ticket_train.t_gen / dense.t_gen) < 0.5");
    let names: Vec<&str> = e.references.iter().map(|o| o.reference.as_str()).collect();
    // `dense` is not swept: asked once, with an empty point.
    assert_eq!(
        names,
        [
            "ticket_train[mask.rate=0.0].t_gen",
            "dense.t_gen",
            "ticket_train[mask.rate=0.5].t_gen",
            "ticket_train[mask.rate=0.6].t_gen",
            "ticket_train[mask.rate=0.8].t_gen",
            "ticket_train[mask.rate=0.9].t_gen",
        ]
    );
    // A selector's value is the sweep's own JSON value (128, not 128.0).
    let e = eval("wide[wide.width=128.0].steps == 5000");
    assert_eq!(e.references[0].reference, "wide[wide.width=128].steps");
    assert_eq!(e.verdict, H);
}

#[test]
fn a_constant_claim_has_no_references() {
    let e = eval("1 < 2");
    assert_eq!((e.verdict, e.references.len()), (H, 0));
}
