//! `.csv` and `.tsv` tables with a header row, read with the `csv` crate (quoting, line
//! endings, a byte-order mark). Each row is an example: the label column is its target and the
//! feature columns (every other column, or those `features` lists) its inputs, as `f32`.
//! Values are parsed here, with the file's line for every refusal: a ragged row, an empty or
//! non-numeric value, NaN or an infinity.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use ticketlab_api::budget::Budget;
use ticketlab_api::plugin::registry::suggestion;
use ticketlab_api::{Error, Result};

use super::arrays::{Array, Examples};

/// How to read a table.
pub(crate) struct TableSpec<'a> {
    /// The field separator: `,` or a tab.
    pub delimiter: u8,
    /// The column of targets.
    pub label: &'a str,
    /// The feature columns, in order; empty: every column but `label`, in the file's order.
    pub features: &'a [String],
    /// The parameter a missing column is reported at: `label` or `features` for the training
    /// file, `test_path` for the test file (whose columns must match).
    pub missing_key: Option<&'a str>,
    /// The parameter naming the file (where a file too large for the budget is reported).
    pub key: &'a str,
}

/// How many rows are read between two checks of the memory they take.
const CHECK_EVERY: usize = 4096;

/// Reads the table at `path`.
pub(crate) fn read_table(path: &Path, spec: &TableSpec<'_>, budget: &Budget) -> Result<Examples> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(spec.delimiter)
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(BufReader::new(file));
    let csv_error = |e: csv::Error| {
        let line = e.position().map_or(String::new(), |p| format!("line {}: ", p.line()));
        Error::data(path, format!("{line}{e}"))
    };
    let header: Vec<String> = reader
        .headers()
        .map_err(csv_error)?
        .iter()
        .enumerate()
        .map(|(i, h)| if i == 0 { h.trim_start_matches('\u{feff}').to_string() } else { h.into() })
        .collect();
    if header.iter().all(String::is_empty) {
        return Err(Error::data(
            path,
            "is empty: the first line must be a header naming the columns (e.g. `x1,x2,label`)",
        ));
    }
    for (i, name) in header.iter().enumerate() {
        if let Some(j) = header[..i].iter().position(|h| h == name) {
            return Err(Error::data(
                path,
                format!(
                    "line 1: columns {} and {} are both called `{name}`; give every column its own name",
                    j + 1,
                    i + 1
                ),
            ));
        }
    }
    let names: Vec<&str> = header.iter().map(String::as_str).collect();
    let column = |name: &str, key: &str| {
        names.iter().position(|h| *h == name).ok_or_else(|| {
            Error::param(
                spec.missing_key.unwrap_or(key),
                format!(
                    "{} has no column `{name}`; {}",
                    path.display(),
                    suggestion(name, &names, "columns")
                ),
            )
        })
    };
    let label = column(spec.label, "label")?;
    let features: Vec<usize> = if spec.features.is_empty() {
        (0..header.len()).filter(|&i| i != label).collect()
    } else {
        spec.features.iter().map(|f| column(f, "features")).collect::<Result<_>>()?
    };
    if features.is_empty() {
        return Err(Error::data(
            path,
            format!("has no feature columns besides the label column `{}`", spec.label),
        ));
    }

    let width = features.len();
    let (mut x, mut y, mut lines) = (Vec::new(), Vec::new(), Vec::new());
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(e)),
        }
        let line = record.position().map_or(0, csv::Position::line);
        if record.len() != header.len() {
            return Err(Error::data(
                path,
                format!(
                    "line {line} has {} fields, but the header has {} columns",
                    record.len(),
                    header.len()
                ),
            ));
        }
        for &c in &features {
            let value = number(path, line, &header[c], &record[c])? as f32;
            if !value.is_finite() {
                return Err(Error::data(
                    path,
                    format!(
                        "line {line}, column `{}`: `{}` is beyond float32's range (±3.4e38), in \
                         which inputs are kept; rescale that column",
                        header[c], &record[c]
                    ),
                ));
            }
            x.push(value);
        }
        y.push(number(path, line, &header[label], &record[label])?);
        lines.push(line);
        if lines.len() % CHECK_EVERY == 0 {
            let read = record.position().map_or(1, csv::Position::byte).max(1);
            require_rows(budget, spec.key, path, x.len() + y.len(), read, size)?;
        }
    }
    require_rows(budget, spec.key, path, x.len() + y.len(), size.max(1), size)?;
    if lines.is_empty() {
        return Err(Error::data(path, "has a header but no rows of data"));
    }
    let n = lines.len();
    Ok(Examples {
        x: Array { shape: vec![n, width], data: x },
        y: Array { shape: vec![n], data: y },
        lines: Some(lines),
        columns: Some(features.iter().map(|&c| header[c].clone()).collect()),
        y_name: header[label].clone(),
        y_file: path.to_path_buf(),
    })
}

/// The value of column `column` on line `line`, refusing empty, non-numeric and non-finite ones.
fn number(path: &Path, line: u64, column: &str, text: &str) -> Result<f64> {
    let problem = if text.is_empty() {
        "is empty (missing values are not supported: fill or drop that row)".to_string()
    } else {
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => return Ok(v),
            Ok(_) => format!("is `{text}`; every value must be finite"),
            Err(_) => format!("`{text}` is not a number"),
        }
    };
    Err(Error::data(path, format!("line {line}, column `{column}`: {problem}")))
}

/// Refuses a table whose values would not fit the budget: `values` read from the first
/// `read_bytes` of a file of `size` bytes, extrapolated to the whole file (the values are kept
/// as `f32` inputs and `f64` targets; the split copies them once).
fn require_rows(
    budget: &Budget,
    key: &str,
    path: &Path,
    values: usize,
    read_bytes: u64,
    size: u64,
) -> Result<()> {
    let so_far = (values as u64).saturating_mul(8);
    let estimate = (so_far as f64 * size as f64 / read_bytes as f64) as u64;
    budget.require(
        key,
        &format!("the values of {} (read, then split)", path.display()),
        estimate.saturating_mul(2),
        "use a smaller file, or raise `--max-memory`",
    )
}
