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

/// The problems of a prune stage using `pruner` whose `from` leads to no dataset: each message
/// with the word its first label starts at.
fn without_data(pruner: &str) -> Vec<(String, String)> {
    let text = format!(
        "name: t\nstages:\n  data: {{ kind: dataset, uses: modular, with: {{ p: 7 }} }}\n  mask: {{ kind: prune, uses: {pruner}, inputs: {{ from: nowhere }} }}\n"
    );
    let err = load_text("t.yaml", &text).unwrap_err();
    let word = |d: &ticketlab_dsl::Diag| {
        let rest = &text[d.labels[0].0.start..];
        rest[..rest.find(|c: char| !c.is_alphanumeric()).unwrap_or(rest.len())].to_string()
    };
    err.items().iter().map(|d| (d.message.clone(), word(d))).collect()
}

#[test]
fn a_prune_stage_whose_data_cannot_be_told_asks_for_it_if_its_pruner_scores_with_data() {
    let not_a_stage =
        ("`mask.from` refers to `nowhere`, which is not a stage".to_string(), "nowhere".into());
    // SNIP scores with data: the missing input is named, at the stage.
    let needs = "stage `mask` (prune) needs input `data`: pruner `snip` scores with data";
    assert_eq!(without_data("snip"), [not_a_stage.clone(), (needs.to_string(), "mask".into())]);
    // Magnitude scores from the weights alone: nothing more to say.
    assert_eq!(without_data("magnitude"), [not_a_stage]);
}
