//! Built-in pruners, exact to the reference implementations (ANCHORS.md section b).
//!
//! A pruner only scores: it returns one score per prunable weight, higher = more important =
//! kept. The core ([`ticketlab_tensor::pruning::make_mask`]) ranks the alive weights only, keeps
//! exactly k, breaks ties deterministically, keeps masks monotone and reports per-layer
//! density, so none of that is repeated here.
//!
//! | name | score | reference |
//! |---|---|---|
//! | `magnitude` | `|θ|` | OpenLTH / Synaptic-Flow `Mag` |
//! | `random` | seeded `N(0, 1)` | Synaptic-Flow `Rand` (exact k) |
//! | `shuffle` | seeded `N(0, 1)` with a reference mask's per-layer counts | OpenLTH layer-wise random branch |
//! | `snip` | `|g ⊙ θ|`, normalised by the sum | Synaptic-Flow `SNIP` |
//! | `grasp` | `θ ⊙ Hg` at temperature 200, signed, normalised by `|Σ| + 1e-10` | Synaptic-Flow `GraSP` |
//! | `synflow` | `|θ ⊙ ∂R/∂θ|` of the `|θ|` network, `R` = sum of outputs | Synaptic-Flow `SynFlow` |

mod common;
mod grasp;
mod magnitude;
mod random;
mod snip;
mod synflow;

#[cfg(test)]
mod tests;
