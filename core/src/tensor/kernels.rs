//! CPU kernels as luminal compiler passes.
