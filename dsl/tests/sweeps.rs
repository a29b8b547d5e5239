//! Sweep expansion: point counts, names, parameters, wiring, seeds and order; the command
//! line's sweep flags; and the stability of seeds and cache keys when stages are added.

use crate::common;

use std::collections::{BTreeMap, HashSet};

use ticketlab_api::ir::{ExperimentIr, StageKind, written_name};
use ticketlab_api::runtime::Runtime;
use ticketlab_api::seed::derive;
use ticketlab_dsl::CliOverrides;
use ticketlab_engine::plan;

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
            assert!(
                seen.contains(producer.as_str()),
                "{} uses {producer} before it exists",
                s.name
            );
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
        assert_eq!(
            compare.inputs["runs"],
            ["dense".to_string(), format!("ticket_train[mask.rate={rate}]")]
        );
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
        assert_eq!(
            dense.seed,
            derive(root, "dense"),
            "the repeat is in the root seed, not the name"
        );
        assert_eq!(dense.inputs["model"], [format!("init@seed{root}")]);
    }
    assert!(ir.stages.iter().all(|s| s.name.contains("@seed")));
}

#[test]
fn seeds_start_at_the_root_seed_and_combine_with_grids() {
    let base = String::from_utf8(common::read("experiments/quickstart.yaml"))
        .unwrap()
        .replace("seed: 0", "seed: 10");
    let text = format!("{base}sweep:\n  grid: {{ mask.rate: [0.3, 0.6] }}\n  seeds: 2\n");
    let ir = common::load_text("experiments/sweep.yaml", &text)
        .unwrap_or_else(|d| panic!("{}", d.render()));
    assert_well_formed(&ir);
    assert_eq!(ir.stages.len(), 2 * (3 + 4 * 2));
    let m = ir.stage("mask[mask.rate=0.3]@seed11").unwrap();
    assert_eq!(m.seed, derive(11, "mask[mask.rate=0.3]"));
    assert_eq!(m.inputs["from"], ["dense@seed11"]);
    assert!(ir.stage("dense@seed10").is_some());
    assert!(ir.stage("dense@seed0").is_none());
}

#[test]
fn the_first_seed_repeat_is_the_unrepeated_experiment() {
    let single = quickstart_with("  grid: { mask.rate: [0.3] }\n");
    let repeated = quickstart_with("  grid: { mask.rate: [0.3] }\n  seeds: 2\n");
    let registry = common::registry();
    let keys = |ir: &ExperimentIr| -> BTreeMap<String, (StageKind, String)> {
        let p = plan(ir, &registry, None, &Runtime::default()).unwrap();
        p.stages
            .iter()
            .map(|s| {
                (
                    s.stage.name.trim_end_matches("@seed0").to_string(),
                    (s.stage.kind, s.key.to_string()),
                )
            })
            .collect()
    };
    let (one, two) = (keys(&single), keys(&repeated));
    for (name, (kind, key)) in &one {
        let repeated_key = &two[name].1;
        if *kind == StageKind::Report {
            // The report names the runs it compares (`dense@seed0`), so it is its own result.
            assert_ne!(repeated_key, key, "{name}");
        } else {
            assert_eq!(repeated_key, key, "{name} is cached for `--seeds 2`");
        }
    }
    assert_eq!(two.len(), 2 * one.len());
}

#[test]
fn written_name_recovers_the_file_name_of_every_copy() {
    let ir = quickstart_with(
        "  grid: { mask.rate: [0.3, 0.6], data.op: [add, subtract] }\n  seeds: 2\n",
    );
    let written: std::collections::BTreeSet<&str> =
        ir.stages.iter().map(|s| written_name(&s.name)).collect();
    assert_eq!(
        written.into_iter().collect::<Vec<_>>(),
        ["compare", "data", "dense", "init", "mask", "ticket", "ticket_train"]
    );
    assert!(
        ir.stages.iter().any(|s| s.name.contains('[') && s.name.contains("@seed")),
        "{:?}",
        names(&ir)
    );
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
    let tlx = common::load_text("experiments/sweep.tlx", &tlx)
        .unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(yaml.to_canonical_json(), tlx.to_canonical_json());
    assert!(yaml.stage("mask[mask.scope=\"layerwise\"]@seed1").is_some());
}

/// The quickstart with `sweep` (YAML lines under `sweep:`, or none) and command-line changes.
fn quickstart_cli(
    sweep: &str,
    cli: &CliOverrides,
) -> Result<ExperimentIr, ticketlab_dsl::Diagnostics> {
    let base = String::from_utf8(common::read("experiments/quickstart.yaml")).unwrap();
    let text = if sweep.is_empty() { base } else { format!("{base}sweep:\n{sweep}") };
    ticketlab_dsl::load_source_with(
        "experiments/sweep.yaml",
        text.as_bytes(),
        &common::registry(),
        cli,
    )
}

fn flags(grid: &[&str], zip: &[&str], seeds: Option<u64>) -> CliOverrides {
    let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    CliOverrides { grid: own(grid), zip: own(zip), seeds, ..CliOverrides::default() }
}

fn json(ir: &ExperimentIr) -> String {
    ir.to_canonical_json()
}

/// The messages and help texts of every problem, one per line (unwrapped, unlike the rendering).
fn messages(d: &ticketlab_dsl::Diagnostics) -> String {
    d.items()
        .iter()
        .map(|i| format!("{}\n{}\n", i.message, i.help.as_deref().unwrap_or("")))
        .collect()
}

#[test]
fn sweep_flags_give_the_same_stages_as_the_file() {
    let file = quickstart_with(
        "  grid: { mask.rate: [0.3, 0.6] }\n  zip: { dense.lr: [0.001, 0.003], dense.steps: [100, 200] }\n  seeds: 2\n",
    );
    let cli = quickstart_cli(
        "",
        &flags(
            &["mask.rate=[0.3, 0.6]"],
            &["dense.lr=[0.001,0.003]", "dense.steps=[100, 200]"],
            Some(2),
        ),
    )
    .unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(json(&cli), json(&file));
    assert_eq!(cli.stages.len(), 2 * (2 + 2 + 4 * 4));
    // Values are YAML: strings need no quotes.
    let scope = quickstart_cli("", &flags(&["mask.scope=[global, layerwise]"], &[], None)).unwrap();
    assert!(scope.stage("mask[mask.scope=\"layerwise\"]").is_some());
}

#[test]
fn sweep_flags_add_to_the_file_sweep_and_replace_its_axes() {
    let file =
        "  grid: { mask.rate: [0.3, 0.6, 0.9] }\n  zip: { dense.lr: [0.001, 0.003] }\n  seeds: 3\n";
    // A new grid axis multiplies the points; a new zip axis is paired with the file's.
    let more = quickstart_cli(
        file,
        &flags(&["ticket_train.steps=[100, 200]"], &["dense.steps=[10, 20]"], None),
    )
    .unwrap();
    let expected = quickstart_with(
        "  grid: { mask.rate: [0.3, 0.6, 0.9], ticket_train.steps: [100, 200] }\n  zip: { dense.lr: [0.001, 0.003], dense.steps: [10, 20] }\n  seeds: 3\n",
    );
    assert_eq!(json(&more), json(&expected));
    // Sweeping a parameter the file sweeps replaces its axis, wherever it was; --seeds replaces seeds.
    let replaced =
        quickstart_cli(file, &flags(&["mask.rate=[0.5]", "dense.lr=[0.01, 0.02]"], &[], Some(1)))
            .unwrap();
    let expected = quickstart_with("  grid: { mask.rate: [0.5], dense.lr: [0.01, 0.02] }\n");
    assert_eq!(json(&replaced), json(&expected));
    assert!(replaced.stage("mask[dense.lr=0.01,mask.rate=0.5]").is_some());
    assert!(replaced.stages.iter().all(|s| !s.name.contains("0.9") && !s.name.contains("@seed")));
    // A --zip axis must match the file's zip axes in length, and says so naming the flag.
    let d = messages(
        &quickstart_cli(file, &flags(&[], &["dense.steps=[10, 20, 30]"], None)).unwrap_err(),
    );
    assert!(
        d.contains("`dense.lr` has 2, `dense.steps` (from `--zip dense.steps=[10, 20, 30]`) has 3"),
        "{d}"
    );
}

#[test]
fn bad_sweep_flags_are_all_reported_naming_the_flag() {
    let cli = flags(
        &["mask.rate=[0.3, 1.5]", "nope.x=[1]", "mask.rate=0.3", "dense.lr=[0.1"],
        &["dense.stepz=[1, 2]", "dense.steps"],
        Some(0),
    );
    let d = quickstart_cli("", &cli).unwrap_err();
    let text = messages(&d);
    for needle in [
        "`--grid mask.rate=0.3`: expected a list of values in brackets",
        "`--grid dense.lr=[0.1`: the values `[0.1` are not valid YAML",
        "`--zip dense.steps`: expected `STAGE.PARAM=[VALUE, ...]`",
        "`--seeds 0`: the number of seed repeats must be at least 1",
        "invalid sweep value for `mask.rate` (from `--grid mask.rate=[0.3, 1.5]`)",
        "sweep key `nope.x` (from `--grid nope.x=[1]`) names stage `nope`",
        "sweep key `dense.stepz` (from `--zip dense.stepz=[1, 2]`): stage `dense` has no parameter `stepz`",
        "did you mean `steps`?",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert_eq!(d.len(), 7, "{text}");
    // The same flag twice sweeps the parameter twice.
    let twice = messages(
        &quickstart_cli("", &flags(&["mask.rate=[0.3]"], &["mask.rate=[0.6]"], None)).unwrap_err(),
    );
    assert!(
        twice.contains(
            "`mask.rate` is swept twice: by `--grid mask.rate=[0.3]` and by `--zip mask.rate=[0.6]`"
        ),
        "{twice}"
    );
}

#[test]
fn setting_a_swept_parameter_is_an_error_that_suggests_grid() {
    let cli = CliOverrides { set: vec!["mask.rate=0.3".into()], ..CliOverrides::default() };
    let d = messages(&quickstart_cli("  grid: { mask.rate: [0.3, 0.6] }\n", &cli).unwrap_err());
    assert!(d.contains("`--set mask.rate=0.3`: `mask.rate` is swept by the file"), "{d}");
    assert!(d.contains("`--grid mask.rate=[0.3]`"), "{d}");
    // Also when the axis comes from a flag; an unswept parameter of the same stage is fine.
    let cli = CliOverrides {
        set: vec!["mask.rate=0.3".into(), "mask.scope=layerwise".into()],
        grid: vec!["mask.rate=[0.5, 0.7]".into()],
        ..CliOverrides::default()
    };
    let d = quickstart_cli("", &cli).unwrap_err();
    assert_eq!(d.len(), 1, "{}", d.render());
    assert!(
        messages(&d).contains("`mask.rate` is swept by `--grid mask.rate=[0.5, 0.7]`"),
        "{}",
        d.render()
    );
    let cli = CliOverrides { set: vec!["mask.scope=layerwise".into()], ..cli };
    let ir = quickstart_cli("", &cli).unwrap();
    assert_eq!(ir.stage("mask[mask.rate=0.5]").unwrap().params["scope"], "layerwise");
}

/// Seed and cache key of every stage, as the planner computes them.
fn seeds_and_keys(ir: &ExperimentIr) -> BTreeMap<String, (u64, String)> {
    let plan = plan(ir, &common::registry(), None, &Runtime::default()).expect("plans");
    plan.stages
        .iter()
        .map(|p| (p.stage.name.clone(), (p.stage.seed, p.key.as_str().to_string())))
        .collect()
}

#[test]
fn adding_a_stage_changes_no_other_stage_seed_or_key() {
    let base = String::from_utf8(common::read("experiments/quickstart.yaml")).unwrap();
    // One stage first in the file, one last, reading stages that were there before.
    let added = base
        .replace("stages:\n", "stages:\n  extra_data: { kind: dataset, uses: sparse_parity }\n")
        + "  norms: { kind: analyze, uses: weight_norms, inputs: { runs: [dense, ticket_train] } }\n";
    for sweep in ["", "sweep:\n  grid: { mask.rate: [0.3, 0.6] }\n  seeds: 2\n"] {
        let before = common::load_text("a.yaml", &format!("{base}{sweep}"))
            .unwrap_or_else(|d| panic!("{}", d.render()));
        let after = common::load_text("b.yaml", &format!("{added}{sweep}"))
            .unwrap_or_else(|d| panic!("{}", d.render()));
        let (before, after) = (seeds_and_keys(&before), seeds_and_keys(&after));
        let new: Vec<&String> = after.keys().filter(|n| !before.contains_key(*n)).collect();
        assert!(
            !new.is_empty()
                && new.iter().all(|n| n.starts_with("extra_data") || n.starts_with("norms")),
            "{new:?}"
        );
        for (name, seed_and_key) in &before {
            assert_eq!(
                after.get(name),
                Some(seed_and_key),
                "{name} changed when stages were added"
            );
        }
    }
    // The comparison can fail: another root seed changes every seed and key.
    let reseeded = common::load_ok("experiments/quickstart.yaml", &["seed=1"]);
    let original = seeds_and_keys(&common::load_ok("experiments/quickstart.yaml", &[]));
    for (name, (seed, key)) in seeds_and_keys(&reseeded) {
        let (seed0, key0) = &original[&name];
        assert!(
            seed != *seed0 && key != *key0,
            "{name} kept its seed or key under another root seed"
        );
    }
}

/// `STAGE.uses` sweeps which plugin a stage uses: one copy per plugin, each with its own
/// parameters and defaults, combined with the other axes like any swept parameter; from the
/// file and from `--grid` alike.
#[test]
fn sweeping_uses_copies_the_stage_once_per_plugin() {
    let ir = quickstart_with("  grid: { mask.uses: [magnitude, snip], mask.rate: [0.3, 0.6] }\n");
    assert_well_formed(&ir);
    assert_eq!(ir.stages.len(), 3 + 4 * 4);
    for (uses, rate) in [("magnitude", "0.3"), ("snip", "0.6")] {
        let name = format!("mask[mask.rate={rate},mask.uses=\"{uses}\"]");
        let mask = ir.stage(&name).unwrap_or_else(|| panic!("{name} in {:?}", names(&ir)));
        assert_eq!(mask.plugin.as_deref(), Some(uses));
        assert_eq!(mask.params["rate"].to_string(), rate);
        assert!(!mask.params.contains_key("uses"));
        // snip's own parameter comes with its default; magnitude has none of its own.
        assert_eq!(mask.params.contains_key("batch"), uses == "snip", "{:?}", mask.params);
        let ticket = ir.stage(&format!("ticket[mask.rate={rate},mask.uses=\"{uses}\"]")).unwrap();
        assert_eq!(ticket.inputs["mask"], std::slice::from_ref(&mask.name));
    }
    let cli = quickstart_cli(
        "",
        &flags(&["mask.uses=[magnitude, snip]", "mask.rate=[0.3, 0.6]"], &[], None),
    )
    .unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(json(&cli), json(&ir));
}

/// A swept plugin is checked like the file's own: an unknown name (with a suggestion), a
/// rewind stage (no plugin), a parameter the stage gives that a swept plugin does not take,
/// and a swept parameter that a swept plugin does not take.
#[test]
fn sweeping_uses_is_checked_for_every_plugin() {
    let refused = |file: &str, grid: &[&str]| {
        messages(&quickstart_cli(file, &flags(grid, &[], None)).expect_err("refused"))
    };
    let d = refused("", &["mask.uses=[magnitude, snipp]"]);
    assert!(d.contains("no pruner plugin called `snipp`") && d.contains("snip"), "{d}");
    let d = refused("", &["ticket.uses=[magnitude]"]);
    assert!(d.contains("rewind stage `ticket` uses no plugin to sweep"), "{d}");
    let d = refused("", &["mask.uses=[snip, magnitude]", "mask.batch=[10, 20]"]);
    assert!(
        d.contains(
            "`mask.uses` and `mask.batch` do not combine: `magnitude` has no parameter `batch`"
        ),
        "{d}"
    );
    let base = String::from_utf8(common::read("experiments/quickstart.yaml")).unwrap();
    let with_batch = base.replace(
        "uses: magnitude\n    with: { rate: 0.6 }",
        "uses: snip\n    with: { rate: 0.6, batch: 8 }",
    );
    assert_ne!(with_batch, base);
    let d = messages(
        &common::load_text(
            "experiments/sweep.yaml",
            &format!("{with_batch}sweep:\n  grid: {{ mask.uses: [snip, magnitude] }}\n"),
        )
        .expect_err("refused"),
    );
    assert!(
        d.contains("unknown parameter `batch` in stage `mask` (prune/magnitude) (with `uses: magnitude`, swept by `mask.uses`)"),
        "{d}"
    );
}

/// `--set mask.uses=random` is the file with `uses: random`; a value that is not a name is
/// refused naming the flag.
#[test]
fn setting_uses_changes_the_plugin() {
    let set = |arg: &str| CliOverrides { set: vec![arg.to_string()], ..flags(&[], &[], None) };
    let ir =
        quickstart_cli("", &set("mask.uses=random")).unwrap_or_else(|d| panic!("{}", d.render()));
    let base = String::from_utf8(common::read("experiments/quickstart.yaml")).unwrap();
    let file = common::load_text(
        "experiments/sweep.yaml",
        &base.replace("uses: magnitude", "uses: random"),
    )
    .unwrap();
    assert_eq!(ir.stage("mask").unwrap().plugin.as_deref(), Some("random"));
    assert_eq!(json(&ir), json(&file));
    let d = messages(&quickstart_cli("", &set("mask.uses=[a, b]")).unwrap_err());
    assert!(d.contains("`--set mask.uses=[a, b]`: `uses` names a plugin"), "{d}");
}

/// `levels: N` on a prune stage is iterative magnitude pruning: level L prunes the run of
/// level L - 1 at the rate that keeps (1 - rate)^L of all weights, rewinds to the file's
/// run and retrains; every level is a copy named `[mask.level=L]`, and `levels` itself is
/// consumed (the prune parameters are those of a plain prune stage).
#[test]
fn levels_chain_prune_rewind_and_retrain() {
    let set = |args: &[&str]| CliOverrides {
        set: args.iter().map(|s| s.to_string()).collect(),
        ..flags(&[], &[], None)
    };
    let ir = quickstart_cli("", &set(&["mask.levels=3", "mask.rate=0.2"]))
        .unwrap_or_else(|d| panic!("{}", d.render()));
    assert_well_formed(&ir);
    assert_eq!(ir.stages.len(), 3 + 4 * 3);
    for (level, rate) in [(1, 0.2), (2, 0.36), (3, 0.488)] {
        let mask = ir.stage(&format!("mask[mask.level={level}]")).unwrap();
        assert_eq!(mask.params["rate"].as_f64(), Some(rate), "level {level}");
        assert!(!mask.params.contains_key("levels"));
        let from = if level == 1 {
            "dense".to_string()
        } else {
            format!("ticket_train[mask.level={}]", level - 1)
        };
        assert_eq!(mask.inputs["from"], [from]);
        let ticket = ir.stage(&format!("ticket[mask.level={level}]")).unwrap();
        assert_eq!(ticket.inputs["from"], ["dense"]);
        assert_eq!(ticket.inputs["mask"], std::slice::from_ref(&mask.name));
    }
    // Level 1 is the plain prune stage under another name: the same parameters and inputs.
    let plain = quickstart_cli("", &set(&["mask.rate=0.2"])).unwrap();
    let level1 = ir.stage("mask[mask.level=1]").unwrap();
    assert_eq!(level1.params, plain.stage("mask").unwrap().params);
    // A swept rate is each level's fraction of the remaining weights, per point.
    let swept =
        quickstart_cli("  grid: { mask.rate: [0.5, 0.2] }\n", &set(&["mask.levels=2"])).unwrap();
    let level2 = |rate: &str| swept.stage(&format!("mask[mask.level=2,mask.rate={rate}]")).unwrap();
    assert_eq!(level2("0.5").params["rate"].as_f64(), Some(0.75));
    assert_eq!(level2("0.2").params["rate"].as_f64(), Some(0.36));
    assert_eq!(level2("0.2").inputs["from"], ["ticket_train[mask.level=1,mask.rate=0.2]"]);
    // Levels combine with seeds: each repeat chains its own runs.
    let seeded = quickstart_cli("  seeds: 2\n", &set(&["mask.levels=2"])).unwrap();
    assert_eq!(
        seeded.stage("mask[mask.level=2]@seed1").unwrap().inputs["from"],
        ["ticket_train[mask.level=1]@seed1"]
    );
}

/// A levels chain needs its rewind and train stages and a `from` run, and cannot be swept.
#[test]
fn levels_are_checked() {
    let base = String::from_utf8(common::read("experiments/quickstart.yaml")).unwrap();
    let without_train = base
        .replace("  ticket_train:\n    kind: train", "  ticket_train:\n    kind: analyze")
        .replace("inputs: { runs: [dense, ticket_train] }", "inputs: { runs: [dense] }");
    let d = messages(
        &ticketlab_dsl::load_source_with(
            "experiments/imp.yaml",
            without_train.as_bytes(),
            &common::registry(),
            &CliOverrides { set: vec!["mask.levels=2".into()], ..flags(&[], &[], None) },
        )
        .expect_err("refused"),
    );
    assert!(
        d.contains(
            "`mask.levels = 2` (from `--set mask.levels=2`) needs one rewind stage reading this mask and one train stage"
        ),
        "{d}"
    );
    let d = messages(&quickstart_cli("", &flags(&["mask.levels=[1, 2]"], &[], None)).unwrap_err());
    assert!(d.contains("sweep key `mask.levels` cannot be swept"), "{d}");
}
