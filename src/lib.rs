//! # rmmhunt
//!
//! Runs Microsoft Sentinel / Defender hunting queries (KQL) over Arrow data with
//! Kusto's semantics: the same rows, columns and values that Kusto returns, or a clear
//! error naming what is not supported.
//!
//! ```text
//! KQL text ──syntax──▶ AST ──plan::bind──▶ Plan (typed, now() frozen) ──exec──▶ chunks ──convert──▶ Arrow
//!                      ▲ Display prints it back as KQL
//! ```
//!
//! * [`syntax`]: lexer, parser and printer (`parse(print(ast)) == ast`).
//! * [`plan`]: name resolution, types, Kusto's result-column naming, `explain()`.
//! * [`exec`]: streaming operators and expression evaluation.
//! * [`kernels`]: Kusto's scalar rules, one function each (the `has` term rule, case
//!   mapping, time literals and `bin`).
//! * [`table`] and [`convert`]: tables in (any Arrow layout), results out.
//!
//! ```
//! use std::collections::HashMap;
//! let r = rmmhunt::run_query("print x = 1 + 1", &HashMap::new(), 0).unwrap();
//! assert_eq!(r.names, vec!["x"]);
//! ```

/// The extension's allocator. The system one (glibc) hands the 1 MB buffers a scan
/// converts for every 128K-row morsel out of fresh mappings, zeroed page by page by the
/// kernel at each use; mimalloc keeps freed pages for the next morsel.
#[cfg(feature = "python")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod api;
pub mod column;
pub mod convert;
pub mod error;
pub mod exec;
pub mod functions;
pub mod kernels;
pub mod plan;
pub mod source;
pub mod syntax;
pub mod table;
pub mod types;

#[cfg(feature = "python")]
mod python;

pub use api::{run_query, Query, QueryResult};
pub use error::{Error, ErrorKind, Result};
pub use syntax::lexer::quote_string;
pub use table::{Catalog, MemTable, TableProvider};
pub use types::{KqlType, Value};
