//! Graph metrics of pruned layers (PAPER-SPEC section 6.3 with its DEFAULT construction; the
//! paper's appendix J for the definitions).
//!
//! Each prunable 2-D layer with mask `M` (`n_out × n_in`) is read as the bipartite graph with
//! adjacency `[[0, M], [Mᵀ, 0]]`. Its eigenvalues are `±σ_i` (the singular values of `M`) and
//! zeros, so, sorted decreasingly, `λ0 = σ1` and `λ1 = σ2`:
//! - `spectral_gap` = `λ0 − λ1` of the unweighted mask;
//! - `weighted_spectral_gap` = the same with `|W ⊙ M|` as the weighted adjacency;
//! - `ramanujan_gap` = `√(2·d_avg − 1) − μ̂`, as the paper writes it (Hoang et al. write the
//!   Ramanujan bound as `2√(d_avg − 1)`), with `d_avg` = 2·edges / nodes and `μ̂` the largest
//!   non-trivial eigenvalue in absolute value: after the trivial pair `±σ1`, `μ̂ = σ2` (the
//!   third-largest eigenvalue by magnitude);
//! - `avg_path_length` and `clustering` on the layer's *relational graph* (You et al.): the rows
//!   and the columns are each split into `groups` contiguous groups (48 by default; fewer when a
//!   side is smaller), group `i` of both sides is node `i`, and nodes `i ≠ j` are joined when a
//!   kept weight connects row group `i` to column group `j` or the reverse (self-loops are
//!   ignored). The path length is averaged over the ordered pairs that are connected
//!   (networkx refuses disconnected graphs instead); the clustering coefficient counts nodes of
//!   degree < 2 as 0, as networkx.
//!
//! Masks: for input runs, the global magnitude mask at `rate` of every checkpoint (ranking the
//! weights alive in the run's own mask), i.e. the structure the run has found by that step;
//! `rate: 0` uses the run's own mask. Input models use their own mask (ones when dense) and
//! weights; input masks give the unweighted metrics only (`weighted_spectral_gap` is `null`).
//! `mean` averages over layers, as the paper's figure 9.
//!
//! JSON value:
//! ```text
//! {"rate": r, "groups": g,
//!  "runs":   {ARM:   {"steps": [t, ..], "mean": {METRIC: [..]}, "layers": {LAYER: {METRIC: [..]}}}},
//!  "models": {STAGE: {"mean": {METRIC: v}, "layers": {LAYER: {METRIC: v}}}},
//!  "masks":  {STAGE: {"mean": {METRIC: v}, "layers": {LAYER: {METRIC: v}}}}}
//! ```
//! with METRIC one of `weighted_spectral_gap`, `spectral_gap`, `ramanujan_gap`,
//! `avg_path_length`, `clustering`. Layers that are not matrices are skipped.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::{Value, json};
use ticketlab_api::artifact::AnalysisArtifact;
use ticketlab_api::plugin::{AnalysisInputs, AnalysisPlugin, ParamSpec, ParamType, Params};
use ticketlab_api::tensor::{HostTensor, MaskSet, NamedTensors};
use ticketlab_api::{Error, Result, register_plugin};

use super::jaccard::magnitude_mask;
use super::linalg::symmetric_eigenvalues;

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new("groups", ParamType::Int, "nodes of each layer's relational graph").default("48").min(2.0),
    ParamSpec::new("rate", ParamType::Float, "runs: pruning rate of the global magnitude mask taken at each checkpoint; 0 = the run's own mask").default("0.6").range_exclusive(0.0, 1.0),
];

/// The metrics, in output order.
pub const METRICS: [&str; 5] =
    ["weighted_spectral_gap", "spectral_gap", "ramanujan_gap", "avg_path_length", "clustering"];

/// Singular values of the `rows × cols` row-major matrix `m`, decreasing (square roots of the
/// eigenvalues of the smaller Gram matrix).
pub fn singular_values(m: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let (n, gram) = if rows <= cols {
        let mut g = vec![0.0; rows * rows];
        for i in 0..rows {
            for j in i..rows {
                let v: f64 = (0..cols).map(|k| m[i * cols + k] * m[j * cols + k]).sum();
                g[i * rows + j] = v;
                g[j * rows + i] = v;
            }
        }
        (rows, g)
    } else {
        let mut g = vec![0.0; cols * cols];
        for r in 0..rows {
            let row = &m[r * cols..(r + 1) * cols];
            for i in 0..cols {
                if row[i] != 0.0 {
                    for j in i..cols {
                        g[i * cols + j] += row[i] * row[j];
                    }
                }
            }
        }
        for i in 0..cols {
            for j in 0..i {
                g[i * cols + j] = g[j * cols + i];
            }
        }
        (cols, g)
    };
    symmetric_eigenvalues(&gram, n).into_iter().map(|v| v.max(0.0).sqrt()).collect()
}

/// Average shortest path length over the connected ordered pairs of an undirected graph
/// (adjacency lists), by breadth-first search from every node; 0 without such pairs.
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

/// Mean local clustering coefficient `2e_i / (k_i(k_i − 1))` (degree < 2 counts 0).
pub fn average_clustering(adj: &[Vec<usize>]) -> f64 {
    let n = adj.len();
    if n == 0 {
        return 0.0;
    }
    let sets: Vec<BTreeSet<usize>> = adj.iter().map(|a| a.iter().copied().collect()).collect();
    let sum: f64 = (0..n)
        .map(|i| {
            let k = sets[i].len();
            if k < 2 {
                return 0.0;
            }
            let nb: Vec<usize> = sets[i].iter().copied().collect();
            let links = nb
                .iter()
                .enumerate()
                .flat_map(|(x, &a)| nb[x + 1..].iter().map(move |&b| (a, b)))
                .filter(|(a, b)| sets[*a].contains(b))
                .count();
            2.0 * links as f64 / (k * (k - 1)) as f64
        })
        .sum();
    sum / n as f64
}

/// The relational graph of a `rows × cols` mask with `groups` nodes (adjacency lists).
pub fn relational_graph(mask: &[f32], rows: usize, cols: usize, groups: usize) -> Vec<Vec<usize>> {
    let g = groups.min(rows).min(cols).max(1);
    let mut linked = vec![vec![false; g]; g];
    for r in 0..rows {
        for c in 0..cols {
            if mask[r * cols + c] != 0.0 {
                let (a, b) = (r * g / rows, c * g / cols);
                if a != b {
                    linked[a][b] = true;
                    linked[b][a] = true;
                }
            }
        }
    }
    linked
        .iter()
        .map(|row| row.iter().enumerate().filter(|(_, l)| **l).map(|(j, _)| j).collect())
        .collect()
}

/// The metrics of one layer (`None` for tensors that are not matrices); the weighted gap is
/// `None` without weights.
fn layer_metrics(
    mask: &HostTensor,
    weights: Option<&HostTensor>,
    groups: usize,
) -> Option<[Option<f64>; 5]> {
    if mask.shape.len() != 2 {
        return None;
    }
    let (rows, cols) = (mask.shape[0], mask.shape[1]);
    let unweighted: Vec<f64> = mask.data.iter().map(|v| f64::from(*v)).collect();
    let gap = |s: &[f64]| s.first().copied().unwrap_or(0.0) - s.get(1).copied().unwrap_or(0.0);
    let sv = singular_values(&unweighted, rows, cols);
    let weighted = weights.map(|w| {
        let m: Vec<f64> =
            w.data.iter().zip(&mask.data).map(|(a, k)| f64::from(a.abs() * k)).collect();
        gap(&singular_values(&m, rows, cols))
    });
    let edges: f64 = unweighted.iter().sum();
    let d_avg = 2.0 * edges / (rows + cols) as f64;
    let ramanujan = (2.0 * d_avg - 1.0).max(0.0).sqrt() - sv.get(1).copied().unwrap_or(0.0);
    let adj = relational_graph(&mask.data, rows, cols, groups);
    Some([
        weighted,
        Some(gap(&sv)),
        Some(ramanujan),
        Some(average_shortest_path(&adj)),
        Some(average_clustering(&adj)),
    ])
}

/// Per-layer metrics of a mask and their mean over layers.
struct MaskMetrics {
    layers: BTreeMap<String, [Option<f64>; 5]>,
    mean: [Option<f64>; 5],
}

fn metrics(mask: &MaskSet, weights: Option<&NamedTensors>, groups: usize) -> MaskMetrics {
    let layers: BTreeMap<String, [Option<f64>; 5]> = mask
        .iter()
        .filter_map(|(n, m)| {
            layer_metrics(m, weights.and_then(|w| w.get(n)), groups).map(|v| (n.clone(), v))
        })
        .collect();
    let mut mean = [None; 5];
    for (i, slot) in mean.iter_mut().enumerate() {
        let vals: Vec<f64> = layers.values().filter_map(|v| v[i]).collect();
        if !vals.is_empty() {
            *slot = Some(vals.iter().sum::<f64>() / vals.len() as f64);
        }
    }
    MaskMetrics { layers, mean }
}

fn as_object(v: &[Option<f64>; 5]) -> Value {
    Value::Object(METRICS.iter().zip(v).map(|(k, x)| (k.to_string(), json!(x))).collect())
}

/// Series over a run's checkpoints.
fn run_series(
    run: &ticketlab_api::artifact::RunArtifact,
    rate: f64,
    groups: usize,
) -> Result<Value> {
    let mut mean: BTreeMap<&str, Vec<Option<f64>>> = BTreeMap::new();
    let mut layers: BTreeMap<String, BTreeMap<&str, Vec<Option<f64>>>> = BTreeMap::new();
    for ckpt in run.checkpoints.values() {
        let mask = magnitude_mask(ckpt, &run.init.prunable, run.init.mask.as_ref(), rate)?;
        let m = metrics(&mask, Some(ckpt), groups);
        for (i, k) in METRICS.iter().enumerate() {
            mean.entry(k).or_default().push(m.mean[i]);
            for (layer, v) in &m.layers {
                layers.entry(layer.clone()).or_default().entry(k).or_default().push(v[i]);
            }
        }
    }
    Ok(json!({"steps": run.checkpoints.keys().collect::<Vec<_>>(), "mean": mean, "layers": layers}))
}

fn point(m: &MaskMetrics) -> Value {
    let layers: serde_json::Map<String, Value> =
        m.layers.iter().map(|(k, v)| (k.clone(), as_object(v))).collect();
    json!({"mean": as_object(&m.mean), "layers": layers})
}

/// The `graph_metrics` analysis.
#[derive(Default)]
struct GraphMetrics;

impl AnalysisPlugin for GraphMetrics {
    fn analyze(&self, params: &Params, inputs: &AnalysisInputs<'_>) -> Result<AnalysisArtifact> {
        let groups = params.usize("groups")?.max(1);
        let rate = params.f64("rate")?;
        if !(0.0..1.0).contains(&rate) {
            return Err(Error::param(
                "rate",
                format!("{rate} is out of range: the pruning rate must be in [0, 1)"),
            ));
        }
        if inputs.runs.is_empty() && inputs.models.is_empty() && inputs.masks.is_empty() {
            return Err(Error::param(
                "runs",
                "graph_metrics needs at least one run, model or mask input",
            ));
        }
        let mut runs = serde_json::Map::new();
        for (arm, run) in &inputs.runs {
            runs.insert(arm.to_string(), run_series(run, rate, groups)?);
        }
        let mut models = serde_json::Map::new();
        for (stage, model) in &inputs.models {
            let mask: MaskSet = match &model.mask {
                Some(m) => m.clone(),
                None => model
                    .prunable
                    .iter()
                    .filter_map(|n| {
                        model
                            .params
                            .get(n)
                            .map(|t| (n.clone(), HostTensor::full(t.shape.clone(), 1.0)))
                    })
                    .collect(),
            };
            models.insert(stage.to_string(), point(&metrics(&mask, Some(&model.params), groups)));
        }
        let masks: serde_json::Map<String, Value> = inputs
            .masks
            .iter()
            .map(|(stage, m)| (stage.to_string(), point(&metrics(&m.masks, None, groups))))
            .collect();
        Ok(AnalysisArtifact {
            analysis: "graph_metrics".into(),
            value: json!({"rate": rate, "groups": groups, "runs": runs, "models": models, "masks": masks}),
        })
    }
}

register_plugin!(
    Analysis,
    "graph_metrics",
    "1.0.0",
    "Spectral gaps, Ramanujan gap, path length and clustering of pruned layers",
    PARAMS,
    GraphMetrics
);

#[cfg(test)]
mod tests {
    use super::*;

    fn undirected(n: usize, edges: &[(usize, usize)]) -> Vec<Vec<usize>> {
        let mut adj = vec![Vec::new(); n];
        for &(a, b) in edges {
            adj[a].push(b);
            adj[b].push(a);
        }
        adj
    }

    #[test]
    fn path_lengths_and_clustering_of_small_graphs() {
        // Path 0-1-2-3: distances 1,2,3,1,2,1 each way: 20 / 12.
        let path = undirected(4, &[(0, 1), (1, 2), (2, 3)]);
        assert!((average_shortest_path(&path) - 20.0 / 12.0).abs() < 1e-12);
        assert_eq!(average_clustering(&path), 0.0);
        // Complete graph K4: every distance 1, clustering 1.
        let k4 = undirected(4, &[(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]);
        assert_eq!(average_shortest_path(&k4), 1.0);
        assert_eq!(average_clustering(&k4), 1.0);
        // Triangle with a pendant: C = (1 + 1 + 1/3 + 0) / 4.
        let paw = undirected(4, &[(0, 1), (1, 2), (0, 2), (2, 3)]);
        assert!((average_clustering(&paw) - (7.0 / 3.0) / 4.0).abs() < 1e-12);
        // Complete bipartite K_{2,3} as a plain graph: no triangles; distance 1 across, 2 within.
        let k23 = undirected(5, &[(0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4)]);
        assert_eq!(average_clustering(&k23), 0.0);
        assert!((average_shortest_path(&k23) - (12.0 * 1.0 + 8.0 * 2.0) / 20.0).abs() < 1e-12);
        // Two components: only connected pairs count.
        let split = undirected(4, &[(0, 1), (2, 3)]);
        assert_eq!(average_shortest_path(&split), 1.0);
    }

    #[test]
    fn spectra_of_complete_bipartite_and_path_masks() {
        // K_{2,3}: the all-ones 2x3 mask has singular values sqrt(6), 0.
        let sv = singular_values(&[1.0; 6], 2, 3);
        assert!((sv[0] - 6f64.sqrt()).abs() < 1e-9 && sv[1].abs() < 1e-6);
        let m = layer_metrics(&HostTensor::full(vec![2, 3], 1.0), None, 2).unwrap();
        assert!((m[1].unwrap() - 6f64.sqrt()).abs() < 1e-6);
        assert!(m[0].is_none());
        // d_avg = 2·6/5 = 2.4: sqrt(2·2.4 − 1) − 0.
        assert!((m[2].unwrap() - 3.8f64.sqrt()).abs() < 1e-6);
        // The bipartite graph of [[1,1,0],[0,1,1]] is the path on 5 nodes, eigenvalues
        // 2cos(kπ/6): sqrt(3), 1, 0, −1, −sqrt(3); its singular values are sqrt(3) and 1.
        let path = [1.0, 1.0, 0.0, 0.0, 1.0, 1.0];
        let sv = singular_values(&path, 2, 3);
        assert!((sv[0] - 3f64.sqrt()).abs() < 1e-9 && (sv[1] - 1.0).abs() < 1e-9);
        let t: Vec<f64> = (0..3).flat_map(|i| (0..2).map(move |j| path[j * 3 + i])).collect();
        assert_eq!(singular_values(&t, 3, 2), sv, "tall and wide give the same spectrum");
        let m = layer_metrics(
            &HostTensor::new(vec![2, 3], path.iter().map(|v| *v as f32).collect()),
            Some(&HostTensor::full(vec![2, 3], -2.0)),
            2,
        )
        .unwrap();
        assert!((m[1].unwrap() - (3f64.sqrt() - 1.0)).abs() < 1e-9);
        assert!((m[0].unwrap() - 2.0 * (3f64.sqrt() - 1.0)).abs() < 1e-9, "weighted by |w| = 2");
        // d_avg = 8/5: sqrt(2.2) − 1.
        assert!((m[2].unwrap() - (2.2f64.sqrt() - 1.0)).abs() < 1e-9);
    }

    #[test]
    fn relational_graph_of_block_masks() {
        // A 4x4 identity mask with 2 groups: rows 0-1 / cols 0-1 are group 0: only self-loops.
        let mut eye = vec![0.0f32; 16];
        (0..4).for_each(|i| eye[i * 5] = 1.0);
        assert_eq!(relational_graph(&eye, 4, 4, 2), vec![Vec::<usize>::new(), vec![]]);
        // A full mask with 4 groups is the complete graph K4.
        let full = relational_graph(&[1.0; 16], 4, 4, 4);
        assert_eq!(average_shortest_path(&full), 1.0);
        assert_eq!(average_clustering(&full), 1.0);
        // Fewer rows than groups: the group count shrinks to the smaller side.
        assert_eq!(relational_graph(&[1.0; 6], 2, 3, 48).len(), 2);
    }
}
