//! `ticketlab export` and a model stage's `weights`: tickets out to PyTorch and NumPy, weights
//! in from them. The files are read back here by hand, from the formats' specifications, not
//! with the crates that wrote them.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::cli::{root, stderr, stdout, ticketlab, tiny, with};

/// A tensor read back: shape and float32 values.
type Tensor = (Vec<usize>, Vec<f32>);

/// A safetensors file by its specification: an 8-byte little-endian header length, a JSON
/// header of `{name: {dtype, shape, data_offsets}}` (and `__metadata__`), then the data.
fn read_safetensors(path: &Path) -> (BTreeMap<String, Tensor>, BTreeMap<String, String>) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut tensors = BTreeMap::new();
    let mut metadata = BTreeMap::new();
    for (name, entry) in header.as_object().unwrap() {
        if name == "__metadata__" {
            for (k, v) in entry.as_object().unwrap() {
                metadata.insert(k.clone(), v.as_str().unwrap().to_string());
            }
            continue;
        }
        assert_eq!(entry["dtype"], "F32", "{name}");
        let shape: Vec<usize> = entry["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let offsets = entry["data_offsets"].as_array().unwrap();
        let (a, b) = (offsets[0].as_u64().unwrap() as usize, offsets[1].as_u64().unwrap() as usize);
        tensors.insert(name.clone(), (shape, floats(&data[a..b])));
    }
    (tensors, metadata)
}

/// An `.npz` by numpy's format: a zip of `NAME.npy`, each the magic `\x93NUMPY`, a version, a
/// header length, a Python dict `{'descr': '<f4', 'fortran_order': False, 'shape': (...), }`
/// and the values.
fn read_npz(path: &Path) -> BTreeMap<String, Tensor> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let name = entry.name().unwrap().strip_suffix(".npy").unwrap().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        assert_eq!(&bytes[..6], b"\x93NUMPY", "{name}");
        let (len, start) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            _ => (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12),
        };
        let header = std::str::from_utf8(&bytes[start..start + len]).unwrap();
        assert!(header.contains("'descr': '<f4'"), "{name}: {header}");
        assert!(header.contains("'fortran_order': False"), "{name}: {header}");
        let dims = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
        let shape = dims.split(',').filter_map(|d| d.trim().parse().ok()).collect();
        out.insert(name, (shape, floats(&bytes[start + len..])));
    }
    out
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// Runs the tiny quickstart in `cwd` into `runs/q`.
fn quickstart_run(cwd: &Path) {
    let file = root().join("experiments/quickstart.yaml");
    let set = tiny();
    let o =
        ticketlab(&with(&["run", file.to_str().unwrap(), "--quiet", "--out", "runs/q"], &set), cwd);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn a_ticket_exports_with_state_dict_names_and_its_mask_applied() {
    let cwd = tempfile::tempdir().unwrap();
    quickstart_run(cwd.path());
    let o = ticketlab(
        &["export", "runs/q", "--arm", "ticket_train", "--out", "t.safetensors"],
        cwd.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (tensors, metadata) = read_safetensors(&cwd.path().join("t.safetensors"));
    // The quickstart's mlp_modular: embed [d_emb, p], inproj [width, d_emb], outproj
    // [d_emb, width], unembed [d_emb, p], as documented for the architecture.
    let expected = [
        ("embed.W_E", vec![128, 31]),
        ("inproj.W", vec![48, 128]),
        ("outproj.W", vec![128, 48]),
        ("unembed.W_U", vec![128, 31]),
    ];
    for what in ["init", "final", "mask"] {
        for (name, shape) in &expected {
            let (s, _) = &tensors[&format!("{what}/{name}")];
            assert_eq!(s, shape, "{what}/{name}");
        }
    }
    assert_eq!(tensors.len(), 12);
    assert_eq!(metadata["ticketlab.arm"], "ticket_train");
    assert_eq!(metadata["ticketlab.architecture"], "mlp_modular");
    assert_eq!(metadata["ticketlab.final_step"], "40");
    let (mut kept, mut total) = (0, 0);
    for (name, _) in &expected {
        let mask = &tensors[&format!("mask/{name}")].1;
        assert!(mask.iter().all(|&m| m == 0.0 || m == 1.0), "{name}: a mask is 0 or 1");
        kept += mask.iter().filter(|&&m| m == 1.0).count();
        total += mask.len();
        for what in ["init", "final"] {
            let w = &tensors[&format!("{what}/{name}")].1;
            let masked: Vec<f32> = w.iter().zip(mask).map(|(w, m)| w * m).collect();
            assert_eq!(
                bits(&masked),
                bits(w),
                "{what}/{name}: the stored weights are the masked ones"
            );
        }
    }
    // The quickstart prunes 60% of its prunable weights globally.
    let density = kept as f64 / total as f64;
    assert!((density - 0.4).abs() < 1e-3, "density {density}");

    // One item: the parameter names themselves, in an .npz numpy reads, equal to the above.
    let o = ticketlab(
        &["export", "runs/q", "--arm", "ticket_train", "--what", "final", "--out", "f.npz"],
        cwd.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let npz = read_npz(&cwd.path().join("f.npz"));
    assert_eq!(npz.keys().collect::<Vec<_>>(), expected.iter().map(|(n, _)| n).collect::<Vec<_>>());
    for (name, (shape, values)) in &npz {
        let (s, v) = &tensors[&format!("final/{name}")];
        assert_eq!((shape, bits(values)), (s, bits(v)), "{name}");
    }
}

#[test]
fn export_refuses_what_a_stage_does_not_hold_naming_the_fix() {
    let cwd = tempfile::tempdir().unwrap();
    quickstart_run(cwd.path());
    let cases: [(&[&str], &str); 4] = [
        (&["--arm", "ticket_trian", "--out", "x.npz"], "did you mean `ticket_train`?"),
        (
            &["--arm", "dense", "--what", "mask", "--out", "x.npz"],
            "`dense` is dense: it has no mask",
        ),
        (&["--arm", "mask", "--what", "init", "--out", "x.npz"], "leave `init` out of --what"),
        (&["--arm", "dense", "--out", "x.pt"], "neither a .safetensors nor a .npz"),
    ];
    for (args, message) in cases {
        let o = ticketlab(
            &with(&["export", "runs/q"], &args.iter().map(|a| a.to_string()).collect::<Vec<_>>()),
            cwd.path(),
        );
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).replace("\n  │ ", " ").contains(message), "{args:?}: {}", stderr(&o));
    }
    let elsewhere = ticketlab(
        &["export", "runs/q", "--arm", "dense", "--out", "x.npz", "--store", "other"],
        cwd.path(),
    );
    assert_eq!(elsewhere.status.code(), Some(2));
    assert!(stderr(&elsewhere).contains("--store"), "{}", stderr(&elsewhere));
}

const WEIGHTS_IN: &str = "name: weights_in
stages:
  data: { kind: dataset, uses: modular, with: { op: add, p: 31, pairs: all, train_fraction: 0.4 } }
  init: { kind: model, uses: mlp_modular, with: { d_emb: 128, width: WIDTH, weights: FILE }, inputs: { data: data } }
  dense: { kind: train, uses: standard, with: { steps: 60, lr: 0.003, weight_decay: 1.0, eval_every: 20 }, inputs: { model: init, data: data } }
";

fn weights_in(cwd: &Path, width: &str, file: &str) -> std::path::PathBuf {
    let path = cwd.join(format!("w-{width}-{}.yaml", file.replace(['.', '/'], "_")));
    std::fs::write(&path, WEIGHTS_IN.replace("WIDTH", width).replace("FILE", file)).unwrap();
    path
}

#[test]
fn a_model_starts_from_a_weights_file_shape_checked_and_keyed_by_content() {
    let cwd = tempfile::tempdir().unwrap();
    quickstart_run(cwd.path());
    let o = ticketlab(
        &["export", "runs/q", "--arm", "init", "--what", "init", "--out", "w0.safetensors"],
        cwd.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // The quickstart's own initialisation, read from the file, trains to the same numbers.
    let file = weights_in(cwd.path(), "48", "w0.safetensors");
    let o = ticketlab(&["run", file.to_str().unwrap(), "--quiet", "--out", "runs/w"], cwd.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let summary = |run: &str| {
        let csv = std::fs::read_to_string(cwd.path().join(run).join("summary.csv")).unwrap();
        csv.lines().find(|l| l.starts_with("dense,")).unwrap().to_string()
    };
    assert_eq!(summary("runs/w"), summary("runs/q"));

    // Another architecture's shapes are refused at the parameter, with both shapes.
    let narrow = weights_in(cwd.path(), "40", "w0.safetensors");
    let o = ticketlab(&["run", narrow.to_str().unwrap(), "--quiet", "--out", "runs/n"], cwd.path());
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o).replace("\n  │ ", " ");
    assert!(
        err.contains("parameter `weights`")
            && err.contains("[48, 128]")
            && err.contains("[40, 128]"),
        "{err}"
    );

    // A file of several exports names the prefix to read.
    let o =
        ticketlab(&["export", "runs/q", "--arm", "ticket_train", "--out", "all.npz"], cwd.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let all = weights_in(cwd.path(), "48", "all.npz");
    let o = ticketlab(&["run", all.to_str().unwrap(), "--quiet", "--out", "runs/a"], cwd.path());
    assert!(stderr(&o).replace("\n  │ ", " ").contains("weights_prefix"), "{}", stderr(&o));

    // Editing the file computes the model again; the same content is found in the store.
    let plan = |f: &Path| stdout(&ticketlab(&["plan", f.to_str().unwrap()], cwd.path()));
    let init_line =
        |p: String| p.lines().find(|l| l.trim_start().starts_with("init")).unwrap().to_string();
    assert!(init_line(plan(&file)).ends_with("cached"), "{}", plan(&file));
    let mut bytes = std::fs::read(cwd.path().join("w0.safetensors")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(cwd.path().join("w0.safetensors"), bytes).unwrap();
    assert!(init_line(plan(&file)).ends_with("will run"), "{}", plan(&file));
}
