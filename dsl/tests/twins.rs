//! Every experiment in `experiments/` (found by listing the directory) lowers to its pinned
//! IR, and its YAML and `.tlx` forms lower to the same IR, byte for byte.

use crate::common;

use std::collections::BTreeMap;

use common::load_ok;

/// The canonical JSON of each experiment file's IR, by file.
fn irs() -> BTreeMap<String, String> {
    common::experiment_files()
        .into_iter()
        .map(|rel| (rel.clone(), load_ok(&rel, &[]).to_canonical_json()))
        .collect()
}

#[test]
fn every_experiment_lowers_to_its_snapshot() {
    for (rel, json) in irs() {
        let file = rel.strip_prefix("experiments/").unwrap();
        insta::with_settings!({ input_file => common::root().join(&rel), description => format!("the IR of {rel}") }, {
            insta::assert_snapshot!(format!("ir@{file}"), json);
        });
    }
}

#[test]
fn every_experiment_has_both_forms_and_they_agree() {
    let mut by_stem: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (rel, json) in irs() {
        by_stem.entry(common::stem(&rel)).or_default().push((rel, json));
    }
    for (stem, forms) in &by_stem {
        let names: Vec<&str> = forms.iter().map(|(rel, _)| rel.as_str()).collect();
        let has = |ext: &[&str]| names.iter().any(|n| ext.iter().any(|e| n.ends_with(e)));
        assert!(
            has(&[".yaml", ".yml"]) && has(&[".tlx"]),
            "experiments/{stem} is written in one form only ({names:?}); write its twin with `ticketlab fmt FILE --to yaml|tlx`"
        );
        let (first, first_json) = &forms[0];
        for (rel, json) in &forms[1..] {
            assert_eq!(json, first_json, "{first} and {rel} lower to different IR");
        }
    }
}

/// No pinned IR is left over from an experiment that no longer exists.
#[test]
fn no_snapshot_outlives_its_experiment() {
    let files = common::experiment_files();
    let dir = common::root().join("dsl/tests/snapshots");
    for entry in std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(file) =
            name.strip_prefix("dsl__twins__ir@").and_then(|n| n.strip_suffix(".snap"))
        {
            assert!(
                files.contains(&format!("experiments/{file}")),
                "{name} pins experiments/{file}, which does not exist: delete it"
            );
        }
    }
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
    assert_eq!(dense.seed, ticketlab_api::seed::derive(0, "dense"));
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
    let ir = load_ok(
        "experiments/quickstart.tlx",
        &["dense.steps=60", "mask.rate=0.3", "dense.resume_every=20", "seed=4"],
    );
    assert_eq!(ir.seed, 4);
    assert_eq!(ir.stage("dense").unwrap().params["steps"], 60);
    assert_eq!(ir.stage("dense").unwrap().params["resume_every"], 20);
    assert_eq!(ir.stage("mask").unwrap().params["rate"], 0.3);
    assert_eq!(ir.stage("mask").unwrap().seed, ticketlab_api::seed::derive(4, "mask"));
}
