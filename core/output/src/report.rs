//! The report: `report.md` and a self-contained `report.html`, answering "did it grok, when,
//! and how much sooner than the baseline?".
//!
//! A report is built only from files of the run directory ([`RunFiles`]), never from the
//! store, so [`regenerate`] can rebuild it after the fact (redrawing the figures that come from
//! `metrics.jsonl`, keeping those drawn from artifacts) and [`compare`] can put several run
//! directories side by side. Both documents come from one [`Doc`], so they always agree.
//!
//! Sections, in order: the description, the claims (each one's verdict over seeds, and on
//! every seed), a "Did it grok?" list with one sentence per arm, the
//! arms table (headline metrics and the speed-up against the baseline), the figures, the masks
//! (per-layer density and warnings), the command that reproduces the run, and the stages with
//! their status, wall time and cache key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::differences::differences;
use super::doc::{Block, Column, Doc, Span, bold, code, text};
use super::figures::{self, Figure};
use super::files;
use super::live;
use super::rundir::{InProgress, Manifest, MaskSummary, MetricLine, RunFiles};
use super::summary::{SeedGroup, Spread, Summary, SummaryRow};
use crate::names;
use ticketlab_api::ir::written_name;
use ticketlab_api::metrics::RunSummary;
use ticketlab_api::{Error, Result};

/// Writes `report.md` and `report.html` of `run` into `run.dir`, showing `figures` (already
/// written under `figures/`).
pub fn write(run: &RunFiles, figures: &[Figure]) -> Result<()> {
    write_doc(&run.dir, &run_doc(run, figures))
}

/// Rebuilds the report of the run directory `dir` from its files: the figures drawn from
/// `metrics.jsonl` and `summary.json` are redrawn, those drawn from artifacts are kept. A run
/// still going (or stopped) gets a partial report from its live log ([`partial`]).
pub fn regenerate(dir: &Path) -> Result<()> {
    if !dir.join(names::MANIFEST).is_file() && dir.join(names::LIVE).is_file() {
        return partial(dir);
    }
    let run = RunFiles::read(dir)?;
    let figs = figures::of_run(&run)?;
    figures::write_figures(dir, &figs)?;
    write(&run, &figs)
}

/// Writes the report of a run that has not finished its directory, from its live log: a
/// notice that it is partial, each training's evaluations so far, and the accuracy and loss
/// figures of those evaluations. The run replaces it with the full report when it finishes.
pub fn partial(dir: &Path) -> Result<()> {
    let log = dir.join(names::LIVE);
    let events = live::parse(&log, &files::read(&log)?)?;
    let arms = live::arms(&events);
    let marker = InProgress::read(dir)?;
    let experiment = marker.as_ref().map_or("run".to_string(), |m| m.experiment.clone());
    let mut summary = Summary { experiment: experiment.clone(), baseline: None, arms: Vec::new() };
    let mut metrics = Vec::new();
    for a in arms.iter().filter(|a| !a.evals.is_empty()) {
        let Some(run) = RunSummary::from_records(&a.evals, a.threshold.unwrap_or(0.95), f64::NAN)
        else {
            continue;
        };
        summary.arms.push(SummaryRow {
            arm: a.arm.clone(),
            stage: written_name(&a.arm).to_string(),
            seed: super::summary::repeat_seed(&a.arm).unwrap_or(0),
            sweep: BTreeMap::new(),
            pruner: None,
            run,
            mask_rate: None,
            speedup_t_gen: None,
            baseline: None,
        });
        metrics
            .extend(a.evals.iter().map(|r| MetricLine { arm: a.arm.clone(), record: r.clone() }));
    }
    let mut figs = figures::metric_figures(&summary, &metrics)?;
    figs.retain(|f| f.file == figures::ACCURACY || f.file == figures::LOSS);
    figures::write_figures(dir, &figs)?;
    let mut doc = Doc { title: format!("{experiment} (partial)"), blocks: Vec::new() };
    let standing = match &marker {
        Some(m) => match &m.interrupted {
            Some(reason) => format!("was stopped ({reason}); resume it with `{}`", m.command),
            None if m.process_gone() => format!(
                "did not finish: its process ended before writing the run directory; rerun `{}` to complete it (finished stages load from the store)",
                m.command
            ),
            None => format!("is still going (started {} on {})", m.started_utc, m.host),
        },
        None => "did not finish".to_string(),
    };
    doc.push(Block::Para(vec![text(format!(
        "Partial: this run {standing}. What follows is read from {} as it stood; the finished run writes the full report here.",
        names::LIVE
    ))]));
    doc.push(Block::Code { lang: "text".into(), text: live::render(&arms) });
    push_figures(&mut doc, &figs);
    write_doc(dir, &doc)
}

/// Writes a comparison of the run directories `dirs` into `out`: one table of every arm of
/// every run, and the metric figures with each arm named `run/arm`. Returns the path of the
/// Markdown report.
pub fn compare(dirs: &[PathBuf], out: &Path) -> Result<PathBuf> {
    if out.join(names::MANIFEST).exists() {
        return Err(Error::data(
            out,
            "is a run directory: its report would be replaced by the comparison; choose another --out",
        ));
    }
    let runs: Vec<RunFiles> = dirs.iter().map(|d| RunFiles::read(d)).collect::<Result<_>>()?;
    let labels = run_labels(&runs);
    let (summary, metrics) = merged(&runs, &labels);
    let figs = figures::metric_figures(&summary, &metrics)?;
    figures::write_figures(out, &figs)?;
    write_doc(out, &comparison_doc(&runs, &labels, &figs))?;
    Ok(out.join(names::REPORT_MD))
}

fn write_doc(dir: &Path, doc: &Doc) -> Result<()> {
    files::write(&dir.join(names::REPORT_MD), doc.to_markdown())?;
    files::write(&dir.join(names::REPORT_HTML), doc.to_html())
}

/// The report of one run.
fn run_doc(run: &RunFiles, figures: &[Figure]) -> Doc {
    let mut doc = Doc { title: run.ir.name.clone(), blocks: Vec::new() };
    if !run.ir.description.trim().is_empty() {
        doc.push(Block::Para(vec![text(run.ir.description.trim())]));
    }
    let labels = [("Tag", &run.manifest.tag), ("Note", &run.manifest.note)];
    for (label, value) in labels.iter().filter_map(|(l, v)| Some((l, v.as_ref()?))) {
        doc.push(Block::Para(vec![bold(format!("{label}:")), text(format!(" {value}"))]));
    }
    if !run.claims.is_empty() {
        doc.push(Block::Heading(2, "Claims".into()));
        doc.push(claims_table(run));
    }
    match run.summary.best_over_seeds() {
        Some((g, Some(t_gen), tau)) => {
            let n = g.t_gen.iter().flatten().count();
            let tau = tau.map_or(String::new(), |t| format!(", tau_grok {}", num(t)));
            doc.push(Block::Para(vec![
                bold("Best arm:"),
                text(" "),
                code(g.name()),
                text(format!(
                    ": median t_gen {} over {} seed(s), {n} of which generalised{tau}.",
                    num(t_gen),
                    g.seeds.len()
                )),
            ]));
        }
        Some((_, None, _)) => doc.push(Block::Para(vec![
            bold("Best arm:"),
            text(" none; no arm generalised on more than half of its seeds."),
        ])),
        None => {}
    }
    doc.push(Block::Heading(2, "Did it grok?".into()));
    if run.summary.arms.is_empty() {
        doc.push(Block::Para(vec![text(
            "No training stage finished, so there is nothing to compare.",
        )]));
    } else {
        let verdicts = run.summary.arms.iter().map(|a| verdict(a, &run.summary)).collect();
        doc.push(Block::List(verdicts));
    }
    doc.push(Block::Heading(2, "Arms".into()));
    doc.push(arms_table(&run.summary, None));
    let groups = run.summary.over_seeds();
    if groups.iter().any(|g| g.seeds.len() > 1) {
        doc.push(Block::Heading(2, "Over seeds".into()));
        doc.push(Block::Para(vec![text(
            "Each arm over its seed repeats, each seed measured against its own baseline: mean ± standard deviation, then median (range), of the seeds that reached the threshold and how many they are (one seed: its value alone); \"never on k\" counts the others, and a missing speed-up says whether the arm or its baseline never generalised.",
        )]));
        doc.push(seeds_table(&groups));
    }
    push_figures(&mut doc, figures);
    if !run.masks.is_empty() {
        doc.push(Block::Heading(2, "Masks".into()));
        doc.push(masks_table(&run.masks));
        let warnings: Vec<Vec<Span>> = run
            .masks
            .iter()
            .flat_map(|m| m.warnings.iter().map(|w| vec![code(&m.stage), text(format!(": {w}"))]))
            .collect();
        if !warnings.is_empty() {
            doc.push(Block::List(warnings));
        }
    }
    doc.push(Block::Heading(2, "Reproduce".into()));
    doc.push(Block::Code { lang: "sh".into(), text: run.manifest.command.clone() });
    let m = &run.manifest;
    doc.push(Block::Para(vec![text(format!(
        "ticketlab {}, backend {}, {} thread(s), root seed {}; written {}. Stages already in the store are loaded, not recomputed.",
        m.ticketlab_version, m.backend, m.threads, m.root_seed, m.created_utc
    ))]));
    doc.push(Block::Heading(2, "Stages".into()));
    doc.push(stages_table(m));
    doc
}

/// The most differences a comparison lists.
const MAX_DIFFERENCES: usize = 60;

/// The comparison of several runs.
fn comparison_doc(runs: &[RunFiles], labels: &[String], figures: &[Figure]) -> Doc {
    let mut doc = Doc { title: format!("Comparison of {} runs", runs.len()), blocks: Vec::new() };
    doc.push(Block::Heading(2, "Runs".into()));
    doc.push(Block::Table {
        columns: columns(&[
            ("run", false),
            ("experiment", false),
            ("baseline", false),
            ("arms", true),
            ("command", false),
        ]),
        rows: runs
            .iter()
            .zip(labels)
            .map(|(r, label)| {
                vec![
                    label.clone(),
                    r.ir.name.clone(),
                    r.summary.baseline.clone().unwrap_or_else(|| "-".into()),
                    r.summary.arms.len().to_string(),
                    format!("`{}`", r.manifest.command),
                ]
            })
            .collect(),
    });
    doc.push(Block::Heading(2, "What differs".into()));
    let diffs = differences(runs);
    if diffs.is_empty() {
        doc.push(Block::Para(vec![text(
            "Nothing: the same experiment, parameters, overrides, version, backend and threads.",
        )]));
    } else {
        let mut spec = vec![("", false)];
        spec.extend(labels.iter().map(|l| (l.as_str(), false)));
        let shown = diffs.iter().take(MAX_DIFFERENCES);
        let rows = shown
            .map(|d| {
                std::iter::once(format!("`{}`", d.what)).chain(d.values.iter().cloned()).collect()
            })
            .collect();
        doc.push(Block::Table { columns: columns(&spec), rows });
        if diffs.len() > MAX_DIFFERENCES {
            doc.push(Block::Para(vec![text(format!(
                "... and {} more differences (compare their experiment.resolved.json).",
                diffs.len() - MAX_DIFFERENCES
            ))]));
        }
    }
    doc.push(Block::Heading(2, "Arms".into()));
    doc.push(Block::Para(vec![text("Speed-ups are against each run's own baseline.")]));
    let mut rows = Vec::new();
    for (r, label) in runs.iter().zip(labels) {
        if let Block::Table { rows: r, .. } = arms_table(&r.summary, Some(label)) {
            rows.extend(r);
        }
    }
    doc.push(Block::Table { columns: arm_columns(true), rows });
    push_figures(&mut doc, figures);
    doc
}

/// The figures, the rate figure (the one that answers a sweep) first.
fn push_figures(doc: &mut Doc, figures: &[Figure]) {
    if figures.is_empty() {
        return;
    }
    doc.push(Block::Heading(2, "Figures".into()));
    let (rate, others): (Vec<&Figure>, Vec<&Figure>) =
        figures.iter().partition(|f| f.file == figures::RATE);
    for f in rate.into_iter().chain(others) {
        doc.push(Block::Figure {
            path: format!("{}/{}", names::FIGURES, f.file),
            title: f.title.clone(),
            caption: f.caption.clone(),
            svg: f.svg.clone(),
        });
    }
}

/// One sentence on whether and when `arm` (of `summary`) memorised and generalised, against
/// the baseline.
fn verdict(arm: &SummaryRow, summary: &Summary) -> Vec<Span> {
    let p = pct(arm.run.threshold);
    let mut out = vec![bold(&arm.arm), text(format!(" ({}): ", kind_of(arm)))];
    match arm.run.t_mem {
        Some(t) => out.push(text(format!("memorised (train accuracy ≥ {p}) at step {t}; "))),
        None => out.push(text(format!("never reached {p} train accuracy; "))),
    }
    match arm.run.t_gen {
        Some(t) => {
            out.push(text(format!("generalised (test accuracy ≥ {p}) at step {t}")));
            if let Some(tau) = arm.run.tau_grok {
                out.push(text(format!(", tau_grok {}", num(tau))));
            }
        }
        None => out.push(text(format!(
            "did not reach {p} test accuracy in {} steps (final test accuracy {})",
            arm.run.steps,
            arm.run.final_test_acc.map_or("-".into(), |a| pct_apart(a, arm.run.threshold))
        ))),
    }
    match &arm.run.stopped {
        Some(reason) if reason.starts_with("cut by") => out.push(text(format!("; {reason}"))),
        Some(reason) => out.push(text(format!("; its stop rule ended it ({reason})"))),
        None => {}
    }
    let baseline = arm.baseline.as_deref().filter(|b| *b != arm.arm);
    match (baseline, arm.speedup_t_gen) {
        (Some(b), Some(s)) if s > 1.0 => {
            out.extend([text(": "), bold(format!("{}× sooner than {b}", num(s)))])
        }
        (Some(b), Some(s)) if s < 1.0 => {
            out.push(text(format!(": {}× later than {b}", num(1.0 / s))))
        }
        (Some(b), Some(_)) => out.push(text(format!(": at the same step as {b}"))),
        (Some(b), None) if arm.run.t_gen.is_some() => match summary.speedup_at_least(arm) {
            Some(at_least) => out.extend([
                text(": "),
                bold(format!("at least {}× sooner than {b}", num(at_least))),
                text(format!(
                    ", which never generalised in its {} steps",
                    summary.arm(b).map_or(0, |base| base.run.steps)
                )),
            ]),
            None => out.push(text(format!(" ({b} never generalised)"))),
        },
        _ => {}
    }
    out.push(text("."));
    out
}

fn kind_of(arm: &SummaryRow) -> String {
    match arm.mask_rate {
        Some(r) => format!("mask rate {}, density {}", num(r), num(arm.run.density)),
        None if arm.run.density < 1.0 => format!("density {}", num(arm.run.density)),
        None => "dense".into(),
    }
}

fn arm_columns(with_run: bool) -> Vec<Column> {
    let mut cols = vec![
        ("arm", false),
        ("pruner", false),
        ("steps", true),
        ("density", true),
        ("mask rate", true),
        ("t_mem", true),
    ];
    cols.extend([
        ("t_gen", true),
        ("tau_grok", true),
        ("speed-up", true),
        ("train acc", true),
        ("test acc", true),
    ]);
    cols.extend([("test loss", true), ("L1", true), ("L2", true)]);
    if with_run {
        cols.insert(0, ("run", false));
    }
    columns(&cols)
}

/// The arms table; with `run`, every row starts with that run's label.
fn arms_table(summary: &Summary, run: Option<&str>) -> Block {
    let dash = || "-".to_string();
    let rows = summary
        .arms
        .iter()
        .map(|a| {
            let mut row: Vec<String> = run.map(|r| vec![r.to_string()]).unwrap_or_default();
            let is_base =
                summary.arms.iter().any(|other| other.baseline.as_deref() == Some(&a.arm));
            row.push(if is_base {
                format!("`{}` (baseline)", a.arm)
            } else {
                format!("`{}`", a.arm)
            });
            row.extend([
                a.pruner.clone().unwrap_or_else(dash),
                a.run.steps.to_string(),
                num(a.run.density),
                a.mask_rate.map_or_else(dash, num),
                a.run.t_mem.map_or_else(dash, |t| t.to_string()),
                a.run.t_gen.map_or_else(dash, |t| t.to_string()),
                a.run.tau_grok.map_or_else(dash, num),
                match (a.speedup_t_gen, summary.speedup_at_least(a)) {
                    (Some(s), _) => format!("{}×", num(s)),
                    (None, Some(at_least)) => format!("≥ {}×", num(at_least)),
                    (None, None) => dash(),
                },
                a.run.final_train_acc.map_or_else(dash, pct),
                a.run.final_test_acc.map_or_else(dash, pct),
                num(a.run.final_test_loss),
                num(a.run.l1),
                num(a.run.l2),
            ]);
            row
        })
        .collect();
    Block::Table { columns: arm_columns(run.is_some()), rows }
}

/// Each claim: what it says, its verdict under its seed rule, the verdict on every seed, and
/// how the rule reached it.
pub(crate) fn claims_table(run: &RunFiles) -> Block {
    let rows = run
        .claims
        .iter()
        .map(|j| {
            let stated = run.ir.claims.iter().find(|c| c.name == j.claim);
            let says = stated.map_or(String::new(), |c| {
                if c.text.is_empty() { format!("`{}`", c.holds) } else { c.text.clone() }
            });
            let seeds: Vec<String> = j
                .per_seed
                .iter()
                .map(|e| {
                    format!("{}: {}", e.seed.map_or("median".into(), |s| s.to_string()), e.verdict)
                })
                .collect();
            vec![
                format!("`{}`", j.claim),
                says,
                format!("{} ({})", j.overall, j.rule.name()),
                seeds.join(", "),
                j.explanation.clone(),
            ]
        })
        .collect();
    let spec = [
        ("claim", false),
        ("says", false),
        ("verdict", false),
        ("per seed", false),
        ("how", false),
    ];
    Block::Table { columns: columns(&spec), rows }
}

fn seeds_table(groups: &[SeedGroup]) -> Block {
    // The seeds that reached a value, summarised; `nevers` says how many did not, and why.
    let cell = |values: &[Option<f64>], unit: &str, nevers: String| {
        let spread = match Spread::of(values) {
            None => return nevers,
            Some(s) if s.n == 1 => format!("{}{unit} (1 seed)", num(s.mean)),
            Some(s) => format!(
                "{}{unit} ± {}{unit}; {}{unit} ({}–{}), {} seeds",
                num(s.mean),
                num(s.std),
                num(s.median),
                num(s.min),
                num(s.max),
                s.n
            ),
        };
        if nevers.is_empty() { spread } else { format!("{spread}; {nevers}") }
    };
    let never = |values: &[Option<f64>]| match values.iter().filter(|v| v.is_none()).count() {
        0 => String::new(),
        k => format!("never on {k}"),
    };
    // A speed-up is missing when the arm never generalised or when its baseline never did.
    let speedup_nevers = |g: &SeedGroup| {
        let missing = g.speedup_t_gen.iter().zip(&g.t_gen).filter(|(s, _)| s.is_none());
        let (arm, base): (Vec<_>, Vec<_>) = missing.partition(|(_, t)| t.is_none());
        let mut parts = Vec::new();
        if !arm.is_empty() {
            parts.push(format!("arm never on {}", arm.len()));
        }
        if !base.is_empty() {
            // Where the baseline never generalised within its steps, the speed-up is at least
            // its steps over the arm's t_gen.
            let bound = Spread::of(&g.speedup_at_least)
                .map_or(String::new(), |b| format!(" (speed-up ≥ {}×)", num(b.min)));
            parts.push(format!("baseline never on {}{bound}", base.len()));
        }
        parts.join("; ")
    };
    let rows = groups
        .iter()
        .map(|g| {
            let arm = format!("`{}`", g.name());
            vec![
                arm,
                g.seeds.len().to_string(),
                cell(&g.t_mem, "", never(&g.t_mem)),
                cell(&g.t_gen, "", never(&g.t_gen)),
                cell(&g.tau_grok, "", never(&g.tau_grok)),
                cell(&g.speedup_t_gen, "×", speedup_nevers(g)),
            ]
        })
        .collect();
    let spec = [
        ("arm", false),
        ("seeds", true),
        ("t_mem", false),
        ("t_gen", false),
        ("tau_grok", false),
        ("speed-up", false),
    ];
    Block::Table { columns: columns(&spec), rows }
}

fn masks_table(masks: &[MaskSummary]) -> Block {
    let rows = masks
        .iter()
        .map(|m| {
            let layers: Vec<String> =
                m.layers.iter().map(|(name, l)| format!("{name} {}", num(l.density))).collect();
            vec![
                format!("`{}`", m.stage),
                m.pruner.clone(),
                num(m.rate),
                m.scored_at.map_or_else(|| "init".to_string(), |s| s.to_string()),
                num(m.density),
                layers.join(", "),
            ]
        })
        .collect();
    let cols = [
        ("mask", false),
        ("pruner", false),
        ("rate", true),
        ("scored at", true),
        ("density", true),
    ];
    let mut columns = columns(&cols);
    columns.push(Column { header: "per-layer density".into(), numeric: false });
    Block::Table { columns, rows }
}

fn stages_table(m: &Manifest) -> Block {
    let rows = m
        .stages
        .iter()
        .map(|s| {
            let status = match s.cached {
                Some(true) => "cached",
                Some(false) => "ran",
                None => "did not finish",
            };
            let key = s.key.as_deref().map_or("-".to_string(), |k| {
                format!("`{}`", k.chars().take(12).collect::<String>())
            });
            vec![
                format!("`{}`", s.name),
                s.kind.as_str().to_string(),
                s.plugin.clone().unwrap_or_else(|| "-".into()),
                status.to_string(),
                s.seconds.map_or("-".into(), |t| format!("{t:.1}")),
                key,
            ]
        })
        .collect();
    let cols = [
        ("stage", false),
        ("kind", false),
        ("plugin", false),
        ("status", false),
        ("seconds", true),
        ("key", false),
    ];
    Block::Table { columns: columns(&cols), rows }
}

pub(crate) fn columns(spec: &[(&str, bool)]) -> Vec<Column> {
    spec.iter().map(|(h, n)| Column { header: (*h).to_string(), numeric: *n }).collect()
}

/// Labels of runs for a comparison: the directory names, made unique with `#2`, `#3`, ...
fn run_labels(runs: &[RunFiles]) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    runs.iter()
        .map(|r| {
            let base = r
                .dir
                .file_name()
                .map_or_else(|| r.dir.display().to_string(), |n| n.to_string_lossy().into_owned());
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            if *n == 1 { base } else { format!("{base}#{n}") }
        })
        .collect()
}

/// One summary and one set of metric lines for all runs, arms named `label/arm`.
fn merged(runs: &[RunFiles], labels: &[String]) -> (Summary, Vec<MetricLine>) {
    let name = |label: &str, arm: &str| format!("{label}/{arm}");
    let mut summary = Summary { experiment: "comparison".into(), baseline: None, arms: Vec::new() };
    let mut metrics = Vec::new();
    for (r, label) in runs.iter().zip(labels) {
        summary.arms.extend(r.summary.arms.iter().map(|a| SummaryRow {
            arm: name(label, &a.arm),
            baseline: a.baseline.as_ref().map(|b| name(label, b)),
            ..a.clone()
        }));
        metrics.extend(
            r.metrics
                .iter()
                .map(|m| MetricLine { arm: name(label, &m.arm), record: m.record.clone() }),
        );
    }
    (summary, metrics)
}

/// A percentage with one decimal (`95.0%`).
fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// `v` as a percentage with enough decimals (up to four) not to read as `threshold`: a final
/// accuracy of 0.9497 under a 95% threshold is "94.97%", never "95.0%".
fn pct_apart(v: f64, threshold: f64) -> String {
    (1..=4)
        .map(|d| (format!("{:.d$}%", v * 100.0), format!("{:.d$}%", threshold * 100.0)))
        .find(|(a, t)| a != t)
        .map_or_else(|| pct(v), |(a, _)| a)
}

/// A number with four significant digits and no trailing zeros (`5.2`, `26`, `0.0001631`).
pub(crate) fn num(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "NaN".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if v == 0.0 {
        return "0".into();
    }
    let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketlab_api::metrics::RunSummary;

    fn row(arm: &str, t_gen: Option<u64>, rate: Option<f64>, speedup: Option<f64>) -> SummaryRow {
        let run = RunSummary {
            steps: 1000,
            threshold: 0.95,
            t_mem: Some(50),
            t_gen,
            tau_grok: t_gen.map(|t| t as f64 / 50.0),
            final_train_acc: Some(1.0),
            final_test_acc: Some(if t_gen.is_some() { 1.0 } else { 0.31 }),
            final_train_loss: 0.0,
            final_test_loss: 0.5,
            density: rate.map_or(1.0, |r| 1.0 - r),
            l1: 10.0,
            l2: 2.0,
            stopped: None,
        };
        SummaryRow {
            arm: arm.into(),
            stage: arm.into(),
            seed: 0,
            sweep: Default::default(),
            pruner: rate.map(|_| "magnitude".into()),
            run,
            mask_rate: rate,
            speedup_t_gen: speedup,
            baseline: Some("dense".into()),
        }
    }

    #[test]
    fn display_names_say_stage_pruner_rate_and_other_axes() {
        assert_eq!(row("dense_train", None, None, None).display_name(true), "dense");
        let mut ticket = row("ticket_train", Some(100), Some(0.6), None);
        ticket.sweep = [
            ("prune.rate".to_string(), 0.6.into()),
            ("prune.uses".to_string(), "magnitude".into()),
            ("init.width".to_string(), 192.into()),
        ]
        .into();
        assert_eq!(ticket.display_name(true), "ticket (magnitude, k = 0.6, width = 192)");
        assert_eq!(ticket.display_name(false), "ticket (magnitude, width = 192)");
        let control = row("control_l2_train", Some(100), Some(0.4), None);
        assert_eq!(control.display_name(true), "control l2 (magnitude, k = 0.4)");
        assert_eq!(row("train", None, None, None).display_name(true), "train");
    }

    fn said(spans: &[Span]) -> String {
        spans
            .iter()
            .map(|s| match s {
                Span::Text(t) | Span::Code(t) | Span::Bold(t) => t.as_str(),
            })
            .collect()
    }

    #[test]
    fn verdicts_say_when_and_how_much_sooner() {
        let summary = Summary {
            experiment: "e".into(),
            baseline: Some("dense".into()),
            arms: vec![
                row("dense", Some(900), None, Some(1.0)),
                row("ticket", Some(300), Some(0.6), Some(3.0)),
                row("pai", None, Some(0.6), None),
            ],
        };
        let v: Vec<String> = summary.arms.iter().map(|a| said(&verdict(a, &summary))).collect();
        assert_eq!(
            v[0],
            "dense (dense): memorised (train accuracy ≥ 95.0%) at step 50; generalised (test accuracy ≥ 95.0%) at step 900, tau_grok 18."
        );
        assert!(
            v[1].contains("mask rate 0.6, density 0.4")
                && v[1].ends_with("at step 300, tau_grok 6: 3× sooner than dense."),
            "{}",
            v[1]
        );
        assert!(
            v[2].contains(
                "did not reach 95.0% test accuracy in 1000 steps (final test accuracy 31.0%)"
            ),
            "{}",
            v[2]
        );
        let later = row("late", Some(1800), Some(0.9), Some(0.5));
        assert!(said(&verdict(&later, &summary)).ends_with(": 2× later than dense."));
    }

    #[test]
    fn a_baseline_that_never_generalised_bounds_the_speed_up() {
        let mut dense = row("dense", None, None, None);
        dense.run.final_test_acc = Some(0.9497);
        let summary = Summary {
            experiment: "e".into(),
            baseline: Some("dense".into()),
            arms: vec![
                dense,
                row("ticket", Some(250), Some(0.6), None),
                row("pai", None, Some(0.6), None),
            ],
        };
        let [dense, ticket, pai] = [0, 1, 2].map(|i| said(&verdict(&summary.arms[i], &summary)));
        assert!(dense.contains("(final test accuracy 94.97%)"), "not 95.0%: {dense}");
        assert!(
            ticket.ends_with(
                ": at least 4× sooner than dense, which never generalised in its 1000 steps."
            ),
            "{ticket}"
        );
        assert!(!pai.contains("at least"), "an arm that never generalised has no bound: {pai}");
        assert_eq!(summary.speedup_at_least(&summary.arms[1]), Some(4.0));
        assert_eq!(summary.speedup_at_least(&summary.arms[0]), None, "the baseline itself");
        let Block::Table { rows, .. } = arms_table(&summary, None) else { panic!() };
        assert!(rows[1].contains(&"≥ 4×".to_string()), "{:?}", rows[1]);
        assert_eq!(pct_apart(0.9497, 0.95), "94.97%");
        assert_eq!(pct_apart(0.31, 0.95), "31.0%");
        assert_eq!(pct_apart(0.95, 0.95), "95.0%");
    }

    #[test]
    fn seed_statistics_count_their_seeds_and_say_which_never() {
        let group = SeedGroup {
            stage: "ticket".into(),
            seeds: vec![0, 1, 2],
            t_mem: vec![Some(10.0), Some(20.0), Some(30.0)],
            t_gen: vec![Some(100.0), None, Some(300.0)],
            tau_grok: vec![Some(10.0), None, Some(10.0)],
            // Seed 1: the arm never generalised; seed 2: its baseline never did (in 1500 steps).
            speedup_t_gen: vec![Some(3.0), None, None],
            speedup_at_least: vec![None, None, Some(5.0)],
            ..SeedGroup::default()
        };
        let Block::Table { rows, .. } = seeds_table(&[group]) else { panic!() };
        let row = &rows[0];
        assert_eq!(row[2], "20 ± 10; 20 (10–30), 3 seeds");
        assert_eq!(row[3], "200 ± 141.4; 200 (100–300), 2 seeds; never on 1");
        assert_eq!(
            row[5], "3× (1 seed); arm never on 1; baseline never on 1 (speed-up ≥ 5×)",
            "no ± of one value"
        );
    }

    #[test]
    fn the_best_arm_is_the_lowest_median_t_gen_over_seeds_ties_by_tau_grok() {
        let seeded = |stage: &str, seed: u64, t_gen: Option<u64>| {
            let mut r = row(&format!("{stage}@seed{seed}"), t_gen, Some(0.5), None);
            r.stage = stage.into();
            r.seed = seed;
            let base = format!("dense@seed{seed}");
            r.baseline = Some(if stage == "dense" { r.arm.clone() } else { base });
            r
        };
        let mut arms = vec![
            seeded("dense", 0, Some(900)),
            seeded("dense", 1, Some(800)),
            seeded("a", 0, Some(300)),
            seeded("a", 1, Some(500)),
            // The luckiest single seed, but the median of (200, never) is never.
            seeded("b", 0, Some(200)),
            seeded("b", 1, None),
            seeded("c", 0, Some(400)),
            seeded("c", 1, Some(400)),
        ];
        arms[6].run.tau_grok = Some(1.0);
        arms[7].run.tau_grok = Some(1.0);
        let summary = Summary { experiment: "e".into(), baseline: None, arms };
        let (best, t_gen, tau) = summary.best_over_seeds().unwrap();
        assert_eq!((best.stage.as_str(), t_gen, tau), ("c", Some(400.0), Some(1.0)));
        let nobody = Summary { arms: summary.arms[..6].to_vec(), ..summary.clone() };
        let nobody = Summary {
            arms: nobody.arms.into_iter().filter(|a| a.stage != "a").collect(),
            ..nobody
        };
        assert_eq!(nobody.best_over_seeds(), None, "one arm is no choice");
        let mut never = summary.clone();
        never.arms.retain(|a| a.stage != "c");
        never.arms[3].run.t_gen = None;
        let (_, t_gen, _) = never.best_over_seeds().unwrap();
        assert_eq!(t_gen, None, "no arm generalised on more than half of its seeds");
    }

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(num(26.0), "26");
        assert_eq!(num(5.2), "5.2");
        assert_eq!(num(0.400019778), "0.4");
        assert_eq!(num(3146.0599), "3146");
        assert_eq!(num(123456.7), "123457");
        assert_eq!(num(0.00016302), "0.000163");
        assert_eq!(num(f64::NAN), "NaN");
        assert_eq!(pct(0.957), "95.7%");
    }

    #[test]
    fn comparison_labels_are_unique() {
        let run = |dir: &str| RunFiles {
            dir: PathBuf::from(dir),
            ir: ticketlab_api::ir::ExperimentIr {
                name: "e".into(),
                description: String::new(),
                seed: 0,
                plugins: Vec::new(),
                claims: Vec::new(),
                stages: Vec::new(),
            },
            manifest: Manifest::default(),
            summary: Summary {
                experiment: "e".into(),
                baseline: None,
                arms: vec![row("dense", Some(10), None, None)],
            },
            metrics: Vec::new(),
            masks: Vec::new(),
            claims: Vec::new(),
        };
        let runs = [run("a/x"), run("b/x"), run("c/y")];
        let labels = run_labels(&runs);
        assert_eq!(labels, ["x", "x#2", "y"]);
        let (summary, _) = merged(&runs, &labels);
        let names: Vec<&str> = summary.arms.iter().map(|a| a.arm.as_str()).collect();
        assert_eq!(names, ["x/dense", "x#2/dense", "y/dense"]);
        assert_eq!(
            summary.arms[1].baseline.as_deref(),
            Some("x#2/dense"),
            "baselines are renamed with their arms"
        );
    }
}
