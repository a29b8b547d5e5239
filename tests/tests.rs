//! Integration tests.

mod cache;
mod cli;
mod plugins_dynamic;
