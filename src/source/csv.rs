//! CSV (and TSV) with a header row, including the Log Analytics / Sentinel portal's
//! "Export to CSV": headers such as `Timestamp [UTC]` or `TimeGenerated [Local Time]` name
//! datetime columns and their zone, times look like `10/25/2023, 9:43:21.994 AM`, and the
//! `Type` column names the table.

use std::collections::VecDeque;
use std::io::{BufRead, Read};
use std::sync::Arc;

use crate::column::Chunk;
use crate::error::{Error, Result};
use crate::source::report::{FileReport, Loc, Tracker};
use crate::source::values::Zone;
use crate::source::{
    schemas, FileState, Found, Input, Mode, Part, PartReader, Probe, RowColumns, SrcType, Target,
};
use crate::types::KqlType;

/// What the header and first row of a CSV file say.
pub(crate) struct CsvFile {
    delimiter: u8,
    /// The zone of each column's zone-less datetime text.
    zones: Vec<Zone>,
    /// The portal's `Type` column, when it names the table.
    type_column: Option<usize>,
    warnings: Vec<String>,
    width: usize,
}

/// `Name [UTC]` -> (`Name`, the label).
fn split_label(header: &str) -> Option<(&str, &str)> {
    let h = header.trim();
    let inner = h.strip_suffix(']')?;
    let open = inner.rfind(" [")?;
    let name = inner[..open].trim();
    let label = inner[open + 2..].trim();
    (!name.is_empty() && !label.is_empty()).then_some((name, label))
}

fn csv_reader<R: std::io::Read>(delimiter: u8, rdr: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(rdr)
}

/// The file's bytes on their way to the CSV parser, with the offsets of the line breaks
/// (CR and LF) it has been given but not yet passed, so that a record's physical line can
/// be told exactly: the parser's own count is one short on CRLF files, where a record ends
/// at the CR and the next record's position is the LF still on the line before.
struct LineBreaks<R> {
    inner: R,
    offset: u64,
    /// (offset, whether it is LF) of each CR and LF not yet passed.
    pending: VecDeque<(u64, bool)>,
    /// LFs before the last record's start.
    passed: u64,
}

impl<R: Read> Read for LineBreaks<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let got = &buf[..n];
        for i in memchr::memchr2_iter(b'\r', b'\n', got) {
            self.pending
                .push_back((self.offset + i as u64, got[i] == b'\n'));
        }
        self.offset += n as u64;
        Ok(n)
    }
}

impl<R> LineBreaks<R> {
    fn new(inner: R) -> LineBreaks<R> {
        LineBreaks {
            inner,
            offset: 0,
            pending: VecDeque::new(),
            passed: 0,
        }
    }

    /// The 1-based line of the record the parser says starts at byte `start` (records
    /// come in order). Its content starts after the line breaks at `start`, if any (the
    /// LF of a CRLF, blank lines), since a record never starts with one.
    fn line_of(&mut self, start: u64) -> u64 {
        while let Some(&(o, lf)) = self.pending.front() {
            if o >= start {
                break;
            }
            self.pending.pop_front();
            self.passed += u64::from(lf);
        }
        let leading = (start..)
            .zip(&self.pending)
            .take_while(|(at, (o, _))| o == at)
            .filter(|(_, (_, lf))| *lf)
            .count();
        1 + self.passed + leading as u64
    }
}

fn csv_error(input: &Input, e: csv::Error) -> Error {
    match e.kind() {
        csv::ErrorKind::Io(io) => input.io_error(io),
        _ => Error::data(format!("{}: {e}", input.display)),
    }
}

pub(crate) fn probe(input: &Input, delimiter: u8, zone: Option<&Zone>) -> Result<Probe> {
    let mut rdr = csv_reader(delimiter, input.open()?);
    let mut header = csv::ByteRecord::new();
    if !rdr
        .read_byte_record(&mut header)
        .map_err(|e| csv_error(input, e))?
    {
        return Ok(Probe {
            format: "csv".into(),
            found: Vec::new(),
            state: FileState::Csv(Arc::new(CsvFile {
                delimiter,
                zones: Vec::new(),
                type_column: None,
                warnings: Vec::new(),
                width: 0,
            })),
        });
    }
    let mut first = csv::ByteRecord::new();
    let has_first = rdr
        .read_byte_record(&mut first)
        .map_err(|e| csv_error(input, e))?;

    let mut warnings = Vec::new();
    let mut columns: Vec<(String, SrcType)> = Vec::new();
    let mut zones = Vec::new();
    let mut portal = false;
    let mut local_without_zone = Vec::new();
    for (i, raw) in header.iter().enumerate() {
        let text = String::from_utf8_lossy(raw);
        let text = if i == 0 {
            text.trim_start_matches('\u{feff}').to_string()
        } else {
            text.to_string()
        };
        let (name, src, z) = match split_label(&text) {
            Some((name, "UTC")) => (
                name.to_string(),
                SrcType::Typed(KqlType::DateTime),
                Zone::Utc,
            ),
            Some((name, label)) if label.eq_ignore_ascii_case("Local Time") => {
                let z = match zone {
                    Some(z) => z.clone(),
                    None => {
                        local_without_zone.push(name.to_string());
                        Zone::Utc
                    }
                };
                (name.to_string(), SrcType::Typed(KqlType::DateTime), z)
            }
            Some((name, label)) => match Zone::parse(label) {
                Ok(z) => (name.to_string(), SrcType::Typed(KqlType::DateTime), z),
                Err(_) => (text.trim().to_string(), SrcType::Text, Zone::Utc),
            },
            None => (text.trim().to_string(), SrcType::Text, Zone::Utc),
        };
        if matches!(src, SrcType::Typed(_)) {
            portal = true;
        }
        let name = if name.is_empty() {
            let n = format!("Column{}", i + 1);
            warnings.push(format!(
                "header field {} is empty; the column is called {n}",
                i + 1
            ));
            n
        } else {
            name
        };
        if columns.iter().any(|(n, _)| *n == name) {
            return Err(Error::data(format!(
                "{}: line 1: column {name} appears twice in the header",
                input.display
            )));
        }
        columns.push((name, src));
        zones.push(z);
    }
    if !local_without_zone.is_empty() {
        warnings.push(format!(
            "{} in the exporter's local time, but no timezone was given: read as UTC (pass timezone=..., e.g. \"Europe/Berlin\")",
            local_without_zone.join(", ") + if local_without_zone.len() == 1 { " is" } else { " are" }
        ));
    }

    // The portal export's Type column names the table.
    let mut table = None;
    let mut type_column = None;
    let mut how = "csv";
    if let Some(k) = columns.iter().position(|(n, _)| n == "Type") {
        if has_first {
            let value = String::from_utf8_lossy(first.get(k).unwrap_or_default())
                .trim()
                .to_string();
            let known = schemas::canonical_table(&value);
            if known.is_some() || (portal && !value.is_empty()) {
                table = Some(known.map(str::to_string).unwrap_or(value));
                type_column = Some(k);
            }
        }
    }
    if portal || type_column.is_some() {
        how = "csv (Log Analytics export)";
    }
    let width = columns.len();
    let state = CsvFile {
        delimiter,
        zones,
        type_column,
        warnings,
        width,
    };
    // A header without rows still gives the table its columns.
    let found = vec![Found {
        table,
        columns,
        ordered: true,
    }];
    let format = if delimiter == b'\t' {
        how.replace("csv", "tsv")
    } else {
        how.to_string()
    };
    Ok(Probe {
        format,
        found,
        state: FileState::Csv(Arc::new(state)),
    })
}

struct CsvReader {
    input: Input,
    file: Arc<CsvFile>,
    rdr: csv::Reader<LineBreaks<Box<dyn BufRead + Send>>>,
    record: csv::ByteRecord,
    cols: RowColumns,
    tracker: Tracker,
    table: String,
    row: u64,
    batch_rows: usize,
    done: bool,
    folds: u64,
}

pub(crate) fn reader<'a>(
    part: &'a Part,
    file: Arc<CsvFile>,
    targets: Vec<Target>,
    mode: Mode,
) -> Result<Box<dyn PartReader + 'a>> {
    let mut rdr = csv_reader(file.delimiter, LineBreaks::new(part.input.open()?));
    let mut record = csv::ByteRecord::new();
    // The header row.
    rdr.read_byte_record(&mut record)
        .map_err(|e| csv_error(&part.input, e))?;
    let mut tracker = Tracker::new(&part.input.display, &part.format, &part.table, mode.strict);
    for w in &file.warnings {
        tracker.warn(w.clone());
    }
    let zones = file.zones.clone();
    let cols = RowColumns::new(
        targets,
        |s| zones.get(s).cloned().unwrap_or(Zone::Utc),
        mode,
    );
    Ok(Box::new(CsvReader {
        input: part.input.clone(),
        file,
        rdr,
        record,
        cols,
        tracker,
        table: part.table.clone(),
        row: 0,
        batch_rows: mode.batch_rows,
        done: false,
        folds: 0,
    }))
}

impl CsvReader {
    fn read_row(&mut self) -> Result<()> {
        self.row += 1;
        let start = self.record.position().map(|p| p.byte());
        let loc = Loc {
            line: start.map(|b| self.rdr.get_mut().line_of(b)),
            row: self.row,
        };
        if self.record.len() != self.file.width {
            let text = self
                .record
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect::<Vec<_>>()
                .join(",");
            let reason = format!(
                "{} fields where the header has {}",
                self.record.len(),
                self.file.width
            );
            return self.tracker.broken_row(loc, &text, &reason);
        }
        if let Some(k) = self.file.type_column {
            let t = String::from_utf8_lossy(self.record.get(k).unwrap_or_default())
                .trim()
                .to_string();
            if !t.is_empty() && !t.eq_ignore_ascii_case(&self.table) {
                self.tracker.other_table(&t);
                return Ok(());
            }
        }
        for (t, b) in self.cols.targets.iter().zip(self.cols.builders.iter_mut()) {
            let (Some(src), Some(b)) = (t.source, b.as_mut()) else {
                continue;
            };
            let raw = self.record.get(src).unwrap_or_default();
            let text = String::from_utf8_lossy(raw);
            if let Err(p) = b.push_text(&text) {
                self.tracker.bad_value(loc, &t.name, &text, &p)?;
            } else if matches!(text, std::borrow::Cow::Owned(_)) {
                self.tracker.bad_value(
                    loc,
                    &t.name,
                    &text,
                    "invalid UTF-8 (replaced by U+FFFD)",
                )?;
            }
        }
        self.cols.rows += 1;
        self.tracker.report.rows += 1;
        Ok(())
    }
}

impl PartReader for CsvReader {
    fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        if self.done {
            return Ok(None);
        }
        while self.cols.rows < self.batch_rows {
            let more = self
                .rdr
                .read_byte_record(&mut self.record)
                .map_err(|e| csv_error(&self.input, e))?;
            if !more {
                self.done = true;
                break;
            }
            self.read_row()?;
        }
        let (chunk, folds) = self.cols.finish();
        self.folds += folds;
        Ok(Some(chunk))
    }

    fn into_report(mut self: Box<Self>) -> FileReport {
        if self.folds > 0 {
            let n = self.folds;
            self.tracker.warn(format!("{n} local times fell in a daylight-saving fold (they happen twice); read as the earlier instant"));
        }
        self.tracker.report
    }
}
