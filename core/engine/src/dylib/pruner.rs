//! A library's pruner as a [`PrunerPlugin`].

use ticketlab_api::plugin::{Params, PruneContext, PrunerPlugin, Scores};
use ticketlab_api::tensor::{HostTensor, NamedTensors};
use ticketlab_api::{Error, Result};

use super::{CallSite, Layer, Returned, isolate};
use ticketlab_abi as abi;

/// Calls a library's `score` function with views of the weights and mask of every prunable
/// layer (in the mask's order: sorted by name) and checks what comes back: one score per
/// weight of every layer, never NaN. The core then turns the scores into a mask (and refuses
/// infinite scores of alive weights).
#[derive(Clone)]
pub(super) struct DynPruner {
    call: CallSite,
    score: abi::ScoreFn,
}

impl DynPruner {
    pub(super) fn new(call: CallSite, score: abi::ScoreFn) -> Self {
        DynPruner { call, score }
    }
}

impl PrunerPlugin for DynPruner {
    fn score(&self, params: &Params, ctx: &PruneContext<'_>) -> Result<Scores> {
        let layers = ctx
            .mask
            .iter()
            .map(|(name, m)| {
                let w = ctx.params.get(name).ok_or_else(|| {
                    Error::param(name, "is prunable but missing from the scored weights")
                })?;
                if w.shape != m.shape {
                    return Err(Error::shape(
                        name,
                        format!("mask {:?} vs weights {:?}", m.shape, w.shape),
                    ));
                }
                Ok(Layer { name, shape: &m.shape, weights: &w.data, mask: &m.data })
            })
            .collect::<Result<Vec<_>>>()?;
        let params_json = serde_json::to_string(params)
            .map_err(|e| Error::Internal(format!("cannot serialise parameters: {e}")))?;
        let seed = ctx.ctx.seed;
        let (status, [scores, counts, error]) = match ctx.ctx.runtime.plugin_host {
            Some(_) => isolate::score(&ctx.ctx.runtime, &self.call, &params_json, seed, &layers)?,
            None => self.call_score(&params_json, seed, &layers),
        };
        if status != abi::STATUS_OK {
            return Err(self.call.failed(status, &error));
        }
        let wrong_type = || {
            self.call
                .error("returned scores of the wrong element type; build it with the current SDK")
        };
        let flat = scores.values::<f32>().ok_or_else(wrong_type)?;
        let counts = counts.values::<u64>().ok_or_else(wrong_type)?;
        self.check(&layers, &counts, &flat)?;
        let mut out = NamedTensors::new();
        let mut offset = 0;
        for l in &layers {
            let s = &flat[offset..offset + l.weights.len()];
            offset += s.len();
            out.insert(l.name.to_string(), HostTensor::new(l.shape.to_vec(), s.to_vec()));
        }
        Ok(Scores { scores: out, keep_per_layer: None })
    }

    /// A library's `score` sees the weights and masks only.
    fn needs_data(&self, _: &Params) -> bool {
        false
    }
}

impl DynPruner {
    /// Calls the library's `score` in this process: the status and the `scores`, `counts` and
    /// `error` buffers.
    pub(super) fn call_score(
        &self,
        params_json: &str,
        seed: u64,
        layers: &[Layer<'_>],
    ) -> (abi::Status, [Returned; 3]) {
        let views: Vec<abi::LayerView> = layers
            .iter()
            .map(|l| abi::LayerView {
                name: abi::StrView::new(l.name),
                shape: l.shape.as_ptr(),
                ndim: l.shape.len(),
                weights: l.weights.as_ptr(),
                mask: l.mask.as_ptr(),
                len: l.weights.len(),
            })
            .collect();
        let request = abi::ScoreRequest {
            params_json: abi::StrView::new(params_json),
            seed,
            layers: views.as_ptr(),
            n_layers: views.len(),
        };
        let mut out = abi::ScoreOutput::EMPTY;
        // SAFETY: the ABI version matched at load time, so `score` has this signature; every
        // pointer in `request` borrows `layers`, `views` and `params_json`, alive until the
        // call returns; the library never keeps them.
        let status = unsafe { (self.score)(&request, &mut out) };
        let abi::ScoreOutput { scores, counts, error } = out;
        (status, [self.call.take(scores), self.call.take(counts), self.call.take(error)])
    }

    /// One score per weight of every layer, and no NaN.
    fn check(&self, layers: &[Layer<'_>], counts: &[u64], flat: &[f32]) -> Result<()> {
        if counts.len() != layers.len() {
            let names: Vec<&str> = layers.iter().map(|l| l.name).collect();
            return Err(self.call.error(format!(
                "returned {} score vectors for the model's {} prunable layers ({}); return one per layer, in order",
                counts.len(),
                layers.len(),
                names.join(", ")
            )));
        }
        for (l, &n) in layers.iter().zip(counts) {
            if n != l.weights.len() as u64 {
                return Err(self.call.error(format!(
                    "returned {n} scores for layer `{}` of shape {:?}, which has {} weights; return one score per weight",
                    l.name,
                    l.shape,
                    l.weights.len()
                )));
            }
        }
        let total: usize = layers.iter().map(|l| l.weights.len()).sum();
        if flat.len() != total {
            return Err(self.call.error(format!(
                "returned {} scores in all, but its counts add up to {total}",
                flat.len()
            )));
        }
        let mut offset = 0;
        for l in layers {
            if let Some(i) = flat[offset..offset + l.weights.len()].iter().position(|v| v.is_nan())
            {
                return Err(self.call.error(format!(
                    "returned NaN as the score of weight {i} of layer `{}`; scores must be numbers (check for 0/0 or log of negatives)",
                    l.name
                )));
            }
            offset += l.weights.len();
        }
        Ok(())
    }
}
