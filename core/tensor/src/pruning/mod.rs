//! Turning pruner scores into masks, with the invariants enforced here once for every pruner.
//!
//! - **Pruning rate means the fraction removed.** `rate = 0.6` keeps 40% of the prunable
//!   weights (the paper's k; its code, like Synaptic-Flow, calls the *kept* fraction
//!   "sparsity"). The rate always refers to *all* prunable weights: pruning an already sparse
//!   model at `rate = 0.8` leaves 20% of the prunable weights, whatever the input's density.
//! - **Monotone masks.** A weight pruned before is never revived: only alive weights are ranked,
//!   and the new mask is a subset of the current one.
//! - **Exact k.** Exactly `round(density * total)` weights are kept (over all prunable weights
//!   with `distribution: global`, or `round(density_l * layer_total)` in each layer with
//!   `uniform` (every density_l the target, also written `scope: layerwise`), `erk` or `er`
//!   ([`Distribution::layer_densities`])), never "everything at or above a threshold". Only when the input mask
//!   already keeps fewer weights than that is the count lower (with a warning).
//! - **Deterministic ties.** Equal scores are ordered by layer name, then by flat index
//!   (`-0.0` and `0.0` are the same score).
//! - **Iterative pruners** reach the target over their rounds, re-scoring the masked network
//!   each round. From the input density `d0` to the target `d`, round `r` of `R` (0-based)
//!   keeps `d0 · (d/d0)^((r+1)/R)` (`schedule: exponential`, i.e. `d^((r+1)/R)` from a dense
//!   model, as Synaptic-Flow) or `d0 - (d0 - d)(r+1)/R` (`schedule: linear`).
//! - **Per-layer counts.** A pruner may fix the kept count of every layer
//!   ([`ticketlab_api::plugin::Scores::keep_per_layer`], e.g. the shuffled-mask control); `rate` and `scope` are then
//!   ignored and the artifact records the realised rate. A layer whose input mask keeps fewer
//!   weights than its count keeps those it has (with a warning, as for `rate`).
//! - **Reports.** Every mask comes with a per-layer density report; a layer at density 0
//!   (layer collapse) is a warning or, with `on_collapse: error`, an error. Non-finite scores
//!   of alive weights are errors naming the pruner.

mod structure;

use std::collections::BTreeMap;

use ticketlab_api::artifact::{DensityReport, MaskArtifact};
use ticketlab_api::plugin::{Params, PruneContext, PrunerPlugin};
use ticketlab_api::tensor::{Architecture, HostTensor, MaskSet, NamedTensors};
use ticketlab_api::{Error, Result};

pub use self::structure::Structure;
use self::structure::{Budget, select_groups, select_n_of_m};

/// Everything [`make_mask`] needs besides the pruner: which pruner, the stage's parameters, and
/// what the pruner is shown (its [`PruneContext`], whose `mask` is the current mask and whose
/// `round` [`make_mask`] sets for each scoring round).
pub struct MaskRequest<'a> {
    /// `kind/name@version` of the pruner, for messages and the artifact.
    pub pruner_id: &'a str,
    /// The stage's parameters: the core's (`rate`, `scope`, `schedule`, `on_collapse`) and the
    /// pruner's own.
    pub params: &'a Params,
    /// The network, the scored weights, the current mask (ones for a dense model), the
    /// reference mask of controls, the data and the stage's context.
    pub input: PruneContext<'a>,
    /// The step of the scored weights (`None` = initialisation).
    pub scored_at: Option<u64>,
}

/// `w ⊙ m` in place: sets to 0 every weight whose mask entry is 0. Parameters without a mask
/// entry, and mask entries without a parameter, are left alone; shapes are the caller's to check.
/// The one place masked weights are zeroed (rewinding, pruners' masked networks, training).
pub fn apply_mask(weights: &mut NamedTensors, mask: &MaskSet) {
    for (name, m) in mask {
        if let Some(t) = weights.get_mut(name) {
            t.data.iter_mut().zip(&m.data).filter(|(_, k)| **k == 0.0).for_each(|(v, _)| *v = 0.0);
        }
    }
}

/// A mask of ones over `arch`'s prunable parameters.
pub fn dense_mask(arch: &dyn Architecture) -> MaskSet {
    arch.parameters()
        .into_iter()
        .filter(|p| p.prunable)
        .map(|p| (p.name, HostTensor::full(p.shape, 1.0)))
        .collect()
}

/// How densities move across the rounds of an iterative pruner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Geometric steps from the input density to the target.
    Exponential,
    /// Equal steps from the input density to the target.
    Linear,
}

impl Schedule {
    /// Parses the `schedule` parameter.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "exponential" => Ok(Schedule::Exponential),
            "linear" => Ok(Schedule::Linear),
            other => Err(Error::param(
                "schedule",
                format!("unknown schedule `{other}`: expected `exponential` or `linear`"),
            )),
        }
    }

    /// Density kept after round `round` (0-based) of `rounds`, going from `start` to `target`.
    pub fn density(self, start: f64, target: f64, round: usize, rounds: usize) -> f64 {
        if target >= start {
            return target;
        }
        let frac = (round + 1) as f64 / rounds.max(1) as f64;
        match self {
            Schedule::Linear => start - (start - target) * frac,
            // `target > 0` here: rates are below 1.
            Schedule::Exponential => start * (target / start).powf(frac),
        }
    }
}

/// Number of nonzero entries.
fn count_kept(t: &HostTensor) -> usize {
    t.data.iter().filter(|v| **v != 0.0).count()
}

/// `round(density * n)`, clamped to `[0, n]`.
fn kept_count(density: f64, n: usize) -> usize {
    ((density * n as f64).round().max(0.0) as usize).min(n)
}

/// Scores `req.weights` with `pruner` and returns the mask, enforcing the module's invariants.
pub fn make_mask(pruner: &dyn PrunerPlugin, req: &MaskRequest<'_>) -> Result<MaskArtifact> {
    let rate = req.params.f64("rate")?;
    if !(0.0..1.0).contains(&rate) {
        return Err(Error::param(
            "rate",
            format!(
                "{rate} is out of range: the pruning rate (the fraction of prunable weights removed) must be in [0, 1)"
            ),
        ));
    }
    let distribution = Distribution::of(req.params)?;
    let structure = Structure::of(req.params)?;
    let strict = match req.params.str("on_collapse")? {
        "warn" => false,
        "error" => true,
        other => {
            return Err(Error::param(
                "on_collapse",
                format!("unknown value `{other}`: expected `warn` or `error`"),
            ));
        }
    };
    let schedule = Schedule::parse(req.params.str("schedule")?)?;
    let rounds = pruner.rounds(req.params).max(1);
    check_current(req)?;

    let target = 1.0 - rate;
    let current = req.input.mask;
    let total: usize = current.values().map(HostTensor::len).sum();
    let start = if total == 0 {
        1.0
    } else {
        current.values().map(count_kept).sum::<usize>() as f64 / total as f64
    };
    let mut mask = current.clone();
    // The per-layer counts of a pruner that fixes them (last round).
    let mut fixed: Option<BTreeMap<String, usize>> = None;
    for round in 0..rounds {
        let density = schedule.density(start, target, round, rounds);
        let ctx = PruneContext { mask: &mask, round: (round, rounds), ..req.input };
        let scores = pruner.score(req.params, &ctx)?;
        check_scores(req.pruner_id, &mask, &scores.scores)?;
        mask = match &scores.keep_per_layer {
            Some(counts) => {
                check_counts(req.pruner_id, &mask, counts)?;
                let selected = select_per_layer(&mask, &scores.scores, |name, _| counts[name]);
                fixed = Some(counts.clone());
                selected
            }
            None => {
                let per_layer = distribution.layer_densities(&mask, density);
                let count =
                    |name: &str, n: usize| per_layer.as_ref().map_or(0, |d| kept_count(d[name], n));
                match (&structure, &per_layer) {
                    (Structure::Unstructured, Some(_)) => {
                        select_per_layer(&mask, &scores.scores, count)
                    }
                    (Structure::Unstructured, None) => {
                        select_global(&mask, &scores.scores, kept_count(density, total))
                    }
                    (Structure::NOfM { n, m }, _) => select_n_of_m(&mask, &scores.scores, *n, *m)?,
                    (groups, Some(_)) => {
                        select_groups(&mask, &scores.scores, groups, Budget::PerLayer(&count))?
                    }
                    (groups, None) => {
                        let budget = Budget::Global(kept_count(density, total));
                        select_groups(&mask, &scores.scores, groups, budget)?
                    }
                }
            }
        };
    }

    let report = DensityReport::of(&mask);
    let mut warnings = Vec::new();
    let structured = structure != Structure::Unstructured;
    match &fixed {
        None if structured => {
            warnings.push(format!(
                "structure keeps whole groups: {} of {total} prunable weights (rate {rate} asked; the mask records the rate it realises, {:.4})",
                report.kept,
                1.0 - report.density
            ));
        }
        None => {
            let wanted: usize = match distribution.layer_densities(current, target) {
                Some(per_layer) => {
                    current.iter().map(|(name, m)| kept_count(per_layer[name], m.len())).sum()
                }
                None => kept_count(target, total),
            };
            let before: usize = current.values().map(count_kept).sum();
            if report.kept < wanted {
                warnings.push(format!(
                    "rate {rate} asks to keep {wanted} of {total} prunable weights, but the input mask kept only {before}; the new mask keeps {}",
                    report.kept
                ));
            } else if report.kept == before && rate > 0.0 {
                warnings.push(format!(
                    "pruning removed nothing: `rate` counts all {total} prunable weights, and the input mask already keeps {before}, exactly the number that rate {rate} keeps; to prune the remaining weights further, raise `rate` above {:.4}",
                    1.0 - before as f64 / total.max(1) as f64
                ));
            }
        }
        // A layer whose input mask keeps fewer weights than its fixed count keeps them all,
        // and no more (masks never revive weights).
        Some(counts) => {
            let short: Vec<String> = counts
                .iter()
                .filter(|(name, c)| report.layers[name.as_str()].kept < **c)
                .map(|(name, c)| {
                    format!("{} of the {c} asked in `{name}`", report.layers[name.as_str()].kept)
                })
                .collect();
            if !short.is_empty() {
                warnings.push(format!(
                    "the pruner's per-layer counts ask to keep {} of {total} prunable weights, but the input mask kept only {}; the new mask keeps {}",
                    counts.values().sum::<usize>(),
                    short.join(", "),
                    report.kept
                ));
            }
        }
    }
    let collapsed = report.collapsed();
    if !collapsed.is_empty() {
        let message = format!(
            "layer collapse: {} kept no weights (global density {:.4})",
            collapsed.join(", "),
            report.density
        );
        if strict {
            return Err(Error::plugin(
                req.pruner_id,
                format!(
                    "{message}; lower the rate, use `distribution: uniform` or `erk`, or set `on_collapse: warn`"
                ),
            ));
        }
        warnings.push(message);
    }
    let rate = if fixed.is_some() || structured { 1.0 - report.density } else { rate };
    Ok(MaskArtifact {
        masks: mask,
        report,
        pruner: req.pruner_id.to_string(),
        rate,
        scored_at: req.scored_at,
        warnings,
    })
}

/// How the kept weights spread over the layers (the prune stage's `distribution`, or the older
/// `scope: layerwise` for `uniform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// All prunable weights ranked together.
    Global,
    /// Every layer at the same density.
    Uniform,
    /// Erdős–Rényi-Kernel (Evci et al. 2020): layer l's density proportional to the sum of its
    /// dimensions over their product.
    Erk,
    /// Erdős–Rényi: the same from the first two dimensions (no kernel terms).
    Er,
}

impl Distribution {
    /// The distribution `params` ask for; `scope: layerwise` is `distribution: uniform`, and the
    /// two may not contradict each other.
    pub fn of(params: &Params) -> Result<Self> {
        let given = params.get("distribution").map(|_| params.str("distribution")).transpose()?;
        let by_scope = match params.str("scope")? {
            "global" => None,
            "layerwise" => Some(Distribution::Uniform),
            other => {
                return Err(Error::param(
                    "scope",
                    format!("unknown scope `{other}`: expected `global` or `layerwise`"),
                ));
            }
        };
        let distribution = match given.unwrap_or("global") {
            "global" => Distribution::Global,
            "uniform" => Distribution::Uniform,
            "erk" => Distribution::Erk,
            "er" => Distribution::Er,
            other => {
                return Err(Error::param(
                    "distribution",
                    format!(
                        "unknown distribution `{other}`: expected `global`, `uniform`, `erk` or `er`"
                    ),
                ));
            }
        };
        match (by_scope, distribution) {
            (None, d) => Ok(d),
            (Some(u), Distribution::Global | Distribution::Uniform) => Ok(u),
            (Some(_), _) => Err(Error::param(
                "scope",
                "`scope: layerwise` is `distribution: uniform`; remove `scope` to use another distribution",
            )),
        }
    }

    /// Each layer's density for an overall density `density` of `mask`'s weights (`None` for
    /// `global`, which ranks across layers). ERK and ER scale raw densities r_l by one factor
    /// e so that sum(e r_l n_l) = density * sum(n_l); a layer whose e r_l would exceed 1 is
    /// dense and e is solved again over the others, until none exceeds 1.
    pub fn layer_densities(self, mask: &MaskSet, density: f64) -> Option<BTreeMap<String, f64>> {
        let raw = |shape: &[usize]| -> f64 {
            let dims: &[usize] = match self {
                Distribution::Er if shape.len() > 2 => &shape[..2],
                _ => shape,
            };
            let product = dims.iter().product::<usize>().max(1) as f64;
            dims.iter().sum::<usize>() as f64 / product
        };
        match self {
            Distribution::Global => None,
            Distribution::Uniform => {
                Some(mask.keys().map(|name| (name.clone(), density)).collect())
            }
            Distribution::Erk | Distribution::Er => {
                let mut dense: Vec<&String> = Vec::new();
                loop {
                    let (mut budget, mut weighted) = (0.0, 0.0);
                    for (name, m) in mask {
                        let n = m.len() as f64;
                        budget += density * n;
                        if dense.contains(&name) {
                            budget -= n;
                        } else {
                            weighted += raw(&m.shape) * n;
                        }
                    }
                    let scale = if weighted > 0.0 { budget / weighted } else { 0.0 };
                    let over: Vec<&String> = mask
                        .iter()
                        .filter(|(name, m)| !dense.contains(name) && scale * raw(&m.shape) > 1.0)
                        .map(|(name, _)| name)
                        .collect();
                    if over.is_empty() {
                        let of = |name: &String, m: &HostTensor| {
                            if dense.contains(&name) { 1.0 } else { scale * raw(&m.shape) }
                        };
                        return Some(mask.iter().map(|(n, m)| (n.clone(), of(n, m))).collect());
                    }
                    dense.extend(over);
                }
            }
        }
    }
}

/// The current mask must cover weights of the same shapes, with 0/1 entries.
fn check_current(req: &MaskRequest<'_>) -> Result<()> {
    for (name, m) in req.input.mask {
        match req.input.params.get(name) {
            Some(w) if w.shape == m.shape => {}
            Some(w) => {
                return Err(Error::shape(
                    name,
                    format!("mask {:?} vs weights {:?}", m.shape, w.shape),
                ));
            }
            None => {
                return Err(Error::param(name, "is prunable but missing from the scored weights"));
            }
        }
        if let Some(v) = m.data.iter().find(|v| **v != 0.0 && **v != 1.0) {
            return Err(Error::param(
                name,
                format!("the input mask holds {v}; masks hold only 0 and 1"),
            ));
        }
    }
    Ok(())
}

/// Refuses scores of the wrong names or sizes, and non-finite scores of alive weights.
fn check_scores(pruner: &str, mask: &MaskSet, scores: &NamedTensors) -> Result<()> {
    for (name, m) in mask {
        let s = scores.get(name).ok_or_else(|| {
            Error::plugin(pruner, format!("returned no scores for layer `{name}`"))
        })?;
        if s.data.len() != m.data.len() {
            return Err(Error::plugin(
                pruner,
                format!(
                    "returned {} scores for layer `{name}`, which has {} weights",
                    s.data.len(),
                    m.data.len()
                ),
            ));
        }
        if let Some(i) = s.data.iter().zip(&m.data).position(|(v, k)| *k != 0.0 && !v.is_finite()) {
            return Err(Error::plugin(
                pruner,
                format!(
                    "returned a non-finite score ({}) for layer `{name}` at index {i}",
                    s.data[i]
                ),
            ));
        }
    }
    Ok(())
}

/// Per-layer kept counts of a pruner must name every layer and fit in it.
fn check_counts(pruner: &str, mask: &MaskSet, counts: &BTreeMap<String, usize>) -> Result<()> {
    for (name, m) in mask {
        let c = counts.get(name).ok_or_else(|| {
            Error::plugin(pruner, format!("fixed per-layer counts but none for layer `{name}`"))
        })?;
        if *c > m.len() {
            return Err(Error::plugin(
                pruner,
                format!("asked to keep {c} weights of layer `{name}`, which has {}", m.len()),
            ));
        }
    }
    if let Some(extra) = counts.keys().find(|k| !mask.contains_key(*k)) {
        return Err(Error::plugin(
            pruner,
            format!("fixed a count for `{extra}`, which is not a prunable layer of this model"),
        ));
    }
    Ok(())
}

/// An alive weight in the ranking: (score, layer index, flat index).
type Entry = (f32, usize, usize);

/// Keeps the `keep` best alive weights over all layers (exact k, deterministic ties); also used
/// by analyses that need, for example, the magnitude mask of a checkpoint.
///
/// `scores` must have an entry of the same length for every layer of `mask`.
pub fn select_global(mask: &MaskSet, scores: &NamedTensors, keep: usize) -> MaskSet {
    let names: Vec<&String> = mask.keys().collect();
    let mut alive: Vec<Entry> = Vec::new();
    for (li, name) in names.iter().enumerate() {
        alive.extend(alive_entries(&mask[*name], &scores[*name], li));
    }
    let mut out: MaskSet =
        mask.iter().map(|(k, m)| (k.clone(), HostTensor::zeros(m.shape.clone()))).collect();
    for &(_, li, i) in best(&mut alive, keep) {
        out.get_mut(names[li]).expect("same keys").data[i] = 1.0;
    }
    out
}

/// Keeps, in each layer, the `keep(name, layer_total)` best alive weights.
pub fn select_per_layer(
    mask: &MaskSet,
    scores: &NamedTensors,
    keep: impl Fn(&str, usize) -> usize,
) -> MaskSet {
    let mut out = BTreeMap::new();
    for (name, m) in mask {
        let mut alive: Vec<Entry> = alive_entries(m, &scores[name], 0).collect();
        let mut layer = HostTensor::zeros(m.shape.clone());
        for &(_, _, i) in best(&mut alive, keep(name, m.len())) {
            layer.data[i] = 1.0;
        }
        out.insert(name.clone(), layer);
    }
    out
}

fn alive_entries<'a>(
    m: &'a HostTensor,
    s: &'a HostTensor,
    layer: usize,
) -> impl Iterator<Item = Entry> + 'a {
    // `+ 0.0` turns -0.0 into 0.0, so the two zeros tie.
    m.data
        .iter()
        .enumerate()
        .filter(|(_, k)| **k != 0.0)
        .map(move |(i, _)| (s.data[i] + 0.0, layer, i))
}

/// The `keep` best entries: higher score first, then lower layer index, then lower flat index.
/// The order is total, so the selected set is unique.
fn best(entries: &mut [Entry], keep: usize) -> &[Entry] {
    let order = |a: &Entry, b: &Entry| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2));
    let keep = keep.min(entries.len());
    if keep > 0 && keep < entries.len() {
        entries.select_nth_unstable_by(keep - 1, order);
    }
    &entries[..keep]
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use ticketlab_api::plugin::Scores;

    /// Scores from a fixed vector (layers in name order); records the mask it saw each round.
    struct Fixed {
        scores: Vec<f32>,
        rounds: usize,
        keep: Option<BTreeMap<String, usize>>,
        seen: Mutex<Vec<MaskSet>>,
    }

    impl Fixed {
        fn new(scores: Vec<f32>) -> Self {
            Self { scores, rounds: 1, keep: None, seen: Mutex::new(Vec::new()) }
        }
    }

    impl PrunerPlugin for Fixed {
        fn score(&self, _: &Params, ctx: &PruneContext<'_>) -> Result<Scores> {
            self.seen.lock().unwrap().push(ctx.mask.clone());
            let mut scores = NamedTensors::new();
            let mut offset = 0;
            for (name, m) in ctx.mask {
                scores.insert(
                    name.clone(),
                    HostTensor::new(
                        m.shape.clone(),
                        self.scores[offset..offset + m.len()].to_vec(),
                    ),
                );
                offset += m.len();
            }
            Ok(Scores { scores, keep_per_layer: self.keep.clone() })
        }
        fn rounds(&self, _: &Params) -> usize {
            self.rounds
        }
    }

    fn params(rate: f64, scope: &str) -> Params {
        Params::new()
            .with("rate", rate)
            .with("scope", scope)
            .with("schedule", "exponential")
            .with("on_collapse", "warn")
    }

    fn masks(a: Vec<f32>, b: Vec<f32>) -> MaskSet {
        [
            ("a".to_string(), HostTensor::new(vec![a.len()], a)),
            ("b".to_string(), HostTensor::new(vec![b.len()], b)),
        ]
        .into()
    }

    fn run(pruner: &Fixed, p: &Params, current: &MaskSet) -> Result<MaskArtifact> {
        let data = ticketlab_api::data::Dataset {
            description: String::new(),
            info: ticketlab_api::data::DatasetInfo {
                input_shape: vec![1],
                output_dim: 1,
                tokens: None,
            },
            train: ticketlab_api::data::Split {
                x: HostTensor::zeros(vec![0, 1]),
                y: ticketlab_api::data::Targets::Classes { labels: vec![], n_classes: 1 },
            },
            test: ticketlab_api::data::Split {
                x: HostTensor::zeros(vec![0, 1]),
                y: ticketlab_api::data::Targets::Classes { labels: vec![], n_classes: 1 },
            },
        };
        let ctx = ticketlab_api::plugin::StageContext::new("mask", 0, ".");
        let weights = current.clone();
        let input = PruneContext {
            arch: &NoArch,
            params: &weights,
            mask: current,
            reference_mask: None,
            data: Some(&data),
            ctx: &ctx,
            round: (0, 1),
        };
        make_mask(
            pruner,
            &MaskRequest { pruner_id: "pruner/fixed@1", params: p, input, scored_at: None },
        )
    }

    struct NoArch;
    impl Architecture for NoArch {
        fn parameters(&self) -> Vec<ticketlab_api::tensor::ParamDef> {
            vec![]
        }
        fn forward(
            &self,
            _: &mut ticketlab_api::tensor::GraphBuilder,
            _: &BTreeMap<String, ticketlab_api::tensor::Var>,
            x: ticketlab_api::tensor::Var,
        ) -> Result<ticketlab_api::tensor::Var> {
            Ok(x)
        }
    }

    fn assert_subset(new: &MaskSet, old: &MaskSet) {
        for (name, m) in new {
            for (n, o) in m.data.iter().zip(&old[name].data) {
                assert!(*n <= *o, "mask of `{name}` revived a weight");
            }
        }
    }

    /// ERK on three layers: the two small ones would exceed 100% and are kept dense, and the
    /// large one takes the rest of the budget, so the total matches the rate exactly.
    #[test]
    fn erk_densities_follow_the_formula_and_cap_dense_layers() {
        let layer =
            |shape: Vec<usize>| HostTensor::new(shape.clone(), vec![1.0; shape.iter().product()]);
        let mask: MaskSet = [
            ("a".to_string(), layer(vec![10, 20])),
            ("b".to_string(), layer(vec![100, 100])),
            ("c".to_string(), layer(vec![2, 3])),
        ]
        .into();
        let d = Distribution::Erk.layer_densities(&mask, 0.5).unwrap();
        assert_eq!((d["a"], d["c"]), (1.0, 1.0));
        // b keeps the budget left: 0.5 * 10206 - 206 of its 10000 weights.
        assert!((d["b"] - (0.5 * 10206.0 - 206.0) / 10000.0).abs() < 1e-12, "{d:?}");
        // Uncapped, densities are proportional to (sum of dims) / (product of dims).
        let low = Distribution::Erk.layer_densities(&mask, 0.01).unwrap();
        assert!((low["a"] / low["b"] - (30.0 / 200.0) / (200.0 / 10000.0)).abs() < 1e-9, "{low:?}");
        let total: f64 = mask.iter().map(|(n, m)| low[n] * m.len() as f64).sum();
        assert!((total - 0.01 * 10206.0).abs() < 1e-9);
        // ER ignores dimensions beyond the first two; for matrices it is ERK.
        let conv: MaskSet =
            [("k".to_string(), layer(vec![4, 3, 3, 3])), ("w".to_string(), layer(vec![10, 10]))]
                .into();
        let erk = Distribution::Erk.layer_densities(&conv, 0.3).unwrap();
        let er = Distribution::Er.layer_densities(&conv, 0.3).unwrap();
        assert_ne!(erk["k"], er["k"]);
        assert_eq!(Distribution::Er.layer_densities(&mask, 0.5), Some(d));
    }

    #[test]
    fn a_mask_with_the_erk_distribution_keeps_each_layers_count() {
        let current = masks(vec![1.0; 4], vec![1.0; 16]);
        let p = params(0.5, "global").with("distribution", "erk");
        let scores: Vec<f32> = (0..20).map(|i| i as f32).collect();
        let m = run(&Fixed::new(scores), &p, &current).unwrap();
        let expected = Distribution::Erk.layer_densities(&current, 0.5).unwrap();
        for (name, layer) in &m.masks {
            let kept = layer.data.iter().filter(|v| **v == 1.0).count();
            assert_eq!(kept, kept_count(expected[name], layer.len()), "{name}");
        }
        assert_eq!(m.report.kept, 10);
        // `scope: layerwise` is `distribution: uniform`, and contradicting it is refused.
        let uniform = params(0.5, "global").with("distribution", "uniform");
        let scores: Vec<f32> = (0..20).map(|i| i as f32).collect();
        assert_eq!(
            run(&Fixed::new(scores.clone()), &uniform, &current).unwrap().masks,
            run(&Fixed::new(scores.clone()), &params(0.5, "layerwise"), &current).unwrap().masks
        );
        let both = params(0.5, "layerwise").with("distribution", "erk");
        let err = run(&Fixed::new(scores), &both, &current).unwrap_err().to_string();
        assert!(err.contains("distribution: uniform"), "{err}");
    }

    /// Through `make_mask`: 2:4 keeps half of every layer whatever the rate and records the
    /// rate it realises; neurons keep whole rows within the rate's count.
    #[test]
    fn structured_masks_record_the_rate_they_realise() {
        let current: MaskSet = [
            ("a".to_string(), HostTensor::new(vec![2, 4], vec![1.0; 8])),
            ("b".to_string(), HostTensor::new(vec![3, 4], vec![1.0; 12])),
        ]
        .into();
        let scores: Vec<f32> = (0..20).map(|i| ((i * 7) % 11) as f32).collect();
        let two_of_four =
            params(0.9, "global").with("structure", "n_of_m").with("n", 2).with("m", 4);
        let m = run(&Fixed::new(scores.clone()), &two_of_four, &current).unwrap();
        assert_eq!(m.report.kept, 10);
        assert_eq!(m.rate, 0.5);
        for layer in m.masks.values() {
            assert!(layer.data.chunks(4).all(|g| g.iter().sum::<f32>() == 2.0));
        }
        let neurons = params(0.5, "global").with("structure", "neurons");
        let m = run(&Fixed::new(scores), &neurons, &current).unwrap();
        assert!(m.report.kept <= 10 && m.report.kept.is_multiple_of(4), "{:?}", m.report);
        for layer in m.masks.values() {
            assert!(layer.data.chunks(4).all(|row| row.iter().all(|&v| v == row[0])), "whole rows");
        }
        assert_eq!(m.rate, 1.0 - m.report.density);
        assert!(m.warnings.iter().any(|w| w.contains("whole groups")), "{:?}", m.warnings);
    }

    #[test]
    fn global_exact_k_with_deterministic_ties() {
        let current = masks(vec![1.0; 4], vec![1.0; 4]);
        // Four scores tie at 5.0 across layers: layer `a` wins the tie, then lower indices.
        let m = run(
            &Fixed::new(vec![5.0, 1.0, 5.0, 0.0, 5.0, 5.0, 2.0, 3.0]),
            &params(0.5, "global"),
            &current,
        )
        .unwrap();
        assert_eq!(m.masks["a"].data, vec![1.0, 0.0, 1.0, 0.0]);
        assert_eq!(m.masks["b"].data, vec![1.0, 1.0, 0.0, 0.0]);
        assert_eq!(m.report.kept, 4);
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        // Signed zeros tie: the lower index wins whichever zero it holds.
        let z = run(
            &Fixed::new(vec![-0.0, 0.0, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0]),
            &params(0.875, "global"),
            &current,
        )
        .unwrap();
        assert_eq!(z.masks["a"].data, vec![1.0, 0.0, 0.0, 0.0]);
    }

    /// `rate` counts all prunable weights: pruning 0.5 from a mask that already keeps half
    /// removes nothing, and says so with the rate that would prune further.
    #[test]
    fn pruning_that_removes_nothing_warns() {
        let current = masks(vec![1.0, 1.0, 0.0, 0.0], vec![1.0, 0.0, 1.0, 0.0]);
        let m =
            run(&Fixed::new((0..8).map(|i| i as f32).collect()), &params(0.5, "global"), &current)
                .unwrap();
        assert_eq!(m.masks, current);
        assert!(
            m.warnings
                .iter()
                .any(|w| w.starts_with("pruning removed nothing") && w.contains("above 0.5000")),
            "{:?}",
            m.warnings
        );
        let m =
            run(&Fixed::new((0..8).map(|i| i as f32).collect()), &params(0.75, "global"), &current)
                .unwrap();
        assert_eq!(m.report.kept, 2);
        assert!(!m.warnings.iter().any(|w| w.contains("removed nothing")), "{:?}", m.warnings);
    }

    #[test]
    fn exact_k_rounds_half_up_and_rate_zero_keeps_everything() {
        let current = masks(vec![1.0; 5], vec![1.0; 5]);
        let scores: Vec<f32> = (0..10).map(|i| i as f32).collect();
        // 10 weights at rate 0.25: round(7.5) = 8 kept.
        assert_eq!(
            run(&Fixed::new(scores.clone()), &params(0.25, "global"), &current)
                .unwrap()
                .report
                .kept,
            8
        );
        assert_eq!(
            run(&Fixed::new(scores.clone()), &params(0.0, "global"), &current).unwrap().report.kept,
            10
        );
        // Layer-wise: round(0.7 * 5) = 4 per layer (3.5 rounds away from zero).
        let m = run(&Fixed::new(scores), &params(0.3, "layerwise"), &current).unwrap();
        assert_eq!((m.report.layers["a"].kept, m.report.layers["b"].kept), (4, 4));
    }

    #[test]
    fn pruned_weights_are_never_revived_or_ranked() {
        // `a[0]` is already pruned; its huge score must not bring it back.
        let current = masks(vec![0.0, 1.0, 1.0, 1.0], vec![1.0; 4]);
        let m = run(
            &Fixed::new(vec![100.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]),
            &params(0.5, "global"),
            &current,
        )
        .unwrap();
        assert_eq!(m.masks["a"].data, vec![0.0; 4]);
        assert_eq!(m.masks["b"].data, vec![1.0; 4]);
        assert_subset(&m.masks, &current);
        // A non-finite score of a pruned weight does not matter.
        let n = run(
            &Fixed::new(vec![f32::NAN, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]),
            &params(0.5, "global"),
            &current,
        )
        .unwrap();
        assert_eq!(n.masks, m.masks);
    }

    #[test]
    fn an_input_sparser_than_the_target_is_kept_with_a_warning() {
        let current = masks(vec![0.0, 0.0, 0.0, 1.0], vec![0.0, 0.0, 1.0, 1.0]);
        let m = run(&Fixed::new(vec![1.0; 8]), &params(0.5, "global"), &current).unwrap();
        assert_eq!(m.masks, current);
        assert!(m.warnings[0].contains("kept only 3"), "{:?}", m.warnings);
    }

    #[test]
    fn layerwise_keeps_the_rate_in_every_layer_and_collapse_is_reported() {
        let current = masks(vec![1.0; 4], vec![1.0; 4]);
        let scores = vec![1.0, 2.0, 3.0, 4.0, 9.0, 9.0, 9.0, 9.0];
        let m = run(&Fixed::new(scores.clone()), &params(0.5, "layerwise"), &current).unwrap();
        assert_eq!(m.masks["a"].data, vec![0.0, 0.0, 1.0, 1.0]);
        assert_eq!(m.report.layers["b"].kept, 2);
        let g = run(&Fixed::new(scores.clone()), &params(0.5, "global"), &current).unwrap();
        assert_eq!(g.report.layers["a"].kept, 0);
        assert!(g.warnings[0].contains("layer collapse: a"), "{:?}", g.warnings);
        let strict = params(0.5, "global").with("on_collapse", "error");
        let err = run(&Fixed::new(scores), &strict, &current).unwrap_err().to_string();
        assert!(err.contains("pruner/fixed@1") && err.contains("layer collapse"), "{err}");
    }

    #[test]
    fn iterative_rounds_follow_the_schedule_and_stay_monotone() {
        let current = masks(vec![1.0; 50], vec![1.0; 50]);
        // Scores that would, without the invariants, bring back what earlier rounds removed.
        let scores: Vec<f32> = (0..100).map(|i| ((i * 37) % 100) as f32).collect();
        for schedule in ["exponential", "linear"] {
            let mut pruner = Fixed::new(scores.clone());
            pruner.rounds = 3;
            let m =
                run(&pruner, &params(0.9, "global").with("schedule", schedule), &current).unwrap();
            assert_eq!(m.report.kept, 10);
            let seen = pruner.seen.lock().unwrap();
            let kept: Vec<usize> = seen.iter().map(|s| s.values().map(count_kept).sum()).collect();
            let expect = match schedule {
                "linear" => vec![100, 70, 40],
                _ => vec![
                    100,
                    kept_count(0.1f64.powf(1.0 / 3.0), 100),
                    kept_count(0.1f64.powf(2.0 / 3.0), 100),
                ],
            };
            assert_eq!(kept, expect, "{schedule}");
            for pair in seen.windows(2) {
                assert_subset(&pair[1], &pair[0]);
            }
            assert_subset(&m.masks, seen.last().unwrap());
        }
        // From a sparse input the schedule starts at the input density.
        assert!((Schedule::Exponential.density(0.5, 0.125, 0, 2) - 0.25).abs() < 1e-12);
        assert!((Schedule::Linear.density(0.5, 0.1, 1, 2) - 0.1).abs() < 1e-12);
        assert_eq!(Schedule::Exponential.density(0.2, 0.4, 0, 3), 0.4);
    }

    #[test]
    fn fixed_per_layer_counts_override_rate_and_are_checked() {
        let current = masks(vec![1.0; 4], vec![1.0; 4]);
        let mut pruner = Fixed::new(vec![1.0, 2.0, 3.0, 4.0, 4.0, 3.0, 2.0, 1.0]);
        pruner.keep = Some([("a".to_string(), 1), ("b".to_string(), 3)].into());
        let m = run(&pruner, &params(0.9, "global"), &current).unwrap();
        assert_eq!(m.masks["a"].data, vec![0.0, 0.0, 0.0, 1.0]);
        assert_eq!(m.masks["b"].data, vec![1.0, 1.0, 1.0, 0.0]);
        assert!((m.rate - 0.5).abs() < 1e-12, "the realised rate is recorded");
        pruner.keep = Some([("a".to_string(), 1)].into());
        let err = run(&pruner, &params(0.9, "global"), &current).unwrap_err().to_string();
        assert!(err.contains("none for layer `b`"), "{err}");
        pruner.keep = Some([("a".to_string(), 5), ("b".to_string(), 0)].into());
        assert!(
            run(&pruner, &params(0.9, "global"), &current)
                .unwrap_err()
                .to_string()
                .contains("has 4")
        );
    }

    #[test]
    fn fixed_counts_on_a_sparser_input_keep_fewer_weights_with_a_warning() {
        // Layer `a` of the input keeps 2 weights but the pruner asks for 3 (a shuffled mask of a
        // denser reference): `a` keeps its 2, `b` its count, and the shortfall is reported.
        let current = masks(vec![1.0, 0.0, 1.0, 0.0], vec![1.0; 4]);
        let mut pruner = Fixed::new(vec![1.0, 2.0, 3.0, 4.0, 4.0, 3.0, 2.0, 1.0]);
        pruner.keep = Some([("a".to_string(), 3), ("b".to_string(), 1)].into());
        let m = run(&pruner, &params(0.5, "global"), &current).unwrap();
        assert_eq!(m.masks["a"].data, vec![1.0, 0.0, 1.0, 0.0]);
        assert_eq!(m.masks["b"].data, vec![1.0, 0.0, 0.0, 0.0]);
        assert_eq!(
            m.warnings,
            [
                "the pruner's per-layer counts ask to keep 4 of 8 prunable weights, but the input mask kept only 2 of the 3 asked in `a`; the new mask keeps 3"
            ]
        );
        assert!((m.rate - 5.0 / 8.0).abs() < 1e-12, "the realised rate is recorded");
        // Counts the input can meet: no warning.
        pruner.keep = Some([("a".to_string(), 2), ("b".to_string(), 1)].into());
        assert!(run(&pruner, &params(0.5, "global"), &current).unwrap().warnings.is_empty());
    }

    #[test]
    fn apply_mask_zeroes_pruned_weights_only() {
        let mut w: NamedTensors = [
            ("a".to_string(), HostTensor::new(vec![3], vec![1.0, -2.0, 3.0])),
            ("bias".to_string(), HostTensor::new(vec![1], vec![4.0])),
        ]
        .into();
        let m: MaskSet = [
            ("a".to_string(), HostTensor::new(vec![3], vec![1.0, 0.0, 1.0])),
            ("gone".to_string(), HostTensor::zeros(vec![2])),
        ]
        .into();
        apply_mask(&mut w, &m);
        assert_eq!(w["a"].data, vec![1.0, 0.0, 3.0]);
        assert_eq!(w["bias"].data, vec![4.0], "parameters without a mask are untouched");
        assert_eq!(w.len(), 2, "mask entries without a parameter add nothing");
    }

    #[test]
    fn nan_scores_bad_rates_and_bad_masks_are_refused() {
        let current = masks(vec![1.0; 2], vec![1.0; 2]);
        let err = run(&Fixed::new(vec![1.0, f32::NAN, 1.0, 1.0]), &params(0.5, "global"), &current)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("non-finite") && err.contains("pruner/fixed") && err.contains("`a`"),
            "{err}"
        );
        for bad in [1.0, -0.1, 1.5] {
            let err = run(&Fixed::new(vec![1.0; 4]), &params(bad, "global"), &current)
                .unwrap_err()
                .to_string();
            assert!(err.contains("[0, 1)"), "{err}");
        }
        let err = run(&Fixed::new(vec![1.0; 4]), &params(0.5, "everywhere"), &current)
            .unwrap_err()
            .to_string();
        assert!(err.contains("scope"), "{err}");
        let err = run(
            &Fixed::new(vec![1.0; 4]),
            &params(0.5, "global"),
            &masks(vec![0.5, 1.0], vec![1.0; 2]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("only 0 and 1"), "{err}");
    }

    #[test]
    fn selection_is_independent_of_input_order() {
        // The same alive set and scores in two layers give the same mask however they are laid out.
        let mask = masks(vec![1.0; 6], vec![1.0; 6]);
        let scores: NamedTensors = [
            ("a".to_string(), HostTensor::new(vec![6], vec![3.0, 3.0, 1.0, 3.0, 2.0, 3.0])),
            ("b".to_string(), HostTensor::new(vec![6], vec![3.0, 0.0, 3.0, 2.0, 3.0, 1.0])),
        ]
        .into();
        for keep in 0..=12 {
            let m = select_global(&mask, &scores, keep);
            assert_eq!(m.values().map(count_kept).sum::<usize>(), keep);
            if keep == 5 {
                // Six scores of 3.0: `a`'s four first, then `b[0]`.
                assert_eq!(m["a"].data, vec![1.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
                assert_eq!(m["b"].data, vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
            }
        }
    }
}
