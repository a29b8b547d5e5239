//! The export glue, called the way the host calls it.

use serde_json::Value;

use crate::abi::{
    self, BuildRequest, DatasetOutput, LayerView as RawLayer, ScoreOutput, ScoreRequest, StrView,
};
use crate::export::{self, Declared, Registration};
use crate::*;

#[derive(Default)]
struct Scaled;

impl Pruner for Scaled {
    const NAME: &'static str = "scaled";
    const VERSION: &'static str = "0.1.0";
    const SUMMARY: &'static str = "factor * |w|";

    fn params() -> Vec<ParamDecl> {
        vec![ParamDecl::float("factor", "scale").default(1.0)]
    }

    fn score(
        &self,
        params: &Params,
        layers: &[LayerView<'_>],
        ctx: &ScoreContext,
    ) -> Result<Vec<Vec<f32>>, String> {
        let factor = params.f64("factor")? as f32;
        match params.str("behave").unwrap_or("ok") {
            "panic" => panic!("scaled blew up at seed {}", ctx.seed),
            "refuse" => Err("cannot score this".into()),
            _ => Ok(layers
                .iter()
                .map(|l| l.weights.iter().map(|w| factor * w.abs()).collect())
                .collect()),
        }
    }
}

#[derive(Default)]
struct Tiny;

impl Dataset for Tiny {
    const NAME: &'static str = "tiny";
    const VERSION: &'static str = "0.1.0";
    const SUMMARY: &'static str = "two examples";

    fn params() -> Vec<ParamDecl> {
        vec![]
    }

    fn build(&self, _: &Params, seed: u64) -> Result<DatasetOut, String> {
        Ok(DatasetOut {
            description: format!("tiny {seed}"),
            input_shape: vec![2],
            targets: TargetKind::Classes(2),
            tokens: None,
            train: SplitOut { x: vec![0.0, 1.0], y: vec![1.0] },
            test: SplitOut { x: vec![1.0, 0.0], y: vec![0.0] },
        })
    }
}

/// Calls the pruner trampoline with one layer and returns (status, scores, counts, error).
fn call_score(params: &str) -> (abi::Status, Vec<f32>, Vec<u64>, String) {
    let (shape, w, m) = ([2usize, 2], [1.0f32, -2.0, 3.0, -4.0], [1.0f32; 4]);
    let layer = RawLayer {
        name: StrView::new("l"),
        shape: shape.as_ptr(),
        ndim: 2,
        weights: w.as_ptr(),
        mask: m.as_ptr(),
        len: 4,
    };
    let req =
        ScoreRequest { params_json: StrView::new(params), seed: 7, layers: &layer, n_layers: 1 };
    let mut out = ScoreOutput::EMPTY;
    // SAFETY: valid request and output for the call.
    let status = unsafe { export::score::<Scaled>(&req, &mut out) };
    // SAFETY: buffers come from the trampoline and are freed once below.
    let result = unsafe {
        (
            out.scores.as_slice::<f32>().unwrap().to_vec(),
            out.counts.as_slice::<u64>().unwrap().to_vec(),
            String::from_utf8(out.error.as_slice::<u8>().unwrap().to_vec()).unwrap(),
        )
    };
    // SAFETY: each buffer is freed once.
    unsafe {
        export::free_buf(out.scores);
        export::free_buf(out.counts);
        export::free_buf(out.error);
    }
    (status, result.0, result.1, result.2)
}

#[test]
fn scores_come_back_flat_with_counts() {
    let (status, scores, counts, error) = call_score(r#"{"factor": 2.0}"#);
    assert_eq!((status, error.as_str()), (abi::STATUS_OK, ""));
    assert_eq!(scores, vec![2.0, 4.0, 6.0, 8.0]);
    assert_eq!(counts, vec![4]);
}

#[test]
fn refusals_and_panics_become_statuses() {
    let (status, _, _, error) = call_score(r#"{"factor": 1.0, "behave": "refuse"}"#);
    assert_eq!((status, error.as_str()), (abi::STATUS_ERROR, "cannot score this"));
    let (status, _, _, error) = call_score(r#"{"factor": 1.0, "behave": "panic"}"#);
    assert_eq!(status, abi::STATUS_PANIC);
    let at = format!("panicked at {}:", file!());
    assert!(error.starts_with(&at) && error.ends_with(": scaled blew up at seed 7"), "{error}");
    let (status, _, _, error) = call_score("{not json");
    assert_eq!(status, abi::STATUS_ERROR);
    assert!(error.starts_with("the parameters are not valid JSON"), "{error}");
}

#[test]
fn datasets_return_metadata_and_splits() {
    let req = BuildRequest { params_json: StrView::new("{}"), seed: 3 };
    let mut out = DatasetOutput::EMPTY;
    // SAFETY: valid request and output for the call.
    let status = unsafe { export::build::<Tiny>(&req, &mut out) };
    assert_eq!(status, abi::STATUS_OK);
    // SAFETY: buffers come from the trampoline; freed once below.
    unsafe {
        let meta: Value = serde_json::from_slice(out.metadata.as_slice::<u8>().unwrap()).unwrap();
        assert_eq!(meta["description"], "tiny 3");
        assert_eq!(meta["targets"]["classes"], 2);
        assert_eq!(meta["tokens"], Value::Null);
        assert_eq!(out.train_x.as_slice::<f32>().unwrap(), &[0.0, 1.0]);
        assert_eq!(out.test_y.as_slice::<f32>().unwrap(), &[0.0]);
        assert!(out.train_x.as_slice::<u64>().is_none(), "element type is checked");
        for b in [out.metadata, out.train_x, out.train_y, out.test_x, out.test_y, out.error] {
            export::free_buf(b);
        }
    }
}

#[test]
fn entry_lists_every_declared_plugin() {
    static CELL: std::sync::OnceLock<Registration> = std::sync::OnceLock::new();
    let list =
        export::entry(&CELL, || vec![Declared::pruner::<Scaled>(), Declared::dataset::<Tiny>()]);
    // SAFETY: the list lives in `CELL` for the rest of the process.
    let list = unsafe { &*list };
    assert_eq!((list.abi_version, list.status, list.len), (abi::ABI_VERSION, abi::STATUS_OK, 2));
    // SAFETY: `len` descriptors with views into the registration.
    let plugins = unsafe { std::slice::from_raw_parts(list.plugins, list.len) };
    let names: Vec<_> = plugins.iter().map(|p| unsafe { p.name.to_str() }.unwrap()).collect();
    assert_eq!(names, ["scaled", "tiny"]);
    assert!(plugins[0].score.is_some() && plugins[0].build.is_none());
    assert_eq!(plugins[1].kind, abi::KIND_DATASET);
    // SAFETY: as above.
    let schema: Value =
        serde_json::from_str(unsafe { plugins[0].params_schema.to_str() }.unwrap()).unwrap();
    assert_eq!(schema[0]["name"], "factor");
}

#[test]
fn a_panic_while_declaring_is_reported_by_the_entry() {
    static CELL: std::sync::OnceLock<Registration> = std::sync::OnceLock::new();
    let list = export::entry(&CELL, || panic!("bad schema"));
    // SAFETY: the list lives in `CELL`.
    let list = unsafe { &*list };
    assert_eq!((list.status, list.len), (abi::STATUS_PANIC, 0));
    let error = unsafe { list.error.to_str() }.unwrap();
    assert!(error.starts_with("panicked at ") && error.ends_with(": bad schema"), "{error}");
}
