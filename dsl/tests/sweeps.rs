//! Sweep expansion: point counts, names, parameters, wiring, seeds and order.

mod common;

use std::collections::HashSet;

use ticketlab_core::ir::ExperimentIr;
use ticketlab_core::seed::derive;

fn quickstart_with(sweep: &str) -> ExperimentIr {
    let base = String::from_utf8(common::read("experiments/quickstart.yaml")).unwrap();
    let text = format!("{base}sweep:\n{sweep}");
    common::load_text("experiments/sweep.yaml", &text).unwrap_or_else(|d| panic!("{}", d.render()))
}

fn names(ir: &ExperimentIr) -> Vec<&str> {
    ir.stages.iter().map(|s| s.name.as_str()).collect()
}

/// Every input is produced by an earlier stage, and names are unique.
fn assert_well_formed(ir: &ExperimentIr) {
    let mut seen = HashSet::new();
    for s in &ir.stages {
        for producer in s.inputs.values().flatten() {
            assert!(seen.contains(producer.as_str()), "{} uses {producer} before it exists", s.name);
        }
        assert!(seen.insert(s.name.as_str()), "{} twice", s.name);
    }
}

#[test]
fn grid_copies_the_swept_stage_and_everything_downstream() {
    let ir = quickstart_with("  grid: { mask.rate: [0.3, 0.6, 0.9] }\n");
    assert_well_formed(&ir);
    // data, init and dense are shared; mask, ticket, ticket_train and compare exist per point.
    assert_eq!(ir.stages.len(), 3 + 4 * 3);
    for shared in ["data", "init", "dense"] {
        assert!(ir.stage(shared).unwrap().sweep.is_empty());
    }
    for rate in ["0.3", "0.6", "0.9"] {
        let mask = ir.stage(&format!("mask[mask.rate={rate}]")).expect("one mask per point");
        assert_eq!(mask.params["rate"].to_string(), rate);
        assert_eq!(mask.sweep["mask.rate"].to_string(), rate);
        assert_eq!(mask.inputs["from"], ["dense"]);
        assert_eq!(mask.seed, derive(0, &mask.name));
        let ticket = ir.stage(&format!("ticket[mask.rate={rate}]")).unwrap();
        assert_eq!(ticket.inputs["mask"], std::slice::from_ref(&mask.name));
        let compare = ir.stage(&format!("compare[mask.rate={rate}]")).unwrap();
        assert_eq!(compare.inputs["runs"], ["dense".to_string(), format!("ticket_train[mask.rate={rate}]")]);
    }
    let seeds: HashSet<u64> = ir.stages.iter().map(|s| s.seed).collect();
    assert_eq!(seeds.len(), ir.stages.len(), "every stage has its own seed");
}

#[test]
fn grid_is_a_product_and_names_list_sorted_keys() {
    let ir = quickstart_with("  grid: { ticket_train.steps: [100, 200], mask.rate: [0.3, 0.6] }\n");
    assert_well_formed(&ir);
    // mask and ticket depend on mask.rate only; ticket_train and compare on both.
    assert_eq!(ir.stages.len(), 3 + 2 + 2 + 4 + 4);
    let t = ir.stage("ticket_train[mask.rate=0.6,ticket_train.steps=200]").expect("sorted keys");
    assert_eq!(t.params["steps"], 200);
    assert_eq!(t.inputs["model"], ["ticket[mask.rate=0.6]"]);
    assert_eq!(t.sweep.len(), 2);
    assert!(ir.stage("mask[mask.rate=0.6,ticket_train.steps=200]").is_none());
}

#[test]
fn zip_pairs_values() {
    let ir = quickstart_with("  zip: { mask.rate: [0.5, 0.7], ticket_train.steps: [100, 200] }\n");
    assert_well_formed(&ir);
    assert_eq!(ir.stages.len(), 3 + 4 * 2);
    assert!(ir.stage("ticket_train[mask.rate=0.5,ticket_train.steps=100]").is_some());
    assert!(ir.stage("ticket_train[mask.rate=0.7,ticket_train.steps=200]").is_some());
    assert!(ir.stage("ticket_train[mask.rate=0.5,ticket_train.steps=200]").is_none());
}

#[test]
fn grid_and_zip_combine() {
    let ir = quickstart_with(
        "  grid: { dense.lr: [0.001, 0.003] }\n  zip: { mask.rate: [0.5, 0.7], ticket_train.steps: [100, 200] }\n",
    );
    assert_well_formed(&ir);
    // data and init shared; dense x2; everything after x4.
    assert_eq!(ir.stages.len(), 2 + 2 + 4 * 4);
    let c = ir.stage("compare[dense.lr=0.003,mask.rate=0.7,ticket_train.steps=200]").unwrap();
    assert_eq!(c.inputs["runs"][0], "dense[dense.lr=0.003]");
}

#[test]
fn seeds_repeat_everything_with_shifted_root_seeds() {
    let ir = quickstart_with("  seeds: 3\n");
    assert_well_formed(&ir);
    assert_eq!(ir.stages.len(), 7 * 3);
    for root in 0..3u64 {
        let dense = ir.stage(&format!("dense@seed{root}")).unwrap();
        assert_eq!(dense.seed, derive(root, &dense.name));
        assert_eq!(dense.inputs["model"], [format!("init@seed{root}")]);
    }
    assert!(ir.stages.iter().all(|s| s.name.contains("@seed")));
}

#[test]
fn seeds_start_at_the_root_seed_and_combine_with_grids() {
    let base = String::from_utf8(common::read("experiments/quickstart.yaml")).unwrap().replace("seed: 0", "seed: 10");
    let text = format!("{base}sweep:\n  grid: {{ mask.rate: [0.3, 0.6] }}\n  seeds: 2\n");
    let ir = common::load_text("experiments/sweep.yaml", &text).unwrap_or_else(|d| panic!("{}", d.render()));
    assert_well_formed(&ir);
    assert_eq!(ir.stages.len(), 2 * (3 + 4 * 2));
    let m = ir.stage("mask[mask.rate=0.3]@seed11").unwrap();
    assert_eq!(m.seed, derive(11, "mask[mask.rate=0.3]@seed11"));
    assert_eq!(m.inputs["from"], ["dense@seed11"]);
    assert!(ir.stage("dense@seed10").is_some());
    assert!(ir.stage("dense@seed0").is_none());
}

#[test]
fn order_is_topological_with_ties_by_name_and_deterministic() {
    let sweep = "  grid: { mask.rate: [0.3, 0.6] }\n";
    let a = quickstart_with(sweep);
    let b = quickstart_with(sweep);
    assert_eq!(a.to_canonical_json(), b.to_canonical_json());
    // Among the stages whose inputs are all done, the smallest name comes first.
    assert_eq!(
        names(&a),
        [
            "data",
            "init",
            "dense",
            "mask[mask.rate=0.3]",
            "mask[mask.rate=0.6]",
            "ticket[mask.rate=0.3]",
            "ticket[mask.rate=0.6]",
            "ticket_train[mask.rate=0.3]",
            "compare[mask.rate=0.3]",
            "ticket_train[mask.rate=0.6]",
            "compare[mask.rate=0.6]",
        ]
    );
}

#[test]
fn sweeps_agree_across_forms() {
    let yaml = quickstart_with("  grid: { mask.scope: [global, layerwise] }\n  seeds: 2\n");
    let tlx_base = String::from_utf8(common::read("experiments/quickstart.tlx")).unwrap();
    let tlx = tlx_base.trim_end().strip_suffix('}').unwrap().to_string()
        + "  sweep grid { mask.scope = [\"global\", \"layerwise\"] }\n  sweep seeds = 2\n}\n";
    let tlx = common::load_text("experiments/sweep.tlx", &tlx).unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(yaml.to_canonical_json(), tlx.to_canonical_json());
    assert!(yaml.stage("mask[mask.scope=\"layerwise\"]@seed1").is_some());
}
