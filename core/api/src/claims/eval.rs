//! Evaluation of a checked [`Claim`] on the arms of one seed.

use std::fmt;

use serde_json::Value;

use super::Claim;
use super::ast::{Aggregation, BinaryOp, Expr, ExprKind, Reference, UnaryOp};
use super::facts::{Fact, Facts, Point, reference_name};

/// The value of an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A number.
    Number(f64),
    /// `never`: later than every step.
    Never,
    /// A condition's value.
    Bool(bool),
    /// A `count` some of whose conditions are undecided: at least `lo`, at most `hi`, with why.
    /// A comparison with a number decides when every count in the range answers the same
    /// (`count(...) >= 2` holds once two conditions hold, whatever the undecided ones are).
    Between {
        /// The conditions that hold.
        lo: f64,
        /// Those that hold or are undecided.
        hi: f64,
        /// Why the undecided ones are.
        reasons: Vec<String>,
    },
    /// No value, with why (a missing arm, a non-finite value, a division by zero, ...).
    Undecided(Vec<String>),
}

/// A claim's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The condition is true.
    Holds,
    /// The condition is false.
    Fails,
    /// The facts do not decide it.
    Undecided,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Holds => "holds",
            Verdict::Fails => "fails",
            Verdict::Undecided => "undecided",
        })
    }
}

/// One reference as evaluated: which arm, and what the run said.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The arm and metric as `stage[axis=value,...].metric` (values as compact JSON), the
    /// name used in verdicts and `claims.csv`.
    pub reference: String,
    /// The stage's written name.
    pub stage: String,
    /// The arm's point (the stage's swept axes only).
    pub point: Point,
    /// The metric.
    pub metric: String,
    /// Its value.
    pub fact: Fact,
}

/// A claim evaluated once: on one seed, or on the medians over seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The seed; `None` for the evaluation on per-reference medians ([`SeedRule::Median`]).
    ///
    /// [`SeedRule::Median`]: super::SeedRule::Median
    pub seed: Option<u64>,
    /// The claim's value.
    pub value: Outcome,
    /// [`Verdict::Holds`] or [`Verdict::Fails`] for a decided condition, else undecided.
    pub verdict: Verdict,
    /// Every arm the claim looked at, in the order first looked at (aggregations add one per
    /// axis value).
    pub references: Vec<Observed>,
    /// The references whose value was `never` (the verdict says a never entered).
    pub never: Vec<String>,
}

impl Evaluation {
    /// Why the claim is undecided (empty when decided).
    pub fn reasons(&self) -> &[String] {
        match &self.value {
            Outcome::Undecided(r) | Outcome::Between { reasons: r, .. } => r,
            _ => &[],
        }
    }
}

/// `holds`, `fails (never: x.t_gen)`, `undecided: x.t_gen is missing: ...`.
impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.verdict)?;
        if !self.reasons().is_empty() {
            write!(f, ": {}", self.reasons().join("; "))?;
        }
        if !self.never.is_empty() {
            write!(f, " (never: {})", self.never.join(", "))?;
        }
        Ok(())
    }
}

/// Evaluates `claim` on the arms of `seed`.
pub fn evaluate(claim: &Claim, facts: &dyn Facts, seed: u64) -> Evaluation {
    run(claim, Some(seed), &|stage, point, metric| facts.metric(stage, point, metric, seed))
}

/// Evaluates `claim` with its references answered by `resolve`.
pub(super) fn run(claim: &Claim, seed: Option<u64>, resolve: &Resolve<'_>) -> Evaluation {
    let mut ev = Evaluator { claim, resolve, env: Vec::new(), refs: Vec::new() };
    let value = ev.eval(&claim.expr);
    let verdict = match value {
        Outcome::Bool(true) => Verdict::Holds,
        Outcome::Bool(false) => Verdict::Fails,
        _ => Verdict::Undecided,
    };
    let never =
        ev.refs.iter().filter(|o| o.fact == Fact::Never).map(|o| o.reference.clone()).collect();
    Evaluation { seed, value, verdict, references: ev.refs, never }
}

/// Answers a reference: stage, point, metric.
pub(super) type Resolve<'r> = dyn Fn(&str, &Point, &str) -> Fact + 'r;

struct Evaluator<'a> {
    claim: &'a Claim,
    resolve: &'a Resolve<'a>,
    env: Vec<(&'a str, &'a Value)>,
    refs: Vec<Observed>,
}

fn undecided(reason: String) -> Outcome {
    Outcome::Undecided(vec![reason])
}

/// The reasons of every undecided outcome among `outs` (a type slip, which the checker rules
/// out, says so).
fn merged<'o>(outs: impl IntoIterator<Item = &'o Outcome>) -> Outcome {
    let mut reasons: Vec<String> = Vec::new();
    for o in outs {
        if let Outcome::Undecided(r) | Outcome::Between { reasons: r, .. } = o {
            for r in r {
                if !reasons.contains(r) {
                    reasons.push(r.clone());
                }
            }
        }
    }
    if reasons.is_empty() {
        reasons.push("the claim mixes numbers and conditions (check it first)".into());
    }
    Outcome::Undecided(reasons)
}

/// A number for arithmetic and ordering: never is +infinity. `None` for anything else.
fn as_number(o: &Outcome) -> Option<(f64, bool)> {
    match o {
        Outcome::Number(x) => Some((*x, false)),
        Outcome::Never => Some((f64::INFINITY, true)),
        _ => None,
    }
}

impl<'a> Evaluator<'a> {
    fn text(&self, e: &Expr) -> &'a str {
        self.claim.holds.get(e.span.start..e.span.end).unwrap_or("")
    }

    fn eval(&mut self, e: &'a Expr) -> Outcome {
        match &e.kind {
            ExprKind::Number(x) => Outcome::Number(*x),
            ExprKind::Never => Outcome::Never,
            ExprKind::Ref(r) => self.reference(r),
            ExprKind::Unary { op, operand } => match (op, self.eval(operand)) {
                (UnaryOp::Neg, Outcome::Number(x)) => Outcome::Number(-x),
                (UnaryOp::Neg, Outcome::Never) => {
                    undecided(format!("`{}` has no value: never cannot be negated", self.text(e)))
                }
                (UnaryOp::Not, Outcome::Bool(b)) => Outcome::Bool(!b),
                (_, o) => merged([&o]),
            },
            ExprKind::Binary { op, lhs, rhs, .. } => {
                let (a, b) = (self.eval(lhs), self.eval(rhs));
                if op.is_logical() {
                    logic(*op, a, b)
                } else if op.is_arithmetic() {
                    self.arithmetic(*op, a, b, e)
                } else {
                    self.compare(*op, a, b, e)
                }
            }
            ExprKind::Aggregate { func, axis, body, .. } => {
                let values = self.claim.schema.axes.get(&axis.text).map_or(&[][..], Vec::as_slice);
                let mut outs = Vec::with_capacity(values.len());
                for v in values {
                    self.env.push((axis.text.as_str(), v));
                    outs.push(self.eval(body));
                    self.env.pop();
                }
                self.aggregate(*func, values, outs, e)
            }
        }
    }

    fn arithmetic(&self, op: BinaryOp, a: Outcome, b: Outcome, e: &Expr) -> Outcome {
        let (Some((x, xn)), Some((y, yn))) = (as_number(&a), as_number(&b)) else {
            return merged([&a, &b]);
        };
        if op == BinaryOp::Div && y == 0.0 {
            return undecided(format!("`{}` divides by zero", self.text(e)));
        }
        let r = match op {
            BinaryOp::Add => x + y,
            BinaryOp::Sub => x - y,
            BinaryOp::Mul => x * y,
            _ => x / y,
        };
        if r.is_finite() {
            Outcome::Number(r)
        } else if r == f64::INFINITY && (xn || yn) {
            Outcome::Never
        } else if xn || yn {
            undecided(format!(
                "`{}` has no value: never takes part only in sums, in products and quotients \
                 with a positive number, and as a divisor",
                self.text(e)
            ))
        } else {
            undecided(format!("`{}` is not a finite number", self.text(e)))
        }
    }

    fn compare(&self, op: BinaryOp, a: Outcome, b: Outcome, e: &Expr) -> Outcome {
        // A count known within bounds: compare each count it may be.
        let bounded = match (&a, &b) {
            (Outcome::Between { lo, hi, .. }, other) => Some((*lo, *hi, other, false)),
            (other, Outcome::Between { lo, hi, .. }) => Some((*lo, *hi, other, true)),
            _ => None,
        };
        if let Some((lo, hi, other, flipped)) = bounded {
            let answers: Vec<Outcome> = (lo as u64..=hi as u64)
                .map(|count| {
                    let count = Outcome::Number(count as f64);
                    let (x, y) =
                        if flipped { (other.clone(), count) } else { (count, other.clone()) };
                    self.compare(op, x, y, e)
                })
                .collect();
            return match answers.split_first() {
                Some((first @ Outcome::Bool(_), rest)) if rest.iter().all(|o| o == first) => {
                    first.clone()
                }
                _ => merged([&a, &b]),
            };
        }
        let (Some((x, xn)), Some((y, yn))) = (as_number(&a), as_number(&b)) else {
            return merged([&a, &b]);
        };
        Outcome::Bool(match op {
            BinaryOp::Eq => x == y,
            BinaryOp::Ne => x != y,
            _ if xn && yn => {
                return undecided(format!(
                    "`{}` orders never against never: neither threshold was reached, so \
                     neither is sooner",
                    self.text(e)
                ));
            }
            BinaryOp::Lt => x < y,
            BinaryOp::Le => x <= y,
            BinaryOp::Gt => x > y,
            _ => x >= y,
        })
    }

    fn aggregate(
        &self,
        func: Aggregation,
        values: &[Value],
        outs: Vec<Outcome>,
        e: &Expr,
    ) -> Outcome {
        let decided = |o: &Outcome| !matches!(o, Outcome::Undecided(_) | Outcome::Between { .. });
        if !outs.iter().all(decided)
            && !matches!(func, Aggregation::All | Aggregation::Any | Aggregation::Count)
        {
            return merged(&outs);
        }
        let nums: Option<Vec<(f64, bool)>> = outs.iter().map(as_number).collect();
        // The first index of the smallest (largest) value, and whether it is a never shared
        // with another axis value.
        let extreme = |want_max: bool| -> Option<(usize, bool)> {
            let nums = nums.as_ref()?;
            let mut best: Option<usize> = None;
            for (i, (x, _)) in nums.iter().enumerate() {
                if best.is_none_or(|b| if want_max { *x > nums[b].0 } else { *x < nums[b].0 }) {
                    best = Some(i);
                }
            }
            best.map(|b| (b, nums[b].1 && nums.iter().filter(|n| n.1).count() > 1))
        };
        let axis = match &e.kind {
            ExprKind::Aggregate { axis, .. } => axis.text.as_str(),
            _ => "",
        };
        match func {
            Aggregation::All => {
                outs.into_iter().fold(Outcome::Bool(true), |a, b| logic(BinaryOp::And, a, b))
            }
            Aggregation::Any => {
                outs.into_iter().fold(Outcome::Bool(false), |a, b| logic(BinaryOp::Or, a, b))
            }
            Aggregation::Count => {
                let holds = outs.iter().filter(|o| **o == Outcome::Bool(true)).count() as f64;
                let open = outs.iter().filter(|o| !decided(o)).count() as f64;
                if open == 0.0 {
                    Outcome::Number(holds)
                } else {
                    let Outcome::Undecided(reasons) = merged(&outs) else {
                        unreachable!("merged gives an undecided outcome")
                    };
                    Outcome::Between { lo: holds, hi: holds + open, reasons }
                }
            }
            _ if values.is_empty() => undecided(format!("`{axis}` has no values")),
            Aggregation::Min | Aggregation::Max => match extreme(func == Aggregation::Max) {
                Some((i, _)) => outs[i].clone(),
                None => merged(&outs),
            },
            Aggregation::Argmin | Aggregation::Argmax => match extreme(func == Aggregation::Argmax)
            {
                Some((_, true)) => undecided(format!(
                    "`{}`: several values of `{axis}` give never, which cannot be ordered",
                    self.text(e)
                )),
                Some((i, false)) => match values[i].as_f64() {
                    Some(x) => Outcome::Number(x),
                    None => undecided(format!("`{axis}` value {} is not a number", values[i])),
                },
                None => merged(&outs),
            },
        }
    }

    fn reference(&mut self, r: &Reference) -> Outcome {
        let (stage, metric) = (r.stage.text.as_str(), r.metric.text.as_str());
        let mut point = Point::new();
        let swept = self.claim.schema.stages.get(stage).map_or(&[][..], |s| &s.swept_on[..]);
        for axis in swept {
            let values = self.claim.schema.axes.get(axis).map_or(&[][..], Vec::as_slice);
            let v = match r.coords.iter().find(|c| &c.axis.text == axis) {
                Some(c) => values.iter().find(|v| c.value.matches(v)),
                None => self.env.iter().rev().find(|(k, _)| k == axis).map(|(_, v)| *v),
            };
            match v {
                Some(v) => point.insert(axis.clone(), v.clone()),
                None => {
                    return undecided(format!(
                        "`{r}` does not say which `{axis}` (check it first)"
                    ));
                }
            };
        }
        let name = reference_name(stage, &point, metric);
        let fact = (self.resolve)(stage, &point, metric);
        if !self.refs.iter().any(|o| o.reference == name) {
            self.refs.push(Observed {
                reference: name.clone(),
                stage: stage.to_string(),
                point,
                metric: metric.to_string(),
                fact: fact.clone(),
            });
        }
        match fact {
            Fact::Value(x) if x.is_finite() => Outcome::Number(x),
            Fact::Value(x) => undecided(format!("`{name}` is {x}, not a finite number")),
            Fact::Never if metric == "speedup_t_gen" => undecided(format!(
                "`{name}` is never: an arm that never generalises has no speed-up (compare \
                 `t_gen` instead)"
            )),
            Fact::Never => Outcome::Never,
            Fact::Missing(reason) => undecided(format!("`{name}` is missing: {reason}")),
        }
    }
}

/// Kleene's three-valued `and`/`or`: a false side decides `and`, a true side decides `or`,
/// whatever the other side is; otherwise an undecided side leaves it undecided.
fn logic(op: BinaryOp, a: Outcome, b: Outcome) -> Outcome {
    let decisive = op == BinaryOp::Or;
    match (&a, &b) {
        (Outcome::Bool(x), _) if *x == decisive => Outcome::Bool(decisive),
        (_, Outcome::Bool(y)) if *y == decisive => Outcome::Bool(decisive),
        (Outcome::Bool(_), Outcome::Bool(_)) => Outcome::Bool(!decisive),
        _ => merged([&a, &b]),
    }
}
