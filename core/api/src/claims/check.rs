//! Names and types: a parsed claim against the experiment's [`Schema`].

use serde_json::Value;

use super::ast::{Aggregation, Expr, ExprKind, Literal, Name, Reference, Span, UnaryOp};
use super::error::{ClaimError, did_you_mean};
use super::schema::{SUMMARY_METRICS, Schema};

/// Checks a parsed claim against `schema`; every problem found, in text order (none: the claim
/// can be evaluated). A claim must be a condition; each reference must name a stage with
/// metrics, one of its metrics, and one arm: every axis the stage is swept on fixed in brackets
/// or iterated by an enclosing aggregation.
pub fn check(expr: &Expr, schema: &Schema) -> Vec<ClaimError> {
    let mut c = Checker { schema, errors: Vec::new(), iterating: Vec::new() };
    if c.ty(expr) == Some(Type::Number) {
        c.errors.push(
            ClaimError::new(expr.span, "a claim must be a condition; this is a number")
                .with_help("compare it with something, e.g. `... <= 1000`"),
        );
    }
    c.errors.sort_by_key(|e| (e.span.start, e.span.end));
    c.errors
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Number,
    Condition,
}

impl Type {
    fn word(self) -> &'static str {
        match self {
            Type::Number => "a number",
            Type::Condition => "a condition",
        }
    }
}

struct Iterated {
    axis: String,
    func: Aggregation,
    used: bool,
}

struct Checker<'a> {
    schema: &'a Schema,
    errors: Vec<ClaimError>,
    iterating: Vec<Iterated>,
}

impl Checker<'_> {
    /// The expression's type, `None` when an error inside it was reported already.
    fn ty(&mut self, e: &Expr) -> Option<Type> {
        match &e.kind {
            ExprKind::Number(_) | ExprKind::Never => Some(Type::Number),
            ExprKind::Ref(r) => self.reference(r, e.span),
            ExprKind::Unary { op, operand } => {
                let (want, sym) = match op {
                    UnaryOp::Neg => (Type::Number, "-"),
                    UnaryOp::Not => (Type::Condition, "not"),
                };
                if let Some(err) =
                    self.mismatch(operand, want, &format!("`{sym}` needs {}", want.word()))
                {
                    self.errors.push(err);
                }
                Some(want)
            }
            ExprKind::Binary { op, lhs, rhs, .. } => {
                let (want, gives, help) = if op.is_logical() {
                    (Type::Condition, Type::Condition, "compare it, e.g. `x.t_gen < 5000`")
                } else if op.is_arithmetic() {
                    (Type::Number, Type::Number, "arithmetic takes numbers only")
                } else {
                    (Type::Number, Type::Condition, "combine conditions with `and`, `or`, `not`")
                };
                let what = format!("`{}` needs {} on each side", op.symbol(), want.word());
                for side in [lhs, rhs] {
                    if let Some(e) = self.mismatch(side, want, &what) {
                        self.errors.push(e.with_help(help));
                    }
                }
                Some(gives)
            }
            ExprKind::Aggregate { func, axis, body, .. } => self.aggregate(*func, axis, body),
        }
    }

    /// The error for `e` when it is not of type `want` (nothing when it is, or when an error
    /// inside it was reported already).
    fn mismatch(&mut self, e: &Expr, want: Type, what: &str) -> Option<ClaimError> {
        let got = self.ty(e)?;
        (got != want).then(|| ClaimError::new(e.span, format!("{what}; this is {}", got.word())))
    }

    fn aggregate(&mut self, func: Aggregation, axis: &Name, body: &Expr) -> Option<Type> {
        let name = func.name();
        let Some(values) = self.schema.axes.get(&axis.text) else {
            let axes: Vec<&String> = self.schema.axes.keys().collect();
            self.errors.push(
                ClaimError::new(axis.span, format!("unknown sweep axis `{}`", axis.text))
                    .with_help(did_you_mean(&axis.text, &axes, "sweep axes")),
            );
            return None;
        };
        if let Some(outer) = self.iterating.iter().find(|i| i.axis == axis.text) {
            self.errors.push(ClaimError::new(
                axis.span,
                format!(
                    "`{}` is already iterated by the enclosing `{}`",
                    axis.text,
                    outer.func.name()
                ),
            ));
            return None;
        }
        if matches!(func, Aggregation::Argmin | Aggregation::Argmax)
            && !values.iter().all(Value::is_number)
        {
            self.errors.push(
                ClaimError::new(
                    axis.span,
                    format!(
                        "`{name}` gives an axis value, and `{}` has values that are not numbers",
                        axis.text
                    ),
                )
                .with_help("use `min`/`max` for the value, or `any`/`count` with a comparison"),
            );
        }
        self.iterating.push(Iterated { axis: axis.text.clone(), func, used: false });
        let want = if func.takes_condition() { Type::Condition } else { Type::Number };
        let got = self.ty(body);
        let used = self.iterating.pop().is_some_and(|i| i.used);
        if got.is_some_and(|g| g != want) {
            self.errors.push(ClaimError::new(
                body.span,
                format!(
                    "`{name}` needs {} after `{}:`; this is {}",
                    want.word(),
                    axis.text,
                    got.map_or("", Type::word)
                ),
            ));
        }
        if got.is_some() && !used {
            let swept: Vec<&str> = self
                .schema
                .stages
                .iter()
                .filter(|(_, s)| s.swept_on.contains(&axis.text) && !s.metrics().is_empty())
                .map(|(n, _)| n.as_str())
                .collect();
            self.errors.push(
                ClaimError::new(
                    axis.span,
                    format!("nothing after `{}:` varies with `{}`", axis.text, axis.text),
                )
                .with_help(format!(
                    "stages with metrics swept on `{}`: {}",
                    axis.text,
                    if swept.is_empty() { "none".into() } else { swept.join(", ") }
                )),
            );
        }
        Some(if matches!(func, Aggregation::All | Aggregation::Any) {
            Type::Condition
        } else {
            Type::Number
        })
    }

    fn reference(&mut self, r: &Reference, span: Span) -> Option<Type> {
        let (stage, metric) = (&r.stage.text, &r.metric.text);
        let measurable = self.schema.measurable_stages();
        let Some(st) = self.schema.stages.get(stage) else {
            let all: Vec<&String> = self.schema.stages.keys().collect();
            let help = match crate::plugin::registry::closest(
                stage,
                &all.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            ) {
                Some(c) => {
                    format!("did you mean `{c}`? stages with metrics: {}", measurable.join(", "))
                }
                None => format!("stages with metrics: {}", measurable.join(", ")),
            };
            self.errors.push(
                ClaimError::new(r.stage.span, format!("unknown stage `{stage}`")).with_help(help),
            );
            return None;
        };
        let metrics = st.metrics();
        let mut ok = true;
        if metrics.is_empty() {
            self.errors.push(
                ClaimError::new(
                    r.stage.span,
                    format!(
                        "`{stage}` is a {} stage: it does not train and gives no scalar \
                         outputs, so it has no `{metric}`",
                        st.kind
                    ),
                )
                .with_help(did_you_mean(stage, &measurable, "stages with metrics")),
            );
            return None;
        } else if !metrics.contains(&metric.as_str()) {
            let err = if !st.trains && SUMMARY_METRICS.contains(&metric.as_str()) {
                let trains: Vec<&str> = self
                    .schema
                    .stages
                    .iter()
                    .filter(|(_, s)| s.trains)
                    .map(|(n, _)| n.as_str())
                    .collect();
                let message = format!(
                    "`{stage}` is a {} stage, which does not train: `{metric}` is a summary \
                     field of train stages",
                    st.kind
                );
                ClaimError::new(r.metric.span, message).with_help(format!(
                    "scalar outputs of `{stage}`: {}; train stages: {}",
                    metrics.join(", "),
                    trains.join(", ")
                ))
            } else {
                ClaimError::new(
                    r.metric.span,
                    format!("unknown metric `{metric}` of {} stage `{stage}`", st.kind),
                )
                .with_help(did_you_mean(metric, &metrics, "metrics"))
            };
            self.errors.push(err);
            ok = false;
        }
        let mut bound: Vec<&str> = Vec::new();
        let mut unknown_axis = false;
        for c in &r.coords {
            let axis = c.axis.text.as_str();
            let Some(values) = self.schema.axes.get(axis) else {
                let axes: Vec<&String> = self.schema.axes.keys().collect();
                self.errors.push(
                    ClaimError::new(c.axis.span, format!("unknown sweep axis `{axis}`"))
                        .with_help(did_you_mean(axis, &axes, "sweep axes")),
                );
                ok = false;
                unknown_axis = true;
                continue;
            };
            if bound.contains(&axis) {
                self.errors.push(ClaimError::new(c.axis.span, format!("`{axis}` is given twice")));
                ok = false;
                continue;
            }
            bound.push(axis);
            if !st.swept_on.iter().any(|a| a == axis) {
                let help = if st.swept_on.is_empty() {
                    format!("`{stage}` is not swept: write `{stage}.{metric}`")
                } else {
                    format!("`{stage}` is swept on: {}", st.swept_on.join(", "))
                };
                self.errors.push(
                    ClaimError::new(c.axis.span, format!("`{stage}` is not swept on `{axis}`"))
                        .with_help(help),
                );
                ok = false;
            } else if !values.iter().any(|v| c.value.matches(v)) {
                self.errors.push(
                    ClaimError::new(c.value_span, format!("`{axis}` has no value {}", c.value))
                        .with_help(value_hint(&c.value, values)),
                );
                ok = false;
            }
        }
        let mut missing = Vec::new();
        for a in st.swept_on.iter().filter(|a| !bound.contains(&a.as_str())) {
            match self.iterating.iter_mut().rev().find(|i| &i.axis == a) {
                Some(i) => i.used = true,
                None => missing.push(a.as_str()),
            }
        }
        // A misspelt axis in brackets was most likely meant for a missing one: said once.
        if let Some(first) = missing.first().filter(|_| !unknown_axis) {
            let example =
                self.schema.axes.get(*first).and_then(|v| v.first()).map_or("...".into(), compact);
            self.errors.push(
                ClaimError::new(
                    span,
                    format!("`{stage}` is swept on {}: which arm?", quoted(&missing)),
                )
                .with_help(format!(
                    "fix it, e.g. `{stage}[{first}={example}].{metric}`, or iterate over it, \
                     e.g. `min({first}: {stage}.{metric})`"
                )),
            );
            ok = false;
        }
        ok.then_some(Type::Number)
    }
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// `did you mean 0.8? its values: ...`: the nearest number, or the closest string.
fn value_hint(lit: &Literal, values: &[Value]) -> String {
    let list: Vec<String> = values.iter().map(compact).collect();
    let near = match lit {
        Literal::Number(x) => values
            .iter()
            .filter_map(|v| v.as_f64().map(|y| ((y - x).abs(), v)))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, v)| compact(v)),
        Literal::Str(s) => {
            let strs: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
            crate::plugin::registry::closest(s, &strs).map(|c| format!("{c:?}"))
        }
        Literal::Bool(_) => None,
    };
    match near {
        Some(n) => format!("did you mean {n}? its values: {}", list.join(", ")),
        None => format!("its values: {}", list.join(", ")),
    }
}
