//! Store round trips, corruption and partial states.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use ticketlab_api::data::TokenInfo;
use ticketlab_api::metrics::Norms;
use ticketlab_api::plugin::Params;
use ticketlab_api::tensor::HostTensor;

fn tmp_store(tag: &str) -> (Store, PathBuf) {
    let dir =
        std::env::temp_dir().join(format!("ticketlab-store-test-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    (Store::new(&dir), dir)
}

fn key(c: char) -> StageKey {
    StageKey::parse(&c.to_string().repeat(64)).unwrap()
}

fn tensors(seed: f32) -> NamedTensors {
    BTreeMap::from([
        ("a.W".to_string(), HostTensor::new(vec![2, 2], vec![seed, -1.5, 0.0, 1e-7])),
        ("b".to_string(), HostTensor::new(vec![3], vec![1.0, 2.0, seed])),
    ])
}

fn model(masked: bool) -> ModelArtifact {
    ModelArtifact {
        arch: ArchSpec { plugin: "mlp".into(), params: Params::new().with("width", 4) },
        params: tensors(0.25),
        mask: masked.then(|| {
            BTreeMap::from([(
                "a.W".to_string(),
                HostTensor::new(vec![2, 2], vec![1.0, 0.0, 1.0, 1.0]),
            )])
        }),
        prunable: vec!["a.W".into()],
        origin: "init".into(),
    }
}

fn record(step: u64, test_loss: f64) -> EvalRecord {
    EvalRecord {
        step,
        train_loss: 0.5,
        train_acc: Some(0.75),
        test_loss,
        test_acc: None,
        norms: Norms { l1: 1.0, l2: 2.0 },
        layers: BTreeMap::from([("a.W".into(), Norms { l1: 0.1, l2: 0.2 })]),
    }
}

fn run() -> RunArtifact {
    let records = vec![record(0, 1.0), record(10, f64::NAN)];
    RunArtifact {
        init: model(true),
        final_params: tensors(9.0),
        checkpoints: BTreeMap::from([(0, tensors(0.25)), (10, tensors(9.0))]),
        summary: RunSummary::from_records(&records, 0.95, 0.75).unwrap(),
        records,
    }
}

fn info<'a>(params: &'a BTreeMap<String, Value>) -> ObjectInfo<'a> {
    ObjectInfo {
        stage: "s",
        kind: StageKind::Train,
        plugin: Some("trainer/standard@1.0.0"),
        params,
        seed: 1,
        seconds: 0.5,
    }
}

fn dataset() -> Dataset {
    Dataset {
        description: "tiny".into(),
        info: DatasetInfo {
            input_shape: vec![2],
            output_dim: 3,
            tokens: Some(TokenInfo { vocab: 3, n_ctx: 2 }),
        },
        train: Split {
            x: HostTensor::new(vec![2, 2], vec![1.0, 0.0, 0.0, 1.0]),
            y: Targets::Classes { labels: vec![2, 0], n_classes: 3 },
        },
        test: Split {
            x: HostTensor::new(vec![1, 2], vec![0.5, 0.5]),
            y: Targets::Regression { values: HostTensor::new(vec![1, 1], vec![0.3]) },
        },
    }
}

/// Equality that treats NaN as equal to NaN (records may hold NaN).
fn same(a: &Artifact, b: &Artifact) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

#[test]
fn every_artifact_type_round_trips() {
    let (store, dir) = tmp_store("roundtrip");
    let params = BTreeMap::from([("x".to_string(), json!(1))]);
    let mask = MaskArtifact {
        masks: model(true).mask.unwrap(),
        report: DensityReport::of(&model(true).mask.unwrap()),
        pruner: "magnitude@1.0.0".into(),
        rate: 0.25,
        scored_at: Some(10),
        warnings: vec!["w".into()],
    };
    let artifacts = [
        Artifact::Dataset(Box::new(dataset())),
        Artifact::Model(Box::new(model(false))),
        Artifact::Model(Box::new(model(true))),
        Artifact::Mask(Box::new(mask)),
        Artifact::Run(Box::new(run())),
        Artifact::Analysis(Box::new(AnalysisArtifact {
            analysis: "jaccard".into(),
            value: json!({"a": [1, 2.5]}),
        })),
    ];
    for (i, a) in artifacts.iter().enumerate() {
        let k = key(char::from(b'a' + i as u8));
        assert!(!store.contains(&k));
        store.save(&k, &info(&params), a).unwrap();
        assert!(store.contains(&k));
        let back = store.load(&k).unwrap();
        assert!(same(a, &back), "artifact {i} differs:\n{a:?}\n{back:?}");
        // Saving again keeps the existing object.
        store.save(&k, &info(&params), a).unwrap();
    }
    let meta = store.meta(&key('a')).unwrap();
    assert_eq!(meta.artifact, ArtifactType::Dataset);
    assert!(fs::read_dir(dir.join("tmp")).unwrap().next().is_none(), "tmp is left empty");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn corrupt_objects_are_reported_and_kept() {
    let (store, dir) = tmp_store("corrupt");
    let params = BTreeMap::new();
    let k = key('c');
    store.save(&k, &info(&params), &Artifact::Run(Box::new(run()))).unwrap();
    let file = store.object_dir(&k).join("final.safetensors");
    let mut bytes = fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&file, bytes).unwrap();
    let err = store.load(&k).unwrap_err().to_string();
    assert!(
        err.contains("corrupt") && err.contains("final.safetensors") && err.contains("delete"),
        "{err}"
    );
    assert!(file.exists(), "the corrupt object is not deleted");

    fs::write(store.object_dir(&k).join("meta.json"), "{ not json").unwrap();
    let err = store.load(&k).unwrap_err().to_string();
    assert!(err.contains("meta.json"), "{err}");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn partial_states_round_trip_and_are_replaced() {
    let (store, dir) = tmp_store("partial");
    let k = key('9');
    assert!(store.load_partial(&k).unwrap().is_none());
    let mut state = TrainState {
        step: 5,
        params: tensors(1.0),
        optimizer: BTreeMap::from([(
            "exp_avg/a.W".to_string(),
            HostTensor::new(vec![1], vec![0.5]),
        )]),
        records: vec![record(0, 1.0)],
        checkpoints: BTreeMap::from([(0, tensors(0.0))]),
        rng_counter: 5,
    };
    store.save_partial(&k, &state).unwrap();
    assert_eq!(store.load_partial(&k).unwrap().unwrap(), state);
    state.step = 10;
    store.save_partial(&k, &state).unwrap();
    assert_eq!(store.partial_step(&k).unwrap(), Some(10));
    fs::write(store.partial_path(&k), b"junk").unwrap();
    let err = store.load_partial(&k).unwrap_err().to_string();
    assert!(err.contains("corrupt"), "{err}");
    store.remove_partial(&k).unwrap();
    store.remove_partial(&k).unwrap();
    assert!(store.load_partial(&k).unwrap().is_none());
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn floats_read_back_bit_for_bit() {
    let mut x: f64 = 0.1;
    let values: Vec<f64> = (0..2000)
        .map(|i| {
            x = (x * 3.7 + 0.123).fract() * 10f64.powi((i % 40) - 20);
            if i % 2 == 0 { x } else { -x }
        })
        .chain([3.8391159176826477, 2.8391159176826477, 1e-300, 5e-324, f64::MAX, 0.0])
        .collect();
    let text = serde_json::to_string(&values).unwrap();
    let back: Vec<f64> = parse_json(text.as_bytes()).unwrap();
    for (a, b) in values.iter().zip(&back) {
        assert_eq!(a.to_bits(), b.to_bits(), "{a} read back as {b}");
    }
}
