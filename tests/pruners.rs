//! Every built-in pruner and control end to end, pinned with the testing API as a plugin
//! author would pin theirs: the masks (per-layer counts and hashes) and each arm's summary.

use ticketlab_api::plugin::registry::Registry;
use ticketlab_api::runtime::Runtime;
use ticketlab_plugins as _;
use ticketlab_testing::{SnapshotOptions, snapshot};

#[test]
fn every_pruner_and_control_end_to_end() {
    let registry = Registry::builtin().expect("built-in registry");
    let file = crate::cli::root().join("tests/fixtures/every_pruner.yaml");
    let ir =
        ticketlab_dsl::load(&file, &registry, &[]).unwrap_or_else(|d| panic!("{}", d.render()));
    let options = SnapshotOptions {
        runtime: Runtime { base_dir: file.parent().unwrap().into(), ..Runtime::default() },
    };
    let snap = snapshot(&ir, &registry, &options).expect("every stage runs");
    // Every pruner kept exactly half of the weights (exact k), and each mask is its own.
    for (name, mask) in &snap.masks {
        assert_eq!(
            mask.kept * 2,
            mask.total,
            "mask `{name}` keeps {} of {}",
            mask.kept,
            mask.total
        );
    }
    let mut hashes: Vec<&str> = snap.masks.values().map(|m| m.hash.as_str()).collect();
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(hashes.len(), snap.masks.len(), "no two pruners made the same mask");
    // The shuffled control keeps the magnitude mask's per-layer counts.
    for (layer, l) in &snap.masks["shuffle"].layers {
        assert_eq!(l.kept, snap.masks["magnitude"].layers[layer].kept, "layer {layer}");
    }
    assert_eq!(snap.runs.len(), 10);
    insta::assert_yaml_snapshot!(snap);
}

/// Edge-popup from a memorising checkpoint: every run keeps `keep` of the prunable weights,
/// learning the scores alone fits most of the training set with the frozen weights, learning
/// the weights too changes the result, and the same seed gives the same run.
#[test]
fn edge_popup_learns_which_weights_to_keep() {
    let registry = Registry::builtin().expect("built-in registry");
    let text = r#"
name: edge_popup_small
seed: 0
stages:
  data: { kind: dataset, uses: modular, with: { op: add, p: 11, pairs: all, train_fraction: 0.5 } }
  init: { kind: model, uses: mlp_modular, with: { d_emb: 32, width: 16 }, inputs: { data: data } }
  dense: { kind: train, uses: standard, with: { steps: 150, lr: 0.01, eval_every: 50 }, inputs: { model: init, data: data } }
  memorised: { kind: rewind, with: { to: "150" }, inputs: { from: dense } }
  ep: { kind: train, uses: edge_popup, with: { steps: 150, eval_every: 50 }, inputs: { model: memorised, data: data } }
  ep_wd: { kind: train, uses: edge_popup, with: { steps: 150, eval_every: 50, learn_weights: true }, inputs: { model: memorised, data: data } }
"#;
    let ir = ticketlab_dsl::load_source_with(
        "edge_popup_small.yaml",
        text.as_bytes(),
        &registry,
        &ticketlab_dsl::CliOverrides::default(),
    )
    .unwrap_or_else(|d| panic!("{}", d.render()));
    let options = SnapshotOptions {
        runtime: Runtime { base_dir: std::env::temp_dir(), ..Runtime::default() },
    };
    let snap = snapshot(&ir, &registry, &options).expect("every stage runs");
    let (ep, ep_wd) = (&snap.runs["ep"].summary, &snap.runs["ep_wd"].summary);
    assert_eq!((ep.density, ep_wd.density), (0.4, 0.4));
    assert_eq!(snap.runs["ep"].evaluations, 4);
    // A random 40% of the memorised weights is near chance (1/11); learnt scores are not.
    assert!(ep.final_train_acc.unwrap() > 0.5, "{ep:?}");
    assert_ne!(ep.final_train_loss, ep_wd.final_train_loss);
    let again = snapshot(&ir, &registry, &options).expect("every stage runs");
    assert_eq!(again.runs["ep"].summary, *ep);
}
