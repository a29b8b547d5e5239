//! Fourier entropy of per-neuron effective input weights (PAPER-SPEC section 6.2).
//!
//! For each checkpoint of each input run: `W = W_in · W_E` (neurons × tokens, masked weights
//! are already 0 in a ticket's checkpoints), the DFT of each neuron's row over the p tokens,
//! amplitudes `|F_k| / (p/2)` for frequencies `1..=K` (DC dropped), normalised to a
//! distribution per neuron (neurons with no amplitude skipped). Two entropies, both averaged
//! over neurons:
//! - `shannon`: `-Σ p_k ln p_k`;
//! - `code_ce`: the quantity the paper's code computes, `CrossEntropyLoss(P, P)` =
//!   `logsumexp(p) - Σ p_k²` (a flat spectrum gives about ln K, a single frequency about 2.52
//!   for K = 32).
//!
//! JSON: `{"frequencies": K, "runs": {ARM: {"steps": [..], "shannon": [..], "code_ce": [..],
//! "spectrum": [[..K..] per neuron, at the last checkpoint]}}}`.

use serde_json::json;
use ticketlab_core::artifact::AnalysisArtifact;
use ticketlab_core::plugin::{AnalysisInputs, AnalysisPlugin, ParamSpec, ParamType, Params};
use ticketlab_core::tensor::NamedTensors;
use ticketlab_core::{Error, Result, register_plugin};

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new("embed", ParamType::Str, "the embedding parameter [d_emb, vocab]").default("\"embed.W_E\""),
    ParamSpec::new("inproj", ParamType::Str, "the input projection [neurons, d_emb]").default("\"inproj.W\""),
    ParamSpec::new("frequencies", ParamType::Int, "K: frequencies 1..=K are kept; 0 = vocab/2 - 1 (32 for p = 67, as the paper's code)").default("0").min(0.0),
];

/// Normalised amplitude spectrum (frequencies `1..=k`) of `row`, or `None` if it is all zero.
pub fn normalised_spectrum(row: &[f64], k: usize) -> Option<Vec<f64>> {
    let n = row.len();
    let amps: Vec<f64> = (1..=k)
        .map(|f| {
            let (mut re, mut im) = (0.0, 0.0);
            for (t, v) in row.iter().enumerate() {
                let angle = -2.0 * std::f64::consts::PI * (f * t) as f64 / n as f64;
                re += v * angle.cos();
                im += v * angle.sin();
            }
            (re * re + im * im).sqrt() / (n as f64 / 2.0)
        })
        .collect();
    let total: f64 = amps.iter().sum();
    (total > 0.0).then(|| amps.iter().map(|a| a / total).collect())
}

/// `-Σ p ln p`.
pub fn shannon_entropy(p: &[f64]) -> f64 {
    -p.iter().filter(|v| **v > 0.0).map(|v| v * v.ln()).sum::<f64>()
}

/// The paper code's `CrossEntropyLoss(P, P)` of one distribution: `logsumexp(p) - Σ p²`.
pub fn code_cross_entropy(p: &[f64]) -> f64 {
    let m = p.iter().fold(f64::NEG_INFINITY, |a, b| a.max(*b));
    let lse = m + p.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    lse - p.iter().map(|v| v * v).sum::<f64>()
}

/// Per-neuron spectra of `W_in · W_E` of one checkpoint.
fn spectra(params: &NamedTensors, embed: &str, inproj: &str, k: usize) -> Result<Vec<Vec<f64>>> {
    let missing = |n: &str| Error::param(n, format!("parameter `{n}` not found; set `embed`/`inproj` to the architecture's names"));
    let we = params.get(embed).ok_or_else(|| missing(embed))?;
    let wi = params.get(inproj).ok_or_else(|| missing(inproj))?;
    let (d, vocab) = (we.shape[0], we.shape[1]);
    if wi.shape.len() != 2 || wi.shape[1] != d {
        return Err(Error::shape("fourier_entropy", format!("{inproj} {:?} does not multiply {embed} {:?}", wi.shape, we.shape)));
    }
    let neurons = wi.shape[0];
    let mut out = Vec::new();
    for i in 0..neurons {
        let row: Vec<f64> = (0..vocab)
            .map(|t| (0..d).map(|j| f64::from(wi.data[i * d + j]) * f64::from(we.data[j * vocab + t])).sum())
            .collect();
        if let Some(s) = normalised_spectrum(&row, k) {
            out.push(s);
        }
    }
    Ok(out)
}

/// The `fourier_entropy` analysis.
#[derive(Default)]
struct FourierEntropy;

impl AnalysisPlugin for FourierEntropy {
    fn analyze(&self, params: &Params, inputs: &AnalysisInputs<'_>) -> Result<AnalysisArtifact> {
        let (embed, inproj) = (params.str("embed")?, params.str("inproj")?);
        let mut runs = serde_json::Map::new();
        let mut k_used = 0;
        for (arm, run) in &inputs.runs {
            let vocab = run.final_params.get(embed).map(|t| t.shape[1]).ok_or_else(|| Error::param("embed", format!("`{embed}` not found in run `{arm}`")))?;
            let k = match params.usize("frequencies")? {
                0 => (vocab / 2).saturating_sub(1).max(1),
                k => k.min(vocab / 2),
            };
            k_used = k;
            let (mut steps, mut shannon, mut code, mut last) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (step, ckpt) in &run.checkpoints {
                let s = spectra(ckpt, embed, inproj, k)?;
                let n = s.len().max(1) as f64;
                steps.push(*step);
                shannon.push(s.iter().map(|p| shannon_entropy(p)).sum::<f64>() / n);
                code.push(s.iter().map(|p| code_cross_entropy(p)).sum::<f64>() / n);
                last = s;
            }
            runs.insert(arm.to_string(), json!({"steps": steps, "shannon": shannon, "code_ce": code, "spectrum": last}));
        }
        Ok(AnalysisArtifact { analysis: "fourier_entropy".into(), value: json!({"frequencies": k_used, "runs": runs}) })
    }
}

register_plugin!(Analysis, "fourier_entropy", "1.0.0", "Fourier entropy of per-neuron effective input weights W_in·W_E over checkpoints", PARAMS, FourierEntropy);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_sinusoid_is_concentrated_and_noise_is_flat() {
        let p = 67;
        let sine: Vec<f64> = (0..p).map(|t| (2.0 * std::f64::consts::PI * 5.0 * t as f64 / p as f64).cos()).collect();
        let s = normalised_spectrum(&sine, 32).unwrap();
        assert!(s[4] > 0.999, "all mass at frequency 5: {}", s[4]);
        assert!(shannon_entropy(&s) < 0.01);
        assert!((code_cross_entropy(&s) - 2.52).abs() < 0.05, "{}", code_cross_entropy(&s));
        // Deterministic pseudo-noise: a flat-ish spectrum near ln 32.
        let mut x = 12345u64;
        let noise: Vec<f64> = (0..p)
            .map(|_| {
                x = ticketlab_core::seed::splitmix64(x);
                (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect();
        let n = normalised_spectrum(&noise, 32).unwrap();
        assert!(shannon_entropy(&n) > 3.0 && shannon_entropy(&n) <= 32f64.ln() + 1e-12);
        assert!((code_cross_entropy(&n) - 32f64.ln()).abs() < 0.01);
        assert!(normalised_spectrum(&vec![0.0; p], 32).is_none());
    }
}
