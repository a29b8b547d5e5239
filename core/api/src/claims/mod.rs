//! Claims: the results an experiment file says its run should show, checked on every seed.
//!
//! ```yaml
//! claims:
//!   ticket_sooner:
//!     text: The k = 0.6 ticket generalises in at most a fifth of the dense model's steps
//!     holds: ticket_train[mask.rate=0.6].t_gen <= 0.2 * dense.t_gen
//!     seeds: all            # all (default) | majority | median
//! ```
//!
//! `holds` is a condition in the language below. Before anything runs, the checker refuses a
//! claim that names an unknown stage, metric, axis or axis value, mixes numbers and conditions,
//! or leaves a swept arm unsaid; each refusal points at the offending text and, where it can,
//! says `did you mean ...?`. After the run, the claim is evaluated on the arms of each seed and
//! the seed rule turns those verdicts into one: **holds**, **fails** or **undecided**.
//!
//! # Syntax
//!
//! | form | meaning |
//! |---|---|
//! | `0.2`, `5000`, `1e-3` | numbers |
//! | `never` | a threshold never reached (see below) |
//! | `STAGE.METRIC` | a metric of a stage's arm, e.g. `dense.t_gen` (no spaces around the dot) |
//! | `STAGE[AXIS=VALUE, ...].METRIC` | the arm at a point: `ticket_train[mask.rate=0.8].t_gen` |
//! | `FUNC(AXIS: EXPR)` | an aggregation over a sweep axis: `min(mask.rate: ticket_train.t_gen)` |
//! | `-x`, `x * y`, `x / y`, `x + y`, `x - y` | arithmetic on numbers |
//! | `<` `<=` `>` `>=` `==` `!=` | comparisons of numbers, giving conditions (they do not chain) |
//! | `not c`, `c and d`, `c or d` | logic on conditions |
//! | `( ... )` | grouping |
//!
//! Precedence, loosest first: `or` < `and` < `not` < comparisons < `+ -` < `* /` < unary `-`.
//! So `not a.t_gen < 5 or b.t_gen < 5 and c.t_gen < 5` is
//! `(not (a.t_gen < 5)) or ((b.t_gen < 5) and (c.t_gen < 5))`, and `-x * y` is `(-x) * y`.
//! `and`, `or`, `not` and `never` are reserved words. Numbers are 64-bit floats and `==` is
//! exact: bound a computed ratio with `<=`/`>=` rather than testing it with `==`.
//!
//! # Metrics
//!
//! After a **train** stage, the fields of its summary: `t_mem`, `t_gen` (first evaluated step
//! with train / test accuracy at the threshold), `tau_grok` (`t_gen / t_mem`),
//! `final_train_acc`, `final_test_acc`, `final_train_loss`, `final_test_loss`, `l1`, `l2`
//! (final weight norms), `speedup_t_gen` (against the report's baseline), `density`, `steps`.
//! After an **analyze** or **report** stage, the scalar outputs it declares ([`Schema`] takes
//! them from the front end; [`Schema::of`] an expanded experiment gives none, as no built-in
//! analysis declares scalar outputs yet). Other stages
//! (dataset, model, prune, rewind, ...) give no metrics. Stages are named as written in the
//! file, never as the expanded copies (`stage[...]@seedN`).
//!
//! # Swept arms
//!
//! A stage swept on an axis (its own parameter, or one of a stage upstream: `ticket_train` is
//! swept on `mask.rate` when `mask` is) has one arm per axis value, so each reference must say
//! which: fix the axis in brackets, `ticket_train[mask.rate=0.8].t_gen`, several separated by
//! commas, or iterate over it with an enclosing aggregation. A value matches the sweep's value
//! of equal number (`0.8`, `128`), string (`"adam"` or the bare word `adam`) or boolean.
//!
//! # Aggregations
//!
//! `FUNC(AXIS: EXPR)` evaluates `EXPR` at each value of `AXIS` in the sweep's order; inside,
//! a reference to a stage swept on `AXIS` means the arm at the value being iterated (a bracket
//! still wins). Something in `EXPR` must vary with `AXIS`, and aggregations over the same axis
//! do not nest.
//!
//! | function | `EXPR` | gives |
//! |---|---|---|
//! | `min`, `max` | number | the smallest / largest value (`never` ranks above every number) |
//! | `argmin`, `argmax` | number | the axis value where it is smallest / largest (see below) |
//! | `all`, `any` | condition | true at every / some axis value |
//! | `count` | condition | at how many axis values it is true |
//!
//! `argmin`/`argmax` need an axis of numbers and give the first axis value in sweep order on
//! ties. In YAML, a plain scalar cannot hold `: `: quote a `holds` with an aggregation, fold it
//! (`holds: >-` and the claim on the next lines), or write `mask.rate:EXPR` without the space.
//!
//! ```text
//! argmin(mask.rate: ticket_train.tau_grok) >= 0.5
//!     and argmin(mask.rate: ticket_train.tau_grok) <= 0.8
//! all(mask.rate: ticket_train.t_mem >= dense.t_mem)
//! count(mask.rate: ticket_train.t_gen == never) <= 1
//! ```
//!
//! # `never`
//!
//! `t_mem` or `t_gen` of an arm that never reached the accuracy threshold is `never`, and so is
//! its `tau_grok`; `never` is later than every step. Precisely, it computes as +infinity:
//!
//! - Arithmetic: a result of +infinity is `never` (`never + 100`, `0.2 * never`,
//!   `never / 2`); a finite result is a number (`100 / never` is 0); any other result is
//!   undecided (`x - never`, `never - never`, `0 * never`, `-never`, `never / never`).
//! - `never` is greater than every number: `never > 5000` holds, `never <= x` fails.
//! - `==` and `!=` say whether a threshold was reached: `never == never` holds, so
//!   `ticket_train[mask.rate=0.9].t_gen == never` says "k = 0.9 never generalises".
//! - `<`, `<=`, `>`, `>=` between two nevers are undecided: neither arm reached the threshold,
//!   so the data cannot say which is sooner (`a.t_gen <= 0.2 * b.t_gen` with both never).
//! - `speedup_t_gen` of an arm that never generalised has no sensible value (its speed-up is
//!   zero, while `never` ranks above every number), so a reference to it is undecided.
//! - `min`/`max` rank `never` above every number; `argmin`/`argmax` are undecided when the
//!   chosen value is a never shared by several axis values.
//!
//! Every verdict lists the references that were `never` (the [`Evaluation::never`] list and
//! the [`Judgement::explanation`]), so a claim that holds only thanks to a never is visible.
//!
//! # Undecided
//!
//! A reference to an arm that is missing or failed ([`Fact::Missing`]), a value that is not a
//! finite number, a division by zero, a non-finite result, and the never cases above leave
//! their part undecided, with the reason. `and`/`or`/`not`/`all`/`any` use three-valued logic:
//! `false and X` fails and `true or X` holds whatever `X` is; otherwise an undecided part makes
//! the whole undecided. Every reference is still evaluated and recorded.
//!
//! # Seeds
//!
//! References resolve to the arms of one seed, and the claim is evaluated per seed; `seeds:`
//! makes the verdict ([`SeedRule`]):
//!
//! - `all` (default): holds on every seed. Fails if any seed fails, else undecided if any seed
//!   is undecided.
//! - `majority`: holds on more than half of the seeds. Fails when that is out of reach even if
//!   every undecided seed held, else undecided.
//! - `median`: one evaluation in which each reference is the median of its values over the
//!   seeds (`never` ranking above every number): the middle value, or for an even number of
//!   seeds the mean of the two middle values (`never` if either is). A reference missing or
//!   not finite on any seed is missing. Aggregations take the median of each arm, then
//!   aggregate.
//!
//! # Rust API
//!
//! [`parse()`] gives the syntax tree ([`Expr`], with byte spans into the `holds` text);
//! [`check()`] lists the problems against a [`Schema`] built by the front end; [`Claim::new`]
//! does both ([`ClaimSpec`] is the YAML entry). [`evaluate()`] evaluates a claim on one seed
//! through the [`Facts`] the run provides; [`judge()`] applies the seed rule, and
//! [`Judgement::rows`] gives the rows of `claims.csv`. Error spans index the `holds` text;
//! [`ClaimError::shifted`] moves them to the file.
//!
//! ```
//! use ticketlab_api::claims::{self, Claim, Fact, Facts, Point, Schema, SeedRule, Verdict};
//!
//! struct Run;
//! impl Facts for Run {
//!     fn metric(&self, stage: &str, _point: &Point, _metric: &str, _seed: u64) -> Fact {
//!         if stage == "dense" { Fact::Value(10_000.0) } else { Fact::Value(1_500.0) }
//!     }
//!     fn seeds(&self) -> Vec<u64> { vec![0, 1] }
//! }
//!
//! let schema = Schema::new().train("dense", &[]).train("ticket_train", &[]);
//! let holds = "ticket_train.t_gen <= 0.2 * dense.t_gen";
//! let claim = Claim::new("sooner", holds, SeedRule::All, &schema).unwrap();
//! assert_eq!(claims::judge(&claim, &Run).overall, Verdict::Holds);
//! ```

mod ast;
mod check;
mod error;
mod eval;
mod facts;
mod judge;
mod parse;
mod schema;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use ast::{
    Aggregation, BinaryOp, Coordinate, Expr, ExprKind, Literal, Name, Reference, Span, UnaryOp,
};
pub use check::check;
pub use error::ClaimError;
pub use eval::{Evaluation, Observed, Outcome, Verdict, evaluate};
pub use facts::{Fact, Facts, Point, reference_name};
pub use judge::{ClaimRow, Judgement, SeedRule, judge, median_fact};
pub use parse::{MAX_NESTING, parse};
pub use schema::{SUMMARY_METRICS, Schema, StageSchema};

/// A claim as written under `claims:` in a YAML experiment file (the key is its name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimSpec {
    /// The claim in words, for reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The condition, in the claims language.
    pub holds: String,
    /// How the seeds' verdicts combine.
    #[serde(default)]
    pub seeds: SeedRule,
}

/// A parsed and checked claim, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The claim's name (its key under `claims:`).
    pub name: String,
    /// The condition as written (spans in [`Claim::expr`] and errors index it).
    pub holds: String,
    /// The condition's syntax tree.
    pub expr: Expr,
    /// How the seeds' verdicts combine.
    pub seeds: SeedRule,
    /// The schema it was checked against (the evaluator takes the stages' axes and the
    /// axes' values from it).
    schema: Schema,
}

impl Claim {
    /// Parses and checks `holds` against `schema`: the claim, or every problem found (a syntax
    /// error alone, since nothing after it can be checked).
    pub fn new(
        name: impl Into<String>,
        holds: &str,
        seeds: SeedRule,
        schema: &Schema,
    ) -> Result<Claim, Vec<ClaimError>> {
        let expr = parse(holds).map_err(|e| vec![e])?;
        let errors = check(&expr, schema);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Claim {
            name: name.into(),
            holds: holds.to_string(),
            expr,
            seeds,
            schema: schema.clone(),
        })
    }

    /// [`Claim::new`] from a file's entry.
    pub fn from_spec(
        name: impl Into<String>,
        spec: &ClaimSpec,
        schema: &Schema,
    ) -> Result<Claim, Vec<ClaimError>> {
        Claim::new(name, &spec.holds, spec.seeds, schema)
    }

    /// The schema the claim was checked against.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }
}
