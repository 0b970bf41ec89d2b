//! Recursive-descent parser: tokens -> [`ast::Query`]. Precedence follows KL
//! `grammar/Kql.g4` (SEMANTICS.md §1.1): `or` < `and` < equality-level (`==`, `in`,
//! `has_any`, `between`) < relational < additive < multiplicative < string operators
//! (`has`, `contains`, `=~`, ...) < unary < primary. A depth limit keeps hostile input
//! from overflowing the stack.

use super::ast::*;
use super::lexer::{tokenize, Tok, Token};
use crate::error::{Error, Result, Span};
use crate::kernels::time;
use crate::types::{KqlType, Value};

const MAX_DEPTH: usize = 200;

/// The most binary operators (`or`, `==`, `+`, `has`, `in`, `between`, ...) and pipe
/// operators a query may have in all: a chain (`a or b or c ...`, `| extend ... | extend
/// ...`) is parsed in a loop but is as deep as it is long for everything after the
/// parser, which recurses, on the scan threads' stacks (`exec::pool`). A 5,000-value
/// `x == "a" or x == "b" ...` fits; longer lists of values belong in `in (...)` or
/// `has_any (...)`, which have no such limit.
const MAX_LINKS: usize = 10_000;

/// Tabular operators that exist in KQL but that rmmhunt does not run: a clear refusal.
const KNOWN_UNSUPPORTED_OPERATORS: &[&str] = &[
    "join",
    "lookup",
    "mv-expand",
    "mvexpand",
    "mv-apply",
    "mvapply",
    "parse",
    "parse-where",
    "parse-kv",
    "evaluate",
    "make-series",
    "render",
    "invoke",
    "serialize",
    "sample",
    "sample-distinct",
    "as",
    "getschema",
    "top-nested",
    "top-hitters",
    "find",
    "search",
    "fork",
    "facet",
    "partition",
    "scan",
    "project-keep",
    "project-reorder",
    "reduce",
    "consume",
    "externaldata",
    "extend-schema",
    "lookup",
    "order-by",
    "summarize-by",
    "make_series",
    "graph-match",
    "macro-expand",
    "assert-schema",
];

pub fn parse_query(src: &str) -> Result<Query> {
    parse_query_measured(src).map(|(q, _)| q)
}

/// [`parse_query`], with the query's number of binary and pipe operators (see
/// [`MAX_LINKS`]): about how deep the later stages recurse.
pub fn parse_query_measured(src: &str) -> Result<(Query, usize)> {
    let toks = tokenize(src).map_err(|e| e.with_source(src))?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
        links: 0,
        in_datatable: false,
    };
    let q = p.query().map_err(|e| e.with_source(src))?;
    Ok((q, p.links))
}

/// Parses a lone scalar expression (for predicates handed in by the rules layer).
pub fn parse_expression(src: &str) -> Result<Expr> {
    let toks = tokenize(src).map_err(|e| e.with_source(src))?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
        links: 0,
        in_datatable: false,
    };
    let e = p.expr().map_err(|e| e.with_source(src))?;
    if !p.at_eof() {
        return Err(p.unexpected("end of expression").with_source(src));
    }
    Ok(e)
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
    /// Operands of operator chains and pipe operators so far (see [`MAX_LINKS`]).
    links: usize,
    /// Datatable cells are signed literals: there `-9223372036854775808` is a long.
    in_datatable: bool,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident { name, .. } => format!("'{name}'"),
        Tok::Number(n) => format!("number {n}"),
        Tok::Str(_) => "a string literal".into(),
        Tok::RawLiteral { func, .. } => format!("{func}(...)"),
        Tok::Punct(p) => format!("'{p}'"),
        Tok::Eof => "end of query".into(),
    }
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].tok
    }
    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.pos + n).min(self.toks.len() - 1)].tok
    }
    fn span(&self) -> Span {
        self.toks[self.pos].span
    }
    fn prev_span(&self) -> Span {
        self.toks[self.pos.saturating_sub(1)].span
    }
    fn bump(&mut self) -> Token {
        let t = self.toks[self.pos].clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }
    fn at_eof(&self) -> bool {
        matches!(self.peek(), Tok::Eof)
    }
    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Tok::Punct(q) if *q == p)
    }
    fn eat_punct(&mut self, p: &str) -> bool {
        if self.is_punct(p) {
            self.bump();
            true
        } else {
            false
        }
    }
    fn expect_punct(&mut self, p: &str) -> Result<Span> {
        if self.is_punct(p) {
            Ok(self.bump().span)
        } else {
            Err(self.unexpected(&format!("'{p}'")))
        }
    }
    /// An unquoted identifier equal to `kw` (keywords are contextual in KQL).
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident { name, quoted: false } if name == kw)
    }
    fn is_kw_at(&self, n: usize, kw: &str) -> bool {
        matches!(self.peek_at(n), Tok::Ident { name, quoted: false } if name == kw)
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.bump();
            true
        } else {
            false
        }
    }
    fn expect_kw(&mut self, kw: &str) -> Result<Span> {
        if self.is_kw(kw) {
            Ok(self.bump().span)
        } else {
            Err(self.unexpected(&format!("'{kw}'")))
        }
    }
    fn unexpected(&self, wanted: &str) -> Error {
        Error::syntax(
            format!("expected {wanted}, found {}", describe(self.peek())),
            self.span(),
        )
    }
    /// Two tokens written with nothing between them (`!has`, `in~`, `project-away`).
    fn adjacent(&self, n: usize) -> bool {
        let a = self.toks[(self.pos + n).min(self.toks.len() - 1)].span;
        let b = self.toks[(self.pos + n + 1).min(self.toks.len() - 1)].span;
        a.end == b.start
    }
    fn ident(&mut self) -> Result<Ident> {
        match self.peek().clone() {
            Tok::Ident { name, .. } => {
                let span = self.bump().span;
                Ok(Ident { name, span })
            }
            _ => Err(self.unexpected("a name")),
        }
    }
    /// One more link in a chain: an operand joined by a binary operator, or a pipe operator.
    fn link(&mut self) -> Result<()> {
        self.links += 1;
        if self.links > MAX_LINKS {
            return Err(Error::syntax(
                format!(
                    "query is too long: more than {MAX_LINKS} binary and pipe operators (write a long list of values as `in (...)` or `has_any (...)`)"
                ),
                self.span(),
            ));
        }
        Ok(())
    }

    fn binary(&mut self, op: BinOp, left: Expr, right: Expr) -> Result<Expr> {
        self.link()?;
        Ok(binary(op, left, right))
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::syntax(
                format!("query is nested too deeply (more than {MAX_DEPTH} levels)"),
                self.span(),
            ));
        }
        Ok(())
    }

    // ---- statements ----

    fn query(&mut self) -> Result<Query> {
        let mut statements = Vec::new();
        loop {
            while self.eat_punct(";") {}
            if self.at_eof() {
                break;
            }
            statements.push(self.statement()?);
            if !self.at_eof() && !self.is_punct(";") {
                return Err(self.unexpected("';' or '|'"));
            }
        }
        if statements.is_empty() {
            return Err(Error::syntax("the query is empty", self.span()));
        }
        Ok(Query { statements })
    }

    fn statement(&mut self) -> Result<Statement> {
        let start = self.span();
        if self.is_kw("let") {
            self.bump();
            let name = self.ident()?;
            self.expect_punct("=")?;
            if self.is_punct("(") && self.looks_like_lambda() {
                return Err(Error::unsupported(
                    "a let function (lambda)",
                    start.to(self.span()),
                ));
            }
            let value = if self.starts_tabular_source() {
                LetValue::Tabular(self.tabular()?)
            } else {
                let save = self.pos;
                let e = self.expr()?;
                if self.is_punct("|") {
                    self.pos = save;
                    LetValue::Tabular(self.tabular()?)
                } else {
                    LetValue::Scalar(e)
                }
            };
            if !self.is_punct(";") {
                return Err(self.unexpected("';' after the let statement"));
            }
            return Ok(Statement::Let {
                name,
                value,
                span: start.to(self.prev_span()),
            });
        }
        for kw in ["set", "declare", "alias", "pattern", "restrict"] {
            if self.is_kw(kw) && matches!(self.peek_at(1), Tok::Ident { .. }) {
                return Err(Error::unsupported(
                    format!("the '{kw}' statement"),
                    self.span(),
                ));
            }
        }
        Ok(Statement::Tabular(self.tabular()?))
    }

    /// `let f = (a:long) { ... }`: a parenthesised parameter list followed by `{`.
    fn looks_like_lambda(&self) -> bool {
        let mut depth = 0usize;
        let mut i = self.pos;
        while i < self.toks.len() {
            match &self.toks[i].tok {
                Tok::Punct("(") => depth += 1,
                Tok::Punct(")") => {
                    depth -= 1;
                    if depth == 0 {
                        return matches!(
                            self.toks.get(i + 1).map(|t| &t.tok),
                            Some(Tok::Punct("{"))
                        );
                    }
                }
                Tok::Eof => return false,
                _ => {}
            }
            i += 1;
        }
        false
    }

    fn starts_tabular_source(&self) -> bool {
        (self.is_kw("datatable") && matches!(self.peek_at(1), Tok::Punct("(")))
            || self.is_kw("print")
            || (self.is_kw("range") && matches!(self.peek_at(1), Tok::Ident { .. }))
            || (self.is_kw("union") && !matches!(self.peek_at(1), Tok::Punct("|" | ";") | Tok::Eof))
            || self.is_kw("externaldata")
            || self.is_kw("materialize")
            || self.is_kw("view")
    }

    // ---- tabular expressions ----

    fn tabular(&mut self) -> Result<TabularExpr> {
        self.enter()?;
        let start = self.span();
        let source = self.source()?;
        let mut ops = Vec::new();
        while self.eat_punct("|") {
            self.link()?;
            ops.push(self.operator()?);
        }
        self.depth -= 1;
        Ok(TabularExpr {
            source,
            ops,
            span: start.to(self.prev_span()),
        })
    }

    fn source(&mut self) -> Result<Source> {
        let start = self.span();
        if self.eat_punct("(") {
            let inner = self.tabular()?;
            self.expect_punct(")")?;
            return Ok(Source::Paren(Box::new(inner)));
        }
        if self.is_kw("datatable") && matches!(self.peek_at(1), Tok::Punct("(")) {
            self.bump();
            let schema = self.schema()?;
            // `['a']` lexes as a quoted name; after a datatable schema it is one string cell.
            if let Tok::Ident { name, quoted: true } = self.peek().clone() {
                let s = self.bump().span;
                let values = vec![Expr::literal(Value::String(name), KqlType::String, s)];
                return Ok(Source::Datatable {
                    schema,
                    values,
                    span: start.to(s),
                });
            }
            self.expect_punct("[")?;
            let mut values = Vec::new();
            if !self.is_punct("]") {
                loop {
                    self.in_datatable = true;
                    let v = self.expr();
                    self.in_datatable = false;
                    values.push(v?);
                    if !self.eat_punct(",") {
                        break;
                    }
                    if self.is_punct("]") {
                        break;
                    }
                }
            }
            self.expect_punct("]")?;
            return Ok(Source::Datatable {
                schema,
                values,
                span: start.to(self.prev_span()),
            });
        }
        if self.is_kw("print") {
            self.bump();
            let exprs = if self.is_punct("|") || self.is_punct(";") || self.at_eof() {
                Vec::new()
            } else {
                self.named_exprs()?
            };
            return Ok(Source::Print {
                exprs,
                span: start.to(self.prev_span()),
            });
        }
        if self.is_kw("range") && matches!(self.peek_at(1), Tok::Ident { .. }) {
            self.bump();
            let column = self.ident()?;
            self.expect_kw("from")?;
            let from = self.expr()?;
            self.expect_kw("to")?;
            let to = self.expr()?;
            self.expect_kw("step")?;
            let step = self.expr()?;
            return Ok(Source::Range {
                column,
                from,
                to,
                step,
                span: start.to(self.prev_span()),
            });
        }
        if self.is_kw("union") {
            self.bump();
            let (params, legs) = self.union_body()?;
            return Ok(Source::Union {
                params,
                legs,
                span: start.to(self.prev_span()),
            });
        }
        for kw in [
            "externaldata",
            "materialize",
            "view",
            "evaluate",
            "find",
            "search",
            "toscalar",
            "cluster",
            "database",
            "table",
        ] {
            if self.is_kw(kw) {
                return Err(Error::unsupported(format!("'{kw}'"), self.span()));
            }
        }
        match self.peek() {
            Tok::Ident { .. } => {
                let id = self.ident()?;
                if self.is_punct("(") {
                    return Err(Error::unsupported(
                        format!("calling '{}' as a tabular function", id.name),
                        id.span,
                    ));
                }
                if self.is_punct("*") && self.adjacent(0) {
                    return Err(Error::unsupported("table name wildcards", id.span));
                }
                Ok(Source::Named(id))
            }
            _ => Err(self.unexpected("a table name, datatable, print, range or union")),
        }
    }

    fn schema(&mut self) -> Result<Vec<(Ident, KqlType)>> {
        self.expect_punct("(")?;
        let mut cols = Vec::new();
        if !self.is_punct(")") {
            loop {
                let name = self.ident()?;
                self.expect_punct(":")?;
                let tspan = self.span();
                let tname = self.ident()?;
                let ty = KqlType::from_name(&tname.name).ok_or_else(|| {
                    Error::syntax(format!("unknown type '{}'", tname.name), tspan)
                })?;
                cols.push((name, ty));
                if !self.eat_punct(",") {
                    break;
                }
            }
        }
        self.expect_punct(")")?;
        Ok(cols)
    }

    fn union_body(&mut self) -> Result<(UnionParams, Vec<TabularExpr>)> {
        let mut params = UnionParams::default();
        loop {
            if self.is_kw("kind") && matches!(self.peek_at(1), Tok::Punct("=")) {
                self.bump();
                self.bump();
                let k = self.ident()?;
                match k.name.as_str() {
                    "inner" => params.inner = true,
                    "outer" => params.inner = false,
                    _ => {
                        return Err(Error::syntax(
                            format!("unknown union kind '{}'", k.name),
                            k.span,
                        ))
                    }
                }
            } else if self.is_kw("withsource") && matches!(self.peek_at(1), Tok::Punct("=")) {
                self.bump();
                self.bump();
                params.with_source = Some(self.ident()?);
            } else if self.is_kw("isfuzzy") && matches!(self.peek_at(1), Tok::Punct("=")) {
                let s = self.span();
                self.bump();
                self.bump();
                let v = self.ident()?;
                if v.name != "false" {
                    return Err(Error::unsupported("union isfuzzy=true", s.to(v.span)));
                }
            } else {
                break;
            }
        }
        let mut legs = Vec::new();
        loop {
            let start = self.span();
            let leg = if self.is_punct("(") {
                self.bump();
                let t = self.tabular()?;
                self.expect_punct(")")?;
                t
            } else {
                let id = self.ident()?;
                if self.is_punct("*") && self.adjacent(0) {
                    return Err(Error::unsupported("table name wildcards", id.span));
                }
                TabularExpr {
                    source: Source::Named(id),
                    ops: vec![],
                    span: start.to(self.prev_span()),
                }
            };
            legs.push(leg);
            if !self.eat_punct(",") {
                break;
            }
        }
        Ok((params, legs))
    }

    /// The operator name after `|`, joining hyphenated names (`project-away`).
    fn operator_name(&mut self) -> Result<(String, Span)> {
        let start = self.span();
        let Tok::Ident {
            name,
            quoted: false,
        } = self.peek().clone()
        else {
            return Err(self.unexpected("an operator name after '|'"));
        };
        self.bump();
        let mut name = name;
        let mut span = start;
        while self.is_punct("-") && self.prev_span().end == self.span().start && self.adjacent(0) {
            if let Tok::Ident {
                name: next,
                quoted: false,
            } = self.peek_at(1).clone()
            {
                self.bump();
                span = span.to(self.bump().span);
                name = format!("{name}-{next}");
            } else {
                break;
            }
        }
        Ok((name, span))
    }

    fn operator(&mut self) -> Result<Operator> {
        let (name, nspan) = self.operator_name()?;
        let start = nspan;
        let op = match name.as_str() {
            "where" | "filter" => {
                let pred = self.expr()?;
                Operator::Where {
                    pred,
                    span: start.to(self.prev_span()),
                }
            }
            "project" => {
                let exprs = self.named_exprs()?;
                Operator::Project {
                    exprs,
                    span: start.to(self.prev_span()),
                }
            }
            "extend" => {
                let exprs = self.named_exprs()?;
                Operator::Extend {
                    exprs,
                    span: start.to(self.prev_span()),
                }
            }
            "project-away" => {
                let mut columns = Vec::new();
                loop {
                    columns.push(self.column_pattern()?);
                    if !self.eat_punct(",") {
                        break;
                    }
                }
                Operator::ProjectAway {
                    columns,
                    span: start.to(self.prev_span()),
                }
            }
            "project-rename" => {
                let mut renames = Vec::new();
                loop {
                    let new = self.ident()?;
                    self.expect_punct("=")?;
                    let old = self.ident()?;
                    renames.push((new, old));
                    if !self.eat_punct(",") {
                        break;
                    }
                }
                Operator::ProjectRename {
                    renames,
                    span: start.to(self.prev_span()),
                }
            }
            "summarize" => {
                self.skip_hints()?;
                let aggs = if self.is_kw("by") {
                    Vec::new()
                } else {
                    self.named_exprs()?
                };
                let by = if self.eat_kw("by") {
                    self.named_exprs()?
                } else {
                    Vec::new()
                };
                if aggs.is_empty() && by.is_empty() {
                    return Err(self.unexpected("an aggregate or 'by'"));
                }
                Operator::Summarize {
                    aggs,
                    by,
                    span: start.to(self.prev_span()),
                }
            }
            "distinct" => {
                self.skip_hints()?;
                let columns = if self.eat_punct("*") {
                    Vec::new()
                } else {
                    self.named_exprs()?
                };
                Operator::Distinct {
                    columns,
                    span: start.to(self.prev_span()),
                }
            }
            "take" | "limit" => {
                self.skip_hints()?;
                let count = self.expr()?;
                Operator::Take {
                    count,
                    span: start.to(self.prev_span()),
                }
            }
            "sort" | "order" => {
                self.skip_hints()?;
                self.expect_kw("by")?;
                let mut keys = Vec::new();
                loop {
                    keys.push(self.sort_key()?);
                    if !self.eat_punct(",") {
                        break;
                    }
                }
                Operator::Sort {
                    keys,
                    span: start.to(self.prev_span()),
                }
            }
            "top" => {
                let count = self.expr()?;
                self.expect_kw("by")?;
                let key = self.sort_key()?;
                if self.is_punct(",") {
                    return Err(Error::unsupported(
                        "top with several sort keys",
                        self.span(),
                    ));
                }
                Operator::Top {
                    count,
                    key,
                    span: start.to(self.prev_span()),
                }
            }
            "count" => Operator::Count { span: start },
            "union" => {
                let (params, legs) = self.union_body()?;
                Operator::Union {
                    params,
                    legs,
                    span: start.to(self.prev_span()),
                }
            }
            other if KNOWN_UNSUPPORTED_OPERATORS.contains(&other) => {
                return Err(Error::unsupported(format!("the '{other}' operator"), nspan));
            }
            other => {
                return Err(Error::syntax(
                    format!("unknown tabular operator '{other}'"),
                    nspan,
                ))
            }
        };
        Ok(op)
    }

    /// `hint.strategy=shuffle` and similar query hints: accepted and ignored (they change
    /// how Kusto distributes work, never the result).
    fn skip_hints(&mut self) -> Result<()> {
        while let Tok::Ident {
            name,
            quoted: false,
        } = self.peek().clone()
        {
            if name == "hint" && matches!(self.peek_at(1), Tok::Punct(".")) {
                self.bump();
                self.bump();
                self.ident()?;
                self.expect_punct("=")?;
                self.bump();
            } else {
                break;
            }
        }
        Ok(())
    }

    /// A column name for project-away, possibly with `*` wildcards (`Process*`).
    fn column_pattern(&mut self) -> Result<Ident> {
        let start = self.span();
        let mut name = String::new();
        loop {
            match self.peek().clone() {
                Tok::Ident { name: n, .. } => name.push_str(&n),
                Tok::Punct("*") => name.push('*'),
                _ => break,
            }
            self.bump();
            // A pattern continues only while the next token touches this one.
            if self.prev_span().end != self.span().start {
                break;
            }
        }
        if name.is_empty() {
            return Err(self.unexpected("a column name"));
        }
        Ok(Ident {
            name,
            span: start.to(self.prev_span()),
        })
    }

    fn sort_key(&mut self) -> Result<SortKey> {
        let expr = self.expr()?;
        let mut desc = true;
        if self.eat_kw("asc") {
            desc = false;
        } else if self.eat_kw("desc") {
            desc = true;
        }
        let mut nulls_first = None;
        if self.eat_kw("nulls") {
            if self.eat_kw("first") {
                nulls_first = Some(true);
            } else {
                self.expect_kw("last")?;
                nulls_first = Some(false);
            }
        }
        Ok(SortKey {
            expr,
            desc,
            nulls_first,
        })
    }

    fn named_exprs(&mut self) -> Result<Vec<NamedExpr>> {
        let mut out = Vec::new();
        loop {
            out.push(self.named_expr()?);
            if !self.eat_punct(",") {
                break;
            }
        }
        Ok(out)
    }

    fn named_expr(&mut self) -> Result<NamedExpr> {
        if self.is_punct("(")
            && matches!(self.peek_at(1), Tok::Ident { .. })
            && matches!(self.peek_at(2), Tok::Punct(","))
        {
            return Err(Error::unsupported(
                "assigning several columns at once, (a, b) = ...",
                self.span(),
            ));
        }
        if matches!(self.peek(), Tok::Ident { .. }) && matches!(self.peek_at(1), Tok::Punct("=")) {
            let name = self.ident()?;
            self.bump();
            let expr = self.expr()?;
            return Ok(NamedExpr {
                name: Some(name),
                expr,
            });
        }
        Ok(NamedExpr {
            name: None,
            expr: self.expr()?,
        })
    }

    // ---- scalar expressions ----

    pub(crate) fn expr(&mut self) -> Result<Expr> {
        self.enter()?;
        let e = self.or_expr();
        self.depth -= 1;
        e
    }

    fn or_expr(&mut self) -> Result<Expr> {
        let mut left = self.and_expr()?;
        while self.eat_kw("or") {
            let right = self.and_expr()?;
            left = self.binary(BinOp::Or, left, right)?;
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr> {
        let mut left = self.eq_expr()?;
        while self.eat_kw("and") {
            let right = self.eq_expr()?;
            left = self.binary(BinOp::And, left, right)?;
        }
        Ok(left)
    }

    fn eq_expr(&mut self) -> Result<Expr> {
        let mut left = self.rel_expr()?;
        loop {
            if self.eat_punct("==") {
                let r = self.rel_expr()?;
                left = self.binary(BinOp::Eq, left, r)?;
            } else if self.eat_punct("!=") || self.eat_punct("<>") {
                let r = self.rel_expr()?;
                left = self.binary(BinOp::Ne, left, r)?;
            } else if let Some((op, negated, cs)) = self.list_op() {
                self.link()?;
                let items = self.paren_list()?;
                let span = left.span.to(self.prev_span());
                left = Expr::new(
                    ExprKind::List {
                        op,
                        negated,
                        cs,
                        left: Box::new(left),
                        items,
                    },
                    span,
                );
            } else if let Some(negated) = self.between_op() {
                self.link()?;
                self.expect_punct("(")?;
                let low = self.rel_expr()?;
                self.expect_punct("..")?;
                let high = self.rel_expr()?;
                self.expect_punct(")")?;
                let span = left.span.to(self.prev_span());
                left = Expr::new(
                    ExprKind::Between {
                        negated,
                        expr: Box::new(left),
                        low: Box::new(low),
                        high: Box::new(high),
                    },
                    span,
                );
            } else {
                return Ok(left);
            }
        }
    }

    /// `in`, `!in`, `in~`, `!in~`, `has_any`, `has_all` (no negated has_any in KQL).
    fn list_op(&mut self) -> Option<(ListOp, bool, bool)> {
        let neg = self.is_punct("!") && self.adjacent(0);
        let off = usize::from(neg);
        let Tok::Ident {
            name,
            quoted: false,
        } = self.peek_at(off).clone()
        else {
            return None;
        };
        let r = match name.as_str() {
            "in" => {
                let tilde = matches!(self.peek_at(off + 1), Tok::Punct("~")) && self.adjacent(off);
                let result = (ListOp::In, neg, !tilde);
                self.pos += off + 1 + usize::from(tilde);
                return Some(result);
            }
            "has_any" if !neg => (ListOp::HasAny, false, false),
            "has_all" if !neg => (ListOp::HasAll, false, false),
            "has_any_cs" if !neg => (ListOp::HasAny, false, true),
            "has_all_cs" if !neg => (ListOp::HasAll, false, true),
            _ => return None,
        };
        self.pos += off + 1;
        Some(r)
    }

    fn between_op(&mut self) -> Option<bool> {
        if self.eat_kw("between") {
            return Some(false);
        }
        if self.is_punct("!") && self.adjacent(0) && self.is_kw_at(1, "between") {
            self.pos += 2;
            return Some(true);
        }
        None
    }

    fn paren_list(&mut self) -> Result<Vec<Expr>> {
        self.expect_punct("(")?;
        let mut items = Vec::new();
        if !self.is_punct(")") {
            loop {
                items.push(self.expr()?);
                if !self.eat_punct(",") {
                    break;
                }
            }
        }
        self.expect_punct(")")?;
        Ok(items)
    }

    fn rel_expr(&mut self) -> Result<Expr> {
        let mut left = self.add_expr()?;
        loop {
            let op = match self.peek() {
                Tok::Punct("<") => BinOp::Lt,
                Tok::Punct("<=") => BinOp::Le,
                Tok::Punct(">") => BinOp::Gt,
                Tok::Punct(">=") => BinOp::Ge,
                _ => return Ok(left),
            };
            self.bump();
            let r = self.add_expr()?;
            left = self.binary(op, left, r)?;
        }
    }

    fn add_expr(&mut self) -> Result<Expr> {
        let mut left = self.mul_expr()?;
        loop {
            let op = match self.peek() {
                Tok::Punct("+") => BinOp::Add,
                Tok::Punct("-") => BinOp::Sub,
                _ => return Ok(left),
            };
            self.bump();
            let r = self.mul_expr()?;
            left = self.binary(op, left, r)?;
        }
    }

    fn mul_expr(&mut self) -> Result<Expr> {
        let mut left = self.str_expr()?;
        loop {
            let op = match self.peek() {
                Tok::Punct("*") => BinOp::Mul,
                Tok::Punct("/") => BinOp::Div,
                Tok::Punct("%") => BinOp::Mod,
                _ => return Ok(left),
            };
            self.bump();
            let r = self.str_expr()?;
            left = self.binary(op, left, r)?;
        }
    }

    fn str_expr(&mut self) -> Result<Expr> {
        let mut left = self.unary()?;
        while let Some((op, negated, cs)) = self.str_op()? {
            self.link()?;
            let right = self.unary()?;
            let span = left.span.to(right.span);
            left = Expr::new(
                ExprKind::Str {
                    op,
                    negated,
                    cs,
                    left: Box::new(left),
                    right: Box::new(right),
                },
                span,
            );
        }
        Ok(left)
    }

    /// The string operators with their negated and case-sensitive spellings.
    fn str_op(&mut self) -> Result<Option<(StrOp, bool, bool)>> {
        if self.eat_punct("=~") {
            return Ok(Some((StrOp::Equals, false, false)));
        }
        if self.eat_punct("!~") {
            return Ok(Some((StrOp::Equals, true, false)));
        }
        let neg = self.is_punct("!") && self.adjacent(0);
        let off = usize::from(neg);
        let Tok::Ident {
            name,
            quoted: false,
        } = self.peek_at(off).clone()
        else {
            return Ok(None);
        };
        let (base, cs) = match name.strip_suffix("_cs") {
            Some(b) => (b.to_string(), true),
            None => (name.clone(), false),
        };
        let (op, extra_neg, cs) = match (base.as_str(), cs) {
            ("has", _) => (StrOp::Has, false, cs),
            ("hasprefix", _) => (StrOp::HasPrefix, false, cs),
            ("hassuffix", _) => (StrOp::HasSuffix, false, cs),
            ("contains", _) => (StrOp::Contains, false, cs),
            ("containscs", false) => (StrOp::Contains, false, true),
            ("notcontains", false) => (StrOp::Contains, true, false),
            ("notcontainscs", false) => (StrOp::Contains, true, true),
            ("startswith", _) => (StrOp::StartsWith, false, cs),
            ("endswith", _) => (StrOp::EndsWith, false, cs),
            ("matches", false) if !neg && self.is_kw_at(1, "regex") => {
                self.pos += 2;
                return Ok(Some((StrOp::MatchesRegex, false, true)));
            }
            _ => return Ok(None),
        };
        if neg && extra_neg {
            return Ok(None);
        }
        self.pos += off + 1;
        Ok(Some((op, neg || extra_neg, cs)))
    }

    fn unary(&mut self) -> Result<Expr> {
        let start = self.span();
        if self.in_datatable
            && self.is_punct("-")
            && matches!(self.peek_at(1), Tok::Number(n) if n == "9223372036854775808")
        {
            // -9223372036854775808 is the one literal whose magnitude is not a long.
            self.bump();
            let end = self.bump().span;
            return Ok(Expr::literal(
                Value::Long(i64::MIN),
                KqlType::Long,
                start.to(end),
            ));
        }
        if self.eat_punct("-") {
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            let span = start.to(inner.span);
            // Fold negative numeric literals so `-5` is one literal, as Kusto treats it.
            if let ExprKind::Literal(Literal { value, ty }) = &inner.kind {
                let folded = match value {
                    Value::Long(v) => v.checked_neg().map(Value::Long),
                    Value::Real(v) => Some(Value::Real(-v)),
                    Value::TimeSpan(v) => v.checked_neg().map(Value::TimeSpan),
                    _ => None,
                };
                if let Some(v) = folded {
                    return Ok(Expr::literal(v, *ty, span));
                }
            }
            return Ok(Expr::new(ExprKind::Neg(Box::new(inner)), span));
        }
        if self.eat_punct("+") {
            return self.unary();
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr> {
        let mut e = self.primary()?;
        loop {
            if self.is_punct("[") {
                // x[i], x["key"]: an element of a dynamic array or property bag.
                self.bump();
                let index = self.expr()?;
                self.expect_punct("]")?;
                let span = e.span.to(self.prev_span());
                e = Expr::new(
                    ExprKind::Index {
                        target: Box::new(e),
                        index: Box::new(index),
                    },
                    span,
                );
            } else if matches!(self.peek(), Tok::Ident { quoted: true, .. })
                && self.prev_span().end == self.span().start
            {
                // x["key"] lexes as x followed by the quoted name ["key"]: an index.
                let Tok::Ident { name, .. } = self.peek().clone() else {
                    unreachable!()
                };
                let s = self.bump().span;
                let key = Expr::literal(Value::String(name), KqlType::String, s);
                let span = e.span.to(s);
                e = Expr::new(
                    ExprKind::Index {
                        target: Box::new(e),
                        index: Box::new(key),
                    },
                    span,
                );
            } else if self.is_punct(".")
                && matches!(self.peek_at(1), Tok::Ident { .. })
                && self.adjacent(0)
            {
                // x.name: a property of a dynamic bag.
                self.bump();
                let name = self.ident()?;
                let span = e.span.to(name.span);
                let key = Expr::literal(Value::String(name.name), KqlType::String, name.span);
                e = Expr::new(
                    ExprKind::Index {
                        target: Box::new(e),
                        index: Box::new(key),
                    },
                    span,
                );
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr> {
        let start = self.span();
        match self.peek().clone() {
            Tok::Number(text) => {
                self.bump();
                number_literal(&text, start)
            }
            Tok::Str(s) => {
                self.bump();
                Ok(Expr::literal(Value::String(s), KqlType::String, start))
            }
            Tok::RawLiteral { func, text } => {
                self.bump();
                raw_literal(&func, &text, start)
            }
            Tok::Punct("(") => {
                self.bump();
                if self.starts_tabular_source() {
                    return Err(Error::unsupported(
                        "a tabular expression used as a scalar",
                        start,
                    ));
                }
                let e = self.expr()?;
                if self.is_punct("|") {
                    // `(T | take 1)` where a value goes, as in `x in ((T | project y))`.
                    return Err(Error::unsupported(
                        "a tabular expression used as a scalar",
                        start.to(self.span()),
                    ));
                }
                self.expect_punct(")")?;
                Ok(e)
            }
            Tok::Punct("*") => {
                self.bump();
                Ok(Expr::new(ExprKind::Star, start))
            }
            Tok::Ident { name, quoted } => {
                self.bump();
                if !quoted && self.is_punct("(") {
                    return self.call(Ident { name, span: start });
                }
                if !quoted {
                    match name.as_str() {
                        "true" => {
                            return Ok(Expr::literal(Value::Bool(true), KqlType::Bool, start))
                        }
                        "false" => {
                            return Ok(Expr::literal(Value::Bool(false), KqlType::Bool, start))
                        }
                        _ => {}
                    }
                }
                Ok(Expr::new(ExprKind::Name(name), start))
            }
            _ => Err(self.unexpected("an expression")),
        }
    }

    fn call(&mut self, name: Ident) -> Result<Expr> {
        // Typed literals: long(5), int(null), real(nan), bool(true), dynamic([...]).
        if name.name == "dynamic" {
            self.bump();
            let v = self.json_value()?;
            self.expect_punct(")")?;
            return Ok(Expr::literal(
                if v.is_null() {
                    Value::Null
                } else {
                    Value::Dynamic(v)
                },
                KqlType::Dynamic,
                name.span.to(self.prev_span()),
            ));
        }
        if let Some(ty) = typed_literal_type(&name.name) {
            if let Some(e) = self.try_typed_literal(ty, &name)? {
                return Ok(e);
            }
        }
        self.bump(); // (
        let mut args = Vec::new();
        if !self.is_punct(")") {
            loop {
                args.push(self.expr()?);
                if self.is_punct("|") {
                    // `toscalar(T | count)`, `f(T | where ...)`: valid KQL we do not run.
                    let what = if name.name == "toscalar" {
                        "'toscalar'".to_string()
                    } else {
                        format!("a tabular expression as an argument of '{}'", name.name)
                    };
                    return Err(Error::unsupported(what, name.span.to(self.span())));
                }
                if !self.eat_punct(",") {
                    break;
                }
            }
        }
        self.expect_punct(")")?;
        let span = name.span.to(self.prev_span());
        Ok(Expr::new(ExprKind::Call { name, args }, span))
    }

    fn try_typed_literal(&mut self, ty: KqlType, name: &Ident) -> Result<Option<Expr>> {
        let save = self.pos;
        self.bump(); // (
        let neg = self.eat_punct("-");
        let plus = !neg && self.eat_punct("+");
        let tok = self.peek().clone();
        let close = matches!(self.peek_at(1), Tok::Punct(")"));
        if !close {
            self.pos = save;
            return Ok(None);
        }
        let value = match (&tok, ty) {
            (Tok::Ident { name, .. }, _) if name == "null" && !neg && !plus => Value::Null,
            (Tok::Ident { name: w, .. }, KqlType::Real) if w == "nan" => Value::Real(f64::NAN),
            (Tok::Ident { name: w, .. }, KqlType::Real) if w == "inf" => Value::Real(if neg {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }),
            (Tok::Ident { name: w, .. }, KqlType::Bool) if w == "true" || w == "false" => {
                Value::Bool(w == "true")
            }
            (Tok::Number(n), KqlType::Int | KqlType::Long | KqlType::Real) => {
                let lit = number_literal(n, self.span())?;
                let ExprKind::Literal(Literal { value, .. }) = lit.kind else {
                    unreachable!()
                };
                let f = match value {
                    Value::Long(v) => v as f64,
                    Value::Real(v) => v,
                    _ => {
                        self.pos = save;
                        return Ok(None);
                    }
                };
                let f = if neg { -f } else { f };
                match ty {
                    KqlType::Real => Value::Real(f),
                    KqlType::Long => match value {
                        Value::Long(v) => Value::Long(if neg { -v } else { v }),
                        _ => Value::Long(f as i64),
                    },
                    _ => {
                        if f.fract() != 0.0 || f < i32::MIN as f64 || f > i32::MAX as f64 {
                            return Err(Error::syntax(
                                format!("{n} is not a valid int literal"),
                                self.span(),
                            ));
                        }
                        Value::Int(f as i32)
                    }
                }
            }
            (Tok::Str(s), KqlType::String) if !neg && !plus => Value::String(s.clone()),
            _ => {
                self.pos = save;
                return Ok(None);
            }
        };
        self.bump();
        self.bump(); // )
        Ok(Some(Expr::literal(
            value,
            ty,
            name.span.to(self.prev_span()),
        )))
    }

    /// The content of `dynamic(...)`: JSON, with KQL literals allowed as values.
    fn json_value(&mut self) -> Result<serde_json::Value> {
        self.enter()?;
        let start = self.span();
        let v = match self.peek().clone() {
            // `['a']` lexes as a quoted name; inside dynamic(...) it is a one-string array.
            Tok::Ident { name, quoted: true } => {
                self.bump();
                serde_json::Value::Array(vec![serde_json::Value::String(name)])
            }
            Tok::Punct("[") => {
                self.bump();
                let mut items = Vec::new();
                if !self.is_punct("]") {
                    loop {
                        items.push(self.json_value()?);
                        if !self.eat_punct(",") {
                            break;
                        }
                    }
                }
                self.expect_punct("]")?;
                serde_json::Value::Array(items)
            }
            Tok::Punct("{") => {
                self.bump();
                let mut map = serde_json::Map::new();
                if !self.is_punct("}") {
                    loop {
                        let key = match self.peek().clone() {
                            Tok::Str(s) => s,
                            Tok::Ident { name, .. } => name,
                            _ => return Err(self.unexpected("a property name")),
                        };
                        self.bump();
                        self.expect_punct(":")?;
                        let v = self.json_value()?;
                        map.insert(key, v);
                        if !self.eat_punct(",") {
                            break;
                        }
                    }
                }
                self.expect_punct("}")?;
                serde_json::Value::Object(map)
            }
            Tok::Ident { name, .. } if name == "null" => {
                self.bump();
                serde_json::Value::Null
            }
            _ => {
                let e = self.unary()?;
                match e.kind {
                    ExprKind::Literal(Literal { value, .. }) => crate::exec::value_to_json(&value),
                    _ => {
                        return Err(Error::syntax(
                            "expected a literal value inside dynamic(...)",
                            start.to(self.prev_span()),
                        ))
                    }
                }
            }
        };
        self.depth -= 1;
        Ok(v)
    }
}

fn typed_literal_type(name: &str) -> Option<KqlType> {
    match name {
        "int" | "long" | "real" | "double" | "bool" | "boolean" | "string" | "decimal" => {
            KqlType::from_name(name)
        }
        _ => None,
    }
}

fn binary(op: BinOp, left: Expr, right: Expr) -> Expr {
    let span = left.span.to(right.span);
    Expr::new(
        ExprKind::Binary {
            op,
            left: Box::new(left),
            right: Box::new(right),
        },
        span,
    )
}

/// A numeric token: long, real, hex, or a timespan with its unit suffix.
fn number_literal(text: &str, span: Span) -> Result<Expr> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return i64::from_str_radix(hex, 16)
            .map(|v| Expr::literal(Value::Long(v), KqlType::Long, span))
            .map_err(|_| Error::syntax(format!("invalid hexadecimal literal {text}"), span));
    }
    // The lexer keeps an exponent only when digits follow it, so the first letter other
    // than an exponent's `e` starts the unit suffix (`5d`, `1.5h`, `10ms`, `3tick`).
    let split = text.find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E');
    let (num, suffix) = match split {
        Some(i) => (&text[..i], &text[i..]),
        None if text.ends_with(['e', 'E']) => (&text[..text.len() - 1], &text[text.len() - 1..]),
        None => (text, ""),
    };
    if !suffix.is_empty() {
        let ticks = time::timespan_from_number(num, suffix)
            .ok_or_else(|| Error::syntax(format!("invalid timespan literal '{text}'"), span))?;
        return Ok(Expr::literal(
            Value::TimeSpan(ticks),
            KqlType::TimeSpan,
            span,
        ));
    }
    if num.contains(['.', 'e', 'E']) {
        let v: f64 = num
            .parse()
            .map_err(|_| Error::syntax(format!("invalid number '{text}'"), span))?;
        return Ok(Expr::literal(Value::Real(v), KqlType::Real, span));
    }
    // An integer literal beyond the long range is rejected, as Kusto does (EMU-K2S).
    num.parse::<i64>()
        .map(|v| Expr::literal(Value::Long(v), KqlType::Long, span))
        .map_err(|_| {
            Error::syntax(
                format!("integer literal '{text}' is out of the range of long"),
                span,
            )
        })
}

fn raw_literal(func: &str, text: &str, span: Span) -> Result<Expr> {
    let t = text.trim();
    match func {
        "datetime" | "date" => {
            if t == "null" {
                return Ok(Expr::literal(Value::Null, KqlType::DateTime, span));
            }
            if t.is_empty() {
                return Err(Error::unsupported("datetime() without an argument", span));
            }
            let v = time::parse_datetime(t)
                .ok_or_else(|| Error::syntax(format!("invalid datetime literal '{t}'"), span))?;
            Ok(Expr::literal(Value::DateTime(v), KqlType::DateTime, span))
        }
        "timespan" | "time" => {
            if t == "null" {
                return Ok(Expr::literal(Value::Null, KqlType::TimeSpan, span));
            }
            let v = time::parse_timespan_literal(t)
                .ok_or_else(|| Error::syntax(format!("invalid timespan literal '{t}'"), span))?;
            Ok(Expr::literal(Value::TimeSpan(v), KqlType::TimeSpan, span))
        }
        "guid" => {
            if t == "null" {
                return Ok(Expr::literal(Value::Null, KqlType::Guid, span));
            }
            let g = crate::types::parse_guid(t)
                .ok_or_else(|| Error::syntax(format!("invalid guid literal '{t}'"), span))?;
            Ok(Expr::literal(Value::Guid(g), KqlType::Guid, span))
        }
        _ => Err(Error::internal(format!("unexpected raw literal {func}"))),
    }
}
