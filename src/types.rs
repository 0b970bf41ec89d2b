//! Kusto's scalar types and values. Datetimes and timespans are 100-ns ticks (datetimes
//! counted from 0001-01-01, Kusto's own origin), strings are never null, and `dynamic`
//! holds JSON.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KqlType {
    Bool,
    Int,
    Long,
    Real,
    Decimal,
    String,
    DateTime,
    TimeSpan,
    Guid,
    Dynamic,
}

impl KqlType {
    pub fn name(self) -> &'static str {
        match self {
            KqlType::Bool => "bool",
            KqlType::Int => "int",
            KqlType::Long => "long",
            KqlType::Real => "real",
            KqlType::Decimal => "decimal",
            KqlType::String => "string",
            KqlType::DateTime => "datetime",
            KqlType::TimeSpan => "timespan",
            KqlType::Guid => "guid",
            KqlType::Dynamic => "dynamic",
        }
    }

    /// The type named in a schema (`datatable(a:long)`) or a typed literal (`long(null)`).
    pub fn from_name(name: &str) -> Option<KqlType> {
        Some(match name {
            "bool" | "boolean" => KqlType::Bool,
            "int" | "int32" => KqlType::Int,
            "long" | "int64" => KqlType::Long,
            "real" | "double" => KqlType::Real,
            "decimal" => KqlType::Decimal,
            "string" => KqlType::String,
            "datetime" | "date" => KqlType::DateTime,
            "timespan" | "time" => KqlType::TimeSpan,
            "guid" | "uniqueid" => KqlType::Guid,
            "dynamic" => KqlType::Dynamic,
            _ => return None,
        })
    }

    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            KqlType::Int | KqlType::Long | KqlType::Real | KqlType::Decimal
        )
    }
    pub fn is_integer(self) -> bool {
        matches!(self, KqlType::Int | KqlType::Long)
    }
}

impl fmt::Display for KqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Number of 100-ns ticks in common units.
pub mod ticks {
    pub const PER_MICRO: i64 = 10;
    pub const PER_MILLI: i64 = 10_000;
    pub const PER_SECOND: i64 = 10_000_000;
    pub const PER_MINUTE: i64 = 60 * PER_SECOND;
    pub const PER_HOUR: i64 = 60 * PER_MINUTE;
    pub const PER_DAY: i64 = 24 * PER_HOUR;
    /// Ticks from 0001-01-01 to 1970-01-01.
    pub const UNIX_EPOCH: i64 = 621_355_968_000_000_000;
    /// The last valid datetime, 9999-12-31 23:59:59.9999999.
    pub const MAX_DATETIME: i64 = 3_155_378_975_999_999_999;
}

/// One scalar value. `Null` is typed by the context it appears in.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Real(f64),
    String(String),
    DateTime(i64),
    TimeSpan(i64),
    Guid(u128),
    Dynamic(serde_json::Value),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The type of a non-null value.
    pub fn kql_type(&self) -> Option<KqlType> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(_) => KqlType::Bool,
            Value::Int(_) => KqlType::Int,
            Value::Long(_) => KqlType::Long,
            Value::Real(_) => KqlType::Real,
            Value::String(_) => KqlType::String,
            Value::DateTime(_) => KqlType::DateTime,
            Value::TimeSpan(_) => KqlType::TimeSpan,
            Value::Guid(_) => KqlType::Guid,
            Value::Dynamic(_) => KqlType::Dynamic,
        })
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Long(i) => Some(*i as f64),
            Value::Real(r) => Some(*r),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i as i64),
            Value::Long(i) => Some(*i),
            _ => None,
        }
    }
}

/// A datetime in Kusto's display form: `2021-01-01T00:00:00.0000000Z`.
pub fn format_datetime(t: i64) -> String {
    let days = t.div_euclid(ticks::PER_DAY);
    let rem = t.rem_euclid(ticks::PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, f) = (
        rem / ticks::PER_HOUR,
        rem % ticks::PER_HOUR / ticks::PER_MINUTE,
        rem % ticks::PER_MINUTE / ticks::PER_SECOND,
        rem % ticks::PER_SECOND,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{f:07}Z")
}

/// A timespan in .NET's constant form: `[-][d.]hh:mm:ss[.fffffff]`.
pub fn format_timespan(t: i64) -> String {
    let neg = t < 0;
    let a = t.unsigned_abs();
    let pd = ticks::PER_DAY as u64;
    let (d, rem) = (a / pd, a % pd);
    let h = rem / ticks::PER_HOUR as u64;
    let mi = rem % ticks::PER_HOUR as u64 / ticks::PER_MINUTE as u64;
    let s = rem % ticks::PER_MINUTE as u64 / ticks::PER_SECOND as u64;
    let f = rem % ticks::PER_SECOND as u64;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if d > 0 {
        out.push_str(&format!("{d}."));
    }
    out.push_str(&format!("{h:02}:{mi:02}:{s:02}"));
    if f > 0 {
        out.push_str(&format!(".{f:07}"));
    }
    out
}

/// A guid in its canonical lower-case form.
pub fn format_guid(g: u128) -> String {
    let h = format!("{g:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub fn parse_guid(s: &str) -> Option<u128> {
    let s = s.trim().trim_start_matches('{').trim_end_matches('}');
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let dashes: Vec<usize> = s.match_indices('-').map(|(i, _)| i).collect();
    if !dashes.is_empty() && dashes != [8, 13, 18, 23] {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

/// A real as Kusto prints it: shortest round-trip digits, always with a fraction or
/// exponent (`1.0`, `0.30000000000000007`, `1e+21`); NaN and infinities by name.
pub fn format_real(r: f64) -> String {
    if r.is_nan() {
        "NaN".into()
    } else if r.is_infinite() {
        if r > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else {
        format!("{r:?}")
    }
}

// Days since 0001-01-01 <-> civil date (proleptic Gregorian), after H. Hinnant's algorithms.
/// 0000-03-01 is day -306 counted from 0001-01-01.
const DAYS_0001_TO_0000_03_01: i64 = 306;

pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + DAYS_0001_TO_0000_03_01; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - DAYS_0001_TO_0000_03_01
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(1, 1, 1), 0);
        assert_eq!(
            days_from_civil(1970, 1, 1) * ticks::PER_DAY,
            ticks::UNIX_EPOCH
        );
        for days in [-1000, 0, 1, 59, 60, 365, 719_162, 3_652_058] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{days} -> {y}-{m}-{d}");
        }
        assert_eq!(
            format_datetime(ticks::UNIX_EPOCH),
            "1970-01-01T00:00:00.0000000Z"
        );
        assert_eq!(
            format_datetime(ticks::MAX_DATETIME),
            "9999-12-31T23:59:59.9999999Z"
        );
        assert_eq!(format_datetime(0), "0001-01-01T00:00:00.0000000Z");
    }

    /// .NET constant ("c") timespan format, as the conformance corpus encodes it.
    #[test]
    fn timespan_format() {
        assert_eq!(format_timespan(ticks::PER_DAY), "1.00:00:00");
        assert_eq!(format_timespan(-ticks::PER_SECOND), "-00:00:01");
        assert_eq!(format_timespan(1), "00:00:00.0000001");
        assert_eq!(format_timespan(14 * ticks::PER_DAY), "14.00:00:00");
    }

    #[test]
    fn real_format() {
        assert_eq!(format_real(1.0), "1.0");
        assert_eq!(format_real(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_real(1e11), "100000000000.0");
    }

    #[test]
    fn guids() {
        let g = parse_guid("83F7B313-B955-4988-B524-B2DA55C67B43").unwrap();
        assert_eq!(format_guid(g), "83f7b313-b955-4988-b524-b2da55c67b43");
        assert!(parse_guid("not-a-guid").is_none());
    }
}
