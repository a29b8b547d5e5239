//! Host tensors and masks, and what an architecture is: its parameters and the forward graph it
//! builds with a [`GraphBuilder`]. Compiling, differentiating and running those graphs is the
//! tensor crate's work (`ticketlab-tensor`).

pub mod graph;
pub mod host;

pub use graph::{GraphBuilder, Var};
pub use host::{HostTensor, MaskSet, NamedTensors};

use std::collections::BTreeMap;

use rand::SeedableRng;

use crate::Result;

/// How a parameter is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Normal with mean 0 and this standard deviation.
    Normal {
        /// Standard deviation.
        std: f32,
    },
    /// Uniform on `[-bound, bound]`.
    Uniform {
        /// Half-width.
        bound: f32,
    },
    /// All zeros.
    Zeros,
}

/// One parameter of an architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDef {
    /// Name, e.g. `embed.W_E`.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Initialisation.
    pub init: Init,
    /// Whether pruners may prune it.
    pub prunable: bool,
}

/// A network: its parameters and its forward graph.
pub trait Architecture: Send + Sync {
    /// Parameters in a fixed order.
    fn parameters(&self) -> Vec<ParamDef>;

    /// Builds the forward pass: `x` has shape `[batch, ...input_shape]`; returns outputs
    /// `[batch, output_dim]` (logits for classification).
    fn forward(&self, g: &mut GraphBuilder, params: &BTreeMap<String, Var>, x: Var) -> Result<Var>;

    /// Names of the prunable parameters.
    fn prunable(&self) -> Vec<String> {
        self.parameters().into_iter().filter(|p| p.prunable).map(|p| p.name).collect()
    }
}

/// Draws initial parameters for `arch` from `seed` (ChaCha8, Box-Muller normals: the same
/// numbers on every platform).
pub fn init_params(arch: &dyn Architecture, seed: u64) -> NamedTensors {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = BTreeMap::new();
    for p in arch.parameters() {
        let n: usize = p.shape.iter().product();
        let data: Vec<f32> = match p.init {
            Init::Normal { std } => {
                (0..n).map(|_| standard_normal(&mut rng) as f32 * std).collect()
            }
            Init::Uniform { bound } => {
                use rand::Rng;
                (0..n).map(|_| rng.gen_range(-bound..=bound)).collect()
            }
            Init::Zeros => vec![0.0; n],
        };
        out.insert(p.name, HostTensor::new(p.shape, data));
    }
    out
}

/// One N(0, 1) draw (Box-Muller on two uniform f64 draws, both drawn again in the rare case the
/// first is 0), in f64. Written here so the numbers never depend on a distribution crate's
/// version; every normal draw of ticketlab and its built-in plugins comes from this function.
pub fn standard_normal(rng: &mut impl rand::Rng) -> f64 {
    loop {
        let u1: f64 = rng.r#gen();
        let u2: f64 = rng.r#gen();
        if u1 > f64::MIN_POSITIVE {
            let r = (-2.0 * u1.ln()).sqrt();
            return r * (2.0 * std::f64::consts::PI * u2).cos();
        }
    }
}
