//! Transformers on token tasks: the generic `transformer` and the paper code's one-layer model
//! `transformer_modular` (PAPER-SPEC section 2.2), which is the generic one at a fixed setting.
//!
//! The paper's setting: one layer, no LayerNorm, no positional embedding, no "=" token, causal
//! attention, an untied unembedding, ReLU, weights ~ N(0, 1/fan_in), the logits read at the
//! last position. `transformer` with its defaults is that model, with the same parameters
//! (names, shapes, order, initialisation) and the same graph, so the same numbers bit for bit.
//!
//! # Parameter names
//!
//! Outside the blocks: `embed.W_E` `[d_model, vocab]`, `pos_embed.W_pos` `[n_ctx, d_model]`
//! (`positional: learned`), `unembed.W_U` `[d_model, outputs]` (`unembed: untied`) and
//! `ln_final.{w,b}` (`layer_norm: pre`). In each block: `attn.W_Q`, `attn.W_K`, `attn.W_V`,
//! `attn.W_O` `[d_model, d_model]` (heads are slices of `d_head` rows; of columns for `W_O`),
//! `mlp.W_in` `[d_mlp, d_model]`, `mlp.W_out` `[d_model, d_mlp]`, `mlp.b_in`, `mlp.b_out`
//! (`mlp_bias`), `ln1.{w,b}` and `ln2.{w,b}` (`layer_norm: pre | post`). A one-layer model
//! names its block's parameters as the paper's code does (`attn.W_Q`); with several layers
//! block `i`'s names start `blocks.i.` (`blocks.0.attn.W_Q`, `blocks.1.mlp.W_in`).
//!
//! Every weight matrix (embedding, positional embedding and unembedding included) is
//! prunable by default; biases and LayerNorm parameters never are. Random draws follow the
//! order above: `W_E`, `W_pos`, the blocks in order, `W_U`; zero-initialised parameters come
//! last.
//!
//! # LayerNorm
//!
//! Over the residual width with eps 1e-5 (PyTorch's), the gain stored as its offset from 1:
//! `y = (x - mean) / sqrt(var + eps) * (1 + w) + b`, with `w` and `b` starting at 0 (the API's
//! initialisations have no "ones"). A PyTorch `LayerNorm.weight` is therefore `1 + ln1.w`, and
//! weight decay pulls the gain towards 1. `pre` normalises each sublayer's input and the final
//! residual (before the unembedding); `post` normalises the residual after each sublayer.

mod forward;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

use ticketlab_api::data::DatasetInfo;
use ticketlab_api::plugin::{ArchitecturePlugin, ParamSpec, ParamType, Params};
use ticketlab_api::tensor::{Architecture, Init, ParamDef};
use ticketlab_api::{Error, Result, register_plugin};

use super::Activation;

/// The residual width.
const D_MODEL: ParamSpec =
    ParamSpec::new("d_model", ParamType::Int, "residual width").default("128").min(1.0);
/// The MLP's hidden width.
const D_MLP: ParamSpec =
    ParamSpec::new("d_mlp", ParamType::Int, "MLP hidden width").default("128").min(1.0);
/// Attention heads.
const HEADS: ParamSpec =
    ParamSpec::new("heads", ParamType::Int, "attention heads (d_head = d_model / heads)")
        .default("1")
        .min(1.0);
/// MLP biases.
const MLP_BIAS: ParamSpec = ParamSpec::new(
    "mlp_bias",
    ParamType::Bool,
    "MLP biases b_in, b_out (present in the paper's arxiv_version branch; not prunable)",
)
.default("false");

/// `transformer_modular`'s parameters (unchanged since the paper's model was the only one).
const PAPER_PARAMS: &[ParamSpec] = &[D_MODEL, D_MLP, HEADS, MLP_BIAS, super::PRUNABLE];

/// `transformer`'s parameters: the paper's, and the choices it fixes.
pub(crate) const PARAMS: &[ParamSpec] = &[
    ParamSpec::new(
        "layers",
        ParamType::Int,
        "transformer blocks (attention, then the MLP, each added to the residual)",
    )
    .default("1")
    .min(1.0),
    D_MODEL,
    D_MLP,
    HEADS,
    ParamSpec::new(
        "layer_norm",
        ParamType::Choice(&["none", "pre", "post"]),
        "`none` (the paper's); `pre`: LayerNorm on each sublayer's input and before the \
         unembedding; `post`: on the residual after each sublayer (gain stored as 1 + w, \
         eps 1e-5)",
    )
    .default("\"none\""),
    ParamSpec::new(
        "positional",
        ParamType::Choice(&["none", "learned"]),
        "`none` (the paper's) or `learned`: a positional embedding pos_embed.W_pos \
         [n_ctx, d_model] ~ N(0, (init_scale/sqrt(d_model))^2) added to the token embedding",
    )
    .default("\"none\""),
    ParamSpec::new(
        "causal",
        ParamType::Bool,
        "causal attention (a position attends to itself and earlier ones only)",
    )
    .default("true"),
    ParamSpec::new(
        "unembed",
        ParamType::Choice(&["untied", "tied"]),
        "`untied`: its own unembed.W_U (the paper's); `tied`: the transpose of the token \
         embedding, class c read with token c's embedding (needs vocab >= outputs)",
    )
    .default("\"untied\""),
    ParamSpec::new(
        "activation",
        super::ACTIVATIONS,
        "the MLP's nonlinearity: `relu` (the paper's), `gelu` (tanh approximation) or `tanh`",
    )
    .default("\"relu\""),
    MLP_BIAS,
    ParamSpec::new(
        "init_scale",
        ParamType::Float,
        "weight matrices ~ N(0, (init_scale/sqrt(fan_in))^2), fan_in the width they read \
         (vocab for W_E)",
    )
    .default("1.0")
    .min(0.0),
    super::PRUNABLE,
];

/// Where LayerNorm goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LayerNorm {
    None,
    Pre,
    Post,
}

/// A transformer's shape and choices, read from either plugin's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Config {
    layers: usize,
    heads: usize,
    d_model: usize,
    d_mlp: usize,
    layer_norm: LayerNorm,
    learned_positions: bool,
    causal: bool,
    tied: bool,
    activation: Activation,
    mlp_bias: bool,
    init_scale: f32,
}

impl Config {
    /// The paper's model with `transformer_modular`'s parameters.
    fn paper(params: &Params) -> Result<Self> {
        Ok(Self {
            layers: 1,
            heads: params.usize("heads")?,
            d_model: params.usize("d_model")?,
            d_mlp: params.usize("d_mlp")?,
            layer_norm: LayerNorm::None,
            learned_positions: false,
            causal: true,
            tied: false,
            activation: Activation::Relu,
            mlp_bias: params.bool("mlp_bias")?,
            init_scale: 1.0,
        })
    }

    /// `transformer`'s parameters.
    fn generic(params: &Params) -> Result<Self> {
        let layer_norm = match params.str("layer_norm")? {
            "none" => LayerNorm::None,
            "pre" => LayerNorm::Pre,
            "post" => LayerNorm::Post,
            other => return Err(Error::param("layer_norm", format!("unknown `{other}`"))),
        };
        Ok(Self {
            layers: params.usize("layers")?,
            layer_norm,
            learned_positions: params.str("positional")? == "learned",
            causal: params.bool("causal")?,
            tied: params.str("unembed")? == "tied",
            activation: Activation::from_params(params)?,
            init_scale: params.f64("init_scale")? as f32,
            ..Self::paper(params)?
        })
    }

    /// The prefix of block `i`'s parameter names: none for a one-layer model (the paper's
    /// names), `blocks.i.` otherwise.
    fn block(&self, i: usize) -> String {
        if self.layers == 1 { String::new() } else { format!("blocks.{i}.") }
    }

    /// The parameters for a token task of `vocab` tokens, `n_ctx` positions and `outputs`
    /// classes, in the order described in the module docs.
    fn defs(&self, vocab: usize, n_ctx: usize, outputs: usize) -> Vec<ParamDef> {
        let (d, d_mlp, scale) = (self.d_model, self.d_mlp, self.init_scale);
        let normal = |fan_in: usize| Init::Normal { std: scale / (fan_in as f32).sqrt() };
        let matrix = |name: String, shape: Vec<usize>, fan_in: usize| ParamDef {
            name,
            shape,
            init: normal(fan_in),
            prunable: true,
        };
        let zeros = |name: String, n: usize| ParamDef {
            name,
            shape: vec![n],
            init: Init::Zeros,
            prunable: false,
        };
        let mut defs = vec![matrix("embed.W_E".into(), vec![d, vocab], vocab)];
        if self.learned_positions {
            defs.push(matrix("pos_embed.W_pos".into(), vec![n_ctx, d], d));
        }
        for i in 0..self.layers {
            let b = self.block(i);
            for w in ["W_Q", "W_K", "W_V", "W_O"] {
                defs.push(matrix(format!("{b}attn.{w}"), vec![d, d], d));
            }
            defs.push(matrix(format!("{b}mlp.W_in"), vec![d_mlp, d], d));
            defs.push(matrix(format!("{b}mlp.W_out"), vec![d, d_mlp], d_mlp));
        }
        if !self.tied {
            defs.push(matrix("unembed.W_U".into(), vec![d, outputs], d));
        }
        for i in 0..self.layers {
            let b = self.block(i);
            if self.mlp_bias {
                defs.push(zeros(format!("{b}mlp.b_in"), d_mlp));
                defs.push(zeros(format!("{b}mlp.b_out"), d));
            }
            if self.layer_norm != LayerNorm::None {
                for ln in ["ln1", "ln2"] {
                    defs.push(zeros(format!("{b}{ln}.w"), d));
                    defs.push(zeros(format!("{b}{ln}.b"), d));
                }
            }
        }
        if self.layer_norm == LayerNorm::Pre {
            defs.push(zeros("ln_final.w".into(), d));
            defs.push(zeros("ln_final.b".into(), d));
        }
        defs
    }
}

/// A transformer built for one task.
struct Transformer {
    config: Config,
    defs: Vec<ParamDef>,
    n_ctx: usize,
    outputs: usize,
}

impl Transformer {
    /// Checks `config` against the task of `info` and lays out the parameters (`prunable`
    /// applied); `plugin` names the architecture in errors.
    fn new(plugin: &str, config: Config, params: &Params, info: &DatasetInfo) -> Result<Self> {
        let (vocab, n_ctx) = super::tokens(plugin, info)?;
        let (d, heads) = (config.d_model, config.heads);
        if d % heads != 0 {
            return Err(Error::param(
                "heads",
                format!("d_model = {d} is not divisible by heads = {heads}"),
            ));
        }
        let outputs = info.output_dim;
        if config.tied && vocab < outputs {
            return Err(Error::param(
                "unembed",
                format!(
                    "`tied` reads class c with token c's embedding, but there are {outputs} \
                     classes and {vocab} tokens; use `untied`"
                ),
            ));
        }
        let defs = super::apply_prunable(config.defs(vocab, n_ctx, outputs), params)?;
        Ok(Self { config, defs, n_ctx, outputs })
    }
}

/// The generic `transformer`.
#[derive(Default)]
struct TransformerPlugin;

impl ArchitecturePlugin for TransformerPlugin {
    fn build(&self, params: &Params, info: &DatasetInfo) -> Result<Box<dyn Architecture>> {
        let config = Config::generic(params)?;
        Ok(Box::new(Transformer::new("transformer", config, params, info)?))
    }
}

/// `transformer_modular`: the generic transformer at the paper's setting.
#[derive(Default)]
struct PaperPlugin;

impl ArchitecturePlugin for PaperPlugin {
    fn build(&self, params: &Params, info: &DatasetInfo) -> Result<Box<dyn Architecture>> {
        let config = Config::paper(params)?;
        Ok(Box::new(Transformer::new("transformer_modular", config, params, info)?))
    }
}

register_plugin!(
    Architecture,
    "transformer",
    "1.0.0",
    "Transformer on token tasks: layers, heads, widths, LayerNorm (none/pre/post), learned \
     positions, causal or not, tied or untied unembedding; its defaults are the paper's \
     (transformer_modular)",
    PARAMS,
    TransformerPlugin
);

register_plugin!(
    Architecture,
    "transformer_modular",
    "1.0.0",
    "The paper code's 1-layer transformer: no LayerNorm, no positional embedding, causal attention",
    PAPER_PARAMS,
    PaperPlugin
);
