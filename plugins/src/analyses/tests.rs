//! The analyses and the `compare` report on hand-made runs: the JSON shapes each documents,
//! and values recomputed independently.

use std::collections::BTreeMap;

use ticketlab_api::artifact::{ArchSpec, MaskArtifact, ModelArtifact, RunArtifact};
use ticketlab_api::metrics::{EvalRecord, Norms, RunSummary};
use ticketlab_api::plugin::registry::Registry;
use ticketlab_api::plugin::{AnalysisInputs, Params, PluginKind, StageContext};
use ticketlab_api::tensor::{HostTensor, MaskSet, NamedTensors};

use super::{
    code_cross_entropy, jaccard_distance, magnitude_mask, normalised_spectrum, shannon_entropy,
};

const P: usize = 11;
const D: usize = 8;
const W: usize = 6;
const PRUNABLE: [&str; 4] = ["embed.W_E", "inproj.W", "outproj.W", "unembed.W_U"];

/// mlp_modular-shaped weights from a seed.
fn weights(seed: u64) -> NamedTensors {
    let mut x = seed;
    let mut draw = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                x = ticketlab_api::seed::splitmix64(x);
                ((x >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32
            })
            .collect()
    };
    [
        ("embed.W_E", vec![D, P]),
        ("inproj.W", vec![W, D]),
        ("outproj.W", vec![D, W]),
        ("unembed.W_U", vec![D, P]),
    ]
    .into_iter()
    .map(|(n, s)| {
        let len = s.iter().product();
        (n.to_string(), HostTensor::new(s, draw(len)))
    })
    .collect()
}

fn record(step: u64, acc: f64, params: &NamedTensors) -> EvalRecord {
    let layers: BTreeMap<String, Norms> =
        params.iter().map(|(k, t)| (k.clone(), Norms { l1: t.l1(), l2: t.l2() })).collect();
    let l1 = layers.values().map(|n| n.l1).sum();
    let l2 = layers.values().map(|n| n.l2 * n.l2).sum::<f64>().sqrt();
    EvalRecord {
        step,
        train_loss: 1.0 - acc,
        train_acc: Some(if step == 0 { 0.0 } else { 1.0 }),
        test_loss: 1.0 - acc,
        test_acc: Some(acc),
        norms: Norms { l1, l2 },
        layers,
    }
}

/// A run with checkpoints at 0, 100, 200 and evaluations every 50 steps.
fn run(mask: Option<MaskSet>, accs: [f64; 5]) -> RunArtifact {
    let apply = |mut w: NamedTensors| {
        if let Some(m) = &mask {
            for (n, k) in m {
                let t = w.get_mut(n).unwrap();
                t.data.iter_mut().zip(&k.data).for_each(|(v, k)| *v *= k);
            }
        }
        w
    };
    let ckpts: BTreeMap<u64, NamedTensors> =
        [(0, apply(weights(1))), (100, apply(weights(1))), (200, apply(weights(2)))].into();
    let records: Vec<EvalRecord> = accs
        .iter()
        .enumerate()
        .map(|(i, a)| record(50 * i as u64, *a, &ckpts[&(100 * (i as u64 / 2))]))
        .collect();
    let density =
        mask.as_ref().map_or(1.0, |m| ticketlab_api::artifact::DensityReport::of(m).density);
    let init = ModelArtifact {
        arch: ArchSpec { plugin: "mlp_modular".into(), params: Params::new() },
        params: ckpts[&0].clone(),
        mask,
        prunable: PRUNABLE.iter().map(|s| s.to_string()).collect(),
        origin: "test".into(),
    };
    RunArtifact {
        init,
        final_params: ckpts[&200].clone(),
        checkpoints: ckpts,
        summary: RunSummary::from_records(&records, 0.95, density).unwrap(),
        records,
    }
}

fn ticket_mask() -> MaskSet {
    magnitude_mask(&weights(1), &PRUNABLE.map(String::from), None, 0.6).unwrap()
}

fn analyse(
    name: &str,
    params: Params,
    runs: &[(&str, &RunArtifact)],
    masks: &[(&str, &MaskArtifact)],
    kind: PluginKind,
) -> serde_json::Value {
    let registry = Registry::builtin().unwrap();
    let entry = registry.get(kind, name).unwrap();
    let p = params.with_defaults(&entry.params);
    let ctx = StageContext::new(name, 0, ".");
    let inputs = AnalysisInputs {
        runs: runs.to_vec(),
        masks: masks.to_vec(),
        models: vec![],
        data: None,
        arch: None,
        ctx: &ctx,
    };
    let out = match kind {
        PluginKind::Report => registry.report(name).unwrap().report(&p, &inputs).unwrap(),
        _ => registry.analysis(name).unwrap().analyze(&p, &inputs).unwrap(),
    };
    assert_eq!(out.analysis, name);
    out.value
}

#[test]
fn fourier_entropy_series_and_spectra() {
    let dense = run(None, [0.0, 0.1, 0.2, 0.5, 1.0]);
    let ticket = run(Some(ticket_mask()), [0.0, 0.5, 1.0, 1.0, 1.0]);
    let v = analyse(
        "fourier_entropy",
        Params::new(),
        &[("dense", &dense), ("ticket", &ticket)],
        &[],
        PluginKind::Analysis,
    );
    assert_eq!(v["frequencies"], 4);
    for (arm, r) in [("dense", &dense), ("ticket", &ticket)] {
        let e = &v["runs"][arm];
        assert_eq!(e["steps"], serde_json::json!([0, 100, 200]));
        assert_eq!(e["spectrum"].as_array().unwrap().len(), W);
        assert_eq!(e["output"]["code_ce"].as_array().unwrap().len(), 3);
        // Recompute the input side of the last checkpoint by hand.
        let w = &r.checkpoints[&200];
        let (we, wi) = (&w["embed.W_E"], &w["inproj.W"]);
        let (mut sh, mut ce, mut n) = (0.0, 0.0, 0.0);
        for i in 0..W {
            let row: Vec<f64> = (0..P)
                .map(|t| {
                    (0..D)
                        .map(|j| f64::from(wi.data[i * D + j]) * f64::from(we.data[j * P + t]))
                        .sum()
                })
                .collect();
            if let Some(q) = normalised_spectrum(&row, 4) {
                sh += shannon_entropy(&q);
                ce += code_cross_entropy(&q);
                n += 1.0;
            }
        }
        assert!((e["shannon"][2].as_f64().unwrap() - sh / n).abs() < 1e-9, "{arm}");
        assert!((e["code_ce"][2].as_f64().unwrap() - ce / n).abs() < 1e-9, "{arm}");
        assert_eq!(e["neurons"][2].as_u64().unwrap() as f64, n);
    }
    let only_output = analyse(
        "fourier_entropy",
        Params::new().with("side", "output"),
        &[("dense", &dense)],
        &[],
        PluginKind::Analysis,
    );
    assert!(
        only_output["runs"]["dense"].get("shannon").is_none()
            && only_output["runs"]["dense"]["output"]["shannon"].is_array()
    );
}

#[test]
fn jaccard_pairs_successive_checkpoints_with_accuracy_changes() {
    let dense = run(None, [0.0, 0.1, 0.2, 0.5, 1.0]);
    let v = analyse("jaccard", Params::new(), &[("dense", &dense)], &[], PluginKind::Analysis);
    let e = &v["runs"]["dense"];
    assert_eq!(e["intervals"], serde_json::json!([[0, 100], [100, 200]]));
    // Checkpoints 0 and 100 are equal: distance 0; 200 has other weights.
    let m0 = magnitude_mask(&dense.checkpoints[&100], &dense.init.prunable, None, 0.6).unwrap();
    let m2 = magnitude_mask(&dense.checkpoints[&200], &dense.init.prunable, None, 0.6).unwrap();
    for layer in PRUNABLE {
        let series = &e["layers"][layer];
        assert_eq!(series[0], 0.0);
        assert!(
            (series[1].as_f64().unwrap() - jaccard_distance(&m0[layer].data, &m2[layer].data))
                .abs()
                < 1e-12
        );
    }
    assert!(e["all"][1].as_f64().unwrap() > 0.0);
    let delta: Vec<f64> =
        e["delta_test_acc"].as_array().unwrap().iter().map(|d| d.as_f64().unwrap()).collect();
    assert!((delta[0] - 0.2).abs() < 1e-12 && (delta[1] - 0.8).abs() < 1e-12, "{delta:?}");
}

#[test]
fn graph_metrics_of_runs_and_masks() {
    let dense = run(None, [0.0, 0.1, 0.2, 0.5, 1.0]);
    let mask = MaskArtifact {
        report: ticketlab_api::artifact::DensityReport::of(&ticket_mask()),
        masks: ticket_mask(),
        pruner: "pruner/magnitude@1.0.0".into(),
        rate: 0.6,
        scored_at: None,
        warnings: vec![],
    };
    let v = analyse(
        "graph_metrics",
        Params::new().with("groups", 4),
        &[("dense", &dense)],
        &[("mask", &mask)],
        PluginKind::Analysis,
    );
    let e = &v["runs"]["dense"];
    assert_eq!(e["steps"], serde_json::json!([0, 100, 200]));
    for metric in super::graph::METRICS {
        assert_eq!(e["mean"][metric].as_array().unwrap().len(), 3, "{metric}");
        assert_eq!(e["layers"]["inproj.W"][metric].as_array().unwrap().len(), 3);
    }
    // The run at checkpoint 0 has the ticket's mask (same weights, same rate): same unweighted metrics.
    for metric in ["spectral_gap", "ramanujan_gap", "avg_path_length", "clustering"] {
        assert!(
            (e["mean"][metric][0].as_f64().unwrap()
                - v["masks"]["mask"]["mean"][metric].as_f64().unwrap())
            .abs()
                < 1e-9,
            "{metric}"
        );
    }
    assert!(v["masks"]["mask"]["mean"]["weighted_spectral_gap"].is_null());
    // rate 0: the dense run's own (full) mask: every relational graph is complete.
    let full = analyse(
        "graph_metrics",
        Params::new().with("groups", 4).with("rate", 0.0),
        &[("dense", &dense)],
        &[],
        PluginKind::Analysis,
    );
    assert_eq!(full["runs"]["dense"]["mean"]["avg_path_length"][0], 1.0);
    assert_eq!(full["runs"]["dense"]["mean"]["clustering"][0], 1.0);
}

#[test]
fn weight_norms_follow_the_evaluations() {
    let dense = run(None, [0.0, 0.1, 0.2, 0.5, 1.0]);
    let v = analyse("weight_norms", Params::new(), &[("dense", &dense)], &[], PluginKind::Analysis);
    let e = &v["runs"]["dense"];
    assert_eq!(e["steps"], serde_json::json!([0, 50, 100, 150, 200]));
    assert!(
        (e["layers"]["inproj.W"]["l2"][4].as_f64().unwrap()
            - dense.checkpoints[&200]["inproj.W"].l2())
        .abs()
            < 1e-12
    );
    assert!((e["l1"][0].as_f64().unwrap() - dense.records[0].norms.l1).abs() < 1e-12);
}

#[test]
fn compare_reports_speedups_against_the_first_run() {
    let dense = run(None, [0.0, 0.1, 0.2, 0.5, 1.0]);
    let ticket = run(Some(ticket_mask()), [0.0, 0.5, 1.0, 1.0, 1.0]);
    let v = analyse(
        "compare",
        Params::new(),
        &[("dense", &dense), ("ticket", &ticket)],
        &[],
        PluginKind::Report,
    );
    assert_eq!(v["baseline"], "dense");
    let arms = v["arms"].as_array().unwrap();
    assert_eq!((arms[0]["t_gen"].as_u64(), arms[1]["t_gen"].as_u64()), (Some(200), Some(100)));
    assert_eq!(arms[1]["speedup_t_gen"], 2.0);
    assert_eq!(arms[0]["speedup_t_gen"], 1.0);
    assert!((arms[1]["density"].as_f64().unwrap() - 0.4).abs() < 0.01);
}

/// What `compare` hands `summary.json`: each arm's baseline and the speed-up it computed.
#[test]
fn compare_hands_the_summary_its_speedups() {
    let dense = run(None, [0.0, 0.1, 0.2, 0.5, 1.0]);
    let ticket = run(Some(ticket_mask()), [0.0, 0.5, 1.0, 1.0, 1.0]);
    let runs = [("dense", &dense), ("ticket", &ticket)];
    let v = analyse("compare", Params::new(), &runs, &[], PluginKind::Report);
    let compare = Registry::builtin().unwrap().report("compare").unwrap();
    let fields: Vec<(String, String, Option<f64>)> =
        compare.comparisons(&v).into_iter().map(|c| (c.arm, c.baseline, c.speedup_t_gen)).collect();
    assert_eq!(
        fields,
        [("dense".into(), "dense".into(), Some(1.0)), ("ticket".into(), "dense".into(), Some(2.0))]
    );
    assert!(compare.comparisons(&serde_json::json!({"other": 1})).is_empty());
}
