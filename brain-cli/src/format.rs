//! Human-readable sizes, times and tables, and parsers for sizes and durations.

use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A byte count in binary units: `512 B`, `4.0 KiB`, `1.5 GiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A byte count as `1.5 GiB (1610612736 bytes)`.
pub fn size_exact(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else {
        format!("{} ({bytes} bytes)", size(bytes))
    }
}

/// Parses a size: a number of bytes with an optional unit. `K`, `M`, `G`,
/// `T` (and `KiB`, `MiB`, ...) are binary multiples; `KB`, `MB`, `GB`, `TB`
/// are decimal. Case does not matter; fractions are allowed (`1.5G`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let invalid = || {
        format!("invalid size {text:?}; use a number of bytes with an optional unit, e.g. 512K, 64M, 1.5G")
    };
    if number.is_empty() {
        return Err(invalid());
    }
    let unit = unit.trim().to_ascii_lowercase();
    let multiplier: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in size {text:?}; use a number of bytes with an optional unit: K, M, G, T (binary) or KB, MB, GB, TB (decimal), e.g. 64M"
            ))
        }
    };
    if let Ok(whole) = number.parse::<u64>() {
        return whole
            .checked_mul(multiplier)
            .ok_or_else(|| format!("size {text:?} is too large"));
    }
    let value: f64 = number.parse().map_err(|_| invalid())?;
    let bytes = (value * multiplier as f64).round();
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("size {text:?} is too large"));
    }
    Ok(bytes as u64)
}

/// Parses a duration: seconds as a plain number (`1.5`), or with a unit:
/// `ms`, `s`, `m`, `h` (`500ms`, `10s`, `2m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds_per_unit = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "invalid duration {text:?}; use seconds, or a number with ms, s, m or h (e.g. 500ms, 10s, 2m)"
            ))
        }
    };
    let value: f64 = number.parse().map_err(|_| {
        format!("invalid duration {text:?}; use seconds, or a number with ms, s, m or h (e.g. 500ms, 10s, 2m)")
    })?;
    Duration::try_from_secs_f64(value * seconds_per_unit)
        .map_err(|_| format!("duration {text:?} is out of range"))
}

/// A time in UTC as RFC 3339 with seconds: `2026-11-21T10:33:34Z`.
pub fn time(at: SystemTime) -> String {
    let (date, secs_of_day, _) = split_time(at);
    format!(
        "{date}T{:02}:{:02}:{:02}Z",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    )
}

/// A time in UTC as RFC 3339 with milliseconds: `2026-11-21T10:33:34.123Z`.
pub fn time_precise(at: SystemTime) -> String {
    let (date, secs_of_day, nanos) = split_time(at);
    format!(
        "{date}T{:02}:{:02}:{:02}.{:03}Z",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60,
        nanos / 1_000_000
    )
}

/// Nanoseconds since the Unix epoch (0 for earlier times).
pub fn unix_nanos(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// The date (`YYYY-MM-DD`), the second of the day and the nanoseconds.
fn split_time(at: SystemTime) -> (String, u64, u32) {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = (secs / 86_400) as i64;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        secs % 86_400,
        since.subsec_nanos(),
    )
}

/// A name as it is shown in a table or a line of output: as is, or quoted
/// with escapes when it holds control characters (tabs, newlines), is
/// empty, starts or ends with a space, or starts with a quote (so that a
/// name that looks quoted is told apart from one that was).
pub fn name(text: &str) -> String {
    let ambiguous = text.is_empty()
        || text.chars().any(char::is_control)
        || text.starts_with('"')
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace);
    if ambiguous {
        format!("{text:?}")
    } else {
        text.to_owned()
    }
}

/// A table of left- or right-aligned columns under a header line.
#[derive(Debug)]
pub struct Table {
    headers: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns; `right` marks the right-aligned ones (numbers).
    pub fn new(columns: &[(&'static str, bool)]) -> Table {
        Table {
            headers: columns.iter().map(|(h, _)| *h).collect(),
            right: columns.iter().map(|(_, r)| *r).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; it must have one cell per column.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    /// Writes the header and the rows; nothing at all when there are no rows.
    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let headers: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            let last = row.len() - 1;
            for (i, cell) in row.iter().enumerate() {
                let pad = widths[i] - cell.chars().count();
                if self.right[i] {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if i != last {
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                }
                if i != last {
                    line.push_str("  ");
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1024), "1.0 KiB");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(64 << 20), "64.0 MiB");
        assert_eq!(size(u64::MAX), "16.0 EiB");
        assert_eq!(size_exact(4096), "4.0 KiB (4096 bytes)");
    }

    #[test]
    fn parse_sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("12B"), Ok(12));
        assert!(parse_size("").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn parse_durations() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(time(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let at = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(time(at), "2024-02-29T12:34:56Z");
        assert_eq!(time_precise(at), "2024-02-29T12:34:56.789Z");
        let at = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(time(at), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn names() {
        assert_eq!(name("plain name"), "plain name");
        assert_eq!(name("tab\there"), "\"tab\\there\"");
        assert_eq!(name(""), "\"\"");
        // A name that looks quoted is quoted, so it differs from one that was.
        assert_eq!(name("a\nb"), "\"a\\nb\"");
        assert_eq!(name("\"a\\nb\""), "\"\\\"a\\\\nb\\\"\"");
        assert_ne!(name("a\nb"), name("\"a\\nb\""));
        assert_eq!(name(" padded "), "\" padded \"");
        assert_eq!(name("in \"quotes\" inside"), "in \"quotes\" inside");
    }

    #[test]
    fn tables() {
        let mut table = Table::new(&[("NAME", false), ("SIZE", true), ("NOTE", false)]);
        table.row(vec!["a".into(), "1 B".into(), String::new()]);
        table.row(vec!["longer".into(), "10.0 KiB".into(), "x".into()]);
        let mut out = Vec::new();
        table.write(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME        SIZE  NOTE\na            1 B\nlonger  10.0 KiB  x\n"
        );
        let mut out = Vec::new();
        Table::new(&[("NAME", false)]).write(&mut out).unwrap();
        assert!(out.is_empty());
    }
}
