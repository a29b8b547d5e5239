//! Memory refusals of an expanded experiment, located in the file.
//!
//! After checking and sweep expansion, every stage whose memory can be estimated from its
//! parameters ([`Budget::estimate`]) is held against the memory allowed; a stage
//! beyond it is reported at the parameter to change: its value in the stage's `with`, else the
//! sweep axis that sets it, else the stage's name. One report per stage as written, however many
//! sweep points exceed the limit.

use std::collections::BTreeSet;

use ticketlab_api::budget::Budget;
use ticketlab_api::ir::{ExperimentIr, written_name};
use ticketlab_api::plugin::registry::Registry;

use super::{flag_note, param_error, param_place};
use crate::ast::Experiment;
use crate::diag::Diag;

/// A diagnostic for every written stage with a copy beyond the memory allowed.
pub fn refusals(
    ast: &Experiment,
    ir: &ExperimentIr,
    registry: &Registry,
    budget: &Budget,
) -> Vec<Diag> {
    let mut reported = BTreeSet::new();
    let mut out = Vec::new();
    for (name, estimate) in budget.estimate(ir, registry) {
        let Err(e) = estimate else { continue };
        let base = written_name(&name).to_string();
        if !reported.insert(base.clone()) {
            continue;
        }
        let Some(stage) = ast.stages.iter().find(|s| s.name.node == base) else { continue };
        let (key, message) = param_error(&e);
        // The value to change: the sweep axis that set it in this copy, else the stage's own.
        let axis = key.and_then(|k| {
            let full = format!("{base}.{k}");
            let swept = name.contains(&format!("{full}="));
            ast.sweep
                .iter()
                .flat_map(|s| s.grid.iter().chain(&s.zip))
                .find(|a| swept && a.key.node == full)
        });
        let (span, note) = match axis {
            Some(a) if !a.key.span.is_empty() => (a.key.span, flag_note(a)),
            Some(a) => (stage.name.span, flag_note(a)),
            None => param_place(stage, key),
        };
        let subject = match key {
            Some(k) => format!("`{base}.{k}`{note}"),
            None => format!("stage `{base}`"),
        };
        let copy = if name == base { String::new() } else { format!(" (in `{name}`)") };
        out.push(
            Diag::new(format!("{subject}{copy}: {message}"))
                .label(span, "too large for the memory allowed")
                .help("estimated from the parameters before anything runs; `--max-memory SIZE` sets the limit (default: this machine's memory)"),
        );
    }
    out
}
