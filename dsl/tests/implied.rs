//! Inputs that follow from the others: a prune stage's `data`.

use crate::common::{load_ok, load_text, read};

#[test]
fn a_prune_stage_without_data_prunes_with_its_models_data() {
    let file = String::from_utf8(read("experiments/quickstart.yaml")).unwrap();
    let written = "inputs: { from: dense, data: data }";
    assert!(file.contains(written), "the quickstart's mask reads its data explicitly");
    let implied = file.replace(written, "inputs: { from: dense }");
    let ir = load_text("quickstart.yaml", &implied).unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(ir, load_ok("experiments/quickstart.yaml", &[]), "the same IR, so the same keys");
    // Through a rewind and an earlier mask too (IMP's second round prunes a rewound ticket).
    let second = format!(
        "{implied}  mask2:\n    kind: prune\n    uses: magnitude\n    inputs: {{ from: ticket_train }}\n"
    );
    let ir = load_text("quickstart.yaml", &second).unwrap_or_else(|d| panic!("{}", d.render()));
    let mask2 = ir.stages.iter().find(|s| s.name == "mask2").unwrap();
    assert_eq!(mask2.inputs["data"], vec!["data".to_string()]);
}

#[test]
fn a_prune_stage_whose_data_cannot_be_told_still_asks_for_it() {
    let text = "name: t\nstages:\n  data: { kind: dataset, uses: modular, with: { p: 7 } }\n  mask: { kind: prune, uses: magnitude, inputs: { from: nowhere } }\n";
    let err = load_text("t.yaml", text).unwrap_err().render();
    assert!(err.contains("needs input `data`") || err.contains("nowhere"), "{err}");
}
