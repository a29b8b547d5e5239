//! Claims judged by every run: `claims.csv`, the report's claims table, `run --strict` and
//! `ticketlab claims DIR`, none of which computes anything again.

use std::path::Path;

use crate::cli::{root, stderr, stdout, ticketlab, tiny, with};

/// The quickstart with `claims` in place of its own, written into `dir` as `q.yaml`.
fn quickstart_claiming(dir: &Path, claims: &str) -> String {
    let text = std::fs::read_to_string(root().join("experiments/quickstart.yaml")).unwrap();
    let file = dir.join("q.yaml");
    std::fs::write(&file, format!("{text}claims:\n{claims}")).unwrap();
    file.display().to_string()
}

const HOLDS: &str = "  as_set:\n    text: The arms trained as long as the file says\n    holds: dense.steps == 60 and ticket_train.steps == 40\n";
const FAILS: &str = "  too_long:\n    holds: dense.steps > 100\n    seeds: majority\n";

/// Every file of `dir` (recursively) with its length, sorted.
fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path().display().to_string(), meta.len()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_run_judges_its_claims_and_strict_fails_on_a_failing_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (cwd, tiny) = (tmp.path(), tiny());
    let store = cwd.join("store").display().to_string();

    // Stored without claims first: stating them afterwards computes nothing.
    let plain = quickstart_claiming(cwd, "");
    let first = ticketlab(&with(&["run", &plain, "--store", &store, "--out", "plain"], &tiny), cwd);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(!cwd.join("plain/claims.csv").exists(), "no claims, no claims.csv");

    let file = quickstart_claiming(cwd, &format!("{HOLDS}{FAILS}"));
    let run = ticketlab(&with(&["run", &file, "--store", &store, "--out", "a"], &tiny), cwd);
    assert_eq!(
        run.status.code(),
        Some(0),
        "a failing claim fails only with --strict: {}",
        stderr(&run)
    );
    let out = stdout(&run);
    assert!(out.contains("0 ran") && out.contains("7 cached"), "claims are in no stage key: {out}");
    assert!(out.contains("claim as_set: holds (all)"), "{out}");
    assert!(out.contains("claim too_long: fails (majority)"), "{out}");

    let csv = std::fs::read_to_string(cwd.join("a/claims.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "claim,seed,reference,value,verdict");
    assert!(lines.contains(&"as_set,0,dense.steps,60,holds"), "{csv}");
    assert!(lines.contains(&"as_set,0,ticket_train.steps,40,holds"), "{csv}");
    assert!(lines.contains(&"as_set,overall,,all,holds"), "{csv}");
    assert!(lines.contains(&"too_long,0,dense.steps,60,fails"), "{csv}");
    assert!(lines.contains(&"too_long,overall,,majority,fails"), "{csv}");

    // The report opens with the claims, before "Did it grok?".
    for report in ["a/report.md", "a/report.html"] {
        let text = std::fs::read_to_string(cwd.join(report)).unwrap();
        let claims = text.find("Claims").unwrap_or_else(|| panic!("{report}: no claims"));
        assert!(claims < text.find("Did it grok?").unwrap(), "{report}");
        assert!(text.contains("The arms trained as long as the file says"), "{report}");
        assert!(text.contains("fails (majority)"), "{report}");
    }

    // --strict: exit 1 naming the claim, the run directory still written in full.
    let strict = ticketlab(
        &with(&["run", &file, "--store", &store, "--out", "b", "--strict", "-q"], &tiny),
        cwd,
    );
    assert_eq!(strict.status.code(), Some(1), "{}", stderr(&strict));
    assert!(stderr(&strict).contains("claim `too_long` fails"), "{}", stderr(&strict));
    assert!(!stderr(&strict).contains("as_set"), "{}", stderr(&strict));
    assert!(cwd.join("b/manifest.json").is_file() && cwd.join("b/claims.csv").is_file());
    let holding = quickstart_claiming(cwd, HOLDS);
    let strict = ticketlab(
        &with(&["run", &holding, "--store", &store, "--out", "c", "--strict", "-q"], &tiny),
        cwd,
    );
    assert_eq!(strict.status.code(), Some(0), "{}", stderr(&strict));

    // `claims DIR...`: the same verdicts from the run directories, nothing computed or written.
    let before = listing(cwd);
    let again = ticketlab(&["claims", "a", "c", "plain"], cwd);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    let out = stdout(&again);
    assert!(out.contains("claim too_long: fails (majority)"), "{out}");
    assert!(out.contains("(the experiment states no claims)"), "{out}");
    assert!(stderr(&again).contains("a: claim `too_long` fails"), "{}", stderr(&again));
    assert_eq!(listing(cwd), before, "`claims` writes nothing");
    let ok = ticketlab(&["claims", "c"], cwd);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let missing = ticketlab(&["claims", "nowhere"], cwd);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
}
