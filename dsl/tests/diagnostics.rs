//! Rendered diagnostics for every file under `tests/corpus/bad/`, pinned as snapshots.
//!
//! A corpus file may start with `# set: STAGE.PARAM=VALUE` lines: those overrides are applied
//! as `--set` would. Every file must fail, and its rendering must name the file by its path
//! relative to the workspace root.

mod common;

use std::path::Path;

fn overrides(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes).lines().filter_map(|l| l.strip_prefix("# set: ")).map(str::to_string).collect()
}

fn render(path: &Path) -> String {
    let rel = path.strip_prefix(common::root()).expect("corpus is inside the workspace");
    let rel = rel.to_string_lossy().replace('\\', "/");
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let registry = common::registry();
    match ticketlab_dsl::load_source(&rel, &bytes, &registry, &overrides(&bytes)) {
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

#[test]
fn corpus_is_large_enough() {
    let dir = common::root().join("tests/corpus/bad");
    let files: Vec<_> = std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()).collect();
    let yaml = files.iter().filter(|f| f.path().extension().is_some_and(|e| e == "yaml")).count();
    let tlx = files.iter().filter(|f| f.path().extension().is_some_and(|e| e == "tlx")).count();
    assert!(yaml >= 15 && tlx >= 15, "{yaml} yaml and {tlx} tlx bad files");
}
