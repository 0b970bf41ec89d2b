//! Prints a syntax tree back as KQL. Every compound sub-expression is parenthesised and
//! every string goes through `quote_string`, so the printed text parses back to the same
//! tree and user strings can never change the query's structure.

use std::fmt::{self, Display, Formatter, Write};

use super::ast::*;
use super::lexer::quote_string;
use crate::types::{format_datetime, format_guid, format_timespan, KqlType, Value};

/// A name as KQL needs it written: bare when it is a plain identifier that is not a
/// keyword, else `['...']`.
pub fn quote_ident(name: &str) -> String {
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "not",
        "by",
        "let",
        "where",
        "project",
        "extend",
        "summarize",
        "true",
        "false",
        "null",
        "in",
        "has",
        "contains",
        "between",
        "asc",
        "desc",
        "nulls",
        "first",
        "last",
        "datatable",
        "print",
        "range",
        "union",
        "from",
        "to",
        "step",
        "kind",
        "with",
        "on",
        "count",
        "sort",
        "order",
        "top",
        "take",
        "limit",
        "distinct",
        "matches",
        "regex",
        "dynamic",
        "datetime",
        "timespan",
        "time",
        "guid",
        "typeof",
    ];
    let mut chars = name.chars();
    let plain = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&name);
    if plain {
        name.to_string()
    } else {
        format!("[{}]", quote_string(name))
    }
}

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, st) in self.statements.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            match st {
                Statement::Let { name, value, .. } => {
                    write!(f, "let {} = ", quote_ident(&name.name))?;
                    match value {
                        LetValue::Scalar(e) => write!(f, "{e}")?,
                        LetValue::Tabular(t) => write!(f, "{t}")?,
                    }
                    f.write_str(";")?;
                }
                Statement::Tabular(t) => write!(f, "{t}")?,
            }
        }
        Ok(())
    }
}

impl Display for TabularExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        for op in &self.ops {
            write!(f, "\n| {op}")?;
        }
        Ok(())
    }
}

fn list<T: Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn union_params(p: &UnionParams) -> String {
    let mut s = String::new();
    if p.inner {
        s.push_str("kind=inner ");
    }
    if let Some(w) = &p.with_source {
        let _ = write!(s, "withsource={} ", quote_ident(&w.name));
    }
    s
}

fn union_legs(legs: &[TabularExpr]) -> String {
    legs.iter()
        .map(|l| match (&l.source, l.ops.is_empty()) {
            (Source::Named(id), true) => quote_ident(&id.name),
            _ => format!("({l})"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Display for Source {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Source::Named(id) => f.write_str(&quote_ident(&id.name)),
            Source::Paren(t) => write!(f, "({t})"),
            Source::Datatable { schema, values, .. } => {
                let cols: Vec<String> = schema
                    .iter()
                    .map(|(n, t)| format!("{}:{}", quote_ident(&n.name), t.name()))
                    .collect();
                write!(f, "datatable({})[{}]", cols.join(", "), list(values))
            }
            Source::Print { exprs, .. } => write!(f, "print {}", list(exprs)),
            Source::Range {
                column,
                from,
                to,
                step,
                ..
            } => {
                write!(
                    f,
                    "range {} from {from} to {to} step {step}",
                    quote_ident(&column.name)
                )
            }
            Source::Union { params, legs, .. } => {
                write!(f, "union {}{}", union_params(params), union_legs(legs))
            }
        }
    }
}

impl Display for NamedExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{}={}", quote_ident(&n.name), self.expr),
            None => write!(f, "{}", self.expr),
        }
    }
}

impl Display for SortKey {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.expr,
            if self.desc { "desc" } else { "asc" }
        )?;
        match self.nulls_first {
            Some(true) => f.write_str(" nulls first"),
            Some(false) => f.write_str(" nulls last"),
            None => Ok(()),
        }
    }
}

impl Display for Operator {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Operator::Where { pred, .. } => write!(f, "where {pred}"),
            Operator::Project { exprs, .. } => write!(f, "project {}", list(exprs)),
            Operator::Extend { exprs, .. } => write!(f, "extend {}", list(exprs)),
            Operator::ProjectAway { columns, .. } => {
                let cols: Vec<String> = columns
                    .iter()
                    .map(|c| {
                        if c.name.contains('*') {
                            c.name.clone()
                        } else {
                            quote_ident(&c.name)
                        }
                    })
                    .collect();
                write!(f, "project-away {}", cols.join(", "))
            }
            Operator::ProjectRename { renames, .. } => {
                let r: Vec<String> = renames
                    .iter()
                    .map(|(n, o)| format!("{}={}", quote_ident(&n.name), quote_ident(&o.name)))
                    .collect();
                write!(f, "project-rename {}", r.join(", "))
            }
            Operator::Summarize { aggs, by, .. } => {
                f.write_str("summarize")?;
                if !aggs.is_empty() {
                    write!(f, " {}", list(aggs))?;
                }
                if !by.is_empty() {
                    write!(f, " by {}", list(by))?;
                }
                Ok(())
            }
            Operator::Distinct { columns, .. } => {
                if columns.is_empty() {
                    f.write_str("distinct *")
                } else {
                    write!(f, "distinct {}", list(columns))
                }
            }
            Operator::Take { count, .. } => write!(f, "take {count}"),
            Operator::Sort { keys, .. } => write!(f, "sort by {}", list(keys)),
            Operator::Top { count, key, .. } => write!(f, "top {count} by {key}"),
            Operator::Count { .. } => f.write_str("count"),
            Operator::Union { params, legs, .. } => {
                write!(f, "union {}{}", union_params(params), union_legs(legs))
            }
        }
    }
}

/// Writes a sub-expression, parenthesised unless it is atomic.
fn sub(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Literal(_)
        | ExprKind::Name(_)
        | ExprKind::Call { .. }
        | ExprKind::Star
        | ExprKind::Index { .. } => e.to_string(),
        _ => format!("({e})"),
    }
}

fn binop(op: BinOp) -> &'static str {
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

pub fn str_op_text(op: StrOp, negated: bool, cs: bool) -> String {
    if op == StrOp::Equals {
        return match (negated, cs) {
            (false, false) => "=~".into(),
            (true, false) => "!~".into(),
            (false, true) => "==".into(),
            (true, true) => "!=".into(),
        };
    }
    if op == StrOp::MatchesRegex {
        return "matches regex".into();
    }
    let base = match op {
        StrOp::Has => "has",
        StrOp::HasPrefix => "hasprefix",
        StrOp::HasSuffix => "hassuffix",
        StrOp::Contains => "contains",
        StrOp::StartsWith => "startswith",
        StrOp::EndsWith => "endswith",
        _ => unreachable!(),
    };
    format!(
        "{}{}{}",
        if negated { "!" } else { "" },
        base,
        if cs { "_cs" } else { "" }
    )
}

fn literal(v: &Value, ty: KqlType) -> String {
    match v {
        Value::Null => format!("{}(null)", ty.name()),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => format!("int({i})"),
        Value::Long(i) => {
            if *i < 0 {
                format!("({i})")
            } else {
                i.to_string()
            }
        }
        Value::Real(r) => {
            if r.is_nan() {
                "real(nan)".into()
            } else if r.is_infinite() {
                if *r > 0.0 {
                    "real(+inf)".into()
                } else {
                    "real(-inf)".into()
                }
            } else {
                format!("real({r:?})")
            }
        }
        Value::String(s) => quote_string(s),
        Value::DateTime(t) => format!("datetime({})", format_datetime(*t)),
        Value::TimeSpan(t) => timespan_literal(*t),
        Value::Guid(g) => format!("guid({})", format_guid(*g)),
        Value::Dynamic(j) => format!("dynamic({})", json_kql(j)),
    }
}

/// A timespan in the largest unit that divides it exactly: `5d`, `-7d`, `90m`, `3tick`.
fn timespan_literal(t: i64) -> String {
    use crate::types::ticks;
    let units = [
        ("d", ticks::PER_DAY),
        ("h", ticks::PER_HOUR),
        ("m", ticks::PER_MINUTE),
        ("s", ticks::PER_SECOND),
        ("ms", ticks::PER_MILLI),
        ("microseconds", ticks::PER_MICRO),
    ];
    if t == i64::MIN {
        return format!("time({})", format_timespan(t));
    }
    for (unit, per) in units {
        if t % per == 0 {
            return format!("{}{unit}", t / per);
        }
    }
    format!("{t}tick")
}

/// JSON inside `dynamic(...)`, with strings quoted the KQL way.
fn json_kql(j: &serde_json::Value) -> String {
    use serde_json::Value as J;
    match j {
        J::String(s) => quote_string(s),
        J::Array(a) => format!(
            "[{}]",
            a.iter().map(json_kql).collect::<Vec<_>>().join(", ")
        ),
        J::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", quote_string(k), json_kql(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        J::Number(n) if n.is_f64() => format!("real({:?})", n.as_f64().unwrap_or(0.0)),
        other => other.to_string(),
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Literal(l) => f.write_str(&literal(&l.value, l.ty)),
            ExprKind::Name(n) => f.write_str(&quote_ident(n)),
            ExprKind::Star => f.write_str("*"),
            ExprKind::Call { name, args } => write!(f, "{}({})", name.name, list(args)),
            ExprKind::Neg(e) => write!(f, "-{}", sub(e)),
            ExprKind::Binary { op, left, right } => {
                write!(f, "{} {} {}", sub(left), binop(*op), sub(right))
            }
            ExprKind::Str {
                op,
                negated,
                cs,
                left,
                right,
            } => {
                write!(
                    f,
                    "{} {} {}",
                    sub(left),
                    str_op_text(*op, *negated, *cs),
                    sub(right)
                )
            }
            ExprKind::Index { target, index } => write!(f, "{}[{}]", sub(target), index),
            ExprKind::List {
                op,
                negated,
                cs,
                left,
                items,
            } => {
                let name = match op {
                    ListOp::In => format!(
                        "{}in{}",
                        if *negated { "!" } else { "" },
                        if *cs { "" } else { "~" }
                    ),
                    ListOp::HasAny => {
                        if *cs {
                            "has_any_cs".into()
                        } else {
                            "has_any".into()
                        }
                    }
                    ListOp::HasAll => {
                        if *cs {
                            "has_all_cs".into()
                        } else {
                            "has_all".into()
                        }
                    }
                };
                write!(f, "{} {} ({})", sub(left), name, list(items))
            }
            ExprKind::Between {
                negated,
                expr,
                low,
                high,
            } => {
                write!(
                    f,
                    "{} {}between ({} .. {})",
                    sub(expr),
                    if *negated { "!" } else { "" },
                    sub(low),
                    sub(high)
                )
            }
        }
    }
}
