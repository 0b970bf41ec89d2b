//! The syntax tree. Every node has a span; spans compare equal to each other, so
//! `parse(print(ast)) == ast` holds whatever the layout of the text.

use crate::error::Span;
use crate::types::{KqlType, Value};

#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub statements: Vec<Statement>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Statement {
    Let {
        name: Ident,
        value: LetValue,
        span: Span,
    },
    Tabular(TabularExpr),
}

#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum LetValue {
    Scalar(Expr),
    Tabular(TabularExpr),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TabularExpr {
    pub source: Source,
    pub ops: Vec<Operator>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Source {
    /// A table or a `let`-bound tabular expression.
    Named(Ident),
    Datatable {
        schema: Vec<(Ident, KqlType)>,
        values: Vec<Expr>,
        span: Span,
    },
    Print {
        exprs: Vec<NamedExpr>,
        span: Span,
    },
    Range {
        column: Ident,
        from: Expr,
        to: Expr,
        step: Expr,
        span: Span,
    },
    Union {
        params: UnionParams,
        legs: Vec<TabularExpr>,
        span: Span,
    },
    Paren(Box<TabularExpr>),
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct UnionParams {
    /// `kind=inner`; the default is outer.
    pub inner: bool,
    pub with_source: Option<Ident>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NamedExpr {
    pub name: Option<Ident>,
    pub expr: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SortKey {
    pub expr: Expr,
    pub desc: bool,
    /// `nulls first` / `nulls last` when written; `None` means the direction's default.
    pub nulls_first: Option<bool>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Operator {
    Where {
        pred: Expr,
        span: Span,
    },
    Project {
        exprs: Vec<NamedExpr>,
        span: Span,
    },
    ProjectAway {
        columns: Vec<Ident>,
        span: Span,
    },
    ProjectRename {
        renames: Vec<(Ident, Ident)>,
        span: Span,
    },
    Extend {
        exprs: Vec<NamedExpr>,
        span: Span,
    },
    Summarize {
        aggs: Vec<NamedExpr>,
        by: Vec<NamedExpr>,
        span: Span,
    },
    /// `distinct *` is an empty column list.
    Distinct {
        columns: Vec<NamedExpr>,
        span: Span,
    },
    Take {
        count: Expr,
        span: Span,
    },
    Sort {
        keys: Vec<SortKey>,
        span: Span,
    },
    Top {
        count: Expr,
        key: SortKey,
        span: Span,
    },
    Count {
        span: Span,
    },
    Union {
        params: UnionParams,
        legs: Vec<TabularExpr>,
        span: Span,
    },
}

impl Operator {
    pub fn span(&self) -> Span {
        match self {
            Operator::Where { span, .. }
            | Operator::Project { span, .. }
            | Operator::ProjectAway { span, .. }
            | Operator::ProjectRename { span, .. }
            | Operator::Extend { span, .. }
            | Operator::Summarize { span, .. }
            | Operator::Distinct { span, .. }
            | Operator::Take { span, .. }
            | Operator::Sort { span, .. }
            | Operator::Top { span, .. }
            | Operator::Count { span }
            | Operator::Union { span, .. } => *span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// The string operators: `has`, `contains`, `=~`, ... (negated and case-sensitive forms
/// are flags, so each rule is written once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrOp {
    /// `=~` (and `!~` negated); `==`/`!=` on strings are `Equals` with `cs`.
    Equals,
    Has,
    HasPrefix,
    HasSuffix,
    Contains,
    StartsWith,
    EndsWith,
    MatchesRegex,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListOp {
    In,
    HasAny,
    HasAll,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Literal(Literal),
    Name(String),
    /// `*` as an argument: `count(*)`? no; `take_any(*)`, `arg_max(x, *)`.
    Star,
    Call {
        name: Ident,
        args: Vec<Expr>,
    },
    Neg(Box<Expr>),
    Binary {
        op: BinOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Str {
        op: StrOp,
        negated: bool,
        cs: bool,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `in`, `!in`, `in~`, `!in~`, `has_any`, `has_all`.
    List {
        op: ListOp,
        negated: bool,
        cs: bool,
        left: Box<Expr>,
        items: Vec<Expr>,
    },
    /// `x[i]` (array element, negative from the end) or `x["key"]` / `x.key` (property).
    Index {
        target: Box<Expr>,
        index: Box<Expr>,
    },
    Between {
        negated: bool,
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
    },
}

#[derive(Clone, Debug)]
pub struct Literal {
    pub value: Value,
    pub ty: KqlType,
}

/// Literals compare by value and type, with NaN equal to NaN (a printed `real(nan)`
/// must parse back to an equal tree).
impl PartialEq for Literal {
    fn eq(&self, other: &Literal) -> bool {
        self.ty == other.ty
            && match (&self.value, &other.value) {
                (Value::Real(a), Value::Real(b)) => a == b || (a.is_nan() && b.is_nan()),
                (a, b) => a == b,
            }
    }
}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        Expr { kind, span }
    }
    pub fn literal(value: Value, ty: KqlType, span: Span) -> Expr {
        Expr::new(ExprKind::Literal(Literal { value, ty }), span)
    }
}
