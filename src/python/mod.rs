//! The Python extension module `rmmhunt._rmmhunt`: the only place pyo3 appears. Arrow
//! crosses the boundary through the Arrow PyCapsule interface (pyo3-arrow), queries run
//! with the GIL released, and every engine error becomes one of the exception classes
//! of `rmmhunt.errors` with its kind, line and column.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3_arrow::{PyRecordBatchReader, PyTable};

use crate::api::{Query, QueryResult};
use crate::error::{Error, ErrorKind};
use crate::kernels::time;
use crate::table::{Catalog, MemTable, TableProvider};

mod source;

fn to_pyerr(py: Python<'_>, e: Error) -> PyErr {
    let class = match e.kind {
        ErrorKind::Syntax => "KqlSyntaxError",
        ErrorKind::Semantic => "KqlSemanticError",
        ErrorKind::Unsupported => "UnsupportedError",
        ErrorKind::Data => "DataError",
        ErrorKind::Internal => "InternalError",
    };
    let build = || -> PyResult<PyErr> {
        let module = py.import("rmmhunt.errors")?;
        let cls = module.getattr(class)?;
        let (line, col) = e
            .line_col()
            .map_or((None, None), |(l, c)| (Some(l), Some(c)));
        let obj = cls.call1((e.render(),))?;
        obj.setattr("message", e.message.clone())?;
        obj.setattr("line", line)?;
        obj.setattr("column", col)?;
        Ok(PyErr::from_value(obj))
    };
    build().unwrap_or_else(|err| err)
}

fn parse_now(now: Option<&str>) -> PyResult<i64> {
    match now {
        None => Ok(time::now_ticks()),
        Some(s) => time::parse_datetime(s)
            .ok_or_else(|| PyValueError::new_err(format!("now: cannot read {s:?} as a datetime"))),
    }
}

fn catalog_from(
    py: Python<'_>,
    tables: Option<HashMap<String, Bound<'_, PyAny>>>,
) -> PyResult<Catalog> {
    let mut catalog: Catalog = HashMap::new();
    for (name, obj) in tables.unwrap_or_default() {
        // A file table from rmmhunt.read(): scanned lazily, columns and row groups pruned.
        if let Ok(ft) = obj.cast::<source::PyFileTable>() {
            catalog.insert(name, ft.get().provider());
            continue;
        }
        let reader: PyRecordBatchReader = obj.extract()?;
        let table = reader.into_table().map_err(|e| {
            to_pyerr(
                py,
                Error::data(format!("table '{name}': {}", PyErr::from(e))),
            )
        })?;
        let (batches, schema) = table.into_inner();
        catalog.insert(
            name,
            Arc::new(MemTable::new(schema, batches)) as Arc<dyn TableProvider>,
        );
    }
    Ok(catalog)
}

/// A parsed query: `str()` prints it back as KQL; edits return new queries.
#[pyclass(name = "Query", module = "rmmhunt._rmmhunt", frozen)]
struct PyQuery {
    inner: Query,
}

#[pymethods]
impl PyQuery {
    fn __str__(&self) -> String {
        self.inner.to_string()
    }
    fn __repr__(&self) -> String {
        format!("rmmhunt.parse({:?})", self.inner.to_string())
    }
    #[getter]
    fn tables(&self) -> Vec<String> {
        self.inner.tables()
    }
    #[pyo3(signature = (tables=None, now=None))]
    fn explain(
        &self,
        py: Python<'_>,
        tables: Option<HashMap<String, Bound<'_, PyAny>>>,
        now: Option<&str>,
    ) -> PyResult<String> {
        let catalog = catalog_from(py, tables)?;
        let now = parse_now(now)?;
        crate::error::guarded(|| self.inner.explain(&catalog, now)).map_err(|e| to_pyerr(py, e))
    }
    fn insert_where(&self, py: Python<'_>, predicate: &str) -> PyResult<PyQuery> {
        self.inner
            .insert_where(predicate)
            .map(|inner| PyQuery { inner })
            .map_err(|e| to_pyerr(py, e))
    }
    fn insert_extend(&self, py: Python<'_>, name: &str, expr: &str) -> PyResult<PyQuery> {
        self.inner
            .insert_extend(name, expr)
            .map(|inner| PyQuery { inner })
            .map_err(|e| to_pyerr(py, e))
    }
    fn add_aggregates(&self, py: Python<'_>, items: Vec<(String, String)>) -> PyResult<PyQuery> {
        self.inner
            .add_aggregates(&items)
            .map(|inner| PyQuery { inner })
            .map_err(|e| to_pyerr(py, e))
    }
    fn set_let(&self, py: Python<'_>, name: &str, expr: &str) -> PyResult<PyQuery> {
        self.inner
            .set_let(name, expr)
            .map(|inner| PyQuery { inner })
            .map_err(|e| to_pyerr(py, e))
    }
}

/// Parses KQL; raises KqlSyntaxError with line and column.
#[pyfunction]
fn parse(py: Python<'_>, kql: &str) -> PyResult<PyQuery> {
    Query::parse(kql)
        .map(|inner| PyQuery { inner })
        .map_err(|e| to_pyerr(py, e))
}

fn threads_or_default(threads: Option<usize>) -> PyResult<usize> {
    match threads {
        Some(0) => Err(pyo3::exceptions::PyValueError::new_err(
            "threads must be a positive integer",
        )),
        Some(n) => Ok(n),
        None => match crate::exec::env_threads() {
            Ok(Some(n)) => Ok(n),
            Ok(None) => Ok(crate::exec::default_threads()),
            Err(e) => Err(pyo3::exceptions::PyValueError::new_err(e.message)),
        },
    }
}

fn to_py_result(r: QueryResult) -> PyResult<(PyTable, Vec<String>)> {
    let batch = r.to_record_batch().map_err(|e| {
        pyo3::exceptions::PyRuntimeError::new_err(format!("result conversion: {}", e.message))
    })?;
    let schema = batch.schema();
    let table = PyTable::try_new(vec![batch], schema)?;
    Ok((
        table,
        r.types.iter().map(|t| t.name().to_string()).collect(),
    ))
}

/// Runs KQL over tables; returns (arrow table, [kql type names]). `threads`: scan
/// threads (default: `RMMHUNT_THREADS`, else every core).
#[pyfunction]
#[pyo3(signature = (kql, tables=None, now=None, threads=None))]
fn query(
    py: Python<'_>,
    kql: &str,
    tables: Option<HashMap<String, Bound<'_, PyAny>>>,
    now: Option<&str>,
    threads: Option<usize>,
) -> PyResult<(PyTable, Vec<String>)> {
    let catalog = catalog_from(py, tables)?;
    let now = parse_now(now)?;
    let threads = threads_or_default(threads)?;
    let kql = kql.to_string();
    let result: Result<QueryResult, Error> = py.detach(move || {
        crate::error::guarded(|| Query::parse(&kql)?.run_with_threads(&catalog, now, threads))
    });
    to_py_result(result.map_err(|e| to_pyerr(py, e))?)
}

/// Runs many queries over the same tables in one pass over each table. Returns, per
/// query, (arrow table, [kql type names]) or the exception it raised (not raised here).
#[pyfunction]
#[pyo3(signature = (kqls, tables=None, now=None, threads=None))]
fn query_many(
    py: Python<'_>,
    kqls: Vec<String>,
    tables: Option<HashMap<String, Bound<'_, PyAny>>>,
    now: Option<&str>,
    threads: Option<usize>,
) -> PyResult<Vec<Py<PyAny>>> {
    let catalog = catalog_from(py, tables)?;
    let now = parse_now(now)?;
    let threads = threads_or_default(threads)?;
    let results: Vec<Result<QueryResult, Error>> = py.detach(move || {
        let parsed: Vec<Result<Query, Error>> = kqls.iter().map(|k| Query::parse(k)).collect();
        let ok: Vec<&Query> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
        let ran = crate::error::guarded(|| Ok(Query::run_many(&ok, &catalog, now, threads)));
        let mut ran = ran
            .unwrap_or_else(|e| ok.iter().map(|_| Err(e.clone())).collect())
            .into_iter();
        parsed
            .into_iter()
            .map(|p| {
                p?;
                ran.next()
                    .unwrap_or_else(|| Err(Error::internal("a query produced no result")))
            })
            .collect()
    });
    results
        .into_iter()
        .map(|r| match r {
            Ok(r) => Ok(to_py_result(r)?.into_pyobject(py)?.into_any().unbind()),
            Err(e) => Ok(to_pyerr(py, e).into_value(py).into_any()),
        })
        .collect()
}

/// A KQL string literal whose value is exactly `s` (safe for any text).
#[pyfunction]
fn kql_string(s: &str) -> String {
    crate::quote_string(s)
}

#[pymodule]
fn _rmmhunt(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(parse, m)?)?;
    m.add_function(wrap_pyfunction!(query, m)?)?;
    m.add_function(wrap_pyfunction!(query_many, m)?)?;
    m.add_function(wrap_pyfunction!(kql_string, m)?)?;
    m.add_class::<PyQuery>()?;
    m.add_class::<source::PyFileTable>()?;
    m.add_function(wrap_pyfunction!(source::read, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
