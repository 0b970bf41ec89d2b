//! Scalar functions: the name table, each function's type rule, and its row semantics.
//! Every function is one `match` arm in [`Func::return_type`] and one in [`call`], so its
//! whole Kusto rule can be read in one place.

use crate::error::{Error, Result, Span};
use crate::kernels::time;
use crate::types::{format_datetime, format_guid, format_real, format_timespan, KqlType, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Func {
    Now,
    Ago,
    Bin,
    ToString,
    ToInt,
    ToLong,
    ToReal,
    ToBool,
    ToDateTime,
    ToTimeSpan,
    ToGuid,
    ToDynamic,
    ToLower,
    ToUpper,
    Strlen,
    Strcat,
    StrcatDelim,
    Substring,
    Split,
    Trim,
    TrimStart,
    TrimEnd,
    IsEmpty,
    IsNotEmpty,
    IsNull,
    IsNotNull,
    Iff,
    Case,
    Coalesce,
    Extract,
    ReplaceString,
    ArrayLength,
    Not,
    IsNan,
    Abs,
    Round,
    StartOfDay,
    IndexOf,
    PackArray,
    /// `x[i]` / `x.key` (not callable by name).
    Index,
}

impl Func {
    pub fn lookup(name: &str) -> Option<Func> {
        Some(match name {
            "now" => Func::Now,
            "ago" => Func::Ago,
            "bin" | "floor" => Func::Bin,
            "tostring" => Func::ToString,
            "toint" => Func::ToInt,
            "tolong" => Func::ToLong,
            "todouble" | "toreal" => Func::ToReal,
            "tobool" | "toboolean" => Func::ToBool,
            "todatetime" => Func::ToDateTime,
            "totimespan" | "totime" => Func::ToTimeSpan,
            "toguid" => Func::ToGuid,
            "todynamic" | "parse_json" | "toobject" => Func::ToDynamic,
            "tolower" => Func::ToLower,
            "toupper" => Func::ToUpper,
            "strlen" => Func::Strlen,
            "strcat" => Func::Strcat,
            "strcat_delim" => Func::StrcatDelim,
            "substring" => Func::Substring,
            "split" => Func::Split,
            "trim" => Func::Trim,
            "trim_start" => Func::TrimStart,
            "trim_end" => Func::TrimEnd,
            "isempty" => Func::IsEmpty,
            "isnotempty" => Func::IsNotEmpty,
            "isnull" => Func::IsNull,
            "isnotnull" => Func::IsNotNull,
            "iff" | "iif" => Func::Iff,
            "case" => Func::Case,
            "coalesce" => Func::Coalesce,
            "extract" => Func::Extract,
            "replace_string" => Func::ReplaceString,
            "array_length" => Func::ArrayLength,
            "not" => Func::Not,
            "isnan" => Func::IsNan,
            "abs" => Func::Abs,
            "round" => Func::Round,
            "startofday" => Func::StartOfDay,
            "indexof" => Func::IndexOf,
            "pack_array" => Func::PackArray,
            _ => return None,
        })
    }

    /// Functions whose unnamed result column takes its first argument's name (KL
    /// `ResultNameKind.FirstArgument`): `bin(Timestamp, 1h)` is `Timestamp`.
    pub fn keeps_first_arg_name(self) -> bool {
        matches!(self, Func::Bin)
    }

    /// The result type for these argument types, or a semantic error naming the types.
    pub fn return_type(self, name: &str, args: &[KqlType], span: Span) -> Result<KqlType> {
        let arity = |lo: usize, hi: usize| -> Result<()> {
            if args.len() < lo || args.len() > hi {
                let want = if lo == hi {
                    format!("{lo}")
                } else if hi == usize::MAX {
                    format!("at least {lo}")
                } else {
                    format!("{lo} to {hi}")
                };
                return Err(Error::semantic(
                    format!(
                        "function {name}() takes {want} arguments, got {}",
                        args.len()
                    ),
                    span,
                ));
            }
            Ok(())
        };
        let want = |i: usize, ok: &[KqlType]| -> Result<()> {
            if !ok.contains(&args[i]) && args[i] != KqlType::Dynamic {
                let names: Vec<&str> = ok.iter().map(|t| t.name()).collect();
                return Err(Error::semantic(
                    format!(
                        "argument {} of {name}() must be {}, got {}",
                        i + 1,
                        names.join(" or "),
                        args[i]
                    ),
                    span,
                ));
            }
            Ok(())
        };
        use KqlType::*;
        Ok(match self {
            Func::Now => {
                arity(0, 1)?;
                if !args.is_empty() {
                    want(0, &[TimeSpan])?;
                }
                DateTime
            }
            Func::Ago => {
                arity(1, 1)?;
                want(0, &[TimeSpan])?;
                DateTime
            }
            Func::Bin => {
                arity(2, 2)?;
                match (args[0], args[1]) {
                    (DateTime, TimeSpan) => DateTime,
                    (TimeSpan, TimeSpan) => TimeSpan,
                    (Int | Long, Int | Long) => args[0],
                    (Int | Long | Real, Int | Long | Real) => Real,
                    (a, b) => {
                        return Err(Error::semantic(
                            format!("bin() cannot round {a} by {b}"),
                            span,
                        ))
                    }
                }
            }
            Func::ToString => {
                arity(1, 1)?;
                String
            }
            Func::ToInt => {
                arity(1, 1)?;
                Int
            }
            Func::ToLong => {
                arity(1, 1)?;
                Long
            }
            Func::ToReal => {
                arity(1, 1)?;
                Real
            }
            Func::ToBool => {
                arity(1, 1)?;
                Bool
            }
            Func::ToDateTime => {
                arity(1, 1)?;
                DateTime
            }
            Func::ToTimeSpan => {
                arity(1, 1)?;
                TimeSpan
            }
            Func::ToGuid => {
                arity(1, 1)?;
                Guid
            }
            Func::ToDynamic => {
                arity(1, 1)?;
                Dynamic
            }
            Func::ToLower | Func::ToUpper => {
                arity(1, 1)?;
                want(0, &[String])?;
                String
            }
            Func::Strlen => {
                arity(1, 1)?;
                want(0, &[String])?;
                Long
            }
            Func::Strcat => {
                arity(1, 64)?;
                String
            }
            Func::StrcatDelim => {
                arity(3, 65)?;
                String
            }
            Func::Substring => {
                arity(2, 3)?;
                want(1, &[Int, Long])?;
                if args.len() == 3 {
                    want(2, &[Int, Long])?;
                }
                String
            }
            Func::Split => {
                arity(2, 3)?;
                want(0, &[String])?;
                want(1, &[String])?;
                if args.len() == 3 {
                    want(2, &[Int, Long])?;
                }
                Dynamic
            }
            Func::Trim | Func::TrimStart | Func::TrimEnd => {
                arity(2, 2)?;
                want(0, &[String])?;
                want(1, &[String])?;
                String
            }
            Func::IsEmpty | Func::IsNotEmpty | Func::IsNull | Func::IsNotNull => {
                arity(1, 1)?;
                Bool
            }
            Func::Iff => {
                arity(3, 3)?;
                want(0, &[Bool])?;
                common_type(&[args[1], args[2]], name, span)?
            }
            Func::Case => {
                arity(3, usize::MAX)?;
                if args.len() % 2 == 0 {
                    return Err(Error::semantic(
                        "case() takes predicate/value pairs and a final else value",
                        span,
                    ));
                }
                let mut vals = Vec::new();
                for (i, t) in args.iter().enumerate() {
                    if i % 2 == 0 && i + 1 < args.len() {
                        want(i, &[Bool])?;
                    } else {
                        vals.push(*t);
                    }
                }
                common_type(&vals, name, span)?
            }
            Func::Coalesce => {
                arity(1, 64)?;
                common_type(args, name, span)?
            }
            Func::Extract => {
                arity(3, 4)?;
                want(0, &[String])?;
                want(1, &[Int, Long])?;
                if args.len() == 4 {
                    return Err(Error::unsupported("extract() with a result type", span));
                }
                String
            }
            Func::ReplaceString => {
                arity(3, 3)?;
                for i in 0..3 {
                    want(i, &[String])?;
                }
                String
            }
            Func::ArrayLength => {
                arity(1, 1)?;
                want(0, &[Dynamic])?;
                Long
            }
            Func::Not => {
                arity(1, 1)?;
                want(0, &[Bool])?;
                Bool
            }
            Func::IsNan => {
                arity(1, 1)?;
                want(0, &[Real, Int, Long])?;
                Bool
            }
            Func::Abs => {
                arity(1, 1)?;
                want(0, &[Int, Long, Real, TimeSpan])?;
                args[0]
            }
            Func::Round => {
                arity(1, 2)?;
                want(0, &[Int, Long, Real])?;
                Real
            }
            Func::StartOfDay => {
                arity(1, 1)?;
                want(0, &[DateTime])?;
                DateTime
            }
            Func::IndexOf => {
                arity(2, 2)?;
                Long
            }
            Func::PackArray => Dynamic,
            Func::Index => Dynamic,
        })
    }
}

/// The type that values of these types share (`iff`, `case`, `coalesce`): equal types,
/// or numbers widened (int < long < real). Anything else is a semantic error.
pub fn common_type(types: &[KqlType], name: &str, span: Span) -> Result<KqlType> {
    let mut t = types[0];
    for &u in &types[1..] {
        t = match (t, u) {
            (a, b) if a == b => a,
            (KqlType::Int, KqlType::Long) | (KqlType::Long, KqlType::Int) => KqlType::Long,
            (a, b) if a.is_numeric() && b.is_numeric() => KqlType::Real,
            (a, b) => {
                return Err(Error::semantic(
                    format!("{name}() arguments have incompatible types {a} and {b}"),
                    span,
                ));
            }
        };
    }
    Ok(t)
}

/// A value as `tostring()` renders it (datetimes in full 7-digit form, bools as
/// `True`/`False`, dynamic as compact JSON, strings unquoted).
pub fn to_display_string(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => {
            if *b {
                "True".into()
            } else {
                "False".into()
            }
        }
        Value::Int(i) => i.to_string(),
        Value::Long(i) => i.to_string(),
        Value::Real(r) => format_real(*r),
        Value::String(s) => s.clone(),
        Value::DateTime(t) => format_datetime(*t),
        Value::TimeSpan(t) => format_timespan(*t),
        Value::Guid(g) => format_guid(*g),
        Value::Dynamic(serde_json::Value::String(s)) => s.clone(),
        Value::Dynamic(j) => j.to_string(),
    }
}

fn as_string(v: &Value) -> String {
    to_display_string(v)
}

/// Text to number the way `tolong`/`todouble` parse strings: surrounding space trimmed;
/// `NaN`, `Infinity`, `inf` accepted for reals; anything else is null.
fn parse_real(s: &str) -> Option<f64> {
    let t = s.trim();
    // .NET's names, any case, plus the lower-case short forms (EMU-K2S: "INF" is null,
    // "inf" and "-inf" are infinities).
    match t {
        "inf" | "+inf" | "Inf" | "+Inf" => return Some(f64::INFINITY),
        "-inf" | "-Inf" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    match t.to_ascii_lowercase().as_str() {
        "nan" => return Some(f64::NAN),
        "infinity" | "+infinity" => return Some(f64::INFINITY),
        "-infinity" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    if t.starts_with("0x") || t.starts_with("0X") {
        return None;
    }
    if t.is_empty() || t.contains(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E') {
        return None;
    }
    t.parse().ok()
}

/// Text to long as `tolong`/`toint` parse it: trimmed, an optional sign and decimal
/// digits, or `0x` hex (read as 64 bits: 0xFFFFFFFFFFFFFFFF is -1); no fraction, no
/// exponent, no overflow (EMU-K2S type-casts cases).
fn parse_long(s: &str) -> Option<i64> {
    let t = s.trim();
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16).ok().map(|u| u as i64);
    }
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.strip_prefix('+').unwrap_or(t).parse::<i64>().ok()
}

fn to_long(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i as i64),
        Value::Long(i) => Some(*i),
        Value::Real(r) if r.is_finite() => Some(r.trunc() as i64),
        Value::Bool(b) => Some(*b as i64),
        Value::DateTime(t) | Value::TimeSpan(t) => Some(*t),
        Value::String(s) => parse_long(s),
        Value::Dynamic(j) => match j {
            serde_json::Value::Number(n) => {
                n.as_i64().or_else(|| n.as_f64().map(|f| f.trunc() as i64))
            }
            serde_json::Value::String(s) => to_long(&Value::String(s.clone())),
            serde_json::Value::Bool(b) => Some(*b as i64),
            _ => None,
        },
        _ => None,
    }
}

fn to_real(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Long(i) => Some(*i as f64),
        Value::Real(r) => Some(*r),
        Value::Bool(b) => Some(*b as i64 as f64),
        Value::DateTime(t) | Value::TimeSpan(t) => Some(*t as f64),
        Value::String(s) => parse_real(s),
        Value::Dynamic(j) => match j {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => parse_real(s),
            serde_json::Value::Bool(b) => Some(*b as i64 as f64),
            _ => None,
        },
        _ => None,
    }
}

fn to_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Int(i) => Some(*i != 0),
        Value::Long(i) => Some(*i != 0),
        Value::Real(r) => Some(*r != 0.0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        Value::Dynamic(serde_json::Value::Bool(b)) => Some(*b),
        Value::Dynamic(serde_json::Value::String(s)) => to_bool(&Value::String(s.clone())),
        Value::Dynamic(serde_json::Value::Number(n)) => n.as_f64().map(|f| f != 0.0),
        _ => None,
    }
}

/// Converts a value to `ty` as the `to*()` functions do: null when it does not convert.
pub fn convert(v: &Value, ty: KqlType) -> Value {
    match ty {
        KqlType::String => Value::String(as_string(v)),
        KqlType::Long => to_long(v).map_or(Value::Null, Value::Long),
        KqlType::Int => match v {
            // toint of hex text reads 32 bits (toint("0x7FFFFFFF") = 2147483647).
            Value::String(s) => {
                let hex = s.trim().starts_with("0x") || s.trim().starts_with("0X");
                parse_long(s)
                    .and_then(|x| {
                        i32::try_from(x).ok().or_else(|| {
                            if hex {
                                u32::try_from(x).ok().map(|u| u as i32)
                            } else {
                                None
                            }
                        })
                    })
                    .map_or(Value::Null, Value::Int)
            }
            _ => to_long(v)
                .and_then(|x| i32::try_from(x).ok())
                .map_or(Value::Null, Value::Int),
        },
        KqlType::Real => to_real(v).map_or(Value::Null, Value::Real),
        KqlType::Bool => to_bool(v).map_or(Value::Null, Value::Bool),
        KqlType::DateTime => match v {
            Value::DateTime(_) => v.clone(),
            Value::String(s) => time::parse_datetime(s).map_or(Value::Null, Value::DateTime),
            Value::Dynamic(serde_json::Value::String(s)) => {
                time::parse_datetime(s).map_or(Value::Null, Value::DateTime)
            }
            _ => Value::Null,
        },
        KqlType::TimeSpan => match v {
            Value::TimeSpan(_) => v.clone(),
            Value::Int(i) => Value::TimeSpan(*i as i64),
            Value::Long(i) => Value::TimeSpan(*i),
            Value::Real(r) if r.is_finite() => Value::TimeSpan(*r as i64),
            Value::String(s) | Value::Dynamic(serde_json::Value::String(s)) => {
                time::parse_timespan_clock(s.trim())
                    .or_else(|| time::parse_timespan_literal(s))
                    .map_or(Value::Null, Value::TimeSpan)
            }
            _ => Value::Null,
        },
        KqlType::Guid => match v {
            Value::Guid(_) => v.clone(),
            Value::String(s) => crate::types::parse_guid(s).map_or(Value::Null, Value::Guid),
            _ => Value::Null,
        },
        KqlType::Dynamic => match v {
            Value::String(s) => match serde_json::from_str::<serde_json::Value>(s) {
                Ok(j) if !j.is_null() => Value::Dynamic(j),
                Ok(_) => Value::Null,
                Err(_) => Value::Dynamic(serde_json::Value::String(s.clone())),
            },
            Value::Null => Value::Null,
            other => Value::Dynamic(crate::exec::value_to_json(other)),
        },
        KqlType::Decimal => Value::Null,
    }
}

/// Compiled regular expressions for calls whose pattern is constant.
pub struct RegexCache {
    last: Option<(String, regex::Regex)>,
}

impl RegexCache {
    pub fn new() -> RegexCache {
        RegexCache { last: None }
    }
    pub fn get(&mut self, pattern: &str) -> Result<&regex::Regex> {
        if self.last.as_ref().is_none_or(|(p, _)| p != pattern) {
            let re = regex::RegexBuilder::new(pattern)
                .size_limit(1 << 24)
                .build()
                .map_err(|e| {
                    Error::new(
                        crate::error::ErrorKind::Semantic,
                        format!("invalid regular expression {pattern:?}: {e}"),
                    )
                })?;
            self.last = Some((pattern.to_string(), re));
        }
        Ok(&self.last.as_ref().expect("just set").1)
    }
}

impl Default for RegexCache {
    fn default() -> Self {
        RegexCache::new()
    }
}

/// One row of a scalar function. `ty` is the bound result type.
pub fn call(f: Func, args: &[Value], ty: KqlType, re: &mut RegexCache) -> Result<Value> {
    use Value::*;
    let s = |i: usize| -> std::string::String { as_string(&args[i]) };
    Ok(match f {
        Func::Now | Func::Ago => {
            return Err(Error::internal("now()/ago() must be folded at bind time"))
        }
        Func::Bin => match (&args[0], &args[1]) {
            (Null, _) | (_, Null) => Null,
            (DateTime(t), TimeSpan(sz)) => time::bin_i64(*t, *sz).map_or(Null, DateTime),
            (TimeSpan(t), TimeSpan(sz)) => time::bin_i64(*t, *sz).map_or(Null, TimeSpan),
            (a, b) if ty == KqlType::Real => {
                let (x, sz) = (
                    a.as_f64().unwrap_or(f64::NAN),
                    b.as_f64().unwrap_or(f64::NAN),
                );
                if sz > 0.0 {
                    Real((x / sz).floor() * sz)
                } else {
                    Null
                }
            }
            (a, b) => match (a.as_i64(), b.as_i64()) {
                (Some(x), Some(sz)) => match time::bin_i64(x, sz) {
                    Some(v) if ty == KqlType::Int => Int(v as i32),
                    Some(v) => Long(v),
                    None => Null,
                },
                _ => Null,
            },
        },
        Func::ToString => String(as_string(&args[0])),
        Func::ToInt
        | Func::ToLong
        | Func::ToReal
        | Func::ToBool
        | Func::ToDateTime
        | Func::ToTimeSpan
        | Func::ToGuid
        | Func::ToDynamic => convert(&args[0], ty),
        Func::ToLower => String(s(0).to_lowercase()),
        Func::ToUpper => String(s(0).to_uppercase()),
        Func::Strlen => Long(s(0).chars().count() as i64),
        Func::Strcat => String(args.iter().map(as_string).collect()),
        Func::StrcatDelim => {
            let d = s(0);
            String(args[1..].iter().map(as_string).collect::<Vec<_>>().join(&d))
        }
        Func::Substring => {
            let text = s(0);
            let n = text.chars().count() as i64;
            let Some(start) = args[1].as_i64() else {
                return Ok(String(std::string::String::new()));
            };
            // A negative start counts from the end (EMU-K2S: substring("hello", -2, 2) = "lo").
            let start = if start < 0 {
                (n + start).max(0)
            } else {
                start.min(n)
            };
            let len = match args.get(2) {
                Some(v) => match v.as_i64() {
                    Some(l) if l >= 0 => l,
                    Some(_) => 0,
                    None => n,
                },
                None => n,
            };
            String(
                text.chars()
                    .skip(start as usize)
                    .take(len as usize)
                    .collect(),
            )
        }
        Func::Split => {
            let (text, delim) = (s(0), s(1));
            let parts: Vec<serde_json::Value> = if delim.is_empty() {
                vec![serde_json::Value::String(text)]
            } else {
                text.split(delim.as_str())
                    .map(|p| serde_json::Value::String(p.to_string()))
                    .collect()
            };
            // With an index, only that part, still as an array (DOCS split-function.md).
            match args.get(2) {
                Some(i) => match i.as_i64() {
                    Some(k) if k >= 0 && (k as usize) < parts.len() => {
                        Dynamic(serde_json::Value::Array(vec![parts[k as usize].clone()]))
                    }
                    _ => Null,
                },
                None => Dynamic(serde_json::Value::Array(parts)),
            }
        }
        Func::Trim | Func::TrimStart | Func::TrimEnd => {
            // One match of the pattern is removed at each trimmed end (EMU-K2S:
            // trim(@"\s", "  spaced  ") = " spaced ").
            let (pat, text) = (s(0), s(1));
            let mut t: &str = &text;
            if f != Func::TrimEnd {
                if let Some(m) = re.get(&format!("^(?:{pat})"))?.find(t) {
                    t = &t[m.end()..];
                }
            }
            if f != Func::TrimStart {
                if let Some(m) = re.get(&format!("(?:{pat})$"))?.find(t) {
                    t = &t[..m.start()];
                }
            }
            String(t.to_string())
        }
        Func::IsEmpty => Bool(match &args[0] {
            Null => true,
            String(x) => x.is_empty(),
            Dynamic(serde_json::Value::String(x)) => x.is_empty(),
            _ => false,
        }),
        Func::IsNotEmpty => Bool(!matches!(call(Func::IsEmpty, args, ty, re)?, Bool(true))),
        Func::IsNull => Bool(args[0].is_null()),
        Func::IsNotNull => Bool(!args[0].is_null()),
        Func::Iff => match &args[0] {
            Bool(true) => crate::column::coerce_value(&args[1], ty),
            _ => crate::column::coerce_value(&args[2], ty),
        },
        Func::Case => {
            let n = args.len();
            let mut i = 0;
            while i + 1 < n {
                if args[i] == Bool(true) {
                    return Ok(crate::column::coerce_value(&args[i + 1], ty));
                }
                i += 2;
            }
            crate::column::coerce_value(&args[n - 1], ty)
        }
        Func::Coalesce => {
            for a in args {
                let empty = matches!(a, Null) || matches!(a, String(x) if x.is_empty());
                if !empty {
                    return Ok(crate::column::coerce_value(a, ty));
                }
            }
            if ty == KqlType::String {
                String(std::string::String::new())
            } else {
                Null
            }
        }
        Func::Extract => {
            let (pat, text) = (s(0), s(2));
            let Some(group) = args[1].as_i64() else {
                return Ok(String(std::string::String::new()));
            };
            let r = re.get(&pat)?;
            match r.captures(&text) {
                Some(c) => String(
                    c.get(group.max(0) as usize)
                        .map_or("", |m| m.as_str())
                        .to_string(),
                ),
                None => String(std::string::String::new()),
            }
        }
        Func::ReplaceString => {
            let (text, lookup, rep) = (s(0), s(1), s(2));
            if lookup.is_empty() {
                String(text)
            } else {
                String(text.replace(&lookup, &rep))
            }
        }
        Func::ArrayLength => match &args[0] {
            Dynamic(serde_json::Value::Array(a)) => Long(a.len() as i64),
            _ => Null,
        },
        Func::Not => match &args[0] {
            Bool(b) => Bool(!b),
            _ => Null,
        },
        Func::IsNan => match args[0].as_f64() {
            Some(x) => Bool(x.is_nan()),
            None => Null,
        },
        Func::Abs => match &args[0] {
            Int(x) => Int(x.wrapping_abs()),
            Long(x) => Long(x.wrapping_abs()),
            Real(x) => Real(x.abs()),
            TimeSpan(x) => TimeSpan(x.wrapping_abs()),
            _ => Null,
        },
        Func::Round => {
            let Some(x) = args[0].as_f64() else {
                return Ok(Null);
            };
            let digits = args.get(1).and_then(|d| d.as_i64()).unwrap_or(0);
            let p = 10f64.powi(digits as i32);
            let y = x * p;
            // Round half away from zero.
            Real(y.round() / p)
        }
        Func::StartOfDay => match &args[0] {
            DateTime(t) => {
                DateTime(t.div_euclid(crate::types::ticks::PER_DAY) * crate::types::ticks::PER_DAY)
            }
            _ => Null,
        },
        Func::IndexOf => {
            let (text, needle) = (s(0), s(1));
            match text.find(&needle) {
                Some(b) => Long(text[..b].chars().count() as i64),
                None => Long(-1),
            }
        }
        Func::Index => {
            let found = match (&args[0], &args[1]) {
                (Dynamic(serde_json::Value::Array(a)), i) => i.as_i64().and_then(|i| {
                    // A negative index counts from the end (DOCS scalar-data-types/dynamic.md).
                    let k = if i < 0 { a.len() as i64 + i } else { i };
                    usize::try_from(k).ok().and_then(|k| a.get(k)).cloned()
                }),
                (Dynamic(serde_json::Value::Object(m)), String(k)) => m.get(k).cloned(),
                _ => None,
            };
            match found {
                None | Some(serde_json::Value::Null) => Null,
                Some(j) => Dynamic(j),
            }
        }
        Func::PackArray => Dynamic(serde_json::Value::Array(
            args.iter().map(crate::exec::value_to_json).collect(),
        )),
    })
}
