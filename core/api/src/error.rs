//! The error type shared by the engine and the plugins.

use std::path::PathBuf;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside ticketlab, grouped by where it comes from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A plugin or stage parameter is missing, of the wrong type, or out of range.
    #[error("parameter `{key}`: {message}")]
    Param {
        /// The parameter's name (or key path).
        key: String,
        /// What is wrong and what would be valid.
        message: String,
    },
    /// Shapes that do not fit while building a graph.
    #[error("shape error in {layer}: {message}")]
    Shape {
        /// The layer or operation being built.
        layer: String,
        /// The shapes involved and what was expected.
        message: String,
    },
    /// A data file that cannot be read or is malformed.
    #[error("{}: {message}", path.display())]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Training diverged (NaN or infinite loss).
    #[error("training diverged at step {step}: {message}")]
    Diverged {
        /// The step at which a non-finite value appeared.
        step: u64,
        /// Which quantity became non-finite and what to try.
        message: String,
    },
    /// A plugin failed, was refused, or could not be found.
    #[error("plugin `{plugin}`: {message}")]
    Plugin {
        /// `kind/name` of the plugin, or the library path for dynamic ones.
        plugin: String,
        /// What went wrong.
        message: String,
    },
    /// A stage is connected wrongly or lacks an input it needs (the checker rules these out
    /// for files it checked; IR built in code can still get them wrong).
    #[error("stage `{stage}`: {message}")]
    Wiring {
        /// The stage's name.
        stage: String,
        /// What is wrong with its inputs and how to connect it.
        message: String,
    },
    /// A stage was to be loaded from the store but is not there.
    #[error("not in the store: {why}")]
    NotStored {
        /// Why it should have been (the Slurm array that was to compute it, and its logs).
        why: String,
    },
    /// The arms of a batch cannot train together.
    #[error("the arms of a batch {0}")]
    Batch(String),
    /// A file ticketlab writes (a run directory's, a figure) cannot be produced.
    #[error("{file}: {message}")]
    Output {
        /// The file.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// A broken promise inside ticketlab: a bug to report, with what was expected.
    #[error("internal error: {0} (please report this with the command you ran)")]
    Internal(String),
    /// A stage failed; wraps the cause with the stage's name.
    #[error("stage `{stage}` failed: {source}")]
    Stage {
        /// The stage's name.
        stage: String,
        /// The cause.
        #[source]
        source: Box<Error>,
    },
    /// A panic inside the tensor backend or a plugin, caught at a boundary.
    #[error("internal panic in {context}: {message}")]
    Panic {
        /// Where it was caught.
        context: String,
        /// The panic message.
        message: String,
    },
    /// Training stopped on request (Ctrl-C, SIGTERM, or `ExecOptions::interrupt_after_steps` in
    /// tests) at a step boundary; a trainer that can resume saved its state at that step first.
    #[error("interrupted at step {step}")]
    Interrupted {
        /// The step at which training stopped.
        step: u64,
    },
    /// The content-addressed store.
    #[error("store: {0}")]
    Store(String),
    /// Input/output errors with the path involved.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Anything else, with a message that says what to do.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// A parameter error.
    pub fn param(key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Param { key: key.into(), message: message.into() }
    }

    /// A shape error.
    pub fn shape(layer: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Shape { layer: layer.into(), message: message.into() }
    }

    /// A data error for a file.
    pub fn data(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Data { path: path.into(), message: message.into() }
    }

    /// A plugin error.
    pub fn plugin(plugin: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Plugin { plugin: plugin.into(), message: message.into() }
    }

    /// An I/O error with its path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// A training loss that is not finite after `step` steps.
    pub fn loss_diverged(step: u64, loss: f64) -> Self {
        Error::Diverged {
            step,
            message: format!("loss is {loss}; lower the learning rate or check the data"),
        }
    }

    /// `self` for each of `n` things that failed together (the arms of a batch): `self` first,
    /// then its message for the others (an error is not `Clone`: it may hold an I/O error).
    pub fn shared_by(self, n: usize) -> Vec<Self> {
        let message = self.to_string();
        let mut first = Some(self);
        (0..n).map(|_| first.take().unwrap_or_else(|| Error::Other(message.clone()))).collect()
    }

    /// Wraps `self` as the cause of a failed stage.
    pub fn in_stage(self, stage: impl Into<String>) -> Self {
        Error::Stage { stage: stage.into(), source: Box::new(self) }
    }
}

/// Runs `f`, turning a panic (luminal signals errors by panicking) into [`Error::Panic`].
pub fn catch_panic<T>(context: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            Err(Error::Panic { context: context.to_string(), message: panic_message(&*payload) })
        }
    }
}

/// The message a panic carried (`panic!("...")` with or without formatting), or `unknown
/// panic`.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}
