//! One error type for the whole pipeline, with kinds that separate the user's mistakes
//! (syntax, unknown names, unsupported constructs, bad data) from ours (`Internal`).
//! Errors that point into the query carry a [`Span`]; [`Error::render`] draws a caret
//! under the problem with its line and column.

use std::fmt;

/// A byte range in the query text. Spans never take part in AST equality.
#[derive(Clone, Copy, Debug, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl PartialEq for Span {
    fn eq(&self, _: &Span) -> bool {
        true
    }
}
impl Eq for Span {}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// What went wrong, from the user's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The query text is not valid KQL.
    Syntax,
    /// Valid KQL that does not make sense here: unknown table or column, type mismatch.
    Semantic,
    /// Valid KQL that rmmhunt does not implement (yet). Never silently approximated.
    Unsupported,
    /// The input data cannot be read or converted.
    Data,
    /// A bug in rmmhunt.
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "syntax error",
            ErrorKind::Semantic => "semantic error",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Data => "data error",
            ErrorKind::Internal => "internal error (this is a bug in rmmhunt, please report it)",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub span: Option<Span>,
    /// The query text the span points into, once known; used by `Display`.
    pub source: Option<std::sync::Arc<str>>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            span: None,
            source: None,
        }
    }
    pub fn syntax(message: impl Into<String>, span: Span) -> Error {
        Error::new(ErrorKind::Syntax, message).at(span)
    }
    pub fn semantic(message: impl Into<String>, span: Span) -> Error {
        Error::new(ErrorKind::Semantic, message).at(span)
    }
    pub fn unsupported(construct: impl fmt::Display, span: Span) -> Error {
        Error::new(
            ErrorKind::Unsupported,
            format!("{construct} is not supported yet"),
        )
        .at(span)
    }
    pub fn data(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Data, message)
    }
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Internal, message)
    }
    /// Attach a span unless one is already there (the innermost span wins).
    pub fn at(mut self, span: Span) -> Error {
        if self.span.is_none() {
            self.span = Some(span);
        }
        self
    }
    pub fn with_source(mut self, source: &str) -> Error {
        if self.source.is_none() {
            self.source = Some(source.into());
        }
        self
    }

    /// 1-based line and column (in characters) of the span's start.
    pub fn line_col(&self) -> Option<(usize, usize)> {
        let (span, src) = (self.span?, self.source.as_deref()?);
        Some(line_col(src, span.start))
    }

    /// The message with `line L, column C`, the offending line and a caret under the span.
    pub fn render(&self) -> String {
        let mut out = format!("{}: {}", self.kind.as_str(), self.message);
        if let (Some(span), Some(src)) = (self.span, self.source.as_deref()) {
            let start = floor_char_boundary(src, span.start.min(src.len()));
            let (line, col) = line_col(src, start);
            let line_start = src[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
            let line_end = src[start..]
                .find('\n')
                .map(|i| start + i)
                .unwrap_or(src.len());
            let text = &src[line_start..line_end];
            let end = floor_char_boundary(src, span.end.clamp(start, line_end));
            let width = src[start..end].chars().count().max(1);
            out.push_str(&format!(
                "\n  --> line {line}, column {col}\n   | {text}\n   | "
            ));
            out.push_str(&" ".repeat(col - 1));
            out.push_str(&"^".repeat(width));
        }
        out
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// 1-based (line, column) of byte offset `pos`; columns count characters.
pub fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let pos = floor_char_boundary(src, pos.min(src.len()));
    let before = &src[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for Error {}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Error {
        Error::data(e.to_string())
    }
}

/// The closest candidates to `name` (case-insensitive edit distance), for "did you mean" hints.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let lname = name.to_lowercase();
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| (edit_distance(&lname, &c.to_lowercase()), c))
        .collect();
    scored.sort_by_key(|&(d, c)| (d, c.to_string()));
    let limit = (name.chars().count() / 2).max(2);
    let close: Vec<&str> = scored
        .iter()
        .filter(|(d, _)| *d <= limit)
        .map(|&(_, c)| c)
        .take(3)
        .collect();
    if close.is_empty() {
        scored.iter().map(|&(_, c)| c).take(3).collect()
    } else {
        close
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `f`, with a panic in the engine (a bug) turned into an internal error that names it:
/// Python code catches it as `rmmhunt.InternalError`, where pyo3's PanicException
/// escapes `except Exception` (a notebook loop over queries stopped at the first one).
pub fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let what = panic_message(payload.as_ref()).unwrap_or("a panic");
        Err(Error::internal(format!(
            "the engine failed ({what}); please report it"
        )))
    })
}

/// The message a panic carried (`panic!("...")` with or without arguments), if any.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_points_at_the_column() {
        let e = Error::syntax("unexpected token", Span::new(4, 8)).with_source("T\n| wher x");
        assert_eq!(e.line_col(), Some((2, 3)));
        assert!(e.render().contains("line 2, column 3"), "{}", e.render());
        assert!(e.render().ends_with("   |   ^^^^"), "{}", e.render());
    }

    #[test]
    fn a_panic_becomes_an_internal_error() {
        let e = guarded::<()>(|| panic!("boom {}", 7)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Internal);
        assert!(e.message.contains("boom 7"), "{}", e.message);
        let e = guarded::<()>(|| panic!("static")).unwrap_err();
        assert!(e.message.contains("static"), "{}", e.message);
        assert_eq!(guarded(|| Ok(3)).unwrap(), 3);
    }

    #[test]
    fn closest_names() {
        let c = closest("DeviceNme", ["DeviceName", "DeviceId", "Timestamp"]);
        assert_eq!(c[0], "DeviceName");
    }
}
