//! Tests of the claims language: parse tables, located check errors, evaluation and seed rules
//! over a small in-memory run.

use std::collections::HashMap;

use serde_json::json;

use super::{Fact, Facts, Point, Schema, reference_name};

mod check;
mod eval;
mod parse;
mod seeds;

/// The rate sweep of `experiments/rate_sweep.yaml`, plus a stage swept on two axes (one of
/// strings) and one on an integer axis.
fn schema() -> Schema {
    Schema::new()
        .other("data", "dataset", &[])
        .other("init", "model", &[])
        .train("dense", &[])
        .other("mask", "prune", &["mask.rate"])
        .other("ticket", "rewind", &["mask.rate"])
        .train("ticket_train", &["mask.rate"])
        .train("grid_train", &["mask.rate", "grid_train.uses"])
        .train("wide", &["wide.width"])
        .analysis("compare", "report", &["best_rate", "mean_speedup"], &[])
        .axis("mask.rate", [0.0, 0.5, 0.6, 0.8, 0.9].map(|r| json!(r)))
        .axis("grid_train.uses", [json!("adamw"), json!("sgd")])
        .axis("wide.width", [json!(64), json!(128)])
}

/// Facts from a table keyed by `reference@seed`; anything else is missing.
#[derive(Default)]
struct Table {
    seeds: Vec<u64>,
    facts: HashMap<String, Fact>,
}

impl Table {
    fn new(seeds: &[u64]) -> Self {
        Self { seeds: seeds.to_vec(), facts: HashMap::new() }
    }

    /// Sets `reference` (as `reference_name` writes it) on `seed`.
    fn on(mut self, reference: &str, seed: u64, fact: Fact) -> Self {
        self.facts.insert(format!("{reference}@{seed}"), fact);
        self
    }

    /// Sets `reference` on every seed.
    fn all(mut self, reference: &str, fact: Fact) -> Self {
        for s in self.seeds.clone() {
            self = self.on(reference, s, fact.clone());
        }
        self
    }
}

impl Facts for Table {
    fn metric(&self, stage: &str, point: &Point, metric: &str, seed: u64) -> Fact {
        let key = format!("{}@{seed}", reference_name(stage, point, metric));
        self.facts.get(&key).cloned().unwrap_or(Fact::Missing(format!("no arm {key}")))
    }

    fn seeds(&self) -> Vec<u64> {
        self.seeds.clone()
    }
}

fn v(x: f64) -> Fact {
    Fact::Value(x)
}

/// `ticket_train[mask.rate=R].t_gen` written as `reference_name` does.
fn ticket(rate: &str, metric: &str) -> String {
    format!("ticket_train[mask.rate={rate}].{metric}")
}

/// One seed (0) of the rate sweep: the k = 0.6 ticket generalises in 1500 steps, k = 0.9
/// never; the k = 0.8 arm failed before reporting its accuracy.
fn run() -> Table {
    let mut t = Table::new(&[0])
        .all("dense.t_gen", v(10000.0))
        .all("dense.t_mem", v(800.0))
        .all("dense.final_test_loss", v(f64::NAN));
    for (rate, t_gen) in [
        ("0.0", v(9000.0)),
        ("0.5", v(3000.0)),
        ("0.6", v(1500.0)),
        ("0.8", v(2500.0)),
        ("0.9", Fact::Never),
    ] {
        t = t
            .all(&ticket(rate, "t_gen"), t_gen.clone())
            .all(&ticket(rate, "final_train_acc"), v(1.0));
        let speedup = if t_gen == Fact::Never { Fact::Never } else { v(2.0) };
        t = t.all(&ticket(rate, "speedup_t_gen"), speedup);
        if rate != "0.8" {
            t = t.all(&ticket(rate, "final_test_acc"), v(0.99));
        }
    }
    for (rate, adamw, sgd) in [("0.0", 100.0, 200.0), ("0.5", 100.0, 300.0), ("0.6", 100.0, 250.0)]
    {
        t = t
            .all(&format!("grid_train[grid_train.uses=\"adamw\",mask.rate={rate}].t_gen"), v(adamw))
            .all(&format!("grid_train[grid_train.uses=\"sgd\",mask.rate={rate}].t_gen"), v(sgd));
    }
    for rate in ["0.8", "0.9"] {
        for uses in ["adamw", "sgd"] {
            t = t.all(
                &format!("grid_train[grid_train.uses=\"{uses}\",mask.rate={rate}].t_gen"),
                Fact::Never,
            );
        }
    }
    t.all("wide[wide.width=128].steps", v(5000.0)).all("compare.best_rate", v(0.6))
}
