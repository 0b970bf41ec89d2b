//! The binder: resolves names against table schemas and `let`s, types every expression,
//! freezes `now()`, folds constants, and names result columns the way Kusto does
//! (SEMANTICS.md §3.1, KL `Binder`).

use std::collections::HashMap;

use super::{AggFunc, AggSpec, BExpr, BKind, Plan, Schema, SortSpec};
use crate::column::{coerce, Chunk, Column};
use crate::error::{closest, Error, Result, Span};
use crate::exec;
use crate::functions::Func;
use crate::syntax::ast::*;
use crate::table::Catalog;
use crate::types::{KqlType, Value};

/// Limits from the Kusto docs: make_set/make_list default and maximum size, and the legacy
/// `makeset`/`makelist` default (DOCS make-set-aggregation-function.md).
pub const MAKE_SET_MAX: usize = 1_048_576;
pub const LEGACY_MAKE_SET_MAX: usize = 128;
const MAX_RANGE_ROWS: i64 = 100_000_000;

pub struct Binder<'a> {
    catalog: &'a Catalog,
    now: i64,
    scalars: HashMap<String, (Value, KqlType)>,
    tabulars: HashMap<String, Plan>,
}

pub fn bind_query(q: &Query, catalog: &Catalog, now: i64) -> Result<Plan> {
    let mut b = Binder {
        catalog,
        now,
        scalars: HashMap::new(),
        tabulars: HashMap::new(),
    };
    let mut result = None;
    for st in &q.statements {
        match st {
            Statement::Let { name, value, .. } => match value {
                LetValue::Scalar(e) => {
                    // `let T2 = T1;` aliases a table or tabular let.
                    if let ExprKind::Name(n) = &e.kind {
                        if !b.scalars.contains_key(n) {
                            if let Some(p) = b.named_tabular(n) {
                                b.tabulars.insert(name.name.clone(), p);
                                b.scalars.remove(&name.name);
                                continue;
                            }
                        }
                    }
                    let be = b.bind_expr(e, &Vec::new())?;
                    let v = b.fold(&be)?;
                    b.tabulars.remove(&name.name);
                    b.scalars.insert(name.name.clone(), (v, be.ty));
                }
                LetValue::Tabular(t) => {
                    let p = b.bind_tabular(t)?;
                    b.scalars.remove(&name.name);
                    b.tabulars.insert(name.name.clone(), p);
                }
            },
            Statement::Tabular(t) => {
                if result.is_some() {
                    return Err(Error::unsupported(
                        "several tabular statements (more than one result set)",
                        t.span,
                    ));
                }
                result = Some(b.bind_tabular(t)?);
            }
        }
    }
    result.ok_or_else(|| {
        Error::semantic(
            "the query has no tabular expression to return",
            Span::default(),
        )
    })
}

fn expr_columns_unique(schema: &Schema, name: &str) -> bool {
    !schema.iter().any(|(n, _)| n == name)
}

/// `base`, or `base1`, `base2`, ... (KL `UniqueNameTable`).
fn unique_name(base: &str, taken: &[String]) -> String {
    if !taken.iter().any(|t| t == base) {
        return base.to_string();
    }
    (1..)
        .map(|i| format!("{base}{i}"))
        .find(|c| !taken.iter().any(|t| t == c))
        .unwrap_or_default()
}

fn default_column_name(taken: &[String]) -> String {
    (1..)
        .map(|i| format!("Column{i}"))
        .find(|c| !taken.iter().any(|t| t == c))
        .unwrap_or_default()
}

/// The column name Kusto gives an unnamed expression: a column reference keeps its
/// name; `bin()` and the conversions keep their first argument's name.
fn expr_name(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Name(n) => Some(n.clone()),
        ExprKind::Call { name, args } if !args.is_empty() => match name.name.as_str() {
            "bin" | "floor" | "tostring" | "toint" | "tolong" | "todouble" | "toreal"
            | "tobool" | "todatetime" | "totimespan" | "toguid" => expr_name(&args[0]),
            _ => None,
        },
        _ => None,
    }
}

fn names(schema: &Schema) -> Vec<String> {
    schema.iter().map(|(n, _)| n.clone()).collect()
}

impl<'a> Binder<'a> {
    fn named_tabular(&self, name: &str) -> Option<Plan> {
        if let Some(p) = self.tabulars.get(name) {
            return Some(p.clone());
        }
        let t = self.catalog.get(name)?;
        Some(Plan::Scan {
            table: name.to_string(),
            schema: t.schema().ok()?,
        })
    }

    fn fold(&self, e: &BExpr) -> Result<Value> {
        exec::eval_const(e)
    }

    // ---- tabular ----

    fn bind_tabular(&mut self, t: &TabularExpr) -> Result<Plan> {
        let mut plan = self.bind_source(&t.source)?;
        for op in &t.ops {
            plan = self.bind_operator(plan, op)?;
        }
        Ok(plan)
    }

    fn bind_source(&mut self, s: &Source) -> Result<Plan> {
        match s {
            Source::Paren(t) => self.bind_tabular(t),
            Source::Named(id) => {
                if let Some(p) = self.named_tabular(&id.name) {
                    if let Some(t) = self.catalog.get(&id.name) {
                        if !self.tabulars.contains_key(&id.name) {
                            t.schema().map_err(|e| e.at(id.span))?;
                        }
                    }
                    return Ok(p);
                }
                if self.scalars.contains_key(&id.name) {
                    return Err(Error::semantic(
                        format!("'{}' is a scalar, not a table", id.name),
                        id.span,
                    ));
                }
                let mut cands: Vec<&str> = self.catalog.keys().map(String::as_str).collect();
                cands.extend(self.tabulars.keys().map(String::as_str));
                let hint = if cands.is_empty() {
                    " (no tables were given)".to_string()
                } else {
                    format!(
                        "; closest available: {}",
                        closest(&id.name, cands).join(", ")
                    )
                };
                Err(Error::semantic(
                    format!("unknown table '{}'{hint}", id.name),
                    id.span,
                ))
            }
            Source::Datatable {
                schema,
                values,
                span,
            } => {
                let ncols = schema.len();
                if ncols == 0 {
                    return Err(Error::semantic(
                        "datatable needs at least one column",
                        *span,
                    ));
                }
                if values.len() % ncols != 0 {
                    return Err(Error::semantic(
                        format!("datatable has {} values, which is not a multiple of its {ncols} columns", values.len()),
                        *span,
                    ));
                }
                let nrows = values.len() / ncols;
                let mut cols: Vec<Vec<Value>> = vec![Vec::with_capacity(nrows); ncols];
                for (i, v) in values.iter().enumerate() {
                    let (cname, ty) = &schema[i % ncols];
                    if !matches!(v.kind, ExprKind::Literal(_)) {
                        return Err(Error::semantic("datatable values must be literals", v.span));
                    }
                    let be = self.bind_expr(v, &Vec::new())?;
                    let val = self.fold(&be)?;
                    cols[i % ncols].push(datatable_value(val, be.ty, *ty, &cname.name, v.span)?);
                }
                let columns = schema
                    .iter()
                    .zip(cols)
                    .map(|((_, ty), vals)| Column::from_values(*ty, &vals))
                    .collect::<Result<Vec<_>>>()
                    .map_err(|e| e.at(*span))?;
                let out_schema: Schema = schema.iter().map(|(n, t)| (n.name.clone(), *t)).collect();
                Ok(Plan::Values {
                    schema: out_schema,
                    chunk: Chunk::new(columns, nrows),
                    label: "datatable",
                })
            }
            Source::Print { exprs, .. } => {
                let mut schema: Schema = Vec::new();
                let mut columns = Vec::new();
                for (i, ne) in exprs.iter().enumerate() {
                    let be = self.bind_expr(&ne.expr, &Vec::new())?;
                    let v = self.fold(&be)?;
                    let taken = names(&schema);
                    let name = match &ne.name {
                        Some(n) => unique_name(&n.name, &taken),
                        None => unique_name(&format!("print_{i}"), &taken),
                    };
                    columns.push(Column::from_scalar(&v, be.ty, 1)?);
                    schema.push((name, be.ty));
                }
                Ok(Plan::Values {
                    schema,
                    chunk: Chunk::new(columns, 1),
                    label: "print",
                })
            }
            Source::Range {
                column,
                from,
                to,
                step,
                span,
            } => {
                let empty = Vec::new();
                let (f, t, s) = (
                    self.bind_expr(from, &empty)?,
                    self.bind_expr(to, &empty)?,
                    self.bind_expr(step, &empty)?,
                );
                let (fv, tv, sv) = (self.fold(&f)?, self.fold(&t)?, self.fold(&s)?);
                let (ty, a, b, st) = match (&fv, &tv, &sv) {
                    (Value::DateTime(a), Value::DateTime(b), Value::TimeSpan(s)) => {
                        (KqlType::DateTime, *a, *b, *s)
                    }
                    (Value::TimeSpan(a), Value::TimeSpan(b), Value::TimeSpan(s)) => {
                        (KqlType::TimeSpan, *a, *b, *s)
                    }
                    (a, b, s)
                        if a.as_i64().is_some() && b.as_i64().is_some() && s.as_i64().is_some() =>
                    {
                        (
                            KqlType::Long,
                            a.as_i64().unwrap_or(0),
                            b.as_i64().unwrap_or(0),
                            s.as_i64().unwrap_or(0),
                        )
                    }
                    (a, b, s)
                        if a.as_f64().is_some() && b.as_f64().is_some() && s.as_f64().is_some() =>
                    {
                        let (a, b, s) = (
                            a.as_f64().unwrap_or(0.0),
                            b.as_f64().unwrap_or(0.0),
                            s.as_f64().unwrap_or(0.0),
                        );
                        if s == 0.0 || !s.is_finite() {
                            return Err(Error::semantic("range step must not be zero", *span));
                        }
                        let n = ((b - a) / s).floor() as i64 + 1;
                        let n = n.max(0);
                        if n > MAX_RANGE_ROWS {
                            return Err(Error::unsupported(
                                format!("range of more than {MAX_RANGE_ROWS} rows"),
                                *span,
                            ));
                        }
                        let vals: Vec<Value> =
                            (0..n).map(|i| Value::Real(a + i as f64 * s)).collect();
                        let col = Column::from_values(KqlType::Real, &vals)?;
                        return Ok(Plan::Values {
                            schema: vec![(column.name.clone(), KqlType::Real)],
                            chunk: Chunk::new(vec![col], n as usize),
                            label: "range",
                        });
                    }
                    _ => {
                        return Err(Error::semantic(
                            format!(
                                "range needs numbers, datetimes or timespans, got {}, {}, {}",
                                f.ty, t.ty, s.ty
                            ),
                            *span,
                        ))
                    }
                };
                if st == 0 {
                    return Err(Error::semantic("range step must not be zero", *span));
                }
                let n = if (st > 0 && b < a) || (st < 0 && b > a) {
                    0
                } else {
                    (b as i128 - a as i128) / st as i128 + 1
                };
                if n > MAX_RANGE_ROWS as i128 {
                    return Err(Error::unsupported(
                        format!("range of more than {MAX_RANGE_ROWS} rows"),
                        *span,
                    ));
                }
                let vals: Vec<Value> = (0..n as i64)
                    .map(|i| {
                        let x = a + i * st;
                        match ty {
                            KqlType::DateTime => Value::DateTime(x),
                            KqlType::TimeSpan => Value::TimeSpan(x),
                            _ => Value::Long(x),
                        }
                    })
                    .collect();
                let col = Column::from_values(ty, &vals)?;
                Ok(Plan::Values {
                    schema: vec![(column.name.clone(), ty)],
                    chunk: Chunk::new(vec![col], n as usize),
                    label: "range",
                })
            }
            Source::Union { params, legs, span } => {
                let mut plans = Vec::new();
                for leg in legs {
                    plans.push((self.bind_tabular(leg)?, self.leg_name(leg)));
                }
                union_plan(plans, params, *span)
            }
        }
    }

    /// withsource= names a leg by its table; let-bound and computed legs are
    /// `union_argN` (EMU-K2S).
    fn leg_name(&self, t: &TabularExpr) -> Option<String> {
        match (&t.source, t.ops.is_empty()) {
            (Source::Named(id), true) if !self.tabulars.contains_key(&id.name) => {
                Some(id.name.clone())
            }
            _ => None,
        }
    }

    fn bind_operator(&mut self, input: Plan, op: &Operator) -> Result<Plan> {
        let schema = input.schema();
        match op {
            Operator::Where { pred, span } => {
                let p = self.bind_expr(pred, &schema)?;
                if p.ty != KqlType::Bool && !(p.ty == KqlType::Dynamic) {
                    return Err(Error::semantic(
                        format!("the where predicate must be bool, got {}", p.ty),
                        *span,
                    ));
                }
                // Consecutive filters become one conjunction, so a scan can run them all
                // on the raw input before converting anything.
                if let Plan::Filter {
                    input: inner,
                    pred: first,
                } = input
                {
                    let span = first.span;
                    let both = BExpr {
                        kind: BKind::Binary(BinOp::And, Box::new(first), Box::new(p)),
                        ty: KqlType::Bool,
                        span,
                    };
                    return Ok(Plan::Filter {
                        input: inner,
                        pred: both,
                    });
                }
                Ok(Plan::Filter {
                    input: Box::new(input),
                    pred: p,
                })
            }
            Operator::Project { exprs, .. } => {
                let mut out: Schema = Vec::new();
                let mut bexprs = Vec::new();
                for ne in exprs {
                    let be = self.bind_expr(&ne.expr, &schema)?;
                    let taken = names(&out);
                    let name = match (&ne.name, expr_name(&ne.expr)) {
                        (Some(n), _) => {
                            if taken.contains(&n.name) {
                                return Err(Error::semantic(
                                    format!("column '{}' is projected twice", n.name),
                                    n.span,
                                ));
                            }
                            n.name.clone()
                        }
                        (None, Some(n)) => {
                            if taken.contains(&n) {
                                return Err(Error::semantic(
                                    format!("column '{n}' is projected twice"),
                                    ne.expr.span,
                                ));
                            }
                            n
                        }
                        (None, None) => default_column_name(&taken),
                    };
                    out.push((name, be.ty));
                    bexprs.push(be);
                }
                Ok(Plan::Project {
                    input: Box::new(input),
                    exprs: bexprs,
                    schema: out,
                    label: "project",
                })
            }
            Operator::Extend { exprs, .. } => {
                // Each item sees the columns that the items before it added.
                let mut plan = input;
                for ne in exprs {
                    let schema = plan.schema();
                    let be = self.bind_expr(&ne.expr, &schema)?;
                    let taken = names(&schema);
                    let name = match (&ne.name, expr_name(&ne.expr)) {
                        (Some(n), _) => n.name.clone(),
                        (None, Some(n)) if expr_columns_unique(&schema, &n) => n,
                        _ => default_column_name(&taken),
                    };
                    let mut bexprs: Vec<BExpr> = schema
                        .iter()
                        .enumerate()
                        .map(|(i, (_, t))| BExpr {
                            kind: BKind::Column(i),
                            ty: *t,
                            span: Span::default(),
                        })
                        .collect();
                    let mut out = schema.clone();
                    // An existing column is replaced in place (KL binder, ProjectionBuilder).
                    if let Some(pos) = schema.iter().position(|(n, _)| *n == name) {
                        out[pos].1 = be.ty;
                        bexprs[pos] = be;
                    } else {
                        out.push((name, be.ty));
                        bexprs.push(be);
                    }
                    plan = Plan::Project {
                        input: Box::new(plan),
                        exprs: bexprs,
                        schema: out,
                        label: "extend",
                    };
                }
                Ok(plan)
            }
            Operator::ProjectAway { columns, .. } => {
                let mut keep = vec![true; schema.len()];
                for c in columns {
                    let mut any = false;
                    for (i, (n, _)) in schema.iter().enumerate() {
                        if wildcard_match(&c.name, n) {
                            keep[i] = false;
                            any = true;
                        }
                    }
                    if !any && !c.name.contains('*') {
                        return Err(unknown_column(&c.name, &schema, c.span));
                    }
                }
                Ok(select(
                    input,
                    &schema,
                    keep.iter()
                        .enumerate()
                        .filter(|(_, k)| **k)
                        .map(|(i, _)| (i, schema[i].0.clone()))
                        .collect(),
                    "project-away",
                ))
            }
            Operator::ProjectRename { renames, .. } => {
                let mut cols: Vec<(usize, String)> = schema
                    .iter()
                    .enumerate()
                    .map(|(i, (n, _))| (i, n.clone()))
                    .collect();
                for (new, old) in renames {
                    let Some(i) = schema.iter().position(|(n, _)| *n == old.name) else {
                        return Err(unknown_column(&old.name, &schema, old.span));
                    };
                    cols[i].1 = new.name.clone();
                }
                Ok(select(input, &schema, cols, "project-rename"))
            }
            Operator::Summarize { aggs, by, span } => {
                self.bind_summarize(input, &schema, aggs, by, *span)
            }
            Operator::Distinct { columns, span } => {
                let by: Vec<NamedExpr> = if columns.is_empty() {
                    schema
                        .iter()
                        .map(|(n, _)| NamedExpr {
                            name: None,
                            expr: Expr::new(ExprKind::Name(n.clone()), *span),
                        })
                        .collect()
                } else {
                    columns.clone()
                };
                let mut keys = Vec::new();
                let mut out: Schema = Vec::new();
                for ne in &by {
                    let be = self.bind_expr(&ne.expr, &schema)?;
                    if be.ty == KqlType::Dynamic {
                        return Err(Error::semantic(
                            "distinct cannot group by a dynamic column",
                            ne.expr.span,
                        ));
                    }
                    let taken = names(&out);
                    let name = ne
                        .name
                        .as_ref()
                        .map(|n| n.name.clone())
                        .or_else(|| expr_name(&ne.expr))
                        .unwrap_or_else(|| default_column_name(&taken));
                    out.push((unique_name(&name, &taken), be.ty));
                    keys.push(be);
                }
                Ok(Plan::Aggregate {
                    input: Box::new(input),
                    keys,
                    aggs: vec![],
                    schema: out,
                    label: "distinct",
                })
            }
            Operator::Take { count, span } => {
                let n = self.const_count(count, &schema, *span)?;
                Ok(Plan::Limit {
                    input: Box::new(input),
                    n,
                })
            }
            Operator::Sort { keys, .. } => {
                let keys = keys
                    .iter()
                    .map(|k| self.bind_sort_key(k, &schema))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Plan::Sort {
                    input: Box::new(input),
                    keys,
                })
            }
            Operator::Top { count, key, span } => {
                let n = self.const_count(count, &schema, *span)?;
                let key = self.bind_sort_key(key, &schema)?;
                Ok(Plan::Limit {
                    input: Box::new(Plan::Sort {
                        input: Box::new(input),
                        keys: vec![key],
                    }),
                    n,
                })
            }
            Operator::Count { .. } => Ok(Plan::Count {
                input: Box::new(input),
            }),
            Operator::Union { params, legs, span } => {
                let mut plans = vec![(input, None)];
                for leg in legs {
                    plans.push((self.bind_tabular(leg)?, self.leg_name(leg)));
                }
                union_plan(plans, params, *span)
            }
        }
    }

    fn const_count(&mut self, e: &Expr, schema: &Schema, span: Span) -> Result<usize> {
        let _ = schema;
        let be = self.bind_expr(e, &Vec::new())?;
        match self.fold(&be)? {
            Value::Long(n) if n >= 0 => Ok(n as usize),
            Value::Int(n) if n >= 0 => Ok(n as usize),
            v => Err(Error::semantic(
                format!("expected a non-negative whole number of rows, got {v:?}"),
                span,
            )),
        }
    }

    fn bind_sort_key(&mut self, k: &SortKey, schema: &Schema) -> Result<SortSpec> {
        let expr = self.bind_expr(&k.expr, schema)?;
        // Defaults: asc puts nulls first, desc puts them last (DOCS sort-operator.md).
        let nulls_first = k.nulls_first.unwrap_or(!k.desc);
        Ok(SortSpec {
            expr,
            desc: k.desc,
            nulls_first,
        })
    }

    fn bind_summarize(
        &mut self,
        input: Plan,
        schema: &Schema,
        aggs: &[NamedExpr],
        by: &[NamedExpr],
        span: Span,
    ) -> Result<Plan> {
        let mut keys = Vec::new();
        let mut out: Schema = Vec::new();
        for ne in by {
            let be = self.bind_expr(&ne.expr, schema)?;
            if be.ty == KqlType::Dynamic {
                return Err(Error::semantic(
                    "summarize cannot group by a dynamic expression",
                    ne.expr.span,
                ));
            }
            let taken = names(&out);
            let name = ne
                .name
                .as_ref()
                .map(|n| n.name.clone())
                .or_else(|| expr_name(&ne.expr))
                .unwrap_or_else(|| default_column_name(&taken));
            out.push((unique_name(&name, &taken), be.ty));
            keys.push(be);
        }
        let key_names: Vec<String> = by.iter().filter_map(|ne| expr_name(&ne.expr)).collect();
        let mut specs = Vec::new();
        for ne in aggs {
            let mut spec = self.bind_agg(&ne.expr, schema, &key_names, &out)?;
            if let Some(n) = &ne.name {
                // For arg_max/arg_min/take_any the name goes to the first column (EMU-K2S).
                spec.outputs[0].0 = n.name.clone();
            }
            for o in spec.outputs.iter_mut() {
                let taken = names(&out);
                o.0 = unique_name(&o.0, &taken);
                out.push(o.clone());
            }
            specs.push(spec);
        }
        let _ = span;
        Ok(Plan::Aggregate {
            input: Box::new(input),
            keys,
            aggs: specs,
            schema: out,
            label: "summarize",
        })
    }

    fn bind_agg(
        &mut self,
        e: &Expr,
        schema: &Schema,
        key_names: &[String],
        taken: &Schema,
    ) -> Result<AggSpec> {
        let ExprKind::Call { name, args } = &e.kind else {
            return Err(Error::unsupported(
                "an expression over aggregates in summarize (name each aggregate, then extend)",
                e.span,
            ));
        };
        let fname = name.name.as_str();
        let (func, prefix, legacy) = match fname {
            "count" => (AggFunc::Count, "count", false),
            "countif" => (AggFunc::CountIf, "countif", false),
            "dcount" => (AggFunc::DCount, "dcount", false),
            "dcountif" => (AggFunc::DCountIf, "dcountif", false),
            "sum" => (AggFunc::Sum, "sum", false),
            "sumif" => (AggFunc::SumIf, "sumif", false),
            "avg" => (AggFunc::Avg, "avg", false),
            "avgif" => (AggFunc::AvgIf, "avgif", false),
            "min" => (AggFunc::Min, "min", false),
            "max" => (AggFunc::Max, "max", false),
            "make_set" => (AggFunc::MakeSet { if_: false }, "set", false),
            "makeset" => (AggFunc::MakeSet { if_: false }, "set", true),
            "make_set_if" => (AggFunc::MakeSet { if_: true }, "set", false),
            "make_list" => (AggFunc::MakeList { if_: false }, "list", false),
            "makelist" => (AggFunc::MakeList { if_: false }, "list", true),
            "make_list_if" => (AggFunc::MakeList { if_: true }, "list", false),
            "arg_max" => (AggFunc::ArgMax, "max", false),
            "arg_min" => (AggFunc::ArgMin, "min", false),
            "take_any" => (AggFunc::TakeAny, "", false),
            "any" => (AggFunc::TakeAny, "any", false),
            other => {
                if Func::lookup(other).is_some() {
                    return Err(Error::unsupported(
                        "a scalar expression over aggregates in summarize",
                        e.span,
                    ));
                }
                return Err(Error::unsupported(
                    format!("the aggregate function '{other}'"),
                    name.span,
                ));
            }
        };
        let arity_err = |want: &str| Error::semantic(format!("{fname}() takes {want}"), e.span);
        let star_cols = |schema: &Schema, skip: &[String]| -> Vec<(usize, String, KqlType)> {
            schema
                .iter()
                .enumerate()
                .filter(|(_, (n, _))| !key_names.contains(n) && !skip.contains(n))
                .map(|(i, (n, t))| (i, n.clone(), *t))
                .collect()
        };
        let _ = taken;
        let col_expr = |i: usize, t: KqlType| BExpr {
            kind: BKind::Column(i),
            ty: t,
            span: e.span,
        };
        let mut bargs = Vec::new();
        let mut outputs = Vec::new();
        let arg_name = |i: usize| args.get(i).and_then(expr_name).unwrap_or_default();
        match func {
            AggFunc::Count => {
                if args.len() > 1 {
                    return Err(arity_err("at most one argument"));
                }
                // count(expr) counts rows, nulls included (EMU-K2S); the argument is only bound.
                for a in args {
                    if !matches!(a.kind, ExprKind::Star) {
                        self.bind_expr(a, schema)?;
                    }
                }
                outputs.push((format!("count_{}", arg_name(0)), KqlType::Long));
            }
            AggFunc::ArgMax | AggFunc::ArgMin => {
                if args.is_empty() {
                    return Err(arity_err("at least one argument"));
                }
                let target = self.bind_expr(&args[0], schema)?;
                let tname = expr_name(&args[0]).unwrap_or_else(|| format!("{prefix}_"));
                outputs.push((tname.clone(), target.ty));
                bargs.push(target);
                for a in &args[1..] {
                    if matches!(a.kind, ExprKind::Star) {
                        for (i, n, t) in star_cols(schema, std::slice::from_ref(&tname)) {
                            outputs.push((n, t));
                            bargs.push(col_expr(i, t));
                        }
                    } else {
                        let be = self.bind_expr(a, schema)?;
                        outputs.push((
                            expr_name(a).unwrap_or_else(|| default_column_name(&[])),
                            be.ty,
                        ));
                        bargs.push(be);
                    }
                }
            }
            AggFunc::TakeAny => {
                if args.is_empty() {
                    return Err(arity_err("at least one argument"));
                }
                for a in args {
                    if matches!(a.kind, ExprKind::Star) {
                        for (i, n, t) in star_cols(schema, &[]) {
                            outputs.push((n, t));
                            bargs.push(col_expr(i, t));
                        }
                    } else {
                        let be = self.bind_expr(a, schema)?;
                        let n = expr_name(a).unwrap_or_default();
                        let n = if prefix.is_empty() {
                            if n.is_empty() {
                                default_column_name(&[])
                            } else {
                                n
                            }
                        } else {
                            format!("{prefix}_{n}")
                        };
                        outputs.push((n, be.ty));
                        bargs.push(be);
                    }
                }
            }
            _ => {
                let needs_pred = matches!(
                    func,
                    AggFunc::CountIf
                        | AggFunc::DCountIf
                        | AggFunc::SumIf
                        | AggFunc::AvgIf
                        | AggFunc::MakeSet { if_: true }
                        | AggFunc::MakeList { if_: true }
                );
                let nvalue = usize::from(func != AggFunc::CountIf);
                let max_args = nvalue
                    + usize::from(needs_pred)
                    + usize::from(matches!(
                        func,
                        AggFunc::MakeSet { .. }
                            | AggFunc::MakeList { .. }
                            | AggFunc::DCount
                            | AggFunc::DCountIf
                    ));
                let min_args = nvalue + usize::from(needs_pred);
                if args.len() < min_args || args.len() > max_args {
                    return Err(arity_err(&format!("{min_args} to {max_args} arguments")));
                }
                for a in args.iter().take(min_args) {
                    bargs.push(self.bind_expr(a, schema)?);
                }
                if needs_pred && bargs.last().map(|b| b.ty) != Some(KqlType::Bool) {
                    return Err(Error::semantic(
                        format!("the predicate of {fname}() must be bool"),
                        e.span,
                    ));
                }
                let vty = bargs.first().map(|b| b.ty).unwrap_or(KqlType::Long);
                let ty = match func {
                    AggFunc::CountIf | AggFunc::DCount | AggFunc::DCountIf => KqlType::Long,
                    AggFunc::Sum | AggFunc::SumIf => match vty {
                        KqlType::Int | KqlType::Long | KqlType::Bool => KqlType::Long,
                        KqlType::Real | KqlType::TimeSpan => vty,
                        KqlType::Dynamic => KqlType::Real,
                        t => {
                            return Err(Error::semantic(
                                format!("{fname}() cannot add values of type {t}"),
                                e.span,
                            ))
                        }
                    },
                    AggFunc::Avg | AggFunc::AvgIf => {
                        if !(vty.is_numeric() || vty == KqlType::Dynamic) {
                            return Err(Error::semantic(
                                format!("{fname}() cannot average values of type {vty}"),
                                e.span,
                            ));
                        }
                        KqlType::Real
                    }
                    AggFunc::Min | AggFunc::Max => vty,
                    _ => KqlType::Dynamic,
                };
                let name = format!("{prefix}_{}", arg_name(0));
                outputs.push((name, ty));
            }
        }
        let mut max_size = if legacy {
            LEGACY_MAKE_SET_MAX
        } else {
            MAKE_SET_MAX
        };
        if matches!(func, AggFunc::MakeSet { .. } | AggFunc::MakeList { .. }) {
            let size_pos = if matches!(
                func,
                AggFunc::MakeSet { if_: true } | AggFunc::MakeList { if_: true }
            ) {
                2
            } else {
                1
            };
            if let Some(a) = args.get(size_pos) {
                let be = self.bind_expr(a, &Vec::new())?;
                match self.fold(&be)? {
                    Value::Long(n) if n > 0 => max_size = (n as usize).min(MAKE_SET_MAX),
                    Value::Int(n) if n > 0 => max_size = (n as usize).min(MAKE_SET_MAX),
                    _ => {
                        return Err(Error::semantic(
                            format!("the size limit of {fname}() must be a positive number"),
                            a.span,
                        ))
                    }
                }
            }
        }
        Ok(AggSpec {
            func,
            args: bargs,
            max_size,
            outputs,
        })
    }

    // ---- scalar expressions ----

    pub fn bind_expr(&mut self, e: &Expr, schema: &Schema) -> Result<BExpr> {
        let span = e.span;
        let mk = |kind: BKind, ty: KqlType| BExpr { kind, ty, span };
        Ok(match &e.kind {
            ExprKind::Literal(l) => mk(BKind::Literal(l.value.clone()), l.ty),
            ExprKind::Name(n) => {
                if let Some(i) = schema.iter().position(|(c, _)| c == n) {
                    mk(BKind::Column(i), schema[i].1)
                } else if let Some((v, t)) = self.scalars.get(n) {
                    mk(BKind::Literal(v.clone()), *t)
                } else if self.tabulars.contains_key(n) || self.catalog.contains_key(n) {
                    return Err(Error::semantic(
                        format!("'{n}' is a table, not a column or scalar"),
                        span,
                    ));
                } else {
                    return Err(unknown_column(n, schema, span));
                }
            }
            ExprKind::Star => {
                return Err(Error::semantic(
                    "'*' is only allowed as an aggregate argument",
                    span,
                ))
            }
            ExprKind::Index { target, index } => {
                let t = self.bind_expr(target, schema)?;
                let i = self.bind_expr(index, schema)?;
                if t.ty != KqlType::Dynamic {
                    return Err(Error::semantic(
                        format!("only dynamic values can be indexed, not {}", t.ty),
                        span,
                    ));
                }
                if !(i.ty.is_integer() || i.ty == KqlType::String) {
                    return Err(Error::semantic(
                        format!("an index must be a number or a string, not {}", i.ty),
                        span,
                    ));
                }
                self.maybe_fold(mk(BKind::Call(Func::Index, vec![t, i]), KqlType::Dynamic))?
            }
            ExprKind::Call { name, args } => return self.bind_call(name, args, schema, span),
            ExprKind::Neg(inner) => {
                let b = self.bind_expr(inner, schema)?;
                if !(b.ty.is_numeric() || b.ty == KqlType::TimeSpan || b.ty == KqlType::Dynamic) {
                    return Err(Error::semantic(
                        format!("cannot negate a value of type {}", b.ty),
                        span,
                    ));
                }
                let ty = b.ty;
                self.maybe_fold(mk(BKind::Neg(Box::new(b)), ty))?
            }
            ExprKind::Binary { op, left, right } => {
                let l = self.bind_expr(left, schema)?;
                let r = self.bind_expr(right, schema)?;
                let ty = binary_type(*op, l.ty, r.ty).ok_or_else(|| {
                    Error::semantic(
                        format!(
                            "operator {} cannot be applied to {} and {}",
                            binop_symbol(*op),
                            l.ty,
                            r.ty
                        ),
                        span,
                    )
                })?;
                self.maybe_fold(mk(BKind::Binary(*op, Box::new(l), Box::new(r)), ty))?
            }
            ExprKind::Str {
                op,
                negated,
                cs,
                left,
                right,
            } if matches!(left.kind, ExprKind::Star) => {
                // `* has "x"`: any column matches (`* !has "x"`: no column does).
                let r = self.bind_expr(right, schema)?;
                let mut acc: Option<BExpr> = None;
                for (i, (_, t)) in schema.iter().enumerate() {
                    let col = BExpr {
                        kind: BKind::Column(i),
                        ty: *t,
                        span,
                    };
                    let one = mk(
                        BKind::Str {
                            op: *op,
                            negated: *negated,
                            cs: *cs,
                            left: Box::new(col),
                            right: Box::new(r.clone()),
                        },
                        KqlType::Bool,
                    );
                    let join = if *negated { BinOp::And } else { BinOp::Or };
                    acc = Some(match acc {
                        None => one,
                        Some(a) => mk(
                            BKind::Binary(join, Box::new(a), Box::new(one)),
                            KqlType::Bool,
                        ),
                    });
                }
                acc.unwrap_or_else(|| BExpr::literal(Value::Bool(*negated), KqlType::Bool, span))
            }
            ExprKind::Str {
                op,
                negated,
                cs,
                left,
                right,
            } => {
                let l = self.bind_expr(left, schema)?;
                let r = self.bind_expr(right, schema)?;
                if *op == StrOp::MatchesRegex {
                    if let Some(Value::String(p)) = r.as_literal() {
                        crate::functions::RegexCache::new()
                            .get(p)
                            .map_err(|e| e.at(right.span))?;
                    }
                }
                self.maybe_fold(mk(
                    BKind::Str {
                        op: *op,
                        negated: *negated,
                        cs: *cs,
                        left: Box::new(l),
                        right: Box::new(r),
                    },
                    KqlType::Bool,
                ))?
            }
            ExprKind::List {
                op,
                negated,
                cs,
                left,
                items,
            } => {
                let l = self.bind_expr(left, schema)?;
                let mut vals = Vec::new();
                for it in items {
                    self.list_items(it, &mut vals)?;
                }
                if *op == ListOp::In {
                    for v in &vals {
                        if let Some(t) = v.kql_type() {
                            if !comparable(l.ty, t) {
                                return Err(Error::semantic(
                                    format!("cannot compare {} with {} in the in() list", l.ty, t),
                                    span,
                                ));
                            }
                        }
                    }
                }
                self.maybe_fold(mk(
                    BKind::List {
                        op: *op,
                        negated: *negated,
                        cs: *cs,
                        left: Box::new(l),
                        items: vals,
                    },
                    KqlType::Bool,
                ))?
            }
            ExprKind::Between {
                negated,
                expr,
                low,
                high,
            } => {
                let x = self.bind_expr(expr, schema)?;
                let lo = self.bind_expr(low, schema)?;
                let mut hi = self.bind_expr(high, schema)?;
                // `datetime between (start .. timespan)` means start + timespan.
                if lo.ty == KqlType::DateTime && hi.ty == KqlType::TimeSpan {
                    let s = hi.span;
                    hi = self.maybe_fold(BExpr {
                        kind: BKind::Binary(BinOp::Add, Box::new(lo.clone()), Box::new(hi)),
                        ty: KqlType::DateTime,
                        span: s,
                    })?;
                }
                for b in [&lo, &hi] {
                    if !comparable(x.ty, b.ty) {
                        return Err(Error::semantic(
                            format!("between cannot compare {} with {}", x.ty, b.ty),
                            span,
                        ));
                    }
                }
                self.maybe_fold(mk(
                    BKind::Between {
                        negated: *negated,
                        expr: Box::new(x),
                        low: Box::new(lo),
                        high: Box::new(hi),
                    },
                    KqlType::Bool,
                ))?
            }
        })
    }

    /// One item of an `in`/`has_any` list: a constant, a dynamic array (flattened), or a
    /// tabular let whose first column supplies the values.
    fn list_items(&mut self, it: &Expr, out: &mut Vec<Value>) -> Result<()> {
        if let ExprKind::Name(n) = &it.kind {
            if !self.scalars.contains_key(n) {
                if let Some(p) = self.named_tabular(n) {
                    let table = exec::collect(&p, &exec::ExecContext::new(self.catalog))?;
                    if let Some(col) = table.columns.first() {
                        for i in 0..table.len {
                            out.push(col.get(i));
                        }
                    }
                    return Ok(());
                }
            }
        }
        let b = self.bind_expr(it, &Vec::new())?;
        match self.fold(&b)? {
            Value::Dynamic(serde_json::Value::Array(a)) => {
                fn flatten(a: &[serde_json::Value], out: &mut Vec<Value>) {
                    for x in a {
                        match x {
                            serde_json::Value::Array(inner) => flatten(inner, out),
                            other => out.push(exec::json_to_value(other)),
                        }
                    }
                }
                flatten(&a, out);
            }
            v => out.push(v),
        }
        Ok(())
    }

    fn bind_call(
        &mut self,
        name: &Ident,
        args: &[Expr],
        schema: &Schema,
        span: Span,
    ) -> Result<BExpr> {
        let fname = name.name.as_str();
        let Some(func) = Func::lookup(fname) else {
            if is_aggregate_name(fname) {
                return Err(Error::semantic(
                    format!("the aggregate {fname}() can only be used in summarize"),
                    span,
                ));
            }
            return Err(Error::unsupported(
                format!("the function '{fname}'"),
                name.span,
            ));
        };
        let bargs = args
            .iter()
            .map(|a| self.bind_expr(a, schema))
            .collect::<Result<Vec<_>>>()?;
        let types: Vec<KqlType> = bargs.iter().map(|b| b.ty).collect();
        let ty = func.return_type(fname, &types, span)?;
        // now() and ago() read one frozen clock for the whole query (DOCS now-function.md).
        match func {
            Func::Now | Func::Ago => {
                let offset = match bargs.first() {
                    Some(b) => match self.fold(b)? {
                        Value::TimeSpan(t) => t,
                        Value::Null => {
                            return Ok(BExpr::literal(Value::Null, KqlType::DateTime, span))
                        }
                        _ => {
                            return Err(Error::semantic(
                                format!("{fname}() takes a timespan"),
                                span,
                            ))
                        }
                    },
                    None => 0,
                };
                let t = if func == Func::Now {
                    self.now.checked_add(offset)
                } else {
                    self.now.checked_sub(offset)
                };
                return Ok(BExpr::literal(
                    t.map_or(Value::Null, Value::DateTime),
                    KqlType::DateTime,
                    span,
                ));
            }
            Func::Trim | Func::TrimStart | Func::TrimEnd | Func::Extract => {
                if let Some(Value::String(p)) = bargs[0].as_literal() {
                    crate::functions::RegexCache::new()
                        .get(p)
                        .map_err(|e| e.at(args[0].span))?;
                }
            }
            _ => {}
        }
        self.maybe_fold(BExpr {
            kind: BKind::Call(func, bargs),
            ty,
            span,
        })
    }

    /// Evaluates an expression whose operands are all constants.
    fn maybe_fold(&mut self, e: BExpr) -> Result<BExpr> {
        let all_const = match &e.kind {
            BKind::Neg(a) => a.as_literal().is_some(),
            BKind::Binary(_, a, b)
            | BKind::Str {
                left: a, right: b, ..
            } => a.as_literal().is_some() && b.as_literal().is_some(),
            BKind::List { left, .. } => left.as_literal().is_some(),
            BKind::Between {
                expr, low, high, ..
            } => {
                expr.as_literal().is_some()
                    && low.as_literal().is_some()
                    && high.as_literal().is_some()
            }
            BKind::Call(_, args) => args.iter().all(|a| a.as_literal().is_some()),
            _ => false,
        };
        if !all_const {
            return Ok(e);
        }
        let v = exec::eval_const(&e).map_err(|err| err.at(e.span))?;
        Ok(BExpr::literal(v, e.ty, e.span))
    }
}

fn is_aggregate_name(n: &str) -> bool {
    matches!(
        n,
        "count"
            | "countif"
            | "dcount"
            | "dcountif"
            | "sum"
            | "sumif"
            | "avg"
            | "avgif"
            | "min"
            | "max"
            | "make_set"
            | "makeset"
            | "make_list"
            | "makelist"
            | "make_set_if"
            | "make_list_if"
            | "arg_max"
            | "arg_min"
            | "take_any"
            | "any"
            | "percentile"
            | "percentiles"
            | "stdev"
            | "variance"
            | "make_bag"
            | "count_distinct"
    )
}

fn unknown_column(name: &str, schema: &Schema, span: Span) -> Error {
    let hint = if schema.is_empty() {
        String::new()
    } else {
        format!(
            "; closest available: {}",
            closest(name, schema.iter().map(|(n, _)| n.as_str())).join(", ")
        )
    };
    Error::semantic(format!("unknown column or name '{name}'{hint}"), span)
}

fn wildcard_match(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == name;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = name;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            let Some(pos) = rest.find(p) else {
                return false;
            };
            rest = &rest[pos + p.len()..];
        }
    }
    true
}

fn select(input: Plan, schema: &Schema, cols: Vec<(usize, String)>, label: &'static str) -> Plan {
    let exprs = cols
        .iter()
        .map(|(i, _)| BExpr {
            kind: BKind::Column(*i),
            ty: schema[*i].1,
            span: Span::default(),
        })
        .collect();
    let out = cols
        .iter()
        .map(|(i, n)| (n.clone(), schema[*i].1))
        .collect();
    Plan::Project {
        input: Box::new(input),
        exprs,
        schema: out,
        label,
    }
}

fn union_plan(
    plans: Vec<(Plan, Option<String>)>,
    params: &UnionParams,
    span: Span,
) -> Result<Plan> {
    let schemas: Vec<Schema> = plans.iter().map(|(p, _)| p.schema()).collect();
    let mut out: Schema = Vec::new();
    if params.inner {
        for (n, t) in &schemas[0] {
            if schemas
                .iter()
                .all(|s| s.iter().any(|(m, u)| m == n && u == t))
            {
                out.push((n.clone(), *t));
            }
        }
    } else {
        // Same name with different types becomes name_type columns (DOCS union-operator.md).
        let mut clashing: Vec<String> = Vec::new();
        for s in &schemas {
            for (n, t) in s {
                if schemas
                    .iter()
                    .any(|s2| s2.iter().any(|(m, u)| m == n && u != t))
                    && !clashing.contains(n)
                {
                    clashing.push(n.clone());
                }
                let name = if clashing.contains(n) {
                    format!("{n}_{t}")
                } else {
                    n.clone()
                };
                if !out.iter().any(|(m, _)| *m == name) {
                    out.push((name, *t));
                }
            }
        }
    }
    let mut inputs = Vec::new();
    for (k, ((p, leg), s)) in plans.into_iter().zip(&schemas).enumerate() {
        let mapping = out
            .iter()
            .map(|(n, t)| {
                s.iter()
                    .position(|(m, u)| (m == n || format!("{m}_{u}") == *n) && u == t)
            })
            .collect();
        inputs.push((
            p,
            mapping,
            Some(leg.unwrap_or_else(|| format!("union_arg{k}"))),
        ));
    }
    let with_source = params.with_source.is_some();
    if let Some(ws) = &params.with_source {
        out.insert(0, (ws.name.clone(), KqlType::String));
    }
    let _ = span;
    Ok(Plan::Union {
        inputs,
        schema: out,
        with_source,
    })
}

/// Whether values of these types can be compared with `==`, `<`, `in`, `between`.
pub fn comparable(a: KqlType, b: KqlType) -> bool {
    a == b
        || (a.is_numeric() && b.is_numeric())
        || a == KqlType::Dynamic
        || b == KqlType::Dynamic
        || (matches!(a, KqlType::Guid | KqlType::String)
            && matches!(b, KqlType::Guid | KqlType::String))
}

fn binop_symbol(op: BinOp) -> &'static str {
    match op {
        BinOp::Or => "or",
        BinOp::And => "and",
        BinOp::Eq => "==",
        BinOp::Ne => "!=",
        BinOp::Lt => "<",
        BinOp::Le => "<=",
        BinOp::Gt => ">",
        BinOp::Ge => ">=",
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Mod => "%",
    }
}

/// The type rule of the binary operators (DOCS numerical-operators.md, datetime arithmetic).
pub fn binary_type(op: BinOp, l: KqlType, r: KqlType) -> Option<KqlType> {
    use KqlType::*;
    let num = |a: KqlType, b: KqlType| -> Option<KqlType> {
        match (a, b) {
            // int op int is long: toint(2147483647) + toint(1) = 2147483648 (EMU-K2S).
            (Int | Long, Int | Long) => Some(Long),
            (Int | Long | Real, Int | Long | Real) => Some(Real),
            (Dynamic, t) | (t, Dynamic) if t.is_numeric() || t == Dynamic => {
                Some(if t == Dynamic { Real } else { t })
            }
            _ => None,
        }
    };
    match op {
        BinOp::And | BinOp::Or => {
            (matches!(l, Bool | Dynamic) && matches!(r, Bool | Dynamic)).then_some(Bool)
        }
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            comparable(l, r).then_some(Bool)
        }
        BinOp::Add => match (l, r) {
            (DateTime, TimeSpan) | (TimeSpan, DateTime) => Some(DateTime),
            (TimeSpan, TimeSpan) => Some(TimeSpan),
            _ => num(l, r),
        },
        BinOp::Sub => match (l, r) {
            (DateTime, TimeSpan) => Some(DateTime),
            (DateTime, DateTime) | (TimeSpan, TimeSpan) => Some(TimeSpan),
            _ => num(l, r),
        },
        BinOp::Mul => match (l, r) {
            (TimeSpan, t) | (t, TimeSpan) if t.is_numeric() => Some(TimeSpan),
            _ => num(l, r),
        },
        BinOp::Div => match (l, r) {
            (TimeSpan, TimeSpan) => Some(Real),
            (TimeSpan, t) if t.is_numeric() => Some(TimeSpan),
            _ => num(l, r),
        },
        BinOp::Mod => match (l, r) {
            (TimeSpan, TimeSpan) => Some(TimeSpan),
            _ => num(l, r),
        },
    }
}

/// A datatable cell: the literal converted to the column's type, or an error naming both.
fn datatable_value(v: Value, from: KqlType, to: KqlType, col: &str, span: Span) -> Result<Value> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let ok = from == to || to == KqlType::Dynamic || (from.is_numeric() && to.is_numeric());
    if !ok {
        return Err(Error::semantic(
            format!("datatable column '{col}' is {to}, but the value is {from}"),
            span,
        ));
    }
    if to == KqlType::Dynamic {
        return Ok(match v {
            Value::Dynamic(_) => v,
            other => Value::Dynamic(exec::value_to_json(&other)),
        });
    }
    coerce(&v, to)
}
