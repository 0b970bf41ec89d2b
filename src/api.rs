//! The crate's front door: parse a query, run it over tables, get a result.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;

use crate::column::Chunk;
use crate::error::{Error, ErrorKind, Result, Span};
use crate::exec::pool::on_worker;
use crate::plan::{bind::bind_query, Plan};
use crate::syntax::ast::{self, LetValue, NamedExpr, Operator, Statement, TabularExpr};
use crate::syntax::{parse_expression, parse_query_measured};
use crate::table::Catalog;
use crate::types::KqlType;

/// A parsed query. `Display` prints it back as valid KQL.
#[derive(Clone, Debug)]
pub struct Query {
    ast: ast::Query,
    source: Arc<str>,
    /// Binary and pipe operators (as parsed): a query with more than [`INLINE_LINKS`]
    /// runs on a scan thread even on one thread, for the stack its depth needs.
    links: usize,
}

/// The most binary and pipe operators a query may have to run on the caller's thread
/// when it runs on one thread: the later stages recurse ~1.7 KB a level, so this is
/// ~2 MB of the caller's stack at most (deeper queries go to a scan thread, ~60 us on
/// this VM: the hop is most of a small one-thread query's time).
const INLINE_LINKS: usize = 1000;

impl std::fmt::Display for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.ast)
    }
}

impl Query {
    pub fn parse(kql: &str) -> Result<Query> {
        let (ast, links) = parse_query_measured(kql)?;
        Ok(Query {
            ast,
            source: kql.into(),
            links,
        })
    }

    fn deep(&self) -> bool {
        self.links > INLINE_LINKS
    }

    pub fn ast(&self) -> &ast::Query {
        &self.ast
    }

    /// The tables the query reads (names that no `let` defines), in order of appearance.
    pub fn tables(&self) -> Vec<String> {
        let mut lets: Vec<String> = Vec::new();
        let mut out = Vec::new();
        fn walk(t: &TabularExpr, lets: &[String], out: &mut Vec<String>) {
            match &t.source {
                ast::Source::Named(id) if !lets.contains(&id.name) && !out.contains(&id.name) => {
                    out.push(id.name.clone());
                }
                ast::Source::Paren(inner) => walk(inner, lets, out),
                ast::Source::Union { legs, .. } => legs.iter().for_each(|l| walk(l, lets, out)),
                _ => {}
            }
            for op in &t.ops {
                if let Operator::Union { legs, .. } = op {
                    legs.iter().for_each(|l| walk(l, lets, out));
                }
            }
        }
        for st in &self.ast.statements {
            match st {
                Statement::Let { name, value, .. } => {
                    match value {
                        LetValue::Tabular(t) => walk(t, &lets, &mut out),
                        // `let T2 = T1;` aliases a table when T1 is no earlier let.
                        LetValue::Scalar(ast::Expr {
                            kind: ast::ExprKind::Name(n),
                            ..
                        }) if !lets.contains(n) && !out.contains(n) => out.push(n.clone()),
                        _ => {}
                    }
                    lets.push(name.name.clone());
                }
                Statement::Tabular(t) => walk(t, &lets, &mut out),
            }
        }
        out
    }

    /// Binds the query against the tables: names, types, frozen `now`.
    pub fn plan(&self, catalog: &Catalog, now_ticks: i64) -> Result<Plan> {
        bind_query(&self.ast, catalog, now_ticks).map_err(|e| e.with_source(&self.source))
    }

    /// The plan as text, naming the kernel each filter runs with.
    pub fn explain(&self, catalog: &Catalog, now_ticks: i64) -> Result<String> {
        on_worker(1, self.deep(), || {
            Ok(self.plan(catalog, now_ticks)?.explain())
        })
    }

    pub fn run(&self, catalog: &Catalog, now_ticks: i64) -> Result<QueryResult> {
        self.run_with_threads(catalog, now_ticks, crate::exec::default_threads())
    }

    /// Like [`Query::run`], with the number of threads scans may use. Binding and
    /// execution run on the scan threads (`exec::pool::on_worker`), whose stacks are
    /// sized for the deepest query the parser accepts.
    pub fn run_with_threads(
        &self,
        catalog: &Catalog,
        now_ticks: i64,
        threads: usize,
    ) -> Result<QueryResult> {
        let threads = threads.max(1);
        on_worker(threads, self.deep(), || {
            let plan = self.plan(catalog, now_ticks)?;
            let ctx = crate::exec::ExecContext {
                catalog,
                threads,
                prepared: None,
            };
            let chunk =
                crate::exec::collect(&plan, &ctx).map_err(|e| e.with_source(&self.source))?;
            Ok(QueryResult::of(&plan, chunk))
        })
    }

    /// Runs many queries over the same tables, scanning each table once for all of them
    /// (see `exec::run_many`). One result per query, in order; one query's error does
    /// not stop the others.
    pub fn run_many(
        queries: &[&Query],
        catalog: &Catalog,
        now_ticks: i64,
        threads: usize,
    ) -> Vec<Result<QueryResult>> {
        let threads = threads.max(1);
        on_worker(threads, queries.iter().any(|q| q.deep()), || {
            let plans: Vec<Result<Plan>> =
                queries.iter().map(|q| q.plan(catalog, now_ticks)).collect();
            let bound: Vec<&Plan> = plans.iter().filter_map(|p| p.as_ref().ok()).collect();
            let mut chunks = crate::exec::run_many(&bound, catalog, threads).into_iter();
            plans
                .iter()
                .zip(queries)
                .map(|(p, q)| {
                    let plan = p.as_ref().map_err(Clone::clone)?;
                    let chunk = chunks
                        .next()
                        .unwrap_or_else(|| Err(Error::internal("a plan produced no result")))
                        .map_err(|e| e.with_source(&q.source))?;
                    Ok(QueryResult::of(plan, chunk))
                })
                .collect()
        })
    }

    // ---- editing the tree (for rules and exclusions; never string pasting) ----

    fn final_tabular_mut(&mut self) -> Result<&mut TabularExpr> {
        self.ast
            .statements
            .iter_mut()
            .rev()
            .find_map(|s| match s {
                Statement::Tabular(t) => Some(t),
                _ => None,
            })
            .ok_or_else(|| Error::new(ErrorKind::Semantic, "the query has no tabular expression"))
    }

    /// Position just before the last `summarize` of the final tabular expression.
    fn before_summarize(t: &TabularExpr) -> usize {
        t.ops
            .iter()
            .rposition(|o| matches!(o, Operator::Summarize { .. }))
            .unwrap_or(t.ops.len())
    }

    /// `| where <predicate>` just before the last summarize (at the end if none).
    pub fn insert_where(&self, predicate: &str) -> Result<Query> {
        let pred = parse_expression(predicate)?;
        let mut q = self.clone();
        let t = q.final_tabular_mut()?;
        let at = Self::before_summarize(t);
        t.ops.insert(
            at,
            Operator::Where {
                pred,
                span: Span::default(),
            },
        );
        Ok(q.reprinted())
    }

    /// `| extend name = <expr>` at the same place.
    pub fn insert_extend(&self, name: &str, expr: &str) -> Result<Query> {
        let e = parse_expression(expr)?;
        let mut q = self.clone();
        let t = q.final_tabular_mut()?;
        let at = Self::before_summarize(t);
        let ne = NamedExpr {
            name: Some(ast::Ident {
                name: name.to_string(),
                span: Span::default(),
            }),
            expr: e,
        };
        t.ops.insert(
            at,
            Operator::Extend {
                exprs: vec![ne],
                span: Span::default(),
            },
        );
        Ok(q.reprinted())
    }

    /// Appends `name = <aggregate>` items to the last summarize.
    pub fn add_aggregates(&self, items: &[(String, String)]) -> Result<Query> {
        let mut q = self.clone();
        let t = q.final_tabular_mut()?;
        let Some(Operator::Summarize { aggs, .. }) = t
            .ops
            .iter_mut()
            .rev()
            .find(|o| matches!(o, Operator::Summarize { .. }))
        else {
            return Err(Error::new(
                ErrorKind::Semantic,
                "the query has no summarize to add aggregates to",
            ));
        };
        for (name, expr) in items {
            let e = parse_expression(expr)?;
            aggs.push(NamedExpr {
                name: Some(ast::Ident {
                    name: name.clone(),
                    span: Span::default(),
                }),
                expr: e,
            });
        }
        Ok(q.reprinted())
    }

    /// Replaces the value of `let name = ...;` with a scalar expression.
    pub fn set_let(&self, name: &str, expr: &str) -> Result<Query> {
        let e = parse_expression(expr)?;
        let mut q = self.clone();
        let slot = q.ast.statements.iter_mut().find_map(|s| match s {
            Statement::Let { name: n, value, .. } if n.name == name => Some(value),
            _ => None,
        });
        match slot {
            Some(v) => *v = LetValue::Scalar(e),
            None => {
                return Err(Error::new(
                    ErrorKind::Semantic,
                    format!("the query has no 'let {name} = ...;'"),
                ))
            }
        }
        Ok(q.reprinted())
    }

    /// Keeps `source` in step with the edited tree, so error carets point at real text.
    fn reprinted(mut self) -> Query {
        self.source = self.ast.to_string().into();
        self
    }
}

/// A query's result: column names, Kusto types, and the rows.
#[derive(Clone, Debug)]
pub struct QueryResult {
    pub names: Vec<String>,
    pub types: Vec<KqlType>,
    pub chunk: Chunk,
}

impl QueryResult {
    /// A plan's output: its schema's names and types over the rows.
    fn of(plan: &Plan, chunk: Chunk) -> QueryResult {
        let schema = plan.schema();
        QueryResult {
            names: schema.iter().map(|(n, _)| n.clone()).collect(),
            types: schema.iter().map(|(_, t)| *t).collect(),
            chunk,
        }
    }

    pub fn len(&self) -> usize {
        self.chunk.len
    }
    pub fn is_empty(&self) -> bool {
        self.chunk.len == 0
    }
    pub fn to_record_batch(&self) -> Result<RecordBatch> {
        crate::convert::to_record_batch(&self.names, &self.chunk.columns)
    }
    /// Rows as JSON in the conformance corpus's encoding (datetimes with 7 fractional
    /// digits, timespans in .NET form, NaN and infinities as strings).
    pub fn rows_json(&self) -> Vec<Vec<serde_json::Value>> {
        (0..self.chunk.len)
            .map(|i| {
                self.chunk
                    .columns
                    .iter()
                    .map(|c| crate::exec::value_to_json(&c.get(i)))
                    .collect()
            })
            .collect()
    }
}

/// Parses and runs `kql` over `catalog`, with `now()` frozen at `now_ticks` (100-ns ticks
/// since 0001-01-01; see [`crate::kernels::time::now_ticks`]).
pub fn run_query(kql: &str, catalog: &Catalog, now_ticks: i64) -> Result<QueryResult> {
    Query::parse(kql)?.run(catalog, now_ticks)
}
