//! The generic transformer against the paper's (bit for bit at its setting), its gradients
//! against central differences, its names and pruning defaults, LayerNorm against its formula,
//! and a two-layer, four-head model that trains.

use std::collections::BTreeMap;

use rand::SeedableRng;
use ticketlab_api::data::{DatasetInfo, Split, TokenInfo};
use ticketlab_api::plugin::{ArchitecturePlugin, DatasetPlugin, Params, StageContext};
use ticketlab_api::runtime::Device;
use ticketlab_api::tensor::{
    Architecture, GraphBuilder, HostTensor, Init, NamedTensors, ParamDef, Var, init_params,
    standard_normal,
};
use ticketlab_tensor::{
    LossKind, Objective, OptimizerConfig, StepSpec, TrainingSession, evaluate, forward, gradients,
};

use super::{PAPER_PARAMS, PARAMS, PaperPlugin, TransformerPlugin};

/// Modular addition mod `p` over every ordered pair.
fn modular(p: usize, train_fraction: f64) -> ticketlab_api::data::Dataset {
    let task = Params::new()
        .with("op", "add")
        .with("p", p)
        .with("pairs", "all")
        .with("train_fraction", train_fraction)
        .with("split_seed", 0)
        .with_defaults(crate::datasets::modular::PARAMS);
    crate::datasets::modular::Modular.build(&task, &StageContext::new("data", 0, ".")).unwrap()
}

fn generic(params: Params, info: &DatasetInfo) -> Box<dyn Architecture> {
    TransformerPlugin.build(&params.with_defaults(PARAMS), info).unwrap()
}

fn bits(t: &HostTensor) -> Vec<u32> {
    t.data.iter().map(|v| v.to_bits()).collect()
}

fn same_bits(a: &NamedTensors, b: &NamedTensors) -> bool {
    a.len() == b.len() && a.iter().all(|(k, t)| b.get(k).is_some_and(|u| bits(t) == bits(u)))
}

/// At the paper's setting (its defaults, and a small multi-head model with MLP biases),
/// `transformer_modular` and `transformer` have the parameters of the paper's model as it was
/// (names, shapes, initialisation, order), the same initial weights, and the same outputs,
/// gradients and training steps, bit for bit.
#[test]
fn the_paper_setting_gives_the_old_numbers_bit_for_bit() {
    let data = modular(7, 0.5);
    let small = Params::new().with("d_model", 8).with("d_mlp", 16).with("heads", 2);
    for paper in [Params::new(), small.clone().with("mlp_bias", true), small] {
        let paper = paper.with_defaults(PAPER_PARAMS);
        let old = super::reference::TransformerPlugin.build(&paper, &data.info).unwrap();
        let archs =
            [PaperPlugin.build(&paper, &data.info).unwrap(), generic(paper.clone(), &data.info)];
        let params = init_params(old.as_ref(), 3);
        let out = forward(old.as_ref(), &params, None, &data.train.x, Device::Cpu).unwrap();
        let ce = Objective::CrossEntropy { temperature: 1.0 };
        let grad = gradients(old.as_ref(), &params, None, &data.train, ce, Device::Cpu).unwrap();
        let trained = |arch: &dyn Architecture| {
            let spec = StepSpec::paper(data.train.len());
            let mut s =
                TrainingSession::new(arch, params.clone(), None, &spec, &data.train).unwrap();
            s.set_batch(&data.train).unwrap();
            let losses: Vec<u64> = (0..3).map(|_| s.step().unwrap().to_bits()).collect();
            (losses, s.params().unwrap())
        };
        let (old_losses, old_trained) = trained(old.as_ref());
        for arch in &archs {
            let arch = arch.as_ref();
            assert_eq!(arch.parameters(), old.parameters(), "{paper:?}");
            assert!(same_bits(&init_params(arch, 3), &params));
            let o = forward(arch, &params, None, &data.train.x, Device::Cpu).unwrap();
            assert_eq!((&o.shape, bits(&o)), (&out.shape, bits(&out)), "{paper:?}");
            let gr = gradients(arch, &params, None, &data.train, ce, Device::Cpu).unwrap();
            assert!(same_bits(&gr, &grad), "{paper:?}");
            let (losses, weights) = trained(arch);
            assert_eq!(losses, old_losses, "{paper:?}");
            assert!(same_bits(&weights, &old_trained), "{paper:?}");
        }
    }
}

/// The gradient agrees with central differences of the loss along a random direction
/// (forward and backward read the same position), and the logits at the last position depend
/// on both tokens: for the paper's model, and for two-layer models with every option on.
#[test]
fn gradient_matches_differences_of_the_loss_and_both_tokens_count() {
    let data = modular(7, 0.5);
    let small = Params::new().with("d_model", 8).with("d_mlp", 16).with("heads", 2);
    let paper = small.clone().with("mlp_bias", true).with_defaults(PAPER_PARAMS);
    let two = small.with("layers", 2).with("positional", "learned").with("mlp_bias", true);
    let archs = [
        PaperPlugin.build(&paper, &data.info).unwrap(),
        generic(two.clone().with("layer_norm", "pre").with("activation", "gelu"), &data.info),
        generic(
            two.with("layer_norm", "post")
                .with("unembed", "tied")
                .with("causal", false)
                .with("activation", "tanh"),
            &data.info,
        ),
    ];
    for arch in &archs {
        check_gradient(arch.as_ref(), &data.train);
    }
}

fn check_gradient(arch: &dyn Architecture, split: &Split) {
    let names: Vec<String> = arch.parameters().into_iter().map(|d| d.name).collect();
    let mut params = init_params(arch, 1);
    // LayerNorm and bias parameters start at 0: move them so their gradients are tested too.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    for def in arch.parameters().iter().filter(|d| d.init == Init::Zeros) {
        let t = params.get_mut(&def.name).unwrap();
        t.data.iter_mut().for_each(|v| *v = 0.3 * standard_normal(&mut rng) as f32);
    }
    let ce = Objective::CrossEntropy { temperature: 1.0 };
    let grad = gradients(arch, &params, None, split, ce, Device::Cpu).unwrap();
    let direction: NamedTensors = params
        .iter()
        .map(|(k, t)| {
            let mut d = t.clone();
            d.data.iter_mut().for_each(|v| *v = standard_normal(&mut rng) as f32);
            (k.clone(), d)
        })
        .collect();
    let along = |eps: f64| {
        let moved: NamedTensors = params
            .iter()
            .map(|(k, t)| {
                let mut m = t.clone();
                m.data
                    .iter_mut()
                    .zip(&direction[k].data)
                    .for_each(|(w, d)| *w += (eps * f64::from(*d)) as f32);
                (k.clone(), m)
            })
            .collect();
        evaluate(arch, &moved, None, split, LossKind::CrossEntropy, Device::Cpu).unwrap().loss
    };
    // Small enough that no ReLU of the MLP changes side along the step.
    let eps = 1e-4;
    let differences = (along(eps) - along(-eps)) / (2.0 * eps);
    let analytic: f64 = grad
        .iter()
        .map(|(k, g)| {
            g.data.iter().zip(&direction[k].data).map(|(a, b)| f64::from(a * b)).sum::<f64>()
        })
        .sum();
    assert!(
        (analytic - differences).abs() <= 2e-3 * (1.0 + differences.abs()),
        "{names:?}: gradient {analytic} vs differences {differences}"
    );

    // Examples (a, b) and (a, b') give different logits: the last position attends to both.
    let out = forward(arch, &params, None, &split.x, Device::Cpu).unwrap();
    let width = out.shape[1];
    let row = |i: usize| &out.data[i * width..(i + 1) * width];
    let per_example: usize = split.x.shape[1..].iter().product();
    let first_token = |i: usize| split.x.data[i * per_example..][..7].to_vec();
    let pair = (0..split.len())
        .flat_map(|i| (0..split.len()).map(move |j| (i, j)))
        .find(|&(i, j)| i != j && first_token(i) == first_token(j));
    let (i, j) = pair.expect("two training pairs share their first token");
    assert_ne!(row(i), row(j), "the second token changes the logits");
}

/// Names follow the paper's for one layer and `blocks.i.` for several; every weight matrix
/// is prunable by default (LayerNorm and biases never), and any one can be chosen by name.
#[test]
fn names_and_prunable_weight_matrices() {
    let info = DatasetInfo {
        input_shape: vec![2, 5],
        output_dim: 5,
        tokens: Some(TokenInfo { vocab: 5, n_ctx: 2 }),
    };
    let small = Params::new().with("d_model", 8).with("d_mlp", 16).with("heads", 4);
    let names = |arch: &dyn Architecture| -> Vec<String> {
        arch.parameters().into_iter().map(|d| d.name).collect()
    };
    let one = generic(small.clone().with("layer_norm", "post").with("unembed", "tied"), &info);
    assert_eq!(
        names(one.as_ref()),
        [
            "embed.W_E",
            "attn.W_Q",
            "attn.W_K",
            "attn.W_V",
            "attn.W_O",
            "mlp.W_in",
            "mlp.W_out",
            "ln1.w",
            "ln1.b",
            "ln2.w",
            "ln2.b"
        ]
    );
    let two = small.with("layers", 2).with("layer_norm", "pre").with("positional", "learned");
    let arch = generic(two.clone(), &info);
    let mut expected = vec!["embed.W_E".to_string(), "pos_embed.W_pos".into()];
    for i in 0..2 {
        for w in ["attn.W_Q", "attn.W_K", "attn.W_V", "attn.W_O", "mlp.W_in", "mlp.W_out"] {
            expected.push(format!("blocks.{i}.{w}"));
        }
    }
    expected.push("unembed.W_U".into());
    for i in 0..2 {
        for ln in ["ln1.w", "ln1.b", "ln2.w", "ln2.b"] {
            expected.push(format!("blocks.{i}.{ln}"));
        }
    }
    expected.extend(["ln_final.w".into(), "ln_final.b".into()]);
    assert_eq!(names(arch.as_ref()), expected);
    for def in arch.parameters() {
        assert_eq!(def.prunable, def.shape.len() == 2, "{}", def.name);
    }
    let matrices: Vec<String> = expected[..15].to_vec();
    assert_eq!(arch.prunable(), matrices);
    for name in &matrices {
        let only = generic(two.clone().with("prunable", vec![name.clone()]), &info);
        assert_eq!(only.prunable(), std::slice::from_ref(name));
    }

    // Tied needs a token for every class; d_model must split into the heads.
    let few_tokens = DatasetInfo { tokens: Some(TokenInfo { vocab: 3, n_ctx: 2 }), ..info.clone() };
    let err = TransformerPlugin
        .build(&Params::new().with("unembed", "tied").with_defaults(PARAMS), &few_tokens)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("unembed") && err.contains("5 classes and 3 tokens"), "{err}");
    let err = TransformerPlugin
        .build(&Params::new().with("heads", 3).with_defaults(PARAMS), &info)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("not divisible by heads = 3"), "{err}");
}

/// LayerNorm alone on `[batch, n]` rows.
struct Norm(usize);

impl Architecture for Norm {
    fn parameters(&self) -> Vec<ParamDef> {
        let def = |name: &str| ParamDef {
            name: name.into(),
            shape: vec![self.0],
            init: Init::Zeros,
            prunable: false,
        };
        vec![def("ln.w"), def("ln.b")]
    }

    fn forward(
        &self,
        g: &mut GraphBuilder,
        p: &BTreeMap<String, Var>,
        x: Var,
    ) -> ticketlab_api::Result<Var> {
        super::forward::layer_norm(g, p, "ln", x)
    }
}

/// LayerNorm computes `(x - mean) / sqrt(var + 1e-5) * (1 + w) + b` per row.
#[test]
fn layer_norm_matches_its_formula() {
    let (rows, n) = (3, 5);
    let x: Vec<f32> = (0..rows * n).map(|i| ((i * 7 % 11) as f32 - 4.0) * 0.6).collect();
    let w = vec![0.0, 0.5, -0.25, 1.0, -1.0];
    let b = vec![0.1, -0.2, 0.0, 0.3, 2.0];
    let params: NamedTensors = [
        ("ln.w".to_string(), HostTensor::new(vec![n], w.clone())),
        ("ln.b".to_string(), HostTensor::new(vec![n], b.clone())),
    ]
    .into();
    let out =
        forward(&Norm(n), &params, None, &HostTensor::new(vec![rows, n], x.clone()), Device::Cpu)
            .unwrap();
    for r in 0..rows {
        let row: Vec<f64> = x[r * n..(r + 1) * n].iter().map(|&v| f64::from(v)).collect();
        let mean = row.iter().sum::<f64>() / n as f64;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        for c in 0..n {
            let want =
                (row[c] - mean) / (var + 1e-5).sqrt() * (1.0 + f64::from(w[c])) + f64::from(b[c]);
            let got = f64::from(out.data[r * n + c]);
            assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "[{r}, {c}]: {got} vs {want}");
        }
    }
}

/// The check: two layers, four heads, pre-LN, learned positions build and train:
/// full-batch AdamW lowers the training loss of modular addition (p = 11) to a tenth of its
/// start within 300 steps.
#[test]
fn two_layers_and_four_heads_train() {
    let data = modular(11, 0.8);
    let arch = generic(
        Params::new()
            .with("layers", 2)
            .with("heads", 4)
            .with("d_model", 32)
            .with("d_mlp", 64)
            .with("layer_norm", "pre")
            .with("positional", "learned"),
        &data.info,
    );
    let n = data.train.len();
    let spec = StepSpec {
        optimizer: OptimizerConfig {
            lr: 3e-3,
            weight_decay: 0.1,
            ..OptimizerConfig::paper_adamw()
        },
        ..StepSpec::paper(n)
    };
    let mut s = TrainingSession::new(
        arch.as_ref(),
        init_params(arch.as_ref(), 0),
        None,
        &spec,
        &data.train,
    )
    .unwrap();
    s.set_batch(&data.train).unwrap();
    let start = s.evaluate(&data.train).unwrap().loss;
    for _ in 0..300 {
        s.step().unwrap();
    }
    let end = s.evaluate(&data.train).unwrap();
    assert!(start.is_finite() && end.loss < 0.1 * start, "loss {start} -> {}", end.loss);
    assert!(end.accuracy.unwrap() > 0.9, "train accuracy {:?}", end.accuracy);
}
