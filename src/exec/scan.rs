//! A filter right above a table scan runs on the raw Arrow batches: string predicates
//! with constant needles go to `kernels::strmatch` on the input layout (dictionary
//! values matched once, one buffer pass for plain strings), then only the surviving
//! rows of the needed columns are converted. Batches are processed on several threads,
//! in order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray};
use arrow::compute::{and, filter};
use arrow::record_batch::RecordBatch;

use super::eval::eval_mask;
use crate::column::{Chunk, Column};
use crate::convert::column_from_arrow;
use crate::error::{Error, Result};
use crate::kernels::strmatch::{Kind, Matcher};
use crate::kernels::terms::TermMatch;
use crate::plan::{BExpr, BKind, Schema};
use crate::syntax::ast::{BinOp, ListOp, StrOp};
use crate::table::BatchStream;
use crate::types::{KqlType, Value};

/// Rows per unit of parallel work.
const MORSEL_ROWS: usize = 128 * 1024;

/// The one mapping from a string operator and its needle to the matcher rule.
pub fn str_kind(op: StrOp, needle: String, re: &mut crate::functions::RegexCache) -> Result<Kind> {
    let term = |mode| Kind::Term {
        needles: vec![needle.clone()],
        mode,
        all: false,
    };
    Ok(match op {
        StrOp::Equals => Kind::Equals(needle),
        StrOp::Has => term(TermMatch::Whole),
        StrOp::HasPrefix => term(TermMatch::Prefix),
        StrOp::HasSuffix => term(TermMatch::Suffix),
        StrOp::Contains => Kind::Contains(needle),
        StrOp::StartsWith => Kind::StartsWith(needle),
        StrOp::EndsWith => Kind::EndsWith(needle),
        StrOp::MatchesRegex => Kind::Regex(re.get(&needle)?.clone()),
    })
}

/// A string predicate with constant needles: the matcher for `op`, or None.
pub fn matcher_for(e: &BExpr) -> Option<(&BExpr, Matcher)> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(crate::functions::to_display_string(other)),
    };
    match &e.kind {
        BKind::Str {
            op,
            negated,
            cs,
            left,
            right,
        } => {
            let needle = text(right.as_literal()?)?;
            let kind = str_kind(*op, needle, &mut crate::functions::RegexCache::new()).ok()?;
            Some((left, Matcher::new(kind, *cs, *negated)))
        }
        BKind::List {
            op,
            negated,
            cs,
            left,
            items,
        } => {
            let needles: Vec<String> = items.iter().filter_map(text).collect();
            let kind = match op {
                ListOp::HasAny => Kind::Term {
                    needles,
                    mode: TermMatch::Whole,
                    all: false,
                },
                ListOp::HasAll if !needles.is_empty() => Kind::Term {
                    needles,
                    mode: TermMatch::Whole,
                    all: true,
                },
                ListOp::In if items.iter().all(|v| matches!(v, Value::String(_))) => {
                    Kind::In(needles.into_iter().collect())
                }
                _ => return None,
            };
            Some((left, Matcher::new(kind, *cs, *negated)))
        }
        _ => None,
    }
}

fn conjuncts<'e>(e: &'e BExpr, out: &mut Vec<&'e BExpr>) {
    match &e.kind {
        BKind::Binary(BinOp::And, l, r) => {
            conjuncts(l, out);
            conjuncts(r, out);
        }
        _ => out.push(e),
    }
}

/// A conjunct that runs on the raw batch.
enum RawPredicate {
    /// A string predicate with constant needles.
    Str { column: usize, matcher: Matcher },
    /// `low <= column <= high` on a timestamp column (ticks, inclusive; None = open).
    Time {
        column: usize,
        low: Option<i64>,
        high: Option<i64>,
    },
}

/// `Timestamp between (lit .. lit)`, `Timestamp >= lit`, ... as a tick range.
fn time_range(e: &BExpr, schema: &Schema) -> Option<(usize, Option<i64>, Option<i64>)> {
    let col = |x: &BExpr| match x.kind {
        BKind::Column(i) if schema[i].1 == KqlType::DateTime => Some(i),
        _ => None,
    };
    let lit = |x: &BExpr| match x.as_literal() {
        Some(Value::DateTime(t)) => Some(*t),
        _ => None,
    };
    match &e.kind {
        BKind::Between {
            negated: false,
            expr,
            low,
            high,
        } => Some((col(expr)?, Some(lit(low)?), Some(lit(high)?))),
        BKind::Binary(op, l, r) => {
            let (i, t, op) = match (col(l), lit(r), col(r), lit(l)) {
                (Some(i), Some(t), _, _) => (i, t, *op),
                (_, _, Some(i), Some(t)) => (
                    i,
                    t,
                    match op {
                        BinOp::Lt => BinOp::Gt,
                        BinOp::Le => BinOp::Ge,
                        BinOp::Gt => BinOp::Lt,
                        BinOp::Ge => BinOp::Le,
                        o => *o,
                    },
                ),
                _ => return None,
            };
            match op {
                BinOp::Ge => Some((i, Some(t), None)),
                BinOp::Gt => Some((i, t.checked_add(1), None)),
                BinOp::Le => Some((i, None, Some(t))),
                BinOp::Lt => Some((i, None, t.checked_sub(1))),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The tick range as a mask over a raw timestamp array, comparing in the array's own
/// unit (bounds rounded inward); None when the array is not a timestamp.
fn raw_time_mask(a: &dyn Array, low: Option<i64>, high: Option<i64>) -> Option<BooleanArray> {
    use crate::types::ticks::UNIX_EPOCH;
    use arrow::datatypes::{DataType, TimeUnit};
    let DataType::Timestamp(unit, _) = a.data_type() else {
        return None;
    };
    // Ticks per unit (ns: 1/100 of a tick).
    let (lo, hi) = match unit {
        TimeUnit::Nanosecond => (
            low.map(|l| (l - UNIX_EPOCH).saturating_mul(100)),
            high.map(|h| (h - UNIX_EPOCH).saturating_mul(100).saturating_add(99)),
        ),
        u => {
            let per = match u {
                TimeUnit::Second => crate::types::ticks::PER_SECOND,
                TimeUnit::Millisecond => crate::types::ticks::PER_MILLI,
                _ => crate::types::ticks::PER_MICRO,
            };
            (
                low.map(|l| {
                    (l - UNIX_EPOCH).div_euclid(per)
                        + i64::from((l - UNIX_EPOCH).rem_euclid(per) != 0)
                }),
                high.map(|h| (h - UNIX_EPOCH).div_euclid(per)),
            )
        }
    };
    let (lo, hi) = (lo.unwrap_or(i64::MIN), hi.unwrap_or(i64::MAX));
    let raw = a.to_data();
    let values: &[i64] = raw.buffer::<i64>(0);
    let values = &values[..a.len()];
    let nulls = a.logical_nulls();
    let bits: Vec<bool> = values.iter().map(|v| *v >= lo && *v <= hi).collect();
    let mut out = BooleanArray::from(bits);
    if let Some(n) = nulls {
        let valid = BooleanArray::from(n.iter().collect::<Vec<bool>>());
        out = and(&out, &valid).ok()?;
    }
    Some(out)
}

/// The filter split into raw string predicates and the rest.
pub struct FusedFilter {
    raw: Vec<RawPredicate>,
    rest: Vec<BExpr>,
    needed: Vec<bool>,
    schema: Schema,
}

impl FusedFilter {
    pub fn new(pred: &BExpr, schema: &Schema, needed: Vec<bool>) -> FusedFilter {
        let mut parts = Vec::new();
        conjuncts(pred, &mut parts);
        let mut raw = Vec::new();
        let mut rest = Vec::new();
        for c in parts {
            if let Some((column, low, high)) = time_range(c, schema) {
                raw.insert(0, RawPredicate::Time { column, low, high });
                // Kept in `rest` too: a non-timestamp input column is filtered there.
                rest.push(c.clone());
                continue;
            }
            match matcher_for(c) {
                Some((
                    BExpr {
                        kind: BKind::Column(i),
                        ..
                    },
                    matcher,
                )) if schema[*i].1 == KqlType::String => raw.push(RawPredicate::Str {
                    column: *i,
                    matcher,
                }),
                _ => rest.push(c.clone()),
            }
        }
        FusedFilter {
            raw,
            rest,
            needed,
            schema: schema.clone(),
        }
    }

    /// One batch: raw predicates, then conversion of the survivors, then the rest.
    fn run(&self, batch: &RecordBatch) -> Result<Option<Chunk>> {
        let mut mask: Option<BooleanArray> = None;
        let mut time_done = Vec::new();
        for p in &self.raw {
            let m = match p {
                RawPredicate::Str { column, matcher } => {
                    matcher.eval_array(batch.column(*column).as_ref())?
                }
                RawPredicate::Time { column, low, high } => {
                    match raw_time_mask(batch.column(*column).as_ref(), *low, *high) {
                        Some(m) => {
                            time_done.push(*column);
                            m
                        }
                        None => continue,
                    }
                }
            };
            mask = Some(match mask {
                None => m,
                Some(prev) => and(&prev, &m)?,
            });
            if mask.as_ref().is_some_and(|m| m.true_count() == 0) {
                return Ok(None);
            }
        }
        let len = mask.as_ref().map_or(batch.num_rows(), |m| m.true_count());
        let columns = batch
            .columns()
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let ty = self.schema[i].1;
                if !self.needed[i] {
                    return Ok(Column::Pruned(ty, len));
                }
                let a: ArrayRef = match &mask {
                    Some(m) if len != a.len() => filter(a.as_ref(), m)?,
                    _ => a.clone(),
                };
                column_from_arrow(&a, ty).map_err(|e| {
                    Error::data(format!("column '{}': {}", self.schema[i].0, e.message))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut chunk = Chunk::new(columns, len);
        for r in &self.rest {
            if chunk.len == 0 {
                break;
            }
            if time_range(r, &self.schema).is_some_and(|(c, _, _)| time_done.contains(&c)) {
                continue;
            }
            let m = eval_mask(r, &chunk)?;
            if m.true_count() != chunk.len {
                chunk = chunk.filter(&m)?;
            }
        }
        Ok(if chunk.len == 0 { None } else { Some(chunk) })
    }

    /// The tightest time window a raw time predicate imposes, for row-group pruning.
    pub fn time_window(&self) -> Option<crate::table::TimeRange> {
        self.raw.iter().find_map(|p| match p {
            RawPredicate::Time { column, low, high } => Some(crate::table::TimeRange {
                column: *column,
                low: low.unwrap_or(i64::MIN),
                high: high.unwrap_or(i64::MAX),
            }),
            _ => None,
        })
    }

    /// For `explain()`.
    pub fn describe(&self) -> String {
        self.raw
            .iter()
            .map(|p| match p {
                RawPredicate::Str { column, matcher } => format!(
                    "{} on raw {}",
                    describe_matcher(matcher),
                    self.schema[*column].0
                ),
                RawPredicate::Time { column, .. } => {
                    format!("time range on raw {}", self.schema[*column].0)
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn describe_matcher(m: &Matcher) -> String {
    let ci = if m.cs { "" } else { ", case-insensitive" };
    let neg = if m.negated { "not " } else { "" };
    match &m.kind {
        Kind::Term { needles, mode, all } => {
            let op = match (mode, all) {
                (TermMatch::Whole, false) if needles.len() > 1 => "has_any",
                (TermMatch::Whole, true) => "has_all",
                (TermMatch::Whole, _) => "has",
                (TermMatch::Prefix, _) => "hasprefix",
                (TermMatch::Suffix, _) => "hassuffix",
            };
            format!(
                "{neg}{op} {needles:?}{ci} [Aho-Corasick buffer scan, or dictionary values once]"
            )
        }
        Kind::In(set) => format!("{neg}in ({} values){ci} [hash set]", set.len()),
        Kind::Regex(re) => format!("{neg}matches regex {:?} [regex per value]", re.as_str()),
        other => format!("{neg}{other:?}{ci} [per value]"),
    }
}

/// Runs the fused filter over a batch stream on `threads` threads, keeping batch order.
pub fn run_fused<'a>(
    stream: BatchStream<'a>,
    filter: FusedFilter,
    threads: usize,
) -> Box<dyn Iterator<Item = Result<Chunk>> + Send + 'a> {
    let filter = Arc::new(filter);
    let threads = threads.max(1);
    let mut stream = stream.flat_map(split_batch);
    let mut pending: std::collections::VecDeque<Result<Chunk>> = std::collections::VecDeque::new();
    let mut done = false;
    Box::new(std::iter::from_fn(move || loop {
        if let Some(r) = pending.pop_front() {
            return Some(r);
        }
        if done {
            return None;
        }
        // Pull a round of morsels and process them in parallel.
        let mut round: Vec<RecordBatch> = Vec::new();
        for _ in 0..threads * 4 {
            match stream.next() {
                Some(Ok(b)) => round.push(b),
                Some(Err(e)) => {
                    done = true;
                    pending.push_back(Err(e));
                    break;
                }
                None => {
                    done = true;
                    break;
                }
            }
        }
        let results = process_round(&round, &filter, threads);
        let err_at = pending.len();
        let mut out: std::collections::VecDeque<Result<Chunk>> =
            results.into_iter().filter_map(|r| r.transpose()).collect();
        // An error from the stream comes after the results of the batches before it.
        let tail: Vec<_> = pending.drain(..err_at).collect();
        out.extend(tail);
        pending = out;
    }))
}

fn split_batch(b: Result<RecordBatch>) -> Vec<Result<RecordBatch>> {
    match b {
        Ok(b) if b.num_rows() > MORSEL_ROWS => (0..b.num_rows())
            .step_by(MORSEL_ROWS)
            .map(|o| Ok(b.slice(o, MORSEL_ROWS.min(b.num_rows() - o))))
            .collect(),
        other => vec![other],
    }
}

fn process_round(
    round: &[RecordBatch],
    filter: &FusedFilter,
    threads: usize,
) -> Vec<Result<Option<Chunk>>> {
    if threads == 1 || round.len() <= 1 {
        return round.iter().map(|b| filter.run(b)).collect();
    }
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<Result<Option<Chunk>>>> = (0..round.len()).map(|_| None).collect();
    let results: Vec<Vec<(usize, Result<Option<Chunk>>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.min(round.len()))
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= round.len() {
                            break;
                        }
                        mine.push((i, filter.run(&round[i])));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![(usize::MAX, Err(Error::internal("a scan thread panicked")))]
                })
            })
            .collect()
    });
    let mut errors = Vec::new();
    for (i, r) in results.into_iter().flatten() {
        if i == usize::MAX {
            errors.push(r);
        } else {
            slots[i] = Some(r);
        }
    }
    let mut out: Vec<Result<Option<Chunk>>> =
        slots.into_iter().map(|s| s.unwrap_or(Ok(None))).collect();
    out.extend(errors);
    out
}
