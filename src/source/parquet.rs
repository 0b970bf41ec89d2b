//! Parquet: only the columns the scan needs are decoded (a projection mask), row groups
//! whose `Timestamp` statistics lie outside the scan's time window are skipped, and rows
//! stream in batches. Columns whose type differs from the table's documented type
//! (`Timestamp` stored as text, say) are converted value by value, bad values reported.

use std::fs::File;
use std::io::Read;
use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, RecordBatchOptions, StringArray, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema as ArrowSchema, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{
    ArrowPredicate, ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions,
    ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder, RowFilter,
};
use parquet::arrow::ProjectionMask;

use crate::column::{Chunk, Column};
use crate::convert::{self, column_from_arrow, kql_schema};
use crate::error::{Error, Result};
use crate::source::report::{FileReport, Loc, Tracker};
use crate::source::values::{ColumnBuilder, Zone};
use crate::source::{
    guard, FileState, Found, Input, Mode, Part, PartReader, Probe, SrcType, Target,
};
use crate::table::Prefilter;
use crate::types::KqlType;

pub(crate) struct ParquetFile {
    meta: ArrowReaderMetadata,
    /// The decompressed file, for a gzip-compressed Parquet file.
    bytes: Option<Bytes>,
}

impl ParquetFile {
    pub(crate) fn row_groups(&self) -> usize {
        self.meta.metadata().num_row_groups()
    }
}

fn corrupt(input: &Input, e: impl std::fmt::Display) -> Error {
    Error::data(format!(
        "{}: not a readable Parquet file (truncated or corrupt?): {e}",
        input.display
    ))
}

pub(crate) fn probe(input: &Input) -> Result<Probe> {
    let (meta, bytes) = guard(&input.display, || {
        if input.gzip {
            let mut buf = Vec::new();
            input
                .open()?
                .read_to_end(&mut buf)
                .map_err(|e| input.io_error(e))?;
            let bytes = Bytes::from(buf);
            let meta = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new())
                .map_err(|e| corrupt(input, e))?;
            Ok((meta, Some(bytes)))
        } else {
            let f = File::open(&input.path)
                .map_err(|e| Error::data(format!("{}: {e}", input.display)))?;
            let meta = ArrowReaderMetadata::load(&f, ArrowReaderOptions::new())
                .map_err(|e| corrupt(input, e))?;
            Ok((meta, None))
        }
    })?;
    let schema = kql_schema(meta.schema())?;
    for (i, (n, _)) in schema.iter().enumerate() {
        if schema[..i].iter().any(|(m, _)| m == n) {
            return Err(Error::data(format!(
                "{}: column {n} appears twice",
                input.display
            )));
        }
    }
    let columns: Vec<(String, SrcType)> = schema
        .into_iter()
        .map(|(n, t)| (n, SrcType::Typed(t)))
        .collect();
    let rows: i64 = meta
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .sum();
    let found = if rows > 0 || !columns.is_empty() {
        vec![Found {
            table: None,
            columns,
            ordered: true,
        }]
    } else {
        Vec::new()
    };
    let format = if input.gzip {
        "parquet (gzip)"
    } else {
        "parquet"
    };
    Ok(Probe {
        format: format.into(),
        found,
        state: FileState::Parquet(Arc::new(ParquetFile { meta, bytes })),
    })
}

/// How a table column is read from its Parquet column.
enum ColRead {
    /// Not in the file: nulls.
    Missing,
    /// Not returned and not checked.
    Skip,
    /// Arrow -> engine column directly (same type, or a widening number).
    Direct { batch_col: usize },
    /// Bytes (Arrow binary) read as UTF-8 text, invalid sequences replaced and reported.
    Utf8 { batch_col: usize },
    /// Value by value, with bad values reported; `keep` says whether the scan returns it.
    PerValue {
        batch_col: usize,
        from: KqlType,
        builder: ColumnBuilder,
    },
}

struct ParquetReader {
    input: Input,
    reader: ParquetRecordBatchReader,
    targets: Vec<Target>,
    reads: Vec<ColRead>,
    tracker: Tracker,
    /// (first row in the file, rows) of each row group read, in order.
    groups: Vec<(u64, u64)>,
    rows_read: u64,
    complete: bool,
    /// A row filter runs in the reader: batches hold only the rows it kept.
    filtered: bool,
}

fn direct(from: KqlType, to: KqlType) -> bool {
    from == to
        || matches!(
            (from, to),
            (KqlType::Int, KqlType::Long) | (KqlType::Int | KqlType::Long, KqlType::Real)
        )
}

/// The ticks of an Arrow statistics array (None when it is not a timestamp).
fn stat_ticks(a: &ArrayRef) -> Option<Vec<Option<i64>>> {
    let c = column_from_arrow(a, KqlType::DateTime).ok()?;
    let ticks = (0..a.len())
        .map(|i| match c.get(i) {
            crate::types::Value::DateTime(t) => Some(t),
            _ => None,
        })
        .collect();
    Some(ticks)
}

/// Row groups whose statistics for `column` may hold times in [low, high].
fn groups_in_window(file: &ParquetFile, column: &str, low: i64, high: i64) -> Option<Vec<usize>> {
    let meta = file.meta.metadata();
    let conv = StatisticsConverter::try_new(column, file.meta.schema(), file.meta.parquet_schema())
        .ok()?;
    let mins = stat_ticks(&conv.row_group_mins(meta.row_groups().iter()).ok()?)?;
    let maxs = stat_ticks(&conv.row_group_maxes(meta.row_groups().iter()).ok()?)?;
    Some(
        (0..meta.num_row_groups())
            .filter(|&g| {
                match (
                    mins.get(g).copied().flatten(),
                    maxs.get(g).copied().flatten(),
                ) {
                    (Some(min), Some(max)) => !(max < low || min > high),
                    _ => true,
                }
            })
            .collect(),
    )
}

/// The file's reader metadata with the string columns in `roots` that are
/// dictionary-encoded in every row group read as Arrow dictionaries: a predicate then
/// matches each distinct value once, and nothing materialises every row's string.
/// None when no column qualifies (or the schema is nested).
fn dictionary_hint(file: &ParquetFile, roots: &[usize]) -> Option<ArrowReaderMetadata> {
    let meta = file.meta.metadata();
    let schema = file.meta.schema();
    if meta.file_metadata().schema_descr().num_columns() != schema.fields().len() {
        return None;
    }
    let dictionary = |leaf: usize| {
        meta.row_groups().iter().all(|g| {
            g.columns()
                .get(leaf)
                .is_some_and(|c| c.dictionary_page_offset().is_some())
        })
    };
    let mut changed = false;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if matches!(f.data_type(), DataType::Utf8) && roots.contains(&i) && dictionary(i) {
                changed = true;
                f.as_ref().clone().with_data_type(DataType::Dictionary(
                    Box::new(DataType::Int32),
                    Box::new(DataType::Utf8),
                ))
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    if !changed {
        return None;
    }
    let hinted = Arc::new(ArrowSchema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    ));
    ArrowReaderMetadata::try_new(meta.clone(), ArrowReaderOptions::new().with_schema(hinted)).ok()
}

/// The query's prefilter as a Parquet row filter: its columns are decoded first, the
/// other columns only for the rows it keeps (a looser first stage, when it has one, runs
/// before it: its own columns decode only for the rows that stage keeps). Only when every
/// column read is taken as is (no value-by-value conversion whose bad values must be
/// counted on every row).
fn row_filter(
    file: &ParquetFile,
    reads: &[ColRead],
    plan: &[(Option<usize>, bool, KqlType)],
    prefilter: Option<Prefilter>,
) -> Option<RowFilter> {
    let pf = prefilter?;
    if reads
        .iter()
        .any(|r| matches!(r, ColRead::PerValue { .. } | ColRead::Utf8 { .. }))
    {
        return None;
    }
    let mut stages = vec![Arc::new(pf)];
    while let Some(first) = stages.last().and_then(|s| s.first.clone()) {
        stages.push(first);
    }
    stages.reverse();
    let predicates = stages
        .iter()
        .map(|stage| predicate(file, reads, plan, stage))
        .collect::<Option<Vec<_>>>()?;
    Some(RowFilter::new(predicates))
}

/// One prefilter stage as a Parquet predicate over the roots of its columns.
fn predicate(
    file: &ParquetFile,
    reads: &[ColRead],
    plan: &[(Option<usize>, bool, KqlType)],
    stage: &Prefilter,
) -> Option<Box<dyn ArrowPredicate>> {
    let mut by_root: Vec<(usize, usize)> = Vec::new(); // (root, schema column)
    for &c in &stage.columns {
        match (reads.get(c), plan.get(c)) {
            (Some(ColRead::Direct { .. }), Some((Some(root), _, _))) => by_root.push((*root, c)),
            _ => return None,
        }
    }
    by_root.sort_unstable();
    if by_root.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    let mask = ProjectionMask::roots(file.meta.parquet_schema(), by_root.iter().map(|(r, _)| *r));
    let width = reads.len();
    let eval = stage.eval.clone();
    Some(Box::new(ArrowPredicateFn::new(
        mask,
        move |batch: RecordBatch| {
            let mut cols: Vec<Option<ArrayRef>> = vec![None; width];
            for (i, (_, c)) in by_root.iter().enumerate() {
                cols[*c] = batch.columns().get(i).cloned();
            }
            eval(&cols, batch.num_rows()).map_err(|e| ArrowError::ComputeError(e.message))
        },
    )))
}

pub(crate) fn reader<'a>(
    part: &'a Part,
    file: Arc<ParquetFile>,
    targets: Vec<Target>,
    time: Option<(String, i64, i64)>,
    mode: Mode,
    prefilter: Option<Prefilter>,
    only_group: Option<usize>,
) -> Result<Box<dyn PartReader + 'a>> {
    let meta = file.meta.metadata().clone();
    let n_groups = meta.num_row_groups();
    let mut selected: Vec<usize> = (0..n_groups).collect();
    if let Some((name, low, high)) = &time {
        let target = targets.iter().find(|t| &t.name == name);
        let src = target.and_then(|t| t.source.and_then(|s| part.columns.get(s)));
        if let Some((col, SrcType::Typed(KqlType::DateTime))) = src {
            if let Some(g) = groups_in_window(&file, col, *low, *high) {
                selected = g;
            }
        }
    }
    if let Some(g) = only_group {
        selected.retain(|x| *x == g);
    }
    let mut start = 0u64;
    let mut starts = Vec::with_capacity(n_groups);
    for g in meta.row_groups() {
        starts.push((start, g.num_rows().max(0) as u64));
        start += g.num_rows().max(0) as u64;
    }
    let groups: Vec<(u64, u64)> = selected
        .iter()
        .filter_map(|&g| starts.get(g).copied())
        .collect();

    // Which roots to decode, and where each lands in the batch.
    let mut plan: Vec<(Option<usize>, bool, KqlType)> = Vec::new(); // (root, per_value, from)
    let mut roots: Vec<usize> = Vec::new();
    let mut complete = selected.len() == n_groups;
    let mut warnings = Vec::new();
    let arrow_fields = file.meta.schema().fields().clone();
    let mut text_roots: Vec<usize> = Vec::new();
    for t in &targets {
        let Some(s) = t.source else {
            plan.push((None, false, t.ty));
            continue;
        };
        let from = match part.columns.get(s) {
            Some((_, SrcType::Typed(ty))) => *ty,
            _ => t.ty,
        };
        if let Some(dt) = arrow_fields.get(s).map(|f| f.data_type()) {
            match bytes_as_text(dt, t.ty) {
                BytesRead::NotBytes => {}
                BytesRead::Text => text_roots.push(s),
                BytesRead::Refused => {
                    let why = match crate::source::schemas::column_type(&part.table, &t.name) {
                        Some(ty) => format!("{} is documented as {}", t.name, ty.name()),
                        None => format!("{} is not a documented {} column", t.name, part.table),
                    };
                    let message = format!(
                        "column {}: Arrow type {dt} holds bytes, not text, and {why}; \
                         only string columns are read from bytes (as UTF-8)",
                        t.name
                    );
                    if t.needed {
                        return Err(Error::data(format!("{}: {message}", part.input.display)));
                    }
                    warnings.push(format!("{message}; not read"));
                    plan.push((None, false, t.ty));
                    continue;
                }
            }
        }
        let per_value = !direct(from, t.ty);
        if t.needed || (per_value && mode.validate_all) {
            roots.push(s);
        } else if per_value {
            complete = false;
        }
        plan.push((Some(s), per_value, from));
    }
    roots.sort_unstable();
    roots.dedup();
    let reads = targets
        .iter()
        .zip(&plan)
        .map(|(t, (root, per_value, from))| match root {
            None => ColRead::Missing,
            Some(r) => match roots.binary_search(r) {
                Err(_) => ColRead::Skip,
                Ok(batch_col) if text_roots.contains(r) => ColRead::Utf8 { batch_col },
                Ok(batch_col) if *per_value => ColRead::PerValue {
                    batch_col,
                    from: *from,
                    builder: ColumnBuilder::new(t.ty, Zone::Utc, t.needed, mode.batch_rows),
                },
                Ok(batch_col) => ColRead::Direct { batch_col },
            },
        })
        .collect::<Vec<ColRead>>();

    let filter = row_filter(&file, &reads, &plan, prefilter);
    // With a row filter the pass sees every row of its columns only: not a full report.
    let filtered = filter.is_some();
    if filtered {
        complete = false;
    }
    let mask = ProjectionMask::roots(file.meta.parquet_schema(), roots.iter().copied());
    let reader_meta = dictionary_hint(&file, &roots).unwrap_or_else(|| file.meta.clone());
    /// The reader over `input` with the projection, row groups and filter decided above.
    fn build<R: parquet::file::reader::ChunkReader + 'static>(
        input: R,
        meta: ArrowReaderMetadata,
        mask: ProjectionMask,
        groups: Vec<usize>,
        batch_rows: usize,
        filter: Option<RowFilter>,
    ) -> parquet::errors::Result<ParquetRecordBatchReader> {
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(input, meta)
            .with_projection(mask)
            .with_row_groups(groups)
            .with_batch_size(batch_rows);
        if let Some(f) = filter {
            builder = builder.with_row_filter(f);
        }
        builder.build()
    }
    let rows = mode.batch_rows;
    let reader = match &file.bytes {
        Some(b) => build(b.clone(), reader_meta, mask, selected, rows, filter),
        None => {
            let f = File::open(&part.input.path)
                .map_err(|e| Error::data(format!("{}: {e}", part.input.display)))?;
            build(f, reader_meta, mask, selected, rows, filter)
        }
    }
    .map_err(|e| corrupt(&part.input, e))?;
    let mut tracker = Tracker::new(&part.input.display, &part.format, &part.table, mode.strict);
    for w in warnings {
        tracker.warn(w);
    }
    if filtered {
        // Rows scanned: every row of the groups read, though fewer come back.
        tracker.report.rows += groups.iter().map(|(_, n)| n).sum::<u64>();
    }
    Ok(Box::new(ParquetReader {
        input: part.input.clone(),
        reader,
        targets,
        reads,
        tracker,
        groups,
        rows_read: 0,
        complete,
        filtered,
    }))
}

/// How a table column of type `ty` reads an Arrow column of type `dt`.
enum BytesRead {
    /// `dt` is not a byte string: the usual rules apply.
    NotBytes,
    /// Bytes decoded as UTF-8 text.
    Text,
    /// Bytes where the table wants another type: an error naming the column.
    Refused,
}

/// Parquet BINARY columns without the UTF8 annotation (older Spark, Hive and Impala
/// writers store strings so) reach Arrow as binary, large binary or binary view (or a
/// dictionary of those). Where the table's column is a string (documented so), the bytes
/// are what those writers mean: UTF-8 text. Any other column type cannot come from bytes.
fn bytes_as_text(dt: &DataType, ty: KqlType) -> BytesRead {
    let bytes = match dt {
        DataType::Dictionary(_, v) => {
            matches!(
                **v,
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView
            )
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => true,
        _ => false,
    };
    match (bytes, ty) {
        (false, _) => BytesRead::NotBytes,
        (true, KqlType::String) => BytesRead::Text,
        (true, _) => BytesRead::Refused,
    }
}

/// A binary Arrow array as UTF-8 strings, invalid sequences replaced by U+FFFD, with the
/// rows where that happened.
fn utf8_lossy(a: &ArrayRef) -> Result<(StringArray, Vec<usize>)> {
    let bin = if matches!(a.data_type(), DataType::LargeBinary) {
        a.clone()
    } else {
        arrow::compute::cast(a, &DataType::LargeBinary)?
    };
    let bin = bin.as_binary::<i64>();
    let mut out = StringBuilder::with_capacity(bin.len(), bin.values().len());
    let mut bad = Vec::new();
    for (i, v) in bin.iter().enumerate() {
        match v {
            None => out.append_null(),
            Some(b) => match std::str::from_utf8(b) {
                Ok(t) => out.append_value(t),
                Err(_) => {
                    bad.push(i);
                    out.append_value(String::from_utf8_lossy(b));
                }
            },
        }
    }
    Ok((out.finish(), bad))
}

/// One column of a batch, as read: raw Arrow (same type as the table's, or a widening
/// number) or already an engine column.
enum Out {
    Raw(ArrayRef),
    Col(Column),
}

/// The Arrow type the engine reads as `ty` without conversion (for placeholders).
fn natural_arrow_type(ty: KqlType) -> DataType {
    match ty {
        KqlType::Bool => DataType::Boolean,
        KqlType::Int => DataType::Int32,
        KqlType::Long => DataType::Int64,
        KqlType::Real | KqlType::Decimal => DataType::Float64,
        KqlType::DateTime => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        KqlType::TimeSpan => DataType::Duration(TimeUnit::Nanosecond),
        KqlType::String | KqlType::Guid | KqlType::Dynamic => DataType::Utf8,
    }
}

impl ParquetReader {
    /// The 1-based file row of the `k`-th row read (0-based).
    fn file_row(&self, k: u64) -> u64 {
        let mut k = k;
        for &(start, n) in &self.groups {
            if k < n {
                return start + k + 1;
            }
            k -= n;
        }
        k + 1
    }

    /// The next batch's columns in table order, bad values reported.
    fn next_columns(&mut self) -> Result<Option<(Vec<Out>, usize)>> {
        let batch = match self.reader.next() {
            None => return Ok(None),
            Some(Err(e)) => return Err(corrupt(&self.input, e)),
            Some(Ok(b)) => b,
        };
        let len = batch.num_rows();
        let first = self.rows_read;
        let mut outs = Vec::with_capacity(self.targets.len());
        let mut problems = Vec::new();
        for k in 0..self.targets.len() {
            let (name, ty, needed) = (
                &self.targets[k].name,
                self.targets[k].ty,
                self.targets[k].needed,
            );
            let out = match &mut self.reads[k] {
                ColRead::Missing if needed => Out::Col(crate::source::values::null_column(ty, len)),
                ColRead::Missing | ColRead::Skip => Out::Col(Column::Pruned(ty, len)),
                ColRead::Direct { batch_col } => Out::Raw(
                    batch
                        .columns()
                        .get(*batch_col)
                        .ok_or_else(|| Error::internal("parquet projection"))?
                        .clone(),
                ),
                ColRead::Utf8 { batch_col } => {
                    let a = batch
                        .columns()
                        .get(*batch_col)
                        .ok_or_else(|| Error::internal("parquet projection"))?;
                    let (text, bad) = utf8_lossy(a).map_err(|e| {
                        Error::data(format!(
                            "{}: column {name}: {}",
                            self.input.display, e.message
                        ))
                    })?;
                    for i in bad {
                        let v = text.value(i).to_string();
                        problems.push((i, k, v, "invalid UTF-8 (replaced by U+FFFD)".into()));
                    }
                    Out::Col(Column::String(text))
                }
                ColRead::PerValue {
                    batch_col,
                    from,
                    builder,
                } => {
                    let a = batch
                        .columns()
                        .get(*batch_col)
                        .ok_or_else(|| Error::internal("parquet projection"))?;
                    let src = column_from_arrow(a, *from).map_err(|e| {
                        Error::data(format!(
                            "{}: column {name}: {}",
                            self.input.display, e.message
                        ))
                    })?;
                    for i in 0..len {
                        let v = src.get(i);
                        if let Err(p) = builder.push_value(&v) {
                            problems.push((i, k, crate::functions::to_display_string(&v), p));
                        }
                    }
                    Out::Col(builder.finish())
                }
            };
            outs.push(out);
        }
        problems.sort_by_key(|(i, k, ..)| (*i, *k));
        for (i, k, text, p) in problems {
            let loc = Loc {
                line: None,
                row: self.file_row(first + i as u64),
            };
            let name = self
                .targets
                .get(k)
                .map_or("", |t| t.name.as_str())
                .to_string();
            self.tracker.bad_value(loc, &name, &text, &p)?;
        }
        self.rows_read += len as u64;
        if !self.filtered {
            self.tracker.report.rows += len as u64;
        }
        Ok(Some((outs, len)))
    }
}

impl PartReader for ParquetReader {
    fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        let Some((outs, len)) = self.next_columns()? else {
            return Ok(None);
        };
        let mut columns = Vec::with_capacity(outs.len());
        for (k, out) in outs.into_iter().enumerate() {
            columns.push(match out {
                Out::Col(c) => c,
                Out::Raw(a) => {
                    let (name, ty) = (&self.targets[k].name, self.targets[k].ty);
                    column_from_arrow(&a, ty).map_err(|e| {
                        Error::data(format!(
                            "{}: column {name}: {}",
                            self.input.display, e.message
                        ))
                    })?
                }
            });
        }
        Ok(Some(Chunk::new(columns, len)))
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let Some((outs, len)) = self.next_columns()? else {
            return Ok(None);
        };
        let mut fields = Vec::with_capacity(outs.len());
        let mut arrays = Vec::with_capacity(outs.len());
        for (k, out) in outs.into_iter().enumerate() {
            let (name, ty) = (&self.targets[k].name, self.targets[k].ty);
            let a = match out {
                Out::Raw(a) => a,
                Out::Col(_) if matches!(self.reads[k], ColRead::Missing) => {
                    new_null_array(&natural_arrow_type(ty), len)
                }
                // A column the query never reads: a placeholder without buffers (a typed
                // null array would allocate and zero every row of it).
                Out::Col(Column::Pruned(..)) => new_null_array(&DataType::Null, len),
                Out::Col(c) => convert::column_to_arrow(name, &c)?.1,
            };
            fields.push(Field::new(name, a.data_type().clone(), true));
            arrays.push(a);
        }
        let schema = Arc::new(ArrowSchema::new(fields));
        Ok(Some(RecordBatch::try_new_with_options(
            schema,
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(len)),
        )?))
    }

    fn complete(&self) -> bool {
        self.complete
    }

    fn into_report(self: Box<Self>) -> FileReport {
        self.tracker.report
    }
}
