//! The paper code's one-layer transformer for modular arithmetic (PAPER-SPEC section 2.2):
//! no LayerNorm, no positional embedding, no "=" token, causal attention, the logits read at the
//! last position.

use std::collections::BTreeMap;

use ticketlab_api::data::DatasetInfo;
use ticketlab_api::plugin::{ArchitecturePlugin, ParamSpec, ParamType, Params};
use ticketlab_api::tensor::{Architecture, GraphBuilder, HostTensor, Init, ParamDef, Var};
use ticketlab_api::{Error, Result, register_plugin};

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new("d_model", ParamType::Int, "residual width").default("128").min(1.0),
    ParamSpec::new("d_mlp", ParamType::Int, "MLP hidden width").default("128").min(1.0),
    ParamSpec::new("heads", ParamType::Int, "attention heads (d_head = d_model / heads)")
        .default("1")
        .min(1.0),
    ParamSpec::new(
        "mlp_bias",
        ParamType::Bool,
        "MLP biases b_in, b_out (present in the paper's arxiv_version branch; not prunable)",
    )
    .default("false"),
    super::PRUNABLE,
];

#[derive(Default)]
struct TransformerPlugin;

struct Transformer {
    defs: Vec<ParamDef>,
    heads: usize,
    d_head: usize,
    n_ctx: usize,
    mlp_bias: bool,
}

impl ArchitecturePlugin for TransformerPlugin {
    fn build(&self, params: &Params, info: &DatasetInfo) -> Result<Box<dyn Architecture>> {
        let (vocab, n_ctx) = super::tokens("transformer_modular", info)?;
        let (d, d_mlp, heads) =
            (params.usize("d_model")?, params.usize("d_mlp")?, params.usize("heads")?);
        if d % heads != 0 {
            return Err(Error::param(
                "heads",
                format!("d_model = {d} is not divisible by heads = {heads}"),
            ));
        }
        let normal = |fan_in: usize| Init::Normal { std: 1.0 / (fan_in as f32).sqrt() };
        let def = |name: &str, shape: Vec<usize>, init, prunable| ParamDef {
            name: name.into(),
            shape,
            init,
            prunable,
        };
        let mut defs = vec![
            def("embed.W_E", vec![d, vocab], normal(vocab), true),
            def("attn.W_Q", vec![d, d], normal(d), true),
            def("attn.W_K", vec![d, d], normal(d), true),
            def("attn.W_V", vec![d, d], normal(d), true),
            def("attn.W_O", vec![d, d], normal(d), true),
            def("mlp.W_in", vec![d_mlp, d], normal(d), true),
            def("mlp.W_out", vec![d, d_mlp], normal(d_mlp), true),
            def("unembed.W_U", vec![d, info.output_dim], normal(d), true),
        ];
        let mlp_bias = params.bool("mlp_bias")?;
        if mlp_bias {
            defs.push(def("mlp.b_in", vec![d_mlp], Init::Zeros, false));
            defs.push(def("mlp.b_out", vec![d], Init::Zeros, false));
        }
        Ok(Box::new(Transformer {
            defs: super::apply_prunable(defs, params)?,
            heads,
            d_head: d / heads,
            n_ctx,
            mlp_bias,
        }))
    }
}

impl Transformer {
    /// Adds a bias `[n]` to `x` `[B, T, n]`.
    fn add_bias(g: &mut GraphBuilder, x: Var, b: Var) -> Result<Var> {
        let shape = x.shape();
        let b = g.broadcast_to(b, &shape)?;
        g.add(x, b)
    }
}

impl Architecture for Transformer {
    fn parameters(&self) -> Vec<ParamDef> {
        self.defs.clone()
    }

    fn forward(&self, g: &mut GraphBuilder, p: &BTreeMap<String, Var>, x: Var) -> Result<Var> {
        let (b, t, dh) = (x.shape()[0], self.n_ctx, self.d_head);
        g.set_layer("embed");
        let we = g.transpose(p["embed.W_E"])?;
        let mut resid = g.linear(x, we)?; // [B, T, d]
        g.set_layer("attention");
        // Causal mask: -1e10 above the diagonal (scores there vanish after the softmax).
        let mut mask = vec![0.0f32; t * t];
        for i in 0..t {
            for j in i + 1..t {
                mask[i * t + j] = -1e10;
            }
        }
        let mask = g.tensor_constant("causal mask", &HostTensor::new(vec![t, t], mask));
        let mask = g.expand(mask, 0, b)?;
        let project = |g: &mut GraphBuilder, w: &str, resid: Var| -> Result<Var> {
            let wt = g.transpose(p[w])?;
            g.linear(resid, wt)
        };
        let (q, k, v) = (
            project(g, "attn.W_Q", resid)?,
            project(g, "attn.W_K", resid)?,
            project(g, "attn.W_V", resid)?,
        );
        let mut heads_out: Option<Var> = None;
        for h in 0..self.heads {
            let (qh, kh, vh) = (
                g.slice(q, 2, h * dh, (h + 1) * dh)?,
                g.slice(k, 2, h * dh, (h + 1) * dh)?,
                g.slice(v, 2, h * dh, (h + 1) * dh)?,
            );
            let kt = g.transpose(kh)?;
            let scores = g.matmul(qh, kt)?; // [B, T, T]
            let scores = g.scale(scores, 1.0 / (dh as f32).sqrt())?;
            let scores = g.add(scores, mask)?;
            let attn = g.softmax(scores)?;
            let z = g.matmul(attn, vh)?; // [B, T, dh]
            let wo = g.slice(p["attn.W_O"], 1, h * dh, (h + 1) * dh)?; // [d, dh]
            let wot = g.transpose(wo)?;
            let out = g.linear(z, wot)?;
            heads_out = Some(match heads_out {
                Some(acc) => g.add(acc, out)?,
                None => out,
            });
        }
        resid = g.add(resid, heads_out.expect("at least one head"))?;
        g.set_layer("mlp");
        let mut pre = project(g, "mlp.W_in", resid)?;
        if self.mlp_bias {
            pre = Self::add_bias(g, pre, p["mlp.b_in"])?;
        }
        let hidden = g.relu(pre)?;
        let mut out = project(g, "mlp.W_out", hidden)?;
        if self.mlp_bias {
            out = Self::add_bias(g, out, p["mlp.b_out"])?;
        }
        resid = g.add(resid, out)?;
        g.set_layer("unembed");
        let last = g.slice(resid, 1, t - 1, t)?;
        let last = g.reshape(last, &[b, resid.shape()[2]])?;
        g.matmul(last, p["unembed.W_U"])
    }
}

register_plugin!(
    Architecture,
    "transformer_modular",
    "1.0.0",
    "The paper code's 1-layer transformer: no LayerNorm, no positional embedding, causal attention",
    PARAMS,
    TransformerPlugin
);

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use ticketlab_api::plugin::registry::Registry;
    use ticketlab_api::plugin::{Params, PluginKind, StageContext};
    use ticketlab_api::runtime::Device;
    use ticketlab_api::tensor::{NamedTensors, init_params, standard_normal};
    use ticketlab_tensor::{LossKind, Objective, evaluate, forward, gradients};

    /// The transformer's gradient agrees with central differences of its own loss along a
    /// random direction (forward and backward read the same position), and the logits at the
    /// last position depend on both tokens.
    #[test]
    fn gradient_matches_differences_of_the_loss_and_both_tokens_count() {
        let registry = Registry::builtin().unwrap();
        let ctx = StageContext::new("data", 0, ".");
        let spec = |kind, name| registry.require(kind, name).unwrap().params.clone();
        let dp = Params::new()
            .with("op", "add")
            .with("p", 7)
            .with("pairs", "all")
            .with_defaults(&spec(PluginKind::Dataset, "modular"));
        let data = registry.dataset("modular").unwrap().build(&dp, &ctx).unwrap();
        let ap = Params::new()
            .with("d_model", 8)
            .with("d_mlp", 16)
            .with("heads", 2)
            .with("mlp_bias", true)
            .with_defaults(&spec(PluginKind::Architecture, "transformer_modular"));
        let arch =
            registry.architecture("transformer_modular").unwrap().build(&ap, &data.info).unwrap();
        let params = init_params(arch.as_ref(), 1);
        let split = &data.train;

        let grad = gradients(
            arch.as_ref(),
            &params,
            None,
            split,
            Objective::CrossEntropy { temperature: 1.0 },
            Device::Cpu,
        )
        .unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let direction: NamedTensors = params
            .iter()
            .map(|(k, t)| {
                let mut d = t.clone();
                d.data.iter_mut().for_each(|v| *v = standard_normal(&mut rng) as f32);
                (k.clone(), d)
            })
            .collect();
        let along = |eps: f64| {
            let moved: NamedTensors = params
                .iter()
                .map(|(k, t)| {
                    let mut m = t.clone();
                    m.data
                        .iter_mut()
                        .zip(&direction[k].data)
                        .for_each(|(w, d)| *w += (eps * f64::from(*d)) as f32);
                    (k.clone(), m)
                })
                .collect();
            evaluate(arch.as_ref(), &moved, None, split, LossKind::CrossEntropy, Device::Cpu)
                .unwrap()
                .loss
        };
        // Small enough that no ReLU of the MLP changes side along the step.
        let eps = 1e-4;
        let differences = (along(eps) - along(-eps)) / (2.0 * eps);
        let analytic: f64 = grad
            .iter()
            .map(|(k, g)| {
                g.data.iter().zip(&direction[k].data).map(|(a, b)| f64::from(a * b)).sum::<f64>()
            })
            .sum();
        assert!(
            (analytic - differences).abs() <= 2e-3 * (1.0 + differences.abs()),
            "gradient {analytic} vs differences {differences}"
        );

        // Examples (a, b) and (a, b') give different logits: the last position attends to both.
        let out = forward(arch.as_ref(), &params, None, &split.x, Device::Cpu).unwrap();
        let width = out.shape[1];
        let row = |i: usize| &out.data[i * width..(i + 1) * width];
        let tokens = |i: usize| {
            &split.x.data[i * split.x.shape[1..].iter().product::<usize>()..]
                [..split.x.shape[1..].iter().product::<usize>()]
        };
        let first_token = |i: usize| tokens(i)[..7].to_vec();
        let pair = (0..split.len())
            .flat_map(|i| (0..split.len()).map(move |j| (i, j)))
            .find(|&(i, j)| i != j && first_token(i) == first_token(j));
        let (i, j) = pair.expect("two training pairs share their first token");
        assert_ne!(row(i), row(j), "the second token changes the logits");
    }
}
