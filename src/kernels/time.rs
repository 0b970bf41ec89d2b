//! Kusto's time rules: datetime and timespan literal text, units, `bin` (origin
//! 0001-01-01, SEMANTICS.md §2), and conversions from Arrow/chrono time.

use crate::types::{days_from_civil, ticks};

/// Ticks of one unit suffix of a timespan literal (KL `TokenParser.TimespanSuffixes`).
pub fn unit_ticks(suffix: &str) -> Option<f64> {
    Some(match suffix {
        "d" | "day" | "days" => ticks::PER_DAY as f64,
        "h" | "hr" | "hrs" | "hour" | "hours" => ticks::PER_HOUR as f64,
        "m" | "min" | "minute" | "minutes" => ticks::PER_MINUTE as f64,
        "s" | "sec" | "second" | "seconds" => ticks::PER_SECOND as f64,
        "ms" | "milli" | "millis" | "millisec" | "millisecond" | "milliseconds" => {
            ticks::PER_MILLI as f64
        }
        "micro" | "micros" | "microsec" | "microsecond" | "microseconds" => ticks::PER_MICRO as f64,
        "nano" | "nanos" | "nanosec" | "nanosecond" | "nanoseconds" => 0.01,
        "tick" | "ticks" => 1.0,
        _ => return None,
    })
}

/// `5d`, `1.5h`, `10ms`: a number followed by a unit.
pub fn timespan_from_number(num: &str, suffix: &str) -> Option<i64> {
    let per = unit_ticks(suffix)?;
    let n: f64 = num.parse().ok()?;
    let t = (n * per).round();
    if t.abs() > i64::MAX as f64 {
        return None;
    }
    Some(t as i64)
}

/// The text inside `timespan(...)` / `time(...)`: `2` (days), `15 seconds`, `1.5h`,
/// `0.12:34:56.7`, `12:34:56`, optionally negative.
pub fn parse_timespan_literal(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix('-') {
        return parse_timespan_literal(rest).map(|v| -v);
    }
    if t.contains(':') {
        return parse_timespan_clock(t);
    }
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, suffix) = (t[..split].trim(), t[split..].trim());
    if suffix.is_empty() {
        return timespan_from_number(num, "d");
    }
    timespan_from_number(num, suffix)
}

/// `[d.]hh:mm[:ss[.fffffff]]`, as written in timespan literals and in .NET's format.
pub fn parse_timespan_clock(t: &str) -> Option<i64> {
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t),
    };
    let parts: Vec<&str> = t.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return None;
    }
    let (days, hours) = match parts[0].split_once('.') {
        Some((d, h)) => (d.parse::<i64>().ok()?, h.parse::<i64>().ok()?),
        None => (0, parts[0].parse::<i64>().ok()?),
    };
    let minutes: i64 = parts[1].parse().ok()?;
    let (secs, frac) = match parts.get(2) {
        Some(s) => match s.split_once('.') {
            Some((s, f)) => (s.parse::<i64>().ok()?, fraction_ticks(f)?),
            None => (s.parse::<i64>().ok()?, 0),
        },
        None => (0, 0),
    };
    if minutes >= 60 || secs >= 60 {
        return None;
    }
    let v = days * ticks::PER_DAY
        + hours * ticks::PER_HOUR
        + minutes * ticks::PER_MINUTE
        + secs * ticks::PER_SECOND
        + frac;
    Some(if neg { -v } else { v })
}

/// Digits after the decimal point as ticks (at most 7 significant).
fn fraction_ticks(f: &str) -> Option<i64> {
    if f.is_empty() || !f.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = f.chars().take(7).collect();
    while digits.len() < 7 {
        digits.push('0');
    }
    digits.parse().ok()
}

/// Datetime text in the forms Kusto accepts (DOCS scalar-data-types/datetime.md):
/// ISO 8601 with or without `T`, seconds, fraction, `Z` or an offset; a bare date;
/// RFC 822 / RFC 1123 (`Sat, 8 Nov 14 15:05:02 GMT`) and RFC 850
/// (`Saturday, 08-Nov-14 15:05:02 GMT`).
pub fn parse_datetime(text: &str) -> Option<i64> {
    let t = text.trim();
    parse_iso(t).or_else(|| parse_rfc(t))
}

fn parse_iso(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 8 {
        return None;
    }
    let dash1 = t.find('-')?;
    let year: i64 = t[..dash1].parse().ok()?;
    if dash1 != 4 {
        return None;
    }
    let rest = &t[dash1 + 1..];
    let dash2 = rest.find('-')?;
    let month: u32 = rest[..dash2].parse().ok()?;
    let rest = &rest[dash2 + 1..];
    let day_len = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let day: u32 = rest[..day_len].parse().ok()?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || !(1..=9999).contains(&year)
    {
        return None;
    }
    let mut v = days_from_civil(year, month, day) * ticks::PER_DAY;
    let mut rest = &rest[day_len..];
    if rest.is_empty() {
        return Some(v);
    }
    if rest.starts_with('T') || rest.starts_with('t') || rest.starts_with(' ') {
        rest = rest[1..].trim_start();
    } else {
        return None;
    }
    // Time of day: hh:mm[:ss[.f]]
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.'))
        .unwrap_or(rest.len());
    let clock = &rest[..end];
    if !clock.is_empty() {
        let parts: Vec<&str> = clock.split(':').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return None;
        }
        let h: i64 = parts[0].parse().ok()?;
        let m: i64 = parts[1].parse().ok()?;
        let (s, f) = match parts.get(2) {
            Some(s) => match s.split_once('.') {
                Some((s, f)) => (s.parse::<i64>().ok()?, fraction_ticks(f)?),
                None => (s.parse::<i64>().ok()?, 0),
            },
            None => (0, 0),
        };
        if h > 23 || m > 59 || s > 59 {
            return None;
        }
        v += h * ticks::PER_HOUR + m * ticks::PER_MINUTE + s * ticks::PER_SECOND + f;
    }
    let zone = rest[end..].trim();
    match zone {
        "" | "Z" | "z" | "UTC" | "GMT" => {}
        z if z.starts_with('+') || z.starts_with('-') => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let z = &z[1..];
            let (zh, zm) = match z.split_once(':') {
                Some((h, m)) => (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?),
                None if z.len() == 4 => (z[..2].parse().ok()?, z[2..].parse().ok()?),
                None => (z.parse::<i64>().ok()?, 0),
            };
            v -= sign * (zh * ticks::PER_HOUR + zm * ticks::PER_MINUTE);
        }
        _ => return None,
    }
    (0..=ticks::MAX_DATETIME).contains(&v).then_some(v)
}

fn parse_rfc(t: &str) -> Option<i64> {
    // Drop a leading weekday ("Sat," / "Saturday,").
    let t = match t.split_once(',') {
        Some((w, rest)) if w.chars().all(|c| c.is_ascii_alphabetic()) => rest.trim(),
        _ => t,
    };
    let fields: Vec<&str> = t.split([' ', '-']).filter(|s| !s.is_empty()).collect();
    if fields.len() < 4 {
        return None;
    }
    let day: u32 = fields[0].parse().ok()?;
    let month = month_number(fields[1])?;
    let mut year: i64 = fields[2].parse().ok()?;
    if fields[2].len() == 2 {
        year += if year < 50 { 2000 } else { 1900 };
    }
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let iso = format!(
        "{year:04}-{month:02}-{day:02}T{} {}",
        fields[3],
        fields.get(4).copied().unwrap_or("GMT")
    );
    parse_iso(&iso)
}

fn month_number(m: &str) -> Option<u32> {
    let names = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let l = m.to_ascii_lowercase();
    names
        .iter()
        .position(|n| l.starts_with(n))
        .map(|i| i as u32 + 1)
}

pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// `bin(value, size)` on ticks or numbers: rounds down to a multiple of `size` from the
/// origin (tick 0 = 0001-01-01 for datetimes). None for a non-positive size, and for a
/// bin below the smallest long (`bin(long.MinValue, 5)`: the multiple of 5 below it).
pub fn bin_i64(value: i64, size: i64) -> Option<i64> {
    if size <= 0 {
        return None;
    }
    value.div_euclid(size).checked_mul(size)
}

/// Nanoseconds since the Unix epoch -> ticks since 0001-01-01.
pub fn ticks_from_unix_nanos(ns: i64) -> i64 {
    ns.div_euclid(100) + ticks::UNIX_EPOCH
}

/// The current UTC time in ticks.
pub fn now_ticks() -> i64 {
    let now = chrono::Utc::now();
    let secs = now.timestamp();
    let sub = now.timestamp_subsec_nanos() as i64;
    ticks::UNIX_EPOCH + secs * ticks::PER_SECOND + sub / 100
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::format_datetime;

    /// Datetime literal forms, DOCS scalar-data-types/datetime.md.
    #[test]
    fn datetime_forms() {
        let cases = [
            ("2015-12-31 23:59:59.9", "2015-12-31T23:59:59.9000000Z"),
            ("2015-12-31", "2015-12-31T00:00:00.0000000Z"),
            (
                "2014-05-25T08:20:03.123456Z",
                "2014-05-25T08:20:03.1234560Z",
            ),
            ("2014-05-25T08:20", "2014-05-25T08:20:00.0000000Z"),
            (
                "2023-06-19T08:22:54.6623324Z",
                "2023-06-19T08:22:54.6623324Z",
            ),
            ("2014-11-08 15:55:55+01:00", "2014-11-08T14:55:55.0000000Z"),
            ("Sat, 8 Nov 14 15:05:02 GMT", "2014-11-08T15:05:02.0000000Z"),
            (
                "Saturday, 08-Nov-14 15:05:02 GMT",
                "2014-11-08T15:05:02.0000000Z",
            ),
            ("0001-01-01", "0001-01-01T00:00:00.0000000Z"),
            (
                "9999-12-31 23:59:59.9999999",
                "9999-12-31T23:59:59.9999999Z",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_datetime(text).map(format_datetime).as_deref(),
                Some(want),
                "{text}"
            );
        }
        for bad in ["2015-13-01", "2015-02-30", "yesterday", "2015-01-01 25:00"] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }

    /// Timespan literal forms, DOCS scalar-data-types/timespan.md.
    #[test]
    fn timespan_forms() {
        let cases = [
            ("2", 2 * ticks::PER_DAY),
            ("15 seconds", 15 * ticks::PER_SECOND),
            ("1.5h", 90 * ticks::PER_MINUTE),
            (
                "0.12:34:56.7",
                12 * ticks::PER_HOUR + 34 * ticks::PER_MINUTE + 56 * ticks::PER_SECOND + 7_000_000,
            ),
            (
                "12:34:56",
                12 * ticks::PER_HOUR + 34 * ticks::PER_MINUTE + 56 * ticks::PER_SECOND,
            ),
            ("-1.00:00:00", -ticks::PER_DAY),
            ("100nanos", 1),
            ("3tick", 3),
        ];
        for (text, want) in cases {
            assert_eq!(parse_timespan_literal(text), Some(want), "{text}");
        }
    }

    /// bin() floors toward -inf from tick 0 (EMU-K2S: bin(datetime(1955-11-05), 7d) = 1955-10-31).
    #[test]
    fn bin_origin() {
        let t = parse_datetime("1955-11-05").unwrap();
        assert_eq!(
            format_datetime(bin_i64(t, 7 * ticks::PER_DAY).unwrap()),
            "1955-10-31T00:00:00.0000000Z"
        );
        let t = parse_datetime("1969-12-31 23:30").unwrap();
        assert_eq!(
            format_datetime(bin_i64(t, ticks::PER_HOUR).unwrap()),
            "1969-12-31T23:00:00.0000000Z"
        );
        assert_eq!(bin_i64(16, 7), Some(14));
        assert_eq!(bin_i64(-1, 7), Some(-7));
        assert_eq!(bin_i64(5, 0), None);
        assert_eq!(bin_i64(i64::MIN, 5), None); // its bin is below the smallest long
    }
}
