//! Rendered diagnostics for every file under `tests/corpus/bad/`, pinned as snapshots.
//!
//! A corpus file may start with `# set: STAGE.PARAM=VALUE`, `# grid: STAGE.PARAM=[...]`,
//! `# zip: STAGE.PARAM=[...]` and `# seeds: N` lines: those are applied as the command line's
//! `--set`, `--grid`, `--zip` and `--seeds` would. Every file must fail, and its rendering must
//! name the file by its path relative to the workspace root.

use crate::common;

use std::path::Path;

use ticketlab_dsl::CliOverrides;

fn overrides(bytes: &[u8]) -> CliOverrides {
    let text = String::from_utf8_lossy(bytes);
    let lines = |prefix: &str| -> Vec<String> {
        text.lines().filter_map(|l| l.strip_prefix(prefix)).map(str::to_string).collect()
    };
    CliOverrides {
        set: lines("# set: "),
        grid: lines("# grid: "),
        zip: lines("# zip: "),
        seeds: lines("# seeds: ")
            .first()
            .map(|n| n.trim().parse().expect("`# seeds:` takes a number")),
        ..CliOverrides::default()
    }
}

fn render(path: &Path) -> String {
    let rel = path.strip_prefix(common::root()).expect("corpus is inside the workspace");
    let rel = rel.to_string_lossy().replace('\\', "/");
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let registry = common::registry();
    match ticketlab_dsl::load_source_with(&rel, &bytes, &registry, &overrides(&bytes)) {
        Ok(_) => panic!("{rel} is in the bad corpus but passed the checker"),
        Err(d) => {
            let text = d.render();
            assert!(text.contains(&rel), "{rel}: the rendering does not name the file:\n{text}");
            assert!(!d.is_empty());
            text
        }
    }
}

#[test]
fn bad_corpus() {
    insta::glob!("../../tests/corpus/bad", "*.*", |path| {
        insta::assert_snapshot!(render(path));
    });
}

/// A required parameter left out. No built-in plugin has one, so the file is checked against
/// the built-ins plus a test plugin that has.
#[test]
fn required_parameter() {
    let text = "name: bad\nstages:\n  data: { kind: dataset, uses: tabular }\n";
    let registry = common::registry_with_required_param();
    let d = ticketlab_dsl::load_source("required_param.yaml", text.as_bytes(), &registry, &[])
        .unwrap_err();
    insta::assert_snapshot!(d.render());
    let with_path =
        "name: ok\nstages:\n  data: { kind: dataset, uses: tabular, with: { path: a.csv } }\n";
    let ir = ticketlab_dsl::load_source("ok.yaml", with_path.as_bytes(), &registry, &[])
        .unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(ir.stage("data").unwrap().params["path"], "a.csv");
}

/// No pinned rendering is left over from a corpus file that no longer exists.
#[test]
fn no_snapshot_outlives_its_corpus_file() {
    let corpus = common::root().join("tests/corpus/bad");
    let dir = common::root().join("dsl/tests/snapshots");
    for entry in std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(file) =
            name.strip_prefix("dsl__diagnostics__bad_corpus@").and_then(|n| n.strip_suffix(".snap"))
        {
            assert!(
                corpus.join(file).is_file(),
                "{name} pins tests/corpus/bad/{file}, which does not exist: delete it"
            );
        }
    }
}

#[test]
fn corpus_is_large_enough() {
    let dir = common::root().join("tests/corpus/bad");
    let files: Vec<_> = std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()).collect();
    let yaml = files.iter().filter(|f| f.path().extension().is_some_and(|e| e == "yaml")).count();
    let tlx = files.iter().filter(|f| f.path().extension().is_some_and(|e| e == "tlx")).count();
    assert!(yaml >= 15 && tlx >= 15, "{yaml} yaml and {tlx} tlx bad files");
}
