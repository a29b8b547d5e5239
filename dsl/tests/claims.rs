//! Claims in the experiment file: both forms give one IR, `ticketlab fmt` keeps them, and every
//! problem is refused at its place in the file with the fix.

use crate::common::{load_ok, load_text, read};

use ticketlab_api::claims::SeedRule;
use ticketlab_dsl::diag::line_col;
use ticketlab_dsl::{Format, format};

/// The quickstart (YAML) with `claims` in place of its own.
fn quickstart_claiming(claims: &str) -> String {
    let text = String::from_utf8(read("experiments/quickstart.yaml")).unwrap();
    format!("{text}claims:\n{claims}")
}

/// The one problem found in `text` (YAML), as `line:column: message (help: ...)`.
fn refusal(text: &str) -> String {
    let Err(d) = load_text("q.yaml", text) else { panic!("accepted:\n{text}") };
    let items = d.items();
    assert_eq!(items.len(), 1, "{}", d.render());
    let (l, c) = items[0].labels.first().map_or((0, 0), |(span, _)| line_col(text, span.start));
    format!("{l}:{c}: {} (help: {})", items[0].message, items[0].help.clone().unwrap_or_default())
}

/// Line and column (1-based) of the first `needle` in `text`.
fn at(text: &str, needle: &str) -> String {
    let (l, c) = line_col(text, text.find(needle).expect(needle));
    format!("{l}:{c}")
}

/// A claim on the quickstart's arms.
const SOONER: &str = "  ticket_sooner:
    text: The ticket generalises in at most a third of the dense model's steps
    holds: ticket_train.t_gen <= dense.t_gen / 3
";

/// The quickstart with [`SOONER`], in YAML and as `ticketlab fmt --to tlx` writes it.
fn both_forms() -> (String, String) {
    let yaml = quickstart_claiming(SOONER);
    let tlx = format("q.yaml", yaml.as_bytes(), Format::Tlx).unwrap();
    (yaml, tlx)
}

#[test]
fn both_forms_give_one_ir_with_the_claims_in_file_order() {
    let (yaml, tlx) = both_forms();
    assert!(tlx.contains("  claim ticket_sooner {\n    text = \"The ticket"), "{tlx}");
    assert!(tlx.contains("    holds = \"ticket_train.t_gen <= dense.t_gen / 3\"\n  }"), "{tlx}");
    let from_yaml = load_text("q.yaml", &yaml).unwrap_or_else(|d| panic!("{}", d.render()));
    let from_tlx = load_text("q.tlx", &tlx).unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(from_yaml, from_tlx);
    assert_eq!(from_yaml.claims.len(), 1);
    let c = &from_yaml.claims[0];
    assert_eq!(c.name, "ticket_sooner");
    assert_eq!(c.holds, "ticket_train.t_gen <= dense.t_gen / 3");
    assert_eq!(c.seeds, SeedRule::All, "the default rule");
    assert!(c.text.starts_with("The ticket generalises"));

    let text = quickstart_claiming(
        "  b: { holds: 'dense.t_mem < 100', seeds: median }\n  a: { holds: \"not dense.t_gen == never\" }\n",
    );
    let ir = load_text("q.yaml", &text).unwrap_or_else(|d| panic!("{}", d.render()));
    let names: Vec<&str> = ir.claims.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["b", "a"]);
    assert_eq!(ir.claims[0].seeds, SeedRule::Median);
    assert!(ir.claims[0].text.is_empty());
}

#[test]
fn fmt_keeps_the_claims_in_both_directions() {
    let (yaml, tlx) = both_forms();
    let back = format("q.tlx", tlx.as_bytes(), Format::Yaml).unwrap();
    let again = format("q.yaml", back.as_bytes(), Format::Tlx).unwrap();
    assert_eq!(again, tlx, "a fixed point after one round");
    let from_yaml = load_text("q.yaml", &back).unwrap();
    assert_eq!(from_yaml.claims, load_text("q.yaml", &yaml).unwrap().claims);
}

#[test]
fn claims_never_change_the_stages() {
    let with = load_text("q.yaml", &quickstart_claiming(SOONER)).unwrap();
    let without = load_ok("experiments/quickstart.yaml", &[]);
    assert!(without.claims.is_empty());
    assert_eq!(with.stages, without.stages, "claims are not part of any stage");
}

#[test]
fn a_problem_in_a_condition_is_refused_where_it_is_written() {
    let text = quickstart_claiming("  c:\n    holds: ticket_train.t_gen <= dense.t_gne / 3\n");
    let r = refusal(&text);
    assert!(r.starts_with(&format!("{}: claim `c`: unknown metric", at(&text, "t_gne"))), "{r}");
    assert!(r.contains("did you mean `t_gen`?"), "{r}");

    // Quoted, the column still lands on the name.
    let text = quickstart_claiming("  c:\n    holds: \"ticket_trian.t_gen <= 5\"\n");
    let r = refusal(&text);
    assert!(
        r.starts_with(&format!("{}: claim `c`: unknown stage", at(&text, "ticket_trian"))),
        "{r}"
    );
    assert!(r.contains("did you mean `ticket_train`?"), "{r}");

    // A stage that does not train has no metrics.
    let text = quickstart_claiming("  c: { holds: mask.t_gen < 5 }\n");
    assert!(refusal(&text).contains("`mask`"), "{}", refusal(&text));

    // A syntax error.
    let text = quickstart_claiming("  c: { holds: dense.t_gen < }\n");
    let r = refusal(&text);
    let line = at(&text, "dense.t_gen <");
    let line = line.split(':').next().unwrap();
    assert!(r.starts_with(&format!("{line}:")) && r.contains("claim `c`"), "{r}");
}

#[test]
fn a_swept_arm_must_be_said() {
    let text = quickstart_claiming("  c:\n    holds: ticket_train.t_gen < dense.t_gen\n")
        .replace("\nclaims:", "\nsweep: { grid: { mask.rate: [0.4, 0.8] } }\nclaims:");
    let r = refusal(&text);
    assert!(r.contains("mask.rate"), "{r}");
    let fixed = text.replace("ticket_train.t_gen", "ticket_train[mask.rate=0.8].t_gen");
    let ir = load_text("q.yaml", &fixed).unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(ir.claims.len(), 1);
    let all = text.replace(
        "ticket_train.t_gen < dense.t_gen",
        "'all(mask.rate: ticket_train.t_gen < dense.t_gen)'",
    );
    assert!(load_text("q.yaml", &all).is_ok());
}

#[test]
fn a_malformed_claim_is_refused_with_the_fix() {
    let text = quickstart_claiming("  c: { holds: dense.t_gen < 5, seeds: most }\n");
    let r = refusal(&text);
    assert!(r.starts_with(&format!("{}: unknown seed rule `most`", at(&text, "most"))), "{r}");
    assert!(r.contains("all, majority, median") || r.contains("majority"), "{r}");

    let text = quickstart_claiming("  c: { hold: dense.t_gen < 5 }\n");
    let Err(d) = load_text("q.yaml", &text) else { panic!() };
    let all = d.render();
    assert!(all.contains("unknown key `hold` in claim `c`") && all.contains("`holds`"), "{all}");
    assert!(all.contains("claim `c` has no `holds`"), "{all}");

    let text = quickstart_claiming("  c: { holds: 5 }\n");
    assert!(refusal(&text).contains("must be a condition"), "{}", refusal(&text));

    let text = quickstart_claiming("  c: [dense.t_gen < 5]\n");
    assert!(refusal(&text).contains("must be a mapping"), "{}", refusal(&text));

    // In .tlx: a claim stated twice, and a key given twice.
    let (_, tlx) = both_forms();
    let twice = tlx.replacen(
        "  claim ticket_sooner {",
        "  claim ticket_sooner { holds = \"dense.t_gen < 5\" }\n  claim ticket_sooner {",
        1,
    );
    let Err(d) = load_text("q.tlx", &twice) else { panic!("accepted:\n{twice}") };
    assert!(d.render().contains("claim `ticket_sooner` is stated twice"), "{}", d.render());
    let key_twice =
        tlx.replacen("    holds = ", "    holds = \"dense.t_gen < 5\"\n    holds = ", 1);
    let Err(d) = load_text("q.tlx", &key_twice) else { panic!("accepted:\n{key_twice}") };
    assert!(d.render().contains("`holds` is given twice"), "{}", d.render());
}
