//! Turning text and JSON values into typed columns, one cell at a time, the same way for
//! every reader: CSV fields, JSON values, and Parquet columns whose type differs from the
//! table's. A value that cannot be read as the column's type becomes null and is reported
//! (never dropped silently).

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    Array, BooleanBuilder, Float64Builder, Int32Builder, Int64Array, Int64Builder, StringBuilder,
};
use chrono::{Offset, TimeZone};
use serde_json::Value as J;

use crate::column::Column;
use crate::error::{Error, Result};
use crate::kernels::time::{
    days_in_month, parse_datetime, parse_timespan_clock, parse_timespan_literal,
};
use crate::types::{civil_from_days, days_from_civil, parse_guid, ticks, KqlType, Value};

/// The zone that datetime text without an explicit offset is in.
#[derive(Clone, Debug, PartialEq)]
pub enum Zone {
    Utc,
    /// Seconds east of UTC.
    Fixed(i32),
    Named(chrono_tz::Tz),
}

impl Zone {
    /// `UTC`, an offset (`+02:00`, `UTC-5`), or an IANA name (`Europe/Berlin`).
    pub fn parse(text: &str) -> Result<Zone> {
        let t = text.trim();
        if ["utc", "z", "gmt", "etc/utc", "utc+00:00"].contains(&t.to_ascii_lowercase().as_str()) {
            return Ok(Zone::Utc);
        }
        let offset_text = t
            .strip_prefix("UTC")
            .or_else(|| t.strip_prefix("GMT"))
            .unwrap_or(t);
        if let Some(secs) = parse_offset(offset_text) {
            return Ok(if secs == 0 {
                Zone::Utc
            } else {
                Zone::Fixed(secs)
            });
        }
        t.parse::<chrono_tz::Tz>().map(Zone::Named).map_err(|_| {
            Error::data(format!(
                "unknown time zone {t:?}: give an IANA name such as \"Europe/Berlin\" or an offset such as \"+02:00\""
            ))
        })
    }

    pub fn name(&self) -> String {
        match self {
            Zone::Utc => "UTC".into(),
            Zone::Fixed(s) => {
                let sign = if *s < 0 { '-' } else { '+' };
                let a = s.unsigned_abs();
                format!("{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
            }
            Zone::Named(tz) => tz.name().to_string(),
        }
    }
}

/// `+02:00`, `-0530`, `+5` as seconds east of UTC.
fn parse_offset(t: &str) -> Option<i32> {
    let (sign, rest) = match t.as_bytes().first()? {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => (&rest[..2], &rest[2..]),
        None => (rest, "0"),
    };
    if h.is_empty()
        || h.len() > 2
        || m.len() > 2
        || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

/// Why a value could not be read.
pub type Problem = Cow<'static, str>;

/// Whether ISO-like datetime text names its zone (`Z`, `+02:00`, `UTC`).
fn has_explicit_zone(t: &str) -> bool {
    let t = t.trim();
    if t.ends_with(['Z', 'z']) || t.ends_with("UTC") || t.ends_with("GMT") {
        return true;
    }
    // An offset sign after the date part (the date's own dashes are within its first 10 bytes).
    t.get(10..).is_some_and(|rest| rest.contains(['+', '-']))
}

/// `10/25/2023, 9:43:21.994 AM`: the Log Analytics portal's CSV export (US month/day
/// order, 12-hour clock, milliseconds), also without the comma, seconds, fraction or
/// AM/PM (then a 24-hour clock). Returns naive ticks (no zone applied).
pub fn parse_us_datetime(text: &str) -> Option<i64> {
    let t = text.trim();
    let (date, rest) = match t.split_once(',') {
        Some((d, r)) => (d.trim(), r.trim()),
        None => match t.split_once(' ') {
            Some((d, r)) => (d.trim(), r.trim()),
            None => (t, ""),
        },
    };
    let mut parts = date.split('/');
    let (m, d, y) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() > 2 || d.len() > 2 {
        return None;
    }
    let (m, d, y): (u32, u32, i64) = (m.parse().ok()?, d.parse().ok()?, y.parse().ok()?);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) || !(1..=9999).contains(&y) {
        return None;
    }
    let mut v = days_from_civil(y, m, d) * ticks::PER_DAY;
    if rest.is_empty() {
        return Some(v);
    }
    let (clock, ampm) = match rest.rsplit_once(' ') {
        Some((c, a)) => (c.trim(), Some(a.trim().to_ascii_uppercase())),
        None => {
            let upper = rest.to_ascii_uppercase();
            if let Some(c) = upper.strip_suffix("AM") {
                (rest[..c.len()].trim(), Some("AM".to_string()))
            } else if let Some(c) = upper.strip_suffix("PM") {
                (rest[..c.len()].trim(), Some("PM".to_string()))
            } else {
                (rest, None)
            }
        }
    };
    let fields: Vec<&str> = clock.split(':').collect();
    if fields.len() < 2 || fields.len() > 3 {
        return None;
    }
    let digits = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(fields[0]) || !digits(fields[1]) {
        return None;
    }
    let mut h: i64 = fields[0].parse().ok()?;
    let mi: i64 = fields[1].parse().ok()?;
    let (s, frac) = match fields.get(2) {
        None => (0, 0),
        Some(s) => {
            let (s, f) = s.split_once('.').unwrap_or((s, ""));
            if !digits(s) || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let mut f: String = f.chars().take(7).collect();
            while f.len() < 7 {
                f.push('0');
            }
            (s.parse::<i64>().ok()?, f.parse::<i64>().ok()?)
        }
    };
    match ampm.as_deref() {
        None => {}
        Some("AM") if (1..=12).contains(&h) => h %= 12,
        Some("PM") if (1..=12).contains(&h) => h = h % 12 + 12,
        Some(_) => return None,
    }
    if h > 23 || mi > 59 || s > 59 {
        return None;
    }
    v += h * ticks::PER_HOUR + mi * ticks::PER_MINUTE + s * ticks::PER_SECOND + frac;
    Some(v)
}

/// Naive ticks read in `zone` -> UTC ticks. `fold` is set when the local time occurs twice
/// (the end of daylight saving time): the earlier instant is taken.
fn localize(naive: i64, zone: &Zone, fold: &mut bool) -> std::result::Result<i64, Problem> {
    match zone {
        Zone::Utc => Ok(naive),
        Zone::Fixed(secs) => Ok(naive - *secs as i64 * ticks::PER_SECOND),
        Zone::Named(tz) => {
            let days = naive.div_euclid(ticks::PER_DAY);
            let rem = naive.rem_euclid(ticks::PER_DAY);
            let (y, m, d) = civil_from_days(days);
            let date =
                chrono::NaiveDate::from_ymd_opt(y as i32, m, d).ok_or("date out of range")?;
            let secs = (rem / ticks::PER_SECOND) as u32;
            let local = date
                .and_hms_opt(secs / 3600, secs / 60 % 60, secs % 60)
                .ok_or("time out of range")?;
            let offset = match tz.offset_from_local_datetime(&local) {
                chrono::LocalResult::Single(o) => o.fix().local_minus_utc(),
                chrono::LocalResult::Ambiguous(a, _) => {
                    *fold = true;
                    a.fix().local_minus_utc()
                }
                chrono::LocalResult::None => {
                    return Err(format!(
                        "local time that does not exist in {} (skipped by daylight saving time)",
                        tz.name()
                    )
                    .into())
                }
            };
            Ok(naive - offset as i64 * ticks::PER_SECOND)
        }
    }
}

/// Datetime text: ISO 8601 / RFC forms (an explicit offset wins), or the portal's
/// `10/25/2023, 9:43:21.994 AM`; zone-less text is read in `zone`.
pub fn parse_time_text(
    text: &str,
    zone: &Zone,
    fold: &mut bool,
) -> std::result::Result<i64, Problem> {
    let t = text.trim();
    let v = if let Some(v) = parse_datetime(t) {
        if *zone == Zone::Utc || has_explicit_zone(t) {
            return Ok(v);
        }
        v
    } else if let Some(v) = parse_us_datetime(t) {
        v
    } else {
        return Err("not a datetime".into());
    };
    let out = localize(v, zone, fold)?;
    if (0..=ticks::MAX_DATETIME).contains(&out) {
        Ok(out)
    } else {
        Err("datetime out of range".into())
    }
}

fn parse_bool(t: &str) -> Option<bool> {
    let t = t.trim();
    if t.eq_ignore_ascii_case("true") || t == "1" {
        Some(true)
    } else if t.eq_ignore_ascii_case("false") || t == "0" {
        Some(false)
    } else {
        None
    }
}

fn parse_int<T: std::str::FromStr>(t: &str) -> Option<T> {
    let t = t.trim();
    t.strip_prefix('+').unwrap_or(t).parse().ok()
}

fn parse_real(t: &str) -> Option<f64> {
    let t = t.trim();
    match t {
        "NaN" => Some(f64::NAN),
        "Infinity" | "+Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ if t
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E')) =>
        {
            t.parse().ok()
        }
        _ => None,
    }
}

/// One value on its way into a column.
enum Cell<'a> {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Real(f64),
    Str(Cow<'a, str>),
    Ticks(i64),
    Guid(u128),
    Dyn(J),
}

enum Store {
    /// Not kept (the query does not read the column): values are still checked.
    Skip(usize),
    Bool(BooleanBuilder),
    Int(Int32Builder),
    Long(Int64Builder),
    Real(Float64Builder),
    Str(StringBuilder),
    Ticks(Int64Builder),
    Guid(Vec<Option<u128>>),
    Dyn(Vec<J>),
}

/// Builds one column of Kusto type `ty` from text, JSON or engine values. Every push adds
/// exactly one row: a value that cannot be read adds a null and returns the problem.
pub struct ColumnBuilder {
    ty: KqlType,
    zone: Zone,
    store: Store,
    /// Local times read in a daylight-saving fold (taken as the earlier instant).
    pub folds: u64,
}

impl ColumnBuilder {
    /// `keep = false` checks values without storing them ([`Column::Pruned`] at the end).
    pub fn new(ty: KqlType, zone: Zone, keep: bool, capacity: usize) -> ColumnBuilder {
        let store = if !keep {
            Store::Skip(0)
        } else {
            match ty {
                KqlType::Bool => Store::Bool(BooleanBuilder::with_capacity(capacity)),
                KqlType::Int => Store::Int(Int32Builder::with_capacity(capacity)),
                KqlType::Long => Store::Long(Int64Builder::with_capacity(capacity)),
                KqlType::Real | KqlType::Decimal => {
                    Store::Real(Float64Builder::with_capacity(capacity))
                }
                KqlType::String => {
                    Store::Str(StringBuilder::with_capacity(capacity, capacity * 16))
                }
                KqlType::DateTime | KqlType::TimeSpan => {
                    Store::Ticks(Int64Builder::with_capacity(capacity))
                }
                KqlType::Guid => Store::Guid(Vec::with_capacity(capacity)),
                KqlType::Dynamic => Store::Dyn(Vec::with_capacity(capacity)),
            }
        };
        ColumnBuilder {
            ty,
            zone,
            store,
            folds: 0,
        }
    }

    fn keeps(&self) -> bool {
        !matches!(self.store, Store::Skip(_))
    }

    fn put(&mut self, cell: Cell<'_>) {
        match (&mut self.store, cell) {
            (Store::Skip(n), _) => *n += 1,
            (Store::Bool(b), Cell::Bool(v)) => b.append_value(v),
            (Store::Bool(b), _) => b.append_null(),
            (Store::Int(b), Cell::Int(v)) => b.append_value(v),
            (Store::Int(b), _) => b.append_null(),
            (Store::Long(b), Cell::Long(v)) => b.append_value(v),
            (Store::Long(b), _) => b.append_null(),
            (Store::Real(b), Cell::Real(v)) => b.append_value(v),
            (Store::Real(b), _) => b.append_null(),
            (Store::Str(b), Cell::Str(v)) => b.append_value(v),
            (Store::Str(b), _) => b.append_value(""),
            (Store::Ticks(b), Cell::Ticks(v)) => b.append_value(v),
            (Store::Ticks(b), _) => b.append_null(),
            (Store::Guid(b), Cell::Guid(v)) => b.push(Some(v)),
            (Store::Guid(b), _) => b.push(None),
            (Store::Dyn(b), Cell::Dyn(v)) => b.push(v),
            (Store::Dyn(b), Cell::Str(s)) => b.push(J::String(s.into_owned())),
            (Store::Dyn(b), _) => b.push(J::Null),
        }
    }

    /// Adds a row from text (CSV). Empty text is null (the empty string for strings).
    pub fn push_text(&mut self, text: &str) -> std::result::Result<(), Problem> {
        let r = self.text_cell(text);
        self.finish_push(r)
    }

    fn finish_push(
        &mut self,
        r: std::result::Result<Cell<'_>, Problem>,
    ) -> std::result::Result<(), Problem> {
        match r {
            Ok(c) => {
                self.put(c);
                Ok(())
            }
            Err(p) => {
                self.put(Cell::Null);
                Err(p)
            }
        }
    }

    fn text_cell<'a>(&mut self, text: &'a str) -> std::result::Result<Cell<'a>, Problem> {
        if self.ty == KqlType::String {
            return Ok(Cell::Str(Cow::Borrowed(text)));
        }
        if text.trim().is_empty() {
            return Ok(Cell::Null);
        }
        let bad = |what: &'static str| -> Problem { Cow::Borrowed(what) };
        Ok(match self.ty {
            KqlType::Bool => Cell::Bool(parse_bool(text).ok_or_else(|| bad("not a bool"))?),
            KqlType::Int => {
                Cell::Int(parse_int(text).ok_or_else(|| bad("not an int (32-bit integer)"))?)
            }
            KqlType::Long => {
                Cell::Long(parse_int(text).ok_or_else(|| bad("not a long (64-bit integer)"))?)
            }
            KqlType::Real | KqlType::Decimal => {
                Cell::Real(parse_real(text).ok_or_else(|| bad("not a real number"))?)
            }
            KqlType::DateTime => {
                let mut fold = false;
                let v = parse_time_text(text, &self.zone, &mut fold)?;
                self.folds += u64::from(fold);
                Cell::Ticks(v)
            }
            KqlType::TimeSpan => {
                let t = text.trim();
                let v = if t.contains(':') {
                    parse_timespan_clock(t)
                } else {
                    parse_timespan_literal(t)
                };
                Cell::Ticks(v.ok_or_else(|| bad("not a timespan"))?)
            }
            KqlType::Guid => Cell::Guid(parse_guid(text).ok_or_else(|| bad("not a guid"))?),
            KqlType::Dynamic => {
                if !self.keeps() {
                    return Ok(Cell::Null);
                }
                // JSON text is parsed; anything else is kept as a string value.
                Cell::Dyn(
                    serde_json::from_str(text).unwrap_or_else(|_| J::String(text.to_string())),
                )
            }
            KqlType::String => Cell::Str(Cow::Borrowed(text)),
        })
    }

    /// Adds a row from a JSON value (JSON readers); `None` for an absent key.
    pub fn push_json(&mut self, v: Option<&J>) -> std::result::Result<(), Problem> {
        let r = match v {
            None | Some(J::Null) => Ok(if self.ty == KqlType::String {
                Cell::Str(Cow::Borrowed(""))
            } else {
                Cell::Null
            }),
            Some(v) => self.json_cell(v),
        };
        self.finish_push(r)
    }

    fn json_cell<'a>(&mut self, v: &'a J) -> std::result::Result<Cell<'a>, Problem> {
        let kind = json_kind_name(v);
        let wrong = |want: &str| -> Problem {
            Cow::Owned(format!("a JSON {kind} where a {want} is expected"))
        };
        Ok(match (self.ty, v) {
            (KqlType::String, J::String(s)) => Cell::Str(Cow::Borrowed(s)),
            (KqlType::String, other) => {
                if !self.keeps() {
                    return Ok(Cell::Null);
                }
                Cell::Str(Cow::Owned(other.to_string()))
            }
            (KqlType::Dynamic, J::String(s)) => {
                let t = s.trim_start();
                if self.keeps() && (t.starts_with('{') || t.starts_with('[')) {
                    Cell::Dyn(serde_json::from_str(s).unwrap_or_else(|_| v.clone()))
                } else if self.keeps() {
                    Cell::Dyn(v.clone())
                } else {
                    Cell::Null
                }
            }
            (KqlType::Dynamic, _) => {
                if self.keeps() {
                    Cell::Dyn(v.clone())
                } else {
                    Cell::Null
                }
            }
            (_, J::String(s)) => return self.text_cell(s).map(owned),
            (KqlType::Bool, J::Bool(b)) => Cell::Bool(*b),
            (KqlType::Bool, J::Number(n)) => match n.as_i64() {
                Some(0) => Cell::Bool(false),
                Some(1) => Cell::Bool(true),
                _ => return Err(wrong("bool")),
            },
            (KqlType::Int, J::Number(n)) => Cell::Int(
                json_integer(n)
                    .and_then(|i| i32::try_from(i).ok())
                    .ok_or_else(|| wrong("int (32-bit integer)"))?,
            ),
            (KqlType::Long, J::Number(n)) => {
                Cell::Long(json_integer(n).ok_or_else(|| wrong("long (64-bit integer)"))?)
            }
            (KqlType::Real | KqlType::Decimal, J::Number(n)) => {
                Cell::Real(n.as_f64().ok_or_else(|| wrong("real"))?)
            }
            (ty, _) => return Err(wrong(ty.name())),
        })
    }

    /// Adds a row from an engine value (Parquet columns whose type differs from the table's).
    pub fn push_value(&mut self, v: &Value) -> std::result::Result<(), Problem> {
        let r = match v {
            Value::Null => Ok(if self.ty == KqlType::String {
                Cell::Str(Cow::Borrowed(""))
            } else {
                Cell::Null
            }),
            Value::String(s) => self.text_cell(s).map(owned),
            Value::Dynamic(j) => self.json_cell(j).map(owned),
            _ => self.value_cell(v),
        };
        self.finish_push(r)
    }

    fn value_cell(&mut self, v: &Value) -> std::result::Result<Cell<'static>, Problem> {
        let from = v.kql_type().map_or("null", |t| t.name());
        let wrong = || -> Problem {
            Cow::Owned(format!(
                "a {from} value where a {} is expected",
                self.ty.name()
            ))
        };
        Ok(match (self.ty, v) {
            (KqlType::String, v) => Cell::Str(Cow::Owned(crate::functions::to_display_string(v))),
            (KqlType::Dynamic, v) => Cell::Dyn(crate::exec::value_to_json(v)),
            (KqlType::Bool, Value::Bool(b)) => Cell::Bool(*b),
            (KqlType::Bool, Value::Int(i)) if (0..=1).contains(i) => Cell::Bool(*i == 1),
            (KqlType::Bool, Value::Long(i)) if (0..=1).contains(i) => Cell::Bool(*i == 1),
            (KqlType::Int, Value::Int(i)) => Cell::Int(*i),
            (KqlType::Int, Value::Long(i)) => Cell::Int(i32::try_from(*i).map_err(|_| wrong())?),
            (KqlType::Int, Value::Real(r)) if r.fract() == 0.0 && r.abs() <= i32::MAX as f64 => {
                Cell::Int(*r as i32)
            }
            (KqlType::Long, Value::Int(i)) => Cell::Long(*i as i64),
            (KqlType::Long, Value::Long(i)) => Cell::Long(*i),
            (KqlType::Long, Value::Real(r)) if r.fract() == 0.0 && r.abs() < 9.2e18 => {
                Cell::Long(*r as i64)
            }
            (KqlType::Real | KqlType::Decimal, v) => Cell::Real(v.as_f64().ok_or_else(wrong)?),
            (KqlType::DateTime, Value::DateTime(t)) | (KqlType::TimeSpan, Value::TimeSpan(t)) => {
                Cell::Ticks(*t)
            }
            (KqlType::Guid, Value::Guid(g)) => Cell::Guid(*g),
            _ => return Err(wrong()),
        })
    }

    /// The column built so far; the builder is empty afterwards.
    pub fn finish(&mut self) -> Column {
        let ty = self.ty;
        match &mut self.store {
            Store::Skip(n) => {
                let c = Column::Pruned(ty, *n);
                *n = 0;
                c
            }
            Store::Bool(b) => Column::Bool(b.finish()),
            Store::Int(b) => Column::Int(b.finish()),
            Store::Long(b) => Column::Long(b.finish()),
            Store::Real(b) => Column::Real(b.finish()),
            Store::Str(b) => Column::String(b.finish()),
            Store::Ticks(b) if ty == KqlType::TimeSpan => Column::TimeSpan(b.finish()),
            Store::Ticks(b) => Column::DateTime(null_slots_at_epoch(b.finish())),
            Store::Guid(v) => Column::Guid(Arc::new(std::mem::take(v))),
            Store::Dyn(v) => Column::Dynamic(Arc::new(std::mem::take(v))),
        }
    }
}

/// A column of `len` nulls (datetime slots at 1970-01-01, see [`null_slots_at_epoch`]).
pub fn null_column(ty: KqlType, len: usize) -> Column {
    if ty == KqlType::DateTime {
        let nulls = arrow::buffer::NullBuffer::new_null(len);
        return Column::DateTime(Int64Array::new(
            vec![ticks::UNIX_EPOCH; len].into(),
            Some(nulls),
        ));
    }
    Column::null(ty, len)
}

/// Null datetime slots hold 1970-01-01 rather than 0001-01-01, so code that maps every
/// slot to Unix nanoseconds (null or not) cannot overflow.
fn null_slots_at_epoch(a: Int64Array) -> Int64Array {
    match a.nulls() {
        Some(nulls) if nulls.null_count() > 0 => {
            let values: Vec<i64> = a
                .values()
                .iter()
                .zip(nulls.iter())
                .map(|(v, ok)| if ok { *v } else { ticks::UNIX_EPOCH })
                .collect();
            Int64Array::new(values.into(), Some(nulls.clone()))
        }
        _ => a,
    }
}

fn owned(c: Cell<'_>) -> Cell<'static> {
    match c {
        Cell::Null => Cell::Null,
        Cell::Bool(v) => Cell::Bool(v),
        Cell::Int(v) => Cell::Int(v),
        Cell::Long(v) => Cell::Long(v),
        Cell::Real(v) => Cell::Real(v),
        Cell::Str(s) => Cell::Str(Cow::Owned(s.into_owned())),
        Cell::Ticks(v) => Cell::Ticks(v),
        Cell::Guid(v) => Cell::Guid(v),
        Cell::Dyn(v) => Cell::Dyn(v),
    }
}

/// An integer JSON number, or a float with no fraction (`3.0`).
fn json_integer(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
            .map(|f| f as i64)
    })
}

pub fn json_kind_name(v: &J) -> &'static str {
    match v {
        J::Null => "null",
        J::Bool(_) => "boolean",
        J::Number(_) => "number",
        J::String(_) => "string",
        J::Array(_) => "array",
        J::Object(_) => "object",
    }
}

/// What the values of an undocumented JSON key look like, merged over rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only nulls seen so far.
    Unknown,
    Bool,
    Long,
    Real,
    /// Strings that all read as ISO 8601 datetimes.
    DateTime,
    String,
    Dynamic,
}

impl Kind {
    pub fn of(v: &J) -> Kind {
        match v {
            J::Null => Kind::Unknown,
            J::Bool(_) => Kind::Bool,
            J::Number(n) if n.is_i64() => Kind::Long,
            J::Number(_) => Kind::Real,
            J::String(s) => Kind::of_str(s),
            J::Array(_) | J::Object(_) => Kind::Dynamic,
        }
    }

    /// The kind of a JSON string.
    pub fn of_str(s: &str) -> Kind {
        if looks_like_iso_datetime(s) {
            Kind::DateTime
        } else {
            Kind::String
        }
    }

    pub fn merge(self, other: Kind) -> Kind {
        use Kind::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Unknown, x) | (x, Unknown) => x,
            (Long, Real) | (Real, Long) => Real,
            (Dynamic, _) | (_, Dynamic) => Dynamic,
            _ => String,
        }
    }

    pub fn kql_type(self) -> Option<KqlType> {
        Some(match self {
            Kind::Unknown => return None,
            Kind::Bool => KqlType::Bool,
            Kind::Long => KqlType::Long,
            Kind::Real => KqlType::Real,
            Kind::DateTime => KqlType::DateTime,
            Kind::String => KqlType::String,
            Kind::Dynamic => KqlType::Dynamic,
        })
    }
}

/// `2024-06-01T10:00:00...`: the shape Defender's JSON uses for datetimes.
fn looks_like_iso_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 16
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b' ')
        && b[13] == b':'
        && parse_datetime(s).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::format_datetime;

    fn utc(text: &str) -> Option<String> {
        parse_time_text(text, &Zone::Utc, &mut false)
            .ok()
            .map(format_datetime)
    }

    #[test]
    fn portal_datetimes() {
        assert_eq!(
            utc("10/25/2023, 9:43:21.994 AM").as_deref(),
            Some("2023-10-25T09:43:21.9940000Z")
        );
        assert_eq!(
            utc("10/25/2023, 12:00:00.000 AM").as_deref(),
            Some("2023-10-25T00:00:00.0000000Z")
        );
        assert_eq!(
            utc("10/25/2023, 12:05:00.000 PM").as_deref(),
            Some("2023-10-25T12:05:00.0000000Z")
        );
        assert_eq!(
            utc("1/2/2024, 11:59:59 PM").as_deref(),
            Some("2024-01-02T23:59:59.0000000Z")
        );
        assert_eq!(
            utc("1/2/2024 13:00").as_deref(),
            Some("2024-01-02T13:00:00.0000000Z")
        );
        assert_eq!(
            utc("2024-06-01T10:00:00.1234567Z").as_deref(),
            Some("2024-06-01T10:00:00.1234567Z")
        );
        for bad in [
            "13/25/2023, 9:43:21 AM",
            "10/25/2023, 13:43:21 PM",
            "2/30/2024",
            "yesterday",
            "10/25/23, 9:00 AM",
        ] {
            assert_eq!(utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn local_times() {
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        let mut fold = false;
        let t = parse_time_text("6/1/2024, 12:00:00.000 PM", &berlin, &mut fold).unwrap();
        assert_eq!(format_datetime(t), "2024-06-01T10:00:00.0000000Z");
        // An explicit offset wins over the column's zone.
        let t = parse_time_text("2024-06-01T12:00:00Z", &berlin, &mut fold).unwrap();
        assert_eq!(format_datetime(t), "2024-06-01T12:00:00.0000000Z");
        // 02:30 on the last Sunday of March does not exist in Berlin.
        assert!(parse_time_text("3/31/2024, 2:30:00 AM", &berlin, &mut fold).is_err());
        // 02:30 on the last Sunday of October happens twice: the earlier (summer time) is taken.
        let t = parse_time_text("10/27/2024, 2:30:00 AM", &berlin, &mut fold).unwrap();
        assert!(fold);
        assert_eq!(format_datetime(t), "2024-10-27T00:30:00.0000000Z");
        let plus2 = Zone::parse("+02:00").unwrap();
        assert_eq!(plus2, Zone::Fixed(7200));
        let t = parse_time_text("2024-06-01 12:00", &plus2, &mut fold).unwrap();
        assert_eq!(format_datetime(t), "2024-06-01T10:00:00.0000000Z");
        assert_eq!(Zone::parse("UTC").unwrap(), Zone::Utc);
        assert!(Zone::parse("Mars/Olympus").is_err());
    }

    #[test]
    fn builders_report_bad_values() {
        let mut b = ColumnBuilder::new(KqlType::Long, Zone::Utc, true, 4);
        assert!(b.push_text("42").is_ok());
        assert!(b.push_text("").is_ok());
        assert!(b.push_text("4x2").is_err());
        assert!(b.push_json(Some(&serde_json::json!(7.0))).is_ok());
        assert!(b.push_json(Some(&serde_json::json!("8"))).is_ok());
        assert!(b.push_json(Some(&serde_json::json!(true))).is_err());
        let c = b.finish();
        let got: Vec<Value> = (0..c.len()).map(|i| c.get(i)).collect();
        assert_eq!(
            got,
            vec![
                Value::Long(42),
                Value::Null,
                Value::Null,
                Value::Long(7),
                Value::Long(8),
                Value::Null
            ]
        );

        let mut s = ColumnBuilder::new(KqlType::String, Zone::Utc, true, 2);
        s.push_json(Some(&serde_json::json!({"a": 1}))).unwrap();
        s.push_json(None).unwrap();
        let c = s.finish();
        assert_eq!(c.get(0), Value::String("{\"a\":1}".into()));
        assert_eq!(c.get(1), Value::String(String::new()));

        let mut skip = ColumnBuilder::new(KqlType::DateTime, Zone::Utc, false, 2);
        assert!(skip.push_text("nope").is_err());
        assert!(matches!(
            skip.finish(),
            Column::Pruned(KqlType::DateTime, 1)
        ));
    }

    #[test]
    fn kinds_merge() {
        assert_eq!(
            Kind::of(&serde_json::json!("2024-06-01T00:00:00.123456Z")),
            Kind::DateTime
        );
        assert_eq!(Kind::Long.merge(Kind::Real), Kind::Real);
        assert_eq!(Kind::DateTime.merge(Kind::String), Kind::String);
        assert_eq!(Kind::Unknown.merge(Kind::Bool), Kind::Bool);
        assert_eq!(Kind::Long.merge(Kind::String), Kind::String);
    }
}
