//! Stopping a run cleanly: SIGINT (Ctrl-C), SIGTERM (what Slurm sends at a time limit) and
//! SIGHUP (a closed terminal) ask the run to stop. Every running training saves its state at the
//! next step boundary and ends, nothing new starts, leases are released, and the run exits with
//! [`INTERRUPTED`](crate::failure::INTERRUPTED). The same signal a second time exits at once:
//! stored results are written by renaming complete files, so an abrupt exit corrupts nothing,
//! and a training resumes from its last saved state instead.

use std::sync::Mutex;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use ticketlab_api::runtime::StopFlag;

use crate::failure::{Failure, INTERRUPTED};

/// The flag of the run going on now: `reproduce` runs one file after another in one process,
/// and a signal stops the current one.
static CURRENT: Mutex<Option<StopFlag>> = Mutex::new(None);

/// Requests `stop` on the first of SIGINT, SIGTERM and SIGHUP, and exits on the second, from a
/// background thread started by the first call; a later call hands it the next run's flag.
pub fn stop_on_signals(stop: StopFlag) -> Result<(), Failure> {
    let first = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).replace(stop).is_none();
    if !first {
        return Ok(());
    }
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Failure::failed(format!("cannot handle signals: {e}")))?;
    std::thread::Builder::new()
        .name("ticketlab-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let name = name(signal);
                let current = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let Some(stop) = current else { continue };
                if stop.is_requested() {
                    eprintln!(
                        "ticketlab: {name} again: exiting now; finished stages stay stored and each training resumes from its last saved state"
                    );
                    std::process::exit(i32::from(INTERRUPTED));
                }
                stop.request(name);
                eprintln!(
                    "ticketlab: {name}: stopping at the next step and saving every running training (send it again to exit at once)"
                );
            }
        })
        .map_err(|e| Failure::failed(format!("cannot handle signals: {e}")))?;
    Ok(())
}

fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}
