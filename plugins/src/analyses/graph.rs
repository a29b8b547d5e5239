//! Graph metrics of masked layers (PAPER-SPEC section 6.3, with its DEFAULT construction).
//!
//! Per prunable 2-D layer `M` (`n_out × n_in` mask, or `|W ⊙ M|` for the weighted version),
//! viewed as the bipartite graph with adjacency `[[0, M], [Mᵀ, 0]]`, whose eigenvalues are
//! `±σ_i` (the singular values of `M`) and zeros:
//! - `spectral_gap` = λ0 − λ1 = σ1 − σ2 of the unweighted mask,
//! - `weighted_spectral_gap` = the same of `|W ⊙ M|`,
//! - `ramanujan_gap` = 2√(d_avg − 1) − μ̂ with d_avg the average degree and μ̂ the largest
//!   non-trivial eigenvalue in absolute value (the third largest, after ±σ1: σ2),
//! - `avg_path_length` and `clustering` on the relational graph (You et al.): rows and columns
//!   are each split into `groups` contiguous groups; groups i and j are joined when a kept
//!   weight connects them.
//!
//! Metrics are averaged over layers. JSON: `{"runs": {ARM: {"steps": [..], METRIC: [..]}},
//! "masks": {STAGE: {METRIC: value}}}` for input runs (every checkpoint, masked by the run's
//! mask) and input masks (the mask alone; weighted metrics use ones).

use std::collections::{BTreeMap, VecDeque};

use serde_json::json;
use ticketlab_core::artifact::AnalysisArtifact;
use ticketlab_core::plugin::{AnalysisInputs, AnalysisPlugin, ParamSpec, ParamType, Params};
use ticketlab_core::tensor::{HostTensor, MaskSet, NamedTensors};
use ticketlab_core::{Result, register_plugin};

use super::linalg::symmetric_eigenvalues;

const PARAMS: &[ParamSpec] = &[ParamSpec::new("groups", ParamType::Int, "nodes per side of the relational graph").default("48").min(2.0)];

const METRICS: [&str; 5] = ["weighted_spectral_gap", "spectral_gap", "ramanujan_gap", "avg_path_length", "clustering"];

/// Singular values of the `rows × cols` matrix `m`, decreasing (via eigenvalues of the smaller Gram matrix).
fn singular_values(m: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let (n, gram): (usize, Vec<f64>) = if rows <= cols {
        (rows, (0..rows * rows).map(|ij| (0..cols).map(|k| m[(ij / rows) * cols + k] * m[(ij % rows) * cols + k]).sum()).collect())
    } else {
        (cols, (0..cols * cols).map(|ij| (0..rows).map(|k| m[k * cols + ij / cols] * m[k * cols + ij % cols]).sum()).collect())
    };
    symmetric_eigenvalues(&gram, n).into_iter().map(|v| v.max(0.0).sqrt()).collect()
}

/// Average shortest path length over connected ordered pairs of an undirected graph.
pub fn average_shortest_path(adj: &[Vec<usize>]) -> f64 {
    let n = adj.len();
    let (mut total, mut pairs) = (0usize, 0usize);
    for s in 0..n {
        let mut dist = vec![usize::MAX; n];
        dist[s] = 0;
        let mut queue = VecDeque::from([s]);
        while let Some(u) = queue.pop_front() {
            for &v in &adj[u] {
                if dist[v] == usize::MAX {
                    dist[v] = dist[u] + 1;
                    queue.push_back(v);
                }
            }
        }
        for (t, d) in dist.iter().enumerate() {
            if t != s && *d != usize::MAX {
                total += d;
                pairs += 1;
            }
        }
    }
    if pairs == 0 { 0.0 } else { total as f64 / pairs as f64 }
}

/// Mean local clustering coefficient (nodes of degree < 2 count 0, as networkx).
pub fn average_clustering(adj: &[Vec<usize>]) -> f64 {
    let n = adj.len();
    let sets: Vec<std::collections::HashSet<usize>> = adj.iter().map(|a| a.iter().copied().collect()).collect();
    let sum: f64 = (0..n)
        .map(|i| {
            let k = adj[i].len();
            if k < 2 {
                return 0.0;
            }
            let links = adj[i].iter().enumerate().flat_map(|(x, &a)| adj[i][x + 1..].iter().map(move |&b| (a, b))).filter(|(a, b)| sets[*a].contains(b)).count();
            2.0 * links as f64 / (k * (k - 1)) as f64
        })
        .sum();
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Metrics of one layer.
fn layer_metrics(mask: &HostTensor, weights: Option<&HostTensor>, groups: usize) -> Option<[f64; 5]> {
    if mask.shape.len() != 2 {
        return None;
    }
    let (rows, cols) = (mask.shape[0], mask.shape[1]);
    let unweighted: Vec<f64> = mask.data.iter().map(|v| f64::from(*v)).collect();
    let weighted: Vec<f64> = match weights {
        Some(w) => w.data.iter().zip(&mask.data).map(|(a, k)| f64::from(a.abs() * k)).collect(),
        None => unweighted.clone(),
    };
    let gap = |s: &[f64]| s.first().copied().unwrap_or(0.0) - s.get(1).copied().unwrap_or(0.0);
    let sv = singular_values(&unweighted, rows, cols);
    let svw = singular_values(&weighted, rows, cols);
    let edges: f64 = unweighted.iter().sum();
    let d_avg = 2.0 * edges / (rows + cols) as f64;
    let ramanujan = 2.0 * (d_avg - 1.0).max(0.0).sqrt() - sv.get(1).copied().unwrap_or(0.0);
    // Relational graph: groups of rows on one side, groups of columns on the other, merged
    // into `groups` nodes (group i of rows and group i of columns are the same node).
    let g = groups.min(rows).min(cols).max(1);
    let mut linked = vec![vec![false; g]; g];
    for r in 0..rows {
        for c in 0..cols {
            if mask.data[r * cols + c] != 0.0 {
                let (a, b) = (r * g / rows, c * g / cols);
                if a != b {
                    linked[a][b] = true;
                    linked[b][a] = true;
                }
            }
        }
    }
    let adj: Vec<Vec<usize>> = linked.iter().map(|row| row.iter().enumerate().filter(|(_, l)| **l).map(|(j, _)| j).collect()).collect();
    Some([gap(&svw), gap(&sv), ramanujan, average_shortest_path(&adj), average_clustering(&adj)])
}

/// Layer-averaged metrics of a mask (with weights for the weighted gap).
fn metrics(mask: &MaskSet, weights: Option<&NamedTensors>, groups: usize) -> BTreeMap<&'static str, f64> {
    let per_layer: Vec<[f64; 5]> = mask.iter().filter_map(|(n, m)| layer_metrics(m, weights.and_then(|w| w.get(n)), groups)).collect();
    let count = per_layer.len().max(1) as f64;
    METRICS.iter().enumerate().map(|(i, name)| (*name, per_layer.iter().map(|v| v[i]).sum::<f64>() / count)).collect()
}

/// The `graph_metrics` analysis.
#[derive(Default)]
struct GraphMetrics;

impl AnalysisPlugin for GraphMetrics {
    fn analyze(&self, params: &Params, inputs: &AnalysisInputs<'_>) -> Result<AnalysisArtifact> {
        let groups = params.usize("groups")?;
        let mut runs = serde_json::Map::new();
        for (arm, run) in &inputs.runs {
            let mask: MaskSet = match &run.init.mask {
                Some(m) => m.clone(),
                None => run.init.prunable.iter().filter_map(|n| run.final_params.get(n).map(|t| (n.clone(), HostTensor::full(t.shape.clone(), 1.0)))).collect(),
            };
            let mut series: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
            for ckpt in run.checkpoints.values() {
                for (k, v) in metrics(&mask, Some(ckpt), groups) {
                    series.entry(k).or_default().push(v);
                }
            }
            let mut value = json!(series);
            value["steps"] = json!(run.checkpoints.keys().collect::<Vec<_>>());
            runs.insert(arm.to_string(), value);
        }
        let masks: serde_json::Map<String, serde_json::Value> = inputs.masks.iter().map(|(stage, m)| (stage.to_string(), json!(metrics(&m.masks, None, groups)))).collect();
        Ok(AnalysisArtifact { analysis: "graph_metrics".into(), value: json!({"runs": runs, "masks": masks}) })
    }
}

register_plugin!(Analysis, "graph_metrics", "1.0.0", "Spectral gaps, Ramanujan gap, path length and clustering of masked layers", PARAMS, GraphMetrics);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_graphs_with_known_answers() {
        // Path 0-1-2: distances 1,2,1 (both directions) -> 4/3; no triangles.
        let path = vec![vec![1], vec![0, 2], vec![1]];
        assert!((average_shortest_path(&path) - 4.0 / 3.0).abs() < 1e-12);
        assert_eq!(average_clustering(&path), 0.0);
        // Triangle: every distance 1, clustering 1.
        let tri = vec![vec![1, 2], vec![0, 2], vec![0, 1]];
        assert_eq!(average_shortest_path(&tri), 1.0);
        assert_eq!(average_clustering(&tri), 1.0);
    }

    #[test]
    fn complete_bipartite_spectrum() {
        // K_{2,3}: singular values of the all-ones 2x3 matrix are sqrt(6) and 0.
        let sv = singular_values(&[1.0; 6], 2, 3);
        assert!((sv[0] - 6f64.sqrt()).abs() < 1e-9 && sv[1].abs() < 1e-6);
        let m = layer_metrics(&HostTensor::full(vec![2, 3], 1.0), None, 2).unwrap();
        assert!((m[1] - 6f64.sqrt()).abs() < 1e-6);
        // d_avg = 2*6/5 = 2.4: 2*sqrt(1.4) - 0.
        assert!((m[2] - 2.0 * 1.4f64.sqrt()).abs() < 1e-6);
    }
}
