//! A library's dataset (task) as a [`DatasetPlugin`].

use serde::Deserialize;

use ticketlab_api::data::{Dataset, DatasetInfo, Split, Targets, TokenInfo};
use ticketlab_api::plugin::{DatasetPlugin, Params, StageContext};
use ticketlab_api::tensor::HostTensor;
use ticketlab_api::{Error, Result};

use super::{CallSite, Returned, isolate};
use ticketlab_abi as abi;

/// Calls a library's `build` function and checks the dataset before the engine sees it:
/// metadata that parses, splits whose sizes agree with the input shape, finite inputs, class
/// labels that are integers below the class count, and no empty split.
#[derive(Clone)]
pub(super) struct DynDataset {
    call: CallSite,
    build: abi::BuildFn,
}

impl DynDataset {
    pub(super) fn new(call: CallSite, build: abi::BuildFn) -> Self {
        DynDataset { call, build }
    }
}

/// The metadata object described at [`abi::DatasetOutput`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    description: String,
    input_shape: Vec<usize>,
    targets: TargetMeta,
    tokens: Option<TokenInfo>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum TargetMeta {
    Classes(usize),
    Regression(usize),
}

impl DatasetPlugin for DynDataset {
    fn build(&self, params: &Params, ctx: &StageContext) -> Result<Dataset> {
        let params_json = serde_json::to_string(params)
            .map_err(|e| Error::Internal(format!("cannot serialise parameters: {e}")))?;
        let (status, [metadata, train_x, train_y, test_x, test_y, error]) =
            match ctx.runtime.plugin_host {
                Some(_) => isolate::build(&ctx.runtime, &self.call, &params_json, ctx.seed)?,
                None => self.call_build(&params_json, ctx.seed),
            };
        if status != abi::STATUS_OK {
            return Err(self.call.failed(status, &error));
        }
        let meta: Metadata = metadata
            .values::<u8>()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| self.call.error("returned metadata that is not the JSON object the SDK writes; build it with the current SDK"))?;
        let row: usize = meta.input_shape.iter().product();
        if meta.input_shape.is_empty() || row == 0 {
            return Err(self.call.error(format!(
                "declares input shape {:?}; every dimension must be at least 1",
                meta.input_shape
            )));
        }
        if let Some(t) = &meta.tokens
            && meta.input_shape != [t.n_ctx, t.vocab]
        {
            return Err(self.call.error(format!(
                "declares {} tokens of vocabulary {} but input shape {:?}; token inputs are one-hot [n_ctx, vocab]",
                t.n_ctx, t.vocab, meta.input_shape
            )));
        }
        let output_dim = match meta.targets {
            TargetMeta::Classes(n) | TargetMeta::Regression(n) if n == 0 => {
                return Err(self.call.error("declares 0 classes (or a regression of width 0)"));
            }
            TargetMeta::Classes(n) | TargetMeta::Regression(n) => n,
        };
        let wrong_type = || {
            self.call.error(
                "returned split data of the wrong element type; build it with the current SDK",
            )
        };
        let train = self.split(
            "train",
            &meta,
            row,
            &train_x.values().ok_or_else(wrong_type)?,
            &train_y.values().ok_or_else(wrong_type)?,
        )?;
        let test = self.split(
            "test",
            &meta,
            row,
            &test_x.values().ok_or_else(wrong_type)?,
            &test_y.values().ok_or_else(wrong_type)?,
        )?;
        Ok(Dataset {
            description: meta.description,
            info: DatasetInfo { input_shape: meta.input_shape, output_dim, tokens: meta.tokens },
            train,
            test,
        })
    }
}

impl DynDataset {
    /// Calls the library's `build` in this process: the status and the `metadata`, `train_x`,
    /// `train_y`, `test_x`, `test_y` and `error` buffers.
    pub(super) fn call_build(&self, params_json: &str, seed: u64) -> (abi::Status, [Returned; 6]) {
        let request = abi::BuildRequest { params_json: abi::StrView::new(params_json), seed };
        let mut out = abi::DatasetOutput::EMPTY;
        // SAFETY: the ABI version matched at load time, so `build` has this signature; the
        // request borrows `params_json`, alive until the call returns.
        let status = unsafe { (self.build)(&request, &mut out) };
        let abi::DatasetOutput { metadata, train_x, train_y, test_x, test_y, error } = out;
        let take = |b| self.call.take(b);
        (
            status,
            [take(metadata), take(train_x), take(train_y), take(test_x), take(test_y), take(error)],
        )
    }

    /// One checked split.
    fn split(
        &self,
        which: &str,
        meta: &Metadata,
        row: usize,
        x: &[f32],
        y: &[f32],
    ) -> Result<Split> {
        let n = x.len() / row;
        if !x.len().is_multiple_of(row) {
            return Err(self.call.error(format!(
                "returned {} {which} inputs, not a multiple of the input shape {:?} ({row} values per example)",
                x.len(),
                meta.input_shape
            )));
        }
        if n == 0 {
            return Err(self.call.error(format!(
                "returned an empty {which} split; both splits need at least one example"
            )));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(self
                .call
                .error(format!("returned a non-finite {which} input ({}) at index {i}", x[i])));
        }
        let mut shape = vec![n];
        shape.extend(&meta.input_shape);
        let targets = match meta.targets {
            TargetMeta::Classes(classes) => {
                if y.len() != n {
                    return Err(self.call.error(format!(
                        "returned {} {which} labels for {n} examples; return one label per example",
                        y.len()
                    )));
                }
                let labels = y
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        if v.fract() == 0.0 && v >= 0.0 && (v as usize) < classes {
                            Ok(v as u32)
                        } else {
                            Err(self.call.error(format!("returned {which} label {v} at index {i}; labels must be integers in 0..{classes}")))
                        }
                    })
                    .collect::<Result<Vec<u32>>>()?;
                Targets::Classes { labels, n_classes: classes }
            }
            TargetMeta::Regression(dim) => {
                if y.len() != n * dim {
                    return Err(self.call.error(format!(
                        "returned {} {which} targets for {n} examples of width {dim}; expected {}",
                        y.len(),
                        n * dim
                    )));
                }
                if let Some(i) = y.iter().position(|v| !v.is_finite()) {
                    return Err(self.call.error(format!(
                        "returned a non-finite {which} target ({}) at index {i}",
                        y[i]
                    )));
                }
                Targets::Regression { values: HostTensor::new(vec![n, dim], y.to_vec()) }
            }
        };
        Ok(Split { x: HostTensor::new(shape, x.to_vec()), y: targets })
    }
}
