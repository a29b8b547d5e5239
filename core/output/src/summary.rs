//! The per-arm headline rows of `summary.csv` and `summary.json` (schema: the README's `summary.json` section).
//!
//! Every train stage that produced a [`RunArtifact`](ticketlab_api::artifact::RunArtifact) is an *arm*.
//! An arm's speed-up is [`speedup_t_gen`]: `baseline t_gen / arm t_gen` (above 1: the arm
//! generalises sooner). The first report stage (in IR order) that compares the arm gives its
//! baseline and the speed-up it computed ([`ReportPlugin::comparisons`]); in a sweep that is the
//! baseline copy of the arm's own sweep point and seed. An arm no report compares is measured
//! against the summary's `baseline`: the baseline of the first compared arm (in IR order), else
//! the first arm.
//!
//! [`ReportPlugin::comparisons`]: ticketlab_api::plugin::ReportPlugin::comparisons

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use ticketlab_api::artifact::Artifact;
use ticketlab_api::ir::{ExperimentIr, StageIr, StageKind, written_name};
use ticketlab_api::metrics::{RunSummary, speedup_t_gen};
use ticketlab_api::plugin::registry::Registry;
use ticketlab_api::plugin::{Comparison, PluginKind};

/// One row of the summary: the headline numbers of one trained arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// The train stage's name.
    pub arm: String,
    /// The stage's name in the experiment file (`arm` without its sweep point and seed repeat).
    #[serde(default)]
    pub stage: String,
    /// The root seed of the arm's repeat (`--seeds`, `sweep: seeds`).
    #[serde(default)]
    pub seed: u64,
    /// The swept values of the arm's sweep point (`STAGE.PARAM` to value; empty when not swept).
    #[serde(default)]
    pub sweep: BTreeMap<String, Value>,
    /// The pruner of the mask the arm trained under (`None` for a dense arm).
    #[serde(default)]
    pub pruner: Option<String>,
    /// The run's own numbers: steps, threshold, t_mem, t_gen, tau_grok, final accuracies and
    /// losses, density, L1 and L2.
    #[serde(flatten)]
    pub run: RunSummary,
    /// Pruning rate of the mask the arm trained under, traced upstream through rewind and
    /// model stages to a prune stage; `None` for a dense arm.
    pub mask_rate: Option<f64>,
    /// `baseline t_gen / arm t_gen` (> 1: sooner than the baseline); `None` when either arm
    /// never reached the threshold.
    pub speedup_t_gen: Option<f64>,
    /// The arm `speedup_t_gen` is measured against (the arm itself for a baseline); `None`
    /// when there is none. Absent from files written before it existed.
    #[serde(default)]
    pub baseline: Option<String>,
}

impl SummaryRow {
    /// How figures name the arm: its stage without a `_train` ending and with spaces for
    /// underscores, then in brackets its pruner, its rate as `k = ...` (when `with_rate`) and
    /// any other swept value (`ticket (magnitude, k = 0.6, width = 192)`). Seeds are not named.
    pub fn display_name(&self, with_rate: bool) -> String {
        let stage = self.stage.strip_suffix("_train").filter(|s| !s.is_empty());
        let mut name = stage.unwrap_or(&self.stage).replace('_', " ");
        let mut details: Vec<String> = self.pruner.iter().cloned().collect();
        if let Some(rate) = self.mask_rate.filter(|_| with_rate) {
            details.push(format!("k = {rate}"));
        }
        for (key, value) in self.other_swept() {
            let short = key.split_once('.').map_or(key.as_str(), |(_, param)| param);
            details.push(format!("{short} = {}", cell(Some(value))));
        }
        if !details.is_empty() {
            name = format!("{name} ({})", details.join(", "));
        }
        name
    }

    /// The swept values other than the mask's rate and level and the pruner the arm's name
    /// already shows (`init.width=192`, a learning rate): arms that differ in them are
    /// different lines of a figure, never seeds of one.
    pub fn other_swept(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.sweep.iter().filter(|(key, value)| {
            !(key.ends_with(".rate")
                || key.ends_with(".level")
                || key.ends_with(".uses") && value.as_str() == self.pruner.as_deref())
        })
    }
}

/// The content of `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The experiment's name.
    pub experiment: String,
    /// The baseline arm: a report stage's `baseline`, else the first arm in IR order; `None`
    /// when nothing was trained.
    pub baseline: Option<String>,
    /// One row per arm, in IR order.
    pub arms: Vec<SummaryRow>,
}

impl Summary {
    /// Builds the summary of every finished train stage of `ir` found in `artifacts`, asking
    /// the report stages' plugins in `registry` which arms they compare.
    pub fn build(
        ir: &ExperimentIr,
        artifacts: &BTreeMap<String, Artifact>,
        registry: &Registry,
    ) -> Self {
        let mut arms: Vec<SummaryRow> = ir
            .stages
            .iter()
            .filter(|s| s.kind == StageKind::Train)
            .filter_map(|s| match artifacts.get(&s.name) {
                Some(Artifact::Run(run)) => Some(SummaryRow {
                    arm: s.name.clone(),
                    stage: written_name(&s.name).to_string(),
                    seed: repeat_seed(&s.name).unwrap_or(ir.seed),
                    sweep: s.sweep.clone(),
                    pruner: mask_stage(ir, &s.name).and_then(|m| m.plugin.clone()),
                    run: run.summary.clone(),
                    mask_rate: mask_rate(ir, artifacts, &s.name),
                    speedup_t_gen: None,
                    baseline: None,
                }),
                _ => None,
            })
            .collect();
        let compared = comparisons(ir, artifacts, registry);
        let baseline = ir
            .stages
            .iter()
            .filter_map(|s| compared.get(&s.name))
            .map(|c| &c.baseline)
            .find(|b| arms.iter().any(|a| &a.arm == *b))
            .cloned()
            .or_else(|| arms.first().map(|a| a.arm.clone()));
        let t_gen = |name: &str| arms.iter().find(|a| a.arm == name).and_then(|a| a.run.t_gen);
        let measured: Vec<(Option<String>, Option<f64>)> = arms
            .iter()
            .map(|a| match compared.get(&a.arm) {
                Some(c) => (Some(c.baseline.clone()), c.speedup_t_gen),
                None => (
                    baseline.clone(),
                    speedup_t_gen(baseline.as_deref().and_then(t_gen), a.run.t_gen),
                ),
            })
            .collect();
        for (a, (base, s)) in arms.iter_mut().zip(measured) {
            a.baseline = base;
            a.speedup_t_gen = s;
        }
        Self { experiment: ir.name.clone(), baseline, arms }
    }

    /// The row of arm `name`.
    pub fn arm(&self, name: &str) -> Option<&SummaryRow> {
        self.arms.iter().find(|a| a.arm == name)
    }

    /// What the speed-up of `arm` is at least when its baseline never generalised within its
    /// steps while `arm` did: `baseline steps / arm t_gen` (the baseline's t_gen lies beyond
    /// its last step). `None` when the speed-up is known or nothing bounds it, as when the
    /// baseline was stopped early (a stop rule, successive halving), so its steps bound nothing.
    pub fn speedup_at_least(&self, arm: &SummaryRow) -> Option<f64> {
        let t_gen = arm.run.t_gen.filter(|_| arm.speedup_t_gen.is_none())?;
        let base = self.arm(arm.baseline.as_deref()?).filter(|b| b.arm != arm.arm)?;
        let ran_its_course = base.run.t_gen.is_none() && base.run.stopped.is_none();
        ran_its_course.then(|| base.run.steps as f64 / t_gen.max(1) as f64)
    }

    /// The arms grouped over their seed repeats: one group per written stage and sweep point,
    /// stages in the order they first appear and a stage's points by their swept values (numbers
    /// by value, so 0.7 before 0.75), each seed measured against its own baseline.
    pub fn over_seeds(&self) -> Vec<SeedGroup> {
        let mut groups: Vec<SeedGroup> = Vec::new();
        for a in &self.arms {
            let i = match groups.iter().position(|g| g.stage == a.stage && g.sweep == a.sweep) {
                Some(i) => i,
                None => {
                    groups.push(SeedGroup {
                        stage: a.stage.clone(),
                        sweep: a.sweep.clone(),
                        ..SeedGroup::default()
                    });
                    groups.len() - 1
                }
            };
            let g = &mut groups[i];
            g.seeds.push(a.seed);
            g.t_mem.push(a.run.t_mem.map(|t| t as f64));
            g.t_gen.push(a.run.t_gen.map(|t| t as f64));
            g.tau_grok.push(a.run.tau_grok);
            g.speedup_t_gen.push(a.speedup_t_gen);
            g.speedup_at_least.push(self.speedup_at_least(a));
            g.final_test_acc.push(a.run.final_test_acc);
        }
        let stages: Vec<String> = self.arms.iter().map(|a| a.stage.clone()).collect();
        let first = |stage: &str| stages.iter().position(|s| s == stage).unwrap_or(usize::MAX);
        groups.sort_by(|a, b| {
            first(&a.stage).cmp(&first(&b.stage)).then_with(|| compare_points(&a.sweep, &b.sweep))
        });
        groups
    }

    /// The stages (as written) of the arms that are their own baseline.
    pub fn baseline_stages(&self) -> Vec<&str> {
        self.arms
            .iter()
            .filter(|a| a.baseline.as_deref() == Some(a.arm.as_str()))
            .map(|a| a.stage.as_str())
            .collect()
    }

    /// The arm that generalised soonest over its seeds, among the arms that are not a
    /// baseline (with at least two of them to choose from): the lowest median t_gen over the
    /// seeds (a seed that never generalised counts as later than every step), ties broken by
    /// the lowest median tau_grok. With the median t_gen and tau_grok (`None`: never, which is
    /// the best only when every arm's median is never).
    pub fn best_over_seeds(&self) -> Option<(SeedGroup, Option<f64>, Option<f64>)> {
        let baselines = self.baseline_stages();
        let key = |x: Option<f64>| x.unwrap_or(f64::INFINITY);
        let groups: Vec<SeedGroup> = self
            .over_seeds()
            .into_iter()
            .filter(|g| !baselines.contains(&g.stage.as_str()) && !g.seeds.is_empty())
            .collect();
        if groups.len() < 2 {
            return None;
        }
        groups
            .into_iter()
            .map(|g| {
                let (t, tau) = (median_never_last(&g.t_gen), median_never_last(&g.tau_grok));
                (g, t, tau)
            })
            .min_by(|a, b| key(a.1).total_cmp(&key(b.1)).then(key(a.2).total_cmp(&key(b.2))))
    }

    /// The CSV text of `summary.csv`: a header and one line per arm; absent values are empty.
    /// Columns: `arm`, `stage`, `seed`, `pruner`, one per swept parameter (`STAGE.PARAM`, sorted),
    /// then the numbers of [`NUMBER_COLUMNS`].
    pub fn to_csv(&self) -> ticketlab_api::Result<String> {
        let swept = swept_keys(self.arms.iter().map(|a| &a.sweep));
        let mut header: Vec<String> = ["arm", "stage", "seed", "pruner"].map(String::from).to_vec();
        header.extend(swept.iter().cloned());
        header.extend(NUMBER_COLUMNS.iter().map(|c| c.to_string()));
        let rows = self.arms.iter().map(|a| {
            let mut row =
                vec![a.arm.clone(), a.stage.clone(), a.seed.to_string(), opt(a.pruner.as_deref())];
            row.extend(swept.iter().map(|k| cell(a.sweep.get(k))));
            row.extend(number_cells(a));
            row
        });
        write_csv("summary.csv", &header, rows)
    }
}

/// One arm over its seed repeats: the values of each seed (`None`: never reached).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeedGroup {
    /// The stage's name in the experiment file.
    pub stage: String,
    /// The sweep point.
    pub sweep: BTreeMap<String, Value>,
    /// The seeds, in order.
    pub seeds: Vec<u64>,
    /// t_mem of each seed.
    pub t_mem: Vec<Option<f64>>,
    /// t_gen of each seed.
    pub t_gen: Vec<Option<f64>>,
    /// tau_grok of each seed.
    pub tau_grok: Vec<Option<f64>>,
    /// The speed-up of each seed against its own baseline.
    pub speedup_t_gen: Vec<Option<f64>>,
    /// Where the baseline of a seed never generalised and the arm did, the speed-up's lower
    /// bound ([`Summary::speedup_at_least`]).
    pub speedup_at_least: Vec<Option<f64>>,
    /// The final test accuracy of each seed.
    pub final_test_acc: Vec<Option<f64>>,
}

impl SeedGroup {
    /// The arm over its seeds: `stage`, or `stage [axis=value, ...]` in a sweep.
    pub fn name(&self) -> String {
        let point: Vec<String> =
            self.sweep.iter().map(|(k, v)| format!("{k}={}", cell(Some(v)))).collect();
        if point.is_empty() {
            self.stage.clone()
        } else {
            format!("{} [{}]", self.stage, point.join(", "))
        }
    }
}

/// Orders two sweep points by their values, axis by axis: numbers (and strings that are
/// numbers, such as a checkpoint step `"500"`) by value, after any other value, which goes by
/// its JSON text.
fn compare_points(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>) -> std::cmp::Ordering {
    let key = |v: &Value| {
        let number = v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse::<f64>().ok()));
        (number, v.to_string())
    };
    let values = |p: &BTreeMap<String, Value>| p.values().map(key).collect::<Vec<_>>();
    let (a, b) = (values(a), values(b));
    a.iter()
        .zip(&b)
        .map(|((x, xs), (y, ys))| match (x, y) {
            (Some(x), Some(y)) => x.total_cmp(y),
            (None, None) => xs.cmp(ys),
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
        })
        .find(|o| o.is_ne())
        .unwrap_or_else(|| a.len().cmp(&b.len()))
}

/// The median of `values` where `None` ("never") ranks above every number; `None` when the
/// median is a never (half the values or more, or a middle pair with one).
pub fn median_never_last(values: &[Option<f64>]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().map(|x| x.unwrap_or(f64::INFINITY)).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return None;
    }
    let m = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    m.is_finite().then_some(m)
}

/// Mean, sample standard deviation, median, minimum and maximum of the values reached, and how
/// many were not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Values reached.
    pub n: usize,
    /// Values never reached.
    pub never: usize,
    /// Their mean.
    pub mean: f64,
    /// Their sample standard deviation (0 for one value).
    pub std: f64,
    /// Their median.
    pub median: f64,
    /// Their smallest.
    pub min: f64,
    /// Their largest.
    pub max: f64,
}

impl Spread {
    /// The spread of the values reached; `None` when none was.
    pub fn of(values: &[Option<f64>]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().flatten().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Spread {
            n,
            never: values.len() - n,
            mean,
            std: var.sqrt(),
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// The numeric columns of `summary.csv`, in order, after the arm's identity and sweep point.
pub const NUMBER_COLUMNS: [&str; 16] = [
    "steps",
    "threshold",
    "t_mem",
    "t_gen",
    "tau_grok",
    "final_train_acc",
    "final_test_acc",
    "final_train_loss",
    "final_test_loss",
    "density",
    "l1",
    "l2",
    "mask_rate",
    "speedup_t_gen",
    "baseline",
    "stopped",
];

/// A CSV cell of an optional value: empty when absent.
pub(crate) fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// A swept value as a CSV cell: a string as itself, anything else as compact JSON.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// Every swept key of `points`, sorted.
pub fn swept_keys<'a>(points: impl Iterator<Item = &'a BTreeMap<String, Value>>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = points.flat_map(|p| p.keys()).collect();
    keys.into_iter().cloned().collect()
}

/// CSV text with `header` and `rows`.
pub fn write_csv(
    file: &str,
    header: &[String],
    rows: impl Iterator<Item = Vec<String>>,
) -> ticketlab_api::Result<String> {
    let io = |e: csv::Error| output(file, e);
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header).map_err(io)?;
    for row in rows {
        w.write_record(&row).map_err(io)?;
    }
    let bytes = w.into_inner().map_err(|e| output(file, e))?;
    String::from_utf8(bytes).map_err(|e| output(file, format!("not UTF-8: {e}")))
}

/// The error of a table that cannot be written.
fn output(file: &str, e: impl std::fmt::Display) -> ticketlab_api::Error {
    ticketlab_api::Error::Output { file: file.to_string(), message: e.to_string() }
}

fn number_cells(a: &SummaryRow) -> Vec<String> {
    let r = &a.run;
    vec![
        r.steps.to_string(),
        r.threshold.to_string(),
        opt(r.t_mem),
        opt(r.t_gen),
        opt(r.tau_grok),
        opt(r.final_train_acc),
        opt(r.final_test_acc),
        r.final_train_loss.to_string(),
        r.final_test_loss.to_string(),
        r.density.to_string(),
        r.l1.to_string(),
        r.l2.to_string(),
        opt(a.mask_rate),
        opt(a.speedup_t_gen),
        opt(a.baseline.as_deref()),
        opt(r.stopped.as_deref()),
    ]
}

/// The root seed of a seed repeat from a stage name's `@seedN` suffix.
pub fn repeat_seed(name: &str) -> Option<u64> {
    name.rsplit_once("@seed").and_then(|(_, n)| n.parse().ok())
}

/// For each arm a report stage compares, what the first such report (in IR order) says of it:
/// in a sweep, each point's report measures its arms against its own baseline copy.
fn comparisons(
    ir: &ExperimentIr,
    artifacts: &BTreeMap<String, Artifact>,
    registry: &Registry,
) -> BTreeMap<String, Comparison> {
    let mut out = BTreeMap::new();
    for s in ir.stages.iter().filter(|s| s.kind == StageKind::Report) {
        let Some(Artifact::Analysis(a)) = artifacts.get(&s.name) else { continue };
        let plugin = s.plugin.as_deref().and_then(|p| registry.get(PluginKind::Report, p));
        for c in plugin.map(|p| p.instance.comparisons(&a.value)).unwrap_or_default() {
            out.entry(c.arm.clone()).or_insert(c);
        }
    }
    out
}

/// The prune stage whose mask stage `name` trained or was built under, if any.
///
/// Walks upstream: a train stage reads its `model`; a rewind stage its `mask` if connected,
/// else its `from`; a prune stage is the answer.
pub fn mask_stage<'a>(ir: &'a ExperimentIr, name: &str) -> Option<&'a StageIr> {
    let mut current = name;
    // Each hop moves to an earlier stage of a DAG, so the walk ends; the bound guards bad input.
    for _ in 0..=ir.stages.len() {
        let stage = ir.stage(current)?;
        let first = |port: &str| stage.inputs.get(port).and_then(|v| v.first()).map(String::as_str);
        current = match stage.kind {
            StageKind::Prune => return Some(stage),
            StageKind::Train => first("model")?,
            StageKind::Rewind => first("mask").or_else(|| first("from"))?,
            _ => return None,
        };
    }
    None
}

/// The pruning rate of the mask stage `name` trained or was built under, if any: the prune
/// stage's artifact's rate, else its `rate` parameter.
pub fn mask_rate(
    ir: &ExperimentIr,
    artifacts: &BTreeMap<String, Artifact>,
    name: &str,
) -> Option<f64> {
    let stage = mask_stage(ir, name)?;
    match artifacts.get(&stage.name) {
        Some(Artifact::Mask(m)) => Some(m.rate),
        _ => stage.params.get("rate").and_then(|v| v.as_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_count_what_never_happened() {
        let s = Spread::of(&[Some(1000.0), None, Some(3000.0), Some(2000.0)]).unwrap();
        assert_eq!(
            (s.n, s.never, s.mean, s.median, s.min, s.max),
            (3, 1, 2000.0, 2000.0, 1000.0, 3000.0)
        );
        assert!((s.std - 1000.0).abs() < 1e-9);
        assert_eq!(Spread::of(&[None, None]), None);
        assert_eq!(Spread::of(&[Some(2.0), Some(4.0)]).unwrap().median, 3.0);
    }

    #[test]
    fn a_baseline_stopped_early_bounds_no_speed_up() {
        let row = |arm: &str, t_gen: Option<u64>, steps: u64, stopped: Option<&str>| SummaryRow {
            arm: arm.into(),
            stage: arm.into(),
            seed: 0,
            sweep: BTreeMap::new(),
            pruner: None,
            run: RunSummary {
                steps,
                threshold: 0.95,
                t_mem: Some(50),
                t_gen,
                tau_grok: None,
                final_train_acc: Some(1.0),
                final_test_acc: Some(0.5),
                final_train_loss: 0.0,
                final_test_loss: 1.0,
                density: 1.0,
                l1: 1.0,
                l2: 1.0,
                stopped: stopped.map(String::from),
            },
            mask_rate: None,
            speedup_t_gen: None,
            baseline: Some("base".into()),
        };
        let arm = row("arm", Some(500), 4000, None);
        let full = Summary {
            experiment: "x".into(),
            baseline: Some("base".into()),
            arms: vec![row("base", None, 4000, None), arm.clone()],
        };
        assert_eq!(full.speedup_at_least(&arm), Some(8.0));
        let cut = Summary {
            arms: vec![
                row("base", None, 100, Some("cut by successive halving at step 100")),
                arm.clone(),
            ],
            ..full
        };
        assert_eq!(cut.speedup_at_least(&arm), None);
    }

    #[test]
    fn sweep_points_order_by_value_not_by_name() {
        let point =
            |rate: f64| BTreeMap::from([("mask.rate".to_string(), serde_json::json!(rate))]);
        let (a, b, c) = (point(0.75), point(0.7), point(0.8));
        assert_eq!(compare_points(&b, &a), std::cmp::Ordering::Less);
        assert_eq!(compare_points(&a, &c), std::cmp::Ordering::Less);
        assert_eq!(compare_points(&a, &a), std::cmp::Ordering::Equal);
        let text = |v: &str| BTreeMap::from([("mask.uses".to_string(), serde_json::json!(v))]);
        assert_eq!(
            compare_points(&text("random"), &text("magnitude")),
            std::cmp::Ordering::Greater
        );
    }
}
