//! `extends`: a stage that takes another stage's recipe, in both forms, with `--set` and
//! `--set '*.PARAM=VALUE'`, its refusals located at the `extends` value, and `ticketlab fmt`.

use crate::common::{load_ok, load_text, read, registry};

use ticketlab_api::ir::ExperimentIr;
use ticketlab_dsl::diag::line_col;
use ticketlab_dsl::{Format, format, format_ast, load_source};

/// ticket_train as the quickstart writes it out in full, in each form.
const YAML_FULL: &str = "  ticket_train:
    kind: train
    uses: standard
    with: { steps: 4000, lr: 0.003, weight_decay: 1.0, eval_every: 25 }
    inputs: { model: ticket, data: data }
";
const TLX_FULL: &str = "  stage ticket_train: train standard(model = ticket, data = data) {
    steps = 4000, lr = 0.003, weight_decay = 1.0, eval_every = 25
  }
";

/// The quickstart with `ticket_train` taking `dense`'s recipe instead of repeating it.
fn quickstart_extending(form: Format, child: &str) -> String {
    let (file, full) = match form {
        Format::Yaml => ("experiments/quickstart.yaml", YAML_FULL),
        Format::Tlx => ("experiments/quickstart.tlx", TLX_FULL),
    };
    let text = String::from_utf8(read(file)).unwrap();
    assert!(text.contains(full), "{file} no longer writes ticket_train out in full");
    text.replace(full, child)
}

fn yaml_extending() -> String {
    quickstart_extending(
        Format::Yaml,
        "  ticket_train:\n    extends: dense\n    inputs: { model: ticket, data: data }\n",
    )
}

fn load_with(name: &str, text: &str, set: &[&str]) -> ExperimentIr {
    let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
    load_source(name, text.as_bytes(), &registry(), &set)
        .unwrap_or_else(|d| panic!("{}", d.render()))
}

/// The problems found, one a line: `file:line:column: message (help: ...)` at the first label.
fn errors(name: &str, text: &str, set: &[&str]) -> String {
    let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
    let Err(d) = load_source(name, text.as_bytes(), &registry(), &set) else {
        panic!("{name} was accepted:\n{text}")
    };
    let line = |p: &ticketlab_dsl::Diag| {
        let (l, c) = p.labels.first().map_or((0, 0), |(span, _)| line_col(text, span.start));
        let help = p.help.clone().unwrap_or_default().replace('\n', " ");
        format!("{name}:{l}:{c}: {} (help: {help})", p.message)
    };
    d.items().iter().map(line).collect::<Vec<_>>().join("\n")
}

/// `file:line:column` of the first occurrence of `needle` in `text` (plus `skip` bytes).
fn place(name: &str, text: &str, needle: &str, skip: usize) -> String {
    let at = text.find(needle).unwrap_or_else(|| panic!("`{needle}` not in the text")) + skip;
    let (line, col) = line_col(text, at);
    format!("{name}:{line}:{col}")
}

#[test]
fn a_recipe_shared_by_extends_gives_the_ir_of_the_file_written_out() {
    let full = load_ok("experiments/quickstart.yaml", &[]);
    let ir = load_text("quickstart.yaml", &yaml_extending())
        .unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(ir.to_canonical_json(), full.to_canonical_json());
    // Inputs are inherited too: ticket_train connects only `model`, and takes `data` from dense.
    let short = quickstart_extending(
        Format::Yaml,
        "  ticket_train:\n    extends: dense\n    inputs: { model: ticket }\n",
    );
    assert_eq!(load_with("q.yaml", &short, &[]), full);
    // The .tlx forms: kind and plugin from dense, or written (and equal).
    for child in [
        "  stage ticket_train extends dense(model = ticket)\n",
        "  stage ticket_train: train extends dense(model = ticket, data = data)\n",
        "  stage ticket_train: train standard extends dense(model = ticket) { lr = 0.003 }\n",
    ] {
        let text = quickstart_extending(Format::Tlx, child);
        assert_eq!(load_with("q.tlx", &text, &[]), full, "{child}");
    }
}

#[test]
fn what_the_stage_writes_wins_and_chains_resolve() {
    let text = quickstart_extending(
        Format::Yaml,
        "  ticket_train:\n    extends: dense\n    with: { steps: 1000 }\n    inputs: { model: ticket }\n  again:\n    extends: ticket_train\n    with: { lr: 0.001 }\n",
    );
    let ir = load_with("q.yaml", &text, &[]);
    let dense = ir.stage("dense").unwrap();
    let child = ir.stage("ticket_train").unwrap();
    let again = ir.stage("again").unwrap();
    assert_eq!(child.params["steps"], 1000);
    assert_eq!(child.params["lr"], dense.params["lr"]);
    assert_eq!(child.inputs["model"], ["ticket"]);
    assert_eq!(child.inputs["data"], ["data"]);
    assert_eq!(
        (again.params["steps"].clone(), again.params["lr"].clone()),
        (1000.into(), 0.001.into())
    );
    assert_eq!(again.inputs["model"], ["ticket"]);
    assert_eq!(again.plugin.as_deref(), Some("standard"));
    // Only the parameters differ from a stage written out in full: the seed is the stage's own.
    assert_ne!(again.seed, child.seed);
}

#[test]
fn set_applies_to_the_stage_named_and_reaches_the_stages_that_extend_it() {
    let text = yaml_extending();
    let ir = load_with("q.yaml", &text, &["dense.steps=100"]);
    assert_eq!(ir.stage("dense").unwrap().params["steps"], 100);
    assert_eq!(ir.stage("ticket_train").unwrap().params["steps"], 100, "inherited after --set");
    let ir = load_with("q.yaml", &text, &["ticket_train.steps=50"]);
    assert_eq!(ir.stage("dense").unwrap().params["steps"], 4000);
    assert_eq!(ir.stage("ticket_train").unwrap().params["steps"], 50);
    // A stage that writes the parameter keeps its own value.
    let own = quickstart_extending(
        Format::Yaml,
        "  ticket_train:\n    extends: dense\n    with: { steps: 2000 }\n    inputs: { model: ticket }\n",
    );
    let ir = load_with("q.yaml", &own, &["dense.steps=100"]);
    assert_eq!(ir.stage("ticket_train").unwrap().params["steps"], 2000);
    // `*.steps` reaches every stage that has the parameter, written or inherited; and
    // `--set STAGE.uses` on a stage that takes its plugin from another.
    let ir = load_with("q.yaml", &own, &["*.steps=100"]);
    for stage in ["dense", "ticket_train"] {
        assert_eq!(ir.stage(stage).unwrap().params["steps"], 100, "{stage}");
    }
    assert_eq!(
        load_with("q.yaml", &text, &["*.steps=100"]),
        load_ok("experiments/quickstart.yaml", &["*.steps=100"])
    );
}

#[test]
fn refusals_are_located_at_the_extends_value() {
    // Not a stage, with the closest name.
    let text = yaml_extending().replace("extends: dense", "extends: dnese");
    let err = errors("q.yaml", &text, &[]);
    assert!(err.contains("stage `ticket_train` extends `dnese`, which is not a stage"), "{err}");
    assert!(err.contains("did you mean `dense`?"), "{err}");
    assert!(err.contains(&place("q.yaml", &text, "extends: dnese", 9)), "{err}");
    // Nothing more about ticket_train, whose recipe is unknown.
    assert_eq!(err.lines().count(), 1, "{err}");

    // A cycle, named.
    let text = "name: c\nstages:\n  data: { kind: dataset, uses: modular }\n  a: { extends: b }\n  b: { extends: c }\n  c: { extends: a }\n";
    let err = errors("c.yaml", text, &[]);
    assert!(
        err.contains("stages extend each other in a cycle: a extends b extends c extends a"),
        "{err}"
    );
    assert!(err.contains(&place("c.yaml", text, "extends: a", 9)), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let err = errors("self.tlx", "experiment s {\n  stage a: dataset modular extends a\n}\n", &[]);
    assert!(err.contains("cycle: a extends a") && err.contains("self.tlx:2:36"), "{err}");

    // Another kind written than the stage extended has.
    let text = yaml_extending().replace("extends: dense", "kind: prune\n    extends: dense");
    let err = errors("q.yaml", &text, &[]);
    assert!(
        err.contains(
            "stage `ticket_train` is a `prune` stage but extends `dense`, a `train` stage"
        ),
        "{err}"
    );
    assert!(err.contains(&place("q.yaml", &text, "extends: dense", 9)), "{err}");
    // The same refusals in .tlx.
    let tlx =
        quickstart_extending(Format::Tlx, "  stage ticket_train extends dnese(model = ticket)\n");
    let err = errors("q.tlx", &tlx, &[]);
    assert!(err.contains("did you mean `dense`?"), "{err}");
    assert!(err.contains(&place("q.tlx", &tlx, "extends dnese", 8)), "{err}");
}

#[test]
fn a_problem_with_an_inherited_parameter_points_at_where_it_is_written() {
    let text = yaml_extending();
    // Reported once, at dense's value, for dense (ticket_train checks it alike).
    let err = errors("q.yaml", &text.replace("lr: 0.003", "lr: -1"), &[]);
    assert!(err.contains("invalid value for `dense.lr`"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // A stage with another plugin reports what its plugin does not take, at the parent's text.
    let text = "name: p\nstages:\n  data: { kind: dataset, uses: modular }\n  init: { kind: model, uses: mlp_modular, inputs: { data: data } }\n  snip: { kind: prune, uses: snip, with: { batch: 64, rate: 0.5 }, inputs: { from: init } }\n  mag: { extends: snip, uses: magnitude }\n";
    let err = errors("p.yaml", text, &[]);
    assert!(
        err.contains(
            "unknown parameter `batch` in stage `mag` (prune/magnitude) (inherited from `snip`)"
        ),
        "{err}"
    );
    assert!(err.contains(&place("p.yaml", text, "batch: 64", 0)), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Without it, `mag` is `snip`'s stage with magnitude scores.
    let ir = load_with("p.yaml", &text.replace("batch: 64, ", ""), &[]);
    let mag = ir.stage("mag").unwrap();
    assert_eq!(
        (mag.plugin.as_deref(), mag.params["rate"].clone()),
        (Some("magnitude"), 0.5.into())
    );
    assert_eq!(mag.inputs["from"], ["init"]);
    // A --set on the parent names itself in the inherited value's note.
    let popup = yaml_extending().replace("extends: dense", "extends: dense\n    uses: edge_popup");
    let err = errors("q.yaml", &popup, &["dense.optimizer=sgd"]);
    assert!(
        err.contains("unknown parameter `optimizer` in stage `ticket_train` (train/edge_popup) (from `--set dense.optimizer=sgd`, inherited from `dense`)"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn fmt_keeps_extends_in_both_forms() {
    let yaml = yaml_extending();
    let tlx = format("q.yaml", yaml.as_bytes(), Format::Tlx).unwrap();
    assert!(
        tlx.contains("  stage ticket_train extends dense(model = ticket, data = data)\n"),
        "{tlx}"
    );
    let back = format("q.tlx", tlx.as_bytes(), Format::Yaml).unwrap();
    assert!(back.contains("  ticket_train:\n    extends: dense\n    inputs: {"), "{back}");
    assert_eq!(format("b.yaml", back.as_bytes(), Format::Tlx).unwrap(), tlx);
    assert_eq!(load_with("b.yaml", &back, &[]), load_ok("experiments/quickstart.yaml", &[]));
    // A plugin of its own without a kind: `extends STAGE uses PLUGIN` in .tlx.
    let text = "name: p\nstages:\n  data: { kind: dataset, uses: modular }\n  init: { kind: model, uses: mlp_modular, inputs: { data: data } }\n  snip: { kind: prune, uses: snip, with: { rate: 0.5 }, inputs: { from: init } }\n  mag: { extends: snip, uses: magnitude }\n  kinded: { kind: prune, uses: random, extends: snip }\n";
    let (ast, _) = ticketlab_dsl::parse_source("p.yaml", text.as_bytes()).unwrap();
    let tlx = format_ast(&ast, Format::Tlx);
    assert!(tlx.contains("  stage mag extends snip uses magnitude\n"), "{tlx}");
    assert!(tlx.contains("  stage kinded: prune random extends snip\n"), "{tlx}");
    let (again, _) = ticketlab_dsl::parse_source("p.tlx", tlx.as_bytes()).unwrap();
    assert_eq!(format_ast(&again, Format::Yaml), format_ast(&ast, Format::Yaml));
    assert_eq!(load_with("p.tlx", &tlx, &[]), load_with("p.yaml", text, &[]));
    // `extends` is a reserved word in .tlx: a stage of that name is quoted.
    let odd = "name: o\nstages:\n  extends: { kind: dataset, uses: modular }\n  b: { extends: extends }\n";
    let (ast, _) = ticketlab_dsl::parse_source("o.yaml", odd.as_bytes()).unwrap();
    let tlx = format_ast(&ast, Format::Tlx);
    assert!(tlx.contains("stage b extends \"extends\"\n"), "{tlx}");
    assert_eq!(load_with("o.tlx", &tlx, &[]), load_with("o.yaml", odd, &[]));
}

#[test]
fn a_yaml_merge_key_overrides_part_of_a_shared_recipe() {
    let file = String::from_utf8(read("experiments/quickstart.yaml")).unwrap();
    let recipe = "with: { steps: 4000, lr: 0.003, weight_decay: 1.0, eval_every: 25 }";
    let merged = file.replacen(recipe, &format!("with: &recipe {}", &recipe[6..]), 1).replacen(
        recipe,
        "with: { <<: *recipe, steps: 1000 }",
        1,
    );
    let ir = load_with("q.yaml", &merged, &[]);
    assert_eq!(ir, load_ok("experiments/quickstart.yaml", &["ticket_train.steps=1000"]));
    let err = errors(
        "m.yaml",
        "name: m\nstages:\n  data: { kind: dataset, uses: modular, with: { <<: 3 } }\n",
        &[],
    );
    assert!(err.contains("invalid YAML merge key") && err.contains("m.yaml:3:49"), "{err}");
}

#[test]
fn a_sweep_axis_names_one_stage() {
    use ticketlab_dsl::{CliOverrides, load_source_with};
    let text = yaml_extending();
    let load = |grid: &[&str], zip: &[&str]| {
        let cli = CliOverrides {
            grid: grid.iter().map(|s| s.to_string()).collect(),
            zip: zip.iter().map(|s| s.to_string()).collect(),
            ..CliOverrides::default()
        };
        load_source_with("q.yaml", text.as_bytes(), &registry(), &cli)
            .unwrap_or_else(|d| panic!("{}", d.render()))
    };
    // `dense.lr` sweeps dense; ticket_train keeps the value written (in both copies).
    let ir = load(&["dense.lr=[0.001, 0.002]"], &[]);
    let lrs: Vec<_> = ir
        .stages
        .iter()
        .filter(|s| s.name.starts_with("ticket_train"))
        .map(|s| s.params["lr"].clone())
        .collect();
    assert_eq!(lrs, [serde_json::json!(0.003), serde_json::json!(0.003)]);
    // Zipped with `ticket_train.lr`, both move together.
    let ir = load(&[], &["dense.lr=[0.001, 0.002]", "ticket_train.lr=[0.001, 0.002]"]);
    for s in ir.stages.iter().filter(|s| s.name.starts_with("ticket_train")) {
        assert!(s.name.contains(&format!("ticket_train.lr={}", s.params["lr"])), "{}", s.name);
        assert!(s.name.contains(&format!("dense.lr={}", s.params["lr"])), "{}", s.name);
    }
}

/// What the README says of YAML aliases: a problem in a shared value is reported for each stage
/// that uses it, at that stage's `with` (the aliased text has no place of its own).
#[test]
fn a_problem_in_an_aliased_recipe_is_reported_for_each_stage_at_its_with() {
    let file = String::from_utf8(read("experiments/quickstart.yaml")).unwrap();
    let recipe = "with: { steps: 4000, lr: 0.003, weight_decay: 1.0, eval_every: 25 }";
    let anchored = file
        .replacen(recipe, &format!("with: &recipe {}", &recipe[6..]), 1)
        .replacen(recipe, "with: *recipe", 1)
        .replace("lr: 0.003", "lr: -1");
    let err = errors("q.yaml", &anchored, &[]);
    assert_eq!(err.lines().count(), 2, "{err}");
    let dense =
        format!("{}: invalid value for `dense.lr`", place("q.yaml", &anchored, "with: &", 0));
    let child = format!(
        "{}: invalid value for `ticket_train.lr`",
        place("q.yaml", &anchored, "with: *", 0)
    );
    assert!(err.contains(&dense) && err.contains(&child), "{err}");
}

/// A chain of stages as long as a file can be neither overflows the stack nor takes long, and
/// a stage extending one the front end could not read says nothing more.
#[test]
fn long_chains_and_unreadable_stages() {
    let n = 20_000;
    let mut text = String::from(
        "name: long\nstages:\n  s0: { kind: dataset, uses: modular, with: { p: 7 } }\n",
    );
    for i in 1..n {
        text.push_str(&format!("  s{i}: {{ extends: s{} }}\n", i - 1));
    }
    let started = std::time::Instant::now();
    let ir = load_with("long.yaml", &text, &[]);
    assert_eq!(ir.stages.len(), n);
    assert_eq!(ir.stage(&format!("s{}", n - 1)).unwrap().params["p"], 7);
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
    // A cycle at the end of the chain: one problem, for the whole chain.
    let cyclic = text
        .replace("s0: { kind: dataset, uses: modular, with: { p: 7 } }", "s0: { extends: s19999 }");
    let err = errors("long.yaml", &cyclic, &[]);
    assert_eq!(err.lines().count(), 1, "{}", &err[..err.len().min(500)]);

    // `base` has no kind: it is reported once; `child` (extending it) is not reported again,
    // nor is `user`'s reference to it.
    let text = "name: g\nstages:\n  base: { uses: modular }\n  child: { extends: base }\n  user: { kind: model, uses: mlp_modular, inputs: { data: child } }\n";
    let err = errors("g.yaml", text, &[]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("stage `base` has no `kind`"), "{err}");
    // `base`'s parameters could not be read: `child` is not told it misses one.
    let text = "name: g\nstages:\n  base: { kind: dataset, uses: tabular, with: [1] }\n  child: { extends: base }\n";
    let d = ticketlab_dsl::load_source(
        "g.yaml",
        text.as_bytes(),
        &crate::common::registry_with_required_param(),
        &[],
    )
    .unwrap_err();
    assert_eq!(d.len(), 1, "{}", d.render());
}
