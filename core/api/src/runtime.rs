//! How this process runs stages, as opposed to what they compute: built once by the caller (the
//! `ticketlab` program from its options, or a library user) and handed down to every stage
//! through [`StageContext`](crate::plugin::StageContext). Nothing here enters a cache key, so
//! nothing here may change a result.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::budget::Budget;

/// The default limit on one dynamic plugin call in its own process ([`Runtime::plugin_timeout`]).
pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_secs(600);

/// Settings of one execution: where and how stages compute. Only [`Runtime::device`] can change
/// a result, so it is the one of them recorded in cache keys.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// The directory relative paths of the experiment resolve against (its file's directory):
    /// data files, weight files.
    pub base_dir: PathBuf,
    /// Threads of the matrix kernels of one stage (every count gives the same numbers).
    pub threads: usize,
    /// Where compiled graphs run.
    pub device: Device,
    /// The memory a stage may use (`--max-memory`; default: this machine's memory).
    pub budget: Budget,
    /// Set when the run should stop early (Ctrl-C, SIGTERM): trainings save their state at the
    /// next step boundary and end, and nothing new starts.
    pub stop: StopFlag,
    /// The program that serves dynamic plugin calls in a child process (`PROGRAM plugin-host`), so
    /// that a crashing plugin fails only its stage; `None` calls plugins in this process.
    pub plugin_host: Option<PathBuf>,
    /// How long one isolated plugin call may take before its process is killed and the stage
    /// fails (`None`: no limit).
    pub plugin_timeout: Option<Duration>,
}

impl Default for Runtime {
    /// Paths relative to the working directory, one kernel thread on the CPU, the machine's
    /// memory, plugins called in this process (with the default timeout for isolated calls),
    /// and no stop requested.
    fn default() -> Self {
        Self {
            base_dir: PathBuf::from("."),
            threads: 1,
            device: Device::Cpu,
            budget: Budget::default(),
            stop: StopFlag::default(),
            plugin_host: None,
            plugin_timeout: Some(DEFAULT_PLUGIN_TIMEOUT),
        }
    }
}

/// Where compiled graphs run. Results differ in their last bits between devices, so the device
/// is part of every cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    /// The CPU kernels.
    #[default]
    Cpu,
    /// luminal_cuda's compiler (the tensor crate's `cuda` feature): inputs and outputs stay host
    /// buffers; its copy pass moves them to and from the device.
    Cuda,
}

impl Device {
    /// Every device, in the order they are documented.
    pub const ALL: [Device; 2] = [Device::Cpu, Device::Cuda];

    /// The name in manifests, cache keys and `TICKETLAB_BACKEND`.
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        }
    }

    /// Parses [`Device::name`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A request to stop, shared by every part of one run: set once (by a signal handler or a
/// test), read at step boundaries. Cloning shares the flag.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<OnceLock<String>>);

impl StopFlag {
    /// Asks everything sharing this flag to stop; `reason` (e.g. `SIGTERM`) is kept for messages.
    /// Only the first request's reason is kept.
    pub fn request(&self, reason: impl Into<String>) {
        let _ = self.0.set(reason.into());
    }

    /// Whether a stop was requested.
    pub fn is_requested(&self) -> bool {
        self.0.get().is_some()
    }

    /// Why the stop was requested, if it was.
    pub fn reason(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_is_shared_by_clones_and_keeps_its_first_reason() {
        let flag = StopFlag::default();
        let seen = flag.clone();
        assert!(!seen.is_requested() && seen.reason().is_none());
        flag.request("SIGTERM");
        flag.request("SIGINT");
        assert!(seen.is_requested());
        assert_eq!(seen.reason(), Some("SIGTERM"));
    }
}
