//! Bound plans: names resolved to column indexes, every expression typed, `now()` and
//! scalar `let`s frozen to constants. [`bind::bind_query`] builds a [`Plan`] from the
//! syntax tree; `exec` runs it; [`Plan::explain`] prints it as an indented tree.

pub mod bind;

use std::fmt::Write;

use crate::column::Chunk;
use crate::error::Span;
use crate::functions::Func;
use crate::syntax::ast::{BinOp, ListOp, StrOp};
use crate::types::{KqlType, Value};

/// Output columns of a plan node.
pub type Schema = Vec<(String, KqlType)>;

#[derive(Clone, Debug)]
pub struct BExpr {
    pub kind: BKind,
    pub ty: KqlType,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum BKind {
    Column(usize),
    Literal(Value),
    Neg(Box<BExpr>),
    Binary(BinOp, Box<BExpr>, Box<BExpr>),
    Str {
        op: StrOp,
        negated: bool,
        cs: bool,
        left: Box<BExpr>,
        right: Box<BExpr>,
    },
    /// `in`/`has_any`/`has_all` against a constant list (dynamic arrays flattened).
    List {
        op: ListOp,
        negated: bool,
        cs: bool,
        left: Box<BExpr>,
        items: Vec<Value>,
    },
    Between {
        negated: bool,
        expr: Box<BExpr>,
        low: Box<BExpr>,
        high: Box<BExpr>,
    },
    Call(Func, Vec<BExpr>),
}

impl BExpr {
    pub fn literal(v: Value, ty: KqlType, span: Span) -> BExpr {
        BExpr {
            kind: BKind::Literal(v),
            ty,
            span,
        }
    }
    pub fn as_literal(&self) -> Option<&Value> {
        match &self.kind {
            BKind::Literal(v) => Some(v),
            _ => None,
        }
    }
    /// Every input column this expression reads.
    pub fn columns(&self, out: &mut Vec<usize>) {
        if let BKind::Column(i) = self.kind {
            out.push(i);
        }
        for c in self.children() {
            c.columns(out);
        }
    }

    /// The expressions this one is made of.
    pub fn children(&self) -> Vec<&BExpr> {
        match &self.kind {
            BKind::Column(_) | BKind::Literal(_) => Vec::new(),
            BKind::Neg(e) => vec![e],
            BKind::Binary(_, l, r)
            | BKind::Str {
                left: l, right: r, ..
            } => vec![l, r],
            BKind::List { left, .. } => vec![left],
            BKind::Between {
                expr, low, high, ..
            } => vec![expr, low, high],
            BKind::Call(_, args) => args.iter().collect(),
        }
    }
}

/// Aggregate functions of `summarize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggFunc {
    Count,
    CountIf,
    DCount,
    DCountIf,
    Sum,
    SumIf,
    Avg,
    AvgIf,
    Min,
    Max,
    MakeSet { if_: bool },
    MakeList { if_: bool },
    ArgMax,
    ArgMin,
    TakeAny,
}

#[derive(Clone, Debug)]
pub struct AggSpec {
    pub func: AggFunc,
    pub args: Vec<BExpr>,
    /// make_set/make_list size cap.
    pub max_size: usize,
    /// Output columns: one for most aggregates, several for arg_max/arg_min/take_any.
    pub outputs: Vec<(String, KqlType)>,
}

#[derive(Clone, Debug)]
pub struct SortSpec {
    pub expr: BExpr,
    pub desc: bool,
    pub nulls_first: bool,
}

#[derive(Clone, Debug)]
pub enum Plan {
    Scan {
        table: String,
        schema: Schema,
    },
    Values {
        schema: Schema,
        chunk: Chunk,
        label: &'static str,
    },
    Filter {
        input: Box<Plan>,
        pred: BExpr,
    },
    /// project, extend, project-away, project-rename: output column i = exprs[i].
    Project {
        input: Box<Plan>,
        exprs: Vec<BExpr>,
        schema: Schema,
        label: &'static str,
    },
    Aggregate {
        input: Box<Plan>,
        keys: Vec<BExpr>,
        aggs: Vec<AggSpec>,
        schema: Schema,
        label: &'static str,
    },
    Sort {
        input: Box<Plan>,
        keys: Vec<SortSpec>,
    },
    Limit {
        input: Box<Plan>,
        n: usize,
    },
    Count {
        input: Box<Plan>,
    },
    /// Each leg maps the output columns to its own column indexes (None: fill with null).
    Union {
        inputs: Vec<(Plan, Vec<Option<usize>>, Option<String>)>,
        schema: Schema,
        with_source: bool,
    },
}

impl Plan {
    pub fn schema(&self) -> Schema {
        match self {
            Plan::Scan { schema, .. }
            | Plan::Values { schema, .. }
            | Plan::Project { schema, .. }
            | Plan::Aggregate { schema, .. }
            | Plan::Union { schema, .. } => schema.clone(),
            Plan::Filter { input, .. } | Plan::Sort { input, .. } | Plan::Limit { input, .. } => {
                input.schema()
            }
            Plan::Count { .. } => vec![("Count".into(), KqlType::Long)],
        }
    }

    /// The tables this plan reads.
    pub fn tables(&self, out: &mut Vec<String>) {
        match self {
            Plan::Scan { table, .. } => {
                if !out.contains(table) {
                    out.push(table.clone())
                }
            }
            Plan::Values { .. } => {}
            Plan::Filter { input, .. }
            | Plan::Project { input, .. }
            | Plan::Aggregate { input, .. }
            | Plan::Sort { input, .. }
            | Plan::Limit { input, .. }
            | Plan::Count { input } => input.tables(out),
            Plan::Union { inputs, .. } => inputs.iter().for_each(|(p, _, _)| p.tables(out)),
        }
    }

    /// The plan as an indented tree, innermost (the source) last. Filters name the kernel
    /// each predicate runs with.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        self.explain_into(&mut out, 0);
        out
    }

    fn explain_into(&self, out: &mut String, depth: usize) {
        let pad = "  ".repeat(depth);
        let schema = self.schema();
        let names = |s: &Schema| {
            s.iter()
                .map(|(n, t)| format!("{n}:{t}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Plan::Scan { table, schema } => {
                let _ = writeln!(out, "{pad}Scan {table} [{}]", names(schema));
            }
            Plan::Values {
                schema,
                chunk,
                label,
            } => {
                let _ = writeln!(
                    out,
                    "{pad}Values ({label}, {} rows) [{}]",
                    chunk.len,
                    names(schema)
                );
            }
            Plan::Filter { input, pred } => {
                let inner = input.schema();
                let _ = writeln!(
                    out,
                    "{pad}Filter {}",
                    crate::exec::describe_predicate(pred, &inner)
                );
                if matches!(input.as_ref(), Plan::Scan { .. }) {
                    let fused =
                        crate::exec::scan::FusedFilter::new(pred, &inner, &vec![true; inner.len()]);
                    let _ = writeln!(
                        out,
                        "{pad}  fused with the scan, on the raw input (dictionary values once, plain strings by one buffer pass): {}",
                        fused.describe()
                    );
                }
                input.explain_into(out, depth + 1);
            }
            Plan::Project { input, label, .. } => {
                let _ = writeln!(out, "{pad}Project ({label}) [{}]", names(&schema));
                input.explain_into(out, depth + 1);
            }
            Plan::Aggregate {
                input,
                keys,
                aggs,
                label,
                ..
            } => {
                let _ = writeln!(
                    out,
                    "{pad}Aggregate ({label}) keys={} aggregates={} [{}]",
                    keys.len(),
                    aggs.iter()
                        .map(|a| format!("{:?}", a.func))
                        .collect::<Vec<_>>()
                        .join(","),
                    names(&schema)
                );
                input.explain_into(out, depth + 1);
            }
            Plan::Sort { input, keys } => {
                let _ = writeln!(out, "{pad}Sort ({} keys)", keys.len());
                input.explain_into(out, depth + 1);
            }
            Plan::Limit { input, n } => {
                let _ = writeln!(out, "{pad}Limit {n}");
                input.explain_into(out, depth + 1);
            }
            Plan::Count { input } => {
                let _ = writeln!(out, "{pad}Count");
                input.explain_into(out, depth + 1);
            }
            Plan::Union { inputs, .. } => {
                let _ = writeln!(out, "{pad}Union [{}]", names(&schema));
                for (p, _, _) in inputs {
                    p.explain_into(out, depth + 1);
                }
            }
        }
    }
}
