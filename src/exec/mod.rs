//! Runs a bound [`Plan`] as a pull-based stream of chunks. Each operator asks its input
//! only for the columns it needs, so scans skip columns the query never reads. Filters,
//! projections and unions stream; summarize, sort and count consume their input.

pub mod aggregate;
pub mod eval;
pub mod pool;
pub mod scan;

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::column::{Chunk, Column};
use crate::error::{Error, Result};
use crate::plan::{BExpr, Plan, Schema, SortSpec};
use crate::table::{Catalog, ChunkStream, ScanRequest, TableProvider};
use crate::types::{format_datetime, format_guid, format_timespan, KqlType, Value};

pub use eval::eval;

/// A value as JSON, the way Kusto writes it inside `dynamic` (datetimes as strings).
pub fn value_to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Long(i) => J::from(*i),
        Value::Real(r) => serde_json::Number::from_f64(*r)
            .map_or_else(|| J::String(crate::types::format_real(*r)), J::Number),
        Value::String(s) => J::String(s.clone()),
        Value::DateTime(t) => J::String(format_datetime(*t)),
        Value::TimeSpan(t) => J::String(format_timespan(*t)),
        Value::Guid(g) => J::String(format_guid(*g)),
        Value::Dynamic(j) => j.clone(),
    }
}

/// A JSON scalar as a value (numbers: long when integral, else real).
pub fn json_to_value(j: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => n
            .as_i64()
            .map_or_else(|| Value::Real(n.as_f64().unwrap_or(f64::NAN)), Value::Long),
        J::String(s) => Value::String(s.clone()),
        other => Value::Dynamic(other.clone()),
    }
}

/// Evaluates an expression with no columns (constants, lets, now()).
pub fn eval_const(e: &BExpr) -> Result<Value> {
    let chunk = Chunk::new(vec![], 1);
    Ok(eval::eval(e, &chunk)?.get(0))
}

pub fn describe_predicate(e: &BExpr, schema: &Schema) -> String {
    eval::describe(e, schema)
}

/// Runs a plan to completion and concatenates its output into one chunk.
/// What execution may use: the tables, and how many threads scans may run on.
#[derive(Clone, Copy)]
pub struct ExecContext<'a> {
    pub catalog: &'a Catalog,
    pub threads: usize,
    /// Output of filter-over-scan nodes already computed by a shared scan
    /// ([`run_many`]), keyed by the node's address; taken when the node runs.
    pub prepared: Option<&'a Prepared>,
}

/// Chunks of filter-over-scan nodes computed ahead, by node address.
pub type Prepared = std::sync::Mutex<HashMap<usize, Result<Vec<Chunk>>>>;

impl<'a> ExecContext<'a> {
    pub fn new(catalog: &'a Catalog) -> ExecContext<'a> {
        ExecContext {
            catalog,
            threads: default_threads(),
            prepared: None,
        }
    }
}

/// Runs many plans, scanning each table once for all of them: every filter right above
/// a scan, in every plan, joins its table's [`scan::SharedScan`]; then each plan runs
/// on the chunks its filters kept. One result per plan, in order.
pub fn run_many(plans: &[&Plan], catalog: &Catalog, threads: usize) -> Vec<Result<Chunk>> {
    // Every fused leaf with the columns its plan needs from it.
    let mut leaves: Vec<(usize, &str, scan::FusedFilter)> = Vec::new();
    for plan in plans {
        let width = plan.schema().len();
        fused_leaves(plan, &vec![true; width], &mut leaves);
    }
    let mut by_table: Vec<(&str, Vec<(usize, scan::FusedFilter)>)> = Vec::new();
    for (node, table, f) in leaves {
        match by_table.iter_mut().find(|(t, _)| *t == table) {
            Some((_, v)) => v.push((node, f)),
            None => by_table.push((table, vec![(node, f)])),
        }
    }
    let mut prepared: HashMap<usize, Result<Vec<Chunk>>> = HashMap::new();
    for (table, members) in by_table {
        let Some(t) = catalog.get(table) else {
            continue;
        };
        let width = members[0].1.needed().len();
        let mut needed = vec![false; width];
        for (_, f) in &members {
            or_into(&mut needed, f.needed());
        }
        // Row groups outside every member's window may be skipped.
        let windows: Vec<_> = members.iter().map(|(_, f)| f.time_window()).collect();
        let time_range = if windows.iter().all(Option::is_some) {
            let w: Vec<_> = windows.into_iter().flatten().collect();
            w.iter()
                .all(|x| x.column == w[0].column)
                .then(|| crate::table::TimeRange {
                    column: w[0].column,
                    low: w.iter().map(|x| x.low).min().unwrap_or(i64::MIN),
                    high: w.iter().map(|x| x.high).max().unwrap_or(i64::MAX),
                })
        } else {
            None
        };
        let nodes: Vec<usize> = members.iter().map(|(n, _)| *n).collect();
        let shared = std::sync::Arc::new(scan::SharedScan::new(
            members.into_iter().map(|(_, f)| f).collect(),
        ));
        // Readers that can (Parquet) drop the rows no member keeps while decoding.
        let req = ScanRequest {
            needed,
            time_range,
            prefilter: shared.prefilter(),
        };
        let Some(source) = scan_source(t.as_ref(), &req, threads) else {
            continue; // the plans scan this table themselves
        };
        let results = match source {
            Ok(source) => scan::run_shared(source, shared, threads),
            Err(e) => nodes.iter().map(|_| Err(e.clone())).collect(),
        };
        for (node, r) in nodes.into_iter().zip(results) {
            prepared.insert(node, r);
        }
    }
    let prepared = std::sync::Mutex::new(prepared);
    let ctx = ExecContext {
        catalog,
        threads,
        prepared: Some(&prepared),
    };
    // Each plan's own work on what its filters kept (summaries, sorts, result columns)
    // runs on the scan threads too (the pack's 55 rules over 10M rows on two threads,
    // ~2 ms of ~47).
    pool::parallel_map(plans.len(), threads, |i| collect(plans[i], &ctx))
}

/// Every filter right above a scan in `plan`, with the columns `needed` of the plan's
/// output make it read (exactly as `execute` computes them).
fn fused_leaves<'p>(
    plan: &'p Plan,
    needed: &[bool],
    out: &mut Vec<(usize, &'p str, scan::FusedFilter)>,
) {
    if let Plan::Filter { input, pred } = plan {
        if let Plan::Scan { table, schema } = input.as_ref() {
            let node = plan as *const Plan as usize;
            out.push((node, table, scan::FusedFilter::new(pred, schema, needed)));
            return;
        }
    }
    for (child, need) in children(plan).into_iter().zip(input_needs(plan, needed)) {
        fused_leaves(child, &need, out);
    }
}

fn children(plan: &Plan) -> Vec<&Plan> {
    match plan {
        Plan::Scan { .. } | Plan::Values { .. } => vec![],
        Plan::Filter { input, .. }
        | Plan::Project { input, .. }
        | Plan::Aggregate { input, .. }
        | Plan::Sort { input, .. }
        | Plan::Limit { input, .. }
        | Plan::Count { input } => vec![input.as_ref()],
        Plan::Union { inputs, .. } => inputs.iter().map(|(p, _, _)| p).collect(),
    }
}

/// For each input of `plan` (in `children` order), the columns it must produce when the
/// caller reads output columns `needed`.
fn input_needs(plan: &Plan, needed: &[bool]) -> Vec<Vec<bool>> {
    match plan {
        Plan::Scan { .. } | Plan::Values { .. } => vec![],
        Plan::Filter { input, pred } => vec![filter_reads(pred, input.schema().len(), needed)],
        Plan::Project { input, exprs, .. } => {
            let used: Vec<&BExpr> = exprs
                .iter()
                .zip(needed)
                .filter(|(_, n)| **n)
                .map(|(e, _)| e)
                .collect();
            vec![needed_by(&used, input.schema().len())]
        }
        Plan::Aggregate {
            input, keys, aggs, ..
        } => {
            let mut exprs: Vec<&BExpr> = keys.iter().collect();
            for a in aggs {
                exprs.extend(a.args.iter());
            }
            vec![needed_by(&exprs, input.schema().len())]
        }
        Plan::Sort { input, keys } => {
            let exprs: Vec<&BExpr> = keys.iter().map(|k| &k.expr).collect();
            let mut need = needed_by(&exprs, input.schema().len());
            or_into(&mut need, needed);
            vec![need]
        }
        Plan::Limit { .. } => vec![needed.to_vec()],
        Plan::Count { input } => vec![vec![false; input.schema().len()]],
        Plan::Union {
            inputs,
            with_source,
            ..
        } => {
            let off = usize::from(*with_source);
            inputs
                .iter()
                .map(|(p, mapping, _)| {
                    let mut need = vec![false; p.schema().len()];
                    for (k, m) in mapping.iter().enumerate() {
                        if let Some(src) = m {
                            if needed.get(k + off).copied().unwrap_or(true) {
                                need[*src] = true;
                            }
                        }
                    }
                    need
                })
                .collect()
        }
    }
}

/// `RMMHUNT_THREADS` when set to a positive number, else every core (a value that is not
/// one counts as unset here; [`env_threads`] is the check that names it).
pub fn default_threads() -> usize {
    env_threads()
        .ok()
        .flatten()
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `RMMHUNT_THREADS`: None when unset or blank, the number when it is a positive whole
/// number, else an error naming the variable and its value (`0`, `-1`, `abc`, `2.5`
/// were silently all cores).
pub fn env_threads() -> Result<Option<usize>> {
    let Ok(text) = std::env::var("RMMHUNT_THREADS") else {
        return Ok(None);
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(Error::data(format!(
            "RMMHUNT_THREADS must be a positive whole number of threads, not {text:?}"
        ))),
    }
}

/// Where a scan of `t` comes from: with several threads and a reader that can split its
/// scan, one task per row group decoded in parallel; else its batch stream. None when
/// the table has no Arrow scan (the plan scans it itself).
fn scan_source<'a>(
    t: &'a dyn TableProvider,
    req: &ScanRequest,
    threads: usize,
) -> Option<Result<scan::Source<'a>>> {
    if threads > 1 {
        if let Some(tasks) = t.scan_arrow_tasks(req) {
            return Some(tasks.map(scan::Source::Tasks));
        }
    }
    t.scan_arrow(req).map(|s| s.map(scan::Source::Stream))
}

pub fn collect(plan: &Plan, ctx: &ExecContext<'_>) -> Result<Chunk> {
    let schema = plan.schema();
    let needed = vec![true; schema.len()];
    let chunks: Vec<Chunk> = execute(plan, ctx, &needed)?.collect::<Result<Vec<_>>>()?;
    concat_chunks(&schema, &chunks)
}

pub fn concat_chunks(schema: &Schema, chunks: &[Chunk]) -> Result<Chunk> {
    let len = chunks.iter().map(|c| c.len).sum();
    let columns = schema
        .iter()
        .enumerate()
        .map(|(i, (_, t))| {
            Column::concat(
                *t,
                &chunks.iter().map(|c| &c.columns[i]).collect::<Vec<_>>(),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Chunk::new(columns, len))
}

/// The columns a filter on `pred` reads from its input: its own and those `wanted` above.
pub(crate) fn filter_reads(pred: &BExpr, width: usize, wanted: &[bool]) -> Vec<bool> {
    let mut need = needed_by(&[pred], width);
    or_into(&mut need, wanted);
    need
}

pub(crate) fn needed_by(exprs: &[&BExpr], width: usize) -> Vec<bool> {
    let mut cols = Vec::new();
    for e in exprs {
        e.columns(&mut cols);
    }
    let mut needed = vec![false; width];
    for c in cols {
        if c < width {
            needed[c] = true;
        }
    }
    needed
}

pub(crate) fn or_into(a: &mut [bool], b: &[bool]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x |= *y;
    }
}

/// Streams the plan's output; `needed[i]` says whether the caller reads output column i
/// (others may come back as `Column::Pruned`).
pub fn execute<'a>(
    plan: &'a Plan,
    ctx: &ExecContext<'a>,
    needed: &[bool],
) -> Result<ChunkStream<'a>> {
    match plan {
        Plan::Scan { table, .. } => {
            let t = ctx
                .catalog
                .get(table)
                .ok_or_else(|| Error::internal(format!("table {table} vanished")))?;
            t.scan(&ScanRequest {
                needed: needed.to_vec(),
                time_range: None,
                prefilter: None,
            })
        }
        Plan::Values { chunk, .. } => Ok(Box::new(std::iter::once(Ok(chunk.clone())))),
        Plan::Filter { input, pred } => {
            let need = input_needs(plan, needed).remove(0);
            if let Some(prepared) = ctx.prepared {
                let node = plan as *const Plan as usize;
                let taken = prepared
                    .lock()
                    .map_err(|_| Error::internal("prepared chunks poisoned"))?
                    .remove(&node);
                if let Some(chunks) = taken {
                    return Ok(Box::new(chunks?.into_iter().map(Ok)));
                }
            }
            if let Plan::Scan { table, schema } = input.as_ref() {
                let t = ctx
                    .catalog
                    .get(table)
                    .ok_or_else(|| Error::internal(format!("table {table} vanished")))?;
                let fused = scan::FusedFilter::new(pred, schema, needed);
                // The filter's time window lets readers skip whole row groups.
                let req = ScanRequest {
                    needed: fused.needed().to_vec(),
                    time_range: fused.time_window(),
                    prefilter: fused.prefilter(),
                };
                if let Some(source) = scan_source(t.as_ref(), &req, ctx.threads) {
                    return Ok(scan::run_fused(source?, fused, ctx.threads));
                }
            }
            let inner = execute(input, ctx, &need)?;
            Ok(Box::new(inner.filter_map(move |c| {
                let c = match c {
                    Ok(c) => c,
                    Err(e) => return Some(Err(e)),
                };
                let r = eval::eval_mask(pred, &c).and_then(|m| {
                    if m.true_count() == c.len {
                        Ok(c)
                    } else {
                        c.filter(&m)
                    }
                });
                match r {
                    Ok(c) if c.len == 0 => None,
                    other => Some(other),
                }
            })))
        }
        Plan::Project { input, exprs, .. } => {
            let need = input_needs(plan, needed).remove(0);
            let inner = execute(input, ctx, &need)?;
            let needed = needed.to_vec();
            Ok(Box::new(inner.map(move |c| {
                let c = c?;
                let columns = exprs
                    .iter()
                    .zip(&needed)
                    .map(|(e, n)| {
                        if *n {
                            eval::eval(e, &c)
                        } else {
                            Ok(Column::Pruned(e.ty, c.len))
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Chunk::new(columns, c.len))
            })))
        }
        Plan::Aggregate {
            input,
            keys,
            aggs,
            schema,
            ..
        } => {
            let need = input_needs(plan, needed).remove(0);
            let inner = execute(input, ctx, &need)?;
            let types: Vec<KqlType> = schema.iter().map(|(_, t)| *t).collect();
            let out = aggregate::aggregate(inner, keys, aggs, &types, ctx.threads)?;
            Ok(Box::new(std::iter::once(Ok(out))))
        }
        Plan::Sort { input, keys } => {
            let schema = input.schema();
            let need = input_needs(plan, needed).remove(0);
            let chunks = execute(input, ctx, &need)?.collect::<Result<Vec<_>>>()?;
            let all = concat_chunks(&schema, &chunks)?;
            let sorted = sort_chunk(&all, keys)?;
            Ok(Box::new(std::iter::once(Ok(sorted))))
        }
        Plan::Limit { input, n } => {
            let inner = execute(input, ctx, needed)?;
            let mut left = *n;
            Ok(Box::new(inner.map_while(move |c| {
                if left == 0 {
                    return None;
                }
                Some(c.map(|c| {
                    let take = c.len.min(left);
                    left -= take;
                    if take == c.len {
                        c
                    } else {
                        c.slice(0, take)
                    }
                }))
            })))
        }
        Plan::Count { input } => {
            let need = input_needs(plan, needed).remove(0);
            let mut total: i64 = 0;
            for c in execute(input, ctx, &need)? {
                total += c?.len as i64;
            }
            let col = Column::from_values(KqlType::Long, &[Value::Long(total)])?;
            Ok(Box::new(std::iter::once(Ok(Chunk::new(vec![col], 1)))))
        }
        Plan::Union {
            inputs,
            schema,
            with_source,
        } => {
            let off = usize::from(*with_source);
            let mut streams: Vec<ChunkStream<'a>> = Vec::new();
            for ((p, mapping, name), need) in inputs.iter().zip(input_needs(plan, needed)) {
                let inner = execute(p, ctx, &need)?;
                let schema = schema.clone();
                let name = name.clone().unwrap_or_default();
                let with_source = *with_source;
                streams.push(Box::new(inner.map(move |c| {
                    let c = c?;
                    let mut columns = Vec::with_capacity(schema.len());
                    if with_source {
                        columns.push(Column::from_scalar(
                            &Value::String(name.clone()),
                            KqlType::String,
                            c.len,
                        )?);
                    }
                    for (k, m) in mapping.iter().enumerate() {
                        let ty = schema[k + off].1;
                        columns.push(match m {
                            Some(src) => c.columns[*src].clone(),
                            None => Column::null(ty, c.len),
                        });
                    }
                    Ok(Chunk::new(columns, c.len))
                })));
            }
            Ok(Box::new(streams.into_iter().flatten()))
        }
    }
}

/// Stable sort by the keys: asc puts nulls first, desc last, unless told otherwise; NaN
/// sorts with nulls (DOCS sort-operator.md).
pub fn sort_chunk(chunk: &Chunk, keys: &[SortSpec]) -> Result<Chunk> {
    let cols = keys
        .iter()
        .map(|k| eval::eval(&k.expr, chunk))
        .collect::<Result<Vec<_>>>()?;
    let vals: Vec<Vec<Value>> = cols
        .iter()
        .map(|c| (0..chunk.len).map(|i| c.get(i)).collect())
        .collect();
    let mut idx: Vec<u32> = (0..chunk.len as u32).collect();
    let is_nullish = |v: &Value| v.is_null() || matches!(v, Value::Real(r) if r.is_nan());
    idx.sort_by(|&a, &b| {
        for (k, spec) in keys.iter().enumerate() {
            let (x, y) = (&vals[k][a as usize], &vals[k][b as usize]);
            let o = match (is_nullish(x), is_nullish(y)) {
                (true, true) => Ordering::Equal,
                (true, false) => {
                    if spec.nulls_first {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (false, true) => {
                    if spec.nulls_first {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                _ => {
                    let o = eval::compare(x, y).unwrap_or(Ordering::Equal);
                    if spec.desc {
                        o.reverse()
                    } else {
                        o
                    }
                }
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    chunk.take(&idx)
}
