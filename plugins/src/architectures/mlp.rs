//! A generic MLP with hidden widths from the experiment file.

use std::collections::BTreeMap;

use ticketlab_api::data::DatasetInfo;
use ticketlab_api::plugin::{ArchitecturePlugin, ParamSpec, ParamType, Params};
use ticketlab_api::tensor::{Architecture, GraphBuilder, Init, ParamDef, Var};
use ticketlab_api::{Result, register_plugin};

use super::Activation;

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
    ParamSpec::new(
        "activation",
        super::ACTIVATIONS,
        "the nonlinearity between layers: `relu`, `gelu` (the tanh approximation \
         0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), PyTorch's `gelu(approximate=\"tanh\")`) \
         or `tanh`",
    )
    .default("\"relu\"")
    .in_key_unless_default(),
    super::PRUNABLE,
];

/// `x -> [linear -> activation]* -> linear` on flattened inputs; weights `layers.N.weight`
/// `[out, in]`.
#[derive(Default)]
struct MlpPlugin;

/// The generic MLP (also the body of `mnist_mlp`).
pub(crate) struct Mlp {
    defs: Vec<ParamDef>,
    layers: usize,
    bias: bool,
    activation: Activation,
}

impl Mlp {
    /// Builds from `hidden`, `init_scale`, `bias`, `activation` (ReLU when absent) and
    /// `prunable`.
    pub(crate) fn from_params(params: &Params, info: &DatasetInfo) -> Result<Self> {
        let input: usize = info.input_shape.iter().product();
        let mut widths = vec![input];
        widths.extend(params.usize_list("hidden")?);
        widths.push(info.output_dim);
        let scale = params.f64("init_scale")? as f32;
        let bias = params.bool("bias")?;
        // `mnist_mlp` builds its body without the parameter: ReLU, as the paper's.
        let activation = Activation::from_params(params)?;
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
        let defs = super::apply_prunable(defs, params)?;
        Ok(Self { defs, layers: widths.len() - 1, bias, activation })
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
                h = self.activation.apply(g, h)?;
            }
        }
        Ok(h)
    }
}

register_plugin!(
    Architecture,
    "mlp",
    "1.0.0",
    "Generic MLP on flattened inputs: hidden widths, activation (relu, gelu, tanh) and biases \
     from the file",
    PARAMS,
    MlpPlugin
);

#[cfg(test)]
mod tests {
    use ticketlab_api::data::DatasetInfo;
    use ticketlab_api::plugin::Params;
    use ticketlab_api::runtime::Device;
    use ticketlab_api::tensor::{Architecture, HostTensor, NamedTensors};
    use ticketlab_tensor::forward;

    use super::{Mlp, PARAMS};

    const X: [f32; 9] = [-20.0, -3.0, -1.0, -0.3, 0.0, 0.2, 1.0, 2.5, 18.0];

    /// A 1-1-1 MLP with both weights 1: its output is the activation itself.
    fn activation_of(params: Params) -> Vec<f32> {
        let info = DatasetInfo { input_shape: vec![1], output_dim: 1, tokens: None };
        let mlp =
            Mlp::from_params(&params.with("hidden", vec![1]).with_defaults(PARAMS), &info).unwrap();
        let weights: NamedTensors = mlp
            .parameters()
            .into_iter()
            .map(|d| (d.name, HostTensor::new(d.shape, vec![1.0])))
            .collect();
        let x = HostTensor::new(vec![X.len(), 1], X.to_vec());
        forward(&mlp, &weights, None, &x, Device::Cpu).unwrap().data
    }

    /// ReLU is the default and exactly max(x, 0); GELU (tanh approximation) and tanh agree with
    /// their formulas in f64.
    #[test]
    fn activations_match_their_formulas() {
        let relu: Vec<f32> = X.iter().map(|&v| v.max(0.0)).collect();
        assert_eq!(activation_of(Params::new()), relu);
        assert_eq!(activation_of(Params::new().with("activation", "relu")), relu);
        let gelu = |v: f64| {
            0.5 * v
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh())
        };
        for (name, f) in [("gelu", &gelu as &dyn Fn(f64) -> f64), ("tanh", &f64::tanh)] {
            let got = activation_of(Params::new().with("activation", name));
            for (x, y) in X.iter().zip(got) {
                let want = f(f64::from(*x));
                assert!(
                    (f64::from(y) - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "{name}({x}) = {y}, expected {want}"
                );
            }
        }
    }
}
