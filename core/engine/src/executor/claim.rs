//! Claiming stages under the store's leases ([`crate::lease`]), so that processes sharing a
//! store (a Slurm array, two runs started by hand) split the work: a stage another live process
//! holds is skipped, and loaded once stored; if that process dies, its lease expires and this one
//! takes the stage over, resuming from its saved state.

use std::time::{Duration, Instant};

use crate::events::RunEvents;
use crate::key::StageKey;
use crate::lease::{Claim, Holder, Lease};
use crate::plan::PlannedStage;
use crate::store::Store;
use ticketlab_api::{Error, Result};

/// How often a run waiting for another process's stage says so again.
const REANNOUNCE_EVERY: Duration = Duration::from_secs(300);

/// One stage of a worker's work: loaded from the store, or computed under its lease.
pub(super) struct Work<'p> {
    /// Its index in the plan.
    pub(super) index: usize,
    pub(super) stage: &'p PlannedStage,
    /// Whether it is only loaded.
    pub(super) cached: bool,
    /// Released once the result is stored (or the stage failed).
    pub(super) lease: Option<Lease>,
}

/// How a stage to start was claimed.
pub(super) enum Claimed<'p> {
    /// Stored, or this process holds its lease.
    Work(Work<'p>),
    /// Another live process computes it; this process goes on with other stages.
    Elsewhere,
    /// It cannot be had (not stored when only stored stages may be loaded, a store error).
    Failed(Error),
}

/// The stages other processes were seen computing, with when that was last said.
pub(super) struct Claims {
    announced: Vec<Option<Instant>>,
}

impl Claims {
    /// Claims for a plan of `n` stages.
    pub(super) fn new(n: usize) -> Self {
        Self { announced: vec![None; n] }
    }

    /// Claims stage `index`: loaded if stored, else under this process's lease (taken from any
    /// holder with `steal`), else left to the live process that holds it (said on `events`, and
    /// again every few minutes while it lasts). With `only_stored`, a stage not stored fails
    /// with that explanation.
    pub(super) fn claim<'p>(
        &mut self,
        index: usize,
        ps: &'p PlannedStage,
        store: &Store,
        steal: bool,
        only_stored: Option<&str>,
        events: &mut dyn RunEvents,
    ) -> Claimed<'p> {
        let claimed = match only_stored {
            Some(why) if !store.contains(&ps.key) => Err(Error::NotStored { why: why.to_string() }),
            _ => lease(store, &ps.key, steal),
        };
        match claimed {
            Ok(Ok((cached, lease))) => {
                if let Some(notice) =
                    lease.as_ref().and_then(Lease::taken_over).and_then(|t| t.notice())
                {
                    events.log(&format!("{}: {notice}", ps.stage.name));
                }
                Claimed::Work(Work { index, stage: ps, cached, lease })
            }
            Ok(Err(holder)) => {
                let due = self.announced[index].is_none_or(|at| at.elapsed() >= REANNOUNCE_EVERY);
                if due {
                    self.announced[index] = Some(Instant::now());
                    events.log(&format!(
                        "{}: {}; waiting for its result, or until its heartbeat is {} s old (rerun with --steal-leases to compute it here now)",
                        ps.stage.name,
                        holder.describe(),
                        crate::lease::EXPIRES_AFTER.as_secs()
                    ));
                }
                Claimed::Elsewhere
            }
            Err(e) => Claimed::Failed(e),
        }
    }
}

/// Whether `key` is stored, and else this process's lease to compute it (taken from any holder
/// when `steal`); or who else holds it.
fn lease(
    store: &Store,
    key: &StageKey,
    steal: bool,
) -> Result<std::result::Result<(bool, Option<Lease>), Holder>> {
    if store.contains(key) {
        return Ok(Ok((true, None)));
    }
    match store.claim(key, steal)? {
        // Stored between the look and the claim: load it rather than compute it again.
        Claim::Acquired(_) if store.contains(key) => Ok(Ok((true, None))),
        Claim::Acquired(lease) => Ok(Ok((false, Some(lease)))),
        Claim::HeldBy(holder) => Ok(Err(holder)),
    }
}
