//! Rewinding: starting a new training run from saved weights and a mask, and its controls.
//!
//! - `rewind`: the saved weights (initialisation or a checkpoint) times the mask: the
//!   lottery-ticket procedure.
//! - `reinit`: a fresh initialisation (from the stage's own seed) times the mask: tests whether
//!   the ticket's initial values matter.
//! - `norm_l1` / `norm_l2`: the *dense* saved weights scaled by
//!   `r_p = ||w * m||_p / ||w||_p` over all prunable weights together (the paper's
//!   norm-controlled dense models, PAPER-SPEC section 5.3); no mask.

use crate::tensor::{Architecture, MaskSet, NamedTensors, init_params};
use crate::{Error, Result};

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
            other => Err(Error::param("mode", format!("unknown mode `{other}`: expected rewind, reinit, norm_l1 or norm_l2"))),
        }
    }
}

/// `r_p = ||w * m||_p / ||w||_p` over the masked parameters together (p = 1 or 2).
pub fn norm_ratio(weights: &NamedTensors, mask: &MaskSet, p: u32) -> f64 {
    let (mut kept, mut all) = (0.0f64, 0.0f64);
    for (name, m) in mask {
        let Some(w) = weights.get(name) else { continue };
        for (v, k) in w.data.iter().zip(&m.data) {
            let a = f64::from(v.abs()).powi(p as i32);
            all += a;
            if *k != 0.0 {
                kept += a;
            }
        }
    }
    if all == 0.0 { 1.0 } else { (kept / all).powf(1.0 / f64::from(p)) }
}

/// The starting weights and mask of a rewound run.
pub fn rewind(mode: RewindMode, weights: &NamedTensors, mask: Option<&MaskSet>, arch: &dyn Architecture, seed: u64) -> Result<(NamedTensors, Option<MaskSet>)> {
    let need_mask = || mask.ok_or_else(|| Error::param("mask", "this mode needs a mask: connect a prune stage to the `mask` input"));
    let apply = |mut w: NamedTensors, m: &MaskSet| -> Result<NamedTensors> {
        for (name, mk) in m {
            let t = w.get_mut(name).ok_or_else(|| Error::param(name, "the mask names a parameter the model does not have"))?;
            if t.shape != mk.shape {
                return Err(Error::shape(name, format!("mask {:?} vs weights {:?}", mk.shape, t.shape)));
            }
            t.data.iter_mut().zip(&mk.data).filter(|(_, k)| **k == 0.0).for_each(|(v, _)| *v = 0.0);
        }
        Ok(w)
    };
    match mode {
        RewindMode::Rewind => match mask {
            Some(m) => Ok((apply(weights.clone(), m)?, Some(m.clone()))),
            None => Ok((weights.clone(), None)),
        },
        RewindMode::Reinit => {
            let fresh = init_params(arch, seed);
            match mask {
                Some(m) => Ok((apply(fresh, m)?, Some(m.clone()))),
                None => Ok((fresh, None)),
            }
        }
        RewindMode::NormL1 | RewindMode::NormL2 => {
            let m = need_mask()?;
            let r = norm_ratio(weights, m, if mode == RewindMode::NormL1 { 1 } else { 2 }) as f32;
            let mut w = weights.clone();
            for (name, t) in w.iter_mut() {
                if m.contains_key(name) {
                    t.data.iter_mut().for_each(|v| *v *= r);
                }
            }
            Ok((w, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::HostTensor;

    fn setup() -> (NamedTensors, MaskSet) {
        let w: NamedTensors = [("w".to_string(), HostTensor::new(vec![4], vec![3.0, -4.0, 1.0, 2.0]))].into();
        let m: MaskSet = [("w".to_string(), HostTensor::new(vec![4], vec![1.0, 1.0, 0.0, 0.0]))].into();
        (w, m)
    }

    #[test]
    fn norm_ratios_by_hand() {
        let (w, m) = setup();
        assert!((norm_ratio(&w, &m, 1) - 7.0 / 10.0).abs() < 1e-12);
        assert!((norm_ratio(&w, &m, 2) - (25.0f64 / 30.0).sqrt()).abs() < 1e-12);
    }

    struct One;
    impl Architecture for One {
        fn parameters(&self) -> Vec<crate::tensor::ParamDef> {
            vec![crate::tensor::ParamDef { name: "w".into(), shape: vec![4], init: crate::tensor::Init::Normal { std: 1.0 }, prunable: true }]
        }
        fn forward(&self, _: &mut crate::tensor::GraphBuilder, _: &std::collections::BTreeMap<String, crate::tensor::Var>, x: crate::tensor::Var) -> Result<crate::tensor::Var> {
            Ok(x)
        }
    }

    #[test]
    fn modes() {
        let (w, m) = setup();
        let (r, mk) = rewind(RewindMode::Rewind, &w, Some(&m), &One, 0).unwrap();
        assert_eq!(r["w"].data, vec![3.0, -4.0, 0.0, 0.0]);
        assert!(mk.is_some());
        let (n, mk) = rewind(RewindMode::NormL1, &w, Some(&m), &One, 0).unwrap();
        assert_eq!(n["w"].data, vec![2.1, -2.8, 0.7, 1.4]);
        assert!(mk.is_none());
        let (f, _) = rewind(RewindMode::Reinit, &w, Some(&m), &One, 5).unwrap();
        assert_eq!(&f["w"].data[2..], &[0.0, 0.0]);
        assert_ne!(f["w"].data[0], 3.0);
        assert!(rewind(RewindMode::NormL2, &w, None, &One, 0).is_err());
    }
}
