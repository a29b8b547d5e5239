//! `.npy` files and `.npz` archives, as numpy's `np.save`, `np.savez` and
//! `np.savez_compressed` write them: the `npyz` crate reads the header (dtype, byte order, shape,
//! Fortran order) and the values, and the `zip` crate opens the archive (stored or deflated
//! entries). Nothing here parses the formats by hand.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use npyz::{DType, NpyFile, Order, TypeChar};
use ticketlab_api::budget::Budget;
use ticketlab_api::plugin::registry::suggestion;
use ticketlab_api::{Error, Result};
use zip::ZipArchive;

use super::arrays::{Array, Element, count, fortran_to_c, require};

/// The element types a `.npy` array may have, for errors.
const SUPPORTED: &str = "float32, float64, int8 to int64, uint8 to uint64 or bool";

/// Where an array comes from: its file, its name in errors, and the parameter that gives the
/// file (where a file too large for the memory budget is reported).
#[derive(Clone, Copy)]
pub(crate) struct Origin<'a> {
    /// The file.
    pub path: &'a Path,
    /// The array's name in errors (`x`, `y`, or an `.npz` key).
    pub name: &'a str,
    /// The parameter naming the file.
    pub key: &'a str,
}

/// Reads the one array of the `.npy` file at `origin.path` as `T`.
pub(crate) fn read_npy<T: Element>(origin: Origin<'_>, budget: &Budget) -> Result<Array<T>> {
    let file = File::open(origin.path).map_err(|e| Error::io(origin.path, e))?;
    read_stream(BufReader::new(file), origin, budget)
}

/// An open `.npz` archive and the names of the arrays it holds.
pub(crate) struct Npz {
    archive: ZipArchive<BufReader<File>>,
    names: Vec<String>,
}

impl Npz {
    /// Opens the archive at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let archive = ZipArchive::new(BufReader::new(file))
            .map_err(|e| Error::data(path, format!("not a readable .npz (zip) archive: {e}")))?;
        let names = archive
            .file_names()
            .filter_map(|n| n.ok())
            .filter_map(|n| npyz::npz::array_name_from_file_name(&n).map(str::to_string))
            .collect();
        Ok(Self { archive, names })
    }

    /// Reads the array `origin.name` as `T`; a name the archive lacks is an error at the
    /// parameter `param` that gives it, listing the arrays there are.
    pub fn read<T: Element>(
        &mut self,
        origin: Origin<'_>,
        param: &str,
        budget: &Budget,
    ) -> Result<Array<T>> {
        let entry = npyz::npz::file_name_from_array_name(origin.name);
        if !self.names.iter().any(|n| n == origin.name) {
            let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
            return Err(Error::param(
                param,
                format!(
                    "{} holds no array `{}`; {}",
                    origin.path.display(),
                    origin.name,
                    suggestion(origin.name, &names, "arrays")
                ),
            ));
        }
        let file = self.archive.by_name(&entry).map_err(|e| {
            Error::data(origin.path, format!("cannot read `{entry}` from the archive: {e}"))
        })?;
        read_stream(BufReader::new(file), origin, budget)
    }
}

/// Reads one npy stream (a file, or an archive entry) as `T`, checking its size against the
/// budget from the header, before reading the values.
fn read_stream<T: Element, R: Read>(
    reader: R,
    origin: Origin<'_>,
    budget: &Budget,
) -> Result<Array<T>> {
    let Origin { path, name, key } = origin;
    let npy = NpyFile::new(reader)
        .map_err(|e| Error::data(path, format!("`{name}` is not a readable .npy array: {e}")))?;
    let shape = npy
        .shape()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<Vec<usize>, _>>()
        .map_err(|_| Error::data(path, format!("`{name}` is too large to be real")))?;
    let elements = count(path, name, &shape)?;
    require::<T>(budget, key, path, name, elements as u64)?;
    let order = npy.order();
    let dtype = npy.dtype();
    let DType::Plain(ty) = &dtype else {
        return Err(unsupported(path, name, &dtype));
    };
    let truncated = |e: std::io::Error| {
        Error::data(path, format!("`{name}` (shape {shape:?}) cannot be read whole: {e}"))
    };
    // Reads the values as the Rust type `$src` (which must match the dtype's size; npyz handles
    // the byte order) and widens each to `T`.
    macro_rules! values {
        ($src:ty, $to_f64:expr) => {{
            let to_f64: fn($src) -> f64 = $to_f64;
            let reader = npy.data::<$src>().map_err(|e| {
                Error::data(path, format!("`{name}` cannot be read as {}: {e}", ty))
            })?;
            let mut out = Vec::with_capacity(elements);
            for v in reader {
                out.push(T::from_f64(to_f64(v.map_err(truncated)?)));
            }
            out
        }};
    }
    let data: Vec<T> = match (ty.type_char(), ty.size_field()) {
        (TypeChar::Float, 4) => values!(f32, f64::from),
        (TypeChar::Float, 8) => values!(f64, |v| v),
        (TypeChar::Int, 1) => values!(i8, f64::from),
        (TypeChar::Int, 2) => values!(i16, f64::from),
        (TypeChar::Int, 4) => values!(i32, f64::from),
        (TypeChar::Int, 8) => values!(i64, |v| v as f64),
        (TypeChar::Uint, 1) => values!(u8, f64::from),
        (TypeChar::Uint, 2) => values!(u16, f64::from),
        (TypeChar::Uint, 4) => values!(u32, f64::from),
        (TypeChar::Uint, 8) => values!(u64, |v| v as f64),
        (TypeChar::Bool, 1) => values!(bool, |v| f64::from(u8::from(v))),
        _ => return Err(unsupported(path, name, &dtype)),
    };
    let data = match order {
        Order::C => data,
        Order::Fortran => fortran_to_c(data, &shape),
    };
    Ok(Array { shape, data })
}

/// The error for an array of a dtype this reader does not convert.
fn unsupported(path: &Path, name: &str, dtype: &DType) -> Error {
    Error::data(
        path,
        format!(
            "`{name}` has dtype `{}`, which is not read as numbers; save it as {SUPPORTED} \
             (e.g. `x.astype(np.float32)`; class names must be integers 0..K-1)",
            dtype.descr().trim_matches('\'')
        ),
    )
}
