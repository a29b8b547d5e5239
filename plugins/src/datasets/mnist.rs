//! MNIST from IDX files, gzipped or not (the paper's appendix B.1 setup: a small training set
//! and a held-out test set).
//!
//! `path` is a directory holding `images-idx3-ubyte[.gz]` and `labels-idx1-ubyte[.gz]`
//! (gzip is detected by the magic bytes `1f 8b`, not by the name). The default,
//! `data/mnist-10k`, is the 10,000 real digits bundled with the repository. An absolute path is
//! used as is; a relative one is looked up against the experiment file's directory, then each
//! of its parent directories (so experiments in `experiments/` find the workspace's `data/`),
//! then the working directory. The first `train_size` digits are the training split, the next
//! `test_size` (default: all the rest) the test split; pixels are scaled to `[0, 1]` with no
//! normalisation, as the reference code's `ToTensor()`. Inputs are `[n, 784]`, 10 classes.

use std::io::Read;
use std::path::{Path, PathBuf};

use ticketlab_api::data::{Dataset, DatasetInfo, DatasetShape, Split, Targets};
use ticketlab_api::plugin::{DatasetPlugin, ParamSpec, ParamType, Params, StageContext};
use ticketlab_api::tensor::HostTensor;
use ticketlab_api::{Error, Result, register_plugin};

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new("path", ParamType::Str, "directory with images-idx3-ubyte[.gz] and labels-idx1-ubyte[.gz]; a relative path is looked up from the experiment file's directory upwards, then in the working directory").default("\"data/mnist-10k\""),
    ParamSpec::new("train_size", ParamType::Int, "training examples: the first N digits").default("1000").min(1.0),
    ParamSpec::new("test_size", ParamType::Int, "test examples after the training ones; 0 = all the rest").default("0").min(0.0),
];

/// Reads a whole IDX file, decompressing it when it starts with the gzip magic.
fn read_idx(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::data(path, format!("corrupt gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Parses an IDX file with the given magic and number of dimensions; returns dims and payload.
fn parse_idx<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: u32,
    ndims: usize,
) -> Result<(Vec<usize>, &'a [u8])> {
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(Error::data(
            path,
            format!("truncated header: {} bytes, expected at least {header}", bytes.len()),
        ));
    }
    let found = be_u32(bytes, 0);
    if found != magic {
        return Err(Error::data(
            path,
            format!("wrong magic number {found} (expected {magic}); is this the right IDX file?"),
        ));
    }
    let dims: Vec<usize> = (0..ndims).map(|i| be_u32(bytes, 4 + 4 * i) as usize).collect();
    let expected = dims.iter().try_fold(1usize, |a, d| a.checked_mul(*d)).ok_or_else(|| {
        Error::data(path, format!("dimensions {dims:?} are too large to be real"))
    })?;
    let payload = &bytes[header..];
    if payload.len() < expected {
        return Err(Error::data(
            path,
            format!(
                "truncated data: {} bytes for dims {dims:?}, expected {expected}",
                payload.len()
            ),
        ));
    }
    Ok((dims, &payload[..expected]))
}

/// The first existing of `NAME.gz` and `NAME` in `dir`.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    [dir.join(format!("{name}.gz")), dir.join(name)].into_iter().find(|p| p.is_file()).ok_or_else(
        || {
            Error::data(
                dir.join(name),
                format!(
                    "not found (nor {name}.gz); set `path` to a directory holding the IDX pair"
                ),
            )
        },
    )
}

/// Loads images (scaled to [0, 1]) and labels from an IDX pair in `dir`.
pub fn load_idx_pair(dir: &Path) -> Result<(HostTensor, Vec<u32>)> {
    let (ip, lp) = (find(dir, "images-idx3-ubyte")?, find(dir, "labels-idx1-ubyte")?);
    let (ib, lb) = (read_idx(&ip)?, read_idx(&lp)?);
    let (idims, pixels) = parse_idx(&ip, &ib, 2051, 3)?;
    let (ldims, labels) = parse_idx(&lp, &lb, 2049, 1)?;
    if idims[0] != ldims[0] {
        return Err(Error::data(
            &lp,
            format!("{} labels for {} images in {}", ldims[0], idims[0], ip.display()),
        ));
    }
    if let Some(bad) = labels.iter().find(|l| **l > 9) {
        return Err(Error::data(&lp, format!("label {bad} is not a digit")));
    }
    let x = pixels.iter().map(|p| f32::from(*p) / 255.0).collect();
    Ok((
        HostTensor::new(vec![idims[0], idims[1] * idims[2]], x),
        labels.iter().map(|l| u32::from(*l)).collect(),
    ))
}

/// Finds the data directory `given`: as is when absolute, else under `base_dir` or one of its
/// parents, else under the working directory.
pub fn resolve(given: &Path, base_dir: &Path) -> Result<PathBuf> {
    if given.is_absolute() {
        return Ok(given.to_path_buf());
    }
    let base = std::fs::canonicalize(base_dir).unwrap_or_else(|_| base_dir.to_path_buf());
    let mut tried = Vec::new();
    for dir in base.ancestors().chain(std::iter::once(Path::new("."))) {
        let candidate = dir.join(given);
        if candidate.is_dir() {
            return Ok(candidate);
        }
        tried.push(candidate.display().to_string());
    }
    Err(Error::data(
        given,
        format!(
            "no such data directory (looked in {}); set `path` to the directory holding the IDX pair",
            tried.join(", ")
        ),
    ))
}

/// The `mnist` dataset plugin.
#[derive(Default)]
struct Mnist;

impl DatasetPlugin for Mnist {
    /// The first digits of the file, in order: no randomness.
    fn uses_seed(&self, _params: &Params) -> bool {
        false
    }

    /// 784 pixels in, 10 classes out; the test split counts as empty when it is "the rest" of a
    /// file not read yet, so the estimate is a lower bound then.
    fn shape(&self, params: &Params) -> Option<DatasetShape> {
        let info = DatasetInfo { input_shape: vec![784], output_dim: 10, tokens: None };
        Some(DatasetShape {
            info,
            train: params.usize("train_size").ok()?,
            test: params.usize("test_size").ok()?,
        })
    }

    fn build(&self, params: &Params, ctx: &StageContext) -> Result<Dataset> {
        let dir = resolve(Path::new(params.str("path")?), &ctx.runtime.base_dir)?;
        let (x, labels) = load_idx_pair(&dir)?;
        let n = labels.len();
        let train_size = params.usize("train_size")?;
        let test_size = match params.usize("test_size")? {
            0 => n.saturating_sub(train_size),
            t => t,
        };
        if train_size >= n {
            return Err(Error::param(
                "train_size",
                format!(
                    "{train_size} training digits leave none for testing: {} holds {n}",
                    dir.display()
                ),
            ));
        }
        if train_size + test_size > n {
            return Err(Error::param(
                "test_size",
                format!(
                    "{train_size} train + {test_size} test digits, but {} holds {n}",
                    dir.display()
                ),
            ));
        }
        let width = x.shape[1];
        let split = |lo: usize, hi: usize| Split {
            x: HostTensor::new(vec![hi - lo, width], x.data[lo * width..hi * width].to_vec()),
            y: Targets::Classes { labels: labels[lo..hi].to_vec(), n_classes: 10 },
        };
        Ok(Dataset {
            description: format!(
                "MNIST from {}: {train_size} train / {test_size} test digits",
                dir.display()
            ),
            info: DatasetInfo { input_shape: vec![width], output_dim: 10, tokens: None },
            train: split(0, train_size),
            test: split(train_size, train_size + test_size),
        })
    }
}

register_plugin!(
    Dataset,
    "mnist",
    "1.0.0",
    "MNIST digits from an IDX pair (gzipped or not); first N for training",
    PARAMS,
    Mnist
);

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn repo_data() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist-10k")
    }

    fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
        std::iter::once(magic).chain(dims.iter().copied()).flat_map(u32::to_be_bytes).collect()
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tl-mnist-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn loads_the_bundled_digits() {
        let (x, labels) = load_idx_pair(&repo_data()).unwrap();
        assert_eq!(x.shape, vec![10000, 784]);
        assert_eq!(labels.iter().filter(|l| **l == 0).count(), 1001);
        assert!(x.data.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(x.data.contains(&1.0), "pixels are scaled by 255, not normalised");
    }

    #[test]
    fn the_default_path_is_found_from_the_experiments_directory() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let ctx = StageContext::new("data", 0, root.join("experiments"));
        let p = Params::new()
            .with("path", "data/mnist-10k")
            .with("train_size", 1000)
            .with("test_size", 0);
        let d = Mnist.build(&p, &ctx).unwrap();
        assert_eq!((d.train.len(), d.test.len()), (1000, 9000));
        assert_eq!(d.train.x.shape, vec![1000, 784]);
        let absolute = std::fs::canonicalize(repo_data()).unwrap();
        let p = p
            .with("path", absolute.to_str().unwrap())
            .with("train_size", 100)
            .with("test_size", 50);
        let d = Mnist.build(&p, &ctx).unwrap();
        assert_eq!((d.train.len(), d.test.len()), (100, 50));
        let err =
            Mnist.build(&p.clone().with("path", "data/nowhere"), &ctx).unwrap_err().to_string();
        assert!(err.contains("data/nowhere") && err.contains("no such data directory"), "{err}");
        let err = Mnist.build(&p.clone().with("train_size", 10000), &ctx).unwrap_err().to_string();
        assert!(err.contains("train_size"), "{err}");
        let err = Mnist.build(&p.with("test_size", 9950), &ctx).unwrap_err().to_string();
        assert!(err.contains("test_size"), "{err}");
    }

    #[test]
    fn gzipped_and_plain_files_read_the_same() {
        let dir = scratch("gz");
        let mut images = header(2051, &[2, 28, 28]);
        images.extend((0..2 * 784).map(|i| (i % 256) as u8));
        let mut labels = header(2049, &[2]);
        labels.extend([7, 3]);
        std::fs::write(dir.join("images-idx3-ubyte"), &images).unwrap();
        std::fs::write(dir.join("labels-idx1-ubyte"), &labels).unwrap();
        let plain = load_idx_pair(&dir).unwrap();
        assert_eq!(plain.1, vec![7, 3]);
        assert_eq!(plain.0.data[255], 1.0);
        // Gzip is found by its magic bytes, whatever the file is called.
        for (name, bytes) in [("images-idx3-ubyte", &images), ("labels-idx1-ubyte", &labels)] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(bytes).unwrap();
            std::fs::write(dir.join(name), gz.finish().unwrap()).unwrap();
        }
        assert_eq!(load_idx_pair(&dir).unwrap(), plain);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_files_are_refused_with_the_file_and_reason() {
        let dir = scratch("bad");
        let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
        let mut images = header(2051, &[2, 28, 28]);
        images.extend(vec![0u8; 2 * 784]);
        write("images-idx3-ubyte", &images);
        let mut labels = header(2049, &[3]);
        labels.extend([1, 2, 3]);
        write("labels-idx1-ubyte", &labels);
        let err = load_idx_pair(&dir).unwrap_err().to_string();
        assert!(
            err.contains("labels-idx1-ubyte") && err.contains("3 labels for 2 images"),
            "{err}"
        );
        write("labels-idx1-ubyte", &header(2051, &[2]));
        let err = load_idx_pair(&dir).unwrap_err().to_string();
        assert!(
            err.contains("labels-idx1-ubyte") && err.contains("wrong magic number 2051"),
            "{err}"
        );
        let mut labels = header(2049, &[2]);
        labels.extend([1, 12]);
        write("labels-idx1-ubyte", &labels);
        assert!(load_idx_pair(&dir).unwrap_err().to_string().contains("label 12"));
        write("images-idx3-ubyte", &images[..500]);
        let err = load_idx_pair(&dir).unwrap_err().to_string();
        assert!(err.contains("images-idx3-ubyte") && err.contains("truncated data"), "{err}");
        write("images-idx3-ubyte", &images[..10]);
        assert!(load_idx_pair(&dir).unwrap_err().to_string().contains("truncated header"));
        write("images-idx3-ubyte", &header(2051, &[u32::MAX; 3]));
        assert!(load_idx_pair(&dir).unwrap_err().to_string().contains("too large"));
        write("images-idx3-ubyte", &[0x1f, 0x8b, 1, 2, 3]);
        assert!(load_idx_pair(&dir).unwrap_err().to_string().contains("corrupt gzip"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
