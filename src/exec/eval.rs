//! Expression evaluation over a chunk, a whole column at a time. Predicates with a
//! constant right-hand side (the shape of hunting filters) run as typed kernels over the
//! column; everything else falls back to a row loop over [`Value`]s.

use std::cmp::Ordering;

use arrow::array::{Array, BooleanArray};

use super::{json_to_value, value_to_json};
use crate::column::{Chunk, Column};
use crate::error::{Error, Result};
use crate::functions::{self, RegexCache};
use crate::kernels::strmatch::Matcher;
use crate::plan::{BExpr, BKind};
use crate::syntax::ast::{BinOp, ListOp, StrOp};
use crate::types::{KqlType, Value};

pub fn eval(e: &BExpr, chunk: &Chunk) -> Result<Column> {
    if let BKind::Call(f, args) = &e.kind {
        if let ([arg], Some(test)) = (&args[..], NullTest::of(*f)) {
            return Ok(Column::Bool(null_test(test, &eval(arg, chunk)?)));
        }
        if let (functions::Func::Bin, [x, size]) = (f, &args[..]) {
            if let BKind::Literal(size) = &size.kind {
                if let Some(c) = bin_column(&eval(x, chunk)?, size, e.ty) {
                    return Ok(c);
                }
            }
        }
    }
    if let Some(c) = eval_per_value(e, chunk)? {
        return Ok(c);
    }
    let n = chunk.len;
    match &e.kind {
        BKind::Column(i) => Ok(chunk.columns[*i].clone()),
        BKind::Literal(v) => Column::from_scalar(v, e.ty, n),
        BKind::Binary(op @ (BinOp::And | BinOp::Or), l, r) => {
            let (l, r) = (eval_bool(l, chunk)?, eval_bool(r, chunk)?);
            let out: BooleanArray = l
                .iter()
                .zip(r.iter())
                .map(|(a, b)| match op {
                    BinOp::And => match (a, b) {
                        (Some(false), _) | (_, Some(false)) => Some(false),
                        (Some(true), Some(true)) => Some(true),
                        _ => None,
                    },
                    _ => match (a, b) {
                        (Some(true), _) | (_, Some(true)) => Some(true),
                        (Some(false), Some(false)) => Some(false),
                        _ => None,
                    },
                })
                .collect();
            Ok(Column::Bool(out))
        }
        BKind::Str {
            op,
            negated,
            cs,
            left,
            right,
        } => {
            let lc = eval(left, chunk)?;
            if let Some((_, m)) = super::scan::matcher_for(e) {
                return Ok(Column::Bool(matcher_mask(&m, &lc)?));
            }
            let rc = eval(right, chunk)?;
            let mut re = RegexCache::new();
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                let (a, b) = (str_of(&lc, i), str_of(&rc, i));
                out.push(Some(str_match(&a, *op, *cs, &b, &mut re)? != *negated));
            }
            Ok(Column::Bool(BooleanArray::from(out)))
        }
        BKind::List {
            op,
            negated,
            left,
            items,
            ..
        } => {
            let lc = eval(left, chunk)?;
            // String lists run through the compiled matcher; `in` over other types compares
            // values (guids, numbers, dynamic).
            if let Some((_, m)) = super::scan::matcher_for(e) {
                if matches!(lc, Column::String(_)) || *op != ListOp::In {
                    return Ok(Column::Bool(matcher_mask(&m, &lc)?));
                }
            }
            Ok(Column::Bool(list_values(&lc, *op, *negated, items)))
        }
        BKind::Between {
            negated,
            expr,
            low,
            high,
        } => {
            let (x, lo, hi) = (eval(expr, chunk)?, eval(low, chunk)?, eval(high, chunk)?);
            let out: BooleanArray = (0..n)
                .map(|i| {
                    let v = x.get(i);
                    let a = compare(&v, &lo.get(i))?;
                    let b = compare(&v, &hi.get(i))?;
                    let inside = a != Ordering::Less && b != Ordering::Greater;
                    Some(inside != *negated)
                })
                .collect();
            Ok(Column::Bool(out))
        }
        BKind::Binary(op, l, r) => {
            let (lc, rc) = (eval(l, chunk)?, eval(r, chunk)?);
            if let Some(c) = fast_compare(*op, &lc, &rc) {
                return Ok(c);
            }
            let vals = (0..n)
                .map(|i| binary_value(*op, &lc.get(i), &rc.get(i)))
                .collect::<Vec<_>>();
            Column::from_values(e.ty, &vals)
        }
        BKind::Neg(inner) => {
            let c = eval(inner, chunk)?;
            let vals: Vec<Value> = (0..n)
                .map(|i| match c.get(i) {
                    Value::Int(x) => Value::Int(x.wrapping_neg()),
                    Value::Long(x) => Value::Long(x.wrapping_neg()),
                    Value::Real(x) => Value::Real(-x),
                    Value::TimeSpan(x) => Value::TimeSpan(x.wrapping_neg()),
                    Value::Dynamic(j) => match json_to_value(&j) {
                        Value::Long(x) => Value::Long(x.wrapping_neg()),
                        Value::Real(x) => Value::Real(-x),
                        _ => Value::Null,
                    },
                    _ => Value::Null,
                })
                .collect();
            Column::from_values(e.ty, &vals)
        }
        BKind::Call(f, args) => {
            let cols = args
                .iter()
                .map(|a| eval(a, chunk))
                .collect::<Result<Vec<_>>>()?;
            let mut re = RegexCache::new();
            let mut vals = Vec::with_capacity(n);
            let mut row = Vec::with_capacity(cols.len());
            for i in 0..n {
                row.clear();
                row.extend(cols.iter().map(|c| c.get(i)));
                vals.push(functions::call(*f, &row, e.ty, &mut re).map_err(|err| err.at(e.span))?);
            }
            Column::from_values(e.ty, &vals)
        }
    }
}

/// An expression that reads one string column and calls a function (`tolower(Company)
/// == "google llc"`, `strlen(FileName) > 20`) or matches without a compiled matcher (a
/// regex) runs once per distinct value of that column (`kernels::distinct::row_ids`)
/// and its results are spread back over the rows: hunting columns hold a few hundred
/// values in millions of rows, and the row loop builds a `Value` per row and call
/// (10M rows: `tolower(Company) == "google llc"` 1.8 s row by row). None when the
/// expression does not qualify or the values are mostly distinct.
fn eval_per_value(e: &BExpr, chunk: &Chunk) -> Result<Option<Column>> {
    const MIN_ROWS: usize = 1024;
    let worth = match &e.kind {
        BKind::Str { .. } => super::scan::matcher_for(e).is_none() || calls(e),
        BKind::Call(..) | BKind::Binary(..) | BKind::Neg(_) | BKind::Between { .. } => calls(e),
        _ => false,
    };
    if chunk.len < MIN_ROWS || !worth {
        return Ok(None);
    }
    let mut cols = Vec::new();
    e.columns(&mut cols);
    cols.sort_unstable();
    cols.dedup();
    let [i] = cols[..] else {
        return Ok(None);
    };
    let Column::String(a) = &chunk.columns[i] else {
        return Ok(None);
    };
    let Some((codes, first)) = crate::kernels::distinct::row_ids_upto(a, chunk.len / 4) else {
        return Ok(None);
    };
    let first: Vec<u32> = first.into_iter().map(|r| r as u32).collect();
    let columns = chunk
        .columns
        .iter()
        .enumerate()
        .map(|(j, c)| {
            if j == i {
                c.take(&first)
            } else {
                Ok(Column::Pruned(c.kql_type(), first.len()))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let per_value = eval(e, &Chunk::new(columns, first.len()))?;
    per_value.take(&codes).map(Some)
}

/// `bin(x, size)` over a whole column with a constant size, for the shapes of `summarize
/// ... by bin(Timestamp, 1h)`: datetimes or timespans by a timespan, longs by a long, each
/// value through the row rule's own `kernels::time::bin_i64` (10M timestamps: the row
/// loop built a `Value` per row). None for other shapes (the row loop takes them).
fn bin_column(x: &Column, size: &Value, ty: KqlType) -> Option<Column> {
    use crate::kernels::time::bin_i64;
    let bin = |a: &arrow::array::Int64Array, size: i64| -> arrow::array::Int64Array {
        a.iter().map(|v| v.and_then(|v| bin_i64(v, size))).collect()
    };
    Some(match (x, size, ty) {
        (Column::DateTime(a), Value::TimeSpan(sz), KqlType::DateTime) => {
            Column::DateTime(bin(a, *sz))
        }
        (Column::TimeSpan(a), Value::TimeSpan(sz), KqlType::TimeSpan) => {
            Column::TimeSpan(bin(a, *sz))
        }
        (Column::Long(a), Value::Long(sz), KqlType::Long) => Column::Long(bin(a, *sz)),
        _ => return None,
    })
}

/// `isnull`, `isnotnull`, `isempty`, `isnotempty`: the hunting filters' tests for a
/// missing value (`isnotempty` alone is in a quarter of Defender's hunting queries).
#[derive(Clone, Copy, Debug, PartialEq)]
enum NullTest {
    Null,
    NotNull,
    Empty,
    NotEmpty,
}

impl NullTest {
    fn of(f: functions::Func) -> Option<NullTest> {
        use functions::Func;
        Some(match f {
            Func::IsNull => NullTest::Null,
            Func::IsNotNull => NullTest::NotNull,
            Func::IsEmpty => NullTest::Empty,
            Func::IsNotEmpty => NullTest::NotEmpty,
            _ => return None,
        })
    }
}

/// A null test over a whole column, from its validity bits and (strings) its offsets,
/// where the row loop built a `Value` per row (10M timestamps, `where isnotnull(Timestamp)
/// | count`: 258 -> 32 ms).
/// Kusto's rule (SEMANTICS.md, "string has no null"; DOCS `isnull`, `isempty`): a
/// string is never null and is empty when it is `""` (a null string slot reads as
/// `""`); any other value is empty exactly when it is null; a dynamic string `""` is
/// empty. Agrees row for row with `functions::call` (the test below holds them equal).
fn null_test(test: NullTest, c: &Column) -> BooleanArray {
    use arrow::buffer::BooleanBuffer;
    let n = c.len();
    // An Arrow array's null rows: its validity bits inverted.
    let nulls_of = |a: &dyn Array| match a.logical_nulls() {
        Some(v) => !v.inner(),
        None => BooleanBuffer::new_unset(n),
    };
    let null: BooleanBuffer = match c {
        Column::String(_) => BooleanBuffer::new_unset(n),
        Column::Bool(a) => nulls_of(a),
        Column::Int(a) => nulls_of(a),
        Column::Real(a) => nulls_of(a),
        Column::Long(a) | Column::DateTime(a) | Column::TimeSpan(a) => nulls_of(a),
        _ => BooleanBuffer::collect_bool(n, |i| c.is_null(i)),
    };
    let out = match test {
        NullTest::Null => null,
        NullTest::NotNull => !&null,
        NullTest::Empty | NullTest::NotEmpty => {
            let empty = match c {
                Column::String(a) => {
                    let offsets = a.value_offsets();
                    let blank = BooleanBuffer::collect_bool(n, |i| offsets[i + 1] == offsets[i]);
                    &blank | &nulls_of(a)
                }
                Column::Dynamic(v) => BooleanBuffer::collect_bool(n, |i| match &v[i] {
                    serde_json::Value::Null => true,
                    serde_json::Value::String(s) => s.is_empty(),
                    _ => false,
                }),
                _ => null,
            };
            if test == NullTest::Empty {
                empty
            } else {
                !&empty
            }
        }
    };
    BooleanArray::new(out, None)
}

/// Whether the expression calls a function anywhere.
fn calls(e: &BExpr) -> bool {
    matches!(e.kind, BKind::Call(..)) || e.children().into_iter().any(calls)
}

/// A predicate as a boolean array (null where Kusto's result is null).
pub fn eval_bool(e: &BExpr, chunk: &Chunk) -> Result<BooleanArray> {
    match eval(e, chunk)? {
        Column::Bool(b) => Ok(b),
        Column::Dynamic(v) => Ok(v.iter().map(|j| j.as_bool()).collect()),
        other => Err(Error::internal(format!(
            "predicate evaluated to {}",
            other.kql_type()
        ))),
    }
}

/// The rows where the predicate is true (null counts as false, as `where` drops it).
pub fn eval_mask(e: &BExpr, chunk: &Chunk) -> Result<BooleanArray> {
    let b = eval_bool(e, chunk)?;
    if b.null_count() == 0 {
        return Ok(b);
    }
    Ok(b.iter().map(|v| Some(v.unwrap_or(false))).collect())
}

fn str_of(c: &Column, i: usize) -> String {
    functions::to_display_string(&c.get(i))
}

/// One string operator on one pair of strings: the single place that maps operators to
/// the rules in `kernels::terms`.
pub fn str_match(
    hay: &str,
    op: StrOp,
    cs: bool,
    needle: &str,
    re: &mut RegexCache,
) -> Result<bool> {
    let kind = super::scan::str_kind(op, needle.to_string(), re)?;
    Ok(Matcher::new(kind, cs, false).matches(hay))
}

/// A string predicate with constant needles (`kernels::strmatch`) over a column: string
/// columns in place; other types on their text, a null being false (true when negated),
/// as Kusto's string operators are total (EMU-DKQ null tests).
fn matcher_mask(m: &Matcher, c: &Column) -> Result<BooleanArray> {
    match c {
        Column::String(a) => m.eval_array(a),
        other => Ok((0..other.len())
            .map(|i| {
                Some(if other.is_null(i) {
                    m.negated
                } else {
                    m.matches(&str_of(other, i))
                })
            })
            .collect()),
    }
}

/// `in`/`!in` over non-string values, and the empty `has_any ()` / `has_all ()`.
fn list_values(c: &Column, op: ListOp, negated: bool, items: &[Value]) -> BooleanArray {
    (0..c.len())
        .map(|i| {
            let hit = match op {
                ListOp::HasAny => false,
                ListOp::HasAll => true,
                ListOp::In => {
                    let v = c.get(i);
                    if v.is_null() {
                        // `x in (...)` with a null x is false; `!in` is true (AND of !=).
                        return Some(negated);
                    }
                    items.iter().any(|it| values_equal(&v, it) == Some(true))
                }
            };
            Some(hit != negated)
        })
        .collect()
}

/// Vectorised comparisons of two long-like columns (long, datetime, timespan).
fn fast_compare(op: BinOp, l: &Column, r: &Column) -> Option<Column> {
    let (a, b) = match (l, r) {
        (Column::Long(a), Column::Long(b))
        | (Column::DateTime(a), Column::DateTime(b))
        | (Column::TimeSpan(a), Column::TimeSpan(b)) => (a, b),
        _ => return None,
    };
    let f: fn(i64, i64) -> bool = match op {
        BinOp::Lt => |x, y| x < y,
        BinOp::Le => |x, y| x <= y,
        BinOp::Gt => |x, y| x > y,
        BinOp::Ge => |x, y| x >= y,
        BinOp::Eq => |x, y| x == y,
        BinOp::Ne => |x, y| x != y,
        _ => return None,
    };
    let eq_like = matches!(op, BinOp::Eq | BinOp::Ne);
    let out: BooleanArray = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => Some(f(x, y)),
            (None, None) => None,
            _ if eq_like => Some(op == BinOp::Ne),
            _ => None,
        })
        .collect();
    Some(Column::Bool(out))
}

/// Numeric view of a value for mixed-type comparison and arithmetic.
fn unwrap_dynamic(v: &Value) -> Value {
    match v {
        Value::Dynamic(j) => json_to_value(j),
        other => other.clone(),
    }
}

/// Kusto's ordering of two non-null values of comparable types; None when either is
/// null or the types do not compare.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    let (a, b) = (unwrap_dynamic(a), unwrap_dynamic(b));
    match (&a, &b) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Int(_) | Value::Long(_), Value::Int(_) | Value::Long(_)) => {
            a.as_i64()?.partial_cmp(&b.as_i64()?)
        }
        (
            Value::Int(_) | Value::Long(_) | Value::Real(_),
            Value::Int(_) | Value::Long(_) | Value::Real(_),
        ) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::DateTime(x), Value::DateTime(y)) | (Value::TimeSpan(x), Value::TimeSpan(y)) => {
            Some(x.cmp(y))
        }
        (Value::Guid(x), Value::Guid(y)) => Some(x.cmp(y)),
        (Value::Guid(x), Value::String(y)) => {
            Some(crate::types::format_guid(*x).cmp(&y.to_lowercase()))
        }
        (Value::String(x), Value::Guid(y)) => {
            Some(x.to_lowercase().cmp(&crate::types::format_guid(*y)))
        }
        (Value::Dynamic(x), Value::Dynamic(y)) => (x == y).then_some(Ordering::Equal),
        _ => None,
    }
}

/// `==` semantics: one null operand -> false, both null -> null (DOCS null-values.md).
pub fn values_equal(a: &Value, b: &Value) -> Option<bool> {
    match (a.is_null(), b.is_null()) {
        (true, true) => None,
        (true, false) | (false, true) => Some(false),
        _ => match compare(a, b) {
            Some(o) => Some(o == Ordering::Equal),
            None => Some(match (a, b) {
                (Value::Real(x), Value::Real(y)) => x == y,
                _ => false,
            }),
        },
    }
}

/// One row of a binary operator (not `and`/`or`).
pub fn binary_value(op: BinOp, a: &Value, b: &Value) -> Value {
    use Value::*;
    match op {
        BinOp::Eq => values_equal(a, b).map_or(Null, Bool),
        BinOp::Ne => values_equal(a, b).map_or(Null, |x| Bool(!x)),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => match compare(a, b) {
            None => Null,
            Some(o) => Bool(match op {
                BinOp::Lt => o == Ordering::Less,
                BinOp::Le => o != Ordering::Greater,
                BinOp::Gt => o == Ordering::Greater,
                _ => o != Ordering::Less,
            }),
        },
        _ => arith(op, &unwrap_dynamic(a), &unwrap_dynamic(b)),
    }
}

fn arith(op: BinOp, a: &Value, b: &Value) -> Value {
    use Value::*;
    match (a, b) {
        (Null, _) | (_, Null) => Null,
        (DateTime(x), TimeSpan(y)) if op == BinOp::Add => checked_dt(x.checked_add(*y)),
        (TimeSpan(x), DateTime(y)) if op == BinOp::Add => checked_dt(y.checked_add(*x)),
        (DateTime(x), TimeSpan(y)) if op == BinOp::Sub => checked_dt(x.checked_sub(*y)),
        (DateTime(x), DateTime(y)) if op == BinOp::Sub => x.checked_sub(*y).map_or(Null, TimeSpan),
        (TimeSpan(x), TimeSpan(y)) => match op {
            BinOp::Add => x.checked_add(*y).map_or(Null, TimeSpan),
            BinOp::Sub => x.checked_sub(*y).map_or(Null, TimeSpan),
            BinOp::Div => Real(*x as f64 / *y as f64),
            BinOp::Mod => {
                if *y == 0 {
                    Null
                } else {
                    TimeSpan(x.wrapping_rem_euclid(*y))
                }
            }
            _ => Null,
        },
        (TimeSpan(x), n) | (n, TimeSpan(x)) if op == BinOp::Mul => match n.as_f64() {
            Some(f) => TimeSpan((*x as f64 * f).round() as i64),
            None => Null,
        },
        (TimeSpan(x), n) if op == BinOp::Div => match n.as_f64() {
            Some(f) if f != 0.0 => TimeSpan((*x as f64 / f).round() as i64),
            _ => Null,
        },
        (Int(_) | Long(_), Int(_) | Long(_)) => {
            let (x, y) = (a.as_i64().unwrap_or(0), b.as_i64().unwrap_or(0));
            let r = match op {
                BinOp::Add => Some(x.wrapping_add(y)),
                BinOp::Sub => Some(x.wrapping_sub(y)),
                BinOp::Mul => Some(x.wrapping_mul(y)),
                BinOp::Div => {
                    if y == 0 {
                        None
                    } else {
                        Some(x.wrapping_div(y))
                    }
                }
                // `%` is never negative (DOCS numerical-operators.md; EMU-K2S -5 % 3 = 1);
                // long.MinValue % -1 is 0 (its `/` wraps, as 64-bit division does).
                BinOp::Mod => {
                    if y == 0 {
                        None
                    } else {
                        Some(x.wrapping_rem_euclid(y))
                    }
                }
                _ => None,
            };
            r.map_or(Null, Long)
        }
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => Real(match op {
                BinOp::Add => x + y,
                BinOp::Sub => x - y,
                BinOp::Mul => x * y,
                BinOp::Div => x / y,
                BinOp::Mod => x.rem_euclid(y),
                _ => return Null,
            }),
            _ => Null,
        },
    }
}

fn checked_dt(v: Option<i64>) -> Value {
    match v {
        Some(t) if (0..=crate::types::ticks::MAX_DATETIME).contains(&t) => Value::DateTime(t),
        _ => Value::Null,
    }
}

/// For `explain()`: what a predicate does and which kernel runs it.
pub fn describe(e: &BExpr, schema: &crate::plan::Schema) -> String {
    let col = |x: &BExpr| match &x.kind {
        BKind::Column(i) => schema.get(*i).map_or("?".to_string(), |(n, _)| n.clone()),
        BKind::Literal(v) => format!("{}", value_to_json(v)),
        _ => "(expr)".to_string(),
    };
    match &e.kind {
        BKind::Binary(op @ (BinOp::And | BinOp::Or), l, r) => {
            format!(
                "({} {} {})",
                describe(l, schema),
                if *op == BinOp::And { "and" } else { "or" },
                describe(r, schema)
            )
        }
        BKind::Str {
            op,
            negated,
            cs,
            left,
            right,
        } if right.as_literal().is_some() => format!(
            "{} {}{:?}{} {} [kernel: {}]",
            col(left),
            if *negated { "!" } else { "" },
            op,
            if *cs { "_cs" } else { "" },
            col(right),
            if matches!(left.ty, KqlType::String) {
                "string column scan, needle case-mapped once"
            } else {
                "row loop"
            }
        ),
        BKind::List {
            op, left, items, ..
        } => format!(
            "{} {:?} ({} items) [kernel: {}]",
            col(left),
            op,
            items.len(),
            match op {
                ListOp::In => "hash set",
                _ => "term match per needle",
            }
        ),
        BKind::Between {
            expr,
            low,
            high,
            negated,
        } => format!(
            "{} {}between ({} .. {}) [kernel: range compare]",
            col(expr),
            if *negated { "!" } else { "" },
            col(low),
            col(high)
        ),
        BKind::Binary(op, l, r) => format!("{} {:?} {} [kernel: compare]", col(l), op, col(r)),
        _ => "(expression) [kernel: row loop]".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
    use serde_json::json;

    /// Integer `%` and `/` (SEMANTICS.md: `%` never negative, `-14 % 12` = 10, EMU-K2S
    /// `-5 % 3` = 1, `5 % -3` = 2; `/` truncates, `-7 / 2` = -3; by zero, null), and the
    /// one pair that overflows, long.MinValue and -1, which panicked in `%`.
    #[test]
    fn integer_division_and_remainder() {
        use Value::{Long, Null, TimeSpan};
        let cases = [
            (BinOp::Mod, Long(-14), Long(12), Long(10)),
            (BinOp::Mod, Long(-5), Long(3), Long(1)),
            (BinOp::Mod, Long(5), Long(-3), Long(2)),
            (BinOp::Mod, Long(5), Long(0), Null),
            (BinOp::Mod, Long(i64::MIN), Long(-1), Long(0)),
            (BinOp::Mod, TimeSpan(i64::MIN), TimeSpan(-1), TimeSpan(0)),
            (BinOp::Div, Long(-7), Long(2), Long(-3)),
            (BinOp::Div, Long(7), Long(0), Null),
            (BinOp::Div, Long(i64::MIN), Long(-1), Long(i64::MIN)),
        ];
        for (op, a, b, want) in cases {
            assert_eq!(binary_value(op, &a, &b), want, "{a:?} {op:?} {b:?}");
        }
    }

    /// The `bin` column kernel against the row rule (`functions::call`), with nulls,
    /// negative values (floor, not truncation: DOCS bin-function.md), and a size of zero
    /// (null); shapes it does not take are left to the row loop.
    #[test]
    fn bin_column_agrees_with_the_row_rule() {
        let day = crate::types::ticks::PER_DAY;
        let cases = [
            (
                Column::DateTime(Int64Array::from(vec![
                    Some(day * 3 + 5),
                    None,
                    Some(0),
                    Some(day - 1),
                ])),
                Value::TimeSpan(day),
                KqlType::DateTime,
            ),
            (
                Column::TimeSpan(Int64Array::from(vec![Some(-1), Some(7), None])),
                Value::TimeSpan(5),
                KqlType::TimeSpan,
            ),
            (
                Column::Long(Int64Array::from(vec![
                    Some(-7),
                    Some(7),
                    None,
                    Some(i64::MIN),
                ])),
                Value::Long(5),
                KqlType::Long,
            ),
            (
                Column::Long(Int64Array::from(vec![Some(3)])),
                Value::Long(0),
                KqlType::Long,
            ),
        ];
        let mut re = RegexCache::new();
        for (c, size, ty) in &cases {
            let got = bin_column(c, size, *ty).expect("a shape the kernel takes");
            for i in 0..c.len() {
                let want = functions::call(
                    functions::Func::Bin,
                    &[c.get(i), size.clone()],
                    *ty,
                    &mut re,
                );
                assert_eq!(
                    got.get(i),
                    want.unwrap(),
                    "bin row {i} of {c:?} by {size:?}"
                );
            }
        }
        let real = Column::Real(arrow::array::Float64Array::from(vec![1.5]));
        assert!(bin_column(&real, &Value::Real(1.0), KqlType::Real).is_none());
    }

    /// The column kernel against the row rule (`functions::call`) it replaces, over every
    /// kind of column with nulls, empty strings and a null string slot that has bytes.
    #[test]
    fn null_tests_agree_with_the_row_rule() {
        // A string array whose null slot (row 2) is not empty in the buffer: it reads as "".
        let offsets = OffsetBuffer::new(ScalarBuffer::from(vec![0i32, 1, 1, 4, 4]));
        let strings = StringArray::new(
            offsets,
            Buffer::from(b"aXYZ".to_vec()),
            Some(vec![true, true, false, true].into()),
        );
        let columns = [
            Column::String(strings),
            Column::String(StringArray::from(vec!["", "x"])),
            Column::Long(Int64Array::from(vec![Some(0), None, Some(-1)])),
            Column::DateTime(Int64Array::from(vec![None, Some(1)])),
            Column::TimeSpan(Int64Array::from(vec![Some(3)])),
            Column::Int(arrow::array::Int32Array::from(vec![None, Some(0)])),
            Column::Real(arrow::array::Float64Array::from(vec![Some(f64::NAN), None])),
            Column::Bool(BooleanArray::from(vec![Some(false), None])),
            Column::Guid(std::sync::Arc::new(vec![None, Some(7)])),
            Column::Dynamic(std::sync::Arc::new(vec![
                json!(null),
                json!(""),
                json!(0),
                json!("a"),
                json!([]),
            ])),
        ];
        let funcs = [
            functions::Func::IsNull,
            functions::Func::IsNotNull,
            functions::Func::IsEmpty,
            functions::Func::IsNotEmpty,
        ];
        let mut re = RegexCache::new();
        for c in &columns {
            for f in funcs {
                let got = null_test(NullTest::of(f).unwrap(), c);
                for i in 0..c.len() {
                    let want = functions::call(f, &[c.get(i)], KqlType::Bool, &mut re).unwrap();
                    assert_eq!(Value::Bool(got.value(i)), want, "{f:?} row {i} of {c:?}");
                    assert!(got.is_valid(i));
                }
            }
        }
        // The cases Kusto's documents name (SEMANTICS.md: `isnull("")` false, `isempty("")`
        // true; a null long is null and empty).
        let s = Column::String(StringArray::from(vec![""]));
        assert!(!null_test(NullTest::Null, &s).value(0));
        assert!(null_test(NullTest::Empty, &s).value(0));
        let l = Column::Long(Int64Array::from(vec![None]));
        assert!(null_test(NullTest::Null, &l).value(0));
        assert!(null_test(NullTest::Empty, &l).value(0));
    }
}
