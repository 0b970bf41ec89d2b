//! Tables the engine reads: anything that can give a schema and stream record batches.
//! [`MemTable`] holds batches in memory (what Python hands over); file readers implement
//! [`TableProvider`] too, and may skip what the scan does not need.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::column::{Chunk, Column};
use crate::convert;
use crate::error::{Error, Result};
use crate::plan::Schema;

/// A row predicate a reader may apply while decoding (Parquet: before it decodes the
/// other columns, which it then decodes for the kept rows only). It may keep more rows
/// than the query does, never fewer: the query's filter still runs on what comes back.
#[derive(Clone)]
pub struct Prefilter {
    /// The schema columns the predicate reads.
    pub columns: Vec<usize>,
    /// Which of `rows` rows may pass, given those columns (by schema index; the others
    /// are None).
    #[allow(clippy::type_complexity)]
    pub eval: Arc<dyn Fn(&[Option<ArrayRef>], usize) -> Result<BooleanArray> + Send + Sync>,
    /// A looser predicate over other (cheaper) columns to apply before this one: this
    /// one's columns are then decoded for the rows it keeps only.
    pub first: Option<Arc<Prefilter>>,
}

impl std::fmt::Debug for Prefilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Prefilter(columns {:?}", self.columns)?;
        if let Some(p) = &self.first {
            write!(f, ", after {p:?}")?;
        }
        write!(f, ")")
    }
}

/// What a scan may skip: columns the query never reads, and rows outside a time window
/// that the query filters on first.
#[derive(Clone, Debug, Default)]
pub struct ScanRequest {
    /// For each schema column, whether the query reads it.
    pub needed: Vec<bool>,
    /// Rows whose `column` lies outside `[low, high]` (ticks, inclusive) are dropped by a
    /// filter right above the scan, so a reader may skip them wholesale (Parquet row
    /// groups by statistics). Readers may ignore it: the filter still runs.
    pub time_range: Option<TimeRange>,
    /// Rows the query's filter will drop, as a predicate a reader may apply early.
    pub prefilter: Option<Prefilter>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TimeRange {
    /// Index into the table's schema.
    pub column: usize,
    pub low: i64,
    pub high: i64,
}

pub type ChunkStream<'a> = Box<dyn Iterator<Item = Result<Chunk>> + Send + 'a>;
/// A unit of a scan that can run on any thread (Parquet: one row group of one file),
/// giving its raw batches; a scan's tasks, run in order, give the whole scan.
pub type ScanTask<'a> = Box<dyn FnOnce() -> Result<Vec<RecordBatch>> + Send + 'a>;
pub type BatchStream<'a> = Box<dyn Iterator<Item = Result<RecordBatch>> + Send + 'a>;

pub trait TableProvider: Send + Sync {
    /// Column names and Kusto types.
    fn schema(&self) -> Result<Schema>;
    /// Streams the rows as chunks; unneeded columns come back as `Column::Pruned`.
    fn scan(&self, req: &ScanRequest) -> Result<ChunkStream<'_>>;

    /// Streams the rows as raw Arrow batches with every schema column present (columns
    /// the request does not need may be empty placeholders of the right type and
    /// length), so that filters can run on the input layout (dictionaries matched once)
    /// before anything is converted. `None` when the table cannot do this.
    fn scan_arrow(&self, _req: &ScanRequest) -> Option<Result<BatchStream<'_>>> {
        None
    }

    /// Like [`TableProvider::scan_arrow`], as independent tasks that threads can decode
    /// in parallel (results kept in task order). `None` when the table cannot split its
    /// scan (or it would not pay: the default).
    fn scan_arrow_tasks(&self, _req: &ScanRequest) -> Option<Result<Vec<ScanTask<'_>>>> {
        None
    }
}

pub type Catalog = HashMap<String, Arc<dyn TableProvider>>;

/// The most rows [`MemTable::scan`] converts at a time.
const SCAN_SLICE_ROWS: usize = 128 * 1024;

/// Arrow record batches held in memory.
pub struct MemTable {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl MemTable {
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> MemTable {
        MemTable { schema, batches }
    }
    pub fn arrow_schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }
}

impl TableProvider for MemTable {
    fn schema(&self) -> Result<Schema> {
        convert::kql_schema(&self.schema)
    }

    fn scan_arrow(&self, _req: &ScanRequest) -> Option<Result<BatchStream<'_>>> {
        Some(Ok(Box::new(self.batches.iter().map(|b| Ok(b.clone())))))
    }

    fn scan(&self, req: &ScanRequest) -> Result<ChunkStream<'_>> {
        let schema = self.schema()?;
        let needed = req.needed.clone();
        // Converted a slice at a time, as the stream is read: `T | take 10` converts one
        // slice of a million-row batch, not the batch (10M timestamps: 1.06 -> 0.84 ms).
        let slices = self.batches.iter().flat_map(|b| {
            (0..b.num_rows())
                .step_by(SCAN_SLICE_ROWS)
                .map(move |o| b.slice(o, SCAN_SLICE_ROWS.min(b.num_rows() - o)))
        });
        Ok(Box::new(slices.map(move |b| {
            let len = b.num_rows();
            let columns = b
                .columns()
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let ty = schema[i].1;
                    if needed.get(i).copied().unwrap_or(true) {
                        convert::column_from_arrow(a, ty).map_err(|e| {
                            Error::data(format!("column '{}': {}", schema[i].0, e.message))
                        })
                    } else {
                        Ok(Column::Pruned(ty, len))
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Chunk::new(columns, len))
        })))
    }
}
