//! The experiment-file front end's tests, in one test binary.

mod common;
mod diagnostics;
mod fmt;
mod fuzz;
mod robustness;
mod sweeps;
mod twins;
