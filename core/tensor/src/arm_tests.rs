//! Sessions of several arms against a session per arm: every arm must get the same bits.

use super::tests::{Tiny, every_third_masked, random, tiny_split};
use super::*;
use ticketlab_api::data::Split;
use ticketlab_api::tensor::{HostTensor, MaskSet, NamedTensors, init_params};

/// A mask that removes a random third of every parameter.
fn random_mask(params: &NamedTensors, seed: u64) -> MaskSet {
    params
        .iter()
        .enumerate()
        .map(|(i, (name, t))| {
            let u = random(&t.shape, seed + i as u64, 0.0, 1.0);
            let data = u.iter().map(|&v| if v < 1.0 / 3.0 { 0.0 } else { 1.0 }).collect();
            (name.clone(), HostTensor::new(t.shape.clone(), data))
        })
        .collect()
}

/// Four arms of [`Tiny`]: other initialisations, masks, learning rates, weight decay and
/// gradient clipping; the last one's learning rate makes it diverge.
fn arms() -> Vec<(ArmInit, Option<f64>)> {
    let arm = |seed: u64,
               lr: f64,
               weight_decay: f64,
               clip: Option<f64>,
               mask: fn(&NamedTensors, u64) -> MaskSet| {
        let params = init_params(&Tiny, seed);
        let mask = Some(mask(&params, seed));
        let optimizer = OptimizerConfig { lr, weight_decay, ..OptimizerConfig::paper_adamw() };
        (ArmInit { params, mask, optimizer }, clip)
    };
    vec![
        arm(1, 1e-2, 1.0, None, random_mask),
        arm(2, 3e-2, 0.1, Some(0.5), random_mask),
        arm(3, 5e-3, 0.0, None, |p, _| every_third_masked(p)),
        arm(4, 1e38, 1.0, None, random_mask),
    ]
}

/// One arm's training: the bits of its losses, of its evaluations (loss, accuracy), and its
/// final weights.
type Trained = (Vec<u64>, Vec<(u64, Option<u64>)>, NamedTensors);

/// Trains each arm `steps` steps.
fn train(
    arms: Vec<(ArmInit, Option<f64>)>,
    precision: LossPrecision,
    split: &Split,
    steps: usize,
) -> Vec<Trained> {
    let spec = StepSpec { precision, ..StepSpec::paper(split.len()) };
    let clips: Vec<Option<f64>> = arms.iter().map(|(_, c)| *c).collect();
    let inits = arms.into_iter().map(|(a, _)| a).collect();
    let mut s = TrainingSession::with_arms(&Tiny, inits, &spec, split).unwrap();
    for (arm, clip) in clips.iter().enumerate() {
        s.set_grad_clip(arm, *clip);
    }
    s.set_batch(split).unwrap();
    let mut losses = vec![Vec::new(); s.arms()];
    let mut evals = vec![Vec::new(); s.arms()];
    for step in 0..steps {
        if step % 5 == 0 {
            for (arm, e) in s.evaluate_arms(split).unwrap().into_iter().enumerate() {
                evals[arm].push((e.loss.to_bits(), e.accuracy.map(f64::to_bits)));
            }
        }
        for (arm, loss) in s.step_arms().unwrap().into_iter().enumerate() {
            losses[arm].push(loss.to_bits());
        }
    }
    (0..s.arms())
        .map(|arm| (losses[arm].clone(), evals[arm].clone(), s.arm_params(arm).unwrap()))
        .collect()
}

#[test]
fn every_arm_of_a_session_gets_the_bits_of_its_own_session() {
    let split = tiny_split(24, 7);
    for precision in [LossPrecision::F32, LossPrecision::F64] {
        let together = train(arms(), precision, &split, 30);
        let alone: Vec<_> =
            arms().into_iter().flat_map(|arm| train(vec![arm], precision, &split, 30)).collect();
        assert_eq!(together.len(), 4);
        for (arm, (t, a)) in together.iter().zip(&alone).enumerate() {
            assert_eq!(t.0, a.0, "arm {arm} ({precision:?}): losses differ");
            assert_eq!(t.1, a.1, "arm {arm} ({precision:?}): evaluations differ");
            for (name, w) in &t.2 {
                let bits = |t: &HostTensor| t.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(w),
                    bits(&a.2[name]),
                    "arm {arm} ({precision:?}): `{name}` differs"
                );
            }
        }
        // The diverging arm is not finite and the others are, and trained.
        let finite = |r: &Trained| f64::from_bits(*r.0.last().unwrap()).is_finite();
        assert!(!finite(&together[3]), "the last arm should diverge");
        for r in &together[..3] {
            assert!(finite(r));
            assert!(f64::from_bits(*r.0.last().unwrap()) < f64::from_bits(r.0[0]));
        }
    }
}

#[test]
fn arms_must_mask_the_same_parameters() {
    let split = tiny_split(8, 1);
    let mut arms: Vec<ArmInit> = arms().into_iter().take(2).map(|(a, _)| a).collect();
    arms[1].mask = None;
    let err = TrainingSession::with_arms(&Tiny, arms, &StepSpec::paper(8), &split).err().unwrap();
    assert!(err.to_string().contains("mask the same parameters"), "{err}");
}
