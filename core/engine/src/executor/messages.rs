//! What workers tell the scheduler: progress and log lines of running stages, and the results
//! of finished work.

use std::sync::mpsc;

use crate::events::{RunEvents, StageOutcome};
use ticketlab_api::Result;
use ticketlab_api::artifact::Artifact;
use ticketlab_api::metrics::EvalRecord;

/// What a worker tells the scheduler: progress of a running stage, or the end of its work
/// (one stage, or the stages of a batch), each stage's result with its index.
pub(super) enum Message {
    Progress {
        stage: String,
        record: EvalRecord,
        total_steps: u64,
    },
    Log(String),
    /// Work done; `workers` is how many of the [`ExecOptions::jobs`] it held, `long` whether it
    /// held them for long (trained, rather than loaded, pruned, rewound or reported).
    Finished {
        results: Vec<(usize, Result<(Artifact, StageOutcome)>)>,
        seconds: f64,
        workers: usize,
        long: bool,
    },
}

/// Forwards a worker's events to the scheduler, which alone talks to the caller's sink (so
/// the sink needs no locking and sees one event at a time).
#[derive(Clone)]
pub(super) struct ChannelEvents(pub(super) mpsc::Sender<Message>);

impl RunEvents for ChannelEvents {
    fn train_progress(&mut self, stage: &str, record: &EvalRecord, total_steps: u64) {
        let _ = self.0.send(Message::Progress {
            stage: stage.to_string(),
            record: record.clone(),
            total_steps,
        });
    }

    fn log(&mut self, line: &str) {
        let _ = self.0.send(Message::Log(line.to_string()));
    }
}
