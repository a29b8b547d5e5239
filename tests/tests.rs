//! Integration tests.

mod batch_arms;
mod cache;
mod claims;
mod cli;
mod export;
mod halving;
mod layout;
mod live;
mod lmc;
mod outputs;
mod plugins_dynamic;
mod pruners;
mod python_split;
mod reproduce;
mod runs;
mod slurm;
mod sparse_training;
mod stop_rules;
mod stopping;
mod tensorboard;
