//! The compiled tensor engine: luminal 0.2.0 graphs as IR and executor, with our own autograd,
//! graph passes, optimizers, masks and CPU kernels (luminal's stock CPU compiler is never used).
//!
//! Plugins use the high-level API in this module: [`gradients`], [`hessian_gradient_product`]
//! and [`forward`] evaluate an architecture on host data; a [`TrainingSession`] compiles one
//! training step and runs it many times.

pub mod autograd;
mod contraction;
pub mod denormals;
pub mod kernels;
mod narrow;
pub mod optim;
mod reassociate;
pub mod session;

pub use optim::{OptimizerConfig, OptimizerKind, OptimizerState};
pub use session::{
    ArmInit, EvalResult, LossKind, LossPrecision, Objective, StepSpec, TrainingSession, evaluate,
    forward, gradients, hessian_gradient_product,
};

// The vocabulary the engine works on, imported once for its modules.
pub(crate) use ticketlab_api::tensor::{
    Architecture, HostTensor, MaskSet, NamedTensors, ParamDef, graph, init_params,
};

#[cfg(test)]
mod arm_tests;
#[cfg(test)]
mod pass_tests;
#[cfg(test)]
mod tests;
