//! Lowering: a checked experiment to the stage IR.

use ticketlab_api::ir::ExperimentIr;
use ticketlab_api::plugin::registry::Registry;

use crate::ast::Experiment;
use crate::check::{Checked, check};
use crate::diag::Diag;
use crate::sweep;

/// Checks `ast` and expands it into an [`ExperimentIr`].
pub fn lower(ast: &Experiment, registry: &Registry) -> Result<ExperimentIr, Vec<Diag>> {
    let checked = check(ast, registry)?;
    Ok(lower_checked(&checked))
}

/// Expands an already checked experiment.
pub fn lower_checked(checked: &Checked) -> ExperimentIr {
    ExperimentIr {
        name: checked.name.clone(),
        description: checked.description.clone(),
        seed: checked.seed,
        plugins: checked.plugins.clone(),
        stages: sweep::expand(checked),
    }
}
