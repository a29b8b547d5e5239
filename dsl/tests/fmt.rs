//! Formatting round trips: AST -> text -> AST gives the same experiment, in both forms.

use crate::common;

use ticketlab_dsl::{Experiment, Format, format_ast, parse_source, parse_str};

fn parse(name: &str, text: &str) -> Experiment {
    parse_source(name, text.as_bytes()).unwrap_or_else(|d| panic!("{}", d.render())).0
}

/// Formats `ast` in both forms and checks that each parses back to an experiment that formats
/// to the same text in both forms.
fn assert_round_trips(ast: &Experiment, what: &str) {
    let yaml = format_ast(ast, Format::Yaml);
    let tlx = format_ast(ast, Format::Tlx);
    for (text, format, name) in [(&yaml, Format::Yaml, "x.yaml"), (&tlx, Format::Tlx, "x.tlx")] {
        let back = parse_str(text, format, name.as_ref())
            .unwrap_or_else(|d| {
                panic!("{what}: formatted {name} does not parse:\n{}\n{text}", d.render())
            })
            .0;
        assert_eq!(format_ast(&back, Format::Yaml), yaml, "{what} via {name}");
        assert_eq!(format_ast(&back, Format::Tlx), tlx, "{what} via {name}");
    }
}

#[test]
fn shipped_experiments_round_trip() {
    let files = common::experiment_files();
    for rel in &files {
        let text = String::from_utf8(common::read(rel)).unwrap();
        let ast = parse(rel, &text);
        assert_round_trips(&ast, rel);
        // The formatted text lowers to the same IR as the file.
        let ir = common::load_ok(rel, &[]);
        for to in [Format::Yaml, Format::Tlx] {
            let name = if to == Format::Yaml { "f.yaml" } else { "f.tlx" };
            let again = common::load_text(name, &format_ast(&ast, to))
                .unwrap_or_else(|d| panic!("{}", d.render()));
            assert_eq!(again.to_canonical_json(), ir.to_canonical_json(), "{rel} as {name}");
        }
    }
}

#[test]
fn formatting_is_deterministic_and_matches_the_twin() {
    let files = common::experiment_files();
    let mut compared = 0;
    for rel in files.iter().filter(|f| f.ends_with(".yaml") || f.ends_with(".yml")) {
        let twin = format!("experiments/{}.tlx", common::stem(rel));
        if !files.contains(&twin) {
            continue; // twins.rs reports an experiment written in one form only
        }
        let yaml = parse(rel, &String::from_utf8(common::read(rel)).unwrap());
        let tlx = parse(&twin, &String::from_utf8(common::read(&twin)).unwrap());
        for to in [Format::Tlx, Format::Yaml] {
            let (a, b) = (format_ast(&yaml, to), format_ast(&tlx, to));
            assert_eq!(a, b, "{rel} and {twin} format differently as {to:?}");
            assert_eq!(a, format_ast(&yaml, to), "formatting {rel} is not deterministic");
        }
        compared += 1;
    }
    assert!(compared >= 2, "only {compared} experiments have both forms");
}

#[test]
fn awkward_names_and_strings_round_trip() {
    let text = r#"
name: odd
description: "quotes \" and\nnewlines, colons: and # hashes, unicode ✓"
seed: 7
plugins: [libs/libextra.so, "./a b.so"]
stages:
  seed:     { kind: dataset, uses: modular, with: { op: "yes", pairs: all } }
  "null":   { kind: model, uses: mlp, with: { hidden: [8, 16], bias: true, init_scale: 1e-3, prunable: ["1.0", "a: b"] }, inputs: { data: seed } }
  run:      { kind: train, uses: standard, with: { lr: -0.5, steps: 0, threshold: 1 }, inputs: { model: "null", data: seed } }
  norms:    { kind: analyze, uses: weight_norms, inputs: { runs: [run], models: ["null"] } }
sweep:
  grid: { run.lr: [0.1, 0.2] }
  zip: { run.steps: [1, 2], seed.p: [5, 7] }
  seeds: 2
"#;
    let ast = parse("odd.yaml", text);
    assert_eq!(ast.stages[0].name.node, "seed");
    assert_eq!(ast.stages[1].name.node, "null");
    assert!(ast.stages[3].inputs[0].list, "a one-element list stays a list");
    assert_round_trips(&ast, "odd.yaml");
    let tlx = format_ast(&ast, Format::Tlx);
    assert!(tlx.contains("stage \"seed\": dataset modular"), "{tlx}");
    let back = parse("odd.tlx", &tlx);
    assert_eq!(
        back.description.unwrap().node,
        "quotes \" and\nnewlines, colons: and # hashes, unicode ✓"
    );
    let values: Vec<_> = back.stages[1].with.iter().map(|p| p.value.node.clone()).collect();
    assert_eq!(values[2], serde_json::json!(0.001));
    assert_eq!(values[3], serde_json::json!(["1.0", "a: b"]));
}

#[test]
fn every_parseable_bad_file_round_trips() {
    let dir = common::root().join("tests/corpus/bad");
    let mut files: Vec<_> =
        std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    let mut parsed = 0;
    for path in files {
        // A `.tlx` file may repeat a stage, parameter or port, which YAML mappings cannot hold.
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("duplicate_")) {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        if let Ok((ast, _)) = parse_source(&path.display().to_string(), &bytes) {
            assert_round_trips(&ast, &path.display().to_string());
            parsed += 1;
        }
    }
    assert!(parsed >= 20, "only {parsed} bad files parse");
}
