//! The MNIST MLP of the paper's appendix B.1: 784-200-200-10, no biases, init scale alpha.

use ticketlab_api::data::DatasetInfo;
use ticketlab_api::plugin::{ArchitecturePlugin, ParamSpec, ParamType, Params};
use ticketlab_api::tensor::Architecture;
use ticketlab_api::{Result, register_plugin};

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new("width", ParamType::Int, "hidden width of both hidden layers")
        .default("200")
        .min(1.0),
    ParamSpec::new(
        "alpha",
        ParamType::Float,
        "initialisation scale: weights ~ N(0, (alpha/sqrt(d_in))^2) (Omnigrok's alpha)",
    )
    .default("8.0")
    .min(0.0),
    super::PRUNABLE,
];

/// Three bias-free linear layers with ReLU between them.
#[derive(Default)]
struct MnistMlp;

impl ArchitecturePlugin for MnistMlp {
    fn build(&self, params: &Params, info: &DatasetInfo) -> Result<Box<dyn Architecture>> {
        let width = params.usize("width")?;
        let mut spec = Params::new()
            .with("hidden", vec![width, width])
            .with("init_scale", params.f64("alpha")?)
            .with("bias", false);
        if let Some(prunable) = params.get("prunable") {
            spec = spec.with("prunable", prunable.clone());
        }
        super::mlp::Mlp::from_params(&spec, info).map(|m| Box::new(m) as Box<dyn Architecture>)
    }
}

register_plugin!(
    Architecture,
    "mnist_mlp",
    "1.0.0",
    "The paper's MNIST MLP: 784-200-200-10, no biases, init scale alpha = 8",
    PARAMS,
    MnistMlp
);
