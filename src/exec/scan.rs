//! A filter right above a table scan runs on the raw Arrow batches: string predicates
//! with constant needles go to `kernels::strmatch` / `kernels::termscan` on the input
//! layout (dictionary values matched once, one buffer pass for plain strings), time
//! ranges compare raw timestamps, and each predicate after the first looks only at the
//! rows that survived so far (a selection vector), cheapest first. Then only the
//! surviving rows of the needed columns are converted. Batches are cut into morsels and
//! processed on several threads, in order.
//!
//! [`SharedScan`] runs the filters of many queries over one table in one pass: per
//! column, one `TermScanner` holds the needles of every query that starts there, so the
//! column is matched once per morsel for all of them.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, GenericStringArray, OffsetSizeTrait, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{
    DataType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow::record_batch::RecordBatch;

use super::eval::eval_mask;
use super::pool::parallel_map;
use super::{filter_reads, needed_by, or_into};
use crate::column::{Chunk, Column};
use crate::convert::column_from_arrow;
use crate::error::{Error, Result};
use crate::functions::Func;
use crate::kernels::distinct;
use crate::kernels::strmatch::{Kind, Matcher};
use crate::kernels::terms::TermMatch;
use crate::kernels::termscan::{self, complement, KeyRows, TermScanner, MAX_PAIR_NEEDLES};
use crate::plan::{BExpr, BKind, Schema};
use crate::syntax::ast::{BinOp, ListOp, StrOp};
use crate::table::{BatchStream, ScanTask};
use crate::types::{KqlType, Value};

/// Rows per unit of parallel work.
const MORSEL_ROWS: usize = 128 * 1024;
/// Morsels per thread taken from a stream at a time. The threads meet at the end of each
/// round (results go out in stream order), so a round is long against one morsel: the
/// founding rule over 10M in-memory rows on two threads ran 22.7 ms with 4 per thread,
/// 20.8 ms with 16 (38.5 ms on one thread). A round holds its morsels' results.
const ROUND_PER_THREAD: usize = 16;
/// Scan tasks (row groups) per thread taken at a time, for the same reason; a round holds
/// its tasks' filtered rows, so it stays short. The founding rule from a 10-row-group
/// Parquet file on two threads: 63 ms with 1 per thread, 57 with 2, 52 with 4 (108 on
/// one thread).
const TASKS_PER_THREAD: usize = 2;

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
        // `isempty(s)` / `isnotempty(s)` on a string: `s == ""` / `s != ""` (a null reads
        // as "" in both, as `functions::call` has it). A test of row lengths (`where
        // isempty(Company) | count` over 10M rows: 52 -> 10 ms; it converted the column).
        BKind::Call(f @ (Func::IsEmpty | Func::IsNotEmpty), args)
            if args.len() == 1 && args[0].ty == KqlType::String =>
        {
            let kind = Kind::Equals(String::new());
            Some((&args[0], Matcher::new(kind, true, *f == Func::IsNotEmpty)))
        }
        // `==` / `!=` between a string and a string literal (either side): `Equals`,
        // case-sensitive, as `str_kind` maps them (nulls read as "" in both).
        BKind::Binary(op @ (BinOp::Eq | BinOp::Ne), l, r) => {
            let (side, lit) = match (l.as_literal(), r.as_literal()) {
                (None, Some(Value::String(s))) => (l, s),
                (Some(Value::String(s)), None) => (r, s),
                _ => return None,
            };
            if side.ty != KqlType::String {
                return None;
            }
            let kind = Kind::Equals(lit.clone());
            Some((side.as_ref(), Matcher::new(kind, true, *op == BinOp::Ne)))
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

/// The inclusive tick range in a timestamp array's own unit, rounded inward.
fn unit_bounds(unit: TimeUnit, low: Option<i64>, high: Option<i64>) -> (i64, i64) {
    use crate::types::ticks::{PER_MICRO, PER_MILLI, PER_SECOND, UNIX_EPOCH};
    let (lo, hi) = match unit {
        // A tick is 100 ns.
        TimeUnit::Nanosecond => (
            low.map(|l| (l - UNIX_EPOCH).saturating_mul(100)),
            high.map(|h| (h - UNIX_EPOCH).saturating_mul(100).saturating_add(99)),
        ),
        u => {
            let per = match u {
                TimeUnit::Second => PER_SECOND,
                TimeUnit::Millisecond => PER_MILLI,
                _ => PER_MICRO,
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
    (lo.unwrap_or(i64::MIN), hi.unwrap_or(i64::MAX))
}

/// The raw values and unit of a timestamp array; None for any other type.
fn timestamp_values(a: &dyn Array) -> Option<(&[i64], TimeUnit)> {
    Some(match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => (
            a.as_primitive::<TimestampSecondType>().values(),
            TimeUnit::Second,
        ),
        DataType::Timestamp(TimeUnit::Millisecond, _) => (
            a.as_primitive::<TimestampMillisecondType>().values(),
            TimeUnit::Millisecond,
        ),
        DataType::Timestamp(TimeUnit::Microsecond, _) => (
            a.as_primitive::<TimestampMicrosecondType>().values(),
            TimeUnit::Microsecond,
        ),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => (
            a.as_primitive::<TimestampNanosecondType>().values(),
            TimeUnit::Nanosecond,
        ),
        _ => return None,
    })
}

/// Which rows of a morsel are still in: all, or these (sorted, unique).
#[derive(Clone, Debug, PartialEq)]
enum Sel {
    All,
    Rows(Vec<u32>),
}

impl Sel {
    fn is_empty(&self) -> bool {
        matches!(self, Sel::Rows(r) if r.is_empty())
    }
    /// Rows of `self` that are also in `rows` (sorted).
    fn and(&self, rows: Vec<u32>) -> Sel {
        match self {
            Sel::All => Sel::Rows(rows),
            Sel::Rows(mine) => Sel::Rows(intersect(mine, &rows)),
        }
    }
}

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// A term predicate answered from a shared scanner's hits.
#[derive(Clone, Debug)]
struct SharedTerm {
    slot: usize,
    keys: Vec<u32>,
    all: bool,
}

/// A conjunct that runs on the raw batch.
#[derive(Clone, Debug)]
enum Raw {
    /// A string predicate with constant needles.
    Str {
        column: usize,
        matcher: Matcher,
        shared: Option<SharedTerm>,
    },
    /// `low <= column <= high` on a timestamp column (ticks, inclusive; None = open).
    Time {
        column: usize,
        low: Option<i64>,
        high: Option<i64>,
    },
    /// A disjunction of string predicates.
    Any(Vec<Raw>),
}

impl Raw {
    /// The conjunct as a raw predicate, if it is one.
    fn compile(e: &BExpr, schema: &Schema) -> Option<Raw> {
        if let Some((column, low, high)) = time_range(e, schema) {
            return Some(Raw::Time { column, low, high });
        }
        if let BKind::Binary(BinOp::Or, l, r) = &e.kind {
            let mut parts = Vec::new();
            for side in [l, r] {
                match Raw::compile(side, schema)? {
                    Raw::Any(more) => parts.extend(more),
                    s @ Raw::Str { .. } => parts.push(s),
                    Raw::Time { .. } => return None,
                }
            }
            return Some(Raw::Any(parts));
        }
        match matcher_for(e) {
            Some((
                BExpr {
                    kind: BKind::Column(i),
                    ..
                },
                matcher,
            )) if schema[*i].1 == KqlType::String => Some(Raw::Str {
                column: *i,
                matcher,
                shared: None,
            }),
            _ => None,
        }
    }

    /// Evaluation order, cheapest and most selective first: shared term hits, term
    /// buffer scans and one-needle byte tests (ordered per batch by `estimate`), time
    /// ranges, other string tests (row by row); a disjunction by its costliest part.
    fn cost(&self) -> u8 {
        match self {
            Raw::Str {
                shared: Some(_), ..
            } => 0,
            Raw::Str { matcher, .. }
                if matcher.term_needles().is_some() || matcher.tests_row_bytes() =>
            {
                1
            }
            Raw::Time { .. } => 2,
            // A disjunction costs what its costliest part does: `product has "x" or
            // FileName =~ "y"` is a shared lookup and one pass over the file names, cheaper
            // on all rows than the time range's survivors taken one by one (50 -> 8 ms in
            // the pack over 10M rows).
            Raw::Any(parts) => parts.iter().map(Raw::cost).max().unwrap_or(0),
            Raw::Str { .. } => 4,
        }
    }

    /// About how many nanoseconds the predicate takes on all `rows` rows of this batch,
    /// to order conjuncts per batch: a buffer scan costs by the bytes of its column
    /// (`has "x"` over 10M file names of 12 bytes takes less than `startswith "x"`, over
    /// 10M folder paths of 60 bytes more), row tests by the rows. Coefficients measured on
    /// 10M generated rows (`benchmarks/`): SIMD term scan 0.1 ns per byte and needle up
    /// to `termscan`'s pair limit (and 35 ns per row it keeps: `hit_cost`), distinct-value
    /// matching 8 ns per row, byte tests of one needle 4 ns, a time range 1 ns, other
    /// tests about 50 ns per row. (Equality reads little more than the lengths, but
    /// costing it so put `isempty(Company)`, 4% of the rows, before `FileName startswith
    /// "level"`, none: the order is by cost alone, and the conjuncts after the first
    /// read scattered rows.)
    fn estimate(&self, cols: &Cols<'_>, rows: usize, hits: &[KeyRows]) -> f64 {
        let rows = rows as f64;
        match self {
            // About a nanosecond per row a shared predicate hands on (the rest is paid).
            Raw::Str {
                shared: Some(st), ..
            } => hits.get(st.slot).map_or(0, |h| h.count(&st.keys)) as f64,
            Raw::Str {
                column, matcher, ..
            } => {
                let Ok(a) = cols.column(*column) else {
                    return f64::MAX;
                };
                // The bytes of this batch's rows (a morsel is a slice: its values buffer
                // is its whole chunk's, so that buffer's length made later morsels of
                // a chunk look costlier and flipped their order).
                fn spanned<O: OffsetSizeTrait>(a: &GenericStringArray<O>) -> usize {
                    let o = a.value_offsets();
                    o[o.len() - 1].as_usize() - o[0].as_usize()
                }
                let bytes = match a.data_type() {
                    DataType::Utf8 => Some(spanned(a.as_string::<i32>())),
                    DataType::LargeUtf8 => Some(spanned(a.as_string::<i64>())),
                    DataType::Dictionary(..) => return rows,
                    _ => None,
                };
                match (matcher.term_needles(), bytes) {
                    (Some((needles, _, _)), Some(b)) if needles.len() <= MAX_PAIR_NEEDLES => {
                        b as f64 * 0.1 * needles.len() as f64
                    }
                    (Some(_), _) => rows * 8.0,
                    _ if matcher.tests_row_bytes() && bytes.is_some() => rows * 4.0,
                    _ => rows * 50.0,
                }
            }
            Raw::Time { .. } => rows,
            Raw::Any(parts) => parts
                .iter()
                .map(|p| p.estimate(cols, rows as usize, hits))
                .sum(),
        }
    }

    /// What the rows a term buffer scan keeps add to its `estimate` (about 35 ns each:
    /// placing and checking the hit, handing the row on), from the share of this
    /// batch's first rows it keeps: a popular needle costs more than its bytes say
    /// (`company has "Google"`, a tenth of 10M rows: ~19 ms of bytes, ~57 ms in all).
    /// Zero for other predicates.
    fn hit_cost(&self, cols: &Cols<'_>, rows: usize) -> f64 {
        const SAMPLE: usize = 1024;
        let Raw::Str {
            column,
            matcher,
            shared: None,
        } = self
        else {
            return 0.0;
        };
        let scanned = matcher
            .term_needles()
            .is_some_and(|(needles, _, _)| needles.len() <= MAX_PAIR_NEEDLES);
        let Ok(a) = cols.column(*column) else {
            return 0.0;
        };
        let k = a.len().min(SAMPLE);
        if !scanned || k == 0 || !matches!(a.data_type(), DataType::Utf8 | DataType::LargeUtf8) {
            return 0.0;
        }
        let kept = matcher
            .select_rows(&a.slice(0, k), None)
            .map_or(0, |r| r.len());
        rows as f64 * kept as f64 / k as f64 * 35.0
    }

    /// The rows of `sel` that satisfy the predicate; None when it cannot run on this
    /// batch's layout (a time range on a non-timestamp column: the converted filter
    /// decides instead).
    fn select(&self, batch: &Cols<'_>, sel: &Sel, hits: &[KeyRows]) -> Result<Option<Sel>> {
        let n = batch.rows;
        Ok(Some(match self {
            Raw::Str {
                matcher,
                shared: Some(st),
                ..
            } if st.slot < hits.len() => {
                let rows = hits[st.slot].rows(&st.keys, st.all);
                sel.and(if matcher.negated {
                    complement(&rows, n)
                } else {
                    rows
                })
            }
            Raw::Str {
                column, matcher, ..
            } => {
                let a = batch.column(*column)?;
                // Straight to the kept rows: dictionary strings (each value once) and
                // one-needle affix and equality tests (each row's bytes).
                let given = match sel {
                    Sel::Rows(rows) => Some(&rows[..]),
                    Sel::All => None,
                };
                if let Some(kept) = matcher.select_rows(a, given) {
                    return Ok(Some(Sel::Rows(kept)));
                }
                // Row by row when few rows are left (a whole-array pass is cheap per row:
                // a term scan costs about what 1/32 of the rows cost one by one; plain
                // strings match each distinct value of the rows left once, which pays
                // until about a quarter of the rows are left).
                let per_row = match a.data_type() {
                    DataType::Utf8 | DataType::LargeUtf8 => 4,
                    _ => 32,
                };
                match sel {
                    Sel::Rows(rows) if rows.len() * per_row < n => {
                        if let Some(kept) = rows_where(a, rows, |s| matcher.matches(s)) {
                            return Ok(Some(Sel::Rows(kept)));
                        }
                        sel.and(mask_rows(&matcher.eval_array(a)?))
                    }
                    _ => sel.and(mask_rows(&matcher.eval_array(a)?)),
                }
            }
            Raw::Time { column, low, high } => {
                let a = batch.column(*column)?;
                let Some((values, unit)) = timestamp_values(a) else {
                    return Ok(None);
                };
                let (lo, hi) = unit_bounds(unit, *low, *high);
                let nulls = a.logical_nulls();
                let keep = |r: usize| {
                    let v = values[r];
                    v >= lo && v <= hi && nulls.as_ref().is_none_or(|m| m.is_valid(r))
                };
                match sel {
                    Sel::All => Sel::Rows((0..n as u32).filter(|&r| keep(r as usize)).collect()),
                    Sel::Rows(rows) => {
                        Sel::Rows(rows.iter().copied().filter(|&r| keep(r as usize)).collect())
                    }
                }
            }
            Raw::Any(parts) => {
                let mut acc: Vec<u32> = Vec::new();
                for p in parts {
                    match p.select(batch, sel, hits)? {
                        Some(Sel::Rows(r)) => acc = termscan::union_sorted(&acc, &r),
                        Some(Sel::All) | None => return Ok(Some(sel.clone())),
                    }
                }
                Sel::Rows(acc)
            }
        }))
    }
}

/// The columns raw predicates read, by schema index (a whole batch, or only the
/// predicate's columns when a reader applies it early).
struct Cols<'a> {
    columns: Vec<Option<&'a dyn Array>>,
    rows: usize,
}

impl<'a> Cols<'a> {
    fn of_batch(batch: &'a RecordBatch) -> Cols<'a> {
        Cols {
            columns: batch.columns().iter().map(|a| Some(a.as_ref())).collect(),
            rows: batch.num_rows(),
        }
    }

    fn column(&self, i: usize) -> Result<&'a dyn Array> {
        self.columns
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| Error::internal(format!("raw predicate column {i} not read")))
    }
}

/// Every column the raw predicates read (sorted).
fn raw_columns(raw: &[Raw]) -> Vec<usize> {
    fn walk(p: &Raw, out: &mut Vec<usize>) {
        match p {
            Raw::Str { column, .. } | Raw::Time { column, .. } => out.push(*column),
            Raw::Any(parts) => parts.iter().for_each(|p| walk(p, out)),
        }
    }
    let mut cols = Vec::new();
    raw.iter().for_each(|p| walk(p, &mut cols));
    cols.sort_unstable();
    cols.dedup();
    cols
}

/// `raw` without its time predicates (a disjunction holds string predicates only): it
/// keeps every row `raw` keeps.
fn without_time(raw: &[Raw]) -> Vec<Raw> {
    raw.iter()
        .filter(|p| !matches!(p, Raw::Time { .. }))
        .cloned()
        .collect()
}

/// The rows that pass every raw predicate that can run on `view` (the others keep all).
fn passing(raw: &[Raw], view: &Cols<'_>, hits: &[KeyRows]) -> Result<Sel> {
    let mut sel = Sel::All;
    for p in raw {
        if let Some(next) = p.select(view, &sel, hits)? {
            sel = next;
        }
        if sel.is_empty() {
            break;
        }
    }
    Ok(sel)
}

/// Sets the bits of `sel`'s rows in `keep` (a bitmap, 64 rows a word, of `rows` rows).
/// Straight to bits: a `Vec<bool>` per batch turned into a `BooleanArray` one value at a
/// time took ~3.5% of the founding rule from Parquet (10M rows, 1 thread).
fn mark(keep: &mut [u64], rows: usize, sel: &Sel) {
    match sel {
        Sel::All => {
            keep.iter_mut().for_each(|w| *w = u64::MAX);
            if rows % 64 != 0 {
                if let Some(last) = keep.last_mut() {
                    *last = (1u64 << (rows % 64)) - 1;
                }
            }
        }
        Sel::Rows(r) => r
            .iter()
            .for_each(|&i| keep[i as usize / 64] |= 1u64 << (i % 64)),
    }
}

/// A bitmap of `rows` rows (from `mark`) as a boolean array with no nulls.
fn mask_of(keep: Vec<u64>, rows: usize) -> arrow::array::BooleanArray {
    let bits = arrow::buffer::BooleanBuffer::new(arrow::buffer::Buffer::from_vec(keep), 0, rows);
    arrow::array::BooleanArray::new(bits, None)
}

/// Set rows of a mask (never null).
fn mask_rows(m: &arrow::array::BooleanArray) -> Vec<u32> {
    m.values().set_indices().map(|i| i as u32).collect()
}

/// `rows` whose string (null as "") passes `f`, for plain string layouts; None for others.
/// Plain arrays call `f` once per distinct value of the rows (`kernels::distinct`).
fn rows_where(a: &dyn Array, rows: &[u32], f: impl Fn(&str) -> bool) -> Option<Vec<u32>> {
    fn go<'a>(
        rows: &[u32],
        is_null: impl Fn(usize) -> bool,
        value: impl Fn(usize) -> &'a str,
        f: impl Fn(&str) -> bool,
    ) -> Vec<u32> {
        rows.iter()
            .copied()
            .filter(|&r| {
                let r = r as usize;
                f(if is_null(r) { "" } else { value(r) })
            })
            .collect()
    }
    fn plain<O: OffsetSizeTrait>(
        s: &GenericStringArray<O>,
        rows: &[u32],
        f: impl Fn(&str) -> bool,
    ) -> Vec<u32> {
        // The memo skips null rows: when "" passes, nulls go row by row.
        if rows.len() < MEMO_MIN_ROWS || (s.null_count() > 0 && f("")) {
            return go(rows, |r| s.is_null(r), |r| s.value(r), f);
        }
        let sel = distinct::select_of(s, rows, |v| f(v), |&hit| hit);
        let mut out = sel.rows;
        out.extend(go(&rows[sel.done..], |r| s.is_null(r), |r| s.value(r), f));
        out
    }
    Some(match a.data_type() {
        DataType::Utf8 => plain(a.as_string::<i32>(), rows, f),
        DataType::LargeUtf8 => plain(a.as_string::<i64>(), rows, f),
        DataType::Utf8View => {
            let s = a.as_string_view();
            go(rows, |r| s.is_null(r), |r| s.value(r), f)
        }
        _ => return None,
    })
}

/// Rows below which a string test runs row by row rather than once per distinct value
/// (the memo's table costs about what a few hundred row tests do).
const MEMO_MIN_ROWS: usize = 256;

/// The filter split into raw predicates (in evaluation order) and the rest.
#[derive(Clone)]
pub struct FusedFilter {
    raw: Vec<Raw>,
    rest: Vec<BExpr>,
    /// Columns the scan reads: the filter's own and those wanted above it.
    needed: Vec<bool>,
    /// Columns converted for the surviving rows: those the rest of the filter reads and
    /// those wanted above it (a column only the raw predicates read is not taken).
    convert: Vec<bool>,
    /// Per `rest` predicate, the columns still read after it (by later ones, or above
    /// the filter): the others are dropped before its survivors are taken, so a column
    /// only the filter reads (`isnotnull(Timestamp) | count`) is neither copied nor held.
    keep_after: Vec<Vec<bool>>,
    schema: Schema,
}

impl FusedFilter {
    /// `wanted`: the columns the plan above the filter reads.
    pub fn new(pred: &BExpr, schema: &Schema, wanted: &[bool]) -> FusedFilter {
        let mut parts = Vec::new();
        conjuncts(pred, &mut parts);
        let mut raw = Vec::new();
        let mut rest = Vec::new();
        for c in parts {
            match Raw::compile(c, schema) {
                Some(r) => {
                    if matches!(r, Raw::Time { .. }) {
                        // Kept in `rest` too: a non-timestamp input column is filtered there.
                        rest.push(c.clone());
                    }
                    raw.push(r);
                }
                None => rest.push(c.clone()),
            }
        }
        raw.sort_by_key(Raw::cost);
        let rest_refs: Vec<&BExpr> = rest.iter().collect();
        let mut convert = needed_by(&rest_refs, schema.len());
        or_into(&mut convert, wanted);
        let keep_after = (0..rest.len())
            .map(|k| {
                let mut keep = needed_by(&rest_refs[k + 1..], schema.len());
                or_into(&mut keep, wanted);
                keep
            })
            .collect();
        FusedFilter {
            raw,
            needed: filter_reads(pred, schema.len(), wanted),
            rest,
            convert,
            keep_after,
            schema: schema.clone(),
        }
    }

    /// One batch: raw predicates on a shrinking selection, then conversion of the
    /// survivors, then the rest. `hits` are the shared scanners' hits for this batch.
    fn run(&self, batch: &RecordBatch, hits: &[KeyRows]) -> Result<Option<Chunk>> {
        let n = batch.num_rows();
        let cols = Cols::of_batch(batch);
        let mut sel = Sel::All;
        let mut time_done = Vec::new();
        // Within the planned classes (shared lookups, string tests that usually keep few
        // rows, then time ranges...), cheapest first on this batch's columns: `company
        // has "Google" and product has "Chrome Remote Desktop"` starts with the product
        // when both are shared lookups (a tenth of the rows against a handful).
        let mut order: Vec<(u8, f64, &Raw)> = self.raw.iter().map(|p| (p.cost(), 0.0, p)).collect();
        let several = |class: u8| order.iter().filter(|o| o.0 == class).count() > 1;
        if several(0) || several(1) {
            for (class, cost, p) in order.iter_mut() {
                if *class <= 1 {
                    *cost = p.estimate(&cols, n, hits);
                }
            }
            // A term scan that would go before another is sampled for how many rows
            // it keeps (one that goes last already only gets costlier: not sampled,
            // as sampling 1,024 folder paths a morsel cost 4 ms over 10M rows).
            let last = order
                .iter()
                .filter(|o| o.0 == 1)
                .map(|o| o.1)
                .fold(0.0, f64::max);
            for (class, cost, p) in order.iter_mut() {
                if *class == 1 && *cost < last {
                    *cost += p.hit_cost(&cols, n);
                }
            }
            order.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        }
        for (_, _, p) in order {
            let Some(next) = p.select(&cols, &sel, hits)? else {
                continue;
            };
            if let Raw::Time { column, .. } = p {
                time_done.push(*column);
            }
            sel = next;
            if sel.is_empty() {
                return Ok(None);
            }
        }
        let rows = match sel {
            Sel::Rows(r) if r.len() < n => Some(UInt32Array::from(r)),
            _ => None,
        };
        let len = rows.as_ref().map_or(n, |r| r.len());
        let columns = batch
            .columns()
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let ty = self.schema[i].1;
                if !self.convert[i] {
                    return Ok(Column::Pruned(ty, len));
                }
                let a: ArrayRef = match &rows {
                    Some(r) => take(a.as_ref(), r, None)?,
                    None => a.clone(),
                };
                column_from_arrow(&a, ty).map_err(|e| {
                    Error::data(format!("column '{}': {}", self.schema[i].0, e.message))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut chunk = Chunk::new(columns, len);
        for (r, keep) in self.rest.iter().zip(&self.keep_after) {
            if chunk.len == 0 {
                break;
            }
            if time_range(r, &self.schema).is_some_and(|(c, _, _)| time_done.contains(&c)) {
                continue;
            }
            let m = eval_mask(r, &chunk)?;
            for (c, keep) in chunk.columns.iter_mut().zip(keep) {
                if !keep && !matches!(c, Column::Pruned(..)) {
                    *c = Column::Pruned(c.kql_type(), c.len());
                }
            }
            if m.true_count() != chunk.len {
                chunk = chunk.filter(&m)?;
            }
        }
        Ok(if chunk.len == 0 { None } else { Some(chunk) })
    }

    /// The tightest time window a raw time predicate imposes, for row-group pruning.
    pub fn time_window(&self) -> Option<crate::table::TimeRange> {
        self.raw.iter().find_map(|p| match p {
            Raw::Time { column, low, high } => Some(crate::table::TimeRange {
                column: *column,
                low: low.unwrap_or(i64::MIN),
                high: high.unwrap_or(i64::MAX),
            }),
            _ => None,
        })
    }

    /// The raw predicates as a row predicate a reader may apply while decoding (None when
    /// there are none). Predicates that cannot run on a column's layout keep every row.
    pub fn prefilter(&self) -> Option<crate::table::Prefilter> {
        Arc::new(SharedScan::new(vec![self.clone()])).prefilter()
    }

    /// The columns this filter reads or passes on.
    pub fn needed(&self) -> &[bool] {
        &self.needed
    }

    /// For `explain()`.
    pub fn describe(&self) -> String {
        self.raw
            .iter()
            .map(|p| describe_raw(p, &self.schema))
            .collect::<Vec<_>>()
            .join("; then ")
    }
}

fn describe_raw(p: &Raw, schema: &Schema) -> String {
    match p {
        Raw::Str {
            column,
            matcher,
            shared,
        } => format!(
            "{} on raw {}{}",
            describe_matcher(matcher),
            schema[*column].0,
            if shared.is_some() {
                " (hits from the table's shared scan)"
            } else {
                ""
            }
        ),
        Raw::Time { column, .. } => format!("time range on raw {}", schema[*column].0),
        Raw::Any(parts) => format!(
            "any of ({})",
            parts
                .iter()
                .map(|p| describe_raw(p, schema))
                .collect::<Vec<_>>()
                .join(" | ")
        ),
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
                "{neg}{op} {needles:?}{ci} [term scan of the buffer, or dictionary values once]"
            )
        }
        Kind::In(set) => format!("{neg}in ({} values){ci} [hash set]", set.len()),
        Kind::Regex(re) => format!("{neg}matches regex {:?} [regex per value]", re.as_str()),
        _ if m.tests_row_bytes() => {
            format!(
                "{neg}{:?}{ci} [row bytes, or dictionary values once]",
                m.kind
            )
        }
        other => format!("{neg}{other:?}{ci} [per value]"),
    }
}

/// A column and whether its term needles are case-sensitive.
type ColumnMode = (usize, bool);

/// Adds `matcher`'s needles to the scanner of its column and case mode (made when
/// missing): the keys a shared term predicate asks for.
fn register(
    slots: &mut Vec<(ColumnMode, Vec<(String, TermMatch)>)>,
    column: usize,
    matcher: &Matcher,
) -> Option<SharedTerm> {
    let (needles, mode, all) = matcher.term_needles()?;
    let key = (column, matcher.cs);
    let slot = match slots.iter().position(|(k, _)| *k == key) {
        Some(s) => s,
        None => {
            slots.push((key, Vec::new()));
            slots.len() - 1
        }
    };
    let list = &mut slots[slot].1;
    let first = list.len() as u32;
    list.extend(needles.iter().map(|n| (n.clone(), mode)));
    Some(SharedTerm {
        slot,
        keys: (first..list.len() as u32).collect(),
        all,
    })
}

/// Once every member has its starting predicate, the members' later term predicates on
/// a column whose scanner matches each distinct value once (more needles than the SIMD
/// pass takes) join that scanner too: a needle more there costs once per distinct
/// value, where the predicate alone tests every row its member still holds (`has
/// "Chrome Remote Desktop"` on the tenth of 10M rows whose company has "Google": 60 ms
/// alone, nothing as a key of the product column's memo). Scanners on the SIMD pass
/// take no more (each needle costs it a pass over the bytes).
fn share_the_rest(
    members: &mut [FusedFilter],
    slots: &mut Vec<(ColumnMode, Vec<(String, TermMatch)>)>,
) {
    let on_memo = |slots: &[(ColumnMode, Vec<(String, TermMatch)>)], column: usize, cs: bool| {
        slots.iter().any(|((c, mode), needles)| {
            *c == column && *mode == cs && termscan::matches_each_value(needles, cs)
        })
    };
    let joins = |slots: &[(ColumnMode, Vec<(String, TermMatch)>)], p: &Raw| match p {
        Raw::Str {
            column,
            matcher,
            shared: None,
        } => {
            !matcher.negated
                && matcher.term_needles().is_some()
                && on_memo(slots, *column, matcher.cs)
        }
        _ => false,
    };
    for f in members.iter_mut() {
        for p in f.raw.iter_mut() {
            // A disjunction's parts each join or not (`product has "x" or FileName =~
            // "y"`: the product part is a lookup, the file names are still tested).
            let parts: Vec<&mut Raw> = match p {
                Raw::Any(parts) => parts.iter_mut().collect(),
                other => vec![other],
            };
            for c in parts {
                if !joins(slots, c) {
                    continue;
                }
                if let Raw::Str {
                    column,
                    matcher,
                    shared,
                } = c
                {
                    *shared = register(slots, *column, matcher);
                }
            }
        }
        // Shared predicates first, in the order they were (the starting one leads).
        f.raw.sort_by_key(Raw::cost);
    }
}

/// The filters of many queries over one table, run in one pass: per column, one
/// scanner holds the needles of every filter that starts with a term predicate there.
pub struct SharedScan {
    scanners: Vec<(usize, TermScanner)>,
    members: Vec<FusedFilter>,
}

impl SharedScan {
    pub fn new(mut members: Vec<FusedFilter>) -> SharedScan {
        // How many filters could start on each (column, case mode).
        let term_columns = |f: &FusedFilter| -> Vec<(usize, bool)> {
            let mut v: Vec<(usize, bool)> = f
                .raw
                .iter()
                .filter_map(|p| match p {
                    Raw::Str {
                        column, matcher, ..
                    } if !matcher.negated && matcher.term_needles().is_some() => {
                        Some((*column, matcher.cs))
                    }
                    _ => None,
                })
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let mut popularity: HashMap<(usize, bool), usize> = HashMap::new();
        for f in &members {
            for c in term_columns(f) {
                *popularity.entry(c).or_default() += 1;
            }
        }
        // Per shared scanner: (column, case-sensitive) and its needles.
        let mut slots: Vec<(ColumnMode, Vec<(String, TermMatch)>)> = Vec::new();
        let shareable = |m: &Matcher| !m.negated && m.term_needles().is_some();
        for f in &mut members {
            // Start where most filters start: their needles share that column's pass. A
            // column no other filter starts on shares nothing; the filter then orders its
            // own conjuncts per batch (a narrower column may go first).
            let best = f
                .raw
                .iter()
                .enumerate()
                .filter_map(|(i, p)| match p {
                    Raw::Str {
                        column, matcher, ..
                    } if shareable(matcher) && popularity[&(*column, matcher.cs)] > 1 => {
                        Some((popularity[&(*column, matcher.cs)], std::cmp::Reverse(i)))
                    }
                    _ => None,
                })
                .max()
                .map(|(_, std::cmp::Reverse(i))| i)
                // Else a disjunction of term predicates: each joins its column's pass.
                .or_else(|| {
                    f.raw.iter().position(|p| {
                        matches!(p, Raw::Any(parts) if parts.iter().all(|c| matches!(
                            c, Raw::Str { matcher, .. } if shareable(matcher))))
                    })
                });
            let Some(i) = best else { continue };
            let mut p = f.raw.remove(i);
            match &mut p {
                Raw::Str {
                    column,
                    matcher,
                    shared,
                } => *shared = register(&mut slots, *column, matcher),
                Raw::Any(parts) => {
                    for c in parts {
                        if let Raw::Str {
                            column,
                            matcher,
                            shared,
                        } = c
                        {
                            *shared = register(&mut slots, *column, matcher);
                        }
                    }
                }
                Raw::Time { .. } => {}
            }
            f.raw.insert(0, p);
        }
        share_the_rest(&mut members, &mut slots);
        let scanners: Vec<Option<TermScanner>> = slots
            .iter()
            .map(|((_, cs), needles)| TermScanner::new(needles, *cs))
            .collect();
        if scanners.iter().any(Option::is_none) {
            // Cannot happen (term needles are non-empty); fall back to separate scans.
            fn unshare(p: &mut Raw) {
                match p {
                    Raw::Str { shared, .. } => *shared = None,
                    Raw::Any(parts) => parts.iter_mut().for_each(unshare),
                    Raw::Time { .. } => {}
                }
            }
            for f in &mut members {
                f.raw.iter_mut().for_each(unshare);
                f.raw.sort_by_key(Raw::cost);
            }
            return SharedScan {
                scanners: Vec::new(),
                members,
            };
        }
        SharedScan {
            scanners: slots
                .iter()
                .zip(scanners)
                .filter_map(|(((column, _), _), s)| Some((*column, s?)))
                .collect(),
            members,
        }
    }

    pub fn members(&self) -> &[FusedFilter] {
        &self.members
    }

    /// The rows any member may keep, as a predicate a reader may apply while decoding:
    /// the shared scanners run on the predicate columns, then each member's raw
    /// predicates. None when some member has none (it keeps every row).
    ///
    /// It comes in two stages, the second decoding its columns only for the rows the
    /// first kept (a row group the first keeps none of is not decoded further): first
    /// the string predicates on the columns several members read (or a shared scanner
    /// does); then all of each member's string predicates, which bring in columns a
    /// single member reads (`FolderPath` for the Level rule, after its `FileName
    /// startswith "level"`).
    /// A member's time ranges are left to the engine, which applies every member's
    /// whole filter again to the rows that come back and so decodes their timestamps
    /// anyway: deciding them here as well decoded the pages holding those rows twice
    /// (founding rule from Parquet, 10M rows, 1 thread: 79 -> 67.5 ms; the pack 378 ->
    /// 320 ms). A member with time ranges only (`where Timestamp > ago(1h)`) keeps them
    /// here, as its last stage: the other columns then decode only for its rows.
    pub fn prefilter(self: &Arc<Self>) -> Option<crate::table::Prefilter> {
        if self.members.iter().any(|m| m.raw.is_empty()) {
            return None;
        }
        let strings: Vec<Vec<Raw>> = self.members.iter().map(|m| without_time(&m.raw)).collect();
        // The last stage: each member's string predicates, or its time ranges when it
        // has nothing else.
        let last: Vec<Vec<Raw>> = self
            .members
            .iter()
            .zip(&strings)
            .map(|(m, s)| if s.is_empty() { &m.raw } else { s }.clone())
            .collect();
        let mut readers: HashMap<usize, usize> = HashMap::new();
        for raw in &strings {
            for c in raw_columns(raw) {
                *readers.entry(c).or_default() += 1;
            }
        }
        let common = |c: &usize| {
            readers.get(c).is_some_and(|&n| n > 1) || self.scanners.iter().any(|(s, _)| s == c)
        };
        let core: Vec<Vec<Raw>> = strings
            .iter()
            .map(|raw| {
                raw.iter()
                    .filter(|p| raw_columns(std::slice::from_ref(*p)).iter().all(common))
                    .cloned()
                    .collect()
            })
            .collect();
        // The first stage is worth its own pass when it tests less than the last and
        // every member has a test in it (else it keeps every row).
        let tests = |r: &[Vec<Raw>]| r.iter().map(Vec::len).sum::<usize>();
        let first = (tests(&core) < tests(&last) && core.iter().all(|raw| !raw.is_empty()))
            .then(|| Arc::new(self.stage(core, None)));
        Some(self.stage(last, first))
    }

    /// One stage of the prefilter: the rows where some member's `raw[i]` all pass.
    fn stage(
        self: &Arc<Self>,
        raw: Vec<Vec<Raw>>,
        first: Option<Arc<crate::table::Prefilter>>,
    ) -> crate::table::Prefilter {
        let mut columns: Vec<usize> = raw.iter().flat_map(|r| raw_columns(r)).collect();
        columns.sort_unstable();
        columns.dedup();
        let scan = self.clone();
        crate::table::Prefilter {
            columns,
            first,
            eval: Arc::new(move |arrays: &[Option<ArrayRef>], rows: usize| {
                let view = Cols {
                    columns: arrays.iter().map(|a| a.as_deref()).collect(),
                    rows,
                };
                let hits = scan
                    .scanners
                    .iter()
                    .map(|(column, sc)| {
                        Ok(KeyRows::new(
                            &sc.scan(view.column(*column)?)?,
                            sc.key_count(),
                        ))
                    })
                    .collect::<Result<Vec<KeyRows>>>()?;
                let mut keep = vec![0u64; rows.div_ceil(64)];
                for r in &raw {
                    mark(&mut keep, rows, &passing(r, &view, &hits)?);
                }
                Ok(mask_of(keep, rows))
            }),
        }
    }

    /// One batch for every member: the shared scans, then each member's filter.
    fn run(&self, batch: &RecordBatch) -> Result<Vec<Result<Option<Chunk>>>> {
        let hits = self
            .scanners
            .iter()
            .map(|(column, sc)| {
                let hits = sc.scan(batch.column(*column).as_ref())?;
                Ok(KeyRows::new(&hits, sc.key_count()))
            })
            .collect::<Result<Vec<KeyRows>>>()?;
        Ok(self.members.iter().map(|m| m.run(batch, &hits)).collect())
    }
}

/// Where a scan's batches come from.
pub enum Source<'a> {
    Stream(BatchStream<'a>),
    /// Scan tasks (row groups) decoded in parallel, `threads` at a time.
    Tasks(Vec<ScanTask<'a>>),
}

/// `f` over every morsel of `source` on `threads` threads, results in source order.
fn morsels<'a, T: Send + 'a>(
    source: Source<'a>,
    threads: usize,
    f: impl Fn(&RecordBatch) -> Result<T> + Send + Sync + 'a,
) -> Box<dyn Iterator<Item = Result<T>> + Send + 'a> {
    match source {
        Source::Stream(stream) => Box::new(in_order(stream, threads, f)),
        Source::Tasks(tasks) => Box::new(tasks_in_order(tasks, threads, f)),
    }
}

/// Runs one fused filter over a scan on `threads` threads, keeping batch order.
pub fn run_fused<'a>(
    source: Source<'a>,
    filter: FusedFilter,
    threads: usize,
) -> Box<dyn Iterator<Item = Result<Chunk>> + Send + 'a> {
    let filter = Arc::new(filter);
    let per_morsel = move |b: &RecordBatch| filter.run(b, &[]);
    Box::new(morsels(source, threads, per_morsel).filter_map(|r| r.transpose()))
}

/// Runs a shared scan over a batch stream or scan tasks; per member, its surviving
/// chunks in order (or its first error).
pub fn run_shared(
    source: Source<'_>,
    scan: Arc<SharedScan>,
    threads: usize,
) -> Vec<Result<Vec<Chunk>>> {
    let n = scan.members.len();
    let per_morsel = move |b: &RecordBatch| scan.run(b);
    let mut out: Vec<Result<Vec<Chunk>>> = (0..n).map(|_| Ok(Vec::new())).collect();
    for morsel in morsels(source, threads, per_morsel) {
        match morsel {
            Err(e) => {
                for o in out.iter_mut().filter(|o| o.is_ok()) {
                    *o = Err(e.clone());
                }
            }
            Ok(results) => {
                for (o, r) in out.iter_mut().zip(results) {
                    match (o.as_mut(), r) {
                        (Ok(chunks), Ok(Some(c))) => chunks.push(c),
                        (Ok(_), Err(e)) => *o = Err(e),
                        _ => {}
                    }
                }
            }
        }
    }
    out
}

/// `f` over the stream's morsels, `threads` at a time, results in stream order; a
/// stream error comes after the results of the batches before it, and ends the stream.
fn in_order<'a, T: Send + 'a>(
    stream: BatchStream<'a>,
    threads: usize,
    f: impl Fn(&RecordBatch) -> Result<T> + Send + Sync + 'a,
) -> impl Iterator<Item = Result<T>> + Send + 'a {
    let threads = threads.max(1);
    let mut stream = stream.flat_map(split_batch);
    let mut pending: std::collections::VecDeque<Result<T>> = std::collections::VecDeque::new();
    let mut done = false;
    std::iter::from_fn(move || loop {
        if let Some(r) = pending.pop_front() {
            return Some(r);
        }
        if done {
            return None;
        }
        let mut round: Vec<RecordBatch> = Vec::new();
        let mut failed = None;
        for _ in 0..threads * ROUND_PER_THREAD {
            match stream.next() {
                Some(Ok(b)) => round.push(b),
                Some(Err(e)) => {
                    failed = Some(e);
                    done = true;
                    break;
                }
                None => {
                    done = true;
                    break;
                }
            }
        }
        pending.extend(process_round(&round, &f, threads));
        if let Some(e) = failed {
            pending.push_back(Err(e));
        }
    })
}

/// `f` over the morsels of scan tasks, `threads` tasks at a time (each decoded on its
/// own thread), results in task order; an error ends the stream.
fn tasks_in_order<'a, T: Send + 'a>(
    tasks: Vec<ScanTask<'a>>,
    threads: usize,
    f: impl Fn(&RecordBatch) -> Result<T> + Send + Sync + 'a,
) -> impl Iterator<Item = Result<T>> + Send + 'a {
    let mut tasks: std::collections::VecDeque<ScanTask<'a>> = tasks.into();
    let mut pending: std::collections::VecDeque<Result<T>> = std::collections::VecDeque::new();
    let mut failed = false;
    std::iter::from_fn(move || loop {
        if let Some(r) = pending.pop_front() {
            return Some(r);
        }
        if failed || tasks.is_empty() {
            return None;
        }
        let round: Vec<ScanTask<'a>> = (0..threads.max(1) * TASKS_PER_THREAD)
            .filter_map(|_| tasks.pop_front())
            .collect();
        // Each task runs once, on whichever thread takes its slot.
        let slots: Vec<std::sync::Mutex<Option<ScanTask<'a>>>> = round
            .into_iter()
            .map(|t| std::sync::Mutex::new(Some(t)))
            .collect();
        let outs = parallel_map(slots.len(), threads, |i| -> Result<Vec<T>> {
            let task = slots[i]
                .lock()
                .ok()
                .and_then(|mut t| t.take())
                .ok_or_else(|| Error::internal("a scan task ran twice"))?;
            let mut out = Vec::new();
            for b in task()? {
                for m in split_batch(Ok(b)) {
                    out.push(f(&m?)?);
                }
            }
            Ok(out)
        });
        for o in outs {
            match o {
                Ok(v) => pending.extend(v.into_iter().map(Ok)),
                Err(e) => {
                    pending.push_back(Err(e));
                    failed = true;
                    break;
                }
            }
        }
    })
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

fn process_round<T: Send>(
    round: &[RecordBatch],
    f: &(impl Fn(&RecordBatch) -> Result<T> + Sync),
    threads: usize,
) -> Vec<Result<T>> {
    parallel_map(round.len(), threads, |i| f(&round[i]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    /// A prefilter's mask: the rows of every member's selection, the last word's bits
    /// past the rows clear (a batch of any length, all rows or some).
    #[test]
    fn masks_hold_exactly_the_marked_rows() {
        for rows in [0usize, 1, 63, 64, 65, 130] {
            let picks: Vec<u32> = (0..rows as u32).filter(|r| r % 3 == 1).collect();
            let odd: Vec<u32> = (0..rows as u32).filter(|r| r % 2 == 1).collect();
            let mut keep = vec![0u64; rows.div_ceil(64)];
            mark(&mut keep, rows, &Sel::Rows(picks.clone()));
            mark(&mut keep, rows, &Sel::Rows(odd.clone()));
            let m = mask_of(keep, rows);
            assert_eq!(m.len(), rows);
            let want: Vec<u32> = (0..rows as u32)
                .filter(|r| picks.contains(r) || odd.contains(r))
                .collect();
            assert_eq!(mask_rows(&m), want, "{rows} rows");
            let mut keep = vec![0u64; rows.div_ceil(64)];
            mark(&mut keep, rows, &Sel::All);
            let m = mask_of(keep.clone(), rows);
            assert_eq!(m.true_count(), rows, "{rows} rows, all");
            assert!(keep.iter().map(|w| w.count_ones() as usize).sum::<usize>() == rows);
        }
    }

    /// A morsel is a slice of its chunk: its estimate counts its own rows' bytes, as
    /// that of the same rows on their own (the chunk's whole buffer once made later
    /// morsels look costlier), and a needle in every row it samples costs more than
    /// the same scan finding nothing.
    #[test]
    fn estimates_count_the_batch_rows() {
        let column: Vec<String> = (0..4000)
            .map(|i| format!("Google LLC {}", "x".repeat(i % 40)))
            .collect();
        let whole = StringArray::from(column.clone());
        let slice = whole.slice(3000, 1000);
        let alone = StringArray::from(column[3000..].to_vec());
        let matcher = |needle: &str| {
            Matcher::new(
                Kind::Term {
                    needles: vec![needle.to_string()],
                    mode: TermMatch::Whole,
                    all: false,
                },
                false,
                false,
            )
        };
        let raw = |needle: &str| Raw::Str {
            column: 0,
            matcher: matcher(needle),
            shared: None,
        };
        fn cols(a: &StringArray) -> Cols<'_> {
            Cols {
                columns: vec![Some(a as &dyn Array)],
                rows: a.len(),
            }
        }
        let (s, a) = (cols(&slice), cols(&alone));
        let google = raw("google");
        assert_eq!(
            google.estimate(&s, 1000, &[]),
            google.estimate(&a, 1000, &[])
        );
        assert!(google.estimate(&s, 1000, &[]) < raw("google").estimate(&cols(&whole), 4000, &[]));
        assert_eq!(raw("zzz").hit_cost(&s, 1000), 0.0);
        assert_eq!(google.hit_cost(&s, 1000), 1000.0 * 35.0);
    }
}
