//! Tests of the `file` dataset: each format read, each refusal located at its parameter or line.
//! The `.npy` files are written here byte by byte from numpy's format description, not with
//! the crate that reads them.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ticketlab_api::budget::Budget;
use ticketlab_api::data::{Dataset, Targets};
use ticketlab_api::plugin::{DatasetPlugin, Params, StageContext};

use super::{FileDataset, PARAMS};

/// A `.npy` file (format 1.0): magic, version, header length, a Python dict padded with
/// spaces to a multiple of 64 bytes and ending in a newline, then the values.
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
    out.extend(data);
    out
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i64s(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// An `.npz`: a zip of `NAME.npy` entries.
fn npz(path: &Path, arrays: &[(&str, Vec<u8>)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in arrays {
        zip.start_file(format!("{name}.npy"), zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// A folder holding the test's files, and the dataset built from `with` in it.
struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn params(with: &[(&str, serde_json::Value)]) -> Params {
        let mut p = Params::new();
        for (k, v) in with {
            p = p.with(k, v.clone());
        }
        p.with_defaults(PARAMS)
    }

    fn build(&self, with: &[(&str, serde_json::Value)]) -> ticketlab_api::Result<Dataset> {
        self.build_with(with, None)
    }

    fn build_with(
        &self,
        with: &[(&str, serde_json::Value)],
        max: Option<u64>,
    ) -> ticketlab_api::Result<Dataset> {
        let mut ctx = StageContext::new("data", 7, self.0.path());
        ctx.runtime.budget = Budget::new(max);
        FileDataset.build(&Self::params(with), &ctx)
    }

    /// The error of building from `with`, as text.
    fn refusal(&self, with: &[(&str, serde_json::Value)]) -> String {
        match self.build(with) {
            Ok(_) => panic!("{with:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }
}

/// Parameters and the parts its refusal must contain.
type Refusal<'a> = (&'a [(&'a str, serde_json::Value)], &'a [&'a str]);

fn labels(t: &Targets) -> Vec<u32> {
    match t {
        Targets::Classes { labels, .. } => labels.clone(),
        other => panic!("not classes: {other:?}"),
    }
}

const TABLE: &str = "a,b,label,c\n1,2,0,3\n4,5,1,6\n7,8,2,9\n10,11,1,12\n";

#[test]
fn a_csv_table_reads_its_features_in_order_and_counts_classes() {
    let files = Files::new();
    files.write("t.csv", TABLE);
    files.write("test.csv", "a,b,label,c\n0.5,1,2,1.5\n");
    let d = files.build(&[("path", "t.csv".into()), ("test_path", "test.csv".into())]).unwrap();
    assert_eq!(d.info.input_shape, vec![3]);
    assert_eq!(d.info.output_dim, 3, "labels 0..2 over both files");
    assert_eq!(d.train.x.data, vec![1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.]);
    assert_eq!(labels(&d.train.y), vec![0, 1, 2, 1]);
    assert_eq!(d.test.x.data, vec![0.5, 1.0, 1.5]);
    // `features` picks columns, in its order.
    let d = files
        .build(&[
            ("path", "t.csv".into()),
            ("test_path", "test.csv".into()),
            ("features", serde_json::json!(["c", "a"])),
        ])
        .unwrap();
    assert_eq!(&d.train.x.data[..4], &[3., 1., 6., 4.]);
}

#[test]
fn a_tsv_regression_keeps_real_targets() {
    let files = Files::new();
    files.write("r.tsv", "x\tprice\n1\t0.25\n2\t0.5\n3\t0.75\n4\t1.5\n5\t2\n");
    let d = files
        .build(&[
            ("path", "r.tsv".into()),
            ("label", "price".into()),
            ("task", "regression".into()),
            ("train_fraction", 0.6.into()),
        ])
        .unwrap();
    assert_eq!(d.info.output_dim, 1);
    assert_eq!((d.train.len(), d.test.len()), (3, 2));
    let Targets::Regression { values } = &d.train.y else { panic!("not regression") };
    for (x, y) in d.train.x.data.iter().zip(&values.data) {
        let expected = [0.25, 0.5, 0.75, 1.5, 2.0][*x as usize - 1];
        assert_eq!(*y, expected, "each target stays with its row");
    }
}

#[test]
fn the_split_is_seeded_sized_and_keeps_the_file_order() {
    let files = Files::new();
    let mut table = String::from("x,label\n");
    for i in 0..50 {
        table.push_str(&format!("{i},{}\n", i % 2));
    }
    files.write("s.csv", table);
    let split = |seed: i64| {
        let d = files
            .build(&[
                ("path", "s.csv".into()),
                ("train_fraction", 0.7.into()),
                ("split_seed", seed.into()),
            ])
            .unwrap();
        (d.train.x.data.clone(), d.test.x.data.clone())
    };
    let (train, test) = split(1);
    assert_eq!((train.len(), test.len()), (35, 15), "int(0.7 * 50) train");
    assert!(train.windows(2).all(|w| w[0] < w[1]) && test.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(split(1), (train.clone(), test), "the same seed, the same split");
    assert_ne!(split(2).0, train, "another seed, another split");
    // Without `split_seed` the stage's seed draws it; the default fraction is 0.8.
    let d = files.build(&[("path", "s.csv".into())]).unwrap();
    assert_eq!(d.train.len(), 40);
}

#[test]
fn npz_arrays_of_any_number_type_and_order_read_as_given() {
    let files = Files::new();
    // x is [3, 2] in Fortran order: the values column by column.
    let x = npy("<f4", true, &[3, 2], &f32s(&[1., 2., 3., 10., 20., 30.]));
    let y = npy("<i8", false, &[3], &i64s(&[0, 1, 1]));
    let xt = npy("<f4", false, &[1, 2], &f32s(&[5., 6.]));
    let yt = npy("<i8", false, &[1], &i64s(&[0]));
    npz(&files.0.path().join("d.npz"), &[("inputs", x), ("targets", y)]);
    npz(&files.0.path().join("t.npz"), &[("inputs", xt), ("targets", yt)]);
    let with = [
        ("path", "d.npz".into()),
        ("test_path", "t.npz".into()),
        ("x", "inputs".into()),
        ("y", "targets".into()),
    ];
    let d = files.build(&with).unwrap();
    assert_eq!(d.train.x.shape, vec![3, 2]);
    assert_eq!(d.train.x.data, vec![1., 10., 2., 20., 3., 30.], "Fortran order becomes rows");
    assert_eq!(labels(&d.train.y), vec![0, 1, 1]);
    assert_eq!(d.info.output_dim, 2);
    // A missing array names the ones there are.
    let err = files.refusal(&[
        ("path", "d.npz".into()),
        ("test_path", "t.npz".into()),
        ("x", "input".into()),
        ("y", "targets".into()),
    ]);
    assert!(err.contains("input") && err.contains("inputs"), "{err}");
}

#[test]
fn a_npy_pair_and_safetensors_read_their_arrays() {
    let files = Files::new();
    files.write("x.npy", npy("<f4", false, &[4, 1, 2], &f32s(&[0., 1., 2., 3., 4., 5., 6., 7.])));
    files.write("y.npy", npy("<i8", false, &[4], &i64s(&[1, 0, 1, 0])));
    let d = files
        .build(&[
            ("path", "x.npy".into()),
            ("y_path", "y.npy".into()),
            ("split_seed", 0.into()),
            ("train_fraction", 0.5.into()),
        ])
        .unwrap();
    assert_eq!(d.info.input_shape, vec![1, 2], "each example keeps its shape");
    assert_eq!(d.train.len() + d.test.len(), 4);
    let err = files.refusal(&[("path", "x.npy".into())]);
    assert!(err.contains("`y_path`"), "{err}");

    let x: Vec<u8> = f32s(&[0.5, 1.5, 2.5, 3.5]);
    let y: Vec<u8> = f32s(&[0.1, 0.2]);
    let views = [
        (
            "features",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 2], &x).unwrap(),
        ),
        (
            "target",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &y).unwrap(),
        ),
    ];
    files.write("d.safetensors", safetensors::serialize(views, &None).unwrap());
    let with = [
        ("path", "d.safetensors".into()),
        ("x", "features".into()),
        ("y", "target".into()),
        ("task", "regression".into()),
        ("train_fraction", 0.5.into()),
    ];
    let d = files.build(&with).unwrap();
    assert_eq!(d.train.x.shape, vec![1, 2]);
    assert_eq!(d.info.output_dim, 1);
}

#[test]
fn bad_tables_are_refused_at_their_line_or_parameter() {
    let files = Files::new();
    files.write("ragged.csv", "a,label\n1,0\n2,1,5\n");
    files.write("word.csv", "a,label\n1,0\n2,1\nthree,0\n");
    files.write("nan.csv", "a,label\n1,0\nnan,1\n");
    files.write("inf.csv", "a,label\n1,0\n2,1\ninf,0\n");
    files.write("half.csv", "a,label\n1,0\n2,0.5\n");
    files.write("many.csv", "a,label\n1,0\n2,7\n");
    files.write("negative.csv", "a,label\n1,0\n2,-1\n");
    let cases: [Refusal<'_>; 9] = [
        (&[("path", "ragged.csv".into())], &["line 3", "3 fields", "2 columns"]),
        (&[("path", "word.csv".into())], &["line 4", "three"]),
        (&[("path", "nan.csv".into())], &["line 3"]),
        (&[("path", "inf.csv".into())], &["line 4"]),
        (&[("path", "half.csv".into())], &["0.5", "task: regression"]),
        (&[("path", "many.csv".into()), ("classes", 3.into())], &["label 7", "`classes` is 3"]),
        (&[("path", "negative.csv".into())], &["-1"]),
        (
            &[("path", "word.csv".into()), ("label", "lable".into())],
            &["parameter `label`", "did you mean `label`"],
        ),
        (&[("path", "missing.csv".into())], &["parameter `path`", "no such file"]),
    ];
    for (with, expected) in cases {
        let err = files.refusal(with);
        for e in expected {
            assert!(err.contains(e), "{with:?}: `{e}` not in: {err}");
        }
    }
}

#[test]
fn bad_arrays_and_contradictions_are_refused_naming_the_fix() {
    let files = Files::new();
    let x = npy("<f4", false, &[3, 1], &f32s(&[1., f32::NAN, 2.]));
    let y = npy("<i8", false, &[3], &i64s(&[0, 1, 0]));
    npz(&files.0.path().join("nan.npz"), &[("x", x), ("y", y.clone())]);
    let short = npy("<f4", false, &[2, 1], &f32s(&[1., 2.]));
    npz(&files.0.path().join("short.npz"), &[("x", short), ("y", y)]);
    files.write("t.csv", TABLE);
    let cases: [Refusal<'_>; 5] = [
        (&[("path", "nan.npz".into())], &["NaN", "[1, 0]"]),
        (&[("path", "short.npz".into())], &["3 rows", "has 2"]),
        (
            &[("path", "t.csv".into()), ("test_path", "t.npz".into())],
            &["parameter `test_path`", "format of `path`"],
        ),
        (
            &[
                ("path", "t.csv".into()),
                ("test_path", "t.csv".into()),
                ("train_fraction", 0.5.into()),
            ],
            &["parameter `train_fraction`", "not both"],
        ),
        (&[("path", "t.csv".into()), ("x", "inputs".into())], &["parameter `x`", "`features`"]),
    ];
    for (with, expected) in cases {
        let err = files.refusal(with);
        for e in expected {
            assert!(err.contains(e), "{with:?}: `{e}` not in: {err}");
        }
    }
}

#[test]
fn a_file_beyond_the_memory_budget_is_refused_before_it_is_read() {
    let files = Files::new();
    let mut table = String::from("a,b,label\n");
    for i in 0..2000 {
        table.push_str(&format!("{i},{i},{}\n", i % 2));
    }
    files.write("big.csv", &table);
    let err = files.build_with(&[("path", "big.csv".into())], Some(1000)).unwrap_err().to_string();
    assert!(err.contains("parameter `path`") && err.contains("--max-memory"), "{err}");
    assert!(files.build_with(&[("path", "big.csv".into())], None).is_ok());
}

#[test]
fn the_files_read_are_named_for_the_cache_key_and_a_fixed_split_draws_no_seed() {
    let files = Files::new();
    files.write("t.csv", TABLE);
    files.write("test.csv", TABLE);
    let p = Files::params(&[("path", "t.csv".into()), ("test_path", "test.csv".into())]);
    let read = FileDataset.input_files(&p, files.0.path());
    let names: Vec<_> =
        read.iter().map(|f| f.file_name().unwrap().to_str().unwrap().to_string()).collect();
    assert_eq!(names, ["t.csv", "test.csv"]);
    assert!(read.iter().all(|f| f.is_file()));
    assert!(!FileDataset.uses_seed(&p));
    assert!(
        !FileDataset
            .uses_seed(&Files::params(&[("path", "t.csv".into()), ("split_seed", 3.into())]))
    );
    assert!(FileDataset.uses_seed(&Files::params(&[("path", "t.csv".into())])));
}
