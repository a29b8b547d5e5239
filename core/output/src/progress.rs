//! Progress while an experiment runs: bars on a terminal, plain lines elsewhere, or nothing.
//!
//! [`Progress`] is a [`RunEvents`] sink with three modes ([`ProgressMode`]):
//!
//! - **bars** (stderr is a terminal and `CI` is not set): one bar counting finished stages, a
//!   spinner for each running stage, and for each training run a bar with the step, steps per
//!   second, the ETA and the latest train/test accuracy. Lines (finished stages, warnings,
//!   resumption notices) are printed above the bars through [`MultiProgress::println`], so they
//!   never tear a bar.
//! - **plain** (stderr is not a terminal, `CI` is set, or `TERM=dumb`): one line when a stage
//!   starts and one when it ends, and for each training run a line about every tenth of its
//!   steps. No carriage returns or escape codes, so CI logs stay readable. With
//!   [`Progress::show_timings`] off the output depends only on the plan and the evaluation
//!   records, which makes it snapshot-stable.
//! - **quiet**: prints nothing (errors are the caller's to print).
//!
//! ```no_run
//! use ticketlab_output::progress::{Progress, ProgressMode};
//! let quiet = false;
//! let mut progress = Progress::new(ProgressMode::detect(quiet));
//! // ticketlab_engine::execute(&plan, &registry, &store, &options, &mut progress);
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use ticketlab_api::ir::{StageIr, StageKind};
use ticketlab_api::metrics::EvalRecord;
use ticketlab_engine::{Plan, RunEvents, StageKey, StageOutcome, StageReport};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Live bars on stderr (a terminal).
    Bars,
    /// Plain lines (logs, CI, pipes).
    Plain,
    /// Nothing.
    Quiet,
}

impl ProgressMode {
    /// The mode for this process: [`Quiet`](Self::Quiet) when `quiet`, else
    /// [`Plain`](Self::Plain) when stderr is not a terminal, the `CI` variable is set (and not
    /// empty) or `TERM` is `dumb`, else [`Bars`](Self::Bars).
    pub fn detect(quiet: bool) -> Self {
        let set = |var: &str| std::env::var_os(var).is_some_and(|v| !v.is_empty());
        if quiet {
            ProgressMode::Quiet
        } else if set("CI")
            || std::env::var("TERM").is_ok_and(|t| t == "dumb")
            || !std::io::stderr().is_terminal()
        {
            ProgressMode::Plain
        } else {
            ProgressMode::Bars
        }
    }
}

/// A [`RunEvents`] sink that shows progress (see the module docs).
pub struct Progress {
    out: Output,
    /// Stage name to its 1-based position in the plan.
    index: BTreeMap<String, usize>,
    /// Stages in the plan (0 until [`RunEvents::plan_ready`]).
    total: usize,
    /// Stages that started so far (numbers stages when no plan was announced).
    started: usize,
    timings: bool,
    /// Per running training stage: the step at or after which the next plain line is due.
    next_line: BTreeMap<String, u64>,
}

enum Output {
    Quiet,
    Plain(Box<dyn Write + Send>),
    Bars(Bars),
}

/// The live bars of bar mode.
struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    /// The bar or spinner of each running stage.
    running: BTreeMap<String, ProgressBar>,
}

impl Progress {
    /// Progress in `mode`, on stderr.
    pub fn new(mode: ProgressMode) -> Self {
        let out = match mode {
            ProgressMode::Quiet => Output::Quiet,
            ProgressMode::Plain => Output::Plain(Box::new(std::io::stderr())),
            ProgressMode::Bars => Output::Bars(Bars::new(ProgressDrawTarget::stderr())),
        };
        Self {
            out,
            index: BTreeMap::new(),
            total: 0,
            started: 0,
            timings: true,
            next_line: BTreeMap::new(),
        }
    }

    /// Plain lines written to `writer` (for logs and tests).
    pub fn plain_to(writer: impl Write + Send + 'static) -> Self {
        let mut p = Self::new(ProgressMode::Quiet);
        p.out = Output::Plain(Box::new(writer));
        p
    }

    /// Whether finished-stage lines show wall times (default `true`); turn off for output that
    /// must not change from run to run.
    pub fn show_timings(mut self, on: bool) -> Self {
        self.timings = on;
        self
    }

    /// Prints `line` without breaking the bars (nothing in quiet mode).
    pub fn println(&mut self, line: &str) {
        match &mut self.out {
            Output::Quiet => {}
            Output::Plain(w) => {
                // Progress output is best effort: a closed stderr must not stop a run.
                let _ = writeln!(w, "{line}");
                let _ = w.flush();
            }
            Output::Bars(b) => {
                let _ = b.multi.println(line);
            }
        }
    }

    /// `[i/n]` of a stage (`[i]` when the plan's size is unknown).
    fn tag(&mut self, stage: &str) -> String {
        let i = match self.index.get(stage) {
            Some(i) => *i,
            None => {
                self.started += 1;
                self.index.insert(stage.to_string(), self.started);
                self.started
            }
        };
        if self.total > 0 { format!("[{i}/{}]", self.total) } else { format!("[{i}]") }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Output::Bars(b) = &self.out {
            for bar in b.running.values() {
                bar.finish_and_clear();
            }
            b.overall.finish_and_clear();
        }
    }
}

/// `kind/plugin` of a stage (`rewind` for the built-in rewind).
fn what(stage: &StageIr) -> String {
    match &stage.plugin {
        Some(p) => format!("{}/{p}", stage.kind.as_str()),
        None => stage.kind.as_str().to_string(),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |a| format!("{:.1}%", a * 100.0))
}

/// `train acc 99.1% loss 0.0123  test acc 45.0% loss 2.31`.
fn record_text(r: &EvalRecord) -> String {
    format!(
        "train acc {} loss {:.4}  test acc {} loss {:.4}",
        pct(r.train_acc),
        r.train_loss,
        pct(r.test_acc),
        r.test_loss
    )
}

fn seconds(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    }
}

impl RunEvents for Progress {
    fn plan_ready(&mut self, plan: &Plan) {
        self.total = plan.stages.len();
        self.index =
            plan.stages.iter().enumerate().map(|(i, s)| (s.stage.name.clone(), i + 1)).collect();
        self.started = self.total;
        let cached = plan.stages.iter().filter(|s| s.cached).count();
        let mut line = format!(
            "{}: {} stages, {} cached, {} to run",
            plan.name,
            self.total,
            cached,
            self.total - cached
        );
        for s in plan.stages.iter().filter(|s| !s.cached && s.resume_from.is_some()) {
            let _ = write!(line, "\n  {} {}", s.stage.name, s.status());
        }
        if let Output::Bars(b) = &self.out {
            b.overall.set_length(self.total as u64);
            b.overall.set_prefix(plan.name.clone());
        }
        self.println(&line);
    }

    fn stage_started(&mut self, stage: &StageIr, key: &StageKey, cached: bool) {
        let tag = self.tag(&stage.name);
        self.next_line.insert(stage.name.clone(), 0);
        if cached {
            // One line when it ends is enough for a stage that is only loaded.
            return;
        }
        let text = format!("{tag} {} ({}, key {}) ...", stage.name, what(stage), key.short());
        match &mut self.out {
            Output::Quiet => {}
            Output::Plain(_) => self.println(&text),
            Output::Bars(b) => {
                let steps = stage.params.get("steps").and_then(|v| v.as_u64());
                let bar = match (stage.kind, steps) {
                    (StageKind::Train, Some(n)) => {
                        b.multi.add(ProgressBar::new(n).with_style(train_style()))
                    }
                    _ => b.multi.add(ProgressBar::new_spinner().with_style(spinner_style())),
                };
                bar.set_prefix(format!("{tag} {}", stage.name));
                bar.set_message(what(stage));
                bar.enable_steady_tick(Duration::from_millis(120));
                b.overall.set_message(stage.name.clone());
                if self.total == 0 {
                    // No plan was announced: count the stages seen so far.
                    b.overall.set_length(self.started as u64);
                }
                b.running.insert(stage.name.clone(), bar);
            }
        }
    }

    fn train_progress(&mut self, stage: &str, record: &EvalRecord, total_steps: u64) {
        match &mut self.out {
            Output::Quiet => {}
            Output::Bars(b) => {
                if let Some(bar) = b.running.get(stage) {
                    if bar.length() != Some(total_steps) {
                        bar.set_length(total_steps);
                        bar.set_style(train_style());
                    }
                    bar.set_position(record.step.min(total_steps));
                    bar.set_message(format!(
                        "train {}  test {}",
                        pct(record.train_acc),
                        pct(record.test_acc)
                    ));
                }
            }
            Output::Plain(_) => {
                let due = self.next_line.get(stage).copied().unwrap_or(0);
                if record.step >= due || record.step >= total_steps {
                    let text = format!(
                        "    {stage}: step {}/{total_steps}  {}",
                        record.step,
                        record_text(record)
                    );
                    self.next_line
                        .insert(stage.to_string(), record.step + (total_steps / 10).max(1));
                    self.println(&text);
                }
            }
        }
    }

    fn stage_finished(&mut self, stage: &StageIr, report: &StageReport) {
        let tag = self.tag(&stage.name);
        self.next_line.remove(&stage.name);
        let mut text = match (&report.outcome, &report.error) {
            (StageOutcome::Cached, _) => format!("{tag} {} ({}): cached", stage.name, what(stage)),
            (StageOutcome::NotRun, Some(why)) => format!("{tag} {}: not run: {why}", stage.name),
            (_, Some(e)) => format!("{tag} {}: failed: {e}", stage.name),
            (StageOutcome::Resumed { from_step }, None) => {
                format!("{tag} {}: finished (resumed from step {from_step})", stage.name)
            }
            (StageOutcome::Interrupted { step }, None) if stage.kind == StageKind::Train => {
                format!("{tag} {}: stopped at step {step}", stage.name)
            }
            (StageOutcome::Interrupted { .. }, None) => format!("{tag} {}: stopped", stage.name),
            (StageOutcome::Paused { step }, None) => {
                format!("{tag} {}: paused at step {step} (successive halving)", stage.name)
            }
            (outcome, None) => format!("{tag} {}: {}", stage.name, outcome.label()),
        };
        if self.timings && !matches!(report.outcome, StageOutcome::Cached | StageOutcome::NotRun) {
            let _ = write!(text, " ({})", seconds(report.seconds));
        }
        if let Output::Bars(b) = &mut self.out {
            if let Some(bar) = b.running.remove(&stage.name) {
                bar.finish_and_clear();
                b.multi.remove(&bar);
            }
            b.overall.inc(1);
            if b.running.is_empty() {
                b.overall.set_message("");
            }
        }
        self.println(&text);
    }

    fn log(&mut self, line: &str) {
        self.println(line);
    }
}

impl Bars {
    fn new(target: ProgressDrawTarget) -> Self {
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(0).with_style(overall_style()));
        Self { multi, overall, running: BTreeMap::new() }
    }
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants; a typo is caught by the tests, so falling back is fine.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("rate", |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0} steps/s", state.per_sec());
        })
        .progress_chars("=> ")
}

const OVERALL: &str = "{prefix:.bold} [{bar:20}] {pos}/{len} stages  {elapsed}  {wide_msg}";
const TRAIN: &str = "  {prefix} [{bar:28.cyan/blue}] {pos}/{len} steps  {rate}  ETA {eta}  {msg}";
const SPINNER: &str = "  {spinner} {prefix} {msg} {elapsed}";

fn overall_style() -> ProgressStyle {
    style(OVERALL)
}

fn train_style() -> ProgressStyle {
    style(TRAIN)
}

fn spinner_style() -> ProgressStyle {
    style(SPINNER)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::json;

    use super::*;
    use ticketlab_api::metrics::Norms;
    use ticketlab_engine::{Backend, PlannedStage};

    /// A writer whose bytes the test reads back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn stage(name: &str, kind: StageKind, plugin: Option<&str>, steps: Option<u64>) -> StageIr {
        StageIr {
            name: name.into(),
            kind,
            plugin: plugin.map(Into::into),
            params: steps.map(|s| [("steps".to_string(), json!(s))].into()).unwrap_or_default(),
            inputs: BTreeMap::new(),
            seed: 1,
            sweep: BTreeMap::new(),
        }
    }

    fn key(c: char) -> StageKey {
        StageKey::parse(&c.to_string().repeat(64)).unwrap()
    }

    fn record(step: u64, acc: f64) -> EvalRecord {
        EvalRecord {
            step,
            train_loss: 1.0 - acc,
            train_acc: Some(acc),
            test_loss: 2.0 - acc,
            test_acc: Some(acc / 2.0),
            norms: Norms { l1: 1.0, l2: 1.0 },
            layers: BTreeMap::new(),
        }
    }

    fn report(
        s: &StageIr,
        k: &StageKey,
        outcome: StageOutcome,
        error: Option<&str>,
    ) -> StageReport {
        StageReport {
            name: s.name.clone(),
            kind: s.kind,
            plugin: s.plugin.clone(),
            key: k.clone(),
            outcome,
            seconds: 1.25,
            error: error.map(Into::into),
        }
    }

    /// Drives a sink through a small experiment: a cached dataset, a training run of 100 steps
    /// evaluated every 5, a warning, and a failing prune stage.
    fn drive(p: &mut Progress) {
        let data = stage("data", StageKind::Dataset, Some("modular"), None);
        let dense = stage("dense", StageKind::Train, Some("standard"), Some(100));
        let mask = stage("mask", StageKind::Prune, Some("magnitude"), None);
        let stages =
            [(&data, 'a', true, None), (&dense, 'b', false, Some(40)), (&mask, 'c', false, None)];
        let plan = Plan {
            name: "quickstart".into(),
            backend: Backend::cpu(),
            stages: stages
                .iter()
                .map(|(s, c, cached, resume_from)| PlannedStage {
                    stage: (*s).clone(),
                    key: key(*c),
                    fingerprint: s.plugin.clone(),
                    cached: *cached,
                    resume_from: *resume_from,
                    memory: None,
                    batch: None,
                })
                .collect(),
        };
        p.plan_ready(&plan);
        p.stage_started(&data, &key('a'), true);
        p.stage_finished(&data, &report(&data, &key('a'), StageOutcome::Cached, None));
        p.stage_started(&dense, &key('b'), false);
        for step in (40..=100).step_by(5) {
            p.train_progress("dense", &record(step, step as f64 / 100.0), 100);
        }
        p.log("dense: resumed from a saved state at step 40");
        p.stage_finished(
            &dense,
            &report(&dense, &key('b'), StageOutcome::Resumed { from_step: 40 }, None),
        );
        p.stage_started(&mask, &key('c'), false);
        p.log("mask: warning: layer `out.W` collapsed");
        p.stage_finished(
            &mask,
            &report(&mask, &key('c'), StageOutcome::Failed, Some("rate must be below 1")),
        );
    }

    #[test]
    fn plain_output_is_stable() {
        let buf = Shared::default();
        let mut p = Progress::plain_to(buf.clone()).show_timings(false);
        drive(&mut p);
        drop(p);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(
            !text.contains('\r') && !text.contains('\x1b'),
            "plain output has no terminal controls"
        );
        insta::assert_snapshot!(text);
    }

    #[test]
    fn plain_output_with_timings_shows_them_on_finished_stages_only() {
        let buf = Shared::default();
        let mut p = Progress::plain_to(buf.clone());
        drive(&mut p);
        drop(p);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let timed: Vec<&str> = text.lines().filter(|l| l.ends_with("(1.2s)")).collect();
        assert_eq!(
            timed.len(),
            2,
            "dense and mask show a time, the cached stage does not:\n{text}"
        );
    }

    #[test]
    fn quiet_prints_nothing_and_bars_survive_every_event() {
        let mut quiet = Progress::new(ProgressMode::Quiet);
        drive(&mut quiet);
        // Bars drawn to a hidden target exercise the bar bookkeeping without a terminal.
        let mut bars = Progress::new(ProgressMode::Quiet);
        bars.out = Output::Bars(Bars::new(ProgressDrawTarget::hidden()));
        drive(&mut bars);
        match &bars.out {
            Output::Bars(b) => {
                assert!(b.running.is_empty(), "every finished stage's bar is removed");
                assert_eq!(b.overall.position(), 3);
                assert_eq!(b.overall.length(), Some(3));
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn templates_parse() {
        for t in [OVERALL, TRAIN, SPINNER] {
            ProgressStyle::with_template(t).unwrap();
        }
    }
}
