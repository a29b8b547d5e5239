//! Built-in architectures: the paper's MLP and transformer for modular arithmetic, the MNIST
//! MLP, and a generic MLP with widths from the experiment file.
//!
//! Weights follow PyTorch's `nn.Linear` layout (`[out, in]`) and the reference code's names,
//! so checkpoints and analyses read the same way as the paper's code. None has biases unless
//! asked: the paper's models have none.

mod mlp;
mod mlp_modular;
mod mnist_mlp;
mod transformer;

use ticketlab_core::plugin::{ParamSpec, ParamType, Params};
use ticketlab_core::tensor::ParamDef;
use ticketlab_core::{Error, Result};

/// The `prunable` parameter every architecture accepts.
pub(crate) const PRUNABLE: ParamSpec = ParamSpec::new(
    "prunable",
    ParamType::StrList,
    "names of the parameters pruners may prune; empty = the architecture's default (every weight matrix)",
)
.default("[]");

/// Applies the `prunable` override to `defs`, refusing names that do not exist.
pub(crate) fn apply_prunable(mut defs: Vec<ParamDef>, params: &Params) -> Result<Vec<ParamDef>> {
    let names = params.str_list("prunable").unwrap_or_default();
    if names.is_empty() {
        return Ok(defs);
    }
    for n in &names {
        if !defs.iter().any(|d| &d.name == n) {
            let known: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
            return Err(Error::param("prunable", format!("layer `{n}` does not exist; layers: {}", known.join(", "))));
        }
    }
    for d in defs.iter_mut() {
        d.prunable = names.contains(&d.name);
    }
    Ok(defs)
}

/// The token facts of a dataset, or an error naming the architecture.
pub(crate) fn tokens(arch: &str, info: &ticketlab_core::data::DatasetInfo) -> Result<(usize, usize)> {
    info.tokens
        .as_ref()
        .map(|t| (t.vocab, t.n_ctx))
        .ok_or_else(|| Error::plugin(format!("architecture/{arch}"), "needs a token task (such as `modular`); use `mlp` for dense inputs"))
}
