//! Readers for the files Defender data arrives in: Parquet, CSV (including the Log
//! Analytics portal export) and JSON (the Advanced Hunting and Graph API responses, the
//! Streaming API / storage-account export, JSON Lines), plain or gzip-compressed, named one
//! by one, by directory or by glob pattern.
//!
//! [`read`] turns paths into [`FileTable`]s, one per table the files hold. A `FileTable`
//! is a lazy [`TableProvider`]: it reads the files each time the engine scans it, in chunks,
//! so memory stays flat however large they are. Parquet scans read only the columns the
//! query needs and skip row groups whose `Timestamp` statistics lie outside the query's time
//! window.
//!
//! When the table is known (from the file's content, the caller, or a file named after a
//! Defender table), its documented schema types the columns: datetime text is parsed, longs
//! are parsed, and so on. Values that cannot be read become null and are counted in the
//! file's [`FileReport`] with the first few examples and their line numbers; broken rows are
//! dropped and counted the same way; with `strict` the first one is an error naming file and
//! line. A truncated or corrupt file is always a [`crate::ErrorKind::Data`] error naming it.
//!
//! ```no_run
//! use rmmhunt::source::{read, ReadOptions};
//! let opts = ReadOptions { table: Some("DeviceProcessEvents".into()), ..ReadOptions::default() };
//! let tables = read(&["exports/*.csv.gz"], &opts).unwrap();
//! for t in &tables {
//!     for r in t.report().unwrap() {
//!         eprintln!("{r}");
//!     }
//! }
//! ```

mod csv;
mod encoding;
mod json;
mod parquet;
mod report;
pub mod schemas;
mod values;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::record_batch::RecordBatch;

use crate::column::{Chunk, Column};
use crate::error::{Error, Result};
use crate::plan::Schema;
use crate::table::{BatchStream, ChunkStream, ScanRequest, ScanTask, TableProvider};
use crate::types::KqlType;

pub use report::{BadRow, FileReport, MAX_EXAMPLES};
pub use values::{parse_us_datetime, Zone};

use values::{ColumnBuilder, Kind};

/// Rows per chunk for the text formats (Parquet batches are the same size).
pub const BATCH_ROWS: usize = 8192;

/// A file format, when the caller wants to force one (otherwise it is sniffed from the
/// content: Parquet's magic bytes, a JSON opening brace or bracket, else CSV).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Parquet,
    Csv,
    Tsv,
    Json,
}

impl Format {
    pub fn parse(name: &str) -> Result<Format> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "parquet" | "pq" => Format::Parquet,
            "csv" => Format::Csv,
            "tsv" => Format::Tsv,
            "json" | "jsonl" | "ndjson" => Format::Json,
            _ => {
                return Err(Error::data(format!(
                    "unknown format {name:?}: expected parquet, csv, tsv or json"
                )))
            }
        })
    }
}

/// How to read.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// The table the files hold, where their content does not say (it wins where it does:
    /// the Streaming API's `category`, the portal export's `Type` column). With a table
    /// given, [`read`] returns only that table.
    pub table: Option<String>,
    /// Bad rows are errors instead of being reported.
    pub strict: bool,
    /// The zone of `[Local Time]` columns in Log Analytics exports: an IANA name or an
    /// offset. Without it they are read as UTC, with a warning in the report.
    pub timezone: Option<String>,
    /// Forces a format instead of sniffing it.
    pub format: Option<Format>,
    /// Rows per chunk (default [`BATCH_ROWS`]).
    pub batch_rows: Option<usize>,
}

/// How a file's column arrives, before the table's schema types it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SrcType {
    /// Typed by the file (Parquet, API `Schema`, a portal `[UTC]` header).
    Typed(KqlType),
    /// CSV text: a string unless the table's schema says otherwise.
    Text,
    /// JSON values of these kinds (Streaming API, JSON Lines).
    Json(Kind),
}

impl SrcType {
    fn natural(&self) -> Option<KqlType> {
        match self {
            SrcType::Typed(KqlType::Decimal) => Some(KqlType::Real),
            SrcType::Typed(t) => Some(*t),
            SrcType::Text => Some(KqlType::String),
            SrcType::Json(k) => k.kql_type(),
        }
    }
}

/// A file on disk, maybe gzip-compressed.
#[derive(Clone, Debug)]
pub(crate) struct Input {
    pub path: PathBuf,
    pub display: String,
    pub gzip: bool,
    /// Text in another encoding than UTF-8 is transcoded by [`Input::open`].
    pub encoding: encoding::Encoding,
}

impl Input {
    /// The file's (decompressed) bytes as a stream, UTF-16 text transcoded to UTF-8.
    pub fn open(&self) -> Result<Box<dyn BufRead + Send>> {
        let raw = self.open_raw()?;
        let big_endian = match self.encoding {
            encoding::Encoding::Utf16Le => false,
            encoding::Encoding::Utf16Be => true,
            encoding::Encoding::Utf8 | encoding::Encoding::Utf32 => return Ok(raw),
        };
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            encoding::Utf16Reader::new(raw, big_endian),
        )))
    }

    /// The file's (decompressed) bytes as a stream, as they are.
    fn open_raw(&self) -> Result<Box<dyn BufRead + Send>> {
        let f =
            File::open(&self.path).map_err(|e| Error::data(format!("{}: {e}", self.display)))?;
        let f = BufReader::with_capacity(1 << 16, f);
        if self.gzip {
            Ok(Box::new(BufReader::with_capacity(
                1 << 16,
                GzRead {
                    inner: flate2::bufread::MultiGzDecoder::new(f),
                },
            )))
        } else {
            Ok(Box::new(f))
        }
    }

    /// An I/O error while reading this file, as a data error naming it.
    pub fn io_error(&self, e: impl std::fmt::Display) -> Error {
        if self.gzip {
            Error::data(format!(
                "{}: the gzip stream is truncated or corrupt: {e}",
                self.display
            ))
        } else {
            Error::data(format!("{}: {e}", self.display))
        }
    }
}

/// A gzip decoder whose errors say so.
struct GzRead<R: BufRead> {
    inner: flate2::bufread::MultiGzDecoder<R>,
}

impl<R: BufRead> Read for GzRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

/// What a format found in one file: one entry per table whose rows it holds.
pub(crate) struct Found {
    /// The table (named by the content, else the default); None when nothing names it.
    pub table: Option<String>,
    pub columns: Vec<(String, SrcType)>,
    /// Whether the columns' order means something (a header, a schema); JSON object keys
    /// are put in the table's documented order instead.
    pub ordered: bool,
}

/// A format's view of one file, shared by the tables the file contributes to.
pub(crate) enum FileState {
    Parquet(Arc<parquet::ParquetFile>),
    Csv(Arc<csv::CsvFile>),
    Json(Arc<json::JsonFile>),
}

pub(crate) struct Probe {
    pub format: String,
    pub found: Vec<Found>,
    pub state: FileState,
}

/// Where one table column comes from in one file.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub name: String,
    pub ty: KqlType,
    /// Index into the part's columns; None when the file lacks the column (read as null).
    pub source: Option<usize>,
    /// Whether the scan returns it (unneeded columns come back as `Column::Pruned`).
    pub needed: bool,
}

/// How a pass reads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mode {
    pub strict: bool,
    /// Check every value even where the scan does not need it (for [`FileTable::report`]).
    pub validate_all: bool,
    pub batch_rows: usize,
}

/// One file's rows of one table.
pub(crate) struct Part {
    pub input: Input,
    pub format: String,
    pub table: String,
    /// Whether the part holds the file's rows whose content names no table (the table came
    /// from the caller, the file name or the columns).
    pub unnamed: bool,
    pub columns: Vec<(String, SrcType)>,
    pub state: FileState,
}

/// A pass over one part, chunk by chunk.
pub(crate) trait PartReader: Send {
    fn next_chunk(&mut self) -> Result<Option<Chunk>>;
    /// The next rows as raw Arrow, every table column present in table order (unneeded
    /// ones as null placeholders); only Parquet readers give them.
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        Err(Error::internal("this reader gives no raw Arrow batches"))
    }
    /// Whether the pass saw every row and checked every value (so its report is the file's).
    fn complete(&self) -> bool {
        true
    }
    fn into_report(self: Box<Self>) -> FileReport;
}

/// Builds a chunk's columns row by row (CSV and JSON).
pub(crate) struct RowColumns {
    pub targets: Vec<Target>,
    /// One builder per target with a source in the file.
    pub builders: Vec<Option<ColumnBuilder>>,
    pub rows: usize,
}

impl RowColumns {
    pub fn new(targets: Vec<Target>, zone_of: impl Fn(usize) -> Zone, mode: Mode) -> RowColumns {
        let builders = targets
            .iter()
            .map(|t| {
                t.source.map(|s| {
                    ColumnBuilder::new(
                        t.ty,
                        zone_of(s),
                        t.needed,
                        if t.needed { mode.batch_rows } else { 0 },
                    )
                })
            })
            .collect();
        RowColumns {
            targets,
            builders,
            rows: 0,
        }
    }

    pub fn finish(&mut self) -> (Chunk, u64) {
        let len = self.rows;
        let mut folds = 0;
        let columns = self
            .targets
            .iter()
            .zip(self.builders.iter_mut())
            .map(|(t, b)| match b {
                Some(b) => {
                    folds += std::mem::take(&mut b.folds);
                    b.finish()
                }
                None if t.needed => values::null_column(t.ty, len),
                None => Column::Pruned(t.ty, len),
            })
            .collect();
        self.rows = 0;
        (Chunk::new(columns, len), folds)
    }
}

/// Files holding one table, read lazily each time the engine scans it.
pub struct FileTable {
    name: String,
    schema: Schema,
    parts: Vec<Part>,
    notes: Vec<String>,
    strict: bool,
    batch_rows: usize,
    /// The report of each part's last complete pass.
    reports: Mutex<Vec<Option<FileReport>>>,
}

impl std::fmt::Debug for FileTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTable")
            .field("name", &self.name)
            .field("paths", &self.paths())
            .finish()
    }
}

impl FileTable {
    /// The table's name (`DeviceProcessEvents`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The files read, in reading order.
    pub fn paths(&self) -> Vec<String> {
        self.parts.iter().map(|p| p.input.display.clone()).collect()
    }

    /// Column names and Kusto types: the table's documented columns that the files have,
    /// in the documentation's order, then the others in order of appearance.
    pub fn columns(&self) -> &Schema {
        &self.schema
    }

    /// Things worth knowing that are not about one file's rows: files skipped in a
    /// directory, files holding other tables.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    pub fn strict(&self) -> bool {
        self.strict
    }

    fn mode(&self, validate_all: bool, strict: bool) -> Mode {
        Mode {
            strict,
            validate_all,
            batch_rows: self.batch_rows,
        }
    }

    fn targets(&self, part: &Part, needed: &[bool]) -> Vec<Target> {
        self.schema
            .iter()
            .enumerate()
            .map(|(i, (name, ty))| Target {
                name: name.clone(),
                ty: *ty,
                source: part.columns.iter().position(|(n, _)| n == name),
                needed: needed.get(i).copied().unwrap_or(true),
            })
            .collect()
    }

    fn part_reader<'a>(
        &'a self,
        i: usize,
        req: &ScanRequest,
        mode: Mode,
    ) -> Result<Box<dyn PartReader + 'a>> {
        self.part_reader_of(i, req, mode, None)
    }

    /// A reader of part `i`; for Parquet, of its row group `only_group` alone when given.
    fn part_reader_of<'a>(
        &'a self,
        i: usize,
        req: &ScanRequest,
        mode: Mode,
        only_group: Option<usize>,
    ) -> Result<Box<dyn PartReader + 'a>> {
        let part = &self.parts[i];
        let targets = self.targets(part, &req.needed);
        let time = req.time_range.as_ref().and_then(|r| {
            let name = &self.schema.get(r.column)?.0;
            Some((name.clone(), r.low, r.high))
        });
        guard(&part.input.display, || match &part.state {
            FileState::Parquet(f) => parquet::reader(
                part,
                f.clone(),
                targets,
                time.clone(),
                mode,
                req.prefilter.clone(),
                only_group,
            ),
            FileState::Csv(f) => csv::reader(part, f.clone(), targets, mode),
            FileState::Json(f) => json::reader(part, f.clone(), targets, mode),
        })
    }

    /// The report of every file: rows read, bad rows with the first examples, warnings.
    /// Files not yet read completely by a scan are read once for it (never strict here).
    pub fn report(&self) -> Result<Vec<FileReport>> {
        for i in 0..self.parts.len() {
            if self.cached(i).is_some() {
                continue;
            }
            let req = ScanRequest {
                needed: vec![false; self.schema.len()],
                time_range: None,
                prefilter: None,
            };
            let mut r = self.part_reader(i, &req, self.mode(true, false))?;
            let display = self.parts[i].input.display.clone();
            while guard(&display, || r.next_chunk())?.is_some() {}
            let rep = r.into_report();
            self.store(i, rep);
        }
        Ok((0..self.parts.len())
            .filter_map(|i| self.cached(i))
            .collect())
    }

    fn cached(&self, i: usize) -> Option<FileReport> {
        self.reports
            .lock()
            .ok()
            .and_then(|r| r.get(i).cloned().flatten())
    }

    fn store(&self, i: usize, report: FileReport) {
        if let Ok(mut r) = self.reports.lock() {
            if let Some(slot) = r.get_mut(i) {
                *slot = Some(report);
            }
        }
    }

    /// All rows as one Arrow record batch (the engine's output types: datetimes as
    /// `timestamp[ns, UTC]`, each field tagged with its Kusto type).
    pub fn to_record_batch(&self) -> Result<RecordBatch> {
        let req = ScanRequest {
            needed: vec![true; self.schema.len()],
            time_range: None,
            prefilter: None,
        };
        let chunks: Vec<Chunk> = self.scan(&req)?.collect::<Result<_>>()?;
        let mut columns = Vec::with_capacity(self.schema.len());
        for (k, (_, ty)) in self.schema.iter().enumerate() {
            let cols: Vec<&Column> = chunks.iter().filter_map(|c| c.columns.get(k)).collect();
            columns.push(Column::concat(*ty, &cols)?);
        }
        let names: Vec<String> = self.schema.iter().map(|(n, _)| n.clone()).collect();
        crate::convert::to_record_batch(&names, &columns)
    }
}

/// Runs decoding code that might panic on a hostile file (third-party decoders) and turns
/// a panic into a data error naming the file.
fn guard<T>(display: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let what = crate::error::panic_message(p.as_ref()).unwrap_or("the decoder failed");
            Err(Error::data(format!(
                "{display}: the file is corrupt or not in the format it seems to be ({what})"
            )))
        }
    }
}

impl TableProvider for FileTable {
    fn schema(&self) -> Result<Schema> {
        Ok(self.schema.clone())
    }

    fn scan(&self, req: &ScanRequest) -> Result<ChunkStream<'_>> {
        Ok(Box::new(Scan::new(
            self,
            req,
            |r| r.next_chunk(),
            |c: &Chunk| c.len,
        )))
    }

    /// Raw Arrow batches (dictionaries kept as the Parquet reader gives them), for tables
    /// read from Parquet files only.
    fn scan_arrow(&self, req: &ScanRequest) -> Option<Result<BatchStream<'_>>> {
        if !self
            .parts
            .iter()
            .all(|p| matches!(p.state, FileState::Parquet(_)))
        {
            return None;
        }
        Some(Ok(Box::new(Scan::new(
            self,
            req,
            |r| r.next_batch(),
            |b: &RecordBatch| b.num_rows(),
        ))))
    }

    /// One task per row group of each Parquet file, when the scan has a prefilter (so
    /// each task returns only the rows the query may keep, and no file report is due
    /// from a filtered pass) and there is more than one row group.
    fn scan_arrow_tasks(&self, req: &ScanRequest) -> Option<Result<Vec<ScanTask<'_>>>> {
        req.prefilter.as_ref()?;
        let mut units: Vec<(usize, usize)> = Vec::new();
        for (i, p) in self.parts.iter().enumerate() {
            let FileState::Parquet(f) = &p.state else {
                return None;
            };
            let groups = f.row_groups();
            units.extend((0..groups).map(|g| (i, g)));
        }
        if units.len() < 2 {
            return None;
        }
        let tasks = units
            .into_iter()
            .map(|(i, g)| {
                let req = req.clone();
                Box::new(move || -> Result<Vec<RecordBatch>> {
                    let mode = self.mode(false, self.strict);
                    let display = &self.parts[i].input.display;
                    let mut r = self.part_reader_of(i, &req, mode, Some(g))?;
                    let mut out = Vec::new();
                    while let Some(b) = guard(display, || r.next_batch())? {
                        if b.num_rows() > 0 {
                            out.push(b);
                        }
                    }
                    Ok(out)
                }) as ScanTask<'_>
            })
            .collect();
        Some(Ok(tasks))
    }
}

/// A scan over the parts in order; a part's report is kept when the pass over it was complete.
struct Scan<'a, T> {
    table: &'a FileTable,
    req: ScanRequest,
    next: usize,
    current: Option<(usize, Box<dyn PartReader + 'a>)>,
    done: bool,
    fetch: fn(&mut (dyn PartReader + 'a)) -> Result<Option<T>>,
    rows: fn(&T) -> usize,
}

impl<'a, T> Scan<'a, T> {
    fn new(
        table: &'a FileTable,
        req: &ScanRequest,
        fetch: fn(&mut (dyn PartReader + 'a)) -> Result<Option<T>>,
        rows: fn(&T) -> usize,
    ) -> Scan<'a, T> {
        Scan {
            table,
            req: req.clone(),
            next: 0,
            current: None,
            done: false,
            fetch,
            rows,
        }
    }
}

impl<T> Iterator for Scan<'_, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        while !self.done {
            let (i, reader) = match &mut self.current {
                Some((i, r)) => (*i, r),
                None => {
                    if self.next >= self.table.parts.len() {
                        self.done = true;
                        return None;
                    }
                    let i = self.next;
                    self.next += 1;
                    let mode = self.table.mode(false, self.table.strict);
                    match self.table.part_reader(i, &self.req, mode) {
                        Ok(r) => {
                            self.current = Some((i, r));
                            continue;
                        }
                        Err(e) => {
                            self.done = true;
                            return Some(Err(e));
                        }
                    }
                }
            };
            let display = &self.table.parts[i].input.display;
            let fetch = self.fetch;
            match guard(display, || fetch(reader.as_mut())) {
                Ok(Some(out)) if (self.rows)(&out) == 0 => continue,
                Ok(Some(out)) => return Some(Ok(out)),
                Ok(None) => {
                    if let Some((i, r)) = self.current.take() {
                        if r.complete() {
                            let rep = r.into_report();
                            self.table.store(i, rep);
                        }
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------------
// Opening: paths -> files -> formats -> tables

/// File extensions read from directories (each also with `.gz`).
const EXTENSIONS: &[&str] = &["parquet", "pq", "csv", "tsv", "json", "jsonl", "ndjson"];

fn has_known_extension(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    EXTENSIONS.iter().any(|e| name.ends_with(&format!(".{e}")))
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') || n.starts_with('_'))
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, bool)>, skipped: &mut Vec<PathBuf>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::data(format!("{}: {e}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if is_hidden(&p) {
            continue;
        }
        if p.is_dir() {
            walk(&p, out, skipped)?;
        } else if has_known_extension(&p) {
            out.push((p, true));
        } else {
            skipped.push(p);
        }
    }
    Ok(())
}

/// Paths, directories (recursively) and glob patterns -> files, in order, without repeats;
/// each with whether it was found by walking a directory.
fn expand(paths: &[String], notes: &mut Vec<String>) -> Result<Vec<(PathBuf, bool)>> {
    let mut files = Vec::new();
    for p in paths {
        let path = Path::new(p);
        let mut skipped = Vec::new();
        if path.is_file() {
            files.push((path.to_path_buf(), false));
        } else if path.is_dir() {
            let before = files.len();
            walk(path, &mut files, &mut skipped)?;
            if files.len() == before {
                return Err(Error::data(format!(
                    "{p}: the directory holds no data files (.parquet, .csv, .tsv, .json, .jsonl, .ndjson, optionally .gz)"
                )));
            }
        } else if p.contains(['*', '?', '[']) {
            let matches =
                glob::glob(p).map_err(|e| Error::data(format!("{p}: bad glob pattern: {e}")))?;
            let before = files.len();
            for m in matches {
                let m = m.map_err(|e| Error::data(format!("{p}: {e}")))?;
                if m.is_dir() {
                    walk(&m, &mut files, &mut skipped)?;
                } else {
                    files.push((m, false));
                }
            }
            if files.len() == before {
                return Err(Error::data(format!("{p}: no files match")));
            }
        } else {
            return Err(Error::data(format!("{p}: no such file or directory")));
        }
        if !skipped.is_empty() {
            let names: Vec<String> = skipped
                .iter()
                .take(5)
                .map(|s| s.display().to_string())
                .collect();
            let more = if skipped.len() > 5 {
                format!(" and {} more", skipped.len() - 5)
            } else {
                String::new()
            };
            notes.push(format!(
                "{p}: {} files skipped (not a data file extension): {}{more}",
                skipped.len(),
                names.join(", ")
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|(f, _)| seen.insert(f.clone()));
    Ok(files)
}

/// What a file's first bytes say it is.
enum Sniffed {
    Parquet,
    Csv,
    Tsv,
    Json,
    Empty,
}

fn sniff(input: &mut Input, forced: Option<Format>) -> Result<Sniffed> {
    let mut f =
        File::open(&input.path).map_err(|e| Error::data(format!("{}: {e}", input.display)))?;
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut f, &mut magic).map_err(|e| input.io_error(e))?;
    input.gzip = n >= 2 && magic[..2] == [0x1f, 0x8b];
    let mut head = vec![0u8; 4096];
    let n = {
        let mut r = input.open()?;
        read_up_to(&mut r, &mut head).map_err(|e| input.io_error(e))?
    };
    head.truncate(n);
    let name = input.display.to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    let parquet_name = name.ends_with(".parquet") || name.ends_with(".pq");
    if forced == Some(Format::Parquet) || (forced.is_none() && head.starts_with(b"PAR1")) {
        return Ok(Sniffed::Parquet);
    }
    let head = match text_head(input, head) {
        Ok(h) => h,
        // A file named .parquet that is not text: the Parquet reader says what is wrong.
        Err(_) if forced.is_none() && parquet_name => return Ok(Sniffed::Parquet),
        Err(e) => return Err(e),
    };
    if let Some(f) = forced {
        return Ok(match f {
            Format::Parquet => Sniffed::Parquet,
            Format::Csv => Sniffed::Csv,
            Format::Tsv => Sniffed::Tsv,
            Format::Json => Sniffed::Json,
        });
    }
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&head);
    let first = text.iter().find(|b| !b.is_ascii_whitespace());
    Ok(match first {
        None => Sniffed::Empty,
        Some(b'{') | Some(b'[') => Sniffed::Json,
        _ if parquet_name => Sniffed::Parquet,
        _ if name.ends_with(".tsv") => Sniffed::Tsv,
        _ => Sniffed::Csv,
    })
}

/// The first bytes of a file that is not Parquet, as the text readers will see them: UTF-16
/// is recognised (and `input` set to transcode it, since Excel's "Unicode Text" and Windows
/// PowerShell 5.1 write it), and a file that is UTF-32 or not text at all is a data error
/// naming it, rather than being read as a CSV file of garbage rows.
fn text_head(input: &mut Input, head: Vec<u8>) -> Result<Vec<u8>> {
    use encoding::Encoding;
    let enc = encoding::detect(&head);
    let head = match enc {
        Encoding::Utf8 => head,
        Encoding::Utf16Le | Encoding::Utf16Be => {
            input.encoding = enc;
            encoding::transcode(&head, enc == Encoding::Utf16Be)
        }
        Encoding::Utf32 => {
            return Err(Error::data(format!(
                "{}: UTF-32 text: save it as UTF-8",
                input.display
            )))
        }
    };
    if let Some(why) = encoding::not_text(&head) {
        let what = if enc == Encoding::Utf8 {
            String::new()
        } else {
            format!(" (read as {} text)", enc.name())
        };
        return Err(Error::data(format!(
            "{}: not a CSV, JSON or Parquet file{what}: {why}",
            input.display
        )));
    }
    Ok(head)
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A Defender table named by the file (`DeviceProcessEvents.parquet`, `deviceprocessevents.csv.gz`).
fn table_from_file_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = name.split('.').next()?;
    schemas::canonical_table(stem).map(str::to_string)
}

/// The Defender table whose distinctive documented columns (documented for it and for no
/// other known table) the file has the most of; None when it has none, or on a tie.
fn table_from_columns(columns: &[(String, SrcType)]) -> Option<String> {
    let tables = schemas::known_tables();
    let has = |t: &str, c: &str| schemas::column_type(t, c).is_some();
    let mut scores: Vec<(usize, usize, &str)> = tables
        .iter()
        .map(|&t| {
            let own = columns.iter().filter(|(c, _)| has(t, c)).count();
            let distinct = columns
                .iter()
                .filter(|(c, _)| has(t, c) && !tables.iter().any(|&o| o != t && has(o, c)))
                .count();
            (distinct, own, t)
        })
        .collect();
    scores.sort_by(|a, b| b.cmp(a));
    let best = scores.first()?;
    if best.0 == 0
        || scores
            .get(1)
            .is_some_and(|s| (s.0, s.1) == (best.0, best.1))
    {
        return None;
    }
    Some(best.2.to_string())
}

/// The table named `name`: a known Defender table in its documented spelling, else as given.
fn canonical(name: &str) -> String {
    schemas::canonical_table(name)
        .map(str::to_string)
        .unwrap_or_else(|| name.to_string())
}

/// Reads the files at `paths` (files, directories, glob patterns) and returns one
/// [`FileTable`] per table they hold, in order of first appearance; with
/// `opts.table`, exactly that table.
pub fn read<S: AsRef<str>>(paths: &[S], opts: &ReadOptions) -> Result<Vec<FileTable>> {
    let paths: Vec<String> = paths.iter().map(|p| p.as_ref().to_string()).collect();
    if paths.is_empty() {
        return Err(Error::data("no paths given"));
    }
    let zone = match &opts.timezone {
        Some(z) => Some(Zone::parse(z)?),
        None => None,
    };
    let wanted = opts.table.as_deref().map(canonical);
    let mut notes = Vec::new();
    let files = expand(&paths, &mut notes)?;
    let mut groups: Vec<(String, Vec<Part>)> = Vec::new();
    let mut unnamed_files: Vec<String> = Vec::new();
    for (path, from_dir) in files {
        let display = path.display().to_string();
        let mut input = Input {
            path: path.clone(),
            display: display.clone(),
            gzip: false,
            encoding: encoding::Encoding::Utf8,
        };
        let kind = sniff(&mut input, opts.format)?;
        let default_table = wanted.clone().or_else(|| table_from_file_name(&path));
        let probe = match kind {
            Sniffed::Empty => {
                notes.push(format!("{display}: empty file, no rows"));
                continue;
            }
            Sniffed::Parquet => parquet::probe(&input)?,
            Sniffed::Csv => csv::probe(&input, b',', zone.as_ref())?,
            Sniffed::Tsv => csv::probe(&input, b'\t', zone.as_ref())?,
            Sniffed::Json => json::probe(&input)?,
        };
        if probe.found.is_empty() {
            notes.push(format!("{display}: no rows"));
        }
        for found in probe.found {
            // The content names the table, else the caller, else the file name, else the
            // file's columns.
            let unnamed = found.table.is_none();
            let inferred = match (&found.table, &default_table) {
                (None, None) => table_from_columns(&found.columns),
                _ => None,
            };
            if let Some(t) = &inferred {
                notes.push(format!(
                    "{display}: read as {t}, the table whose documented columns it has"
                ));
            }
            let Some(table) = found
                .table
                .or_else(|| default_table.clone())
                .or(inferred)
                .map(|t| canonical(&t))
            else {
                if from_dir {
                    // Found by walking a directory: skipped (and said so) unless nothing else is read.
                    unnamed_files.push(display.clone());
                    continue;
                }
                return Err(unnamed_error(&display));
            };
            check_column_names(&display, &found.columns)?;
            let mut columns = found.columns;
            if !found.ordered {
                let doc = schemas::table_schema(&table);
                let rank = |n: &str| {
                    doc.and_then(|d| d.iter().position(|(c, _)| c == n))
                        .unwrap_or(usize::MAX)
                };
                columns.sort_by_key(|(n, _)| rank(n));
            }
            let state = match &probe.state {
                FileState::Parquet(f) => FileState::Parquet(f.clone()),
                FileState::Csv(f) => FileState::Csv(f.clone()),
                FileState::Json(f) => FileState::Json(f.clone()),
            };
            let part = Part {
                input: input.clone(),
                format: match input.encoding {
                    encoding::Encoding::Utf8 => probe.format.clone(),
                    e => format!("{} from {} text", probe.format, e.name()),
                },
                table: table.clone(),
                unnamed,
                columns,
                state,
            };
            match groups.iter_mut().find(|(n, _)| *n == table) {
                Some((_, parts)) => parts.push(part),
                None => groups.push((table, vec![part])),
            }
        }
    }
    if !unnamed_files.is_empty() {
        if groups.is_empty() {
            return Err(unnamed_error(&unnamed_files.join(", ")));
        }
        notes.push(format!(
            "files skipped because nothing tells which table they hold (give the table name to read them): {}",
            unnamed_files.join(", ")
        ));
    }
    if let Some(w) = &wanted {
        let others: Vec<String> = groups
            .iter()
            .filter(|(n, _)| n != w)
            .map(|(n, parts)| format!("{n} ({} files)", parts.len()))
            .collect();
        if !groups.iter().any(|(n, _)| n == w) {
            if others.is_empty() {
                // Nothing at all (empty files): an empty table, its documented columns if known.
                notes.push(format!("{}: no rows of {w} found", paths.join(", ")));
                let schema = schemas::table_schema(w).cloned().unwrap_or_default();
                return Ok(vec![FileTable {
                    name: w.clone(),
                    schema,
                    parts: Vec::new(),
                    notes,
                    strict: opts.strict,
                    batch_rows: opts.batch_rows.unwrap_or(BATCH_ROWS).max(1),
                    reports: Mutex::new(Vec::new()),
                }]);
            }
            return Err(Error::data(format!(
                "{}: no rows of {w} found; the files hold {} (by their content)",
                paths.join(", "),
                others.join(", ")
            )));
        }
        if !others.is_empty() {
            notes.push(format!(
                "rows of other tables are not read (table={w} was asked for): {}",
                others.join(", ")
            ));
        }
        groups.retain(|(n, _)| n == w);
    }
    if groups.is_empty() {
        return Err(Error::data(format!("{}: no rows found", paths.join(", "))));
    }
    let batch_rows = opts.batch_rows.unwrap_or(BATCH_ROWS).max(1);
    groups
        .into_iter()
        .map(|(name, parts)| {
            let schema = table_schema_of(&name, &parts)?;
            let n = parts.len();
            Ok(FileTable {
                name,
                schema,
                parts,
                notes: notes.clone(),
                strict: opts.strict,
                batch_rows,
                reports: Mutex::new(vec![None; n]),
            })
        })
        .collect()
}

/// A column name holding a NUL character is a data error naming the file and the column:
/// Arrow's C interface (how tables reach Python) cannot carry such a name, and no Defender
/// column has one, so it means a damaged header or key rather than a name to keep.
fn check_column_names(display: &str, columns: &[(String, SrcType)]) -> Result<()> {
    match columns.iter().find(|(n, _)| n.contains('\0')) {
        Some((n, _)) => Err(Error::data(format!(
            "{display}: column name {n:?} holds a NUL character; is the file damaged or not text?"
        ))),
        None => Ok(()),
    }
}

fn unnamed_error(files: &str) -> Error {
    Error::data(format!(
        "{files}: cannot tell which table this file holds (its content does not name one); \
         give the table name (table=... / --table NAME=PATH)"
    ))
}

/// Like [`read`], for exactly one table: an error names the tables found if there are several.
pub fn read_table<S: AsRef<str>>(paths: &[S], opts: &ReadOptions) -> Result<FileTable> {
    let mut tables = read(paths, opts)?;
    if tables.len() == 1 {
        if let Some(t) = tables.pop() {
            return Ok(t);
        }
    }
    let names: Vec<&str> = tables.iter().map(|t| t.name()).collect();
    Err(Error::data(format!(
        "{}: the files hold rows of several tables ({}); name the one to read",
        paths
            .iter()
            .map(|p| p.as_ref())
            .collect::<Vec<_>>()
            .join(", "),
        names.join(", ")
    )))
}

/// The table's columns in order of first appearance (JSON objects, whose key order means
/// nothing, list documented columns in the documentation's order); documented columns
/// typed as documented, the others by what the files say.
fn table_schema_of(name: &str, parts: &[Part]) -> Result<Schema> {
    let documented = schemas::table_schema(name);
    let mut cols: Vec<(String, Option<KqlType>)> = Vec::new();
    for part in parts {
        for (col, src) in &part.columns {
            let doc = documented
                .and_then(|d| d.iter().find(|(n, _)| n == col))
                .map(|(_, t)| *t);
            match cols.iter_mut().find(|(n, _)| n == col) {
                Some((_, ty)) if doc.is_none() => *ty = unify(*ty, src.natural()),
                Some(_) => {}
                None => cols.push((col.clone(), doc.or_else(|| src.natural()))),
            }
        }
    }
    Ok(cols
        .into_iter()
        .map(|(n, t)| (n, t.unwrap_or(KqlType::String)))
        .collect())
}

fn unify(a: Option<KqlType>, b: Option<KqlType>) -> Option<KqlType> {
    use KqlType::*;
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) if a == b => Some(a),
        (Some(a), Some(b)) if a.is_numeric() && b.is_numeric() => {
            Some(if a == Real || b == Real || a == Decimal || b == Decimal {
                Real
            } else {
                Long
            })
        }
        _ => Some(String),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unify_types() {
        assert_eq!(
            unify(Some(KqlType::Int), Some(KqlType::Long)),
            Some(KqlType::Long)
        );
        assert_eq!(
            unify(Some(KqlType::Long), Some(KqlType::Real)),
            Some(KqlType::Real)
        );
        assert_eq!(
            unify(Some(KqlType::DateTime), Some(KqlType::Long)),
            Some(KqlType::String)
        );
        assert_eq!(unify(None, Some(KqlType::Bool)), Some(KqlType::Bool));
    }

    #[test]
    fn file_names_name_tables() {
        assert_eq!(
            table_from_file_name(Path::new("/x/DeviceProcessEvents.parquet")).as_deref(),
            Some("DeviceProcessEvents")
        );
        assert_eq!(
            table_from_file_name(Path::new("devicenetworkevents.csv.gz")).as_deref(),
            Some("DeviceNetworkEvents")
        );
        assert_eq!(table_from_file_name(Path::new("export.csv")), None);
    }

    #[test]
    fn file_table_is_send_sync() {
        fn check<T: Send + Sync + std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
        check::<ReadOptions>();
        fn check_ss<T: Send + Sync>() {}
        check_ss::<FileTable>();
    }
}
