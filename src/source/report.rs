//! What a reader found wrong in a file: bad rows counted, the first few shown with their
//! line numbers, warnings. With `strict`, the first bad row is an error instead.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};

/// How many bad rows a report shows (all are counted).
pub const MAX_EXAMPLES: usize = 5;

/// Where a row is in its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    /// 1-based line where the row starts (CSV, JSON); None for Parquet.
    pub line: Option<u64>,
    /// 1-based row number in the file, counting every row (bad ones and other tables' too).
    pub row: u64,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}"),
            None => write!(f, "row {}", self.row),
        }
    }
}

/// One problem found in a row.
#[derive(Clone, Debug, PartialEq)]
pub struct BadRow {
    pub line: Option<u64>,
    pub row: u64,
    /// The column whose value could not be read; None when the whole row is broken.
    pub column: Option<String>,
    /// The offending text (cut to 200 characters).
    pub value: String,
    pub reason: String,
    /// Whether the row was kept (with the value read as null) or dropped (broken row).
    pub kept: bool,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let loc = Loc {
            line: self.line,
            row: self.row,
        };
        match &self.column {
            Some(c) => write!(f, "{loc}, column {c}: {} ({:?})", self.reason, self.value),
            None => write!(f, "{loc}: {} ({:?})", self.reason, self.value),
        }
    }
}

/// What reading one file gave.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileReport {
    pub path: String,
    /// `parquet`, `csv`, `csv (Log Analytics export)`, `json (Advanced Hunting API)`, ...
    pub format: String,
    pub table: String,
    /// Rows read into the table (including rows kept with a bad value read as null).
    pub rows: u64,
    /// Rows with at least one problem, kept or dropped.
    pub bad_rows: u64,
    /// Rows that could not be read at all (broken lines); not in `rows`.
    pub dropped_rows: u64,
    /// The first [`MAX_EXAMPLES`] problems.
    pub examples: Vec<BadRow>,
    pub warnings: Vec<String>,
    /// Rows of other tables in this file (by their `category` or `Type`), not read here.
    pub other_tables: BTreeMap<String, u64>,
}

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {}): {} rows",
            self.path, self.format, self.table, self.rows
        )?;
        if self.bad_rows > 0 {
            write!(
                f,
                ", {} bad rows ({} dropped)",
                self.bad_rows, self.dropped_rows
            )?;
        }
        for (t, n) in &self.other_tables {
            write!(f, ", {n} rows of {t} not read")?;
        }
        for e in &self.examples {
            write!(f, "\n  {e}")?;
        }
        for w in &self.warnings {
            write!(f, "\n  warning: {w}")?;
        }
        Ok(())
    }
}

/// Collects the report of one pass over one file.
pub struct Tracker {
    pub report: FileReport,
    strict: bool,
    last_bad_row: Option<u64>,
}

fn cut(s: &str) -> String {
    if s.chars().count() <= 200 {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(200).collect();
        out.push('…');
        out
    }
}

impl Tracker {
    pub fn new(path: &str, format: &str, table: &str, strict: bool) -> Tracker {
        let report = FileReport {
            path: path.into(),
            format: format.into(),
            table: table.into(),
            ..FileReport::default()
        };
        Tracker {
            report,
            strict,
            last_bad_row: None,
        }
    }

    fn problem(
        &mut self,
        loc: Loc,
        column: Option<&str>,
        value: &str,
        reason: &str,
        kept: bool,
    ) -> Result<()> {
        let bad = BadRow {
            line: loc.line,
            row: loc.row,
            column: column.map(str::to_string),
            value: cut(value),
            reason: reason.to_string(),
            kept,
        };
        if self.strict {
            return Err(Error::data(format!(
                "{}: {bad} (strict: bad rows are errors)",
                self.report.path
            )));
        }
        if self.last_bad_row != Some(loc.row) {
            self.report.bad_rows += 1;
            self.last_bad_row = Some(loc.row);
        }
        if self.report.examples.len() < MAX_EXAMPLES {
            self.report.examples.push(bad);
        }
        Ok(())
    }

    /// A value that could not be read as its column's type: the row is kept with a null.
    pub fn bad_value(&mut self, loc: Loc, column: &str, value: &str, reason: &str) -> Result<()> {
        self.problem(loc, Some(column), value, reason, true)
    }

    /// A row that could not be read at all: it is dropped.
    pub fn broken_row(&mut self, loc: Loc, text: &str, reason: &str) -> Result<()> {
        self.report.dropped_rows += 1;
        self.problem(loc, None, text, reason, false)
    }

    pub fn other_table(&mut self, table: &str) {
        *self
            .report
            .other_tables
            .entry(table.to_string())
            .or_insert(0) += 1;
    }

    pub fn warn(&mut self, w: impl Into<String>) {
        let w = w.into();
        if !self.report.warnings.contains(&w) {
            self.report.warnings.push(w);
        }
    }
}
