//! The `ticketlab` command (bootstrap): trains the paper's MLP on (a+b) mod 67 for a short
//! while and prints a progress line per evaluation.

use ticketlab_core::plugin::registry::Registry;
use ticketlab_core::plugin::{Params, PluginKind, StageContext};
use ticketlab_core::tensor::{LossKind, OptimizerConfig, TrainingSession, init_params};
use ticketlab_plugins as _;

fn with_defaults(registry: &Registry, kind: PluginKind, name: &str, mut p: Params) -> ticketlab_core::Result<Params> {
    for spec in &registry.require(kind, name)?.params {
        if p.get(spec.name).is_none() {
            if let Some(v) = spec.default_value() {
                p.0.insert(spec.name.to_string(), v);
            }
        }
    }
    Ok(p)
}

fn run(steps: u64) -> ticketlab_core::Result<()> {
    let registry = Registry::builtin()?;
    let ctx = StageContext { stage: "data".into(), seed: 0, base_dir: ".".into() };
    let dp = with_defaults(&registry, PluginKind::Dataset, "modular", Params::new())?;
    let data = registry.dataset("modular")?.build(&dp, &ctx)?;
    let ap = with_defaults(&registry, PluginKind::Architecture, "mlp_modular", Params::new())?;
    let arch = registry.architecture("mlp_modular")?.build(&ap, &data.info)?;
    let n = data.train.len();
    let mut session = TrainingSession::new(arch.as_ref(), init_params(arch.as_ref(), 0), None, LossKind::CrossEntropy, OptimizerConfig::paper_adamw(), n, &data.train)?;
    session.set_batch(&data.train)?;
    eprintln!("{}: the paper's MLP, AdamW lr 1e-3 wd 1.0, {steps} steps", data.description);
    for step in 0..=steps {
        if step % 100 == 0 {
            let (tr, te) = (session.evaluate(&data.train)?, session.evaluate(&data.test)?);
            eprintln!("step {step:>6}  train acc {:.3}  test acc {:.3}  train loss {:.4}", tr.accuracy.unwrap_or(f64::NAN), te.accuracy.unwrap_or(f64::NAN), tr.loss);
        }
        if step < steps {
            session.step()?;
        }
    }
    Ok(())
}

fn main() {
    let steps = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    if let Err(e) = run(steps) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
