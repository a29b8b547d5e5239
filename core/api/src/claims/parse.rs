//! Text to [`Expr`]: the pest grammar (`grammar.pest`) and the walk over its pairs.

use pest::Parser;
use pest::iterators::Pair;

use super::ast::{
    Aggregation, BinaryOp, Coordinate, Expr, ExprKind, Literal, Name, Reference, Span, UnaryOp,
};
use super::error::{ClaimError, did_you_mean};

mod generated {
    //! The pest parser generated from `grammar.pest`.
    #![allow(missing_docs)]

    #[derive(pest_derive::Parser)]
    #[grammar = "claims/grammar.pest"]
    pub struct ClaimParser;
}

use generated::{ClaimParser, Rule};

/// The deepest bracket nesting accepted; pest's parser recurses once per level, and a claim
/// needs a handful at most.
pub const MAX_NESTING: usize = 32;

/// Parses a claim expression (the `holds:` text) into its syntax tree, or says where the text
/// stops making sense. Names are not looked up here: [`check`](super::check()) does that.
pub fn parse(text: &str) -> Result<Expr, ClaimError> {
    if text.trim().is_empty() {
        return Err(ClaimError::new(Span::new(0, text.len()), "the claim is empty")
            .with_help("write a condition, e.g. `ticket_train.t_gen <= 0.2 * dense.t_gen`"));
    }
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_NESTING {
            return Err(ClaimError::new(
                Span::new(i, i + 1),
                format!("the brackets nest more than {MAX_NESTING} levels deep"),
            )
            .with_help("a claim needs only a few levels; split it or remove brackets"));
        }
    }
    // Record the literal tokens tried at the failure point (`:`, `)`, ...) for the message.
    pest::set_error_detail(true);
    let mut pairs = ClaimParser::parse(Rule::claim, text).map_err(|e| syntax_error(text, &e))?;
    let expr = pairs.next().and_then(|claim| claim.into_inner().next());
    node(expr.expect("the grammar's `claim` holds one `expr`"))
}

fn span(p: &Pair<'_, Rule>) -> Span {
    Span::new(p.as_span().start(), p.as_span().end())
}

fn name(p: &Pair<'_, Rule>) -> Name {
    Name { text: p.as_str().to_string(), span: span(p) }
}

fn node(p: Pair<'_, Rule>) -> Result<Expr, ClaimError> {
    let sp = span(&p);
    match p.as_rule() {
        Rule::expr | Rule::conj | Rule::sum | Rule::product | Rule::comparison => binary(p),
        Rule::negation | Rule::unary => prefix(p),
        Rule::number => {
            let x: f64 = p.as_str().parse().unwrap_or(f64::INFINITY);
            if !x.is_finite() {
                return Err(ClaimError::new(sp, "this number is too large"));
            }
            Ok(Expr { kind: ExprKind::Number(x), span: sp })
        }
        Rule::never => Ok(Expr { kind: ExprKind::Never, span: sp }),
        // The brackets belong to the span, so that `(a - b)` is quoted whole.
        Rule::paren => {
            let inner = node(p.into_inner().next().expect("a parenthesised expression"))?;
            Ok(Expr { span: sp, ..inner })
        }
        Rule::aggregate => aggregate(p),
        Rule::reference => reference(p),
        r => unreachable!("the grammar has no `{r:?}` in value position"),
    }
}

/// `a OP b OP c ...`, grouped to the left.
fn binary(p: Pair<'_, Rule>) -> Result<Expr, ClaimError> {
    let is_comparison = p.as_rule() == Rule::comparison;
    let mut inner = p.into_inner();
    let mut acc = node(inner.next().expect("an operand"))?;
    let mut chained = false;
    while let (Some(op), Some(rhs)) = (inner.next(), inner.next()) {
        let op_span = span(&op);
        if is_comparison && chained {
            return Err(ClaimError::new(op_span, "comparisons do not chain")
                .with_help("write each comparison on its own: `a < b and b < c`"));
        }
        chained = true;
        let op = binary_op(op.as_str());
        let rhs = node(rhs)?;
        let sp = acc.span.to(rhs.span);
        acc = Expr {
            kind: ExprKind::Binary { op, op_span, lhs: Box::new(acc), rhs: Box::new(rhs) },
            span: sp,
        };
    }
    Ok(acc)
}

fn binary_op(s: &str) -> BinaryOp {
    use BinaryOp::*;
    match s {
        "+" => Add,
        "-" => Sub,
        "*" => Mul,
        "/" => Div,
        "<" => Lt,
        "<=" => Le,
        ">" => Gt,
        ">=" => Ge,
        "==" => Eq,
        "!=" => Ne,
        "and" => And,
        "or" => Or,
        other => unreachable!("the grammar has no operator `{other}`"),
    }
}

/// `not not x`, `- - x`: the operators apply innermost first.
fn prefix(p: Pair<'_, Rule>) -> Result<Expr, ClaimError> {
    let mut ops = Vec::new();
    let mut operand = None;
    for q in p.into_inner() {
        match q.as_rule() {
            Rule::not_op => ops.push((UnaryOp::Not, span(&q))),
            Rule::minus => ops.push((UnaryOp::Neg, span(&q))),
            _ => operand = Some(node(q)?),
        }
    }
    let mut acc = operand.expect("a prefix rule ends with its operand");
    for (op, sp) in ops.into_iter().rev() {
        let sp = sp.to(acc.span);
        acc = Expr { kind: ExprKind::Unary { op, operand: Box::new(acc) }, span: sp };
    }
    Ok(acc)
}

fn aggregate(p: Pair<'_, Rule>) -> Result<Expr, ClaimError> {
    let sp = span(&p);
    let mut inner = p.into_inner();
    let func = name(&inner.next().expect("a function name"));
    let axis = name(&inner.next().expect("an axis"));
    let body = node(inner.next().expect("a body"))?;
    let Some(f) = Aggregation::from_name(&func.text) else {
        let names: Vec<&str> = Aggregation::ALL.iter().map(|(n, _)| *n).collect();
        return Err(ClaimError::new(func.span, format!("unknown function `{}`", func.text))
            .with_help(did_you_mean(&func.text, &names, "functions")));
    };
    Ok(Expr {
        kind: ExprKind::Aggregate { func: f, func_span: func.span, axis, body: Box::new(body) },
        span: sp,
    })
}

fn reference(p: Pair<'_, Rule>) -> Result<Expr, ClaimError> {
    let sp = span(&p);
    let mut stage = None;
    let mut metric = None;
    let mut coords = Vec::new();
    for q in p.into_inner() {
        match q.as_rule() {
            Rule::stage => stage = Some(name(&q)),
            Rule::metric => metric = Some(name(&q)),
            Rule::selector => {
                for c in q.into_inner() {
                    let mut parts = c.into_inner();
                    let axis = name(&parts.next().expect("an axis"));
                    let v = parts.next().expect("a value");
                    let value_span = span(&v);
                    let value = match v.as_rule() {
                        Rule::signed => match v.as_str().parse::<f64>() {
                            Ok(x) if x.is_finite() => Literal::Number(x),
                            _ => {
                                return Err(ClaimError::new(
                                    value_span,
                                    "this number is too large",
                                ));
                            }
                        },
                        Rule::string => Literal::Str(v.as_str().trim_matches('"').to_string()),
                        Rule::boolean => Literal::Bool(v.as_str() == "true"),
                        _ => Literal::Str(v.as_str().to_string()),
                    };
                    coords.push(Coordinate { axis, value, value_span });
                }
            }
            r => unreachable!("a reference holds no `{r:?}`"),
        }
    }
    let (Some(stage), Some(metric)) = (stage, metric) else {
        unreachable!("the grammar's `reference` has a stage and a metric")
    };
    Ok(Expr { kind: ExprKind::Ref(Reference { stage, coords, metric }), span: sp })
}

/// The words the grammar reserves.
const RESERVED: [&str; 4] = ["and", "or", "not", "never"];

/// The words for what the parser expected at the failure point.
fn expected_word(rule: &Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::number
        | Rule::never
        | Rule::paren
        | Rule::conj
        | Rule::negation
        | Rule::comparison
        | Rule::sum
        | Rule::product
        | Rule::unary
        | Rule::stage
        | Rule::func
        | Rule::reference
        | Rule::aggregate
        | Rule::not_op
        | Rule::minus
        | Rule::expr => "a value (a number, `never`, `stage.metric`, `min(axis: ...)`, `(...)`)",
        Rule::cmp_op => "a comparison (`<`, `<=`, `>`, `>=`, `==`, `!=`)",
        Rule::add_op | Rule::mul_op => "an operator (`+`, `-`, `*`, `/`)",
        Rule::and_op => "`and`",
        Rule::or_op => "`or`",
        Rule::EOI => "the end of the claim",
        Rule::selector => "`.METRIC` after the stage name (or `[axis=value]`)",
        Rule::metric => "a metric name",
        Rule::axis => "an axis (`stage.param`)",
        Rule::coord => "a coordinate (`stage.param=value`)",
        Rule::signed | Rule::string | Rule::boolean | Rule::word => {
            "an axis value (a number, a word or a \"quoted string\")"
        }
        _ => return None,
    })
}

fn syntax_error(text: &str, e: &pest::error::Error<Rule>) -> ClaimError {
    let mut at = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let mut words: Vec<String> = Vec::new();
    let mut push = |w: String| {
        if !words.contains(&w) {
            words.push(w);
        }
    };
    let attempts = e.parse_attempts();
    // Closing tokens always; `(`, `[` and `.` only where no rule explains them (a number's
    // `.`, a value's `(` would only repeat "a value").
    let tokens = |words: &mut dyn FnMut(String), all: bool| {
        for t in attempts.iter().flat_map(|a| a.expected_tokens()).map(|t| t.to_string()) {
            if [":", ")", "]", ",", "="].contains(&t.as_str())
                || (all && ["(", "[", "."].contains(&t.as_str()))
            {
                words(format!("`{t}`"));
            }
        }
    };
    match attempts.as_ref().map(|a| a.max_position) {
        // A literal token (`:`, `)`, `.`) failed further on than any rule: say which.
        Some(max) if max > at && !text.get(at..max).unwrap_or("").trim().is_empty() => {
            at = max;
            tokens(&mut push, true);
        }
        max => {
            if let pest::error::ErrorVariant::ParsingError { positives, .. } = &e.variant {
                positives.iter().filter_map(expected_word).for_each(|w| push(w.to_string()));
            }
            if max == Some(at) {
                tokens(&mut push, false);
            }
        }
    }
    // `and.x`, `never[...]`: a reserved word where a stage name was meant.
    let word_start =
        text[..at].rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
    let word = &text[word_start..at];
    if RESERVED.contains(&word) && matches!(text[at..].chars().next(), Some('.' | '[')) {
        return ClaimError::new(Span::new(word_start, at), format!("`{word}` is a reserved word"))
            .with_help("`and`, `or`, `not` and `never` cannot name a stage");
    }
    let (found, sp) = found_at(text, at);
    let mut message = match found {
        "" => "the claim ends here".to_string(),
        f if f.trim().is_empty() => "unexpected space".to_string(),
        f => format!("unexpected `{f}`"),
    };
    if !words.is_empty() {
        let list = match words.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => words.join(""),
        };
        message.push_str(&format!(": expected {list}"));
    }
    let open = text.chars().filter(|c| *c == '(').count();
    let close = text.chars().filter(|c| *c == ')').count();
    let help = match found {
        "=" if words.iter().any(|w| w.starts_with("a comparison")) => {
            Some("test equality with `==`".to_string())
        }
        "&&" | "&" => Some("write `and`".to_string()),
        "||" | "|" => Some("write `or`".to_string()),
        "!" => Some("write `not`".to_string()),
        f if ["and", "or", "not", "never"].contains(&f.split('.').next().unwrap_or("")) => Some(
            "`and`, `or`, `not` and `never` are reserved words; they cannot name a stage".into(),
        ),
        _ if open > close => Some(format!("{} `(` not closed", open - close)),
        _ if close > open => Some(format!("{} `)` without its `(`", close - open)),
        _ => None,
    };
    ClaimError { span: sp, message, help }
}

/// The token at byte `at`: a word, a number, a two-character operator or one character.
fn found_at(text: &str, at: usize) -> (&str, Span) {
    let rest = &text[at.min(text.len())..];
    let Some(first) = rest.chars().next() else { return ("", Span::new(at, at)) };
    let len = if first.is_ascii_alphanumeric() || first == '_' {
        rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(rest.len())
    } else if ["<=", ">=", "==", "!=", "&&", "||"].iter().any(|op| rest.starts_with(op)) {
        2
    } else {
        first.len_utf8()
    };
    (&rest[..len], Span::new(at, at + len))
}
