//! How the CLI prints, in Nomad's style: `key = value` blocks, aligned
//! columns with upper-case headers, 8-character id prefixes (full ids with
//! `--verbose`), RFC 3339 times in UTC and "5m ago" ages.

use std::fmt::Write as _;

/// `key = value` lines with the `=` aligned.
pub fn kv(rows: &[(&str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<width$} = {v}");
    }
    out
}

/// Rows padded into columns two spaces apart; the first row is the header.
pub fn columns(rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let w = cell.chars().count();
            match widths.get_mut(i) {
                Some(max) if *max < w => *max = w,
                Some(_) => {}
                None => widths.push(w),
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let w = widths.get(i).copied().unwrap_or(0);
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The first 8 characters of an id, unless `verbose`.
pub fn short(id: &str, verbose: bool) -> String {
    if verbose {
        id.to_owned()
    } else {
        id.chars().take(8).collect()
    }
}

/// Unix nanoseconds as `2024-06-01T12:00:00Z` (`<none>` for 0).
pub fn time(nanos: i64) -> String {
    if nanos <= 0 {
        return "<none>".to_owned();
    }
    let secs = nanos.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// How long before `now` (both unix nanoseconds) `then` was: `12s ago`,
/// `5m3s ago`, `2h10m ago`, `3d4h ago`.
pub fn ago(then: i64, now: i64) -> String {
    if then <= 0 {
        return "<none>".to_owned();
    }
    let s = (now.saturating_sub(then) / 1_000_000_000).max(0);
    let text = match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    };
    format!("{text} ago")
}

/// Prints `value` as indented JSON (the `--json` of every listing).
pub fn print_json<T: serde::Serialize>(value: &T) {
    println!("{}", wren_model::codec::to_json_pretty(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_rfc3339() {
        assert_eq!(time(0), "<none>");
        assert_eq!(time(1_000_000_000), "1970-01-01T00:00:01Z");
        // 2024-02-29T23:59:59Z, a leap day.
        assert_eq!(time(1_709_251_199 * 1_000_000_000), "2024-02-29T23:59:59Z");
        assert_eq!(time(951_782_400 * 1_000_000_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn ages_and_tables() {
        let now = 10_000 * 1_000_000_000;
        assert_eq!(ago(now - 5_000_000_000, now), "5s ago");
        assert_eq!(ago(now - 125 * 1_000_000_000, now), "2m5s ago");
        assert_eq!(ago(now - 7300 * 1_000_000_000, now), "2h1m ago");
        assert_eq!(short("0123456789", false), "01234567");
        assert_eq!(
            columns(&[
                vec!["ID".into(), "Status".into()],
                vec!["web".into(), "running".into()]
            ]),
            "ID   Status\nweb  running\n"
        );
        assert_eq!(
            kv(&[("ID", "web".into()), ("Priority", "50".into())]),
            "ID       = web\nPriority = 50\n"
        );
    }
}
