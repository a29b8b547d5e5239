//! Named weights in the files other tools read and write: `.safetensors` (PyTorch's
//! `safetensors.torch.save_file` / `load_file`) and `.npz` (NumPy's `np.savez` / `np.load`).
//!
//! `ticketlab export` writes a run's weights and masks in them, and a model stage's `weights`
//! parameter starts a network from one. Values are float32, row-major, little endian, names as
//! the architecture gives them (`layers.0.weight`, PyTorch's `state_dict` style). The formats are
//! read and written by the `safetensors`, `npyz` and `zip` crates; nothing here parses them.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Cursor, Read as _, Write as _};
use std::path::Path;

use npyz::WriterBuilder as _;
use ticketlab_api::tensor::{HostTensor, NamedTensors};
use ticketlab_api::{Error, Result};

use crate::store::tensors::{Entry, Read, to_bytes};

/// A weights file format, from the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFormat {
    /// `.safetensors`.
    Safetensors,
    /// `.npz`.
    Npz,
}

impl WeightsFormat {
    /// The format `path`'s extension names; anything else is refused, naming the two.
    pub fn of(path: &Path) -> Result<Self> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("safetensors") => Ok(Self::Safetensors),
            Some("npz") => Ok(Self::Npz),
            _ => Err(Error::data(
                path,
                "is neither a .safetensors nor a .npz file: name it with one of those extensions",
            )),
        }
    }
}

/// The bytes of a weights file holding `tensors` (in order) in `format`; `metadata` goes into a
/// safetensors header (an `.npz` has no place for it).
pub fn to_file_bytes(
    format: WeightsFormat,
    tensors: &[(String, &HostTensor)],
    metadata: BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    match format {
        WeightsFormat::Safetensors => {
            let entries = tensors.iter().map(|(n, t)| (n.clone(), Entry::F32(t))).collect();
            let metadata: HashMap<String, String> = metadata.into_iter().collect();
            to_bytes(entries, Some(metadata)).map_err(Error::Internal)
        }
        WeightsFormat::Npz => npz_bytes(tensors),
    }
}

/// Every array of the weights file at `path`, as float32 (float64 arrays are narrowed).
pub fn read(path: &Path) -> Result<NamedTensors> {
    match WeightsFormat::of(path)? {
        WeightsFormat::Safetensors => {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            let file = Read::parse(&bytes).map_err(|e| Error::data(path, e))?;
            file.f32_with_prefix("").map_err(|e| {
                Error::data(
                    path,
                    format!("{e}; save the weights as float32 (`.float()` in PyTorch)"),
                )
            })
        }
        WeightsFormat::Npz => read_npz(path),
    }
}

/// A zip of one `NAME.npy` per tensor, stored uncompressed, as `np.savez` writes.
fn npz_bytes(tensors: &[(String, &HostTensor)]) -> Result<Vec<u8>> {
    let failed = |e: &dyn std::fmt::Display| Error::Internal(format!("cannot write an .npz: {e}"));
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    for (name, tensor) in tensors {
        zip.start_file(npyz::npz::file_name_from_array_name(name), options)
            .map_err(|e| failed(&e))?;
        let shape: Vec<u64> = tensor.shape.iter().map(|&d| d as u64).collect();
        let mut npy = Vec::new();
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&shape)
            .writer(&mut npy)
            .begin_nd()
            .map_err(|e| failed(&e))?;
        writer.extend(tensor.data.iter().copied()).map_err(|e| failed(&e))?;
        writer.finish().map_err(|e| failed(&e))?;
        zip.write_all(&npy).map_err(|e| failed(&e))?;
    }
    Ok(zip.finish().map_err(|e| failed(&e))?.into_inner())
}

fn read_npz(path: &Path) -> Result<NamedTensors> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| Error::data(path, format!("not a readable .npz (zip) archive: {e}")))?;
    let mut out = NamedTensors::new();
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| Error::data(path, format!("entry {i} cannot be read: {e}")))?;
        let file_name = entry.name().map(|n| n.to_string()).unwrap_or_default();
        let Some(name) = npyz::npz::array_name_from_file_name(&file_name).map(str::to_string)
        else {
            continue;
        };
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| Error::data(path, format!("`{name}`: {e}")))?;
        out.insert(
            name.clone(),
            npy_tensor(&bytes).map_err(|e| Error::data(path, format!("`{name}`: {e}")))?,
        );
    }
    Ok(out)
}

/// One `.npy` array of float32 or float64 in C order.
fn npy_tensor(bytes: &[u8]) -> std::result::Result<HostTensor, String> {
    let npy = npyz::NpyFile::new(bytes).map_err(|e| format!("not a .npy array: {e}"))?;
    if npy.order() != npyz::Order::C {
        return Err("is in Fortran order: save it with np.ascontiguousarray".into());
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let dtype = npy.dtype();
    let float_bytes = match &dtype {
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Float => t.size_field(),
        _ => 0,
    };
    let data: Vec<f32> = match float_bytes {
        4 => npy.into_vec::<f32>().map_err(|e| e.to_string())?,
        8 => npy
            .into_vec::<f64>()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        _ => {
            return Err(format!("has dtype {}; weights must be float32 or float64", dtype.descr()));
        }
    };
    Ok(HostTensor { shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NamedTensors {
        NamedTensors::from([
            (
                "layers.0.weight".into(),
                HostTensor::new(vec![2, 3], vec![0.5, -1.0, 0.0, 3.25, 1e-30, -0.0]),
            ),
            ("layers.1.bias".into(), HostTensor::new(vec![2], vec![7.0, f32::MIN_POSITIVE])),
        ])
    }

    fn round_trip(ext: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("w.{ext}"));
        let tensors = sample();
        let list: Vec<(String, &HostTensor)> =
            tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
        let bytes =
            to_file_bytes(WeightsFormat::of(&path).unwrap(), &list, BTreeMap::new()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.keys().collect::<Vec<_>>(), tensors.keys().collect::<Vec<_>>());
        for (name, t) in &tensors {
            assert_eq!(back[name].shape, t.shape, "{name}");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&back[name].data), bits(&t.data), "{name}");
        }
    }

    #[test]
    fn safetensors_round_trip_bit_for_bit() {
        round_trip("safetensors");
    }

    #[test]
    fn npz_round_trip_bit_for_bit() {
        round_trip("npz");
    }

    #[test]
    fn other_extensions_are_refused_with_the_two_formats() {
        let e = WeightsFormat::of(Path::new("w.pt")).unwrap_err().to_string();
        assert!(e.contains(".safetensors") && e.contains(".npz"), "{e}");
    }
}
