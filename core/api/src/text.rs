//! Plain-text output shared by the commands: aligned tables and UTC times.

use std::time::{SystemTime, UNIX_EPOCH};

/// Left-aligned columns separated by two spaces; the last column is not padded. Every row has
/// as many cells as the header.
pub fn table<R: AsRef<[String]>>(header: &[&str], rows: &[R]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row.as_ref()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 == widths.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.as_ref().iter().map(String::as_str));
    }
    out
}

/// Formats `t` in UTC: `yyyy-mm-ddThh:mm:ssZ` when `readable`, else `yyyymmddThhmmss`.
pub fn utc_stamp(t: SystemTime, readable: bool) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if readable {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}")
    }
}

/// Seconds since 1970-01-01 of a `yyyy-mm-ddThh:mm:ssZ` stamp (as [`utc_stamp`] writes it
/// readable); `None` for anything else.
pub fn parse_utc_stamp(stamp: &str) -> Option<u64> {
    let b = stamp.as_bytes();
    let shape_ok = b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    let num = |from: usize, to: usize| stamp[from..to].parse::<u32>().ok();
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hh, mm, ss) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = u64::try_from(days_from_civil(i64::from(y), m, d)).ok()?;
    Some(days * 86_400 + u64::from(hh * 3600 + mm * 60 + ss))
}

/// Day count since 1970-01-01 of a proleptic Gregorian date (the inverse of
/// [`civil_from_days`]).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn utc_stamps() {
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661); // 2000-02-29 01:01:01
        assert_eq!(utc_stamp(t, false), "20000229T010101");
        assert_eq!(utc_stamp(t, true), "2000-02-29T01:01:01Z");
        assert_eq!(utc_stamp(UNIX_EPOCH, false), "19700101T000000");
    }

    #[test]
    fn utc_stamps_parse_back() {
        for secs in [0, 951_782_400 + 3661, 1_796_601_599, 4_102_444_800] {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(parse_utc_stamp(&utc_stamp(t, true)), Some(secs));
        }
        for bad in ["", "2000-02-29 01:01:01Z", "2000-13-01T00:00:00Z", "20000229T010101"] {
            assert_eq!(parse_utc_stamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn tables_align_columns() {
        let rows = [["a".to_string(), "long".to_string()], ["bbb".to_string(), "x".to_string()]];
        assert_eq!(table(&["k", "v"], &rows), "k    v\na    long\nbbb  x\n");
    }
}
