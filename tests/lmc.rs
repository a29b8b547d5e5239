//! Linear mode connectivity (`lmc`) and the trainer's `data_seed`, end to end: two copies of a
//! minibatch training from one model that differ only in their data order, the line between
//! them, and the error barrier by its definition.

use std::path::Path;

use serde_json::Value;

use crate::cli::{stderr, ticketlab};

const LMC: &str = "name: lmc_tiny
stages:
  data: { kind: dataset, uses: modular, with: { op: add, p: 31, pairs: all, train_fraction: 0.4 } }
  init: { kind: model, uses: mlp_modular, with: { d_emb: 32, width: 24 }, inputs: { data: data } }
  a: { kind: train, uses: standard, with: &recipe { steps: 120, lr: 0.003, weight_decay: 1.0, eval_every: 40, batch_size: 64, data_seed: 1 }, inputs: { model: init, data: data } }
  a_again: { kind: train, uses: standard, with: *recipe, inputs: { model: init, data: data } }
  b: { kind: train, uses: standard, with: { steps: 120, lr: 0.003, weight_decay: 1.0, eval_every: 40, batch_size: 64, data_seed: 2 }, inputs: { model: init, data: data } }
  line: { kind: analyze, uses: lmc, with: { points: 5 }, inputs: { runs: [a, b], data: data } }
  same: { kind: analyze, uses: lmc, with: { points: 3 }, inputs: { runs: [a, a_again], data: data } }
";

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn the_line_between_two_data_orders_ends_at_each_run_and_its_barrier_is_peak_over_mean() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("lmc.yaml"), LMC).unwrap();
    let o = ticketlab(&["run", "lmc.yaml", "--quiet", "--out", "out"], cwd.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = cwd.path().join("out");
    let summary = json(&out.join("summary.json"));
    let arm = |name: &str| {
        summary["arms"].as_array().unwrap().iter().find(|a| a["arm"] == name).unwrap().clone()
    };
    // `data_seed` alone sets the order: two stages with one value train alike, another differs.
    for key in ["final_train_loss", "final_test_loss", "l2"] {
        assert_eq!(arm("a")[key], arm("a_again")[key], "{key}");
    }
    assert_ne!(arm("a")["final_train_loss"], arm("b")["final_train_loss"]);

    let line = json(&out.join("analyses/line.json"));
    assert_eq!(floats(&line["alpha"]), [0.0, 0.25, 0.5, 0.75, 1.0]);
    assert_eq!(line["masked"], false);
    for (split, (first, last)) in [("train", (0, 4)), ("test", (0, 4))] {
        let error = floats(&line[split]["error"]);
        let loss = floats(&line[split]["loss"]);
        // The ends are the two runs' own final evaluations.
        for (end, name) in [(first, "a"), (last, "b")] {
            let acc = arm(name)[format!("final_{split}_acc")].as_f64().unwrap();
            assert!((error[end] - (1.0 - acc)).abs() < 1e-12, "{split} {name}");
            let run_loss = arm(name)[format!("final_{split}_loss")].as_f64().unwrap();
            assert!((loss[end] - run_loss).abs() <= 1e-6 * run_loss.abs(), "{split} {name}");
        }
        let peak = error.iter().copied().fold(f64::MIN, f64::max);
        let barrier = line["barrier"][format!("{split}_error")].as_f64().unwrap();
        assert!((barrier - (peak - (error[first] + error[last]) / 2.0)).abs() < 1e-12, "{split}");
        assert!(barrier >= 0.0, "{split}: the peak is at least the mean of the ends");
    }
    // Between two identical networks every point is the same network: no barrier at all.
    let same = json(&out.join("analyses/same.json"));
    for key in ["train_error", "test_error", "train_loss", "test_loss"] {
        assert_eq!(same["barrier"][key].as_f64(), Some(0.0), "{key}");
    }
    assert!(out.join("figures/lmc-line.svg").is_file());
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("Linear mode connectivity: a to b"), "{report}");
}

#[test]
fn lmc_names_what_it_needs() {
    let cwd = tempfile::tempdir().unwrap();
    let three = LMC.replace("runs: [a, b], data: data", "runs: [a, b, a_again], data: data");
    let unsaved = LMC.replace("with: { points: 5 }", "with: { points: 5, at: \"50\" }");
    for (text, message) in [
        (three, "lmc connects exactly two runs, got 3"),
        (
            unsaved,
            "no checkpoint at step 50; saved steps: 0, 120. Add 50 to the trainer's `checkpoint_steps`",
        ),
    ] {
        std::fs::write(cwd.path().join("x.yaml"), text).unwrap();
        let o = ticketlab(&["run", "x.yaml", "--quiet", "--out", "x", "--force"], cwd.path());
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).replace("\n  │ ", " ").contains(message), "{}", stderr(&o));
    }
}
