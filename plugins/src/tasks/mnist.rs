//! MNIST from IDX files, gzipped or not (the paper's appendix B.1 setup: a small training set
//! and a held-out test set).

use std::io::Read;
use std::path::{Path, PathBuf};

use ticketlab_core::data::{Dataset, DatasetInfo, Split, Targets};
use ticketlab_core::plugin::{DatasetPlugin, ParamSpec, ParamType, Params, StageContext};
use ticketlab_core::tensor::HostTensor;
use ticketlab_core::{Error, Result, register_plugin};

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new("path", ParamType::Str, "directory with images-idx3-ubyte[.gz] and labels-idx1-ubyte[.gz]; relative paths resolve against the experiment file, then the working directory").default("\"data/mnist-10k\""),
    ParamSpec::new("train_size", ParamType::Int, "training examples: the first N digits").default("1000").min(1.0),
    ParamSpec::new("test_size", ParamType::Int, "test examples after the training ones; 0 = all the rest").default("0").min(0.0),
];

/// Reads a whole IDX file, decompressing it when it starts with the gzip magic.
fn read_idx(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(|e| Error::data(path, format!("corrupt gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Parses an IDX file with the given magic and number of dimensions; returns dims and payload.
fn parse_idx<'a>(path: &Path, bytes: &'a [u8], magic: u32, ndims: usize) -> Result<(Vec<usize>, &'a [u8])> {
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(Error::data(path, format!("truncated header: {} bytes, expected at least {header}", bytes.len())));
    }
    let found = be_u32(bytes, 0);
    if found != magic {
        return Err(Error::data(path, format!("wrong magic number {found} (expected {magic}); is this the right IDX file?")));
    }
    let dims: Vec<usize> = (0..ndims).map(|i| be_u32(bytes, 4 + 4 * i) as usize).collect();
    let expected: usize = dims.iter().product();
    let payload = &bytes[header..];
    if payload.len() < expected {
        return Err(Error::data(path, format!("truncated data: {} bytes for dims {dims:?}, expected {expected}", payload.len())));
    }
    Ok((dims, &payload[..expected]))
}

/// The first existing of `NAME.gz` and `NAME` in `dir`.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    [dir.join(format!("{name}.gz")), dir.join(name)]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| Error::data(dir.join(name), format!("not found (nor {name}.gz); set `path` to a directory holding the IDX pair")))
}

/// Loads images (scaled to [0, 1]) and labels from an IDX pair in `dir`.
pub fn load_idx_pair(dir: &Path) -> Result<(HostTensor, Vec<u32>)> {
    let (ip, lp) = (find(dir, "images-idx3-ubyte")?, find(dir, "labels-idx1-ubyte")?);
    let (ib, lb) = (read_idx(&ip)?, read_idx(&lp)?);
    let (idims, pixels) = parse_idx(&ip, &ib, 2051, 3)?;
    let (ldims, labels) = parse_idx(&lp, &lb, 2049, 1)?;
    if idims[0] != ldims[0] {
        return Err(Error::data(&lp, format!("{} labels for {} images in {}", ldims[0], idims[0], ip.display())));
    }
    if let Some(bad) = labels.iter().find(|l| **l > 9) {
        return Err(Error::data(&lp, format!("label {bad} is not a digit")));
    }
    let x = pixels.iter().map(|p| f32::from(*p) / 255.0).collect();
    Ok((HostTensor::new(vec![idims[0], idims[1] * idims[2]], x), labels.iter().map(|l| u32::from(*l)).collect()))
}

/// The `mnist` dataset plugin.
#[derive(Default)]
struct Mnist;

impl DatasetPlugin for Mnist {
    fn build(&self, params: &Params, ctx: &StageContext) -> Result<Dataset> {
        let given = PathBuf::from(params.str("path")?);
        let dir = if given.is_absolute() || !ctx.base_dir.join(&given).exists() { given } else { ctx.base_dir.join(given) };
        let (x, labels) = load_idx_pair(&dir)?;
        let n = labels.len();
        let train_size = params.usize("train_size")?;
        let test_size = match params.usize("test_size")? {
            0 => n.saturating_sub(train_size),
            t => t,
        };
        if train_size + test_size > n || test_size == 0 {
            return Err(Error::param("train_size", format!("{train_size} train + {test_size} test examples, but {} holds {n}", dir.display())));
        }
        let split = |lo: usize, hi: usize| Split {
            x: HostTensor::new(vec![hi - lo, 784], x.data[lo * 784..hi * 784].to_vec()),
            y: Targets::Classes { labels: labels[lo..hi].to_vec(), n_classes: 10 },
        };
        Ok(Dataset {
            description: format!("MNIST from {}: {train_size} train / {test_size} test digits", dir.display()),
            info: DatasetInfo { input_shape: vec![784], output_dim: 10, tokens: None },
            train: split(0, train_size),
            test: split(train_size, train_size + test_size),
        })
    }
}

register_plugin!(Dataset, "mnist", "1.0.0", "MNIST digits from an IDX pair (gzipped or not); first N for training", PARAMS, Mnist);

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_data() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist-10k")
    }

    #[test]
    fn loads_the_bundled_digits() {
        let (x, labels) = load_idx_pair(&repo_data()).unwrap();
        assert_eq!(x.shape, vec![10000, 784]);
        assert_eq!(labels.iter().filter(|l| **l == 0).count(), 1001);
        assert!(x.data.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn malformed_files_are_refused_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("tl-mnist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
        let header = |magic: u32, dims: &[u32]| -> Vec<u8> { std::iter::once(magic).chain(dims.iter().copied()).flat_map(u32::to_be_bytes).collect() };
        let mut images = header(2051, &[2, 28, 28]);
        images.extend(vec![0u8; 2 * 784]);
        write("images-idx3-ubyte", &images);
        let mut labels = header(2049, &[3]);
        labels.extend([1, 2, 3]);
        write("labels-idx1-ubyte", &labels);
        let err = load_idx_pair(&dir).unwrap_err().to_string();
        assert!(err.contains("3 labels for 2 images"), "{err}");
        write("labels-idx1-ubyte", &header(2051, &[2]));
        let err = load_idx_pair(&dir).unwrap_err().to_string();
        assert!(err.contains("wrong magic number 2051"), "{err}");
        write("images-idx3-ubyte", &images[..500]);
        let err = load_idx_pair(&dir).unwrap_err().to_string();
        assert!(err.contains("truncated data"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
