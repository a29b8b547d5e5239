//! The grammar: precedence, spans and located syntax errors.

use crate::claims::{ExprKind, Literal, MAX_NESTING, Span, parse};

#[test]
fn precedence_and_grouping() {
    let cases = [
        ("a.t_gen <= 0.2 * b.t_gen", "(a.t_gen <= (0.2 * b.t_gen))"),
        ("a.x + b.x * 2 - 1", "((a.x + (b.x * 2)) - 1)"),
        ("a.x / b.x / 2", "((a.x / b.x) / 2)"),
        ("a.x - b.x - c.x", "((a.x - b.x) - c.x)"),
        ("-a.x * 2", "((-a.x) * 2)"),
        ("- -1", "(-(-1))"),
        ("2 * -a.x", "(2 * (-a.x))"),
        ("not a.x < 5 or b.x < 5 and c.x < 5", "((not (a.x < 5)) or ((b.x < 5) and (c.x < 5)))"),
        ("a.x < 1 or b.x < 1 or c.x < 1", "(((a.x < 1) or (b.x < 1)) or (c.x < 1))"),
        ("not not a.x == never", "(not (not (a.x == never)))"),
        ("(a.x < 1 or b.x < 1) and c.x < 1", "(((a.x < 1) or (b.x < 1)) and (c.x < 1))"),
        ("(a.x + 1) * 2 >= 3", "(((a.x + 1) * 2) >= 3)"),
        ("a.x>=1 and(b.x!=2)", "((a.x >= 1) and (b.x != 2))"),
        ("1e3 < 2.5E-2", "(1000 < 0.025)"),
        ("t[mask.rate=0.8].t_gen > 0", "(t[mask.rate=0.8].t_gen > 0)"),
        (
            "t[ mask.rate = 0.8 , t.uses=adamw ].t_gen > 0",
            "(t[mask.rate=0.8,t.uses=\"adamw\"].t_gen > 0)",
        ),
        (
            "t[t.uses=\"sgd\", t.flag=true, t.lr=-1e-3].x > 0",
            "(t[t.uses=\"sgd\",t.flag=true,t.lr=-0.001].x > 0)",
        ),
        ("t[a.b.c=1].x > 0", "(t[a.b.c=1].x > 0)"),
        ("min(mask.rate: t.t_gen) < 5", "(min(mask.rate: t.t_gen) < 5)"),
        ("argmax(mask.rate: t.x / d.x) == 0.6", "(argmax(mask.rate: (t.x / d.x)) == 0.6)"),
        (
            "count( mask.rate : t.t_gen == never ) <= 1",
            "(count(mask.rate: (t.t_gen == never)) <= 1)",
        ),
        ("all(a.r: any(b.s: t.x < 1))", "all(a.r: any(b.s: (t.x < 1)))"),
        ("never_x.t_gen > never", "(never_x.t_gen > never)"),
        ("min.t_gen < 1 and order.x > 0", "((min.t_gen < 1) and (order.x > 0))"),
        ("\n  a.x\t<\n1 ", "(a.x < 1)"),
    ];
    for (text, want) in cases {
        match parse(text) {
            Ok(e) => assert_eq!(e.to_string(), want, "parsing {text:?}"),
            Err(e) => panic!("{text:?} did not parse: {e}"),
        }
    }
}

#[test]
fn spans_index_the_text() {
    let text = "ticket_train[mask.rate=0.8].t_gen <= 0.2 * dense.t_gen";
    let e = parse(text).unwrap();
    assert_eq!(e.span, Span::new(0, text.len()));
    let ExprKind::Binary { op_span, lhs, rhs, .. } = &e.kind else { panic!("{e:?}") };
    assert_eq!(&text[op_span.start..op_span.end], "<=");
    assert_eq!(&text[lhs.span.start..lhs.span.end], "ticket_train[mask.rate=0.8].t_gen");
    assert_eq!(&text[rhs.span.start..rhs.span.end], "0.2 * dense.t_gen");
    let ExprKind::Ref(r) = &lhs.kind else { panic!("{lhs:?}") };
    assert_eq!(r.stage.span, Span::new(0, 12));
    assert_eq!(&text[r.metric.span.start..r.metric.span.end], "t_gen");
    let c = &r.coords[0];
    assert_eq!(&text[c.axis.span.start..c.axis.span.end], "mask.rate");
    assert_eq!(&text[c.value_span.start..c.value_span.end], "0.8");
    assert_eq!(c.value, Literal::Number(0.8));
}

/// `(text, the text the error points at, words in the message, words in the help)`.
#[test]
fn syntax_errors_are_located() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("a.t_gen = 5", "=", "unexpected `=`", "`==`"),
        ("a.t_gen < 1 < 2", "<", "comparisons do not chain", "a < b and b < c"),
        ("a.t_gen < 5 && b.t_gen < 5", "&&", "unexpected `&&`", "`and`"),
        ("a.t_gen < 5 || b.t_gen < 5", "||", "unexpected `||`", "`or`"),
        ("!(a.t_gen < 5)", "!", "unexpected `!`", "`not`"),
        (
            "argmn(mask.rate: t.x) > 1",
            "argmn",
            "unknown function `argmn`",
            "did you mean `argmin`?",
        ),
        ("dense < 5", " ", "`.METRIC` after the stage name", ""),
        ("(a.x < 1", "", "the claim ends here: expected `or`, `and`", "1 `(` not closed"),
        ("min(mask.rate: t.x > 1", "", "or `)`", "1 `(` not closed"),
        ("a.x < 1)", ")", "unexpected `)`", "1 `)` without its `(`"),
        ("a.t_gen < 1e999", "1e999", "too large", ""),
        ("a.t_gen <", "", "the claim ends here: expected a value", ""),
        ("a.t_gen < 5 and", "", "expected a value", ""),
        ("a.t_gen 5", "5", "unexpected `5`", ""),
        ("t[mask.rate].x > 1", "]", "unexpected `]`: expected `.` or `=`", ""),
        ("t[].x > 1", "]", "expected an axis", ""),
        ("t[rate=1].x > 1", "=", "unexpected `=`: expected `.`", ""),
        ("and.x > 1", "and", "`and` is a reserved word", "cannot name a stage"),
        ("a.x < 1 or never[mask.rate=1].t_gen > 2", "never", "`never` is a reserved word", ""),
        ("min(mask.rate t.x) > 1", "t.x", "unexpected `t.x`", ""),
        ("a.x < 5 é", "é", "unexpected `é`", ""),
    ];
    for (text, at, message, help) in cases {
        let e = match parse(text) {
            Ok(e) => panic!("{text:?} parsed as {e}"),
            Err(e) => e,
        };
        assert_eq!(&text[e.span.start..e.span.end], *at, "{text:?}: {e}");
        assert!(e.message.contains(message), "{text:?}: {e}");
        let got = e.help.clone().unwrap_or_default();
        assert!(got.contains(help), "{text:?}: help {got:?}");
    }
}

#[test]
fn empty_and_deeply_nested_claims_are_refused() {
    for text in ["", "  \n"] {
        let e = parse(text).unwrap_err();
        assert_eq!(e.message, "the claim is empty");
    }
    let deep = format!("{}a.x{} < 1", "(".repeat(MAX_NESTING + 1), ")".repeat(MAX_NESTING + 1));
    let e = parse(&deep).unwrap_err();
    assert_eq!(e.span, Span::new(MAX_NESTING, MAX_NESTING + 1));
    assert!(e.message.contains("nest"), "{e}");
    let ok = format!("{}a.x{} < 1", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
    assert!(parse(&ok).is_ok());
}

#[test]
fn errors_shift_into_the_file() {
    let e = parse("a.t_gen = 5").unwrap_err().shifted(100);
    assert_eq!(e.span, Span::new(108, 109));
    assert!(e.to_string().starts_with("unexpected `=`"), "{e}");
}
