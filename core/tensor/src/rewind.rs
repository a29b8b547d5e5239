//! Rewinding: the starting weights of a new training run from saved weights and a mask, and
//! the paper's controls.
//!
//! - `rewind`: the saved weights (initialisation or a checkpoint) times the mask: the
//!   lottery-ticket procedure (PAPER-SPEC section 4, step 4).
//! - `reinit`: a fresh initialisation of the architecture (from the stage's own seed) times the
//!   mask: tests whether the ticket's initial values matter.
//! - `norm_l1` / `norm_l2`: the *dense* saved weights scaled by one factor
//!   `r_p = ||θ ⊙ m||_p / ||θ||_p`, computed over all prunable weights together (the paper's
//!   norm-controlled dense models, PAPER-SPEC section 5.3 DEFAULT; the reference code sums
//!   per-matrix norms instead, which differs slightly for L2). Every prunable parameter is
//!   scaled; parameters that are not prunable keep their values. The result has no mask.

use crate::pruning::apply_mask;
use ticketlab_api::tensor::{Architecture, MaskSet, NamedTensors, init_params};
use ticketlab_api::{Error, Result};

/// The rewind modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewindMode {
    /// Saved weights, masked.
    Rewind,
    /// Fresh initialisation, masked.
    Reinit,
    /// Dense weights scaled to the masked L1 norm.
    NormL1,
    /// Dense weights scaled to the masked L2 norm.
    NormL2,
}

impl RewindMode {
    /// Parses the `mode` parameter.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "rewind" => Ok(RewindMode::Rewind),
            "reinit" => Ok(RewindMode::Reinit),
            "norm_l1" => Ok(RewindMode::NormL1),
            "norm_l2" => Ok(RewindMode::NormL2),
            other => Err(Error::param(
                "mode",
                format!("unknown mode `{other}`: expected rewind, reinit, norm_l1 or norm_l2"),
            )),
        }
    }
}

/// Every mask entry must name a parameter of the same shape.
fn check_mask(weights: &NamedTensors, mask: &MaskSet) -> Result<()> {
    for (name, m) in mask {
        let t = weights.get(name).ok_or_else(|| {
            Error::param(name, "the mask names a parameter the model does not have")
        })?;
        if t.shape != m.shape {
            return Err(Error::shape(name, format!("mask {:?} vs weights {:?}", m.shape, t.shape)));
        }
    }
    Ok(())
}

/// `r_p = ||θ ⊙ m||_p / ||θ||_p` over the masked parameters together (p = 1 or 2), in f64.
/// A mask over all-zero weights gives 1.
pub fn norm_ratio(weights: &NamedTensors, mask: &MaskSet, p: u32) -> Result<f64> {
    check_mask(weights, mask)?;
    let (mut kept, mut all) = (0.0f64, 0.0f64);
    for (name, m) in mask {
        for (v, k) in weights[name].data.iter().zip(&m.data) {
            let a = f64::from(v.abs()).powi(p as i32);
            all += a;
            if *k != 0.0 {
                kept += a;
            }
        }
    }
    Ok(if all == 0.0 { 1.0 } else { (kept / all).powf(1.0 / f64::from(p)) })
}

/// `w ⊙ m`: zeroes the pruned entries, after checking that the mask fits.
fn apply(mut w: NamedTensors, m: &MaskSet) -> Result<NamedTensors> {
    check_mask(&w, m)?;
    apply_mask(&mut w, m);
    Ok(w)
}

/// The starting weights and mask of a rewound run: `from_params` are the saved weights chosen
/// by the stage (`to: init` or a checkpoint), `seed` is the stage's seed (used by `reinit`).
pub fn rewind(
    mode: RewindMode,
    from_params: &NamedTensors,
    mask: Option<&MaskSet>,
    arch: &dyn Architecture,
    seed: u64,
) -> Result<(NamedTensors, Option<MaskSet>)> {
    match mode {
        RewindMode::Rewind => match mask {
            Some(m) => Ok((apply(from_params.clone(), m)?, Some(m.clone()))),
            None => Ok((from_params.clone(), None)),
        },
        RewindMode::Reinit => {
            let fresh = init_params(arch, seed);
            match mask {
                Some(m) => Ok((apply(fresh, m)?, Some(m.clone()))),
                None => Ok((fresh, None)),
            }
        }
        RewindMode::NormL1 | RewindMode::NormL2 => {
            let m = mask.ok_or_else(|| Error::param("mode", "`norm_l1` and `norm_l2` need a mask to measure: connect a prune stage to the `mask` input"))?;
            let r = norm_ratio(from_params, m, if mode == RewindMode::NormL1 { 1 } else { 2 })?;
            let mut w = from_params.clone();
            for (name, t) in w.iter_mut() {
                if m.contains_key(name) {
                    t.data.iter_mut().for_each(|v| *v = (f64::from(*v) * r) as f32);
                }
            }
            Ok((w, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketlab_api::tensor::{HostTensor, Init, ParamDef};

    /// Two prunable layers and one that is not.
    fn setup() -> (NamedTensors, MaskSet) {
        let w: NamedTensors = [
            ("u".to_string(), HostTensor::new(vec![2], vec![2.0, -1.0])),
            ("w".to_string(), HostTensor::new(vec![4], vec![3.0, -4.0, 1.0, 2.0])),
            ("bias".to_string(), HostTensor::new(vec![1], vec![5.0])),
        ]
        .into();
        let m: MaskSet = [
            ("u".to_string(), HostTensor::new(vec![2], vec![0.0, 1.0])),
            ("w".to_string(), HostTensor::new(vec![4], vec![1.0, 1.0, 0.0, 0.0])),
        ]
        .into();
        (w, m)
    }

    struct Arch;
    impl Architecture for Arch {
        fn parameters(&self) -> Vec<ParamDef> {
            let def = |name: &str, n: usize, prunable| ParamDef {
                name: name.into(),
                shape: vec![n],
                init: Init::Normal { std: 1.0 },
                prunable,
            };
            vec![def("u", 2, true), def("w", 4, true), def("bias", 1, false)]
        }
        fn forward(
            &self,
            _: &mut ticketlab_api::tensor::GraphBuilder,
            _: &std::collections::BTreeMap<String, ticketlab_api::tensor::Var>,
            x: ticketlab_api::tensor::Var,
        ) -> Result<ticketlab_api::tensor::Var> {
            Ok(x)
        }
    }

    #[test]
    fn norm_ratios_by_hand() {
        let (w, m) = setup();
        // L1: kept |−1| + |3| + |−4| = 8 of 2 + 1 + 3 + 4 + 1 + 2 = 13 (the bias is not prunable).
        assert!((norm_ratio(&w, &m, 1).unwrap() - 8.0 / 13.0).abs() < 1e-12);
        // L2: kept 1 + 9 + 16 = 26 of 4 + 1 + 9 + 16 + 1 + 4 = 35.
        assert!((norm_ratio(&w, &m, 2).unwrap() - (26.0f64 / 35.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn rewind_masks_the_saved_weights() {
        let (w, m) = setup();
        let (r, mk) = rewind(RewindMode::Rewind, &w, Some(&m), &Arch, 0).unwrap();
        assert_eq!(r["u"].data, vec![0.0, -1.0]);
        assert_eq!(r["w"].data, vec![3.0, -4.0, 0.0, 0.0]);
        assert_eq!(r["bias"].data, vec![5.0]);
        assert_eq!(mk, Some(m));
        let (dense, none) = rewind(RewindMode::Rewind, &w, None, &Arch, 0).unwrap();
        assert_eq!((dense, none), (w, None));
    }

    #[test]
    fn norm_controls_scale_every_prunable_weight_and_drop_the_mask() {
        let (w, m) = setup();
        let (n, mk) = rewind(RewindMode::NormL1, &w, Some(&m), &Arch, 0).unwrap();
        let r = 8.0f64 / 13.0;
        let close = |got: &[f32], want: &[f64]| {
            got.iter().zip(want).all(|(g, w)| (f64::from(*g) - w).abs() < 1e-6)
        };
        assert!(close(&n["w"].data, &[3.0 * r, -4.0 * r, r, 2.0 * r]), "{:?}", n["w"].data);
        assert!(close(&n["u"].data, &[2.0 * r, -r]), "{:?}", n["u"].data);
        assert_eq!(n["bias"].data, vec![5.0]);
        assert!(mk.is_none());
        let (n2, _) = rewind(RewindMode::NormL2, &w, Some(&m), &Arch, 0).unwrap();
        // The scaled dense model has the L2 norm of the masked one over the prunable weights.
        let l2 = |t: &NamedTensors| (t["u"].l2().powi(2) + t["w"].l2().powi(2)).sqrt();
        assert!((l2(&n2) - 26f64.sqrt()).abs() < 1e-5, "{}", l2(&n2));
        let err = rewind(RewindMode::NormL2, &w, None, &Arch, 0).unwrap_err().to_string();
        assert!(err.contains("need a mask"), "{err}");
    }

    #[test]
    fn reinit_is_a_masked_fresh_initialisation() {
        let (w, m) = setup();
        let (f, mk) = rewind(RewindMode::Reinit, &w, Some(&m), &Arch, 5).unwrap();
        let fresh = init_params(&Arch, 5);
        assert_eq!(f["w"].data, vec![fresh["w"].data[0], fresh["w"].data[1], 0.0, 0.0]);
        assert_eq!(f["u"].data, vec![0.0, fresh["u"].data[1]]);
        assert_eq!(f["bias"], fresh["bias"]);
        assert_ne!(f["w"].data[0], 3.0);
        assert_eq!(mk, Some(m));
    }

    #[test]
    fn masks_that_do_not_fit_are_refused() {
        let (w, _) = setup();
        let unknown: MaskSet = [("v".to_string(), HostTensor::full(vec![4], 1.0))].into();
        let err = rewind(RewindMode::Rewind, &w, Some(&unknown), &Arch, 0).unwrap_err().to_string();
        assert!(err.contains("`v`") && err.contains("does not have"), "{err}");
        let wrong: MaskSet = [("w".to_string(), HostTensor::full(vec![2, 2], 1.0))].into();
        assert!(rewind(RewindMode::NormL1, &w, Some(&wrong), &Arch, 0).is_err());
        assert!(RewindMode::parse("rewnd").unwrap_err().to_string().contains("expected rewind"));
    }
}
