//! ticketlab's built-in plugins.

pub mod models;
pub mod trainer;
pub mod bench;
pub mod tasks;
pub mod pruners;
pub mod analyses;
pub mod report;
