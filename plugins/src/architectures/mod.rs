//! Built-in architectures: the paper's MLP and transformer for modular arithmetic, the MNIST
//! MLP, a generic MLP with widths from the experiment file, and a generic transformer of which
//! the paper's (`transformer_modular`) is one setting.
//!
//! Weights follow PyTorch's `nn.Linear` layout (`[out, in]`) and the reference code's names,
//! so checkpoints and analyses read the same way as the paper's code. None has biases unless
//! asked: the paper's models have none.

mod mlp;
mod mlp_modular;
mod mnist_mlp;
mod transformer;

use ticketlab_api::plugin::{ParamSpec, ParamType, Params};
use ticketlab_api::tensor::{GraphBuilder, ParamDef, Var};
use ticketlab_api::{Error, Result};

/// The names of [`Activation`], as a [`ParamType::Choice`].
pub(crate) const ACTIVATIONS: ParamType = ParamType::Choice(&["relu", "gelu", "tanh"]);

/// An elementwise nonlinearity (the `activation` parameter of `mlp` and `transformer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    /// max(x, 0): the paper's.
    Relu,
    /// GELU in the tanh approximation, `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`
    /// (PyTorch's `gelu(approximate="tanh")`).
    Gelu,
    /// tanh(x).
    Tanh,
}

impl Activation {
    /// The `activation` parameter; ReLU where the plugin has none (or it is absent).
    pub(crate) fn from_params(params: &Params) -> Result<Self> {
        if params.get("activation").is_none() {
            return Ok(Self::Relu);
        }
        match params.str("activation")? {
            "relu" => Ok(Self::Relu),
            "gelu" => Ok(Self::Gelu),
            "tanh" => Ok(Self::Tanh),
            other => Err(Error::param(
                "activation",
                format!("`{other}` is not one of `relu`, `gelu`, `tanh`"),
            )),
        }
    }

    /// Applies the nonlinearity elementwise.
    pub(crate) fn apply(self, g: &mut GraphBuilder, x: Var) -> Result<Var> {
        match self {
            Self::Relu => g.relu(x),
            Self::Gelu => g.gelu(x),
            Self::Tanh => g.tanh(x),
        }
    }
}

/// The `prunable` parameter every architecture accepts.
pub(crate) const PRUNABLE: ParamSpec = ParamSpec::new(
    "prunable",
    ParamType::StrList,
    "names of the parameters pruners may prune; empty = the architecture's default (every weight matrix)",
)
.default("[]");

/// Applies the `prunable` override to `defs`, refusing names that do not exist. An absent
/// `prunable` is the default (empty); a value that is not a list of strings is an error.
pub(crate) fn apply_prunable(mut defs: Vec<ParamDef>, params: &Params) -> Result<Vec<ParamDef>> {
    let names = match params.get("prunable") {
        None => Vec::new(),
        Some(_) => params.str_list("prunable")?,
    };
    if names.is_empty() {
        return Ok(defs);
    }
    for n in &names {
        if !defs.iter().any(|d| &d.name == n) {
            let known: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
            return Err(Error::param(
                "prunable",
                format!("layer `{n}` does not exist; layers: {}", known.join(", ")),
            ));
        }
    }
    for d in defs.iter_mut() {
        d.prunable = names.contains(&d.name);
    }
    Ok(defs)
}

/// The token facts of a dataset, or an error naming the architecture.
pub(crate) fn tokens(
    arch: &str,
    info: &ticketlab_api::data::DatasetInfo,
) -> Result<(usize, usize)> {
    info.tokens.as_ref().map(|t| (t.vocab, t.n_ctx)).ok_or_else(|| {
        Error::plugin(
            format!("architecture/{arch}"),
            "needs a token task (such as `modular`); use `mlp` for dense inputs",
        )
    })
}

#[cfg(test)]
mod tests {
    use ticketlab_api::data::{DatasetInfo, TokenInfo};
    use ticketlab_api::plugin::registry::Registry;

    use super::*;

    fn defs() -> Vec<ParamDef> {
        let def = |name: &str| ParamDef {
            name: name.into(),
            shape: vec![2],
            init: ticketlab_api::tensor::Init::Zeros,
            prunable: true,
        };
        vec![def("embed.W_E"), def("mlp.W_in")]
    }

    #[test]
    fn the_prunable_override_selects_layers_and_refuses_unknown_ones() {
        let only =
            apply_prunable(defs(), &Params::new().with("prunable", vec!["mlp.W_in"])).unwrap();
        assert_eq!(only.iter().map(|d| d.prunable).collect::<Vec<_>>(), [false, true]);
        for default in [Params::new(), Params::new().with("prunable", Vec::<String>::new())] {
            assert!(apply_prunable(defs(), &default).unwrap().iter().all(|d| d.prunable));
        }
        let err = apply_prunable(defs(), &Params::new().with("prunable", vec!["mlp.W_out"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("layer `mlp.W_out` does not exist; layers: embed.W_E, mlp.W_in"),
            "{err}"
        );
        // A value of the wrong type is an error, not the default.
        for bad in
            [serde_json::json!("mlp.W_in"), serde_json::json!([1, 2]), serde_json::Value::Null]
        {
            let err = apply_prunable(defs(), &Params::new().with("prunable", bad.clone()))
                .unwrap_err()
                .to_string();
            assert!(err.contains("prunable") && err.contains("expected"), "{bad}: {err}");
        }
    }

    /// Every built-in architecture refuses a layer name it does not have, naming its layers.
    #[test]
    fn every_architecture_refuses_an_unknown_prunable_layer() {
        let registry = Registry::builtin().unwrap();
        let tokens = DatasetInfo {
            input_shape: vec![2, 5],
            output_dim: 5,
            tokens: Some(TokenInfo { vocab: 5, n_ctx: 2 }),
        };
        let dense = DatasetInfo { input_shape: vec![4], output_dim: 3, tokens: None };
        for (name, info) in [
            ("mlp", &dense),
            ("mnist_mlp", &dense),
            ("mlp_modular", &tokens),
            ("transformer", &tokens),
            ("transformer_modular", &tokens),
        ] {
            let entry =
                registry.get(ticketlab_api::plugin::PluginKind::Architecture, name).unwrap();
            let params = Params::new().with_defaults(&entry.params);
            let arch = registry.architecture(name).unwrap();
            let built = arch.build(&params, info).unwrap_or_else(|e| panic!("{name}: {e}"));
            let first = built.parameters()[0].name.clone();
            let one =
                arch.build(&params.clone().with("prunable", vec![first.clone()]), info).unwrap();
            assert_eq!(one.prunable(), [first], "{name}");
            let err = arch
                .build(&params.clone().with("prunable", vec!["no_such.weight"]), info)
                .err()
                .expect("refused")
                .to_string();
            assert!(
                err.contains("layer `no_such.weight` does not exist; layers: "),
                "{name}: {err}"
            );
            let err = arch
                .build(&params.with("prunable", "everything"), info)
                .err()
                .expect("refused")
                .to_string();
            assert!(err.contains("expected a list"), "{name}: {err}");
        }
    }
}
