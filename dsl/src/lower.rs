//! Lowering: a checked experiment to the stage IR.

use ticketlab_api::ir::ExperimentIr;
use ticketlab_api::plugin::registry::Registry;

use crate::ast::Experiment;
use crate::check::{Checked, check};
use crate::diag::Diag;
use crate::sweep;

/// Checks `ast` (whose file reads `text`) and expands it into an [`ExperimentIr`] with its
/// claims.
pub fn lower(ast: &Experiment, registry: &Registry, text: &str) -> Result<ExperimentIr, Vec<Diag>> {
    let checked = check(ast, registry)?;
    let mut ir = lower_checked(&checked);
    ir.claims = crate::claims::lower(&ast.claims, &ir, text)?;
    Ok(ir)
}

/// Expands an already checked experiment, without its claims ([`crate::claims::lower`]).
pub fn lower_checked(checked: &Checked) -> ExperimentIr {
    ExperimentIr {
        name: checked.name.clone(),
        description: checked.description.clone(),
        seed: checked.seed,
        plugins: checked.plugins.clone(),
        stages: sweep::expand(checked),
        claims: Vec::new(),
    }
}
