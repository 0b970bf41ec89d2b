//! Arrow in, Arrow out. Input: every string layout (Utf8, LargeUtf8, Utf8View,
//! dictionaries), all integer widths, floats, booleans, timestamps of any unit with or
//! without zone (naive means UTC), dates, durations, lists. Output: the natural Arrow
//! types, each field tagged with its Kusto type in metadata `kql_type`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::*;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use crate::column::Column;
use crate::error::{Error, Result};
use crate::kernels::time::ticks_from_unix_nanos;
use crate::plan::Schema;
use crate::types::{ticks, KqlType};

/// The Kusto type an Arrow column reads as, or None when it cannot be read.
pub fn kql_type_of(dt: &DataType) -> Option<KqlType> {
    Some(match dt {
        DataType::Boolean => KqlType::Bool,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16 => {
            KqlType::Int
        }
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => KqlType::Long,
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => KqlType::Real,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
            KqlType::String
        }
        DataType::Dictionary(_, v) => return kql_type_of(v),
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => KqlType::DateTime,
        DataType::Duration(_) => KqlType::TimeSpan,
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::Struct(_)
        | DataType::Map(..)
        | DataType::FixedSizeList(..)
        | DataType::ListView(_) => KqlType::Dynamic,
        _ => return None,
    })
}

/// The Kusto schema of an Arrow schema; a field tagged `kql_type` keeps its tag
/// (so `guid` and `dynamic` survive a round trip through Arrow).
pub fn kql_schema(schema: &SchemaRef) -> Result<Schema> {
    schema
        .fields()
        .iter()
        .map(|f| {
            let tagged = f
                .metadata()
                .get("kql_type")
                .and_then(|t| KqlType::from_name(t));
            let natural = kql_type_of(f.data_type());
            let ty = match (tagged, natural) {
                (Some(KqlType::Guid | KqlType::Dynamic), Some(KqlType::String)) => tagged,
                (_, n) => n,
            };
            // An unreadable column only matters if the query reads it: call it dynamic here
            // and fail in column_from_arrow with the column's name.
            Ok((f.name().clone(), ty.unwrap_or(KqlType::Dynamic)))
        })
        .collect()
}

/// One Arrow array as a column of Kusto type `ty` (from [`kql_schema`]).
pub fn column_from_arrow(a: &ArrayRef, ty: KqlType) -> Result<Column> {
    let dt = a.data_type().clone();
    let unsupported = || Error::data(format!("Arrow type {dt} cannot be read"));
    Ok(match ty {
        KqlType::Bool => Column::Bool(a.as_boolean_opt().ok_or_else(unsupported)?.clone()),
        KqlType::Int => Column::Int(
            cast(a, &DataType::Int32)?
                .as_primitive::<arrow::datatypes::Int32Type>()
                .clone(),
        ),
        KqlType::Long => {
            if let DataType::UInt64 = dt {
                let u = a.as_primitive::<arrow::datatypes::UInt64Type>();
                if u.iter().flatten().any(|v| v > i64::MAX as u64) {
                    return Err(Error::data(
                        "uint64 value larger than the largest long".to_string(),
                    ));
                }
            }
            Column::Long(
                cast(a, &DataType::Int64)?
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .clone(),
            )
        }
        KqlType::Real => Column::Real(
            cast(a, &DataType::Float64)?
                .as_primitive::<arrow::datatypes::Float64Type>()
                .clone(),
        ),
        KqlType::String | KqlType::Guid | KqlType::Dynamic
            if matches!(
                dt,
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Dictionary(..)
                    | DataType::Null
            ) =>
        {
            let s = if dt == DataType::Utf8 {
                a.clone()
            } else {
                cast(a, &DataType::Utf8)?
            };
            let s = s.as_string::<i32>().clone();
            match ty {
                KqlType::String => Column::String(s),
                KqlType::Guid => Column::Guid(Arc::new(
                    s.iter()
                        .map(|v| v.and_then(crate::types::parse_guid))
                        .collect(),
                )),
                _ => Column::Dynamic(Arc::new(
                    s.iter()
                        .map(|v| match v {
                            None | Some("") => serde_json::Value::Null,
                            Some(t) => serde_json::from_str(t)
                                .unwrap_or_else(|_| serde_json::Value::String(t.to_string())),
                        })
                        .collect(),
                )),
            }
        }
        KqlType::DateTime => {
            let (unit, tz_arr) = match &dt {
                DataType::Timestamp(u, _) => (*u, a.clone()),
                DataType::Date32 | DataType::Date64 => (
                    TimeUnit::Millisecond,
                    cast(a, &DataType::Timestamp(TimeUnit::Millisecond, None))?,
                ),
                _ => return Err(unsupported()),
            };
            // Straight from the timestamps to ticks (no copy as plain Int64 first), one
            // loop per unit (a unit matched per row kept the loop from vectorizing).
            use arrow::datatypes::{
                Int64Type, TimestampMicrosecondType as Us, TimestampMillisecondType as Ms,
                TimestampNanosecondType as Ns, TimestampSecondType as S,
            };
            // Each arm names its unit as a constant, so `unit_to_ticks` (the one rule)
            // folds to one multiply in a loop that vectorizes.
            let epoch = |t: i64| t + ticks::UNIX_EPOCH;
            let out: Int64Array = match unit {
                TimeUnit::Second => tz_arr
                    .as_primitive::<S>()
                    .unary::<_, Int64Type>(|v| epoch(unit_to_ticks(v, TimeUnit::Second))),
                TimeUnit::Millisecond => tz_arr
                    .as_primitive::<Ms>()
                    .unary::<_, Int64Type>(|v| epoch(unit_to_ticks(v, TimeUnit::Millisecond))),
                TimeUnit::Microsecond => tz_arr
                    .as_primitive::<Us>()
                    .unary::<_, Int64Type>(|v| epoch(unit_to_ticks(v, TimeUnit::Microsecond))),
                TimeUnit::Nanosecond => tz_arr
                    .as_primitive::<Ns>()
                    .unary::<_, Int64Type>(|v| epoch(unit_to_ticks(v, TimeUnit::Nanosecond))),
            };
            Column::DateTime(out)
        }
        KqlType::TimeSpan => {
            let DataType::Duration(unit) = dt else {
                return Err(unsupported());
            };
            let raw = cast(a, &DataType::Int64)?;
            let raw = raw.as_primitive::<arrow::datatypes::Int64Type>();
            Column::TimeSpan(raw.unary(|v| unit_to_ticks(v, unit)))
        }
        KqlType::Dynamic => {
            let mut vals = Vec::with_capacity(a.len());
            for i in 0..a.len() {
                vals.push(arrow_value_to_json(a.as_ref(), i)?);
            }
            Column::Dynamic(Arc::new(vals))
        }
        KqlType::Decimal | KqlType::String | KqlType::Guid => return Err(unsupported()),
    })
}

fn unit_to_ticks(v: i64, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => v.saturating_mul(ticks::PER_SECOND),
        TimeUnit::Millisecond => v.saturating_mul(ticks::PER_MILLI),
        TimeUnit::Microsecond => v.saturating_mul(ticks::PER_MICRO),
        TimeUnit::Nanosecond => ticks_from_unix_nanos(v) - ticks::UNIX_EPOCH,
    }
}

fn arrow_value_to_json(a: &dyn Array, i: usize) -> Result<serde_json::Value> {
    use serde_json::Value as J;
    if a.is_null(i) {
        return Ok(J::Null);
    }
    let single = a.slice(i, 1);
    Ok(match a.data_type() {
        DataType::List(_) => {
            let l = a.as_list::<i32>().value(i);
            J::Array(
                (0..l.len())
                    .map(|j| arrow_value_to_json(l.as_ref(), j))
                    .collect::<Result<_>>()?,
            )
        }
        DataType::LargeList(_) => {
            let l = a.as_list::<i64>().value(i);
            J::Array(
                (0..l.len())
                    .map(|j| arrow_value_to_json(l.as_ref(), j))
                    .collect::<Result<_>>()?,
            )
        }
        DataType::Struct(fields) => {
            let s = a.as_struct();
            let mut m = serde_json::Map::new();
            for (k, f) in fields.iter().enumerate() {
                m.insert(
                    f.name().clone(),
                    arrow_value_to_json(s.column(k).as_ref(), i)?,
                );
            }
            J::Object(m)
        }
        dt => match kql_type_of(dt) {
            Some(KqlType::Dynamic) | None => {
                return Err(Error::data(format!(
                    "Arrow type {dt} cannot be read inside a dynamic value"
                )))
            }
            Some(t) => {
                let c = column_from_arrow(&single, t)?;
                crate::exec::value_to_json(&c.get(0))
            }
        },
    })
}

/// Whether every tick value fits Arrow's nanosecond range.
fn fits_ns(vals: &Int64Array, origin: i64) -> bool {
    let lo = (i64::MIN / 100) + origin;
    let hi = (i64::MAX / 100) + origin;
    vals.iter().flatten().all(|t| t > lo && t < hi)
}

/// A column as an Arrow array and field. Datetimes are `timestamp[ns, UTC]` (microseconds
/// when a value is outside the nanosecond range, 1677..2262); timespans are `duration[ns]`;
/// dynamic arrays whose elements share one scalar type become lists, other dynamic
/// values JSON text.
pub fn column_to_arrow(name: &str, c: &Column) -> Result<(Field, ArrayRef)> {
    let ty = c.kql_type();
    let (array, kind): (ArrayRef, KqlType) = match c {
        Column::Bool(a) => (Arc::new(a.clone()), ty),
        Column::Int(a) => (Arc::new(a.clone()), ty),
        Column::Long(a) => (Arc::new(a.clone()), ty),
        Column::Real(a) => (Arc::new(a.clone()), ty),
        Column::String(a) => {
            if a.null_count() > 0 {
                let filled: StringArray = a.iter().map(|v| Some(v.unwrap_or(""))).collect();
                (Arc::new(filled), ty)
            } else {
                (Arc::new(a.clone()), ty)
            }
        }
        Column::DateTime(a) => {
            if fits_ns(a, ticks::UNIX_EPOCH) {
                let v: TimestampNanosecondArray =
                    a.unary(|t| t.wrapping_sub(ticks::UNIX_EPOCH).wrapping_mul(100));
                (Arc::new(v.with_timezone("UTC")), ty)
            } else {
                let v: TimestampMicrosecondArray =
                    a.unary(|t| t.wrapping_sub(ticks::UNIX_EPOCH).div_euclid(10));
                (Arc::new(v.with_timezone("UTC")), ty)
            }
        }
        Column::TimeSpan(a) => {
            if fits_ns(a, 0) {
                let v: DurationNanosecondArray = a.unary(|t| t.wrapping_mul(100));
                (Arc::new(v), ty)
            } else {
                let v: DurationMicrosecondArray = a.unary(|t| t.div_euclid(10));
                (Arc::new(v), ty)
            }
        }
        Column::Guid(v) => {
            let s: StringArray = v.iter().map(|g| g.map(crate::types::format_guid)).collect();
            (Arc::new(s), ty)
        }
        Column::Dynamic(v) => (dynamic_to_arrow(v), ty),
        Column::Pruned(..) => {
            return Err(Error::internal(format!(
                "column '{name}' was pruned but is in the result"
            )))
        }
    };
    let mut meta = HashMap::new();
    meta.insert("kql_type".to_string(), kind.name().to_string());
    let field = Field::new(name, array.data_type().clone(), true).with_metadata(meta);
    Ok((field, array))
}

fn dynamic_to_arrow(v: &[serde_json::Value]) -> ArrayRef {
    // Lists when every non-null value is an array and all elements share a scalar kind.
    let all_arrays =
        v.iter().all(|x| x.is_array() || x.is_null()) && v.iter().any(|x| x.is_array());
    if all_arrays {
        let elems = || v.iter().filter_map(|x| x.as_array()).flatten();
        let non_null = || elems().filter(|e| !e.is_null());
        let kind = if non_null().all(|e| e.is_string()) {
            Some(DataType::Utf8)
        } else if non_null().all(|e| e.is_i64()) {
            Some(DataType::Int64)
        } else if non_null().all(|e| e.is_number()) {
            Some(DataType::Float64)
        } else if non_null().all(|e| e.is_boolean()) {
            Some(DataType::Boolean)
        } else {
            None
        };
        if let Some(kind) = kind {
            let mut offsets = vec![0i32];
            let mut nulls = Vec::with_capacity(v.len());
            for x in v {
                let n = x.as_array().map_or(0, |a| a.len());
                offsets.push(offsets.last().copied().unwrap_or(0) + n as i32);
                nulls.push(!x.is_null());
            }
            let values: ArrayRef = match kind {
                DataType::Utf8 => Arc::new(
                    elems()
                        .map(|e| e.as_str().map(str::to_string))
                        .collect::<StringArray>(),
                ),
                DataType::Int64 => Arc::new(elems().map(|e| e.as_i64()).collect::<Int64Array>()),
                DataType::Float64 => {
                    Arc::new(elems().map(|e| e.as_f64()).collect::<Float64Array>())
                }
                _ => Arc::new(elems().map(|e| e.as_bool()).collect::<BooleanArray>()),
            };
            let field = Arc::new(Field::new("item", kind, true));
            let offsets = arrow::buffer::OffsetBuffer::new(offsets.into());
            let nulls = arrow::buffer::NullBuffer::from(nulls);
            if let Ok(l) = ListArray::try_new(field, offsets, values, Some(nulls)) {
                return Arc::new(l);
            }
        }
    }
    Arc::new(
        v.iter()
            .map(|x| {
                if x.is_null() {
                    None
                } else {
                    Some(x.to_string())
                }
            })
            .collect::<StringArray>(),
    )
}

/// A result table as one Arrow record batch.
pub fn to_record_batch(names: &[String], columns: &[Column]) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut arrays = Vec::new();
    for (n, c) in names.iter().zip(columns) {
        let (f, a) = column_to_arrow(n, c)?;
        fields.push(f);
        arrays.push(a);
    }
    let schema = Arc::new(ArrowSchema::new(fields));
    let len = columns.first().map_or(0, |c| c.len());
    Ok(RecordBatch::try_new_with_options(
        schema,
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(len)),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every string layout reads as the same strings; nulls read as "".
    #[test]
    fn string_layouts() {
        let plain: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None, Some("b")]));
        let large: ArrayRef = Arc::new(LargeStringArray::from(vec![Some("a"), None, Some("b")]));
        let view: ArrayRef = Arc::new(StringViewArray::from(vec![Some("a"), None, Some("b")]));
        let dict: ArrayRef = Arc::new(
            vec![Some("a"), None, Some("b")]
                .into_iter()
                .collect::<DictionaryArray<arrow::datatypes::Int32Type>>(),
        );
        for a in [plain, large, view, dict] {
            let ty = kql_type_of(a.data_type()).unwrap();
            assert_eq!(ty, KqlType::String);
            let c = column_from_arrow(&a, ty).unwrap();
            let got: Vec<String> = (0..3)
                .map(|i| crate::functions::to_display_string(&c.get(i)))
                .collect();
            assert_eq!(got, vec!["a", "", "b"]);
        }
    }

    #[test]
    fn timestamps_of_every_unit() {
        let s: ArrayRef = Arc::new(TimestampSecondArray::from(vec![0i64]));
        let ms: ArrayRef =
            Arc::new(TimestampMillisecondArray::from(vec![0i64]).with_timezone("UTC"));
        let us: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![0i64]).with_timezone("+02:00"));
        let ns: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![0i64]));
        for a in [s, ms, us, ns] {
            let c = column_from_arrow(&a, KqlType::DateTime).unwrap();
            assert_eq!(
                c.get(0),
                crate::types::Value::DateTime(ticks::UNIX_EPOCH),
                "{}",
                a.data_type()
            );
        }
    }
}
