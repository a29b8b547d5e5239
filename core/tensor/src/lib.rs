//! ticketlab-tensor: the compiled tensor engine and the pruning math, below the plugins.
//!
//! luminal 0.2.0 graphs are the IR and the executor; everything else is ours: reverse-mode
//! autograd ([`autograd`], double backward included), graph passes (row narrowing, matrix-chain
//! reassociation), kernels ([`kernels`], luminal's stock CPU compiler is never used), optimizers
//! with PyTorch semantics ([`optim`]), masks in the graph, and sessions that evaluate or train an
//! architecture. [`pruning`] turns scores into masks and [`rewind`] applies a mask to saved
//! weights.
//!
//! Plugins use the high-level API: [`gradients`], [`hessian_gradient_product`] and [`forward`]
//! evaluate an architecture on host data; a [`TrainingSession`] compiles one training step and
//! runs it many times.
//!
//! It depends on `ticketlab-api` alone among this workspace's crates: plugins build on it and the
//! api, never on the engine that plans and stores runs.

pub mod autograd;
mod contraction;
pub mod kernels;
mod narrow;
pub mod optim;
pub mod profile;
pub mod pruning;
mod reassociate;
pub mod rewind;
pub mod session;

pub use optim::{OptimizerConfig, OptimizerKind, OptimizerState};
pub use session::{
    ArmInit, EvalResult, LossKind, LossPrecision, Objective, StepSpec, TrainingSession, evaluate,
    forward, gradients, hessian_gradient_product,
};

#[cfg(test)]
mod arm_tests;
#[cfg(test)]
mod pass_tests;
#[cfg(test)]
mod tests;
