//! How the command fails: an exit code and a message rendered with miette.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use miette::{GraphicalReportHandler, GraphicalTheme, MietteDiagnostic};

/// The exit code of a run stopped by a signal after saving its state (the README's table).
pub const INTERRUPTED: u8 = 3;

/// Why the command stopped.
#[derive(Debug)]
pub enum Failure {
    /// Bad arguments or input: exit code 2.
    Input(String),
    /// A check or a run failed: exit code 1.
    Failed(String),
    /// A run stopped on request (Ctrl-C, SIGTERM, SIGHUP) after saving its state: exit code
    /// [`INTERRUPTED`].
    Interrupted(String),
    /// Diagnostics already rendered (e.g. by the experiment-file checker), with their code.
    Rendered {
        /// The rendered text.
        text: String,
        /// The exit code.
        code: u8,
    },
    /// Our output pipe was closed: stop quietly with 0.
    BrokenPipe,
}

impl Failure {
    /// An input error from anything displayable.
    pub fn input(e: impl std::fmt::Display) -> Self {
        Failure::Input(e.to_string())
    }

    /// A failure from anything displayable.
    pub fn failed(e: impl std::fmt::Display) -> Self {
        Failure::Failed(e.to_string())
    }

    /// An error reading or writing a run directory's files: the disk failing is a failure
    /// (exit 1), anything else (a missing or malformed file, a wrong name) the input's (exit 2).
    pub fn of_run_files(e: ticketlab_api::Error) -> Self {
        match e {
            ticketlab_api::Error::Io { .. } => Failure::failed(e),
            _ => Failure::input(e),
        }
    }

    /// A panic that escaped every other boundary (a bug): reported, exit code 1.
    pub fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Self {
        let message = ticketlab_api::error::panic_message(&*payload);
        Failure::failed(ticketlab_api::Error::Internal(message))
    }

    /// The message alone (empty for a closed pipe).
    pub fn message(&self) -> &str {
        match self {
            Failure::Input(m) | Failure::Failed(m) | Failure::Interrupted(m) => m,
            Failure::Rendered { text, .. } => text,
            Failure::BrokenPipe => "",
        }
    }

    /// Prints the message and returns the exit code.
    pub fn exit(self) -> ExitCode {
        let (text, code) = match self {
            Failure::BrokenPipe => return ExitCode::SUCCESS,
            Failure::Input(m) => (render(&m), 2),
            Failure::Failed(m) => (render(&m), 1),
            Failure::Interrupted(m) => (m, INTERRUPTED),
            Failure::Rendered { text, code } => (text, code),
        };
        let mut err = io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = err.write_all(b"\n");
        }
        ExitCode::from(code)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::Failed(e.to_string())
        }
    }
}

/// Whether to use colour on stderr: a terminal, and neither `NO_COLOR` nor `CI` set.
pub fn color_stderr() -> bool {
    io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none()
        && std::env::var_os("CI").is_none()
}

/// Renders a message as a miette error report.
pub fn render(message: &str) -> String {
    let theme =
        if color_stderr() { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    let diag = MietteDiagnostic::new(message.to_string());
    let mut out = String::new();
    match handler.render_report(&mut out, &diag) {
        Ok(()) => out,
        Err(_) => format!("error: {message}\n"),
    }
}

/// Keeps panics from printing raw messages: the executor turns panics inside stages into
/// errors that name the stage, and `main` reports any other. `RUST_BACKTRACE` brings the
/// default report back for debugging.
pub fn install_panic_hook() {
    if std::env::var_os("RUST_BACKTRACE").is_none() {
        std::panic::set_hook(Box::new(|_| {}));
    }
}

/// Writes `text` to stdout; a closed pipe becomes [`Failure::BrokenPipe`].
pub fn print(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
