//! The checker: names, axes, arms and types, each refusal located and with its hint.

use super::schema;
use crate::claims::{Claim, SeedRule, check, parse};

#[test]
fn good_claims_pass() {
    let s = schema();
    for text in [
        "ticket_train[mask.rate=0.6].t_gen <= 0.2 * dense.t_gen",
        "argmin(mask.rate: ticket_train.tau_grok) >= 0.5 and argmin(mask.rate: ticket_train.tau_grok) <= 0.8",
        "all(mask.rate: ticket_train.t_mem >= dense.t_mem)",
        "count(mask.rate: ticket_train.t_gen == never) <= 1",
        "min(mask.rate: ticket_train.t_gen / dense.t_gen) < 0.5",
        "all(mask.rate: any(grid_train.uses: grid_train.t_gen < dense.t_gen))",
        "any(grid_train.uses: grid_train[mask.rate=0.6].t_gen < 100)",
        "all(mask.rate: grid_train[grid_train.uses=sgd].t_gen >= grid_train[grid_train.uses=\"adamw\"].t_gen)",
        "wide[wide.width=128].steps == 5000 and compare.best_rate >= 0.5",
        "not (dense.speedup_t_gen > 1) or dense.steps == never",
        "compare.mean_speedup > 2",
    ] {
        let errors = check(&parse(text).unwrap(), &s);
        assert!(errors.is_empty(), "{text:?}: {errors:?}");
    }
}

/// `(claim, the text the error points at, words in the message, words in the help)`; each
/// claim has exactly one problem.
#[test]
fn refusals_are_located_with_hints() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("dens.t_gen < 1", "dens", "unknown stage `dens`", "did you mean `dense`?"),
        ("ticket_trian.t_gen < 1", "ticket_trian", "unknown stage", "did you mean `ticket_train`?"),
        (
            "dense.t_gn < 1",
            "t_gn",
            "unknown metric `t_gn` of train stage `dense`",
            "did you mean `t_gen`?",
        ),
        (
            "mask.t_gen < 1",
            "mask",
            "`mask` is a prune stage: it does not train",
            "stages with metrics: compare, dense, grid_train, ticket_train, wide",
        ),
        (
            "ticket[mask.rate=0.6].t_gen < 1",
            "ticket",
            "rewind stage",
            "did you mean `ticket_train`?",
        ),
        (
            "compare.t_gen < 1",
            "t_gen",
            "`compare` is a report stage, which does not train",
            "scalar outputs of `compare`: best_rate, mean_speedup",
        ),
        (
            "compare.best_rat > 0.5",
            "best_rat",
            "report stage `compare`",
            "did you mean `best_rate`?",
        ),
        (
            "ticket_train[mask.rat=0.6].t_gen < 1",
            "mask.rat",
            "unknown sweep axis `mask.rat`",
            "did you mean `mask.rate`?",
        ),
        (
            "ticket_train[mask.rate=0.65].t_gen < 1",
            "0.65",
            "`mask.rate` has no value 0.65",
            "did you mean 0.6? its values: 0.0, 0.5, 0.6, 0.8, 0.9",
        ),
        (
            "grid_train[mask.rate=0.6, grid_train.uses=adam].t_gen < 1",
            "adam",
            "no value \"adam\"",
            "did you mean \"adamw\"?",
        ),
        (
            "grid_train[mask.rate=0.6, grid_train.uses=1].t_gen < 1",
            "1",
            "no value 1",
            "its values: \"adamw\", \"sgd\"",
        ),
        ("wide[wide.width=100].steps < 1", "100", "no value 100", "did you mean 128?"),
        (
            "dense[mask.rate=0.6].t_gen < 1",
            "mask.rate",
            "`dense` is not swept on `mask.rate`",
            "`dense` is not swept: write `dense.t_gen`",
        ),
        (
            "wide[mask.rate=0.6, wide.width=64].t_gen < 1",
            "mask.rate",
            "not swept on",
            "`wide` is swept on: wide.width",
        ),
        ("ticket_train[mask.rate=0.6, mask.rate=0.8].t_gen < 1", "mask.rate", "given twice", ""),
        (
            "ticket_train.t_gen <= 0.2 * dense.t_gen",
            "ticket_train.t_gen",
            "`ticket_train` is swept on `mask.rate`: which arm?",
            "e.g. `ticket_train[mask.rate=0.0].t_gen`, or iterate over it, e.g. `min(mask.rate: ticket_train.t_gen)`",
        ),
        (
            "grid_train[mask.rate=0.6].t_gen < 1",
            "grid_train[mask.rate=0.6].t_gen",
            "swept on `grid_train.uses`",
            "",
        ),
        (
            "min(mask.rate: grid_train.t_gen) < 1",
            "grid_train.t_gen",
            "swept on `grid_train.uses`",
            "",
        ),
        (
            "dense.t_gen",
            "dense.t_gen",
            "a claim must be a condition; this is a number",
            "`... <= 1000`",
        ),
        (
            "dense.t_gen + (dense.t_mem < 2) < 1",
            "(dense.t_mem < 2)",
            "`+` needs a number on each side; this is a condition",
            "",
        ),
        (
            "(dense.t_gen < 1) == 1",
            "(dense.t_gen < 1)",
            "`==` needs a number on each side",
            "combine conditions with `and`",
        ),
        ("not dense.t_gen", "dense.t_gen", "`not` needs a condition; this is a number", ""),
        (
            "-(dense.t_gen < 1) < 2",
            "(dense.t_gen < 1)",
            "`-` needs a number; this is a condition",
            "",
        ),
        (
            "min(mask.rate: ticket_train.t_gen < 1) < 2",
            "ticket_train.t_gen < 1",
            "`min` needs a number after `mask.rate:`; this is a condition",
            "",
        ),
        ("all(mask.rate: ticket_train.t_gen)", "ticket_train.t_gen", "`all` needs a condition", ""),
        (
            "min(mask.rte: ticket_train.t_gen) < 1",
            "mask.rte",
            "unknown sweep axis `mask.rte`",
            "did you mean `mask.rate`?",
        ),
        (
            "min(mask.rate: dense.t_gen) < 1",
            "mask.rate",
            "nothing after `mask.rate:` varies with `mask.rate`",
            "stages with metrics swept on `mask.rate`: grid_train, ticket_train",
        ),
        ("all(mask.rate: ticket_train[mask.rate=0.6].t_gen < 1)", "mask.rate", "nothing after", ""),
        (
            "all(mask.rate: any(mask.rate: ticket_train.t_gen < 1))",
            "mask.rate",
            "already iterated by the enclosing `all`",
            "",
        ),
        (
            "argmin(grid_train.uses: grid_train[mask.rate=0.6].t_gen) == 1",
            "grid_train.uses",
            "values that are not numbers",
            "use `min`/`max`",
        ),
    ];
    let s = schema();
    for (text, at, message, help) in cases {
        let errors = check(&parse(text).unwrap(), &s);
        assert_eq!(errors.len(), 1, "{text:?}: {errors:#?}");
        let e = &errors[0];
        assert_eq!(&text[e.span.start..e.span.end], *at, "{text:?}: {e}");
        assert!(e.message.contains(message), "{text:?}: {e}");
        let got = e.help.clone().unwrap_or_default();
        assert!(got.contains(help), "{text:?}: help {got:?}");
    }
}

#[test]
fn every_problem_is_reported_in_text_order() {
    let text = "dense.t_gen and 3 or dens.t_gn < compare.t_gen";
    let errors = check(&parse(text).unwrap(), &schema());
    let at: Vec<&str> = errors.iter().map(|e| &text[e.span.start..e.span.end]).collect();
    assert_eq!(at, ["dense.t_gen", "3", "dens", "t_gen"], "{errors:#?}");
    assert!(errors[0].message.contains("`and` needs a condition on each side; this is a number"));
}

#[test]
fn claim_new_parses_and_checks() {
    let s = schema();
    let c = Claim::new(
        "sooner",
        "ticket_train[mask.rate=0.6].t_gen <= 0.2 * dense.t_gen",
        SeedRule::Majority,
        &s,
    )
    .unwrap();
    assert_eq!((c.name.as_str(), c.seeds), ("sooner", SeedRule::Majority));
    assert_eq!(c.schema(), &s);
    let errs = Claim::new("bad", "dense.t_gen =", SeedRule::All, &s).unwrap_err();
    assert_eq!(errs.len(), 1);
    let errs = Claim::new("bad", "dens.t_gen < mask.t_gen", SeedRule::All, &s).unwrap_err();
    assert_eq!(errs.len(), 2);
}
