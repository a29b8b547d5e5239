//! Memory budgets: a stage checks what it is about to allocate, from shapes and counts known
//! beforehand, so that a value too large for the machine is refused with an error naming the
//! parameter instead of aborting the process when the allocation fails.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::data::DatasetShape;
use crate::ir::{ExperimentIr, StageKind};
use crate::plugin::registry::Registry;
use crate::plugin::{ModelSize, Params};
use crate::tensor::{Architecture, ParamDef};
use crate::{Error, Result};

/// The memory a stage may use: `--max-memory`, else this machine's memory. Part of the
/// [`Runtime`](crate::runtime::Runtime) a run is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    /// The limit in bytes; `None`: this machine's memory.
    pub max_memory: Option<u64>,
}

impl Budget {
    /// A budget of `max_memory` bytes (`None`: this machine's memory).
    pub fn new(max_memory: Option<u64>) -> Self {
        Self { max_memory }
    }

    /// The memory a stage may use, and where that figure comes from.
    pub fn limit(&self) -> (u64, &'static str) {
        match self.max_memory {
            Some(n) => (n, "--max-memory"),
            None => (machine_memory(), "this machine's memory"),
        }
    }

    /// Refuses `bytes` beyond the limit: an [`Error::Param`] at `key` saying what needs the
    /// memory and how to need less (`fix`).
    pub fn require(&self, key: &str, what: &str, bytes: u64, fix: &str) -> Result<()> {
        let (limit, source) = self.limit();
        if bytes <= limit {
            return Ok(());
        }
        Err(Error::param(
            key,
            format!(
                "{what} would take about {}, more than the {} of {source}; {fix}",
                human(bytes),
                human(limit)
            ),
        ))
    }

    /// Refuses a model whose weights would not fit, naming the architecture parameter with the
    /// largest value (the likeliest culprit) and the largest weight tensor.
    pub fn check_weights(&self, arch: &dyn Architecture, params: &Params) -> Result<()> {
        let defs = arch.parameters();
        let weights = weight_count(&defs);
        let largest = defs.iter().max_by_key(|d| elements(&d.shape));
        let what = match largest {
            Some(d) => format!(
                "the model's {weights} weights (the largest, `{}`, is {:?})",
                d.name, d.shape
            ),
            None => format!("the model's {weights} weights"),
        };
        self.require(culprit(params), &what, f32_bytes(weights), "use a smaller model")
    }

    /// The memory of each stage of `ir` that can be estimated from parameters alone, in bytes, or
    /// the [`Error::Param`] of a stage beyond the limit. Stages whose size cannot be known before
    /// they run (a dataset without [`crate::plugin::DatasetPlugin::shape`], analyses) are left out.
    /// Nothing is allocated: architectures are built (which only records shapes), never their
    /// weights.
    pub fn estimate(
        &self,
        ir: &ExperimentIr,
        registry: &Registry,
    ) -> BTreeMap<String, Result<u64>> {
        let mut shapes: BTreeMap<&str, DatasetShape> = BTreeMap::new();
        // The model each stage works on: its size, the model stage and that stage's likeliest
        // culprit parameter (where a model too large to train is reported).
        let mut models: BTreeMap<&str, Model> = BTreeMap::new();
        let mut out = BTreeMap::new();
        for stage in &ir.stages {
            let params = Params(stage.params.clone());
            let plugin = stage.plugin.as_deref().unwrap_or_default();
            let input =
                |port: &str| stage.inputs.get(port).and_then(|p| p.first()).map(String::as_str);
            let model_of = |port: &str, models: &BTreeMap<&str, Model>| {
                input(port)
                    .and_then(|m| models.get(m).cloned().or_else(|| upstream_model(ir, m, models)))
            };
            let estimate = match stage.kind {
                StageKind::Dataset => {
                    registry.dataset(plugin).ok().and_then(|d| d.shape(&params)).map(|shape| {
                        let row = elements(&shape.info.input_shape)
                            .saturating_add(shape.info.output_dim as u64);
                        let bytes =
                            f32_bytes(row.saturating_mul((shape.train + shape.test) as u64));
                        shapes.insert(&stage.name, shape);
                        Ok(bytes)
                    })
                }
                StageKind::Model => input("data").and_then(|d| shapes.get(d)).and_then(|shape| {
                    let arch =
                        registry.architecture(plugin).ok()?.build(&params, &shape.info).ok()?;
                    let size = model_size(arch.as_ref(), shape.train);
                    let model = Model {
                        size,
                        stage: stage.name.clone(),
                        culprit: culprit(&params).to_string(),
                    };
                    models.insert(&stage.name, model);
                    Some(
                        self.check_weights(arch.as_ref(), &params)
                            .map(|()| f32_bytes(size.weights)),
                    )
                }),
                StageKind::Train => model_of("model", &models).and_then(|model| {
                    models.insert(&stage.name, model.clone());
                    match registry.trainer(plugin).ok()?.memory(&params, &model.size, self) {
                        // Too large to train at all: the model's sizes are to change, not the
                        // trainer's, so the model stage is refused.
                        Err(Error::Param { key, message }) if key == "model" => {
                            let refused = Err(Error::param(model.culprit.clone(), message));
                            let slot = out.entry(model.stage.clone()).or_insert(Ok(0));
                            if slot.is_ok() {
                                *slot = refused;
                            }
                            None
                        }
                        other => other.transpose(),
                    }
                }),
                StageKind::Prune | StageKind::Rewind => model_of("from", &models).map(|model| {
                    // The weights read and the mask or weights written.
                    let bytes = f32_bytes(model.size.weights).saturating_mul(2);
                    models.insert(&stage.name, model);
                    Ok(bytes)
                }),
                StageKind::Analyze | StageKind::Report => None,
            };
            if let Some(e) = estimate {
                out.insert(stage.name.clone(), e);
            }
        }
        out
    }
}

/// Total memory from `/proc/meminfo`, read once; where that cannot be read, no limit.
fn machine_memory() -> u64 {
    static TOTAL: OnceLock<u64> = OnceLock::new();
    *TOTAL.get_or_init(|| {
        let Ok(text) = std::fs::read_to_string("/proc/meminfo") else { return u64::MAX };
        text.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kb| kb.trim().parse::<u64>().ok())
            .map_or(u64::MAX, |kb| kb.saturating_mul(1024))
    })
}

/// Bytes of `count` f32 values, saturating.
pub fn f32_bytes(count: u64) -> u64 {
    count.saturating_mul(4)
}

/// The number of elements of `shape`, saturating instead of overflowing.
pub fn elements(shape: &[usize]) -> u64 {
    shape.iter().fold(1u64, |n, &d| n.saturating_mul(d as u64))
}

/// `bytes` with a binary unit, e.g. `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// Parses a size such as `512M`, `4G`, `1.5GB` or `2000000` (bytes), binary units.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 =
        number.parse().map_err(|_| format!("`{text}` is not a size such as 512M or 4G"))?;
    let scale: f64 =
        match unit.trim().to_ascii_uppercase().trim_end_matches("IB").trim_end_matches('B') {
            "" => 1.0,
            "K" => 1024.0,
            "M" => 1024.0 * 1024.0,
            "G" => 1024.0 * 1024.0 * 1024.0,
            "T" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            _ => return Err(format!("`{text}`: unknown unit `{unit}`; use K, M, G or T")),
        };
    let bytes = value * scale;
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("`{text}` is not a usable memory size"));
    }
    Ok(bytes as u64)
}

/// The model a stage works on, for [`Budget::estimate`].
#[derive(Debug, Clone)]
struct Model {
    size: ModelSize,
    stage: String,
    culprit: String,
}

/// The model size of a stage fed by `name`, found through the stages upstream of it.
fn upstream_model(ir: &ExperimentIr, name: &str, models: &BTreeMap<&str, Model>) -> Option<Model> {
    ir.stage(name)?.inputs.values().flatten().find_map(|p| models.get(p.as_str()).cloned())
}

/// The architecture parameter with the largest value: the likeliest cause of a model too large.
fn culprit(params: &Params) -> &str {
    params
        .0
        .iter()
        .filter_map(|(k, v)| v.as_f64().map(|x| (k, x)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map_or("architecture", |(k, _)| k.as_str())
}

fn model_size(arch: &dyn Architecture, examples: usize) -> ModelSize {
    let defs = arch.parameters();
    ModelSize {
        weights: weight_count(&defs),
        tensors: defs.len() as u64,
        examples: examples as u64,
    }
}

/// The weights of `defs`, in all, saturating.
fn weight_count(defs: &[ParamDef]) -> u64 {
    defs.iter().map(|d| elements(&d.shape)).fold(0, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("2000"), Ok(2000));
        assert!(parse_size("4X").is_err() && parse_size("").is_err() && parse_size("0").is_err());
        assert_eq!(human(3 << 29), "1.5 GiB");
    }

    /// An architecture of one `[n, n]` weight that builds no graph.
    struct Square(usize);

    impl Architecture for Square {
        fn parameters(&self) -> Vec<crate::tensor::ParamDef> {
            let init = crate::tensor::Init::Zeros;
            vec![crate::tensor::ParamDef {
                name: "w".into(),
                shape: vec![self.0, self.0],
                init,
                prunable: true,
            }]
        }

        fn forward(
            &self,
            _: &mut crate::tensor::GraphBuilder,
            _: &BTreeMap<String, crate::tensor::Var>,
            x: crate::tensor::Var,
        ) -> Result<crate::tensor::Var> {
            Ok(x)
        }
    }

    #[test]
    fn a_model_beyond_the_limit_is_refused_at_its_largest_parameter() {
        let params = Params::new().with("width", 100_000).with("depth", 2);
        let budget = Budget::default();
        let err = budget.check_weights(&Square(1 << 40), &params).unwrap_err().to_string();
        assert!(err.starts_with("parameter `width`: the model's") && err.contains("`w`"), "{err}");
        assert!(budget.check_weights(&Square(10), &params).is_ok());
    }

    #[test]
    fn shapes_saturate_instead_of_overflowing() {
        assert_eq!(elements(&[usize::MAX, 4]), u64::MAX);
        assert_eq!(f32_bytes(u64::MAX), u64::MAX);
        let budget = Budget::new(Some(1 << 30));
        let err = budget.require("width", "the weights", 2 << 30, "lower `width`");
        let err = err.unwrap_err().to_string();
        assert!(err.contains("parameter `width`") && err.contains("lower `width`"), "{err}");
        assert!(err.contains("1.0 GiB of --max-memory"), "{err}");
        assert!(budget.require("width", "the weights", 1 << 30, "lower it").is_ok());
    }
}
