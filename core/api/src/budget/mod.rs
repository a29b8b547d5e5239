//! Memory budgets: a stage checks what it is about to allocate, from shapes and counts known
//! beforehand, so that a value too large for the machine is refused with an error naming the
//! parameter instead of aborting the process when the allocation fails.

mod estimate;

use std::sync::OnceLock;

use crate::plugin::params::Params;
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

/// The architecture parameter with the largest value: the likeliest cause of a model too large.
pub(super) fn culprit(params: &Params) -> &str {
    params
        .0
        .iter()
        .filter_map(|(k, v)| v.as_f64().map(|x| (k, x)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map_or("architecture", |(k, _)| k.as_str())
}

/// The weights of `defs`, in all, saturating.
pub(super) fn weight_count(defs: &[ParamDef]) -> u64 {
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
            _: &std::collections::BTreeMap<String, crate::tensor::Var>,
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
