//! Structured masks: weights kept or removed in groups rather than one by one.
//!
//! A layer of shape `[out, ...]` is seen as a matrix of `out` rows (its output neurons) and
//! the product of the other dimensions as columns (its inputs); a 1-D layer is one row.
//!
//! - `neurons`: a group is a row, a neuron's incoming weights.
//! - `blocks` with `block: [h, w]`: a group is an h x w tile of that matrix.
//! - `n_of_m` with `n`, `m`: in every m consecutive weights of a row (along the input
//!   dimension, as 2:4 sparsity) the n best are kept; the density is n/m, whatever `rate` says,
//!   and the mask records the rate it realises.
//!
//! A group's score is the sum of its alive members' scores. Groups are ranked best first (ties
//! by layer name, then position) and kept whole while they fit in the count `rate` (and the
//! stage's `distribution`) allows, so the mask keeps at most that many weights; a group that
//! does not fit is passed over for smaller ones of other layers. Weights a mask already removed
//! stay removed.

use ticketlab_api::plugin::Params;
use ticketlab_api::tensor::{HostTensor, MaskSet, NamedTensors};
use ticketlab_api::{Error, Result};

/// How the mask groups weights (the prune stage's `structure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Structure {
    /// Each weight alone.
    Unstructured,
    /// Every output neuron's incoming weights together.
    Neurons,
    /// The n best of every m consecutive weights of a row.
    NOfM {
        /// Kept per group.
        n: usize,
        /// Group length.
        m: usize,
    },
    /// Tiles of `[h, w]`.
    Blocks {
        /// Rows per tile.
        h: usize,
        /// Columns per tile.
        w: usize,
    },
}

/// How many weights may be kept: over all layers, or in each.
pub enum Budget<'a> {
    /// At most this many over every layer.
    Global(usize),
    /// At most `count(layer, layer_total)` in each layer.
    PerLayer(&'a dyn Fn(&str, usize) -> usize),
}

impl Structure {
    /// The structure `params` ask for (`structure`, with `n`, `m` or `block`); absent is
    /// unstructured.
    pub fn of(params: &Params) -> Result<Self> {
        let Some(name) = params.get("structure").map(|_| params.str("structure")).transpose()?
        else {
            return Ok(Structure::Unstructured);
        };
        Ok(match name {
            "unstructured" => Structure::Unstructured,
            "neurons" => Structure::Neurons,
            "n_of_m" => {
                let (n, m) = (params.usize("n")?, params.usize("m")?);
                if n == 0 || n >= m {
                    return Err(Error::param(
                        "n",
                        format!(
                            "is {n} with `m` = {m}: keep 1 to m - 1 of every m (2 of 4 is 2:4 sparsity)"
                        ),
                    ));
                }
                Structure::NOfM { n, m }
            }
            "blocks" => match params.usize_list("block")?.as_slice() {
                &[h, w] if h > 0 && w > 0 => Structure::Blocks { h, w },
                other => {
                    return Err(Error::param(
                        "block",
                        format!("is {other:?}: give a tile as [rows, columns], e.g. [4, 4]"),
                    ));
                }
            },
            other => {
                return Err(Error::param(
                    "structure",
                    format!(
                        "unknown structure `{other}`: expected `unstructured`, `neurons`, `n_of_m` or `blocks`"
                    ),
                ));
            }
        })
    }

    /// The groups (flat indices) of a layer `name` of `shape`; a shape the groups do not tile
    /// is an error naming the layer and the parameter to change.
    fn groups(&self, name: &str, shape: &[usize]) -> Result<Vec<Vec<usize>>> {
        let total: usize = shape.iter().product();
        let rows = if shape.len() >= 2 { shape[0] } else { 1 };
        let cols = total.checked_div(rows).unwrap_or(0);
        let rows_of = |width: usize| -> Vec<Vec<usize>> {
            (0..rows)
                .flat_map(|r| {
                    (0..cols / width)
                        .map(move |c| (0..width).map(move |k| r * cols + c * width + k).collect())
                })
                .collect()
        };
        match *self {
            Structure::Unstructured => Ok((0..total).map(|i| vec![i]).collect()),
            Structure::Neurons => Ok(rows_of(cols.max(1))),
            Structure::NOfM { m, .. } => {
                if cols % m != 0 {
                    return Err(Error::param(
                        "m",
                        format!(
                            "layer `{name}` has {cols} inputs per neuron (shape {shape:?}), not a multiple of m = {m}"
                        ),
                    ));
                }
                Ok(rows_of(m))
            }
            Structure::Blocks { h, w } => {
                if rows % h != 0 || cols % w != 0 {
                    return Err(Error::param(
                        "block",
                        format!(
                            "[{h}, {w}] does not tile layer `{name}`, a {rows} x {cols} matrix (shape {shape:?}); choose a tile that divides both"
                        ),
                    ));
                }
                Ok((0..rows / h)
                    .flat_map(|br| {
                        (0..cols / w).map(move |bc| {
                            (0..h)
                                .flat_map(move |i| {
                                    (0..w).map(move |j| (br * h + i) * cols + bc * w + j)
                                })
                                .collect()
                        })
                    })
                    .collect())
            }
        }
    }
}

/// The mask keeping, of the weights `mask` keeps, the n best of every m of each row.
pub fn select_n_of_m(mask: &MaskSet, scores: &NamedTensors, n: usize, m: usize) -> Result<MaskSet> {
    let structure = Structure::NOfM { n, m };
    let mut out = MaskSet::new();
    for (name, layer) in mask {
        let mut kept = HostTensor::zeros(layer.shape.clone());
        for group in structure.groups(name, &layer.shape)? {
            let mut alive: Vec<usize> =
                group.into_iter().filter(|&i| layer.data[i] != 0.0).collect();
            // Best first; equal scores keep the lower index (`+ 0.0` makes the zeros tie).
            alive.sort_by(|&a, &b| {
                (scores[name].data[b] + 0.0)
                    .total_cmp(&(scores[name].data[a] + 0.0))
                    .then(a.cmp(&b))
            });
            for &i in alive.iter().take(n) {
                kept.data[i] = 1.0;
            }
        }
        out.insert(name.clone(), kept);
    }
    Ok(out)
}

/// The mask keeping whole groups of `structure`, best summed score first, within `budget`.
pub fn select_groups(
    mask: &MaskSet,
    scores: &NamedTensors,
    structure: &Structure,
    budget: Budget<'_>,
) -> Result<MaskSet> {
    // (score, layer, group, alive members)
    let mut groups: Vec<(f64, usize, usize, Vec<usize>)> = Vec::new();
    let names: Vec<&String> = mask.keys().collect();
    for (li, name) in names.iter().enumerate() {
        let layer = &mask[*name];
        for (gi, group) in structure.groups(name, &layer.shape)?.into_iter().enumerate() {
            let alive: Vec<usize> = group.into_iter().filter(|&i| layer.data[i] != 0.0).collect();
            if alive.is_empty() {
                continue;
            }
            let score = alive.iter().map(|&i| f64::from(scores[*name].data[i])).sum::<f64>() + 0.0;
            groups.push((score, li, gi, alive));
        }
    }
    groups.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut out: MaskSet =
        mask.iter().map(|(k, m)| (k.clone(), HostTensor::zeros(m.shape.clone()))).collect();
    let mut room: Vec<usize> = match &budget {
        Budget::Global(count) => vec![*count],
        Budget::PerLayer(count) => names.iter().map(|n| count(n, mask[*n].len())).collect(),
    };
    for (_, li, _, alive) in groups {
        let slot = if matches!(budget, Budget::Global(_)) { 0 } else { li };
        if alive.len() > room[slot] {
            continue;
        }
        room[slot] -= alive.len();
        let layer = out.get_mut(names[li]).expect("same keys");
        for i in alive {
            layer.data[i] = 1.0;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(shape: Vec<usize>) -> HostTensor {
        HostTensor::new(shape.clone(), vec![1.0; shape.iter().product()])
    }

    #[test]
    fn two_of_four_keeps_the_two_best_of_every_four_inputs() {
        let mask: MaskSet = [("w".to_string(), layer(vec![2, 8]))].into();
        let s: Vec<f32> = vec![1., 4., 3., 2., 0., 0., 5., -1., 9., 8., 7., 6., 1., 2., 3., 4.];
        let scores: NamedTensors = [("w".to_string(), HostTensor::new(vec![2, 8], s))].into();
        let m = select_n_of_m(&mask, &scores, 2, 4).unwrap();
        assert_eq!(
            m["w"].data,
            vec![0., 1., 1., 0., 1., 0., 1., 0., 1., 1., 0., 0., 0., 0., 1., 1.]
        );
        let err = select_n_of_m(&[("v".to_string(), layer(vec![2, 6]))].into(), &scores, 2, 4)
            .unwrap_err()
            .to_string();
        assert!(err.contains("parameter `m`") && err.contains("`v`"), "{err}");
    }

    #[test]
    fn neurons_and_blocks_are_kept_or_removed_whole_by_their_summed_scores() {
        let mask: MaskSet = [("w".to_string(), layer(vec![4, 4]))].into();
        let s: Vec<f32> =
            (0..16).map(|i| [1.0, 9.0, 0.0, 5.0][i / 4] + (i % 4) as f32 * 0.1).collect();
        let scores: NamedTensors = [("w".to_string(), HostTensor::new(vec![4, 4], s))].into();
        let m = select_groups(&mask, &scores, &Structure::Neurons, Budget::Global(9)).unwrap();
        // Rows 1 and 3 have the highest sums; a third row would exceed 9 weights.
        let rows: Vec<f32> = (0..4).map(|r| m["w"].data[r * 4..r * 4 + 4].iter().sum()).collect();
        assert_eq!(rows, vec![0.0, 4.0, 0.0, 4.0]);
        let b = select_groups(&mask, &scores, &Structure::Blocks { h: 2, w: 2 }, Budget::Global(8))
            .unwrap();
        // The two tiles of rows 0-1 sum to more than those of rows 2-3, and both fit.
        assert_eq!(&b["w"].data[..8], &[1.0; 8]);
        assert_eq!(&b["w"].data[8..], &[0.0; 8]);
        let err =
            select_groups(&mask, &scores, &Structure::Blocks { h: 3, w: 2 }, Budget::Global(8))
                .unwrap_err()
                .to_string();
        assert!(err.contains("parameter `block`"), "{err}");
    }
}
