//! The live log: `live.jsonl` grows while a run trains, `ticketlab watch` follows it until the
//! run finishes, is stopped, or its process is gone, and `ticketlab report` writes a partial
//! report from it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::{root, stderr, stdout, ticketlab, with};

fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

#[test]
fn the_live_log_grows_while_the_run_trains_and_watch_follows_it() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let set: Vec<String> = ["dense.steps=3000", "dense.eval_every=10", "ticket_train.steps=40"]
        .iter()
        .flat_map(|s| ["--set".to_string(), s.to_string()])
        .collect();
    let mut args = vec!["run", file.to_str().unwrap(), "--out", "out", "--quiet", "--jobs", "1"];
    args.extend(set.iter().map(String::as_str));
    let mut child = Command::new(env!("CARGO_BIN_EXE_ticketlab"))
        .args(&args)
        .current_dir(cwd.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = cwd.path().join("out/live.jsonl");
    let manifest = cwd.path().join("out/manifest.json");
    // Read while it trains: the log has evaluations before the run directory is finished, and
    // more of them later.
    let deadline = Instant::now() + Duration::from_secs(120);
    while lines(&log) < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let early = lines(&log);
    assert!(early >= 20 && !manifest.exists(), "{early} lines before the end");
    let once = ticketlab(&["watch", "out", "--once"], cwd.path());
    assert_eq!(once.status.code(), Some(0), "{}", stderr(&once));
    assert!(
        stdout(&once).contains("/3000") && stdout(&once).contains("dense"),
        "{}",
        stdout(&once)
    );
    // A report of the run as it stands, marked partial.
    let report = ticketlab(&["report", "out"], cwd.path());
    assert_eq!(report.status.code(), Some(0), "{}", stderr(&report));
    let partial = std::fs::read_to_string(cwd.path().join("out/report.md")).unwrap();
    if !manifest.exists() {
        assert!(partial.starts_with("# quickstart (partial)"), "{partial}");
        assert!(partial.contains("is still going") && partial.contains("dense"), "{partial}");
        assert!(cwd.path().join("out/figures/accuracy.svg").is_file());
    }
    while !manifest.exists() && lines(&log) == early && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(lines(&log) > early || manifest.exists(), "the log grows");
    let watched = ticketlab(&["watch", "out", "--every", "0.2"], cwd.path());
    assert!(child.wait().unwrap().success());
    assert_eq!(watched.status.code(), Some(0), "{}", stderr(&watched));
    let shown = stdout(&watched);
    assert!(shown.contains("finished; the report is out/report.md"), "{shown}");
    assert!(shown.contains("3000/3000") && shown.contains("40/40"), "{shown}");

    // A stopped run: watch says how to resume it.
    let tiny = crate::cli::tiny();
    let cut = ticketlab(
        &with(
            &["run", file.to_str().unwrap(), "--out", "cut", "--interrupt-after-steps", "20"],
            &tiny,
        ),
        cwd.path(),
    );
    assert_eq!(cut.status.code(), Some(3), "{}", stderr(&cut));
    let stopped = ticketlab(&["watch", "cut"], cwd.path());
    assert_eq!(stopped.status.code(), Some(0), "{}", stderr(&stopped));
    assert!(stdout(&stopped).contains("resume with: ticketlab run"), "{}", stdout(&stopped));

    // A run whose process is gone without finishing: exit 1, saying so.
    let marker_path = cwd.path().join("cut/in_progress.json");
    let mut marker: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&marker_path).unwrap()).unwrap();
    let mut dead = Command::new("true").spawn().unwrap();
    dead.wait().unwrap();
    marker["interrupted"] = serde_json::Value::Null;
    marker["pid"] = dead.id().into();
    std::fs::write(&marker_path, marker.to_string()).unwrap();
    let gone = ticketlab(&["watch", "cut"], cwd.path());
    assert_eq!(gone.status.code(), Some(1), "{}", stderr(&gone));
    assert!(stderr(&gone).contains("ended without finishing"), "{}", stderr(&gone));

    // Not a run directory with a live log: exit 2.
    std::fs::create_dir(cwd.path().join("empty")).unwrap();
    assert_eq!(ticketlab(&["watch", "empty"], cwd.path()).status.code(), Some(2));
}
