//! What every reader of the `file` dataset returns: numeric arrays in row-major order, converted
//! from the file's own element type, with what is needed to point at a bad value (a CSV line, a
//! numpy-style index) and to refuse a file too large for the memory budget before reading it.

use std::path::{Path, PathBuf};

use ticketlab_api::budget::{Budget, human};
use ticketlab_api::{Error, Result};

/// The element types arrays are read as: `f32` for inputs (as the engine trains on them), `f64`
/// for targets (exact for every integer label, so that `2.5` is told apart from `2`).
pub(crate) trait Element: Copy + Send + 'static {
    /// Bytes of one element in memory.
    const BYTES: u64;
    /// Converts a value read from the file (every integer and float type widens to `f64`).
    fn from_f64(v: f64) -> Self;
    /// The value as `f64`.
    fn to_f64(self) -> f64;
}

impl Element for f32 {
    const BYTES: u64 = 4;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Element for f64 {
    const BYTES: u64 = 8;
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
}

/// A numeric array read from a file: row-major (C order) values of shape `shape`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Array<T> {
    /// The shape as stored (first axis: examples).
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<T>,
}

/// Inputs and targets of one file (or `.npy` pair), before they are turned into a split.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Examples {
    /// Inputs, `[n, ...]` (a 1-D array is `n` examples of one value).
    pub x: Array<f32>,
    /// Targets, `[n]` or `[n, ...]`.
    pub y: Array<f64>,
    /// For a table: the file line (1-based) of each example, for errors.
    pub lines: Option<Vec<u64>>,
    /// For a table: the feature columns, in the order of `x`'s values.
    pub columns: Option<Vec<String>>,
    /// How errors name the targets: `y` (an array's name) or the label column.
    pub y_name: String,
    /// The file holding the targets, where errors about them point: the file itself, or a
    /// `.npy` input file's `y_path`.
    pub y_file: PathBuf,
}

impl Examples {
    /// Where example `i` is, for an error: `line 12` of a table, `y[11]` of an array.
    pub fn locate_y(&self, i: usize) -> String {
        match &self.lines {
            Some(lines) => format!("line {}, column `{}`", lines[i], self.y_name),
            None => format!("{}[{}]", self.y_name, i),
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.x.shape.first().copied().unwrap_or(0)
    }
}

/// `[3, 1]` for the flat index of that element of an array of `shape`.
pub(crate) fn unravel(mut flat: usize, shape: &[usize]) -> String {
    let mut index = vec![0; shape.len()];
    for (slot, &d) in index.iter_mut().zip(shape).rev() {
        if d > 0 {
            *slot = flat % d;
            flat /= d;
        }
    }
    format!("{index:?}")
}

/// The number of elements of `shape`, or an error if it overflows.
pub(crate) fn count(path: &Path, name: &str, shape: &[usize]) -> Result<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(|| {
        Error::data(path, format!("`{name}` has shape {shape:?}, too large to be real"))
    })
}

/// Refuses reading `elements` values of `name` from `path` as `T` when they would not fit the
/// budget (counting the copy made when the examples are split), reported at `key`.
pub(crate) fn require<T: Element>(
    budget: &Budget,
    key: &str,
    path: &Path,
    name: &str,
    elements: u64,
) -> Result<()> {
    let bytes = elements.saturating_mul(T::BYTES).saturating_mul(2);
    budget.require(
        key,
        &format!("the {elements} values of `{name}` in {} (read, then split)", path.display()),
        bytes,
        "use a smaller file, or raise `--max-memory`",
    )
}

/// Refuses holding a whole file of `size` bytes in memory when it would not fit the budget.
pub(crate) fn require_file(budget: &Budget, key: &str, path: &Path, size: u64) -> Result<()> {
    budget.require(
        key,
        &format!("reading {} ({})", path.display(), human(size)),
        size,
        "use a smaller file, or raise `--max-memory`",
    )
}

/// The first value of `array` that is NaN or infinite, as an error naming where it is.
pub(crate) fn require_finite<T: Element>(path: &Path, name: &str, array: &Array<T>) -> Result<()> {
    match array.data.iter().position(|v| !v.to_f64().is_finite()) {
        None => Ok(()),
        Some(i) => {
            let v = array.data[i].to_f64();
            // A finite float64 beyond float32's range becomes an infinity when read as float32.
            let range = if T::BYTES == 4 && v.is_infinite() {
                " (as float32: the file's value may be beyond float32's range, ±3.4e38)"
            } else {
                ""
            };
            Err(Error::data(
                path,
                format!(
                    "{name}{} is {v}{range}; every value must be finite: drop or fill the rows with missing values",
                    unravel(i, &array.shape),
                ),
            ))
        }
    }
}

/// Reorders `data`, stored in Fortran order (first axis fastest) for `shape`, into C order.
pub(crate) fn fortran_to_c<T: Copy>(data: Vec<T>, shape: &[usize]) -> Vec<T> {
    if shape.len() < 2 || data.is_empty() {
        return data;
    }
    // Stride of each axis in the Fortran layout.
    let mut strides = vec![1usize; shape.len()];
    for k in 1..shape.len() {
        strides[k] = strides[k - 1] * shape[k - 1];
    }
    let mut index = vec![0usize; shape.len()];
    let mut out = Vec::with_capacity(data.len());
    for _ in 0..data.len() {
        out.push(data[index.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>()]);
        // Advance the C-order index: last axis fastest.
        for k in (0..shape.len()).rev() {
            index[k] += 1;
            if index[k] < shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_order_becomes_c_order() {
        // [[0, 1, 2], [3, 4, 5]] stored column by column.
        assert_eq!(fortran_to_c(vec![0, 3, 1, 4, 2, 5], &[2, 3]), vec![0, 1, 2, 3, 4, 5]);
        // A [2, 2, 2] array: C index (i, j, k) holds 4i + 2j + k.
        let c: Vec<usize> = (0..8).collect();
        let mut f = vec![0; 8];
        for i in 0..2 {
            for j in 0..2 {
                for k in 0..2 {
                    f[i + 2 * j + 4 * k] = 4 * i + 2 * j + k;
                }
            }
        }
        assert_eq!(fortran_to_c(f, &[2, 2, 2]), c);
    }

    #[test]
    fn flat_indices_unravel_as_numpy_does() {
        assert_eq!(unravel(5, &[2, 3]), "[1, 2]");
        assert_eq!(unravel(7, &[10]), "[7]");
    }
}
