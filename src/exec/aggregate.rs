//! Hash aggregation for `summarize` and `distinct`, with Kusto's aggregate rules
//! (SEMANTICS.md §3.2): count counts rows (nulls included), min/max/sum skip nulls,
//! avg of nothing is NaN, make_set keeps "" and drops nulls, capped in size; a null key
//! is a group of its own; no `by` and no rows still gives one row of defaults.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, BooleanArray};

use super::eval::{compare, eval, eval_bool};
use super::{json_to_value, value_to_json};
use crate::column::{Chunk, Column};
use crate::error::Result;
use crate::kernels::distinct::row_ids;
use crate::plan::{AggFunc, AggSpec, BExpr};
use crate::types::{KqlType, Value};

/// Maps and sets keyed by group keys and values: SipHash (the std default) was a third
/// of `summarize count() by ReportId` (a million groups).
type Map<K, V> = HashMap<K, V, ahash::RandomState>;
type Set<K> = HashSet<K, ahash::RandomState>;

/// A hashable image of a group-key value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyPart {
    Null,
    Bool(bool),
    Int(i64),
    Real(u64),
    Str(String),
    Guid(u128),
    Json(String),
}

pub fn key_part(v: &Value) -> KeyPart {
    match v {
        Value::Null => KeyPart::Null,
        Value::Bool(b) => KeyPart::Bool(*b),
        Value::Int(i) => KeyPart::Int(*i as i64),
        Value::Long(i) | Value::DateTime(i) | Value::TimeSpan(i) => KeyPart::Int(*i),
        Value::Real(r) => KeyPart::Real(if r.is_nan() {
            f64::NAN.to_bits()
        } else if *r == 0.0 {
            0
        } else {
            r.to_bits()
        }),
        Value::String(s) => KeyPart::Str(s.clone()),
        Value::Guid(g) => KeyPart::Guid(*g),
        Value::Dynamic(j) => KeyPart::Json(j.to_string()),
    }
}

#[derive(Clone)]
enum State {
    Count(i64),
    SumLong(i64),
    SumReal(f64),
    Avg(f64, i64),
    AvgLong(i64, i64),
    MinMax(Option<Value>, bool),
    Distinct(Set<KeyPart>),
    Set(Set<String>, Vec<serde_json::Value>),
    List(Vec<serde_json::Value>),
    Arg(Option<Value>, Vec<Value>, bool),
    Any(Option<Vec<Value>>, bool),
}

fn new_state(spec: &AggSpec) -> State {
    match spec.func {
        AggFunc::Count | AggFunc::CountIf => State::Count(0),
        AggFunc::Sum | AggFunc::SumIf => match spec.outputs[0].1 {
            KqlType::Real => State::SumReal(0.0),
            _ => State::SumLong(0),
        },
        AggFunc::Avg | AggFunc::AvgIf => match spec.args[0].ty {
            // Kusto sums integers as longs (wrapping), then divides (EMU-K2S).
            KqlType::Int | KqlType::Long => State::AvgLong(0, 0),
            _ => State::Avg(0.0, 0),
        },
        AggFunc::Min | AggFunc::Max => State::MinMax(None, false),
        AggFunc::DCount | AggFunc::DCountIf => State::Distinct(Set::default()),
        AggFunc::MakeSet { .. } => State::Set(Set::default(), Vec::new()),
        AggFunc::MakeList { .. } => State::List(Vec::new()),
        AggFunc::ArgMax | AggFunc::ArgMin => {
            State::Arg(None, vec![Value::Null; spec.outputs.len()], false)
        }
        AggFunc::TakeAny => State::Any(None, false),
    }
}

fn has_pred(f: AggFunc) -> bool {
    matches!(
        f,
        AggFunc::CountIf
            | AggFunc::DCountIf
            | AggFunc::SumIf
            | AggFunc::AvgIf
            | AggFunc::MakeSet { if_: true }
            | AggFunc::MakeList { if_: true }
    )
}

fn update(
    state: &mut State,
    spec: &AggSpec,
    args: &[Column],
    pred: Option<&arrow::array::BooleanArray>,
    i: usize,
) {
    if let Some(p) = pred {
        if !(p.is_valid(i) && p.value(i)) {
            return;
        }
    }
    let arg = |k: usize| args.get(k).map_or(Value::Null, |c| c.get(i));
    match state {
        State::Count(n) => *n += 1,
        State::SumLong(s) => {
            let v = arg(0);
            if let Some(x) = v.as_i64().or(match v {
                Value::TimeSpan(t) => Some(t),
                Value::Bool(b) => Some(b as i64),
                _ => None,
            }) {
                *s = s.wrapping_add(x);
            }
        }
        State::SumReal(s) => {
            let v = arg(0);
            let v = if let Value::Dynamic(j) = &v {
                json_to_value(j)
            } else {
                v
            };
            if let Some(x) = v.as_f64() {
                *s += x;
            }
        }
        State::Avg(s, n) => {
            let v = arg(0);
            let v = if let Value::Dynamic(j) = &v {
                json_to_value(j)
            } else {
                v
            };
            if let Some(x) = v.as_f64() {
                *s += x;
                *n += 1;
            }
        }
        State::AvgLong(s, n) => {
            if let Some(x) = arg(0).as_i64() {
                *s = s.wrapping_add(x);
                *n += 1;
            }
        }
        State::MinMax(best, nan) => {
            let v = arg(0);
            if v.is_null() {
                return;
            }
            if matches!(v, Value::Real(r) if r.is_nan()) {
                *nan = true;
                return;
            }
            if min_max_better(&v, best.as_ref(), spec.func == AggFunc::Max) {
                *best = Some(v);
            }
        }
        State::Distinct(set) => {
            let v = arg(0);
            if !v.is_null() {
                set.insert(key_part(&v));
            }
        }
        State::Set(seen, items) => {
            let mut add = |j| set_add(seen, items, j, spec.max_size);
            match arg(0) {
                Value::Null => {}
                // A dynamic array's elements are added, one level deep (DOCS make-set example).
                Value::Dynamic(serde_json::Value::Array(a)) => a.into_iter().for_each(&mut add),
                v => add(value_to_json(&v)),
            }
        }
        State::List(items) => match arg(0) {
            Value::Null => {}
            Value::Dynamic(serde_json::Value::Array(a)) => {
                for x in a {
                    if items.len() < spec.max_size {
                        items.push(x);
                    }
                }
            }
            v => {
                if items.len() < spec.max_size {
                    items.push(value_to_json(&v));
                }
            }
        },
        State::Arg(best, row, found) => {
            let v = arg(0);
            let is_max = spec.func == AggFunc::ArgMax;
            let take = if v.is_null() {
                // Nulls are ignored unless every value is null: then the first row is returned.
                best.is_none() && !*found && row.iter().all(Value::is_null)
            } else {
                match best {
                    None => true,
                    Some(b) => arg_better(&v, b, is_max),
                }
            };
            if take {
                if !v.is_null() {
                    *found = true;
                    *best = Some(v.clone());
                }
                *row = (0..args.len()).map(arg).collect();
            }
        }
        State::Any(row, good) => {
            if *good {
                return;
            }
            let vals: Vec<Value> = (0..args.len()).map(arg).collect();
            // A single column reference prefers a non-null, non-empty value.
            let ok = spec.outputs.len() != 1
                || !matches!(&vals[0], Value::Null)
                    && !matches!(&vals[0], Value::String(s) if s.is_empty());
            if row.is_none() || ok {
                *row = Some(vals);
                *good = ok;
            }
        }
    }
}

/// min/max: whether `v` replaces the best so far (strictly better: ties keep the first).
fn min_max_better(v: &Value, best: Option<&Value>, is_max: bool) -> bool {
    best.is_none_or(|b| compare(v, b).is_some_and(|o| if is_max { o.is_gt() } else { o.is_lt() }))
}

/// make_set: adds `j` unless it is in the set already or the set is full.
fn set_add(
    seen: &mut Set<String>,
    items: &mut Vec<serde_json::Value>,
    j: serde_json::Value,
    max: usize,
) {
    if items.len() < max && seen.insert(j.to_string()) {
        items.push(j);
    }
}

/// arg_max/arg_min ordering: NaN sorts above every number (EMU-K2S), ties keep the first.
fn arg_better(v: &Value, best: &Value, is_max: bool) -> bool {
    let nan = |x: &Value| matches!(x, Value::Real(r) if r.is_nan());
    match (nan(v), nan(best)) {
        (true, true) => false,
        (true, false) => is_max,
        (false, true) => !is_max,
        _ => compare(v, best).is_some_and(|o| if is_max { o.is_gt() } else { o.is_lt() }),
    }
}

fn finish(state: State, spec: &AggSpec) -> Vec<Value> {
    let ty = spec.outputs[0].1;
    match state {
        State::Count(n) => vec![Value::Long(n)],
        State::SumLong(s) => vec![if ty == KqlType::TimeSpan {
            Value::TimeSpan(s)
        } else {
            Value::Long(s)
        }],
        State::SumReal(s) => vec![Value::Real(s)],
        State::Avg(s, n) => vec![Value::Real(if n == 0 { f64::NAN } else { s / n as f64 })],
        State::AvgLong(s, n) => vec![Value::Real(if n == 0 {
            f64::NAN
        } else {
            s as f64 / n as f64
        })],
        State::MinMax(best, nan) => vec![if nan {
            Value::Real(f64::NAN)
        } else {
            best.unwrap_or(Value::Null)
        }],
        State::Distinct(set) => vec![Value::Long(set.len() as i64)],
        State::Set(_, items) | State::List(items) => {
            vec![Value::Dynamic(serde_json::Value::Array(items))]
        }
        State::Arg(_, row, _) => row,
        State::Any(row, _) => row.unwrap_or_else(|| vec![Value::Null; spec.outputs.len()]),
    }
}

/// Each row's group in one chunk. The key columns are coded column by column (a string
/// column by its distinct values, `kernels::distinct::row_ids`; any other by the
/// hashable image of its values), and `group_of` (the groups' index across chunks) is
/// asked once per distinct combination of codes instead of once per row: a row-by-row
/// key of copied strings cost `summarize count() by Company` 0.8 s on 10M rows.
fn row_groups(
    key_cols: &[Column],
    len: usize,
    mut group_of: impl FnMut(Vec<Value>) -> usize,
) -> Vec<usize> {
    let coded: Vec<(Vec<u32>, Vec<usize>)> = key_cols.iter().map(|c| codes(c, len)).collect();
    let key_at = |r: usize| key_cols.iter().map(|c| c.get(r)).collect::<Vec<Value>>();
    match coded.as_slice() {
        [] => vec![if len == 0 { 0 } else { group_of(Vec::new()) }; len],
        [(codes, first)] => {
            let group: Vec<usize> = first.iter().map(|&r| group_of(key_at(r))).collect();
            codes.iter().map(|&c| group[c as usize]).collect()
        }
        _ => {
            // Mixed-radix combination of the codes; a dense table of combinations when
            // small, else a hash map.
            let radix: Vec<usize> = coded.iter().map(|(_, first)| first.len()).collect();
            let combos = radix.iter().try_fold(1usize, |p, &r| p.checked_mul(r));
            let combo = |r: usize| {
                coded
                    .iter()
                    .zip(&radix)
                    .fold(0usize, |acc, ((codes, _), &n)| acc * n + codes[r] as usize)
            };
            match combos {
                Some(n) if n <= 4 * len.max(1024) => {
                    let mut table = vec![usize::MAX; n];
                    (0..len)
                        .map(|r| {
                            let slot = &mut table[combo(r)];
                            if *slot == usize::MAX {
                                *slot = group_of(key_at(r));
                            }
                            *slot
                        })
                        .collect()
                }
                Some(_) => {
                    let mut seen: Map<usize, usize> = Map::default();
                    (0..len)
                        .map(|r| *seen.entry(combo(r)).or_insert_with(|| group_of(key_at(r))))
                        .collect()
                }
                None => {
                    let mut seen: Map<Vec<u32>, usize> = Map::default();
                    (0..len)
                        .map(|r| {
                            let k = coded.iter().map(|(codes, _)| codes[r]).collect();
                            *seen.entry(k).or_insert_with(|| group_of(key_at(r)))
                        })
                        .collect()
                }
            }
        }
    }
}

/// The aggregates that fold a chunk group by group before touching the states, when
/// there are no more groups than rows. Each gives exactly what `update` (the row rule)
/// gives over the chunk's rows in order, but reads the Arrow values in place:
/// - `count()`/`countif()` add up their rows;
/// - `sum`/`avg` (and `sumif`/`avgif`) of a long, int, real or timespan column add each
///   group's values in row order into dense running values (wrapping longs, reals in the
///   same order as row by row, so the same bits);
/// - `min`/`max` of a long, int, real, datetime or timespan column and `arg_max`/`arg_min`
///   by one find each group's first best row (strictly better replaces) and hand only
///   that row to `update`; a real NaN is handed over once a group (min/max flag it), and
///   `arg_max`'s rows with a null value only for the groups with no value in the chunk
///   (while every value is null, the row rule keeps the first row);
/// - `dcount` and `make_set` (and their -if forms) of a string column hand `update` each
///   group's first row of each distinct value, in row order (so a set keeps its
///   first-seen order and its size cap cuts at the same value).
///
/// Returns false, having done nothing, for any other aggregate. (Row by row, count and
/// min by company and file name spent 0.2 s of 0.38 on 10M rows building and comparing
/// `Value`s; `arg_max(Timestamp, FileName) by DeviceName` over time-ordered rows copied
/// a row of values at every row, 0.59 s.)
fn fold_by_group(
    spec: &AggSpec,
    args: &[Column],
    pred: Option<&BooleanArray>,
    groups: &[usize],
    states: &mut [Vec<State>],
    k: usize,
) -> bool {
    let ngroups = states.len();
    match (spec.func, args.first()) {
        (AggFunc::Count | AggFunc::CountIf, _) => fold_into(
            states,
            k,
            |s| match s {
                State::Count(n) => Some(*n),
                _ => None,
            },
            State::Count,
            |acc| match pred {
                // The common case in a loop of its own (through `taken`, ~4 ms more over
                // 10M rows).
                None => groups.iter().for_each(|&g| acc[g] += 1),
                Some(_) => taken(groups, pred).for_each(|(_, g)| acc[g] += 1),
            },
        ),
        (AggFunc::Sum | AggFunc::SumIf | AggFunc::Avg | AggFunc::AvgIf, Some(c)) => {
            fold_sums(c, pred, groups, states, k)
        }
        (AggFunc::Min | AggFunc::Max, Some(c)) => {
            let is_max = spec.func == AggFunc::Max;
            let best = match (best_int_rows(c, groups, ngroups, is_max), c) {
                (Some(best), _) => best,
                (None, Column::Real(a)) => {
                    let v = a.values();
                    let mut flagged = vec![false; ngroups];
                    for (i, &g) in groups.iter().enumerate() {
                        if a.is_valid(i) && v[i].is_nan() && !flagged[g] {
                            flagged[g] = true;
                            update(&mut states[g][k], spec, args, None, i);
                        }
                    }
                    let number = |i: usize| a.is_valid(i) && !v[i].is_nan();
                    best_rows(groups, ngroups, number, |i, b| {
                        min_max_better(&Value::Real(v[i]), Some(&Value::Real(v[b])), is_max)
                    })
                }
                _ => return false,
            };
            update_rows(&best, states, spec, args, k);
            true
        }
        (AggFunc::ArgMax | AggFunc::ArgMin, Some(c)) => {
            let is_max = spec.func == AggFunc::ArgMax;
            let best = match (best_int_rows(c, groups, ngroups, is_max), c) {
                (Some(best), _) => best,
                (None, Column::Real(a)) => {
                    let v = a.values();
                    best_rows(
                        groups,
                        ngroups,
                        |i| a.is_valid(i),
                        |i, b| arg_better(&Value::Real(v[i]), &Value::Real(v[b]), is_max),
                    )
                }
                _ => return false,
            };
            update_rows(&best, states, spec, args, k);
            for (i, &g) in groups.iter().enumerate() {
                if best[g] == usize::MAX && c.is_null(i) {
                    update(&mut states[g][k], spec, args, None, i);
                }
            }
            true
        }
        (
            AggFunc::DCount | AggFunc::DCountIf | AggFunc::MakeSet { .. },
            Some(Column::String(a)),
        ) => {
            // Each (group, value) pair of the chunk once: a bit per pair when the pairs
            // are few, else a set of them.
            let (codes, first) = row_ids(a);
            let values = first.len();
            let pairs = ngroups.saturating_mul(values);
            let mut bits = vec![
                0u64;
                if pairs <= 1 << 26 {
                    pairs.div_ceil(64)
                } else {
                    0
                }
            ];
            let mut set: Set<(usize, u32)> = Set::default();
            for (i, g) in taken(groups, pred) {
                let c = codes[i];
                let new = if bits.is_empty() {
                    set.insert((g, c))
                } else {
                    let bit = g * values + c as usize;
                    let word = &mut bits[bit / 64];
                    let new = *word & (1 << (bit % 64)) == 0;
                    *word |= 1 << (bit % 64);
                    new
                };
                if new {
                    update(&mut states[g][k], spec, args, None, i);
                }
            }
            true
        }
        _ => false,
    }
}

/// `(row, group)` for each row of the chunk an aggregate takes (where its predicate, if
/// it has one, is true), in row order. (As a function taking a closure a row, the
/// closure was not inlined: `dcount(DeviceName)` over 10M rows 70 -> 91 ms.)
fn taken<'a>(
    groups: &'a [usize],
    pred: Option<&'a BooleanArray>,
) -> impl Iterator<Item = (usize, usize)> + 'a {
    let take = move |i: usize| pred.is_none_or(|p| p.is_valid(i) && p.value(i));
    groups
        .iter()
        .enumerate()
        .filter(move |&(i, _)| take(i))
        .map(|(i, &g)| (i, g))
}

/// Each group's first row among `candidate`s that no later row is `better` than
/// (`usize::MAX` for a group with none).
fn best_rows(
    groups: &[usize],
    ngroups: usize,
    candidate: impl Fn(usize) -> bool,
    better: impl Fn(usize, usize) -> bool,
) -> Vec<usize> {
    let mut best = vec![usize::MAX; ngroups];
    for (i, &g) in groups.iter().enumerate() {
        if candidate(i) && (best[g] == usize::MAX || better(i, best[g])) {
            best[g] = i;
        }
    }
    best
}

/// Hands each group's row in `best` (if it has one) to the row rule.
fn update_rows(
    best: &[usize],
    states: &mut [Vec<State>],
    spec: &AggSpec,
    args: &[Column],
    k: usize,
) {
    for (g, &i) in best.iter().enumerate() {
        if i != usize::MAX {
            update(&mut states[g][k], spec, args, None, i);
        }
    }
}

/// Each group's first best row (largest for `is_max`, else smallest) of a column of
/// integers (long, int, datetime, timespan); none for another column.
fn best_int_rows(c: &Column, groups: &[usize], ngroups: usize, is_max: bool) -> Option<Vec<usize>> {
    let better = |o: std::cmp::Ordering| if is_max { o.is_gt() } else { o.is_lt() };
    Some(match c {
        Column::Long(a) | Column::DateTime(a) | Column::TimeSpan(a) => {
            let v = a.values();
            best_rows(
                groups,
                ngroups,
                |i| a.is_valid(i),
                |i, b| better(v[i].cmp(&v[b])),
            )
        }
        Column::Int(a) => {
            let v = a.values();
            best_rows(
                groups,
                ngroups,
                |i| a.is_valid(i),
                |i, b| better(v[i].cmp(&v[b])),
            )
        }
        _ => return None,
    })
}

/// Takes aggregate `k`'s running value out of every group's state (`get`; none if a
/// state is of another kind, and then nothing is done), lets `fold` update them densely,
/// and puts them back (`put`).
fn fold_into<A: Copy>(
    states: &mut [Vec<State>],
    k: usize,
    get: impl Fn(&State) -> Option<A>,
    put: impl Fn(A) -> State,
    fold: impl FnOnce(&mut [A]),
) -> bool {
    let Some(mut acc) = states
        .iter()
        .map(|s| get(&s[k]))
        .collect::<Option<Vec<A>>>()
    else {
        return false;
    };
    fold(&mut acc);
    for (s, a) in states.iter_mut().zip(acc) {
        s[k] = put(a);
    }
    true
}

/// A sum's or average's running value: a real sum, a long sum, a count.
type Running = (f64, i64, i64);

/// `fold_into` of running values, `add` taking each row of the chunk the aggregate takes.
fn fold_rows(
    states: &mut [Vec<State>],
    k: usize,
    groups: &[usize],
    pred: Option<&BooleanArray>,
    get: &dyn Fn(&State) -> Option<Running>,
    put: &dyn Fn(Running) -> State,
    add: impl Fn(&mut Running, usize),
) -> bool {
    fold_into(states, k, get, put, |acc| {
        taken(groups, pred).for_each(|(i, g)| add(&mut acc[g], i))
    })
}

/// sum/avg and their -if forms over a number column, as `update` adds: longs, ints and
/// timespans into a long sum (wrapping), numbers into a real sum or average, longs and
/// ints into a long average (wrapping). Other pairs are left to the row rule.
fn fold_sums(
    c: &Column,
    pred: Option<&BooleanArray>,
    groups: &[usize],
    states: &mut [Vec<State>],
    k: usize,
) -> bool {
    // The running value's kind (the first state's, as all are alike).
    let Some(first) = states.first().map(|s| match s[k] {
        State::SumLong(_) => 0,
        State::SumReal(_) => 1,
        State::Avg(..) => 2,
        State::AvgLong(..) => 3,
        _ => 4,
    }) else {
        return false;
    };
    // A column's non-null values as longs or reals, by row.
    let long_of = |i: usize| -> Option<i64> {
        match c {
            Column::Long(a) | Column::TimeSpan(a) => a.is_valid(i).then(|| a.value(i)),
            Column::Int(a) => a.is_valid(i).then(|| a.value(i) as i64),
            _ => None,
        }
    };
    let real_of = |i: usize| -> Option<f64> {
        match c {
            Column::Real(a) => a.is_valid(i).then(|| a.value(i)),
            Column::Long(a) => a.is_valid(i).then(|| a.value(i) as f64),
            Column::Int(a) => a.is_valid(i).then(|| a.value(i) as f64),
            _ => None,
        }
    };
    match (first, c) {
        (0, Column::Long(_) | Column::Int(_) | Column::TimeSpan(_)) => fold_rows(
            states,
            k,
            groups,
            pred,
            &|s| match s {
                State::SumLong(x) => Some((0.0, *x, 0)),
                _ => None,
            },
            &|(_, x, _)| State::SumLong(x),
            |a: &mut Running, i: usize| {
                if let Some(x) = long_of(i) {
                    a.1 = a.1.wrapping_add(x);
                }
            },
        ),
        (1, Column::Real(_) | Column::Long(_) | Column::Int(_)) => fold_rows(
            states,
            k,
            groups,
            pred,
            &|s| match s {
                State::SumReal(x) => Some((*x, 0, 0)),
                _ => None,
            },
            &|(x, _, _)| State::SumReal(x),
            |a: &mut Running, i: usize| {
                if let Some(x) = real_of(i) {
                    a.0 += x;
                }
            },
        ),
        (2, Column::Real(_) | Column::Long(_) | Column::Int(_)) => fold_rows(
            states,
            k,
            groups,
            pred,
            &|s| match s {
                State::Avg(x, n) => Some((*x, 0, *n)),
                _ => None,
            },
            &|(x, _, n)| State::Avg(x, n),
            |a: &mut Running, i: usize| {
                if let Some(x) = real_of(i) {
                    a.0 += x;
                    a.2 += 1;
                }
            },
        ),
        (3, Column::Long(_) | Column::Int(_)) => fold_rows(
            states,
            k,
            groups,
            pred,
            &|s| match s {
                State::AvgLong(x, n) => Some((0.0, *x, *n)),
                _ => None,
            },
            &|(_, x, n)| State::AvgLong(x, n),
            |a: &mut Running, i: usize| {
                if let Some(x) = long_of(i) {
                    a.1 = a.1.wrapping_add(x);
                    a.2 += 1;
                }
            },
        ),
        _ => false,
    }
}

/// A key column's code for each row (dense, equal exactly when the group keys are)
/// and the first row of each code.
fn codes(c: &Column, len: usize) -> (Vec<u32>, Vec<usize>) {
    match c {
        Column::String(a) => return row_ids(a),
        Column::Long(a) | Column::DateTime(a) | Column::TimeSpan(a) => return int_codes(a),
        // false, true, null (`extend b = x > y | summarize by b`: 275 ms over 10M rows
        // through the generic path).
        Column::Bool(a) => {
            let class = |r: usize| if a.is_null(r) { 2 } else { a.value(r) as usize };
            let mut code = [u32::MAX; 3];
            let mut first = Vec::new();
            let codes = (0..len)
                .map(|r| {
                    let c = &mut code[class(r)];
                    if *c == u32::MAX {
                        *c = first.len() as u32;
                        first.push(r);
                    }
                    *c
                })
                .collect();
            return (codes, first);
        }
        _ => {}
    }
    let mut seen: Map<KeyPart, u32> = Map::default();
    let mut first = Vec::new();
    let codes = (0..len)
        .map(|r| {
            *seen.entry(key_part(&c.get(r))).or_insert_with(|| {
                first.push(r);
                first.len() as u32 - 1
            })
        })
        .collect();
    (codes, first)
}

/// [`codes`] of a 64-bit integer column (longs, datetimes, timespans: `by bin(Timestamp,
/// 1h)`), by the integers themselves, nulls their own code: the generic path built a
/// `Value` and a `KeyPart` per row and hashed it with SipHash. Runs of equal values (bins
/// of time-ordered rows) skip the table.
fn int_codes(a: &arrow::array::Int64Array) -> (Vec<u32>, Vec<usize>) {
    /// A multiplicative hash; the fold in `finish` brings the product's well-mixed high
    /// bits down to the low bits the table indexes by (day bins in ticks end in zeros).
    #[derive(Default)]
    struct Mix(u64);
    impl std::hash::Hasher for Mix {
        fn finish(&self) -> u64 {
            self.0 ^ (self.0 >> 32)
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.write_u64(u64::from(*b));
            }
        }
        fn write_u64(&mut self, v: u64) {
            self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        fn write_i64(&mut self, v: i64) {
            self.write_u64(v as u64);
        }
    }
    let mut seen: HashMap<Option<i64>, u32, std::hash::BuildHasherDefault<Mix>> =
        HashMap::default();
    let mut first = Vec::new();
    let mut codes = Vec::with_capacity(a.len());
    let mut last: Option<(Option<i64>, u32)> = None;
    for (r, v) in a.iter().enumerate() {
        let code = match last {
            Some((lv, lc)) if lv == v => lc,
            _ => {
                let code = *seen.entry(v).or_insert_with(|| {
                    first.push(r);
                    first.len() as u32 - 1
                });
                last = Some((v, code));
                code
            }
        };
        codes.push(code);
    }
    (codes, first)
}

/// Folds `later` (an aggregate's state over rows that come after `earlier`'s) into
/// `earlier`, giving what `update` would give over both runs of rows in order: counts
/// and sums add (a real sum is the sum of the two, so it may differ in its last bits
/// from one running sum), a min/max or arg_max/arg_min is replaced only by a strictly
/// better one, sets and lists take the later items they have room for, in order.
fn merge(earlier: &mut State, later: State, spec: &AggSpec) {
    match (earlier, later) {
        (State::Count(a), State::Count(b)) => *a += b,
        (State::SumLong(a), State::SumLong(b)) => *a = a.wrapping_add(b),
        (State::SumReal(a), State::SumReal(b)) => *a += b,
        (State::Avg(a, n), State::Avg(b, m)) => {
            *a += b;
            *n += m;
        }
        (State::AvgLong(a, n), State::AvgLong(b, m)) => {
            *a = a.wrapping_add(b);
            *n += m;
        }
        (State::MinMax(a, nan), State::MinMax(b, later_nan)) => {
            *nan |= later_nan;
            if let Some(b) = b {
                if min_max_better(&b, a.as_ref(), spec.func == AggFunc::Max) {
                    *a = Some(b);
                }
            }
        }
        (State::Distinct(a), State::Distinct(b)) => a.extend(b),
        (State::Set(seen, items), State::Set(_, later_items)) => {
            // The first `max_size` distinct values of both runs are among each run's
            // own first `max_size`.
            for j in later_items {
                set_add(seen, items, j, spec.max_size);
            }
        }
        (State::List(items), State::List(later_items)) => {
            let room = spec.max_size.saturating_sub(items.len());
            items.extend(later_items.into_iter().take(room));
        }
        (earlier @ State::Arg(..), later @ State::Arg(..)) => {
            let (State::Arg(a, row, found), State::Arg(b, _, later_found)) = (&*earlier, &later)
            else {
                return;
            };
            let take = if *later_found {
                // A value beats no value; between values, only a strictly better one.
                match (a, b) {
                    (Some(a), Some(b)) if *found => arg_better(b, a, spec.func == AggFunc::ArgMax),
                    _ => true,
                }
            } else {
                // No value in the later rows: they stand in only while every earlier
                // output is null (the row rule keeps the first row that is not).
                !*found && row.iter().all(Value::is_null)
            };
            if take {
                *earlier = later;
            }
        }
        (earlier @ State::Any(..), later @ State::Any(..)) => {
            let (State::Any(row, good), State::Any(later_row, later_good)) = (&*earlier, &later)
            else {
                return;
            };
            if !*good && later_row.is_some() && (*later_good || row.is_none()) {
                *earlier = later;
            }
        }
        _ => {}
    }
}

/// The groups of a summarize so far: each key's first-seen row of key values and its
/// aggregates' states, in first-seen order.
#[derive(Default)]
struct Groups {
    /// Each key's group; none for one chunk's partial groups, as `row_groups` asks for a
    /// group once per distinct key of a chunk.
    index: Option<Map<Vec<KeyPart>, usize>>,
    key_rows: Vec<Vec<Value>>,
    states: Vec<Vec<State>>,
}

impl Groups {
    /// Takes one chunk's rows, in order.
    fn add(&mut self, chunk: &Chunk, keys: &[BExpr], aggs: &[AggSpec]) -> Result<()> {
        if chunk.len == 0 {
            return Ok(());
        }
        let key_cols = keys
            .iter()
            .map(|k| eval(k, chunk))
            .collect::<Result<Vec<_>>>()?;
        let mut arg_cols = Vec::with_capacity(aggs.len());
        let mut preds = Vec::with_capacity(aggs.len());
        for spec in aggs {
            let mut args = spec.args.clone();
            let pred = if has_pred(spec.func) {
                args.pop()
            } else {
                None
            };
            arg_cols.push(
                args.iter()
                    .map(|a| eval(a, chunk))
                    .collect::<Result<Vec<_>>>()?,
            );
            preds.push(match pred {
                Some(p) => Some(eval_bool(&p, chunk)?),
                None => None,
            });
        }
        let Groups {
            index,
            key_rows,
            states,
        } = self;
        let groups = row_groups(&key_cols, chunk.len, |kv| {
            let mut push = |kv| {
                key_rows.push(kv);
                states.push(aggs.iter().map(new_state).collect());
                key_rows.len() - 1
            };
            match index {
                Some(index) => {
                    let kp: Vec<KeyPart> = kv.iter().map(key_part).collect();
                    *index.entry(kp).or_insert_with(|| push(kv))
                }
                None => push(kv),
            }
        });
        // Each aggregate takes the chunk's rows in order (states are independent).
        for (k, spec) in aggs.iter().enumerate() {
            let (args, pred) = (&arg_cols[k], preds[k].as_ref());
            if states.len() <= chunk.len && fold_by_group(spec, args, pred, &groups, states, k) {
                continue;
            }
            for (i, &g) in groups.iter().enumerate() {
                update(&mut states[g][k], spec, args, pred, i);
            }
        }
        Ok(())
    }

    /// The summarize's output: keys then aggregates, a row per group in first-seen order.
    fn into_chunk(self, keys: &[BExpr], aggs: &[AggSpec], out_types: &[KqlType]) -> Result<Chunk> {
        let Groups {
            mut key_rows,
            mut states,
            ..
        } = self;
        // No `by`: exactly one row, of defaults when there was no input.
        if keys.is_empty() && key_rows.is_empty() {
            key_rows.push(Vec::new());
            states.push(aggs.iter().map(new_state).collect());
        }
        let ngroups = key_rows.len();
        let mut cols: Vec<Vec<Value>> = vec![Vec::with_capacity(ngroups); out_types.len()];
        for (row, st) in key_rows.into_iter().zip(states) {
            let mut c = 0;
            for v in row {
                cols[c].push(v);
                c += 1;
            }
            for (s, spec) in st.into_iter().zip(aggs) {
                for v in finish(s, spec) {
                    cols[c].push(v);
                    c += 1;
                }
            }
        }
        let columns = cols
            .iter()
            .zip(out_types)
            .map(|(v, t)| Column::from_values(*t, v))
            .collect::<Result<Vec<_>>>()?;
        Ok(Chunk::new(columns, ngroups))
    }

    /// Takes the groups of rows that come after these, in their first-seen order.
    fn merge(&mut self, later: Groups, aggs: &[AggSpec]) {
        let index = self.index.get_or_insert_with(Map::default);
        for (row, st) in later.key_rows.into_iter().zip(later.states) {
            let kp: Vec<KeyPart> = row.iter().map(key_part).collect();
            match index.get(&kp) {
                Some(&g) => {
                    for ((earlier, later), spec) in self.states[g].iter_mut().zip(st).zip(aggs) {
                        merge(earlier, later, spec);
                    }
                }
                None => {
                    index.insert(kp, self.key_rows.len());
                    self.key_rows.push(row);
                    self.states.push(st);
                }
            }
        }
    }
}

/// Whether two of `spec`'s states merge in constant time (no set or list to take over).
fn merges_cheaply(spec: &AggSpec) -> bool {
    !matches!(
        spec.func,
        AggFunc::DCount | AggFunc::DCountIf | AggFunc::MakeSet { .. } | AggFunc::MakeList { .. }
    )
}

/// Chunks aggregated on their own at a time (then merged in order), per thread.
const PARTIALS_PER_THREAD: usize = 4;

/// Runs summarize over a stream of chunks; returns one chunk with keys then aggregates.
///
/// The first chunk is aggregated as it comes. When its groups are few against its rows
/// (at most one per 16) and every aggregate merges in constant time (no dcount,
/// make_set or make_list, whose per-chunk sets made `count(), dcount(FileName),
/// make_set(FileName) by DeviceName` over 10M rows 0.83 -> 1.36 s on one thread), every
/// later chunk is aggregated on its own, `threads` at a time, and merged into the total
/// in chunk order; otherwise (mostly distinct keys, where a merge would cost what the
/// aggregation does) they are taken one by one. The choice depends on the query and
/// the data alone, never on `threads`, so neither does any result (a real sum is then
/// the sum of its chunks' sums).
pub fn aggregate(
    input: impl Iterator<Item = Result<Chunk>>,
    keys: &[BExpr],
    aggs: &[AggSpec],
    out_types: &[KqlType],
    threads: usize,
) -> Result<Chunk> {
    let mut total = Groups {
        index: Some(Map::default()),
        ..Groups::default()
    };
    let mut input = input.filter(|c| !matches!(c, Ok(c) if c.len == 0));
    let mut partial = false;
    if let Some(first) = input.next() {
        let first = first?;
        total.add(&first, keys, aggs)?;
        partial = total.states.len() * 16 <= first.len && aggs.iter().all(merges_cheaply);
    }
    if partial {
        let batch = threads.max(1) * PARTIALS_PER_THREAD;
        loop {
            let chunks = input.by_ref().take(batch).collect::<Result<Vec<Chunk>>>()?;
            if chunks.is_empty() {
                break;
            }
            let parts = super::pool::parallel_map(chunks.len(), threads, |i| {
                let mut part = Groups::default();
                part.add(&chunks[i], keys, aggs)?;
                Ok(part)
            });
            for part in parts {
                total.merge(part?, aggs);
            }
        }
    } else {
        for chunk in input {
            total.add(&chunk?, keys, aggs)?;
        }
    }
    total.into_chunk(keys, aggs, out_types)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    /// Integer key codes: equal exactly when the values are (nulls one code of their own),
    /// each code's first row, in first-seen order, over runs, repeats after other values,
    /// many values sharing low bits (day bins in ticks), and the generic path's answer.
    #[test]
    fn int_codes_group_equal_values() {
        let day = crate::types::ticks::PER_DAY;
        let mut values: Vec<Option<i64>> = vec![Some(5), Some(5), None, Some(-5), None, Some(5)];
        values.extend((0..5000).map(|i| Some((i % 997) * day)));
        values.push(Some(i64::MIN));
        let a = Int64Array::from(values.clone());
        let (codes, first) = int_codes(&a);
        assert_eq!(&codes[..6], &[0, 0, 1, 2, 1, 0]);
        assert_eq!(&first[..3], &[0, 2, 3]);
        for (i, v) in values.iter().enumerate() {
            assert_eq!(values[first[codes[i] as usize]], *v, "row {i}");
        }
        assert_eq!(first.len(), 3 + 997 + 1); // 5, null, -5; the days; long.MinValue
        let generic = {
            let c = Column::Long(Int64Array::from(values.clone()));
            let mut seen: HashMap<KeyPart, u32> = HashMap::new();
            (0..c.len())
                .map(|r| {
                    let n = seen.len() as u32;
                    *seen.entry(key_part(&c.get(r))).or_insert(n)
                })
                .collect::<Vec<u32>>()
        };
        assert_eq!(codes, generic);
    }

    /// Pseudo-random numbers below `n` (xorshift), the same on every run.
    fn numbers(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        }
    }

    /// Every column fold gives what the row rule (`update`, row by row) gives: over groups
    /// whose states already hold earlier rows, with nulls, ties, NaN and -0.0, a predicate
    /// with nulls, a null-only group for arg_max, and a make_set cap that cuts.
    #[test]
    fn column_folds_match_the_row_rule() {
        use crate::error::Span;
        use crate::plan::{BExpr, BKind};
        use arrow::array::{Float64Array, Int32Array, StringArray};
        let mut next = numbers(0x2545_f491_4f6c_dd1du64);
        let (rows, half) = (3000, 1500);
        // Only group 3 holds NaNs (they make a sum NaN). Group 7 is two rows of the folded
        // half: a null everywhere, then a null number beside a string (arg_max keeps the
        // first row while every value is null).
        let mut groups: Vec<usize> = (0..rows).map(|_| next(7) as usize).collect();
        groups[half] = 7;
        groups[half + 1] = 7;
        let gap = |i: usize| i == half || i == half + 1;
        let null = |x: u64| x == 0;
        let longs: Vec<Option<i64>> = (0..rows)
            .map(|i| (!null(next(9)) && !gap(i)).then(|| next(50) as i64 - 25))
            .collect();
        let ints: Vec<Option<i32>> = (0..rows)
            .map(|i| (!null(next(9)) && !gap(i)).then(|| next(40) as i32 - 20))
            .collect();
        let reals: Vec<Option<f64>> = (0..rows)
            .map(|i| match next(12) {
                _ if gap(i) => None,
                0 => None,
                1 if groups[i] == 3 => Some(f64::NAN),
                2 => Some(-0.0),
                3 => Some(0.0),
                x => Some(x as f64 * 1.5 - 9.1),
            })
            .collect();
        let strings: Vec<Option<String>> = (0..rows)
            .map(|i| (!null(next(9)) && i != half).then(|| format!("v{}", next(11))))
            .collect();
        let pred: Vec<Option<bool>> = (0..rows)
            .map(|_| (!null(next(7))).then(|| next(2) == 1))
            .collect();
        let cols = [
            Column::Long(Int64Array::from(longs.clone())),
            Column::Int(Int32Array::from(ints)),
            Column::Real(Float64Array::from(reals)),
            Column::DateTime(Int64Array::from(longs.clone())),
            Column::TimeSpan(Int64Array::from(longs)),
            Column::String(StringArray::from(strings)),
        ];
        let types: Vec<KqlType> = cols.iter().map(Column::kql_type).collect();
        let pred = BooleanArray::from(pred);
        let col = |c: usize| BExpr {
            kind: BKind::Column(c),
            ty: types[c],
            span: Span::default(),
        };
        let spec = |func: AggFunc, args: &[usize], out: KqlType| AggSpec {
            func,
            args: args.iter().map(|&c| col(c)).collect(),
            max_size: 4,
            outputs: if args.is_empty() {
                vec![("n".to_string(), out)]
            } else {
                let ty = |j: usize, c: usize| if j == 0 { out } else { types[c] };
                args.iter()
                    .enumerate()
                    .map(|(j, &c)| (format!("c{c}"), ty(j, c)))
                    .collect()
            },
        };
        use AggFunc::*;
        let mut specs = vec![(spec(Count, &[], KqlType::Long), false)];
        specs.push((spec(CountIf, &[], KqlType::Long), true));
        for c in [0, 1, 4] {
            specs.push((spec(Sum, &[c], types[c]), false));
            specs.push((spec(SumIf, &[c], types[c]), true));
        }
        for c in [0, 1, 2] {
            specs.push((spec(Sum, &[c], KqlType::Real), false));
            specs.push((spec(Avg, &[c], KqlType::Real), false));
            specs.push((spec(AvgIf, &[c], KqlType::Real), true));
        }
        for c in [0, 1, 2, 3, 4] {
            for f in [Min, Max, ArgMax, ArgMin] {
                let args: &[usize] = if matches!(f, ArgMax | ArgMin) {
                    &[c, 5, 1]
                } else {
                    &[c]
                };
                specs.push((spec(f, args, types[c]), false));
            }
        }
        for f in [DCount, MakeSet { if_: false }] {
            specs.push((spec(f, &[5], KqlType::Long), false));
        }
        for f in [DCountIf, MakeSet { if_: true }] {
            specs.push((spec(f, &[5], KqlType::Long), true));
        }
        for (spec, with_pred) in &specs {
            let args: Vec<Column> = spec
                .args
                .iter()
                .map(|a| match a.kind {
                    BKind::Column(c) => cols[c].clone(),
                    _ => unreachable!(),
                })
                .collect();
            let p = with_pred.then_some(&pred);
            let fresh = || -> Vec<Vec<State>> { (0..8).map(|_| vec![new_state(spec)]).collect() };
            let mut by_row = fresh();
            for i in 0..rows {
                update(&mut by_row[groups[i]][0], spec, &args, p, i);
            }
            // Folded from the first row, and after half the rows row by row.
            for start in [0, half] {
                let mut folded = fresh();
                for i in 0..start {
                    update(&mut folded[groups[i]][0], spec, &args, p, i);
                }
                let sliced: Vec<Column> =
                    args.iter().map(|c| c.slice(start, rows - start)).collect();
                let p2 = p.map(|p| p.slice(start, rows - start));
                assert!(
                    fold_by_group(spec, &sliced, p2.as_ref(), &groups[start..], &mut folded, 0),
                    "{:?} over {:?} is not folded",
                    spec.func,
                    spec.outputs
                );
                let show = |states: &[Vec<State>]| -> Vec<String> {
                    states
                        .iter()
                        .map(|s| format!("{:?}", finish(s[0].clone(), spec)))
                        .collect()
                };
                assert_eq!(
                    show(&folded),
                    show(&by_row),
                    "{:?} of {:?} from row {start}",
                    spec.func,
                    spec.outputs
                );
            }
        }
    }

    /// A summarize over many chunks merged in order (on one thread and on three) gives
    /// what it gives row by row (chunks of one row), for every aggregate: same groups in
    /// the same first-seen order, same values (reals to 12 digits: a real sum adds its
    /// chunks' sums).
    #[test]
    fn merged_chunks_match_rows_in_order() {
        use crate::error::Span;
        use crate::plan::BKind;
        use arrow::array::{Float64Array, StringArray};
        let mut next = numbers(0x9e37_79b9_7f4a_7c15u64);
        let rows = 4000;
        // Keys: 9 names, one of them null; the first 600 rows only see three of them,
        // so later chunks bring new groups. Group "k8" has no number anywhere.
        let keys: Vec<Option<String>> = (0..rows)
            .map(|i| match next(if i < 600 { 3 } else { 9 }) {
                0 => None,
                x => Some(format!("k{x}")),
            })
            .collect();
        let longs: Vec<Option<i64>> = (0..rows)
            .map(|i| match next(8) {
                _ if keys[i].as_deref() == Some("k8") => None,
                0 => None,
                _ => Some(next(60) as i64 - 30),
            })
            .collect();
        let reals: Vec<Option<f64>> = (0..rows)
            .map(|i| match next(10) {
                _ if keys[i].as_deref() == Some("k8") => None,
                0 => None,
                1 if keys[i].as_deref() == Some("k2") => Some(f64::NAN),
                _ => Some(next(1000) as f64 / 7.0 - 50.0),
            })
            .collect();
        let strings: Vec<Option<String>> = (0..rows)
            .map(|_| match next(6) {
                0 => None,
                1 => Some(String::new()),
                x => Some(format!("s{}", x * next(5))),
            })
            .collect();
        let flags: Vec<Option<bool>> = (0..rows)
            .map(|_| (next(9) != 0).then(|| next(2) == 0))
            .collect();
        let columns = vec![
            Column::String(StringArray::from(keys)),
            Column::Long(Int64Array::from(longs.clone())),
            Column::Real(Float64Array::from(reals)),
            Column::String(StringArray::from(strings)),
            Column::Bool(BooleanArray::from(flags)),
            Column::DateTime(Int64Array::from(longs)),
        ];
        let types: Vec<KqlType> = columns.iter().map(Column::kql_type).collect();
        let col = |c: usize| BExpr {
            kind: BKind::Column(c),
            ty: types[c],
            span: Span::default(),
        };
        let spec = |func: AggFunc, args: &[usize], out: Option<KqlType>| AggSpec {
            func,
            args: args.iter().map(|&c| col(c)).collect(),
            max_size: 5,
            outputs: match out {
                Some(t) => vec![("x".to_string(), t)],
                None => args.iter().map(|&c| (format!("c{c}"), types[c])).collect(),
            },
        };
        use AggFunc::*;
        let (long, real) = (Some(KqlType::Long), Some(KqlType::Real));
        let dynamic = Some(KqlType::Dynamic);
        let aggs = vec![
            spec(Count, &[], long),
            spec(CountIf, &[4], long),
            spec(Sum, &[1], long),
            spec(Sum, &[2], real),
            spec(SumIf, &[2, 4], real),
            spec(Avg, &[1], real),
            spec(Avg, &[2], real),
            spec(AvgIf, &[1, 4], real),
            spec(Min, &[2], real),
            spec(Max, &[5], Some(KqlType::DateTime)),
            spec(Min, &[3], Some(KqlType::String)),
            spec(DCount, &[3], long),
            spec(DCount, &[1], long),
            spec(DCountIf, &[3, 4], long),
            spec(MakeSet { if_: false }, &[3], dynamic),
            spec(MakeSet { if_: true }, &[1, 4], dynamic),
            spec(MakeList { if_: false }, &[1], dynamic),
            spec(MakeList { if_: true }, &[3, 4], dynamic),
            spec(ArgMax, &[1, 3, 2], None),
            spec(ArgMin, &[2, 3], None),
            spec(ArgMax, &[3, 1], None),
            spec(TakeAny, &[3], None),
            spec(TakeAny, &[1, 3], None),
        ];
        let out_types_of = |aggs: &[AggSpec]| -> Vec<KqlType> {
            let mut types = vec![KqlType::String];
            types.extend(aggs.iter().flat_map(|a| a.outputs.iter().map(|(_, t)| *t)));
            types
        };
        let table = &Chunk::new(columns, rows);
        let chunks = |size: usize| {
            (0..rows)
                .step_by(size)
                .map(move |at| table.slice(at, size.min(rows - at)))
        };
        let show = |out: Chunk| -> Vec<String> {
            (0..out.len)
                .map(|r| {
                    let row: Vec<String> = out
                        .columns
                        .iter()
                        .map(|c| match c.get(r) {
                            Value::Real(x) => format!("{x:.12e}"),
                            v => format!("{v:?}"),
                        })
                        .collect();
                    row.join(" | ")
                })
                .collect()
        };
        let keys = [col(0)];
        let run = |aggs: &[AggSpec], size: usize, threads: usize| -> Vec<String> {
            let out_types = out_types_of(aggs);
            show(aggregate(chunks(size).map(Ok), &keys, aggs, &out_types, threads).unwrap())
        };
        // Every aggregate's merge, whether or not `aggregate` merges it: each chunk's
        // groups on their own, merged in order.
        let merged = |size: usize| -> Vec<String> {
            let mut total = Groups::default();
            for chunk in chunks(size) {
                let mut part = Groups::default();
                part.add(&chunk, &keys, &aggs).unwrap();
                total.merge(part, &aggs);
            }
            show(
                total
                    .into_chunk(&keys, &aggs, &out_types_of(&aggs))
                    .unwrap(),
            )
        };
        let by_row = run(&aggs, 1, 1);
        assert_eq!(by_row.len(), 9);
        for size in [400, 97, 4000] {
            assert_eq!(merged(size), by_row, "chunks of {size}, merged");
        }
        // Through `aggregate`, which merges chunks only of the aggregates that merge
        // cheaply: all of them, and those alone.
        let cheap: Vec<AggSpec> = aggs.iter().filter(|a| merges_cheaply(a)).cloned().collect();
        assert!(cheap.len() > 15);
        let cheap_by_row = run(&cheap, 1, 1);
        for (size, threads) in [(400, 1), (400, 3), (97, 2), (4000, 1)] {
            assert_eq!(
                run(&aggs, size, threads),
                by_row,
                "chunks of {size}, {threads} threads"
            );
            let got = run(&cheap, size, threads);
            assert_eq!(
                got, cheap_by_row,
                "cheap ones, chunks of {size}, {threads} threads"
            );
        }
    }
}
