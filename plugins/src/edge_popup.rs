//! The `edge_popup` trainer (PAPER-SPEC 6.4, the paper's Table 1): structure learnt without
//! changing the weights. Every prunable layer gets a score per weight (Kaiming-uniform, as the
//! reference code's `kaiming_uniform_(a = sqrt(5))`: uniform on ±1/sqrt(fan_in)); each step the
//! network uses the weights whose |score| is among the top `keep` of their layer, and the
//! scores take an AdamW step on the straight-through gradient `dL/ds = dL/dw_eff * w` (the
//! top-k selection passes the gradient through unchanged). With `learn_weights` the weights
//! are trained too, on the gradient of the kept entries (the paper's "EP w/ WD").
//!
//! The run starts from its input model (a memorising checkpoint, through a rewind stage); its
//! evaluations are those of the masked network at each step, its final weights the masked
//! network's (0 outside the last selection), its density `keep`.

use crate::trainer::{BETA1, BETA2, THRESHOLD};
use rand::{Rng, SeedableRng};
use ticketlab_api::artifact::RunArtifact;
use ticketlab_api::metrics::{EvalRecord, RunSummary};
use ticketlab_api::plugin::{ParamSpec, ParamType, Params, TrainJob, TrainerPlugin};
use ticketlab_api::tensor::{HostTensor, MaskSet, NamedTensors, ParamDef};
use ticketlab_api::{Error, Result, register_plugin, seed};
use ticketlab_tensor::{
    LossKind, LossPrecision, OptimizerConfig, OptimizerKind, OptimizerState, StepSpec,
    TrainingSession,
};

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new("steps", ParamType::Int, "score updates (full batch: steps = epochs)").default("2000").min(0.0),
    ParamSpec::new("keep", ParamType::Float, "fraction of each prunable layer's weights kept (the reference code's `pruning_rate 0.4` keeps 40%, k = 0.6)").default("0.4").range(0.0, 1.0),
    ParamSpec::new("learn_weights", ParamType::Bool, "also train the weights (on the gradient of the kept ones): the paper's \"EP w/ WD\"; false: weights frozen, only scores learnt (\"EP w/o WD\")").default("false"),
    ParamSpec::new("lr", ParamType::Float, "AdamW learning rate of the scores (and of the weights with `learn_weights`)").default("0.01").min(0.0),
    ParamSpec::new("weight_decay", ParamType::Float, "AdamW weight decay, on the scores (as the reference code's optimizer over them) and on learnt weights").default("1.0").min(0.0),
    BETA1,
    BETA2,
    ParamSpec::new("eval_every", ParamType::Int, "evaluate train and test every N steps (and at the end)").default("100").min(1.0),
    THRESHOLD,
];

/// The edge-popup trainer.
#[derive(Default)]
struct EdgePopup;

/// Kaiming-uniform scores for `def`, one seeded stream per layer.
fn initial_scores(def: &ParamDef, stage_seed: u64) -> HostTensor {
    let fan_in = if def.shape.len() > 1 { def.shape[1..].iter().product() } else { def.shape[0] };
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    let stream = seed::splitmix64(stage_seed ^ seed::fnv1a(&def.name));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(stream);
    let len = def.shape.iter().product();
    HostTensor::new(
        def.shape.clone(),
        (0..len).map(|_| rng.gen_range(-bound..bound) as f32).collect(),
    )
}

/// 1 for the `round(keep * n)` entries of largest |score| (ties by index), 0 elsewhere.
fn top_k(scores: &HostTensor, keep: f64) -> HostTensor {
    let n = scores.data.len();
    let k = (keep * n as f64).round() as usize;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| scores.data[*b].abs().total_cmp(&scores.data[*a].abs()).then(a.cmp(b)));
    let mut mask = vec![0.0f32; n];
    order.iter().take(k).for_each(|&i| mask[i] = 1.0);
    HostTensor::new(scores.shape.clone(), mask)
}

impl TrainerPlugin for EdgePopup {
    fn train(&self, params: &Params, job: TrainJob<'_>) -> Result<RunArtifact> {
        let (steps, keep) = (params.usize("steps")? as u64, params.f64("keep")?);
        let learn_weights = params.bool("learn_weights")?;
        let every = params.usize("eval_every")? as u64;
        let config = OptimizerConfig {
            kind: OptimizerKind::AdamW,
            lr: params.f64("lr")?,
            weight_decay: params.f64("weight_decay")?,
            beta1: params.f64("beta1")?,
            beta2: params.f64("beta2")?,
            eps: 1e-8,
        };
        let data = job.data;
        let defs = job.arch.parameters();
        let scored: Vec<ParamDef> = defs.iter().filter(|d| d.prunable).cloned().collect();
        if scored.is_empty() {
            return Err(Error::param("keep", "the model has no prunable weights to score"));
        }
        let mut weights = job.init.params.clone();
        let mut scores: NamedTensors =
            scored.iter().map(|d| (d.name.clone(), initial_scores(d, job.ctx.seed))).collect();
        let spec = StepSpec {
            loss: LossKind::CrossEntropy,
            precision: LossPrecision::F32,
            optimizer: config,
            batch_size: data.train.len(),
            device: job.ctx.runtime.device,
        };
        let mut session =
            TrainingSession::new(job.arch, weights.clone(), None, &spec, &data.train)?;
        session.set_batch(&data.train)?;
        let mut score_opt = OptimizerState::new(config, &scored);
        let mut weight_opt = OptimizerState::new(config, &defs);
        let mut records: Vec<EvalRecord> = Vec::new();
        for step in 0..=steps {
            let mask: MaskSet = scores.iter().map(|(n, s)| (n.clone(), top_k(s, keep))).collect();
            let mut effective = weights.clone();
            ticketlab_tensor::pruning::apply_mask(&mut effective, &mask);
            session.set_params(&effective)?;
            if step % every == 0 || step == steps {
                let record = crate::trainer::evaluate(&mut session, data, step)?;
                job.observer.on_eval(&record, steps);
                records.push(record);
            }
            if step == steps {
                break;
            }
            // Edge-popup keeps no resumable state: a stopped stage starts again next time.
            if step > 0 && job.observer.stop_requested(step) {
                return Err(Error::Interrupted { step });
            }
            let (loss, grads) = session.gradients()?;
            if !loss.is_finite() {
                return Err(Error::Diverged {
                    step,
                    message: format!("loss is {loss}; lower `lr`"),
                });
            }
            for (index, def) in scored.iter().enumerate() {
                let w = &weights[&def.name].data;
                let g: Vec<f32> = grads[&def.name].data.iter().zip(w).map(|(g, w)| g * w).collect();
                let s = scores.get_mut(&def.name).expect("a score per scored layer");
                score_opt.update(index, &mut s.data, &g, None);
            }
            score_opt.finish_step();
            if learn_weights {
                for (index, def) in defs.iter().enumerate() {
                    let m = mask.get(&def.name).map(|m| m.data.as_slice());
                    let g: Vec<f32> = match m {
                        Some(m) => {
                            grads[&def.name].data.iter().zip(m).map(|(g, m)| g * m).collect()
                        }
                        None => grads[&def.name].data.clone(),
                    };
                    let w = weights.get_mut(&def.name).expect("a weight per parameter");
                    weight_opt.update(index, &mut w.data, &g, None);
                }
                weight_opt.finish_step();
            }
        }
        // The masked network: weights outside the last selection are 0.
        let final_params = session.params()?;
        let init = job.init.clone();
        let summary = RunSummary::from_records(&records, params.f64("threshold")?, keep)
            .ok_or_else(|| Error::Other("training produced no evaluation".into()))?;
        Ok(RunArtifact { init, final_params, checkpoints: Default::default(), records, summary })
    }
}

register_plugin!(
    Trainer,
    "edge_popup",
    "1.0.0",
    "Edge-popup: learn which weights to keep (top-k |score| per layer, straight-through), weights frozen or trained",
    PARAMS,
    EdgePopup
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The kept entries are the `round(keep * n)` largest magnitudes, ties broken by index.
    #[test]
    fn top_k_keeps_the_largest_magnitudes_with_ties_by_index() {
        let s = HostTensor::new(vec![2, 3], vec![0.1, -0.5, 0.5, 0.0, 0.2, -0.2]);
        assert_eq!(top_k(&s, 0.5).data, [0.0, 1.0, 1.0, 0.0, 1.0, 0.0]);
        assert_eq!(top_k(&s, 0.0).data.iter().sum::<f32>(), 0.0);
        assert_eq!(top_k(&s, 1.0).data.iter().sum::<f32>(), 6.0);
    }

    /// Scores are uniform on ±1/sqrt(fan_in), seeded per stage and layer.
    #[test]
    fn scores_start_kaiming_uniform_per_layer_and_seed() {
        let def = ParamDef {
            name: "w".into(),
            shape: vec![8, 25],
            init: ticketlab_api::tensor::Init::Zeros,
            prunable: true,
        };
        let a = initial_scores(&def, 1);
        assert!(a.data.iter().all(|v| v.abs() < 0.2) && a.data.iter().any(|v| v.abs() > 0.1));
        assert_eq!(a, initial_scores(&def, 1));
        assert_ne!(a, initial_scores(&def, 2));
    }
}
