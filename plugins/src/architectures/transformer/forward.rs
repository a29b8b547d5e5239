//! The transformer's forward graph: embeddings, blocks (attention then MLP, each added to the
//! residual, LayerNorm where asked), and the unembedding at the last position.
//!
//! At the paper's setting the graph is, op for op and in the same order, the one the paper's
//! model has always built (`reference.rs` in the tests keeps that code).

use std::collections::BTreeMap;

use ticketlab_api::Result;
use ticketlab_api::tensor::{Architecture, GraphBuilder, HostTensor, ParamDef, Var};

use super::{LayerNorm, Transformer};

/// LayerNorm's epsilon (PyTorch's default).
const LN_EPS: f32 = 1e-5;

impl Architecture for Transformer {
    fn parameters(&self) -> Vec<ParamDef> {
        self.defs.clone()
    }

    fn forward(&self, g: &mut GraphBuilder, p: &BTreeMap<String, Var>, x: Var) -> Result<Var> {
        let c = &self.config;
        let (b, t) = (x.shape()[0], self.n_ctx);
        g.set_layer("embed");
        let we = g.transpose(p["embed.W_E"])?;
        let mut resid = g.linear(x, we)?; // [B, T, d]
        if c.learned_positions {
            g.set_layer("pos_embed");
            let pos = g.broadcast_to(p["pos_embed.W_pos"], &resid.shape())?;
            resid = g.add(resid, pos)?;
        }
        g.set_layer(format!("{}attention", c.block(0)));
        let mask = if c.causal { Some(causal_mask(g, b, t)?) } else { None };
        for i in 0..c.layers {
            let blk = c.block(i);
            g.set_layer(format!("{blk}attention"));
            let input = match c.layer_norm {
                LayerNorm::Pre => layer_norm(g, p, &format!("{blk}ln1"), resid)?,
                _ => resid,
            };
            let attn = self.attention(g, p, &blk, input, mask)?;
            resid = g.add(resid, attn)?;
            if c.layer_norm == LayerNorm::Post {
                resid = layer_norm(g, p, &format!("{blk}ln1"), resid)?;
            }
            g.set_layer(format!("{blk}mlp"));
            let input = match c.layer_norm {
                LayerNorm::Pre => layer_norm(g, p, &format!("{blk}ln2"), resid)?,
                _ => resid,
            };
            let out = self.mlp(g, p, &blk, input)?;
            resid = g.add(resid, out)?;
            if c.layer_norm == LayerNorm::Post {
                resid = layer_norm(g, p, &format!("{blk}ln2"), resid)?;
            }
        }
        g.set_layer("unembed");
        let last = g.slice(resid, 1, t - 1, t)?;
        let mut last = g.reshape(last, &[b, resid.shape()[2]])?;
        if c.layer_norm == LayerNorm::Pre {
            // Per position, so only the position read needs it.
            last = layer_norm(g, p, "ln_final", last)?;
        }
        let unembed = if c.tied {
            g.slice(p["embed.W_E"], 1, 0, self.outputs)? // [d, outputs]
        } else {
            p["unembed.W_U"]
        };
        g.matmul(last, unembed)
    }
}

impl Transformer {
    /// Multi-head attention of block prefix `blk` on `resid` `[B, T, d]` (without the residual
    /// connection); `mask`, when given, is added to the scores.
    fn attention(
        &self,
        g: &mut GraphBuilder,
        p: &BTreeMap<String, Var>,
        blk: &str,
        resid: Var,
        mask: Option<Var>,
    ) -> Result<Var> {
        let dh = self.config.d_model / self.config.heads;
        let (q, k, v) = (
            project(g, p[&format!("{blk}attn.W_Q")], resid)?,
            project(g, p[&format!("{blk}attn.W_K")], resid)?,
            project(g, p[&format!("{blk}attn.W_V")], resid)?,
        );
        let w_o = p[&format!("{blk}attn.W_O")];
        let mut heads_out: Option<Var> = None;
        for h in 0..self.config.heads {
            let (qh, kh, vh) = (
                g.slice(q, 2, h * dh, (h + 1) * dh)?,
                g.slice(k, 2, h * dh, (h + 1) * dh)?,
                g.slice(v, 2, h * dh, (h + 1) * dh)?,
            );
            let kt = g.transpose(kh)?;
            let scores = g.matmul(qh, kt)?; // [B, T, T]
            let mut scores = g.scale(scores, 1.0 / (dh as f32).sqrt())?;
            if let Some(mask) = mask {
                scores = g.add(scores, mask)?;
            }
            let attn = g.softmax(scores)?;
            let z = g.matmul(attn, vh)?; // [B, T, dh]
            let wo = g.slice(w_o, 1, h * dh, (h + 1) * dh)?; // [d, dh]
            let wot = g.transpose(wo)?;
            let out = g.linear(z, wot)?;
            heads_out = Some(match heads_out {
                Some(acc) => g.add(acc, out)?,
                None => out,
            });
        }
        Ok(heads_out.expect("at least one head"))
    }

    /// The MLP of block prefix `blk` on `resid` `[B, T, d]` (without the residual connection).
    fn mlp(
        &self,
        g: &mut GraphBuilder,
        p: &BTreeMap<String, Var>,
        blk: &str,
        resid: Var,
    ) -> Result<Var> {
        let mut pre = project(g, p[&format!("{blk}mlp.W_in")], resid)?;
        if self.config.mlp_bias {
            pre = add_bias(g, pre, p[&format!("{blk}mlp.b_in")])?;
        }
        let hidden = self.config.activation.apply(g, pre)?;
        let mut out = project(g, p[&format!("{blk}mlp.W_out")], hidden)?;
        if self.config.mlp_bias {
            out = add_bias(g, out, p[&format!("{blk}mlp.b_out")])?;
        }
        Ok(out)
    }
}

/// `x · wᵀ` for a weight `w` `[out, in]` (PyTorch's layout) and `x` `[.., in]`.
fn project(g: &mut GraphBuilder, w: Var, x: Var) -> Result<Var> {
    let wt = g.transpose(w)?;
    g.linear(x, wt)
}

/// Adds a bias `[n]` to `x` `[.., n]`.
fn add_bias(g: &mut GraphBuilder, x: Var, bias: Var) -> Result<Var> {
    let shape = x.shape();
    let bias = g.broadcast_to(bias, &shape)?;
    g.add(x, bias)
}

/// The causal mask `[B, T, T]`: -1e10 above the diagonal (scores there vanish after the
/// softmax).
fn causal_mask(g: &mut GraphBuilder, b: usize, t: usize) -> Result<Var> {
    let mut mask = vec![0.0f32; t * t];
    for i in 0..t {
        for j in i + 1..t {
            mask[i * t + j] = -1e10;
        }
    }
    let mask = g.tensor_constant("causal mask", &HostTensor::new(vec![t, t], mask));
    g.expand(mask, 0, b)
}

/// LayerNorm `name` (parameters `name.w`, `name.b`) over the last axis of `x`:
/// `(x - mean) / sqrt(var + eps) * (1 + w) + b`, the variance biased (as PyTorch's).
pub(super) fn layer_norm(
    g: &mut GraphBuilder,
    p: &BTreeMap<String, Var>,
    name: &str,
    x: Var,
) -> Result<Var> {
    let shape = x.shape();
    let last = shape.len() - 1;
    let n = shape[last];
    let sum = g.sum_reduce(x, last)?;
    let mean = g.scale(sum, 1.0 / n as f32)?;
    let mean = g.expand(mean, last, n)?;
    let centered = g.sub(x, mean)?;
    let squares = g.mul(centered, centered)?;
    let var = g.sum_reduce(squares, last)?;
    let var = g.scale(var, 1.0 / n as f32)?;
    let var = g.add_scalar(var, LN_EPS)?;
    let std = g.sqrt(var);
    let inv = g.recip(std);
    let inv = g.expand(inv, last, n)?;
    let normed = g.mul(centered, inv)?;
    let gain = g.add_scalar(p[&format!("{name}.w")], 1.0)?;
    let gain = g.broadcast_to(gain, &shape)?;
    let scaled = g.mul(normed, gain)?;
    add_bias(g, scaled, p[&format!("{name}.b")])
}
