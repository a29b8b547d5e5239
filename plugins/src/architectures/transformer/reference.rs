//! The paper's transformer exactly as `transformer_modular` built it before the generic
//! `transformer` existed (its build and forward, unchanged but for visibility): the tests check
//! that both plugins still give these numbers bit for bit.

use std::collections::BTreeMap;

use ticketlab_api::data::DatasetInfo;
use ticketlab_api::plugin::{ArchitecturePlugin, Params};
use ticketlab_api::tensor::{Architecture, GraphBuilder, HostTensor, Init, ParamDef, Var};
use ticketlab_api::{Error, Result};

/// The paper's plugin as it was.
#[derive(Default)]
pub(super) struct TransformerPlugin;

/// The paper's model as it was.
struct Transformer {
    defs: Vec<ParamDef>,
    heads: usize,
    d_head: usize,
    n_ctx: usize,
    mlp_bias: bool,
}

impl ArchitecturePlugin for TransformerPlugin {
    fn build(&self, params: &Params, info: &DatasetInfo) -> Result<Box<dyn Architecture>> {
        let (vocab, n_ctx) = crate::architectures::tokens("transformer_modular", info)?;
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
            defs: crate::architectures::apply_prunable(defs, params)?,
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
