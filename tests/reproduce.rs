//! `ticketlab reproduce`: every experiment file of a folder over one store, then the generated
//! part of its RESULTS.md, the same from the same runs, with the hand-written text kept, and
//! the sections of experiments whose runs are not at hand kept as they were.

use std::path::Path;

use crate::cli::{root, stderr, stdout, ticketlab};

/// The quickstart at a few steps under the name `name`, with `claims` appended.
fn tiny_quickstart(name: &str, claims: &str) -> String {
    let text = std::fs::read_to_string(root().join("experiments/quickstart.yaml")).unwrap();
    let text = text
        .replace("name: quickstart", &format!("name: {name}"))
        .replace("steps: 4000", "steps: 60")
        .replace("eval_every: 25", "eval_every: 20");
    format!("{text}{claims}")
}

const CLAIM: &str = "claims:\n  as_written:\n    text: Both arms trained as the file says\n    holds: dense.steps == 60 and ticket_train.steps == 60\n";

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn reproduce_runs_every_file_over_one_store_and_writes_the_page() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let exp = cwd.join("exp");
    std::fs::create_dir(&exp).unwrap();
    std::fs::write(exp.join("a.yaml"), tiny_quickstart("a", CLAIM)).unwrap();
    std::fs::write(exp.join("b.yaml"), tiny_quickstart("b", "")).unwrap();
    let intro = "# Results\n\nWritten by hand before.\n";
    std::fs::write(exp.join("RESULTS.md"), intro).unwrap();
    let args = ["reproduce", "exp", "--store", "store", "--runs", "runs", "--jobs", "1", "--quiet"];

    let out = ticketlab(&args, cwd);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // One store: b's stages are a's, so b computes nothing.
    let said = stdout(&out);
    assert!(
        said.contains(
            "2 experiments in exp/RESULTS.md; 4 trainings (2 computed, 2 loaded from the store)"
        ),
        "{said}"
    );
    let page = read(&exp.join("RESULTS.md"));
    assert!(page.starts_with(intro), "the hand-written text stays: {page}");
    assert!(
        page.contains(
            "| a | `as_written` | Both arms trained as the file says | **holds** (all) |"
        ),
        "{page}"
    );
    assert!(
        page.contains("ticketlab run exp/a.yaml --store store --out runs/a --jobs 1 --force"),
        "{page}"
    );
    assert!(page.contains("## b (`exp/b.yaml`)"), "{page}");
    // Every figure the page shows exists.
    let linked: Vec<&str> =
        page.split("](figures/").skip(1).filter_map(|rest| rest.split(')').next()).collect();
    assert!(linked.len() >= 8, "{linked:?}");
    for file in &linked {
        assert!(exp.join("figures").join(file).is_file(), "{file} is linked and missing");
    }

    // Hand-written text after the generated part stays too, and regenerating from the same
    // runs gives the same page and figures, running nothing.
    std::fs::write(exp.join("RESULTS.md"), format!("{page}\nWritten by hand after.\n")).unwrap();
    let manifest = read(&cwd.join("runs/a/manifest.json"));
    let again = ticketlab(&["reproduce", "exp", "--runs", "runs", "--no-run"], cwd);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let regenerated = read(&exp.join("RESULTS.md"));
    assert_eq!(regenerated, format!("{page}\nWritten by hand after.\n"));
    assert_eq!(read(&cwd.join("runs/a/manifest.json")), manifest, "--no-run runs nothing");
    let svg = read(&exp.join("figures").join(linked[0]));
    ticketlab(&["reproduce", "exp", "--runs", "runs", "--no-run"], cwd);
    assert_eq!(read(&exp.join("figures").join(linked[0])), svg);

    // An experiment whose run directory is not here (run elsewhere, or removed) keeps its
    // section and verdicts as the page had them: regenerating drops nothing computed.
    std::fs::rename(cwd.join("runs/a"), cwd.join("a-elsewhere")).unwrap();
    let without_a = ticketlab(&["reproduce", "exp", "--runs", "runs", "--no-run"], cwd);
    assert_eq!(without_a.status.code(), Some(0), "{}", stderr(&without_a));
    assert!(
        stdout(&without_a)
            .contains("kept as the page had them (no finished run directory here): a"),
        "{}",
        stdout(&without_a)
    );
    assert_eq!(read(&exp.join("RESULTS.md")), regenerated);
    std::fs::rename(cwd.join("a-elsewhere"), cwd.join("runs/a")).unwrap();

    // A file that cannot run fails the command (exit 1) after the others ran and the page
    // was written; an unknown --only is refused before anything runs.
    std::fs::write(exp.join("c.yaml"), "name: c\nstages: {\n").unwrap();
    let failing = ticketlab(&args, cwd);
    assert_eq!(failing.status.code(), Some(1), "{}", stderr(&failing));
    assert!(stderr(&failing).contains("c: "), "{}", stderr(&failing));
    assert!(stdout(&failing).contains("not on the page (no finished run directory): c"));
    let unknown = ticketlab(&["reproduce", "exp", "--only", "d"], cwd);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("the experiments there are: a, b, c"),
        "{}",
        stderr(&unknown)
    );
}
