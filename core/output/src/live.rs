//! The live log of a run: `live.jsonl` in its run directory, one JSON line per event (a stage
//! starts, a training evaluates, a stage ends), appended and flushed as it happens, so that
//! `ticketlab watch`, `tail -f` or a notebook can follow a run while it trains. It holds wall
//! times, so unlike the run's other files it differs between two runs of the same experiment.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use ticketlab_api::ir::{StageIr, StageKind};
use ticketlab_api::metrics::{EvalRecord, Norms, grok_metrics};
use ticketlab_api::{Error, Result};
use ticketlab_engine::{Plan, RunEvents, StageKey, StageReport};

/// One line of `live.jsonl`; `seconds` counts from the run's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LiveEvent {
    /// The plan is known: how many stages, and the training stages in plan order.
    Plan {
        /// Stages in the plan.
        stages: usize,
        /// The training stages.
        trainings: Vec<String>,
    },
    /// A stage starts (`cached`: it is only loaded from the store).
    Started {
        /// The stage.
        stage: String,
        /// Whether it trains.
        trains: bool,
        /// Loaded from the store rather than computed.
        cached: bool,
        /// A training's accuracy threshold for t_mem and t_gen.
        threshold: Option<f64>,
        /// Seconds since the run started.
        seconds: f64,
    },
    /// A training evaluated its model.
    Eval {
        /// The training stage.
        arm: String,
        /// Step of this evaluation.
        step: u64,
        /// Steps the training will take.
        total_steps: u64,
        /// Train loss (`None`: not finite).
        train_loss: Option<f64>,
        /// Train accuracy.
        train_acc: Option<f64>,
        /// Test loss (`None`: not finite).
        test_loss: Option<f64>,
        /// Test accuracy.
        test_acc: Option<f64>,
        /// Global L2 norm of the weights.
        l2: Option<f64>,
        /// Seconds since the run started.
        seconds: f64,
    },
    /// A stage ended: `outcome` is `cached`, `ran`, `resumed`, `interrupted`, `failed` or
    /// `not run`.
    Finished {
        /// The stage.
        stage: String,
        /// How it ended.
        outcome: String,
        /// Seconds since the run started.
        seconds: f64,
    },
}

/// A [`RunEvents`] sink appending every event to `live.jsonl`. A write that fails (a full disk)
/// ends the log and never the run.
pub struct LiveLog {
    file: Option<File>,
    started: Instant,
}

impl LiveLog {
    /// Starts the log at `path`, replacing the log of an earlier run into the same directory.
    pub fn create(path: &Path) -> Result<Self> {
        let file =
            File::create(path).map_err(|e| Error::data(path, format!("cannot write: {e}")))?;
        Ok(Self { file: Some(file), started: Instant::now() })
    }

    fn seconds(&self) -> f64 {
        (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0
    }

    fn append(&mut self, event: &LiveEvent) {
        let Some(file) = &mut self.file else { return };
        let written = serde_json::to_string(event)
            .map_err(std::io::Error::other)
            .and_then(|line| writeln!(file, "{line}"))
            .and_then(|()| file.flush());
        if written.is_err() {
            self.file = None;
        }
    }
}

impl RunEvents for LiveLog {
    fn plan_ready(&mut self, plan: &Plan) {
        let trainings = plan
            .stages
            .iter()
            .filter(|s| s.stage.kind == StageKind::Train)
            .map(|s| s.stage.name.clone())
            .collect();
        self.append(&LiveEvent::Plan { stages: plan.stages.len(), trainings });
    }

    fn stage_started(&mut self, stage: &StageIr, _key: &StageKey, cached: bool) {
        let threshold = stage.params.get("threshold").and_then(serde_json::Value::as_f64);
        let event = LiveEvent::Started {
            stage: stage.name.clone(),
            trains: stage.kind == StageKind::Train,
            cached,
            threshold,
            seconds: self.seconds(),
        };
        self.append(&event);
    }

    fn train_progress(&mut self, stage: &str, record: &EvalRecord, total_steps: u64) {
        let finite = |v: f64| v.is_finite().then_some(v);
        let event = LiveEvent::Eval {
            arm: stage.to_string(),
            step: record.step,
            total_steps,
            train_loss: finite(record.train_loss),
            train_acc: record.train_acc,
            test_loss: finite(record.test_loss),
            test_acc: record.test_acc,
            l2: finite(record.norms.l2),
            seconds: self.seconds(),
        };
        self.append(&event);
    }

    fn stage_finished(&mut self, stage: &StageIr, report: &StageReport) {
        let event = LiveEvent::Finished {
            stage: stage.name.clone(),
            outcome: report.outcome.label().to_string(),
            seconds: self.seconds(),
        };
        self.append(&event);
    }
}

/// The events of the live log `text` (read from `path`); a last line without its newline is
/// being written and is left for the next read.
pub fn parse(path: &Path, text: &str) -> Result<Vec<LiveEvent>> {
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| {
                Error::data(
                    path,
                    format!(
                        "line {}: not an event of the live log ({e}); only `ticketlab run` writes this file: rerun the run's command into this directory to write it again (finished stages load from the store)",
                        i + 1
                    ),
                )
            })
        })
        .collect()
}

/// What the live log says of one training.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArmState {
    /// The training stage.
    pub arm: String,
    /// Loaded from the store: it will not evaluate.
    pub cached: bool,
    /// Its outcome once it ended.
    pub outcome: Option<String>,
    /// The threshold of t_mem and t_gen.
    pub threshold: Option<f64>,
    /// Steps it will take (0 until its first evaluation).
    pub total_steps: u64,
    /// Its evaluations so far (without per-layer norms or L1).
    pub evals: Vec<EvalRecord>,
    /// Seconds since the run started, at its start.
    pub started: f64,
    /// Seconds since the run started, at each evaluation of `evals`.
    pub eval_seconds: Vec<f64>,
}

impl ArmState {
    /// The step of the last evaluation.
    pub fn step(&self) -> u64 {
        self.evals.last().map_or(0, |e| e.step)
    }

    /// Seconds left at the pace so far (`None` before two evaluations or once it ended).
    pub fn eta(&self) -> Option<f64> {
        let step = self.step();
        if self.outcome.is_some() || self.evals.len() < 2 || step == 0 {
            return None;
        }
        let first = self.evals[0].step;
        let last = self.eval_seconds.last().copied().unwrap_or(self.started);
        let pace = (last - self.started) / (step - first.min(step)).max(1) as f64;
        Some(pace * self.total_steps.saturating_sub(step) as f64)
    }
}

/// The state of every training the log mentions, in the plan's order.
pub fn arms(events: &[LiveEvent]) -> Vec<ArmState> {
    let mut out: Vec<ArmState> = Vec::new();
    let find = |out: &mut Vec<ArmState>, arm: &str| match out.iter().position(|a| a.arm == arm) {
        Some(i) => i,
        None => {
            out.push(ArmState { arm: arm.to_string(), ..ArmState::default() });
            out.len() - 1
        }
    };
    for event in events {
        match event {
            LiveEvent::Plan { trainings, .. } => {
                for t in trainings {
                    find(&mut out, t);
                }
            }
            LiveEvent::Started { stage, trains: true, cached, threshold, seconds } => {
                let i = find(&mut out, stage);
                out[i].cached = *cached;
                out[i].threshold = *threshold;
                out[i].started = *seconds;
            }
            LiveEvent::Eval {
                arm,
                step,
                total_steps,
                train_loss,
                train_acc,
                test_loss,
                test_acc,
                l2,
                seconds,
            } => {
                let i = find(&mut out, arm);
                out[i].total_steps = *total_steps;
                out[i].evals.push(EvalRecord {
                    step: *step,
                    train_loss: train_loss.unwrap_or(f64::NAN),
                    train_acc: *train_acc,
                    test_loss: test_loss.unwrap_or(f64::NAN),
                    test_acc: *test_acc,
                    norms: Norms { l1: f64::NAN, l2: l2.unwrap_or(f64::NAN) },
                    layers: Default::default(),
                });
                out[i].eval_seconds.push(*seconds);
            }
            LiveEvent::Finished { stage, outcome, .. } => {
                if let Some(a) = out.iter_mut().find(|a| a.arm == *stage) {
                    a.outcome = Some(outcome.clone());
                }
            }
            LiveEvent::Started { .. } => {}
        }
    }
    out
}

/// One line per training: step of steps, train and test accuracy, t_mem and t_gen once
/// reached, a sparkline of the test accuracy, and the time left or how it ended.
pub fn render(arms: &[ArmState]) -> String {
    let width = arms.iter().map(|a| a.arm.len()).max().unwrap_or(3).clamp(3, 48);
    let mut out = format!(
        "{:<width$}  {:>13}  {:>6}  {:>6}  {:>6}  {:>6}  {:<24}  {}\n",
        "arm", "step", "train", "test", "t_mem", "t_gen", "test accuracy", "status"
    );
    for a in arms {
        let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0));
        let last = a.evals.last();
        let grok = grok_metrics(&a.evals, a.threshold.unwrap_or(0.95));
        let t = |v: Option<u64>| v.map_or("-".into(), |s| s.to_string());
        let status = match (&a.outcome, a.cached, a.evals.is_empty()) {
            (Some(o), _, _) => o.clone(),
            (None, true, _) => "loading from the store".into(),
            (None, false, true) => "waiting".into(),
            (None, false, false) => match a.eta() {
                Some(s) => format!("training, about {} left", duration(s)),
                None => "training".into(),
            },
        };
        let name: String = a.arm.chars().take(width).collect();
        let _ = writeln!(
            out,
            "{name:<width$}  {:>13}  {:>6}  {:>6}  {:>6}  {:>6}  {:<24}  {status}",
            if a.total_steps == 0 {
                "-".to_string()
            } else {
                format!("{}/{}", a.step(), a.total_steps)
            },
            pct(last.and_then(|e| e.train_acc)),
            pct(last.and_then(|e| e.test_acc)),
            t(grok.t_mem),
            t(grok.t_gen),
            sparkline(&a.evals.iter().map(|e| e.test_acc).collect::<Vec<_>>(), 24),
        );
    }
    out
}

/// `values` (accuracies in [0, 1]) as at most `width` block characters, each the last value of
/// its share of the evaluations; a missing value is a space.
pub fn sparkline(values: &[Option<f64>], width: usize) -> String {
    const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let n = values.len();
    (0..n.min(width))
        .map(|i| {
            let at = ((i + 1) * n).div_ceil(n.min(width)) - 1;
            match values[at.min(n - 1)] {
                Some(v) => BLOCKS[((v.clamp(0.0, 1.0) * 7.0).round()) as usize],
                None => ' ',
            }
        })
        .collect()
}

/// `90 s`, `12 min`, `2.5 h`.
fn duration(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{seconds:.0} s")
    } else if seconds < 5400.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(arm: &str, step: u64, train: f64, test: f64, seconds: f64) -> LiveEvent {
        LiveEvent::Eval {
            arm: arm.into(),
            step,
            total_steps: 100,
            train_loss: Some(1.0),
            train_acc: Some(train),
            test_loss: None,
            test_acc: Some(test),
            l2: Some(1.0),
            seconds,
        }
    }

    #[test]
    fn the_state_follows_the_events_and_a_partial_line_waits() {
        let started = |stage: &str, cached| LiveEvent::Started {
            stage: stage.into(),
            trains: true,
            cached,
            threshold: Some(0.9),
            seconds: 0.0,
        };
        let events = vec![
            LiveEvent::Plan { stages: 3, trainings: vec!["dense".into(), "ticket".into()] },
            started("dense", false),
            eval("dense", 0, 0.1, 0.0, 0.0),
            eval("dense", 20, 0.95, 0.2, 10.0),
            eval("dense", 40, 1.0, 0.92, 20.0),
            started("ticket", true),
        ];
        let text: String =
            events.iter().map(|e| serde_json::to_string(e).unwrap() + "\n").collect();
        let path = Path::new("live.jsonl");
        assert_eq!(parse(path, &text).unwrap(), events);
        assert_eq!(parse(path, &format!("{text}{{\"event\":\"ev")).unwrap(), events);
        assert!(
            parse(path, "{\"event\":\"nonsense\"}\n").unwrap_err().to_string().contains("line 1")
        );

        let state = arms(&events);
        assert_eq!(state.len(), 2);
        assert_eq!((state[0].step(), state[0].total_steps), (40, 100));
        // 40 steps in 20 s: 60 left take 30 s.
        assert_eq!(state[0].eta(), Some(30.0));
        let shown = render(&state);
        let dense = shown.lines().nth(1).unwrap();
        assert!(dense.contains("40/100") && dense.contains("92.0%"), "{shown}");
        assert!(
            dense.contains(" 20 ") && dense.contains(" 40 "),
            "t_mem 20, t_gen 40 at 0.9: {shown}"
        );
        assert!(dense.contains("about 30 s left"), "{shown}");
        assert!(shown.lines().nth(2).unwrap().contains("loading from the store"), "{shown}");
    }

    #[test]
    fn sparklines_keep_the_last_value_of_each_share() {
        assert_eq!(sparkline(&[Some(0.0), Some(0.5), Some(1.0)], 10), "▁▅█");
        assert_eq!(sparkline(&[Some(0.0), None, Some(0.0), Some(1.0)], 2), " █");
        assert_eq!(sparkline(&[], 5), "");
    }
}
