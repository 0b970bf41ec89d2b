//! `rmmhunt.read`: lazy file tables for Python. A `FileTable` holds the Rust reader; the
//! engine scans it directly (only the needed columns, row groups outside the time window
//! skipped), and `report()` gives the bad-row report as plain dicts.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_arrow::PyTable;

use super::to_pyerr;
use crate::source::{self, BadRow, FileReport, FileTable, Format, ReadOptions};
use crate::table::TableProvider;

/// Files holding one table, read lazily each time a query scans them.
#[pyclass(name = "FileTable", module = "rmmhunt._rmmhunt", frozen)]
pub struct PyFileTable {
    pub(crate) inner: Arc<FileTable>,
}

impl PyFileTable {
    /// The table as the engine's catalog takes it.
    pub(crate) fn provider(&self) -> Arc<dyn TableProvider> {
        self.inner.clone()
    }
}

fn bad_row_dict<'py>(py: Python<'py>, b: &BadRow) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("line", b.line)?;
    d.set_item("row", b.row)?;
    d.set_item("column", b.column.as_deref())?;
    d.set_item("value", &b.value)?;
    d.set_item("reason", &b.reason)?;
    d.set_item("kept", b.kept)?;
    Ok(d)
}

fn report_dict<'py>(py: Python<'py>, r: &FileReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("path", &r.path)?;
    d.set_item("format", &r.format)?;
    d.set_item("table", &r.table)?;
    d.set_item("rows", r.rows)?;
    d.set_item("bad_rows", r.bad_rows)?;
    d.set_item("dropped_rows", r.dropped_rows)?;
    let examples = r
        .examples
        .iter()
        .map(|b| bad_row_dict(py, b))
        .collect::<PyResult<Vec<_>>>()?;
    d.set_item("examples", examples)?;
    d.set_item("warnings", r.warnings.clone())?;
    d.set_item("other_tables", r.other_tables.clone())?;
    d.set_item("text", r.to_string())?;
    Ok(d)
}

#[pymethods]
impl PyFileTable {
    /// The table's name (`DeviceProcessEvents`).
    #[getter]
    fn table(&self) -> String {
        self.inner.name().to_string()
    }

    /// The files read, in reading order.
    #[getter]
    fn paths(&self) -> Vec<String> {
        self.inner.paths()
    }

    /// (column name, Kusto type name) pairs.
    #[getter]
    fn columns(&self) -> Vec<(String, String)> {
        self.inner
            .columns()
            .iter()
            .map(|(n, t)| (n.clone(), t.name().to_string()))
            .collect()
    }

    /// Notes about the files as a whole (files skipped in a directory, other tables).
    #[getter]
    fn notes(&self) -> Vec<String> {
        self.inner.notes().to_vec()
    }

    #[getter]
    fn strict(&self) -> bool {
        self.inner.strict()
    }

    /// One dict per file: path, format, table, rows, bad_rows, dropped_rows, examples (the
    /// first five problems: line, row, column, value, reason, kept), warnings,
    /// other_tables, and the whole as text. Reads files no query has read completely yet.
    fn report<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let inner = self.inner.clone();
        let reports = py
            .detach(move || inner.report())
            .map_err(|e| to_pyerr(py, e))?;
        reports.iter().map(|r| report_dict(py, r)).collect()
    }

    /// All rows as an Arrow table (PyCapsule interface), typed as the engine types them.
    fn to_arrow(&self, py: Python<'_>) -> PyResult<PyTable> {
        let inner = self.inner.clone();
        let batch = py
            .detach(move || inner.to_record_batch())
            .map_err(|e| to_pyerr(py, e))?;
        let schema = batch.schema();
        PyTable::try_new(vec![batch], schema)
    }

    fn __repr__(&self) -> String {
        let paths = self.inner.paths();
        let shown = match paths.as_slice() {
            [one] => one.clone(),
            many => format!("{} files", many.len()),
        };
        format!("<FileTable {} from {shown}>", self.inner.name())
    }
}

/// Reads files, directories and glob patterns; returns (table name, FileTable) pairs, one
/// per table the files hold (only `table` when it is given).
#[pyfunction]
#[pyo3(signature = (paths, table=None, strict=false, timezone=None, format=None, batch_rows=None))]
pub fn read(
    py: Python<'_>,
    paths: Vec<String>,
    table: Option<String>,
    strict: bool,
    timezone: Option<String>,
    format: Option<String>,
    batch_rows: Option<usize>,
) -> PyResult<Vec<(String, PyFileTable)>> {
    let format = match format {
        Some(f) => Some(Format::parse(&f).map_err(|e| to_pyerr(py, e))?),
        None => None,
    };
    let opts = ReadOptions {
        table,
        strict,
        timezone,
        format,
        batch_rows,
    };
    let tables = py
        .detach(move || source::read(&paths, &opts))
        .map_err(|e| to_pyerr(py, e))?;
    Ok(tables
        .into_iter()
        .map(|t| (t.name().to_string(), PyFileTable { inner: Arc::new(t) }))
        .collect())
}
