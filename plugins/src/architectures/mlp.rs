//! A generic MLP with hidden widths from the experiment file.

use std::collections::BTreeMap;

use ticketlab_api::data::DatasetInfo;
use ticketlab_api::plugin::{ArchitecturePlugin, ParamSpec, ParamType, Params};
use ticketlab_api::tensor::{Architecture, GraphBuilder, Init, ParamDef, Var};
use ticketlab_api::{Result, register_plugin};

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new(
        "hidden",
        ParamType::IntList,
        "hidden layer widths, input side first (e.g. [40, 48, 500])",
    )
    .default("[200, 200]")
    .min(1.0),
    ParamSpec::new("init_scale", ParamType::Float, "weights ~ N(0, (init_scale/sqrt(d_in))^2)")
        .default("1.0")
        .min(0.0),
    ParamSpec::new(
        "bias",
        ParamType::Bool,
        "add a bias (initialised to 0, not prunable) to every layer",
    )
    .default("false"),
    super::PRUNABLE,
];

/// `x -> [linear -> relu]* -> linear` on flattened inputs; weights `layers.N.weight` `[out, in]`.
#[derive(Default)]
struct MlpPlugin;

/// The generic MLP (also the body of `mnist_mlp`).
pub(crate) struct Mlp {
    defs: Vec<ParamDef>,
    layers: usize,
    bias: bool,
}

impl Mlp {
    /// Builds from `hidden`, `init_scale`, `bias` and `prunable`.
    pub(crate) fn from_params(params: &Params, info: &DatasetInfo) -> Result<Self> {
        let input: usize = info.input_shape.iter().product();
        let mut widths = vec![input];
        widths.extend(params.usize_list("hidden")?);
        widths.push(info.output_dim);
        let scale = params.f64("init_scale")? as f32;
        let bias = params.bool("bias")?;
        let mut defs = Vec::new();
        for (i, pair) in widths.windows(2).enumerate() {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            defs.push(ParamDef {
                name: format!("layers.{i}.weight"),
                shape: vec![fan_out, fan_in],
                init: Init::Normal { std: scale / (fan_in as f32).sqrt() },
                prunable: true,
            });
            if bias {
                defs.push(ParamDef {
                    name: format!("layers.{i}.bias"),
                    shape: vec![fan_out],
                    init: Init::Zeros,
                    prunable: false,
                });
            }
        }
        Ok(Self { defs: super::apply_prunable(defs, params)?, layers: widths.len() - 1, bias })
    }
}

impl ArchitecturePlugin for MlpPlugin {
    fn build(&self, params: &Params, info: &DatasetInfo) -> Result<Box<dyn Architecture>> {
        Ok(Box::new(Mlp::from_params(params, info)?))
    }
}

impl Architecture for Mlp {
    fn parameters(&self) -> Vec<ParamDef> {
        self.defs.clone()
    }

    fn forward(&self, g: &mut GraphBuilder, p: &BTreeMap<String, Var>, x: Var) -> Result<Var> {
        let shape = x.shape();
        let batch = shape[0];
        let mut h = g.reshape(x, &[batch, shape[1..].iter().product()])?;
        for i in 0..self.layers {
            g.set_layer(format!("layers.{i}"));
            let wt = g.transpose(p[&format!("layers.{i}.weight")])?;
            h = g.matmul(h, wt)?;
            if self.bias {
                let b = g.expand(p[&format!("layers.{i}.bias")], 0, batch)?;
                h = g.add(h, b)?;
            }
            if i + 1 < self.layers {
                h = g.relu(h)?;
            }
        }
        Ok(h)
    }
}

register_plugin!(
    Architecture,
    "mlp",
    "1.0.0",
    "Generic ReLU MLP on flattened inputs with hidden widths from the file",
    PARAMS,
    MlpPlugin
);
