//! The syntax tree of a claim expression, with byte spans into the expression text.

use std::fmt;

/// A byte range `start..end` in the expression text (the `holds:` string), for the caller to
/// map onto a line and column of the experiment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// The span `start..end`.
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// The span moved `by` bytes to the right (the expression's offset in a larger text).
    pub fn shifted(self, by: usize) -> Span {
        Span::new(self.start + by, self.end + by)
    }
}

impl From<Span> for std::ops::Range<usize> {
    fn from(s: Span) -> Self {
        s.start..s.end
    }
}

/// A name as written, with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Name {
    /// The text.
    pub text: String,
    /// Where it is.
    pub span: Span,
}

/// A node of the expression tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What the node is.
    pub kind: ExprKind,
    /// The node's whole text.
    pub span: Span,
}

/// The kinds of [`Expr`] nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A number literal: `0.2`, `5000`, `1e-3`.
    Number(f64),
    /// The literal `never`: a threshold not reached.
    Never,
    /// `STAGE.METRIC` or `STAGE[axis=value, ...].METRIC`.
    Ref(Reference),
    /// `-x` or `not x`.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// Its operand.
        operand: Box<Expr>,
    },
    /// `lhs OP rhs`.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Its span (the operator's own text).
        op_span: Span,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
    },
    /// `FUNC(axis: body)`: `body` evaluated at each value of a sweep axis.
    Aggregate {
        /// The function.
        func: Aggregation,
        /// The function name's span.
        func_span: Span,
        /// The axis iterated (`STAGE.PARAM`).
        axis: Name,
        /// The expression evaluated at each axis value.
        body: Box<Expr>,
    },
}

/// A reference to one metric of one arm: `STAGE[coords].METRIC`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// The stage, as written in the experiment file.
    pub stage: Name,
    /// The sweep coordinates given in brackets (`[mask.rate=0.8, ...]`), in written order.
    pub coords: Vec<Coordinate>,
    /// The summary field or scalar analysis output.
    pub metric: Name,
}

/// One `axis=value` of a reference's selector.
#[derive(Debug, Clone, PartialEq)]
pub struct Coordinate {
    /// The axis (`STAGE.PARAM`).
    pub axis: Name,
    /// The value as written.
    pub value: Literal,
    /// The value's span.
    pub value_span: Span,
}

/// A sweep-axis value written in a selector.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `0.8`, `-1`, `128`: matches a JSON number of equal value.
    Number(f64),
    /// `"adam"` or a bare word `adam`: matches a JSON string.
    Str(String),
    /// `true` / `false`: matches a JSON boolean.
    Bool(bool),
}

impl Literal {
    /// Whether the JSON axis value `v` is this literal.
    pub fn matches(&self, v: &serde_json::Value) -> bool {
        match (self, v) {
            (Literal::Number(x), serde_json::Value::Number(n)) => n.as_f64() == Some(*x),
            (Literal::Str(s), serde_json::Value::String(t)) => s == t,
            (Literal::Bool(b), serde_json::Value::Bool(c)) => b == c,
            _ => false,
        }
    }
}

/// `-` and `not`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `not x`
    Not,
}

/// The binary operators, grouped by the type they take and give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `and`
    And,
    /// `or`
    Or,
}

impl BinaryOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        use BinaryOp::*;
        match self {
            Add => "+",
            Sub => "-",
            Mul => "*",
            Div => "/",
            Lt => "<",
            Le => "<=",
            Gt => ">",
            Ge => ">=",
            Eq => "==",
            Ne => "!=",
            And => "and",
            Or => "or",
        }
    }

    /// `+ - * /`: numbers to a number.
    pub fn is_arithmetic(self) -> bool {
        matches!(self, BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div)
    }

    /// `< <= > >= == !=`: numbers to a boolean.
    pub fn is_comparison(self) -> bool {
        !self.is_arithmetic() && !self.is_logical()
    }

    /// `and or`: booleans to a boolean.
    pub fn is_logical(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or)
    }
}

/// The aggregation functions over a sweep axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// `min(axis: NUMBER)`: the smallest value.
    Min,
    /// `max(axis: NUMBER)`: the largest value.
    Max,
    /// `argmin(axis: NUMBER)`: the axis value where the body is smallest.
    Argmin,
    /// `argmax(axis: NUMBER)`: the axis value where the body is largest.
    Argmax,
    /// `all(axis: BOOLEAN)`: true at every axis value.
    All,
    /// `any(axis: BOOLEAN)`: true at some axis value.
    Any,
    /// `count(axis: BOOLEAN)`: at how many axis values it is true.
    Count,
}

impl Aggregation {
    /// Every function with its name.
    pub const ALL: [(&'static str, Aggregation); 7] = [
        ("min", Aggregation::Min),
        ("max", Aggregation::Max),
        ("argmin", Aggregation::Argmin),
        ("argmax", Aggregation::Argmax),
        ("all", Aggregation::All),
        ("any", Aggregation::Any),
        ("count", Aggregation::Count),
    ];

    /// The function's name.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, a)| *a == self).map(|(n, _)| *n).unwrap_or("?")
    }

    /// The function called `name`.
    pub fn from_name(name: &str) -> Option<Aggregation> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }

    /// Whether the body is a condition (`all`, `any`, `count`) rather than a number.
    pub fn takes_condition(self) -> bool {
        matches!(self, Aggregation::All | Aggregation::Any | Aggregation::Count)
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Number(x) => write!(f, "{x}"),
            Literal::Str(s) => write!(f, "{s:?}"),
            Literal::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.stage.text)?;
        if !self.coords.is_empty() {
            let coords: Vec<String> =
                self.coords.iter().map(|c| format!("{}={}", c.axis.text, c.value)).collect();
            write!(f, "[{}]", coords.join(","))?;
        }
        write!(f, ".{}", self.metric.text)
    }
}

/// Writes the expression with every operation parenthesised, so the grouping the parser chose
/// is visible: `a.t_gen <= 0.2 * b.t_gen` shows as `(a.t_gen <= (0.2 * b.t_gen))`.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Number(x) => write!(f, "{x}"),
            ExprKind::Never => write!(f, "never"),
            ExprKind::Ref(r) => write!(f, "{r}"),
            ExprKind::Unary { op: UnaryOp::Neg, operand } => write!(f, "(-{operand})"),
            ExprKind::Unary { op: UnaryOp::Not, operand } => write!(f, "(not {operand})"),
            ExprKind::Binary { op, lhs, rhs, .. } => write!(f, "({lhs} {} {rhs})", op.symbol()),
            ExprKind::Aggregate { func, axis, body, .. } => {
                write!(f, "{}({}: {body})", func.name(), axis.text)
            }
        }
    }
}
