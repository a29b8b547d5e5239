//! Every built-in pruner and control end to end, pinned with the testing API as a plugin
//! author would pin theirs: the masks (per-layer counts and hashes) and each arm's summary.

use ticketlab_api::plugin::registry::Registry;
use ticketlab_plugins as _;
use ticketlab_testing::{SnapshotOptions, snapshot};

#[test]
fn every_pruner_and_control_end_to_end() {
    let registry = Registry::builtin().expect("built-in registry");
    let file = crate::cli::root().join("tests/fixtures/every_pruner.yaml");
    let ir =
        ticketlab_dsl::load(&file, &registry, &[]).unwrap_or_else(|d| panic!("{}", d.render()));
    let options = SnapshotOptions { base_dir: file.parent().unwrap().to_path_buf() };
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
