//! Compiled training sessions and one-off evaluations on host data.
//!
//! Every graph here is built once with [`GraphBuilder`], differentiated with
//! [`autograd::backward`], compiled with our [`kernels`] and then executed. Weights, masks and
//! inputs are graph leaves whose buffers persist across executions (`no_delete`); outputs are
//! taken out of the graph after each execution so the next one recomputes them.
//!
//! Losses reported by evaluations are computed on the host in f64 from the graph's f32 outputs
//! (the reference code computes its cross-entropy in float64). The training loss is the
//! max-subtracted f32 log-softmax in the graph, stable for logits of any magnitude, or with
//! [`LossPrecision::F64`] the loss and its gradient with respect to the outputs are computed on
//! the host in f64 and fed to the backward graph, as the reference code does. The f32 graph
//! does not lose the gradient of confident predictions: where `p(label)` rounds to 1, the
//! max-subtraction routes the other classes' gradients back to the label (both are tested
//! against an f64 reference in that regime).

mod executor;
mod graph;
mod loss;
mod oneoff;
mod training;

pub use loss::{EvalResult, LossKind, LossPrecision, Objective};
pub use oneoff::{evaluate, forward, gradients, hessian_gradient_product};
pub use training::{ArmInit, StepSpec, TrainingSession};
