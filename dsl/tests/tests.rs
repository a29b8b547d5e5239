//! The experiment-file front end's tests, in one test binary.

mod claims;
mod common;
mod diagnostics;
mod extends;
mod fmt;
mod fuzz;
mod implied;
mod random;
mod recipes;
mod robustness;
mod sweeps;
mod twins;
