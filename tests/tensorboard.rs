//! `ticketlab export DIR --tensorboard OUT`: the event files are read back here by hand, from
//! the TFRecord and protocol buffer specifications (with a CRC-32C computed bit by bit), not
//! with the code or crates that wrote them. CI also reads them with TensorBoard itself
//! (tests/export/check_tensorboard.py).

use std::collections::BTreeMap;
use std::path::Path;

use crate::cli::{root, stderr, stdout, ticketlab, tiny, with};

/// CRC-32C (reflected polynomial 0x82F63B78), one bit at a time.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}

fn masked(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// The records of an event file, each checked against its two CRCs.
fn records(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len_bytes = &bytes[at..at + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        assert_eq!(len_crc, masked(crc32c(len_bytes)), "length CRC of the record at {at}");
        let data = &bytes[at + 12..at + 12 + len];
        let data_crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
        assert_eq!(data_crc, masked(crc32c(data)), "data CRC of the record at {at}");
        out.push(data);
        at += 16 + len;
    }
    out
}

/// A protocol buffer field's value by wire type.
#[derive(Debug, Clone, Copy)]
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = bytes[*at];
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
    }
    value
}

/// The fields of a message, in order, as (number, value).
fn fields(bytes: &[u8]) -> Vec<(u64, Field<'_>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let key = varint(bytes, &mut at);
        let field = match key & 7 {
            0 => Field::Varint(varint(bytes, &mut at)),
            1 => {
                at += 8;
                Field::Fixed64(u64::from_le_bytes(bytes[at - 8..at].try_into().unwrap()))
            }
            2 => {
                let len = varint(bytes, &mut at) as usize;
                at += len;
                Field::Bytes(&bytes[at - len..at])
            }
            5 => {
                at += 4;
                Field::Fixed32(u32::from_le_bytes(bytes[at - 4..at].try_into().unwrap()))
            }
            other => panic!("wire type {other}"),
        };
        out.push((key >> 3, field));
    }
    out
}

/// A summary value read back.
#[derive(Debug, Clone, PartialEq)]
enum Read {
    Scalar(f32),
    Text { plugin: String, text: String },
}

/// An event file as (file version, [(wall time, step, tag, value)]).
fn read_events(path: &Path) -> (String, Vec<(f64, u64, String, Read)>) {
    let bytes = std::fs::read(path).unwrap();
    let mut version = String::new();
    let mut values = Vec::new();
    for record in records(&bytes) {
        let (mut wall_time, mut step) = (0.0, 0);
        for (number, field) in fields(record) {
            match (number, field) {
                (1, Field::Fixed64(bits)) => wall_time = f64::from_bits(bits),
                (2, Field::Varint(v)) => step = v,
                (3, Field::Bytes(b)) => version = String::from_utf8(b.to_vec()).unwrap(),
                (5, Field::Bytes(summary)) => {
                    for (_, value) in fields(summary) {
                        let Field::Bytes(value) = value else { panic!("a summary holds values") };
                        values.push((wall_time, step, summary_value(value)));
                    }
                }
                other => panic!("unexpected event field {other:?}"),
            }
        }
    }
    (version, values.into_iter().map(|(w, s, (tag, v))| (w, s, tag, v)).collect())
}

fn summary_value(bytes: &[u8]) -> (String, Read) {
    let (mut tag, mut scalar, mut plugin, mut text) = (String::new(), None, None, None);
    for (number, field) in fields(bytes) {
        match (number, field) {
            (1, Field::Bytes(b)) => tag = String::from_utf8(b.to_vec()).unwrap(),
            (2, Field::Fixed32(bits)) => scalar = Some(f32::from_bits(bits)),
            (8, Field::Bytes(tensor)) => {
                let fs = fields(tensor);
                assert!(matches!(fs[0], (1, Field::Varint(7))), "a DT_STRING tensor: {fs:?}");
                for (n, f) in fs {
                    if let (8, Field::Bytes(s)) = (n, f) {
                        text = Some(String::from_utf8(s.to_vec()).unwrap());
                    }
                }
            }
            (9, Field::Bytes(metadata)) => {
                if let [(1, Field::Bytes(plugin_data))] = fields(metadata)[..]
                    && let (1, Field::Bytes(name)) = fields(plugin_data)[0]
                {
                    plugin = Some(String::from_utf8(name.to_vec()).unwrap());
                }
            }
            other => panic!("unexpected value field {other:?}"),
        }
    }
    match (scalar, text) {
        (Some(x), None) => (tag, Read::Scalar(x)),
        (None, Some(text)) => (tag, Read::Text { plugin: plugin.unwrap_or_default(), text }),
        other => panic!("{tag}: {other:?}"),
    }
}

/// The scalars `tag` of an event file's values, by step.
fn series(values: &[(f64, u64, String, Read)], tag: &str) -> BTreeMap<u64, f32> {
    values
        .iter()
        .filter_map(|(_, step, t, v)| match v {
            Read::Scalar(x) if t == tag => Some((*step, *x)),
            _ => None,
        })
        .collect()
}

/// metrics.jsonl's `field` (a path such as `norms.l2`) of `arm`, by step, as float32.
fn metric(run: &Path, arm: &str, path: &[&str]) -> BTreeMap<u64, f32> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["arm"] == arm)
        .map(|v| {
            let x = path.iter().fold(&v, |v, key| &v[key]);
            (v["step"].as_u64().unwrap(), x.as_f64().unwrap() as f32)
        })
        .collect()
}

fn sweep_run(cwd: &Path) {
    let file = root().join("experiments/quickstart.yaml");
    let mut extra = tiny();
    extra.extend(["--grid".to_string(), "mask.rate=[0.3, 0.6]".to_string()]);
    let o = ticketlab(
        &with(&["run", file.to_str().unwrap(), "--quiet", "--out", "runs/q"], &extra),
        cwd,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn a_run_exports_to_tensorboard_one_folder_per_arm_with_its_evaluations_and_grokking_numbers() {
    let cwd = tempfile::tempdir().unwrap();
    sweep_run(cwd.path());
    let o = ticketlab(&["export", "runs/q", "--tensorboard", "tb"], cwd.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("the evaluations of 3 arms"), "{}", stdout(&o));
    let run = cwd.path().join("runs/q");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    for row in summary["arms"].as_array().unwrap() {
        let arm = row["arm"].as_str().unwrap();
        let file = cwd.path().join("tb").join(arm).join("events.out.tfevents.q.ticketlab");
        let (version, values) = read_events(&file);
        assert_eq!(version, "brain.Event:2", "{arm}");
        for (tag, path) in [
            ("accuracy/train", &["train_acc"][..]),
            ("accuracy/test", &["test_acc"]),
            ("loss/train", &["train_loss"]),
            ("loss/test", &["test_loss"]),
            ("norm/l1", &["norms", "l1"]),
            ("norm/l2", &["norms", "l2"]),
            ("layer_l2/inproj.W", &["layers", "inproj.W", "l2"]),
            ("layer_l1/unembed.W_U", &["layers", "unembed.W_U", "l1"]),
        ] {
            let expected = metric(&run, arm, path);
            assert!(expected.len() > 2, "{arm}: {tag}");
            assert_eq!(series(&values, tag), expected, "{arm}: {tag}");
        }
        // Wall times never go back.
        assert!(values.windows(2).all(|w| w[0].0 <= w[1].0), "{arm}");
        let texts: Vec<_> = values.iter().filter(|v| matches!(v.3, Read::Text { .. })).collect();
        let [(_, step, tag, Read::Text { plugin, text })] = texts.as_slice() else {
            panic!("{arm}: one text value, got {texts:?}")
        };
        assert_eq!((tag.as_str(), plugin.as_str()), ("grokking", "text"));
        assert_eq!(*step, row["steps"].as_u64().unwrap(), "{arm}: at the last step");
        let t_gen = row["t_gen"].as_u64().map_or("never".to_string(), |t| t.to_string());
        assert!(text.contains(&format!("| t_gen | {t_gen} |")), "{arm}: {text}");
        assert!(text.contains(&format!("| seed | {} |", row["seed"])), "{arm}: {text}");
        if arm != "dense" {
            assert!(text.contains("| mask.rate | 0."), "{arm}: {text}");
            assert!(text.contains("against dense"), "{arm}: {text}");
        }
    }

    // Exporting again rewrites the same bytes.
    let file = cwd.path().join("tb/dense/events.out.tfevents.q.ticketlab");
    let first = std::fs::read(&file).unwrap();
    let o = ticketlab(&["export", "runs/q", "--tensorboard", "tb", "--arm", "dense"], cwd.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("of 1 arms"), "{}", stdout(&o));
    assert_eq!(std::fs::read(&file).unwrap(), first);
}

#[test]
fn tensorboard_export_refuses_mixing_runs_and_exports_a_run_still_going_from_its_live_log() {
    let cwd = tempfile::tempdir().unwrap();
    sweep_run(cwd.path());
    let o = ticketlab(&["export", "runs/q", "--tensorboard", "tb", "--arm", "dense"], cwd.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // Another run into the same folder: TensorBoard would merge both, so it is refused.
    let unfinished = cwd.path().join("runs/p");
    std::fs::create_dir_all(&unfinished).unwrap();
    for name in ["live.jsonl", "experiment.resolved.json"] {
        std::fs::copy(cwd.path().join("runs/q").join(name), unfinished.join(name)).unwrap();
    }
    let o = ticketlab(&["export", "runs/p", "--tensorboard", "tb", "--arm", "dense"], cwd.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o).replace("\n  │ ", " ");
    assert!(
        err.contains("holds another run's events") && err.contains("--tensorboard OUT/RUN"),
        "{err}"
    );

    // Without a manifest the run is unfinished: its live log's evaluations, marked so far.
    let o = ticketlab(&["export", "runs/p", "--tensorboard", "live"], cwd.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("so far (the run has not finished)"), "{}", stdout(&o));
    let (_, values) = read_events(&cwd.path().join("live/dense/events.out.tfevents.p.ticketlab"));
    let run = cwd.path().join("runs/q");
    assert_eq!(series(&values, "accuracy/test"), metric(&run, "dense", &["test_acc"]));
    assert_eq!(series(&values, "norm/l2"), metric(&run, "dense", &["norms", "l2"]));
    assert!(series(&values, "norm/l1").is_empty(), "the live log has no L1 norm");
    let text = values.iter().find_map(|v| match &v.3 {
        Read::Text { text, .. } => Some(text.clone()),
        _ => None,
    });
    assert!(text.unwrap().contains("numbers so far"));

    // A misspelt arm names the closest; --out does not go with --tensorboard.
    let o =
        ticketlab(&["export", "runs/q", "--tensorboard", "x", "--arm", "ticket_trian"], cwd.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("did you mean `ticket_train`?"), "{}", stderr(&o));
    let o = ticketlab(&["export", "runs/q", "--tensorboard", "x", "--out", "f.npz"], cwd.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
    let o = ticketlab(&["export", "nowhere", "--tensorboard", "x"], cwd.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a run directory"), "{}", stderr(&o));
}
