//! Columns as the executor holds them: Arrow arrays typed by Kusto's types. Strings are
//! Utf8 arrays whose nulls read as `""` (Kusto strings are never null); datetimes and
//! timespans are `Int64Array`s of ticks; dynamic values are JSON.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray, UInt32Array,
};
use arrow::compute;

use crate::error::{Error, Result};
use crate::types::{KqlType, Value};

#[derive(Clone, Debug)]
pub enum Column {
    Bool(BooleanArray),
    Int(Int32Array),
    Long(Int64Array),
    Real(Float64Array),
    String(StringArray),
    DateTime(Int64Array),
    TimeSpan(Int64Array),
    Guid(Arc<Vec<Option<u128>>>),
    Dynamic(Arc<Vec<serde_json::Value>>),
    /// A source column the query never reads: only its type and length are kept, so
    /// scans skip decoding it (the planner proves no operator looks at it).
    Pruned(KqlType, usize),
}

/// A batch of rows: equally long columns, in schema order.
#[derive(Clone, Debug, Default)]
pub struct Chunk {
    pub columns: Vec<Column>,
    pub len: usize,
}

impl Chunk {
    pub fn new(columns: Vec<Column>, len: usize) -> Chunk {
        Chunk { columns, len }
    }
    pub fn filter(&self, mask: &BooleanArray) -> Result<Chunk> {
        let columns = self
            .columns
            .iter()
            .map(|c| c.filter(mask))
            .collect::<Result<Vec<_>>>()?;
        let len = mask.true_count();
        Ok(Chunk { columns, len })
    }
    pub fn take(&self, idx: &[u32]) -> Result<Chunk> {
        let columns = self
            .columns
            .iter()
            .map(|c| c.take(idx))
            .collect::<Result<Vec<_>>>()?;
        Ok(Chunk {
            columns,
            len: idx.len(),
        })
    }
    pub fn slice(&self, offset: usize, len: usize) -> Chunk {
        Chunk {
            columns: self.columns.iter().map(|c| c.slice(offset, len)).collect(),
            len,
        }
    }
}

impl Column {
    pub fn kql_type(&self) -> KqlType {
        match self {
            Column::Bool(_) => KqlType::Bool,
            Column::Int(_) => KqlType::Int,
            Column::Long(_) => KqlType::Long,
            Column::Real(_) => KqlType::Real,
            Column::String(_) => KqlType::String,
            Column::DateTime(_) => KqlType::DateTime,
            Column::TimeSpan(_) => KqlType::TimeSpan,
            Column::Guid(_) => KqlType::Guid,
            Column::Dynamic(_) => KqlType::Dynamic,
            Column::Pruned(t, _) => *t,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Column::Bool(a) => a.len(),
            Column::Int(a) => a.len(),
            Column::Long(a) | Column::DateTime(a) | Column::TimeSpan(a) => a.len(),
            Column::Real(a) => a.len(),
            Column::String(a) => a.len(),
            Column::Guid(v) => v.len(),
            Column::Dynamic(v) => v.len(),
            Column::Pruned(_, n) => *n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at row `i` (strings: null reads as "").
    pub fn get(&self, i: usize) -> Value {
        match self {
            Column::Bool(a) => {
                if a.is_null(i) {
                    Value::Null
                } else {
                    Value::Bool(a.value(i))
                }
            }
            Column::Int(a) => {
                if a.is_null(i) {
                    Value::Null
                } else {
                    Value::Int(a.value(i))
                }
            }
            Column::Long(a) => {
                if a.is_null(i) {
                    Value::Null
                } else {
                    Value::Long(a.value(i))
                }
            }
            Column::Real(a) => {
                if a.is_null(i) {
                    Value::Null
                } else {
                    Value::Real(a.value(i))
                }
            }
            Column::String(a) => Value::String(if a.is_null(i) {
                String::new()
            } else {
                a.value(i).to_string()
            }),
            Column::DateTime(a) => {
                if a.is_null(i) {
                    Value::Null
                } else {
                    Value::DateTime(a.value(i))
                }
            }
            Column::TimeSpan(a) => {
                if a.is_null(i) {
                    Value::Null
                } else {
                    Value::TimeSpan(a.value(i))
                }
            }
            Column::Guid(v) => v[i].map_or(Value::Null, Value::Guid),
            Column::Dynamic(v) => {
                if v[i].is_null() {
                    Value::Null
                } else {
                    Value::Dynamic(v[i].clone())
                }
            }
            Column::Pruned(..) => Value::Null,
        }
    }

    /// The string at row `i` without copying; `""` for null. Only for string columns.
    #[inline]
    pub fn str_at(a: &StringArray, i: usize) -> &str {
        if a.is_null(i) {
            ""
        } else {
            a.value(i)
        }
    }

    pub fn is_null(&self, i: usize) -> bool {
        match self {
            Column::Bool(a) => a.is_null(i),
            Column::Int(a) => a.is_null(i),
            Column::Long(a) | Column::DateTime(a) | Column::TimeSpan(a) => a.is_null(i),
            Column::Real(a) => a.is_null(i),
            Column::String(_) => false,
            Column::Guid(v) => v[i].is_none(),
            Column::Dynamic(v) => v[i].is_null(),
            Column::Pruned(..) => true,
        }
    }

    pub fn null(ty: KqlType, len: usize) -> Column {
        Column::from_scalar(&Value::Null, ty, len).unwrap_or(Column::Dynamic(Arc::new(
            vec![serde_json::Value::Null; len],
        )))
    }

    pub fn from_scalar(v: &Value, ty: KqlType, len: usize) -> Result<Column> {
        Ok(match (ty, v) {
            (KqlType::Bool, Value::Bool(b)) => Column::Bool(BooleanArray::from(vec![*b; len])),
            (KqlType::Bool, Value::Null) => Column::Bool(BooleanArray::new_null(len)),
            (KqlType::Long, _)
            | (KqlType::Int, _)
            | (KqlType::Real, _)
            | (KqlType::DateTime, _)
            | (KqlType::TimeSpan, _) => {
                let v = coerce(v, ty)?;
                match (ty, v) {
                    (KqlType::Int, Value::Int(x)) => Column::Int(Int32Array::from_value(x, len)),
                    (KqlType::Int, _) => Column::Int(Int32Array::new_null(len)),
                    (KqlType::Long, Value::Long(x)) => Column::Long(Int64Array::from_value(x, len)),
                    (KqlType::Long, _) => Column::Long(Int64Array::new_null(len)),
                    (KqlType::Real, Value::Real(x)) => {
                        Column::Real(Float64Array::from_value(x, len))
                    }
                    (KqlType::Real, _) => Column::Real(Float64Array::new_null(len)),
                    (KqlType::DateTime, Value::DateTime(x)) => {
                        Column::DateTime(Int64Array::from_value(x, len))
                    }
                    (KqlType::DateTime, _) => Column::DateTime(Int64Array::new_null(len)),
                    (KqlType::TimeSpan, Value::TimeSpan(x)) => {
                        Column::TimeSpan(Int64Array::from_value(x, len))
                    }
                    _ => Column::TimeSpan(Int64Array::new_null(len)),
                }
            }
            (KqlType::String, Value::String(s)) => Column::String(StringArray::from_iter_values(
                std::iter::repeat_n(s.as_str(), len),
            )),
            (KqlType::String, Value::Null) => {
                Column::String(StringArray::from_iter_values(std::iter::repeat_n("", len)))
            }
            (KqlType::Guid, Value::Guid(g)) => Column::Guid(Arc::new(vec![Some(*g); len])),
            (KqlType::Guid, Value::Null) => Column::Guid(Arc::new(vec![None; len])),
            (KqlType::Dynamic, v) => {
                Column::Dynamic(Arc::new(vec![crate::exec::value_to_json(v); len]))
            }
            (ty, v) => {
                return Column::from_values(ty, std::slice::from_ref(v)).and_then(|c| c.repeat(len))
            }
        })
    }

    fn repeat(&self, len: usize) -> Result<Column> {
        let idx = vec![0u32; len];
        self.take(&idx)
    }

    /// Builds a column of type `ty` from values, converting losslessly where needed
    /// (int -> long -> real); anything else is an internal error (the binder typed it).
    pub fn from_values(ty: KqlType, vals: &[Value]) -> Result<Column> {
        Ok(match ty {
            KqlType::Bool => Column::Bool(
                vals.iter()
                    .map(|v| match v {
                        Value::Bool(b) => Some(*b),
                        _ => None,
                    })
                    .collect(),
            ),
            KqlType::Int => Column::Int(
                vals.iter()
                    .map(|v| match coerce(v, ty) {
                        Ok(Value::Int(x)) => Some(x),
                        _ => None,
                    })
                    .collect(),
            ),
            KqlType::Long => Column::Long(
                vals.iter()
                    .map(|v| match coerce(v, ty) {
                        Ok(Value::Long(x)) => Some(x),
                        _ => None,
                    })
                    .collect(),
            ),
            KqlType::Real => Column::Real(
                vals.iter()
                    .map(|v| match coerce(v, ty) {
                        Ok(Value::Real(x)) => Some(x),
                        _ => None,
                    })
                    .collect(),
            ),
            KqlType::DateTime => Column::DateTime(
                vals.iter()
                    .map(|v| match v {
                        Value::DateTime(x) => Some(*x),
                        _ => None,
                    })
                    .collect(),
            ),
            KqlType::TimeSpan => Column::TimeSpan(
                vals.iter()
                    .map(|v| match v {
                        Value::TimeSpan(x) => Some(*x),
                        _ => None,
                    })
                    .collect(),
            ),
            KqlType::String => Column::String(
                vals.iter()
                    .map(|v| match v {
                        Value::String(s) => Some(s.as_str()),
                        _ => Some(""),
                    })
                    .collect(),
            ),
            KqlType::Guid => Column::Guid(Arc::new(
                vals.iter()
                    .map(|v| match v {
                        Value::Guid(g) => Some(*g),
                        _ => None,
                    })
                    .collect(),
            )),
            KqlType::Dynamic => Column::Dynamic(Arc::new(
                vals.iter().map(crate::exec::value_to_json).collect(),
            )),
            KqlType::Decimal => {
                return Err(Error::new(
                    crate::error::ErrorKind::Unsupported,
                    "the decimal type is not supported yet",
                ))
            }
        })
    }

    pub fn filter(&self, mask: &BooleanArray) -> Result<Column> {
        Ok(match self {
            Column::Bool(a) => Column::Bool(
                compute::filter(a, mask)?
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .cloned()
                    .ok_or_else(|| Error::internal("filter"))?,
            ),
            Column::Int(a) => Column::Int(downcast(compute::filter(a, mask)?)?),
            Column::Long(a) => Column::Long(downcast(compute::filter(a, mask)?)?),
            Column::Real(a) => Column::Real(downcast(compute::filter(a, mask)?)?),
            Column::String(a) => Column::String(downcast(compute::filter(a, mask)?)?),
            Column::DateTime(a) => Column::DateTime(downcast(compute::filter(a, mask)?)?),
            Column::TimeSpan(a) => Column::TimeSpan(downcast(compute::filter(a, mask)?)?),
            Column::Guid(v) => Column::Guid(Arc::new(
                v.iter()
                    .zip(mask.iter())
                    .filter(|(_, m)| m.unwrap_or(false))
                    .map(|(g, _)| *g)
                    .collect(),
            )),
            Column::Dynamic(v) => Column::Dynamic(Arc::new(
                v.iter()
                    .zip(mask.iter())
                    .filter(|(_, m)| m.unwrap_or(false))
                    .map(|(g, _)| g.clone())
                    .collect(),
            )),
            Column::Pruned(t, _) => Column::Pruned(*t, mask.true_count()),
        })
    }

    pub fn take(&self, idx: &[u32]) -> Result<Column> {
        let ia = UInt32Array::from(idx.to_vec());
        Ok(match self {
            Column::Bool(a) => Column::Bool(downcast(compute::take(a, &ia, None)?)?),
            Column::Int(a) => Column::Int(downcast(compute::take(a, &ia, None)?)?),
            Column::Long(a) => Column::Long(downcast(compute::take(a, &ia, None)?)?),
            Column::Real(a) => Column::Real(downcast(compute::take(a, &ia, None)?)?),
            Column::String(a) => Column::String(downcast(compute::take(a, &ia, None)?)?),
            Column::DateTime(a) => Column::DateTime(downcast(compute::take(a, &ia, None)?)?),
            Column::TimeSpan(a) => Column::TimeSpan(downcast(compute::take(a, &ia, None)?)?),
            Column::Guid(v) => Column::Guid(Arc::new(idx.iter().map(|&i| v[i as usize]).collect())),
            Column::Dynamic(v) => Column::Dynamic(Arc::new(
                idx.iter().map(|&i| v[i as usize].clone()).collect(),
            )),
            Column::Pruned(t, _) => Column::Pruned(*t, idx.len()),
        })
    }

    pub fn slice(&self, offset: usize, len: usize) -> Column {
        match self {
            Column::Bool(a) => Column::Bool(a.slice(offset, len)),
            Column::Int(a) => Column::Int(a.slice(offset, len)),
            Column::Long(a) => Column::Long(a.slice(offset, len)),
            Column::Real(a) => Column::Real(a.slice(offset, len)),
            Column::String(a) => Column::String(a.slice(offset, len)),
            Column::DateTime(a) => Column::DateTime(a.slice(offset, len)),
            Column::TimeSpan(a) => Column::TimeSpan(a.slice(offset, len)),
            Column::Guid(v) => Column::Guid(Arc::new(v[offset..offset + len].to_vec())),
            Column::Dynamic(v) => Column::Dynamic(Arc::new(v[offset..offset + len].to_vec())),
            Column::Pruned(t, _) => Column::Pruned(*t, len),
        }
    }

    /// Concatenates columns of one type.
    pub fn concat(ty: KqlType, cols: &[&Column]) -> Result<Column> {
        if cols.is_empty() {
            return Ok(Column::null(ty, 0));
        }
        if cols.len() == 1 {
            return Ok(cols[0].clone());
        }
        if cols.iter().any(|c| matches!(c, Column::Pruned(..))) {
            return Ok(Column::Pruned(ty, cols.iter().map(|c| c.len()).sum()));
        }
        let arrays: Vec<&dyn Array> = cols
            .iter()
            .filter_map(|c| match c {
                Column::Bool(a) => Some(a as &dyn Array),
                Column::Int(a) => Some(a as &dyn Array),
                Column::Long(a) | Column::DateTime(a) | Column::TimeSpan(a) => {
                    Some(a as &dyn Array)
                }
                Column::Real(a) => Some(a as &dyn Array),
                Column::String(a) => Some(a as &dyn Array),
                _ => None,
            })
            .collect();
        Ok(match ty {
            KqlType::Guid => Column::Guid(Arc::new(
                cols.iter()
                    .flat_map(|c| match c {
                        Column::Guid(v) => v.to_vec(),
                        _ => vec![],
                    })
                    .collect(),
            )),
            KqlType::Dynamic => Column::Dynamic(Arc::new(
                cols.iter()
                    .flat_map(|c| match c {
                        Column::Dynamic(v) => v.to_vec(),
                        _ => vec![],
                    })
                    .collect(),
            )),
            _ => {
                if arrays.len() != cols.len() {
                    return Err(Error::internal("concat of mixed column types"));
                }
                let out = compute::concat(&arrays)?;
                match ty {
                    KqlType::Bool => Column::Bool(downcast(out)?),
                    KqlType::Int => Column::Int(downcast(out)?),
                    KqlType::Long => Column::Long(downcast(out)?),
                    KqlType::Real => Column::Real(downcast(out)?),
                    KqlType::String => Column::String(downcast(out)?),
                    KqlType::DateTime => Column::DateTime(downcast(out)?),
                    KqlType::TimeSpan => Column::TimeSpan(downcast(out)?),
                    _ => return Err(Error::internal("concat")),
                }
            }
        })
    }
}

fn downcast<T: Array + Clone + 'static>(a: ArrayRef) -> Result<T> {
    a.as_any()
        .downcast_ref::<T>()
        .cloned()
        .ok_or_else(|| Error::internal("unexpected array type"))
}

/// Converts a value to `ty` where Kusto converts implicitly (int -> long -> real);
/// other mismatches give null.
pub fn coerce(v: &Value, ty: KqlType) -> Result<Value> {
    Ok(match (ty, v) {
        (_, Value::Null) => Value::Null,
        (KqlType::Int, Value::Int(_)) => v.clone(),
        (KqlType::Int, Value::Long(x)) => Value::Int(*x as i32),
        (KqlType::Int, Value::Real(x)) => Value::Int(*x as i32),
        (KqlType::Long, Value::Int(x)) => Value::Long(*x as i64),
        (KqlType::Long, Value::Long(_)) => v.clone(),
        (KqlType::Long, Value::Real(x)) => Value::Long(*x as i64),
        (KqlType::Real, Value::Int(x)) => Value::Real(*x as f64),
        (KqlType::Real, Value::Long(x)) => Value::Real(*x as f64),
        (KqlType::Real, Value::Real(_)) => v.clone(),
        (KqlType::DateTime, Value::DateTime(_)) | (KqlType::TimeSpan, Value::TimeSpan(_)) => {
            v.clone()
        }
        (KqlType::String, Value::String(_))
        | (KqlType::Bool, Value::Bool(_))
        | (KqlType::Guid, Value::Guid(_)) => v.clone(),
        (KqlType::Dynamic, Value::Dynamic(_)) => v.clone(),
        _ => Value::Null,
    })
}

/// Like [`coerce`], but never fails: used where the binder has already checked types.
pub fn coerce_value(v: &Value, ty: KqlType) -> Value {
    match (ty, v) {
        (KqlType::String | KqlType::Dynamic | KqlType::Bool | KqlType::Guid, _) => v.clone(),
        _ => coerce(v, ty).unwrap_or(Value::Null),
    }
}
