//! Fourier entropy of per-neuron effective weights (PAPER-SPEC section 6.2).
//!
//! For the paper's MLP (`mlp_modular`; parameter names are parameters of the analysis):
//! - **input side** `W_in · W_E` (`inproj.W` `[width, d_emb]` times `embed.W_E` `[d_emb, p]`):
//!   one row of p token weights per neuron, the paper's `W_inproj` (48 × 67);
//! - **output side** `W_outᵀ · W_U` (`outproj.W` `[d_emb, width]` transposed, times
//!   `unembed.W_U` `[d_emb, p]`), which the paper's code also computes.
//!
//! Each matrix is first multiplied by the run's mask (tickets). For each neuron: the DFT of its
//! row over the p tokens, amplitudes `|F_k| / (p/2)` at frequencies `k = 1..=K` (DC dropped;
//! the default `K = ⌊p/2⌋ − 1` is the reference code's slice, 32 for p = 67), normalised to a
//! distribution `q` (neurons whose amplitudes are all zero are skipped). Two entropies, each
//! averaged over neurons:
//! - `shannon`: `−Σ_k q_k ln q_k` (the paper's formula);
//! - `code_ce`: what the reference code computes, `CrossEntropyLoss(P, P)` with the neurons' `q`
//!   as both logits and soft targets, i.e. `logsumexp(q) − Σ_k q_k²`: about `ln K` (3.466) for a
//!   flat spectrum and 2.52 for a single frequency at K = 32. It is not an entropy of `q`.
//!
//! JSON value (the input side at the top level, where the run directory's figures read it:
//! [`figures`]):
//! ```text
//! {"frequencies": K,
//!  "runs": {ARM: {"steps": [t, ..], "shannon": [..], "code_ce": [..], "neurons": [n_used, ..],
//!                 "spectrum": [[q_1..q_K] per neuron], "spectrum_step": T,
//!                 "output": {"shannon": [..], "code_ce": [..], "neurons": [..], "spectrum": [[..]]}}},
//!  "models": {STAGE: {"shannon": x, "code_ce": y, "neurons": n, "spectrum": [[..]],
//!                     "output": {...the same...}}}}
//! ```
//! Series are over the run's checkpoints (step 0 and the last step are always among them);
//! `spectrum` holds the spectra of the last checkpoint (step `spectrum_step`), one row per
//! neuron with zeros for a silent neuron, for a heatmap. `side` selects the input side, the
//! output side (`output` key only), or both.

use std::f64::consts::PI;

use serde_json::{Value, json};
use ticketlab_api::artifact::AnalysisArtifact;
use ticketlab_api::figure::{FigureContext, FigureSpec};
use ticketlab_api::plugin::{AnalysisInputs, AnalysisPlugin, ParamSpec, ParamType, Params};
use ticketlab_api::tensor::{HostTensor, MaskSet, NamedTensors};
use ticketlab_api::{Error, Result, register_plugin};

mod figures;

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new("embed", ParamType::Str, "the embedding `[d_emb, vocab]`").default("\"embed.W_E\""),
    ParamSpec::new("inproj", ParamType::Str, "the input projection `[neurons, d_emb]`").default("\"inproj.W\""),
    ParamSpec::new("outproj", ParamType::Str, "the output projection `[d_emb, neurons]`").default("\"outproj.W\""),
    ParamSpec::new("unembed", ParamType::Str, "the unembedding `[d_emb, vocab]`").default("\"unembed.W_U\""),
    ParamSpec::new("side", ParamType::Choice(&["input", "output", "both"]), "which effective weights to analyse").default("\"both\""),
    ParamSpec::new("frequencies", ParamType::Int, "K: frequencies 1..=K are kept; 0 = vocab/2 - 1 (32 for p = 67, the reference code's slice)").default("0").min(0.0),
];

/// Normalised amplitude spectrum (frequencies `1..=k`) of `row`, or `None` if it is all zero.
pub fn normalised_spectrum(row: &[f64], k: usize) -> Option<Vec<f64>> {
    let n = row.len();
    let amps: Vec<f64> = (1..=k)
        .map(|f| {
            let (mut re, mut im) = (0.0, 0.0);
            for (t, v) in row.iter().enumerate() {
                // (f * t) mod n keeps the angle small and exact.
                let angle = -2.0 * PI * ((f * t) % n) as f64 / n as f64;
                re += v * angle.cos();
                im += v * angle.sin();
            }
            (re * re + im * im).sqrt() / (n as f64 / 2.0)
        })
        .collect();
    let total: f64 = amps.iter().sum();
    (total > 0.0 && total.is_finite()).then(|| amps.iter().map(|a| a / total).collect())
}

/// `−Σ q ln q` (terms with `q = 0` contribute 0).
pub fn shannon_entropy(q: &[f64]) -> f64 {
    -q.iter().filter(|v| **v > 0.0).map(|v| v * v.ln()).sum::<f64>()
}

/// The reference code's `CrossEntropyLoss(P, P)` of one distribution: `logsumexp(q) − Σ q²`.
pub fn code_cross_entropy(q: &[f64]) -> f64 {
    let m = q.iter().fold(f64::NEG_INFINITY, |a, b| a.max(*b));
    let lse = m + q.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    lse - q.iter().map(|v| v * v).sum::<f64>()
}

/// Parameter names and options of one analysis.
struct Names<'a> {
    embed: &'a str,
    inproj: &'a str,
    outproj: &'a str,
    unembed: &'a str,
}

/// `name` from `params`, masked, as f64 with its shape; the error names the analysis parameter.
fn fetch(
    params: &NamedTensors,
    mask: Option<&MaskSet>,
    name: &str,
    key: &str,
    what: &str,
) -> Result<(Vec<usize>, Vec<f64>)> {
    let t: &HostTensor = params.get(name).ok_or_else(|| {
        let known: Vec<&str> = params.keys().map(String::as_str).collect();
        Error::param(
            key,
            format!("{what} has no parameter `{name}`; its parameters are {}", known.join(", ")),
        )
    })?;
    if t.shape.len() != 2 {
        return Err(Error::shape(
            name,
            format!("fourier_entropy needs a matrix, `{name}` is {:?}", t.shape),
        ));
    }
    let m = mask.and_then(|m| m.get(name));
    let data = t
        .data
        .iter()
        .enumerate()
        .map(|(i, v)| f64::from(*v) * m.map_or(1.0, |m| f64::from(m.data[i])))
        .collect();
    Ok((t.shape.clone(), data))
}

/// `a [r, d] · b [d, c]` (row-major) with `a` optionally read transposed (`a` stored `[d, r]`).
fn matmul(a: &[f64], b: &[f64], r: usize, d: usize, c: usize, a_transposed: bool) -> Vec<f64> {
    let mut out = vec![0.0; r * c];
    for i in 0..r {
        for k in 0..d {
            let x = if a_transposed { a[k * r + i] } else { a[i * d + k] };
            if x != 0.0 {
                for j in 0..c {
                    out[i * c + j] += x * b[k * c + j];
                }
            }
        }
    }
    out
}

/// The effective `[neurons, vocab]` matrix of one side.
fn effective(
    params: &NamedTensors,
    mask: Option<&MaskSet>,
    names: &Names<'_>,
    output: bool,
    what: &str,
) -> Result<(usize, usize, Vec<f64>)> {
    if output {
        let (so, wo) = fetch(params, mask, names.outproj, "outproj", what)?;
        let (su, wu) = fetch(params, mask, names.unembed, "unembed", what)?;
        if so[0] != su[0] {
            return Err(Error::shape(
                "fourier_entropy",
                format!(
                    "`{}` {so:?} and `{}` {su:?} do not share d_emb",
                    names.outproj, names.unembed
                ),
            ));
        }
        Ok((so[1], su[1], matmul(&wo, &wu, so[1], so[0], su[1], true)))
    } else {
        let (si, wi) = fetch(params, mask, names.inproj, "inproj", what)?;
        let (se, we) = fetch(params, mask, names.embed, "embed", what)?;
        if si[1] != se[0] {
            return Err(Error::shape(
                "fourier_entropy",
                format!("`{}` {si:?} does not multiply `{}` {se:?}", names.inproj, names.embed),
            ));
        }
        Ok((si[0], se[1], matmul(&wi, &we, si[0], si[1], se[1], false)))
    }
}

/// Per-neuron spectra (`None` for silent neurons) of one side of one set of weights.
fn spectra(
    params: &NamedTensors,
    mask: Option<&MaskSet>,
    names: &Names<'_>,
    output: bool,
    k: Option<usize>,
    what: &str,
) -> Result<(usize, Vec<Option<Vec<f64>>>)> {
    let (neurons, vocab, w) = effective(params, mask, names, output, what)?;
    let k = k.unwrap_or((vocab / 2).saturating_sub(1)).clamp(1, (vocab / 2).max(1));
    Ok((k, (0..neurons).map(|i| normalised_spectrum(&w[i * vocab..(i + 1) * vocab], k)).collect()))
}

/// Neuron-averaged (shannon, code_ce, neurons used).
fn entropies(s: &[Option<Vec<f64>>]) -> (f64, f64, usize) {
    let used: Vec<&Vec<f64>> = s.iter().flatten().collect();
    let n = used.len().max(1) as f64;
    (
        used.iter().map(|q| shannon_entropy(q)).sum::<f64>() / n,
        used.iter().map(|q| code_cross_entropy(q)).sum::<f64>() / n,
        used.len(),
    )
}

/// Spectra as heatmap rows: zeros for silent neurons.
fn heatmap(s: &[Option<Vec<f64>>], k: usize) -> Value {
    json!(s.iter().map(|q| q.clone().unwrap_or_else(|| vec![0.0; k])).collect::<Vec<_>>())
}

/// Puts the input side's fields at the top level of `entry`, the output side under `output`.
fn place(entry: &mut Value, side: &str, fields: Value) {
    match (side, fields) {
        ("input", Value::Object(map)) => entry.as_object_mut().expect("an object").extend(map),
        (_, fields) => entry[side] = fields,
    }
}

/// The `fourier_entropy` analysis.
#[derive(Default)]
struct FourierEntropy;

impl AnalysisPlugin for FourierEntropy {
    fn analyze(&self, params: &Params, inputs: &AnalysisInputs<'_>) -> Result<AnalysisArtifact> {
        let names = Names {
            embed: params.str("embed")?,
            inproj: params.str("inproj")?,
            outproj: params.str("outproj")?,
            unembed: params.str("unembed")?,
        };
        let sides: &[(&str, bool)] = match params.str("side")? {
            "input" => &[("input", false)],
            "output" => &[("output", true)],
            _ => &[("input", false), ("output", true)],
        };
        let k = match params.usize("frequencies")? {
            0 => None,
            k => Some(k),
        };
        if inputs.runs.is_empty() && inputs.models.is_empty() {
            return Err(Error::param(
                "runs",
                "fourier_entropy needs at least one run or model input",
            ));
        }
        let mut k_used = 0;
        let mut runs = serde_json::Map::new();
        for (arm, run) in &inputs.runs {
            let what = format!("run `{arm}`");
            let mask = run.init.mask.as_ref();
            let (last_step, last) = run
                .checkpoints
                .iter()
                .next_back()
                .map_or((run.summary.steps, &run.final_params), |(s, p)| (*s, p));
            let mut entry = json!({"steps": run.checkpoints.keys().collect::<Vec<_>>(), "spectrum_step": last_step});
            for (side, output) in sides {
                let (mut sh, mut ce, mut used) = (Vec::new(), Vec::new(), Vec::new());
                for ckpt in run.checkpoints.values() {
                    let (_, s) = spectra(ckpt, mask, &names, *output, k, &what)?;
                    let (a, b, n) = entropies(&s);
                    sh.push(a);
                    ce.push(b);
                    used.push(n);
                }
                let (kk, s) = spectra(last, mask, &names, *output, k, &what)?;
                k_used = kk;
                place(
                    &mut entry,
                    side,
                    json!({"shannon": sh, "code_ce": ce, "neurons": used, "spectrum": heatmap(&s, kk)}),
                );
            }
            runs.insert(arm.to_string(), entry);
        }
        let mut models = serde_json::Map::new();
        for (stage, model) in &inputs.models {
            let what = format!("model `{stage}`");
            let mut entry = json!({});
            for (side, output) in sides {
                let (kk, s) =
                    spectra(&model.params, model.mask.as_ref(), &names, *output, k, &what)?;
                let (a, b, n) = entropies(&s);
                place(
                    &mut entry,
                    side,
                    json!({"shannon": a, "code_ce": b, "neurons": n, "spectrum": heatmap(&s, kk)}),
                );
                k_used = kk;
            }
            models.insert(stage.to_string(), entry);
        }
        Ok(AnalysisArtifact {
            analysis: "fourier_entropy".into(),
            value: json!({"frequencies": k_used, "runs": runs, "models": models}),
        })
    }

    fn figures(&self, value: &Value, ctx: &FigureContext<'_>) -> Vec<FigureSpec> {
        figures::of(value, ctx)
    }
}

register_plugin!(
    Analysis,
    "fourier_entropy",
    "1.0.0",
    "Fourier entropy of per-neuron effective weights (W_in·W_E and W_outᵀ·W_U) over checkpoints",
    PARAMS,
    FourierEntropy
);

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<f64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = ticketlab_api::seed::splitmix64(x);
                (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect()
    }

    #[test]
    fn pure_sinusoid_is_concentrated_and_noise_is_flat() {
        let p = 67;
        let sine: Vec<f64> =
            (0..p).map(|t| (2.0 * PI * 5.0 * t as f64 / p as f64 + 0.3).cos()).collect();
        let s = normalised_spectrum(&sine, 32).unwrap();
        assert!(s[4] > 0.999, "all mass at frequency 5: {}", s[4]);
        assert!(shannon_entropy(&s) < 0.01);
        // A one-hot distribution over 32: ln(31 + e) - 1.
        assert!(
            (code_cross_entropy(&s) - ((31.0 + 1f64.exp()).ln() - 1.0)).abs() < 1e-3,
            "{}",
            code_cross_entropy(&s)
        );
        // Noise: many neurons average near ln 32 for both quantities.
        let (mut sh, mut ce) = (0.0, 0.0);
        for seed in 0..48 {
            let q = normalised_spectrum(&noise(p, seed), 32).unwrap();
            sh += shannon_entropy(&q) / 48.0;
            ce += code_cross_entropy(&q) / 48.0;
        }
        let ln32 = 32f64.ln();
        assert!(sh > ln32 - 0.25 && sh < ln32, "shannon of noise {sh}");
        assert!((ce - ln32).abs() < 0.02, "code CE of noise {ce}");
        assert!(normalised_spectrum(&vec![0.0; p], 32).is_none());
    }

    #[test]
    fn amplitude_is_scaled_by_half_the_length() {
        // cos(2πkt/N) has |F_k| = N/2: amplitude 1 before normalisation.
        let n = 16;
        let row: Vec<f64> = (0..n)
            .map(|t| {
                (2.0 * PI * 3.0 * t as f64 / n as f64).cos()
                    + 0.5 * (2.0 * PI * t as f64 / n as f64).sin()
            })
            .collect();
        let q = normalised_spectrum(&row, 7).unwrap();
        assert!((q[2] - 1.0 / 1.5).abs() < 1e-9 && (q[0] - 0.5 / 1.5).abs() < 1e-9, "{q:?}");
        assert!((shannon_entropy(&[0.5, 0.5]) - 2f64.ln()).abs() < 1e-12);
    }

    /// A tiny "MLP" whose effective input weights are cos(2π f t / p) for neuron f.
    fn periodic_params(p: usize, neurons: usize) -> NamedTensors {
        // W_E = identity-like [d_emb = p, p]; W_in rows are cosines over d_emb = p.
        let mut we = vec![0.0f32; p * p];
        (0..p).for_each(|i| we[i * p + i] = 1.0);
        let win: Vec<f32> = (0..neurons)
            .flat_map(|f| {
                (0..p).map(move |t| (2.0 * PI * (f + 1) as f64 * t as f64 / p as f64).cos() as f32)
            })
            .collect();
        let wout: Vec<f32> = noise(p * neurons, 9).into_iter().map(|v| v as f32).collect();
        [
            ("embed.W_E".to_string(), HostTensor::new(vec![p, p], we.clone())),
            ("inproj.W".to_string(), HostTensor::new(vec![neurons, p], win)),
            ("outproj.W".to_string(), HostTensor::new(vec![p, neurons], wout)),
            ("unembed.W_U".to_string(), HostTensor::new(vec![p, p], we)),
        ]
        .into()
    }

    #[test]
    fn effective_weights_of_a_periodic_network() {
        let names = Names {
            embed: "embed.W_E",
            inproj: "inproj.W",
            outproj: "outproj.W",
            unembed: "unembed.W_U",
        };
        let params = periodic_params(23, 4);
        let (k, s) = spectra(&params, None, &names, false, None, "test").unwrap();
        assert_eq!(k, 10);
        for (f, q) in s.iter().enumerate() {
            assert!(q.as_ref().unwrap()[f] > 0.999, "neuron {f} peaks at frequency {}", f + 1);
        }
        let (sh, _, n) = entropies(&s);
        assert!(sh < 1e-3 && n == 4);
        let (_, out) = spectra(&params, None, &names, true, None, "test").unwrap();
        assert!(entropies(&out).0 > 1.5, "noise on the output side");
        // Masking neuron 0's input weights silences it.
        let mask: MaskSet = [(
            "inproj.W".to_string(),
            HostTensor::new(vec![4, 23], (0..92).map(|i| if i < 23 { 0.0 } else { 1.0 }).collect()),
        )]
        .into();
        let (_, masked) = spectra(&params, Some(&mask), &names, false, None, "test").unwrap();
        assert!(masked[0].is_none() && entropies(&masked).2 == 3);
        let err =
            spectra(&params, None, &Names { embed: "W_E", ..names }, false, None, "run `dense`")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("embed") && err.contains("`W_E`") && err.contains("run `dense`"),
            "{err}"
        );
    }
}
