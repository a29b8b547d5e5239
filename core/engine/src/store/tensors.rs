//! Named tensors to and from safetensors bytes (f32 weights, u32 labels), little endian.

use std::collections::{BTreeMap, HashMap};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use ticketlab_api::tensor::{HostTensor, NamedTensors};

/// One tensor to write.
pub(crate) enum Entry<'a> {
    /// f32 values.
    F32(&'a HostTensor),
    /// u32 values with a shape.
    U32(Vec<usize>, &'a [u32]),
}

/// Serialises `entries` (names must be unique) with optional string metadata.
pub(crate) fn to_bytes(
    entries: Vec<(String, Entry<'_>)>,
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>, String> {
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(entries.len());
    for (name, e) in entries {
        match e {
            Entry::F32(t) => owned.push((
                name,
                Dtype::F32,
                t.shape.clone(),
                t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )),
            Entry::U32(shape, v) => owned.push((
                name,
                Dtype::U32,
                shape,
                v.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )),
        }
    }
    let mut views = Vec::with_capacity(owned.len());
    for (name, dtype, shape, bytes) in &owned {
        let view = TensorView::new(*dtype, shape.clone(), bytes)
            .map_err(|e| format!("tensor `{name}`: {e:?}"))?;
        views.push((name.as_str(), view));
    }
    safetensors::serialize(views, &metadata).map_err(|e| format!("{e:?}"))
}

/// The f32 tensors of a named set, as entries with `prefix` prepended to each name.
pub(crate) fn entries<'a>(prefix: &str, tensors: &'a NamedTensors) -> Vec<(String, Entry<'a>)> {
    tensors.iter().map(|(n, t)| (format!("{prefix}{n}"), Entry::F32(t))).collect()
}

/// A parsed safetensors file.
pub(crate) struct Read<'a> {
    st: SafeTensors<'a>,
    metadata: Option<HashMap<String, String>>,
}

impl<'a> Read<'a> {
    /// Parses `bytes`.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| format!("not a safetensors file ({e:?})"))?;
        let metadata = meta.metadata().clone();
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| format!("not a safetensors file ({e:?})"))?;
        Ok(Self { st, metadata })
    }

    /// A metadata entry.
    pub(crate) fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.as_ref().and_then(|m| m.get(key)).map(String::as_str)
    }

    /// Every f32 tensor whose name starts with `prefix`, with the prefix removed.
    pub(crate) fn f32_with_prefix(&self, prefix: &str) -> Result<NamedTensors, String> {
        let mut out = BTreeMap::new();
        for name in self.st.names() {
            if let Some(rest) = name.strip_prefix(prefix) {
                out.insert(rest.to_string(), self.f32(name)?);
            }
        }
        Ok(out)
    }

    /// The f32 tensor `name`.
    pub(crate) fn f32(&self, name: &str) -> Result<HostTensor, String> {
        let view = self.st.tensor(name).map_err(|_| format!("tensor `{name}` is missing"))?;
        if view.dtype() != Dtype::F32 {
            return Err(format!("tensor `{name}` is {:?}, expected F32", view.dtype()));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let shape = view.shape().to_vec();
        if shape.iter().product::<usize>() != data.len() {
            return Err(format!("tensor `{name}`: shape {shape:?} does not match its data"));
        }
        Ok(HostTensor { shape, data })
    }

    /// The u32 tensor `name` (values only).
    pub(crate) fn u32(&self, name: &str) -> Result<Vec<u32>, String> {
        let view = self.st.tensor(name).map_err(|_| format!("tensor `{name}` is missing"))?;
        if view.dtype() != Dtype::U32 {
            return Err(format!("tensor `{name}` is {:?}, expected U32", view.dtype()));
        }
        Ok(view
            .data()
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_bits_labels_and_metadata() {
        let a = HostTensor::new(vec![2, 3], vec![0.1, -0.0, f32::MIN_POSITIVE, 1e30, -7.5, 3.0]);
        let e = HostTensor::new(vec![0], vec![]);
        let labels = [3u32, 1, 4];
        let meta = HashMap::from([("step".to_string(), "12".to_string())]);
        let bytes = to_bytes(
            vec![
                ("w/a".into(), Entry::F32(&a)),
                ("w/e".into(), Entry::F32(&e)),
                ("y".into(), Entry::U32(vec![3], &labels)),
            ],
            Some(meta),
        )
        .unwrap();
        let r = Read::parse(&bytes).unwrap();
        let w = r.f32_with_prefix("w/").unwrap();
        assert_eq!(
            w["a"].data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            a.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(w["e"], e);
        assert_eq!(r.u32("y").unwrap(), labels);
        assert_eq!(r.meta("step"), Some("12"));
        assert!(r.f32("y").is_err());
        assert!(Read::parse(b"garbage").is_err());
    }
}
