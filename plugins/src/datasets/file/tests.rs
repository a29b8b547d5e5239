//! Tests of the `file` dataset: each format read, each refusal located at its parameter, or at
//! its file (and line). The `.npy` files are written here byte by byte from numpy's format
//! description (version 1.0), not with the crate that reads them.

#![allow(clippy::useless_vec)]

use std::io::Write as _;
use std::path::Path;

use rand::SeedableRng as _;
use rand::seq::SliceRandom as _;
use safetensors::Dtype;
use serde_json::Value;
use ticketlab_api::budget::Budget;
use ticketlab_api::data::{Dataset, Targets};
use ticketlab_api::plugin::{DatasetPlugin, Params, StageContext};
use ticketlab_api::{Error, Result};
use zip::CompressionMethod;

use super::{FileDataset, PARAMS};

/// A stage's parameters: `with!(path = "t.csv", classes = 3)`. A `Vec`, since some tests add
/// to it (hence the file's `allow`: passed whole it is borrowed as a slice).
macro_rules! with {
    ($($key:ident = $value:expr),* $(,)?) => {
        vec![$((stringify!($key), serde_json::json!($value))),*]
    };
}

// --- Writing the files --------------------------------------------------------------------------

/// A `.npy` file (format 1.0): the magic `\x93NUMPY`, version 1.0, the header's length (u16,
/// little-endian), a Python dict padded with spaces and ending in a newline so that the whole
/// preamble is a multiple of 64 bytes, then the raw values.
fn npy(descr: &str, fortran: bool, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape =
        if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let order = if fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    assert_eq!(out.len() % 64, 0, "the preamble is aligned");
    out.extend(data);
    out
}

/// A float32 `.npy` of `shape`, C order.
fn float32(shape: &[usize], v: &[f32]) -> Vec<u8> {
    npy("<f4", false, shape, &f32s(v))
}

/// A 1-D int64 `.npy`.
fn int64(v: &[i64]) -> Vec<u8> {
    npy("<i8", false, &[v.len()], &i64s(v))
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f64s(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i64s(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn u16s(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A `.safetensors` file of the named tensors, written by the `safetensors` crate.
fn safetensors(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views = tensors.iter().map(|(name, dtype, shape, bytes)| {
        let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes).unwrap();
        (name.to_string(), view)
    });
    safetensors::serialize(views, &None).unwrap()
}

// --- Building the dataset -----------------------------------------------------------------------

type With<'a> = &'a [(&'a str, Value)];

fn params(with: With<'_>) -> Params {
    with.iter().fold(Params::new(), |p, (k, v)| p.with(k, v.clone())).with_defaults(PARAMS)
}

/// A folder holding a test's files, which is the experiment file's directory.
struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn dir(&self) -> &Path {
        self.0.path()
    }

    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) {
        let path = self.dir().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }

    fn copy(&self, from: &str, to: &str) {
        std::fs::copy(self.dir().join(from), self.dir().join(to)).unwrap();
    }

    /// The `.npz` `name` as `np.savez` (`Stored`) or `np.savez_compressed` (`Deflated`) writes
    /// it: a zip of `ARRAY.npy` entries.
    fn npz(&self, name: &str, method: CompressionMethod, arrays: &[(&str, Vec<u8>)]) {
        let file = std::fs::File::create(self.dir().join(name)).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, bytes) in arrays {
            zip.start_file(format!("{name}.npy"), options).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
    }

    fn build(&self, with: With<'_>) -> Result<Dataset> {
        self.build_with(with, 7, None)
    }

    /// Builds with the stage's seed `seed` and the memory budget `max` bytes.
    fn build_with(&self, with: With<'_>, seed: u64, max: Option<u64>) -> Result<Dataset> {
        let mut ctx = StageContext::new("data", seed, self.dir());
        ctx.runtime.budget = Budget::new(max);
        FileDataset.build(&params(with), &ctx)
    }
}

const STORED: CompressionMethod = CompressionMethod::Stored;

/// Where an error points, and what it says: a parameter's name (`path`), or the name of the
/// file that holds the bad data (`nan.npz`).
#[track_caller]
fn place(result: Result<Dataset>) -> (String, String) {
    match result {
        Ok(d) => panic!("accepted: {}", d.description),
        Err(Error::Param { key, message }) => (key, message),
        Err(Error::Data { path, message }) => {
            (path.file_name().unwrap().to_string_lossy().into_owned(), message)
        }
        Err(other) => panic!("neither a parameter nor a data error: {other}"),
    }
}

/// A refusal: the parameters, where it must point ([`place`]), and parts of its message.
type Refusal<'a> = (Vec<(&'a str, Value)>, &'a str, &'a [&'a str]);

#[track_caller]
fn assert_refusals(files: &Files, max: Option<u64>, cases: &[Refusal<'_>]) {
    for (with, at, parts) in cases {
        let (place, message) = place(files.build_with(with, 7, max));
        assert_eq!(place, *at, "{with:?}: refused at the wrong place: {message}");
        for part in *parts {
            assert!(message.contains(part), "{with:?}: `{part}` not in: {message}");
        }
    }
}

fn labels(t: &Targets) -> Vec<u32> {
    match t {
        Targets::Classes { labels, .. } => labels.clone(),
        other => panic!("not classes: {other:?}"),
    }
}

fn regression(t: &Targets) -> (&[usize], &[f32]) {
    match t {
        Targets::Regression { values } => (&values.shape, &values.data),
        other => panic!("not regression: {other:?}"),
    }
}

const TABLE: &str = "a,b,label,c\n1,2,0,3\n4,5,1,6\n7,8,2,9\n10,11,1,12\n";

// --- Each format read ---------------------------------------------------------------------------

#[test]
fn a_csv_table_reads_its_features_in_order_and_counts_classes_over_both_files() {
    let files = Files::new();
    files.write("t.csv", TABLE);
    files.write("test.csv", "a,b,label,c\n0.5,1,4,1.5\n");
    let d = files.build(&with!(path = "t.csv", test_path = "test.csv")).unwrap();
    assert_eq!(d.info.input_shape, vec![3]);
    assert_eq!(d.info.output_dim, 5, "labels up to 4, the largest in the test file");
    assert_eq!(d.train.x.shape, vec![4, 3], "all of `path` trains");
    assert_eq!(d.train.x.data, vec![1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.]);
    assert_eq!(labels(&d.train.y), vec![0, 1, 2, 1]);
    assert_eq!((d.test.x.data.clone(), labels(&d.test.y)), (vec![0.5, 1.0, 1.5], vec![4]));
    // `features` picks columns in its order, in both files; `classes` is taken as given.
    let with = with!(path = "t.csv", test_path = "test.csv", features = ["c", "a"], classes = 10);
    let d = files.build(&with).unwrap();
    assert_eq!(d.train.x.data, vec![3., 1., 6., 4., 9., 7., 12., 10.]);
    assert_eq!(d.test.x.data, vec![1.5, 0.5]);
    assert_eq!(d.info.output_dim, 10);
    // Quotes, CRLF line ends, spaces and a byte-order mark are read as a spreadsheet writes them.
    files.write("q.csv", "\u{feff}\"x\", label\r\n\"1.5\", 1\r\n -2 ,0\r\n");
    let d = files.build(&with!(path = "q.csv", train_fraction = 0.5)).unwrap();
    let mut all = [d.train.x.data.clone(), d.test.x.data.clone()].concat();
    all.sort_by(f32::total_cmp);
    assert_eq!(all, vec![-2.0, 1.5]);
}

#[test]
fn a_tsv_regression_keeps_each_real_target_with_its_row() {
    let files = Files::new();
    files.write("r.tsv", "x\tprice\n1\t0.25\n2\t0.5\n3\t0.75\n4\t1.5\n5\t2\n");
    let mut with =
        with!(path = "r.tsv", label = "price", task = "regression", train_fraction = 0.6);
    let d = files.build(&with).unwrap();
    assert_eq!(d.info.output_dim, 1);
    assert_eq!((d.train.len(), d.test.len()), (3, 2));
    for split in [&d.train, &d.test] {
        let (shape, values) = regression(&split.y);
        assert_eq!(shape, [split.len(), 1]);
        for (x, y) in split.x.data.iter().zip(values) {
            assert_eq!(*y, [0.25, 0.5, 0.75, 1.5, 2.0][*x as usize - 1], "x = {x}");
        }
    }
    // Without a known extension, a tab in the header row makes it a TSV.
    files.copy("r.tsv", "r.txt");
    with[0].1 = "r.txt".into();
    assert_eq!(files.build(&with).unwrap().train.len(), 3);
}

#[test]
fn npz_arrays_read_as_float32_whatever_their_type_order_or_compression() {
    let files = Files::new();
    // x is [3, 2] in Fortran order: the values column by column.
    let x = npy("<f4", true, &[3, 2], &f32s(&[1., 2., 3., 10., 20., 30.]));
    files.npz("d.npz", STORED, &[("inputs", x), ("targets", int64(&[0, 1, 1]))]);
    // Big-endian float32 inputs, integer-valued float64 labels, deflated as savez_compressed.
    let be: Vec<u8> = [5f32, 6.].iter().flat_map(|v| v.to_be_bytes()).collect();
    let xt = npy(">f4", false, &[1, 2], &be);
    let yt = npy("<f8", false, &[1], &f64s(&[2.0]));
    files.npz("t.npz", CompressionMethod::Deflated, &[("inputs", xt), ("targets", yt)]);
    let d = files.build(&with!(path = "d.npz", test_path = "t.npz", x = "inputs", y = "targets"));
    let d = d.unwrap();
    assert_eq!(d.train.x.shape, vec![3, 2]);
    assert_eq!(d.train.x.data, vec![1., 10., 2., 20., 3., 30.], "Fortran order becomes rows");
    assert_eq!(labels(&d.train.y), vec![0, 1, 1]);
    assert_eq!((d.test.x.data.clone(), labels(&d.test.y)), (vec![5., 6.], vec![2]));
    assert_eq!(d.info.output_dim, 3);

    // A 3-D Fortran array keeps each example's [2, 2] shape; uint8 and bool read as 0..255, 0/1.
    let mut f = vec![0u8; 8];
    for (i, j, k) in (0..8).map(|c| (c / 4, c / 2 % 2, c % 2)) {
        f[i + 2 * j + 4 * k] = (4 * i + 2 * j + k) as u8 * 30; // C index c holds 30c.
    }
    let x3 = npy("|u1", true, &[2, 2, 2], &f);
    files.npz("u.npz", STORED, &[("x", x3), ("y", npy("|b1", false, &[2], &[1, 0]))]);
    let d = files.build(&with!(path = "u.npz", test_path = "u.npz")).unwrap();
    assert_eq!(d.info.input_shape, vec![2, 2]);
    assert_eq!(d.train.x.data, vec![0., 30., 60., 90., 120., 150., 180., 210.]);
    assert_eq!(labels(&d.train.y), vec![1, 0]);
    // The format may come from the content, or from `format`, whatever the name.
    files.copy("u.npz", "u.data");
    files.copy("u.npz", "u.csv");
    for with in [
        with!(path = "u.data", test_path = "u.npz"),
        with!(path = "u.csv", test_path = "u.csv", format = "npz"),
    ] {
        assert_eq!(files.build(&with).unwrap().train.x.data, d.train.x.data, "{with:?}");
    }
}

#[test]
fn a_npy_pair_reads_inputs_from_path_and_targets_from_y_path() {
    let files = Files::new();
    let values: Vec<f64> = (0..8).map(f64::from).collect();
    files.write("x.npy", npy("<f8", false, &[4, 1, 2], &f64s(&values)));
    files.write("y.npy", int64(&[1, 0, 1, 2]));
    files.write("tx.npy", float32(&[1, 1, 2], &[-1., -2.]));
    files.write("ty.npy", int64(&[0]));
    let with =
        with!(path = "x.npy", y_path = "y.npy", test_path = "tx.npy", test_y_path = "ty.npy");
    let d = files.build(&with).unwrap();
    assert_eq!(d.info.input_shape, vec![1, 2], "each example keeps its shape");
    assert_eq!(d.train.x.shape, vec![4, 1, 2]);
    assert_eq!(d.train.x.data, vec![0., 1., 2., 3., 4., 5., 6., 7.]);
    assert_eq!(labels(&d.train.y), vec![1, 0, 1, 2]);
    assert_eq!((d.test.x.data.clone(), labels(&d.test.y)), (vec![-1., -2.], vec![0]));
    assert_eq!(d.info.output_dim, 3);
    // A 1-D `x` is one value per example; regression targets may be [n, k].
    files.write("x1.npy", float32(&[4], &[1., 2., 3., 4.]));
    files.write("y2.npy", float32(&[4, 2], &[1., 10., 2., 20., 3., 30., 4., 40.]));
    let with = with!(path = "x1.npy", y_path = "y2.npy", task = "regression", train_fraction = 0.5);
    let d = files.build(&with).unwrap();
    assert_eq!((d.info.input_shape.clone(), d.info.output_dim), (vec![1], 2));
    assert_eq!(d.train.x.shape, vec![2, 1]);
    let (shape, values) = regression(&d.train.y);
    assert_eq!(shape, [2, 2]);
    for (row, x) in d.train.x.data.iter().enumerate() {
        assert_eq!(values[2 * row..2 * row + 2], [*x, 10. * x], "targets stay with their inputs");
    }
}

#[test]
fn safetensors_of_every_float_width_and_integer_labels_read_as_given() {
    let files = Files::new();
    let file = safetensors(&[
        ("features", Dtype::F32, vec![2, 2], f32s(&[0.5, 1.5, 2.5, 3.5])),
        ("label", Dtype::I64, vec![2], i64s(&[1, 0])),
        // 1.0, -2.0, 0.5 and 65504 in IEEE half precision; 1.0, -2.0, 0.5, 65536 in bfloat16.
        ("half", Dtype::F16, vec![2, 2], u16s(&[0x3c00, 0xc000, 0x3800, 0x7bff])),
        ("brain", Dtype::BF16, vec![2, 2], u16s(&[0x3f80, 0xc000, 0x3f00, 0x4780])),
        ("price", Dtype::F64, vec![2], f64s(&[0.1, -7.25])),
    ]);
    files.write("d.safetensors", &file);
    files.write("test.safetensors", &file);
    let build = |x: &str, y: &str, task: &str| {
        let path = "d.safetensors";
        let with = with!(path = path, test_path = "test.safetensors", x = x, y = y, task = task);
        files.build(&with).unwrap()
    };
    let d = build("features", "label", "classification");
    assert_eq!(d.train.x.shape, vec![2, 2]);
    assert_eq!(d.train.x.data, vec![0.5, 1.5, 2.5, 3.5]);
    assert_eq!((labels(&d.train.y), d.info.output_dim), (vec![1, 0], 2));
    assert_eq!(build("half", "label", "classification").train.x.data, vec![1., -2., 0.5, 65504.]);
    assert_eq!(build("brain", "label", "classification").train.x.data, vec![1., -2., 0.5, 65536.]);
    let d = build("features", "price", "regression");
    assert_eq!(regression(&d.test.y), (&[2usize, 1][..], &[0.1f32, -7.25][..]));
}

#[test]
fn the_split_is_a_seeded_chacha8_shuffle_of_int_f_n_rows_in_the_file_order() {
    let files = Files::new();
    let table: String = (0..50).map(|i| format!("{i},{}\n", i % 3)).collect();
    files.write("s.csv", format!("x,label\n{table}"));
    let split = |with: With<'_>, stage_seed: u64| {
        let d = files.build_with(with, stage_seed, None).unwrap();
        for s in [&d.train, &d.test] {
            let expected: Vec<u32> = s.x.data.iter().map(|&x| x as u32 % 3).collect();
            assert_eq!(labels(&s.y), expected, "each label stays with its row");
        }
        (d.train.x.data, d.test.x.data)
    };
    let seeded = |seed: i64| with!(path = "s.csv", train_fraction = 0.7, split_seed = seed);
    let (train, test) = split(&seeded(1), 7);
    assert_eq!((train.len(), test.len()), (35, 15), "int(0.7 * 50) train");
    let mut order: Vec<usize> = (0..50).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
    let mut expected: Vec<f32> = order[..35].iter().map(|&i| i as f32).collect();
    expected.sort_by(f32::total_cmp);
    assert_eq!(train, expected, "the first int(f*n) of a ChaCha8 shuffle, in the file's order");
    assert!(test.windows(2).all(|w| w[0] < w[1]), "the test split keeps the file's order");
    assert_eq!(split(&seeded(1), 8), (train.clone(), test), "a fixed seed ignores the stage's");
    assert_ne!(split(&seeded(2), 7).0, train, "another seed, another split");
    // Without `split_seed`, the stage's seed draws the split; the default fraction is 0.8.
    let plain = with!(path = "s.csv");
    let (a, b) = (split(&plain, 7).0, split(&plain, 8).0);
    assert_eq!((a.len(), b.len()), (40, 40));
    assert_ne!(a, b, "another stage seed, another split");
    assert_eq!(split(&plain, 7).0, a);
    assert_eq!(split(&with!(path = "s.csv", split_seed = 7), 0).0, a);
}

#[test]
fn with_test_path_all_of_path_trains_and_the_stage_seed_is_not_used() {
    let files = Files::new();
    files.write("t.csv", TABLE);
    files.write("test.csv", TABLE);
    let with = with!(path = "t.csv", test_path = "test.csv");
    let (a, b) = (files.build_with(&with, 1, None).unwrap(), files.build_with(&with, 2, None));
    assert_eq!((a.train.len(), a.test.len()), (4, 4));
    assert_eq!(a.train.x.data, b.unwrap().train.x.data);
    assert!(a.description.contains("test split from test.csv"), "{}", a.description);
}

// --- Each refusal, located ----------------------------------------------------------------------

#[test]
fn a_missing_file_is_refused_at_the_parameter_that_names_it() {
    let files = Files::new();
    files.write("t.csv", TABLE);
    files.write("x.npy", float32(&[2], &[1., 2.]));
    files.write("y.npy", int64(&[0, 1]));
    let npy = |y: &str, ty: &str| {
        with!(path = "x.npy", y_path = y, test_path = "x.npy", test_y_path = ty)
    };
    let cases: &[Refusal<'_>] = &[
        (with!(path = "nope.csv"), "path", &["no such file", "nope.csv"]),
        (with!(path = "t.csv", test_path = "nope.csv"), "test_path", &["no such file", "nope.csv"]),
        (npy("nope.npy", "y.npy"), "y_path", &["no such file", "nope.npy"]),
        (npy("y.npy", "nope.npy"), "test_y_path", &["no such file", "nope.npy"]),
        (with!(path = "missing/t.csv"), "path", &["no such file", "missing/t.csv"]),
    ];
    assert_refusals(&files, None, cases);
}

#[test]
fn a_missing_array_or_column_names_the_ones_there_are() {
    let files = Files::new();
    let x = float32(&[2, 1], &[1., 2.]);
    files.npz("d.npz", STORED, &[("inputs", x), ("targets", int64(&[0, 1]))]);
    let tensors = safetensors(&[
        ("inputs", Dtype::F32, vec![2], f32s(&[1., 2.])),
        ("labels", Dtype::I64, vec![2], i64s(&[0, 1])),
    ]);
    files.write("d.safetensors", tensors);
    files.write("t.csv", TABLE);
    files.write("other.csv", "a,b,label,d\n1,2,0,3\n");
    let np = |x: &str, y: &str| with!(path = "d.npz", x = x, y = y);
    let st = |x: &str, y: &str| with!(path = "d.safetensors", x = x, y = y);
    let other =
        |features: &[&str]| with!(path = "t.csv", test_path = "other.csv", features = features);
    let cases: &[Refusal<'_>] = &[
        (np("imputs", "targets"), "x", &["no array `imputs`", "did you mean `inputs`"]),
        (np("inputs", "y"), "y", &["no array `y`", "arrays: inputs, targets"]),
        (st("inputs", "label"), "y", &["no tensor `label`", "did you mean `labels`"]),
        (st("input", "labels"), "x", &["tensors: inputs, labels"]),
        (with!(path = "t.csv", label = "lable"), "label", &["mean `label`", "a, b, label, c"]),
        (other(&["a", "cc"]), "features", &["no column `cc`", "did you mean `c`"]),
        // The test file must have the training file's columns.
        (other(&[]), "test_path", &["other.csv has no column `c`", "columns: a, b, label, d"]),
    ];
    assert_refusals(&files, None, cases);
}

#[test]
fn bad_table_cells_are_refused_at_their_line_and_column() {
    let files = Files::new();
    let cases: [(&str, &str, &[&str]); 12] = [
        ("ragged.csv", "a,label\n1,0\n2,1,5\n", &["line 3", "3 fields", "2 columns"]),
        ("short.tsv", "a\tb\tlabel\n1\t2\t0\n3\t1\n", &["line 3", "2 fields", "3 columns"]),
        ("word.csv", "a,label\n1,0\n\n2,1\nthree,0\n", &["line 5, column `a`: `three` is not"]),
        ("empty.csv", "a,b,label\n1,2,0\n3,,1\n", &["line 3, column `b`: is empty"]),
        ("nan.csv", "a,label\n1,0\nNaN,1\n", &["line 3", "`NaN`", "finite"]),
        ("inf.csv", "a,label\n1,0\n2,1\n-inf,0\n", &["line 4", "`-inf`", "finite"]),
        ("huge.csv", "a,label\n1e999,0\n", &["line 2", "finite"]),
        ("wide.csv", "a,label\n1,0\n1e39,1\n", &["line 3, column `a`: `1e39`", "float32's range"]),
        ("twice.csv", "a,b,a,label\n1,2,3,0\n", &["line 1", "columns 1 and 3", "`a`"]),
        ("header.csv", "a,label\n", &["no rows"]),
        ("blank.csv", "", &["is empty", "header"]),
        ("lonely.csv", "label\n0\n1\n", &["no feature columns"]),
    ];
    for (name, text, _) in &cases {
        files.write(name, text);
    }
    let cases = cases.map(|(name, _, parts)| (with!(path = name), name, parts));
    assert_refusals(&files, None, &cases);
}

#[test]
fn labels_must_be_integers_in_range_and_name_where_they_are_not() {
    let files = Files::new();
    files.write("half.csv", "a,label\n1,0\n2,0.5\n");
    files.write("negative.csv", "a,label\n1,0\n2,1\n3,-1\n");
    files.write("zeros.csv", "a,label\n1,0\n2,0\n");
    files.write("t.csv", TABLE);
    files.write("seven.csv", "a,b,label,c\n1,2,1,3\n4,5,7,6\n");
    files.write("x.npy", float32(&[3], &[1., 2., 3.]));
    files.write("y.npy", npy("<f8", false, &[3], &f64s(&[0., 1., 2.5])));
    files.write("hot.npy", float32(&[3, 2], &[1., 0., 0., 1., 1., 0.]));
    let seven = with!(path = "t.csv", test_path = "seven.csv", classes = 3);
    let cases: &[Refusal<'_>] = &[
        (with!(path = "half.csv"), "half.csv", &["line 3, column `label`: 0.5 is not", "regr"]),
        (with!(path = "negative.csv"), "negative.csv", &["line 4", "-1 is not a class label"]),
        (with!(path = "zeros.csv"), "zeros.csv", &["every label is 0", "`classes`"]),
        (seven, "seven.csv", &["line 3", "label 7 is out of range", "`classes` is 3", "0..2"]),
        // The targets of a .npy pair are in `y_path`.
        (with!(path = "x.npy", y_path = "y.npy"), "y.npy", &["y[2]: 2.5 is not a class label"]),
        (with!(path = "x.npy", y_path = "hot.npy"), "hot.npy", &["shape [3, 2]", "argmax"]),
    ];
    assert_refusals(&files, None, cases);
    // Labels all 0 are fine when `classes` says how many there are.
    let d = files.build(&with!(path = "zeros.csv", classes = 2, train_fraction = 0.5));
    assert_eq!(d.unwrap().info.output_dim, 2);
}

#[test]
fn bad_arrays_are_refused_at_the_file_and_index_of_the_bad_value() {
    let files = Files::new();
    let y3 = || ("y", int64(&[0, 1, 0]));
    let nan = float32(&[3, 2], &[1., 2., 3., f32::NAN, 5., 6.]);
    files.npz("nan.npz", STORED, &[("x", nan), y3()]);
    files.npz("short.npz", STORED, &[("x", float32(&[2, 1], &[1., 2.])), y3()]);
    files.npz("hollow.npz", STORED, &[("x", float32(&[3, 0], &[])), y3()]);
    files.npz("none.npz", STORED, &[("x", float32(&[0, 2], &[])), ("y", int64(&[]))]);
    files.npz("scalar.npz", STORED, &[("x", float32(&[], &[1.])), y3()]);
    files.npz(
        "aimless.npz",
        STORED,
        &[("x", float32(&[3], &[1., 2., 3.])), ("y", float32(&[3, 0], &[]))],
    );
    files.write("x.npy", float32(&[3], &[1., 2., 3.]));
    files.write("wide.npy", npy("<f8", false, &[3], &f64s(&[1., -1e300, 0.])));
    files.write("inf.npy", npy("<f8", false, &[3], &f64s(&[1., f64::INFINITY, 0.])));
    files.write("half.npy", npy("<f2", false, &[3], &u16s(&[0x3c00; 3])));
    files.write("complex.npy", npy("<c8", false, &[3], &f32s(&[0.; 6])));
    let whole = float32(&[3], &[1., 2., 3.]);
    files.write("cut.npy", &whole[..whole.len() - 6]); // 1.5 of its 3 values
    let tensors = safetensors(&[
        ("x", Dtype::F32, vec![2], f32s(&[1., 2.])),
        ("y", Dtype::F32, vec![2], f32s(&[0., f32::NEG_INFINITY])),
    ]);
    files.write("inf.safetensors", tensors);
    let pair = |x: &str, y: &str| with!(path = x, y_path = y);
    let cases: &[Refusal<'_>] = &[
        (with!(path = "nan.npz"), "nan.npz", &["x[1, 1] is NaN", "finite"]),
        (with!(path = "short.npz"), "short.npz", &["`y` has 3 rows", "`x` has 2"]),
        (with!(path = "hollow.npz"), "hollow.npz", &["shape [3, 0]", "no values"]),
        (with!(path = "none.npz"), "none.npz", &["holds no examples"]),
        (with!(path = "scalar.npz"), "scalar.npz", &["single number"]),
        (with!(path = "aimless.npz"), "aimless.npz", &["shape [3, 0]", "no targets"]),
        (pair("x.npy", "inf.npy"), "inf.npy", &["y[1] is inf"]),
        (pair("wide.npy", "x.npy"), "wide.npy", &["x[1] is -inf", "float32's range"]),
        (pair("x.npy", "short.npz"), "short.npz", &["not a readable .npy"]),
        (pair("half.npy", "x.npy"), "half.npy", &["dtype `<f2`", "float32"]),
        (pair("complex.npy", "x.npy"), "complex.npy", &["dtype `<c8`"]),
        (pair("cut.npy", "x.npy"), "cut.npy", &["shape [3]", "cannot be read whole"]),
        (with!(path = "inf.safetensors", task = "regression"), "inf.safetensors", &["y[1] is -"]),
    ];
    assert_refusals(&files, None, cases);
}

#[test]
fn a_test_file_must_match_the_format_and_shapes_of_path() {
    let files = Files::new();
    files.write("t.csv", TABLE);
    files.write("narrow.csv", "a,label\n1,0\n");
    let (x, y) = (float32(&[2, 3], &[0.; 6]), int64(&[0, 1]));
    files.npz("t.npz", STORED, &[("x", x.clone()), ("y", y.clone())]);
    files.copy("t.npz", "t.data");
    files.npz("wide.npz", STORED, &[("x", float32(&[2, 4], &[0.; 8])), ("y", y)]);
    files.npz("two.npz", STORED, &[("x", x), ("y", float32(&[2, 2], &[0.; 4]))]);
    let pair = |path: &str, test: &str| with!(path = path, test_path = test);
    let regression = with!(path = "t.npz", test_path = "two.npz", task = "regression");
    let cases: &[Refusal<'_>] = &[
        (pair("t.csv", "t.npz"), "test_path", &["a .npz file", "format of `path`"]),
        // Found by its content, not its name.
        (pair("t.csv", "t.data"), "test_path", &["t.data is a .npz file", "`path` is a .csv"]),
        (pair("t.npz", "wide.npz"), "wide.npz", &["shape [4]", "have [3]"]),
        (regression, "two.npz", &["2 targets per example", "`path` has 1"]),
        // The test table is read for the training file's columns.
        (pair("t.csv", "narrow.csv"), "test_path", &["no column `b`"]),
    ];
    assert_refusals(&files, None, cases);
}

#[test]
fn contradicting_parameters_are_refused_at_the_one_to_change() {
    let files = Files::new();
    files.write("t.csv", TABLE);
    files.write("x.npy", float32(&[2], &[1., 2.]));
    files.write("y.npy", int64(&[0, 1]));
    files.copy("x.npy", "x.raw");
    files.npz("d.npz", STORED, &[]);
    let (t, n) = ("t.csv", "x.npy");
    let cases: &[Refusal<'_>] = &[
        (with!(path = ""), "path", &["is empty"]),
        (with!(path = t, format = "xlsx"), "format", &["`xlsx`"]),
        (with!(path = t, task = "regresion"), "task", &["`regresion`"]),
        (with!(path = t, test_path = t, train_fraction = 0.5), "train_fraction", &["not both"]),
        (with!(path = t, test_path = t, split_seed = 3), "split_seed", &["`test_path`"]),
        (with!(path = t, test_y_path = "y.npy"), "test_y_path", &["without `test_path`"]),
        (with!(path = t, train_fraction = 1.0), "train_fraction", &["out of range"]),
        (with!(path = t, train_fraction = 0.1), "train_fraction", &["4 examples", "training"]),
        (with!(path = t, classes = 1), "classes", &["at least 2"]),
        (with!(path = t, task = "regression", classes = 3), "classes", &["regression"]),
        (with!(path = t, features = ["a", "label"]), "features", &["the label column"]),
        (with!(path = t, features = ["a", "b", "a"]), "features", &["`a` twice"]),
        (with!(path = t, y_path = "y.npy"), "y_path", &[".npy files only", "`label` column"]),
        (with!(path = t, x = "inputs"), "x", &["`features`"]),
        (with!(path = "d.npz", label = "price"), "label", &[".csv or .tsv", "the array `y`"]),
        (with!(path = "d.npz", features = ["a"]), "features", &["the array `x`"]),
        (with!(path = n), "y_path", &["is needed", "targets"]),
        (with!(path = n, y_path = "y.npy", x = "a"), "x", &["one array"]),
        (with!(path = n, y_path = "y.npy", test_path = n), "test_y_path", &["is needed"]),
        // A .npy known by its content needs its targets too.
        (with!(path = "x.raw"), "y_path", &["x.raw is a .npy file"]),
    ];
    assert_refusals(&files, None, cases);
}

#[test]
fn parameters_that_do_not_fit_a_format_found_by_content_are_refused_too() {
    let files = Files::new();
    files.write("table", TABLE);
    let (x, y) = (float32(&[4], &[1., 2., 3., 4.]), int64(&[0, 1, 0, 1]));
    files.npz("arrays", STORED, &[("x", x), ("y", y.clone())]);
    files.write("y.npy", y);
    let cases: &[Refusal<'_>] = &[
        (with!(path = "table", x = "inputs"), "x", &["`features`"]),
        (with!(path = "table", y_path = "y.npy"), "y_path", &[".npy files only"]),
        (with!(path = "arrays", label = "target"), "label", &["the array `y`"]),
        (with!(path = "arrays", features = ["a"]), "features", &["the array `x`"]),
    ];
    assert_refusals(&files, None, cases);
    assert_eq!(files.build(&with!(path = "table")).unwrap().info.input_shape, vec![3]);
    assert_eq!(files.build(&with!(path = "arrays")).unwrap().info.output_dim, 2);
}

#[test]
fn a_file_beyond_the_memory_budget_is_refused_at_its_parameter() {
    let files = Files::new();
    let rows: String = (0..2000).map(|i| format!("{i},{i},{}\n", i % 2)).collect();
    files.write("big.csv", format!("a,b,label\n{rows}"));
    files.write("small.csv", "a,b,label\n1,2,0\n3,4,1\n");
    files.write("y.npy", int64(&[0; 1000]));
    files.write("x.npy", float32(&[1000], &[0.; 1000]));
    let tensors = safetensors(&[
        ("x", Dtype::F32, vec![1000], f32s(&[0.; 1000])),
        ("y", Dtype::I64, vec![1000], i64s(&[0; 1000])),
    ]);
    files.write("big.safetensors", tensors);
    let (x, y) = (float32(&[1000, 4], &[0.; 4000]), int64(&[1; 1000]));
    files.npz("big.npz", CompressionMethod::Deflated, &[("x", x), ("y", y)]);
    let cases: &[Refusal<'_>] = &[
        (with!(path = "big.csv"), "path", &["values of", "big.csv", "--max-memory"]),
        (with!(path = "small.csv", test_path = "big.csv"), "test_path", &["big.csv"]),
        (with!(path = "big.npz"), "path", &["4000 values of `x`"]),
    ];
    assert_refusals(&files, Some(20_000), cases);
    let cases: &[Refusal<'_>] = &[
        // float32 inputs fit in 10 kB (8 kB with the split's copy), float64 targets (16 kB) not.
        (with!(path = "x.npy", y_path = "y.npy"), "y_path", &["1000 values of `y`"]),
        (with!(path = "big.safetensors"), "path", &["reading", "big.safetensors"]),
    ];
    assert_refusals(&files, Some(10_000), cases);
    assert!(files.build_with(&with!(path = "big.csv"), 7, None).is_ok());
    // An .npy header announcing 4 GB of float32 and holding none: refused from the header alone.
    files.write("huge.npy", float32(&[1_000_000, 1000], &[]));
    let with = with!(path = "huge.npy", y_path = "y.npy");
    assert_refusals(&files, Some(1 << 30), &[(with, "path", &["1000000000 values of `x`"])]);
}

#[test]
fn the_files_read_are_named_for_the_cache_key() {
    let files = Files::new();
    files.write("t.csv", TABLE);
    files.write("data/x.npy", float32(&[2], &[1., 2.]));
    files.write("data/y.npy", int64(&[0, 1]));
    let exp = files.dir().join("experiments/deep");
    std::fs::create_dir_all(&exp).unwrap();
    let read = |with: With<'_>, base: &Path| FileDataset.input_files(&params(with), base);
    let dir = std::fs::canonicalize(files.dir()).unwrap();
    // `data/` is found from the experiment's directory upwards, as `build` finds it.
    let with = with!(path = "data/x.npy", y_path = "data/y.npy", train_fraction = 0.5);
    assert_eq!(read(&with, &exp), [dir.join("data/x.npy"), dir.join("data/y.npy")]);
    let ctx = StageContext::new("data", 7, &exp);
    assert_eq!(FileDataset.build(&params(&with), &ctx).unwrap().train.len(), 1);
    // A missing file is named too (the planner reports it); an unset `y_path` is none.
    let with = with!(path = "t.csv", test_path = "gone.csv");
    assert_eq!(read(&with, files.dir()), [dir.join("t.csv"), dir.join("gone.csv")]);
    let abs = files.dir().join("t.csv");
    assert_eq!(read(&with!(path = abs.to_str().unwrap()), &exp), [abs]);
}

#[test]
fn only_a_split_of_path_by_the_stage_seed_uses_the_seed() {
    let uses = |with: With<'_>| FileDataset.uses_seed(&params(with));
    assert!(uses(&with!(path = "t.csv")));
    assert!(uses(&with!(path = "t.csv", split_seed = -1)));
    assert!(!uses(&with!(path = "t.csv", test_path = "test.csv")));
    assert!(!uses(&with!(path = "t.csv", split_seed = 0)));
    assert!(!uses(&with!(path = "t.csv", split_seed = 3)));
    // `check` refuses what `build` refuses without reading a file.
    assert!(FileDataset.check(&params(&with!(path = "t.csv"))).is_ok());
    let err = FileDataset.check(&params(&with!(path = "x.npy"))).unwrap_err();
    assert!(matches!(err, Error::Param { ref key, .. } if key == "y_path"), "{err}");
}
