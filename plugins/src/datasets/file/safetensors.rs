//! `.safetensors` files (PyTorch's `safetensors.torch.save_file`, numpy's
//! `safetensors.numpy.save_file`), read with the `safetensors` crate. The crate hands out each
//! tensor's raw little-endian bytes; turning them into numbers (`from_le_bytes`, and the two
//! 16-bit float formats, which the standard library does not decode) is done here.

use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use ticketlab_api::budget::Budget;
use ticketlab_api::plugin::registry::suggestion;
use ticketlab_api::{Error, Result};

use super::arrays::{Array, Element, count, require, require_file};
use super::npy::Origin;

/// A whole `.safetensors` file in memory.
pub(crate) struct SafetensorsFile {
    bytes: Vec<u8>,
}

impl SafetensorsFile {
    /// Reads the file at `path` after checking its size against the budget (reported at `key`).
    pub fn open(path: &Path, key: &str, budget: &Budget) -> Result<Self> {
        let size = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
        require_file(budget, key, path, size)?;
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Ok(Self { bytes })
    }

    /// Reads the tensor `origin.name` as `T`; a name the file lacks is an error at the parameter
    /// `param` that gives it, listing the tensors there are.
    pub fn read<T: Element>(
        &self,
        origin: Origin<'_>,
        param: &str,
        budget: &Budget,
    ) -> Result<Array<T>> {
        let Origin { path, name, key } = origin;
        let file = SafeTensors::deserialize(&self.bytes)
            .map_err(|e| Error::data(path, format!("not a readable .safetensors file: {e}")))?;
        let view = file.tensor(name).map_err(|_| {
            let mut names: Vec<&str> = file.names().into_iter().map(String::as_str).collect();
            names.sort_unstable();
            Error::param(
                param,
                format!(
                    "{} holds no tensor `{name}`; {}",
                    path.display(),
                    suggestion(name, &names, "tensors")
                ),
            )
        })?;
        let shape = view.shape().to_vec();
        let elements = count(path, name, &shape)?;
        require::<T>(budget, key, path, name, elements as u64)?;
        let raw = view.data();
        let data: Vec<T> = match view.dtype() {
            Dtype::F64 => decode::<8, T>(raw, f64::from_le_bytes),
            Dtype::F32 => decode::<4, T>(raw, |b| f64::from(f32::from_le_bytes(b))),
            Dtype::F16 => decode::<2, T>(raw, |b| f64::from(f16_to_f32(u16::from_le_bytes(b)))),
            Dtype::BF16 => decode::<2, T>(raw, |b| {
                f64::from(f32::from_bits(u32::from(u16::from_le_bytes(b)) << 16))
            }),
            Dtype::I64 => decode::<8, T>(raw, |b| i64::from_le_bytes(b) as f64),
            Dtype::I32 => decode::<4, T>(raw, |b| f64::from(i32::from_le_bytes(b))),
            Dtype::I16 => decode::<2, T>(raw, |b| f64::from(i16::from_le_bytes(b))),
            Dtype::I8 => decode::<1, T>(raw, |b| f64::from(i8::from_le_bytes(b))),
            Dtype::U64 => decode::<8, T>(raw, |b| u64::from_le_bytes(b) as f64),
            Dtype::U32 => decode::<4, T>(raw, |b| f64::from(u32::from_le_bytes(b))),
            Dtype::U16 => decode::<2, T>(raw, |b| f64::from(u16::from_le_bytes(b))),
            Dtype::U8 | Dtype::BOOL => decode::<1, T>(raw, |b| f64::from(b[0])),
            other => {
                return Err(Error::data(
                    path,
                    format!(
                        "tensor `{name}` has dtype {other:?}, which is not read as numbers; save \
                         it as F32, F64, F16, BF16, an integer type or BOOL"
                    ),
                ));
            }
        };
        Ok(Array { shape, data })
    }
}

/// The values of `raw`, `N` little-endian bytes each, decoded by `f` and converted to `T`.
fn decode<const N: usize, T: Element>(raw: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<T> {
    raw.chunks_exact(N)
        .map(|chunk| {
            let mut bytes = [0u8; N];
            bytes.copy_from_slice(chunk);
            T::from_f64(f(bytes))
        })
        .collect()
}

/// An IEEE 754 half-precision value as `f32` (exact: every half is a float).
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 == 0 { 1.0 } else { -1.0 };
    let exponent = i32::from((h >> 10) & 0x1f);
    let mantissa = f32::from(h & 0x3ff);
    match exponent {
        0 => sign * mantissa * 2f32.powi(-24),
        31 if mantissa == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + mantissa / 1024.0) * 2f32.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::f16_to_f32;

    #[test]
    fn half_floats_decode_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }
}
