//! Memory budgets: a stage checks what it is about to allocate, from shapes and counts known
//! beforehand, so that a value too large for the machine is refused with an error naming the
//! parameter instead of aborting the process when the allocation fails.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// The limit set with [`set_memory_limit`]; 0 = none set (the machine's memory).
static LIMIT: AtomicU64 = AtomicU64::new(0);

/// Limits every stage's estimated memory to `bytes` (`run --max-memory`); `None` restores the
/// default, the machine's memory.
pub fn set_memory_limit(bytes: Option<u64>) {
    LIMIT.store(bytes.unwrap_or(0), Ordering::Relaxed);
}

/// The memory a stage may use, and where that figure comes from.
pub fn memory_limit() -> (u64, &'static str) {
    match LIMIT.load(Ordering::Relaxed) {
        0 => (machine_memory(), "this machine's memory"),
        n => (n, "--max-memory"),
    }
}

/// Total memory from `/proc/meminfo`; where that cannot be read, no limit.
fn machine_memory() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else { return u64::MAX };
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map_or(u64::MAX, |kb| kb.saturating_mul(1024))
}

/// Refuses `bytes` beyond the limit: an [`Error::Param`] at `key` saying what needs the memory
/// and how to need less (`fix`).
pub fn require(key: &str, what: &str, bytes: u64, fix: &str) -> Result<()> {
    let (limit, source) = memory_limit();
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

    #[test]
    fn shapes_saturate_instead_of_overflowing() {
        assert_eq!(elements(&[usize::MAX, 4]), u64::MAX);
        assert_eq!(f32_bytes(u64::MAX), u64::MAX);
        let err =
            require("width", "the weights", u64::MAX, "lower `width`").unwrap_err().to_string();
        assert!(err.contains("parameter `width`") && err.contains("lower `width`"), "{err}");
    }
}
