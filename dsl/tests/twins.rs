//! The YAML and `.tlx` forms of the shipped experiments lower to the same IR, byte for byte.

mod common;

use common::load_ok;

fn assert_twins(stem: &str) {
    let yaml = load_ok(&format!("experiments/{stem}.yaml"), &[]);
    let tlx = load_ok(&format!("experiments/{stem}.tlx"), &[]);
    assert_eq!(yaml.to_canonical_json(), tlx.to_canonical_json(), "{stem}: the two forms differ");
}

#[test]
fn quickstart_twins_agree() {
    assert_twins("quickstart");
}

#[test]
fn grokking_ticket_twins_agree() {
    assert_twins("grokking_ticket");
}

#[test]
fn quickstart_lowers_to_the_expected_graph() {
    let ir = load_ok("experiments/quickstart.yaml", &[]);
    let names: Vec<&str> = ir.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["data", "init", "dense", "mask", "ticket", "ticket_train", "compare"]);
    let dense = ir.stage("dense").unwrap();
    // Defaults are filled: the file does not set checkpoint_every.
    assert_eq!(dense.params["checkpoint_every"], 0);
    assert_eq!(dense.params["beta2"], 0.98);
    assert_eq!(dense.seed, ticketlab_core::seed::derive(0, "dense"));
    assert!(dense.sweep.is_empty());
    let ticket = ir.stage("ticket").unwrap();
    assert_eq!(ticket.plugin, None);
    assert_eq!(ticket.params["mode"], "rewind");
    assert_eq!(ticket.inputs["from"], ["dense"]);
    assert_eq!(ticket.inputs["mask"], ["mask"]);
    let mask = ir.stage("mask").unwrap();
    assert_eq!(mask.params["scope"], "global");
    assert_eq!(ir.stage("compare").unwrap().inputs["runs"], ["dense", "ticket_train"]);
}

#[test]
fn overrides_apply_before_checking() {
    let ir =
        load_ok("experiments/quickstart.tlx", &["dense.steps=60", "mask.rate=0.3", "dense.resume_every=20", "seed=4"]);
    assert_eq!(ir.seed, 4);
    assert_eq!(ir.stage("dense").unwrap().params["steps"], 60);
    assert_eq!(ir.stage("dense").unwrap().params["resume_every"], 20);
    assert_eq!(ir.stage("mask").unwrap().params["rate"], 0.3);
    assert_eq!(ir.stage("mask").unwrap().seed, ticketlab_core::seed::derive(4, "mask"));
}
