//! Random search: a sweep's `random` block (or `--random`) draws `samples` points, each
//! parameter from its distribution, deterministically in the seed. When an experiment is loaded
//! the points become the rows of the sweep's zip, so they combine with the grid and the seeds,
//! are named, planned and cached like any other sweep point, and a point drawn again costs
//! nothing.
//!
//! Distributions: `uniform(a, b)`, `loguniform(a, b)` (0 < a), `int(a, b)` (both ends
//! included) and `choice([v1, v2, ...])`. Draw `i` of parameter `KEY` uses
//! `seed::derive(seed, "KEY#i")`, so adding a parameter or a sample changes no other draw.
//! Drawn numbers keep four significant digits, which keeps stage names readable.

use serde_json::Value;
use ticketlab_api::seed;

use crate::ast::{Experiment, RandomAst, Spanned, SweepAxis};
use crate::diag::Diag;

/// A distribution to draw from.
#[derive(Debug, Clone, PartialEq)]
pub enum Dist {
    /// Uniform on `[a, b)`.
    Uniform(f64, f64),
    /// Log-uniform on `[a, b)`: `exp` of a uniform draw between `ln a` and `ln b`.
    LogUniform(f64, f64),
    /// A whole number from `a` to `b`, both included.
    Int(i64, i64),
    /// One of the values, each as likely.
    Choice(Vec<Value>),
}

/// The forms a distribution may take, for messages.
const FORMS: &str =
    "`uniform(a, b)`, `loguniform(a, b)` with 0 < a, `int(a, b)` or `choice([v1, v2, ...])`";

impl Dist {
    /// Parses `text` (`loguniform(1e-4, 1e-2)`); the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let Some((name, rest)) = text.split_once('(') else {
            return Err(format!("`{text}` is not a distribution; write {FORMS}"));
        };
        let Some(args) = rest.trim_end().strip_suffix(')') else {
            return Err(format!("`{text}` lacks its closing `)`"));
        };
        let name = name.trim();
        if name == "choice" {
            let values: serde_yaml::Value = serde_yaml::from_str(args)
                .map_err(|e| format!("`{text}`: the choices are not a YAML list: {e}"))?;
            let values: Vec<Value> = match serde_json::to_value(values) {
                Ok(Value::Array(values)) if !values.is_empty() => values,
                _ => {
                    return Err(format!(
                        "`{text}`: give the choices as a non-empty list, `choice([a, b])`"
                    ));
                }
            };
            return Ok(Dist::Choice(values));
        }
        let bounds: Vec<&str> = args.split(',').map(str::trim).collect();
        let [a, b] = bounds[..] else {
            return Err(format!("`{text}`: `{name}` takes two bounds, `{name}(a, b)`"));
        };
        let float = |s: &str| {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("`{text}`: `{s}` is not a finite number"))
        };
        match name {
            "uniform" | "loguniform" => {
                let (a, b) = (float(a)?, float(b)?);
                if a >= b {
                    return Err(format!("`{text}`: the lower bound must be below the upper"));
                }
                if name == "uniform" {
                    Ok(Dist::Uniform(a, b))
                } else if a <= 0.0 {
                    Err(format!("`{text}`: a log-uniform distribution needs 0 < a"))
                } else {
                    Ok(Dist::LogUniform(a, b))
                }
            }
            "int" => {
                let int = |s: &str| {
                    s.parse::<i64>().map_err(|_| format!("`{text}`: `{s}` is not a whole number"))
                };
                let (a, b) = (int(a)?, int(b)?);
                if a > b {
                    return Err(format!("`{text}`: the lower bound must not be above the upper"));
                }
                Ok(Dist::Int(a, b))
            }
            other => Err(format!("`{other}` is not a distribution; write {FORMS}")),
        }
    }

    /// The value at `u` in `[0, 1)`.
    fn at(&self, u: f64) -> Value {
        match self {
            Dist::Uniform(a, b) => Value::from(four_digits(a + u * (b - a))),
            Dist::LogUniform(a, b) => {
                Value::from(four_digits((a.ln() + u * (b.ln() - a.ln())).exp()))
            }
            Dist::Int(a, b) => {
                let span = (b - a) as f64 + 1.0;
                Value::from((*a + (u * span).floor() as i64).min(*b))
            }
            Dist::Choice(values) => {
                values[((u * values.len() as f64) as usize).min(values.len() - 1)].clone()
            }
        }
    }

    /// Draws `samples` values of parameter `key` with `seed`.
    pub fn draw(&self, key: &str, seed: u64, samples: u64) -> Vec<Value> {
        (0..samples)
            .map(|i| {
                let bits = seed::derive(seed, &format!("{key}#{i}"));
                self.at((bits >> 11) as f64 / (1u64 << 53) as f64)
            })
            .collect()
    }
}

/// `v` with four significant digits.
fn four_digits(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let shift = 3 - v.abs().log10().floor() as i32;
    if shift >= 0 {
        let scale = 10f64.powi(shift);
        (v * scale).round() / scale
    } else {
        let scale = 10f64.powi(-shift);
        (v / scale).round() * scale
    }
}

/// Replaces the sweep's `random` block with zip axes of the drawn values, one row per sample.
/// Problems are returned located; the block is removed either way.
pub fn draw_into_zip(ast: &mut Experiment) -> Vec<Diag> {
    let Some(sweep) = ast.sweep.as_mut() else { return Vec::new() };
    let Some(random) = sweep.random.take() else { return Vec::new() };
    let mut diags = Vec::new();
    if let Some(first) = sweep.zip.first() {
        diags.push(
            Diag::new(
                "`random` and `zip` cannot be combined: the random points are the zip's rows",
            )
            .label(random.span, "random points")
            .label(first.span, "a zip axis")
            .help("sweep the zip's parameters with `grid`, or draw them in `random` too"),
        );
        return diags;
    }
    let RandomAst { samples, seed, axes, span } = random;
    let Some(samples) = samples else {
        diags.push(
            Diag::new("`random` needs `samples`, the number of points to draw")
                .label(span, "no `samples`")
                .help("add `samples: 8` (YAML) or `samples = 8` (.tlx), or `--samples 8`"),
        );
        return diags;
    };
    if axes.is_empty() {
        diags.push(Diag::new("`random` draws nothing").label(span, "no parameter to draw").help(
            "add a parameter and its distribution, e.g. `dense.lr: \"loguniform(1e-4, 1e-2)\"`",
        ));
        return diags;
    }
    let seed = seed.map_or(0, |s| s.node);
    for axis in axes {
        match Dist::parse(&axis.dist.node) {
            Ok(dist) => {
                let span = axis.dist.span;
                let values = dist.draw(&axis.key.node, seed, samples.node);
                sweep.zip.push(SweepAxis {
                    key: axis.key,
                    values: values.into_iter().map(|v| Spanned::new(v, span)).collect(),
                    span,
                    set_by: axis.set_by,
                });
            }
            Err(message) => {
                let shown = axis.set_by.map_or(String::new(), |flag| format!(" (`{flag}`)"));
                diags.push(
                    Diag::new(format!("random parameter `{}`{shown}: {message}", axis.key.node))
                        .label(axis.dist.span, "this distribution")
                        .help(format!("write {FORMS}")),
                );
            }
        }
    }
    diags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_parse_or_say_why_not() {
        assert_eq!(Dist::parse("uniform(0.1, 1)"), Ok(Dist::Uniform(0.1, 1.0)));
        assert_eq!(Dist::parse(" loguniform(1e-4,1e-2) "), Ok(Dist::LogUniform(1e-4, 1e-2)));
        assert_eq!(Dist::parse("int(16, 64)"), Ok(Dist::Int(16, 64)));
        assert_eq!(
            Dist::parse("choice([adamw, sgd])"),
            Ok(Dist::Choice(vec!["adamw".into(), "sgd".into()]))
        );
        for (bad, says) in [
            ("loguniform(0, 1)", "0 < a"),
            ("uniform(2, 1)", "below the upper"),
            ("int(1.5, 3)", "not a whole number"),
            ("normal(0, 1)", "`normal` is not a distribution"),
            ("uniform(1)", "takes two bounds"),
            ("choice([])", "non-empty list"),
            ("uniform(0, 1", "closing"),
            ("0.3", "not a distribution"),
        ] {
            let err = Dist::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn draws_are_deterministic_in_range_and_independent_per_parameter() {
        let lr = Dist::LogUniform(1e-4, 1e-2);
        let a = lr.draw("dense.lr", 7, 200);
        assert_eq!(a, lr.draw("dense.lr", 7, 200), "the same seed draws the same");
        assert_ne!(a, lr.draw("dense.lr", 8, 200), "another seed draws others");
        assert_eq!(&lr.draw("dense.lr", 7, 5)[..], &a[..5], "more samples keep the first ones");
        let xs: Vec<f64> = a.iter().map(|v| v.as_f64().unwrap()).collect();
        assert!(xs.iter().all(|x| (1e-4..=1e-2).contains(x)));
        // Log-uniform: about half the draws below the geometric middle 1e-3.
        let below = xs.iter().filter(|x| **x < 1e-3).count();
        assert!((70..130).contains(&below), "{below} of 200 below 1e-3");
        let ints = Dist::Int(1, 3).draw("init.width", 0, 300);
        for k in 1..=3 {
            let n = ints.iter().filter(|v| v.as_i64() == Some(k)).count();
            assert!(n > 60, "{k} drawn {n} times of 300");
        }
        assert_eq!(four_digits(0.000316227766), 0.0003162);
        assert_eq!(four_digits(123456.0), 123500.0);
    }
}
