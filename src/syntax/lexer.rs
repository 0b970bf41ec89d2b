//! Tokens of KQL text. Contextual keywords (`where`, `by`, `asc`, ...) are plain
//! identifiers; the parser gives them meaning. String literals are decoded here, in
//! [`decode_string`], the one place that owns Kusto's literal rules.

use crate::error::{Error, Result, Span};

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// An identifier or keyword; `quoted` for `['name']` / `["name"]`.
    Ident {
        name: String,
        quoted: bool,
    },
    /// A number as written (`12`, `1.5`, `1e3`, `0x1F`), possibly with a timespan suffix (`5d`).
    Number(String),
    /// A decoded string literal (adjacent literals already concatenated).
    Str(String),
    /// The raw text between the parentheses of `datetime(...)`, `timespan(...)`, `time(...)`,
    /// `guid(...)`: these literals hold unquoted text.
    RawLiteral {
        func: String,
        text: String,
    },
    Punct(&'static str),
    Eof,
}

#[derive(Clone, Debug)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}

const PUNCTS: [&str; 31] = [
    "..", "==", "!=", "<>", "<=", ">=", "=~", "!~", "=>", "|", ";", ",", "(", ")", "[", "]", "{",
    "}", ".", "=", "<", ">", "+", "-", "*", "/", "%", "!", ":", "?", "~",
];

/// Functions whose parenthesised argument is raw literal text rather than an expression.
const RAW_LITERAL_FUNCS: [&str; 5] = ["datetime", "timespan", "time", "guid", "date"];

pub fn tokenize(src: &str) -> Result<Vec<Token>> {
    let mut lx = Lexer {
        src,
        pos: 0,
        out: Vec::new(),
    };
    lx.run()?;
    Ok(lx.out)
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    out: Vec<Token>,
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}
fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }
    fn peek_at(&self, n: usize) -> Option<char> {
        self.src[self.pos..].chars().nth(n)
    }
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn skip_trivia(&mut self) {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            if self.rest().starts_with("//") {
                let end = self.rest().find('\n').unwrap_or(self.rest().len());
                self.pos += end;
            } else {
                break;
            }
        }
    }

    fn push(&mut self, tok: Tok, start: usize) {
        self.out.push(Token {
            tok,
            span: Span::new(start, self.pos),
        });
    }

    fn run(&mut self) -> Result<()> {
        loop {
            self.skip_trivia();
            let start = self.pos;
            let Some(c) = self.peek() else {
                self.push(Tok::Eof, start);
                return Ok(());
            };
            if let Some(s) = self.try_string()? {
                // Adjacent string literals concatenate.
                if let Some(Token {
                    tok: Tok::Str(prev),
                    span,
                }) = self.out.last_mut()
                {
                    prev.push_str(&s);
                    span.end = self.pos;
                    continue;
                }
                self.push(Tok::Str(s), start);
                continue;
            }
            if c == '[' && matches!(self.peek_at(1), Some('\'' | '"')) {
                // ['quoted identifier'], unless it is an array of strings: ['a', 'b'].
                self.pos += 1;
                let name = self.try_string()?.unwrap_or_default();
                self.skip_trivia();
                if self.peek() == Some(']') {
                    self.pos += 1;
                    self.push(Tok::Ident { name, quoted: true }, start);
                    continue;
                }
                self.pos = start;
            }
            if c.is_ascii_digit()
                || (c == '.'
                    && self.peek_at(1).is_some_and(|d| d.is_ascii_digit())
                    && !self.prev_is_operand())
            {
                self.number();
                self.push(Tok::Number(self.src[start..self.pos].to_string()), start);
                continue;
            }
            if is_ident_start(c) {
                self.pos += c.len_utf8();
                while self.peek().is_some_and(is_ident_char) {
                    self.pos += self.peek().map_or(0, char::len_utf8);
                }
                let name = self.src[start..self.pos].to_string();
                if RAW_LITERAL_FUNCS.contains(&name.as_str()) && self.next_nontrivia_is('(') {
                    self.raw_literal(name, start)?;
                    continue;
                }
                self.push(
                    Tok::Ident {
                        name,
                        quoted: false,
                    },
                    start,
                );
                continue;
            }
            if let Some(p) = PUNCTS.iter().find(|p| self.rest().starts_with(**p)) {
                self.pos += p.len();
                self.push(Tok::Punct(p), start);
                continue;
            }
            let len = c.len_utf8();
            return Err(Error::syntax(
                format!("unexpected character {c:?}"),
                Span::new(start, start + len),
            ));
        }
    }

    /// After an operand (`x.5` is member access, not `x` then `.5`), a dot is punctuation.
    fn prev_is_operand(&self) -> bool {
        matches!(
            self.out.last(),
            Some(Token {
                tok: Tok::Ident { .. } | Tok::Number(_) | Tok::Punct(")" | "]"),
                ..
            })
        )
    }

    fn next_nontrivia_is(&self, want: char) -> bool {
        self.src[self.pos..].trim_start().starts_with(want)
    }

    fn number(&mut self) {
        let rest = self.rest();
        if rest.starts_with("0x") || rest.starts_with("0X") {
            self.pos += 2;
            while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                self.pos += 1;
            }
            return;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
        } else if self.peek() == Some('.')
            && !self
                .peek_at(1)
                .is_some_and(|c| c == '.' || is_ident_start(c))
        {
            // `1.` is a real literal; `1..5` and `x.y` are not.
            self.pos += 1;
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let sign = usize::from(matches!(self.peek_at(1), Some('+' | '-')));
            if self.peek_at(1 + sign).is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1 + sign;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
            }
        }
        // A timespan suffix or type suffix glued to the number (`5d`, `10ms`, `3tick`).
        while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            self.pos += 1;
        }
    }

    fn raw_literal(&mut self, func: String, start: usize) -> Result<()> {
        self.skip_trivia();
        self.pos += 1; // (
        let content_start = self.pos;
        let mut depth = 1usize;
        while let Some(c) = self.peek() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                '"' | '\'' => {
                    // A quoted form: datetime("2020-01-01").
                    self.try_string()?;
                    continue;
                }
                _ => {}
            }
            self.pos += c.len_utf8();
        }
        if self.peek() != Some(')') {
            return Err(Error::syntax(
                format!("unterminated {func}(...) literal: expected ')'"),
                Span::new(start, self.pos),
            ));
        }
        let raw = self.src[content_start..self.pos].trim();
        let text = match tokenize_single_string(raw) {
            Some(s) => s,
            None => raw.to_string(),
        };
        self.pos += 1;
        self.push(Tok::RawLiteral { func, text }, start);
        Ok(())
    }

    /// Reads a string literal at the cursor if there is one (any of Kusto's forms).
    fn try_string(&mut self) -> Result<Option<String>> {
        let rest = self.rest();
        let start = self.pos;
        // Multi-line literals: ```...``` and ~~~...~~~ (no escapes).
        for fence in ["```", "~~~"] {
            if let Some(body) = rest.strip_prefix(fence) {
                let Some(end) = body.find(fence) else {
                    return Err(Error::syntax(
                        "unterminated multi-line string literal",
                        Span::new(start, self.src.len()),
                    ));
                };
                self.pos += fence.len() * 2 + end;
                return Ok(Some(body[..end].to_string()));
            }
        }
        let mut chars = rest.char_indices();
        let mut prefix = 0usize;
        let mut verbatim = false;
        let (_, c0) = match chars.next() {
            Some(x) => x,
            None => return Ok(None),
        };
        let mut c = c0;
        if c == 'h' || c == 'H' {
            match rest[1..].chars().next() {
                Some('\'' | '"' | '@') => {
                    prefix = 1;
                    c = rest[1..].chars().next().unwrap_or(' ');
                }
                _ => return Ok(None),
            }
        }
        if c == '@' {
            match rest[prefix + 1..].chars().next() {
                Some('\'' | '"') => {
                    verbatim = true;
                    prefix += 1;
                    c = rest[prefix..].chars().next().unwrap_or(' ');
                }
                _ => return Ok(None),
            }
        }
        if c != '\'' && c != '"' {
            return Ok(None);
        }
        let quote = c;
        let body_start = prefix + 1;
        let bytes = rest.as_bytes();
        let mut i = body_start;
        loop {
            if i >= bytes.len() {
                return Err(Error::syntax(
                    "unterminated string literal",
                    Span::new(start, self.src.len()),
                ));
            }
            let b = bytes[i];
            if b == b'\n' && !verbatim {
                return Err(Error::syntax(
                    "unterminated string literal (newline inside quotes)",
                    Span::new(start, start + i),
                ));
            }
            if verbatim {
                if b == quote as u8 {
                    if bytes.get(i + 1) == Some(&(quote as u8)) {
                        i += 2;
                        continue;
                    }
                    break;
                }
            } else if b == b'\\' {
                i += 2;
                continue;
            } else if b == quote as u8 {
                break;
            }
            i += 1;
        }
        let body = &rest[body_start..i];
        self.pos += i + 1;
        let value = if verbatim {
            body.replace(&format!("{quote}{quote}"), &quote.to_string())
        } else {
            decode_string(body).map_err(|(msg, off)| {
                Error::syntax(
                    msg,
                    Span::new(start + body_start + off, start + body_start + off + 1),
                )
            })?
        };
        Ok(Some(value))
    }
}

/// If `raw` is exactly one string literal, its value.
fn tokenize_single_string(raw: &str) -> Option<String> {
    let mut lx = Lexer {
        src: raw,
        pos: 0,
        out: Vec::new(),
    };
    let s = lx.try_string().ok()??;
    if lx.pos == raw.len() {
        Some(s)
    } else {
        None
    }
}

/// Decodes the escapes of a regular (non-verbatim) KQL string literal body:
/// `\\ \' \" \a \b \f \n \r \t \v \uXXXX \UXXXXXXXX \xHH`, octal `\ddd`, and `\c` -> `c`
/// for any other character (KL `KustoFacts.DecodeEscapes`; SEMANTICS.md §4).
pub fn decode_string(body: &str) -> std::result::Result<String, (String, usize)> {
    let mut out = String::with_capacity(body.len());
    let mut it = body.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some((_, e)) = it.next() else {
            return Err(("string literal ends with a lone backslash".into(), i));
        };
        let hex = |it: &mut std::iter::Peekable<std::str::CharIndices>,
                   n: usize|
         -> std::result::Result<char, (String, usize)> {
            let mut v: u32 = 0;
            for _ in 0..n {
                match it.next() {
                    Some((_, h)) if h.is_ascii_hexdigit() => {
                        v = v * 16 + h.to_digit(16).unwrap_or(0)
                    }
                    _ => return Err((format!("invalid \\{e} escape: expected {n} hex digits"), i)),
                }
            }
            char::from_u32(v).ok_or_else(|| (format!("escape \\{e} is not a valid character"), i))
        };
        match e {
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            'u' => out.push(hex(&mut it, 4)?),
            'U' => out.push(hex(&mut it, 8)?),
            'x' => out.push(hex(&mut it, 2)?),
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match it.peek() {
                        Some(&(_, d)) if d.is_digit(8) => {
                            v = v * 8 + d.to_digit(8).unwrap_or(0);
                            it.next();
                        }
                        _ => break,
                    }
                }
                out.push(char::from_u32(v).unwrap_or('\u{FFFD}'));
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// A KQL string literal whose value is exactly `s`: double-quoted, with backslash, quote
/// and every control or non-printing character escaped. Parsing it gives `s` back, so it
/// can carry any user text into a query without changing the query's structure.
pub fn quote_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control()
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{200B}'..='\u{200F}' | '\u{FEFF}'
                ) =>
            {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(src: &str) -> Vec<String> {
        tokenize(src)
            .unwrap()
            .into_iter()
            .filter_map(|t| {
                if let Tok::Str(s) = t.tok {
                    Some(s)
                } else {
                    None
                }
            })
            .collect()
    }

    /// String literal forms, DOCS scalar-data-types/string.md; KL KustoFacts.GetStringLiteralValue.
    #[test]
    fn string_literal_forms() {
        let cases: &[(&str, &str)] = &[
            (r#""hello""#, "hello"),
            (r#"'hello'"#, "hello"),
            (r#""a\"b""#, "a\"b"),
            (r#"'a\'b'"#, "a'b"),
            (r#""a\\b""#, "a\\b"),
            (r#""tab\there""#, "tab\there"),
            (r#""\u00e9""#, "é"),
            (r#""\x41""#, "A"),
            (r#""\101""#, "A"),
            (r#""\q""#, "q"),
            (r#"@"C:\Windows\""#, "C:\\Windows\\"),
            (r#"@'it''s'"#, "it's"),
            (r#"@"say ""hi""""#, "say \"hi\""),
            (r#"h"secret""#, "secret"),
            (r#"H'secret'"#, "secret"),
            (r#"h@'C:\x'"#, "C:\\x"),
            ("```multi\nline```", "multi\nline"),
            (r#""ab" 'cd'"#, "abcd"),
            (
                r#""ab" // comment
               "cd""#,
                "abcd",
            ),
        ];
        for (src, want) in cases {
            assert_eq!(strs(src), vec![want.to_string()], "{src}");
        }
    }

    #[test]
    fn quote_string_round_trips() {
        for s in [
            "",
            "plain",
            "quo\"te",
            "back\\slash",
            "new\nline",
            "\u{0}\u{1f}",
            "é😀",
            "\u{2028}",
            "'; drop",
        ] {
            let q = quote_string(s);
            assert_eq!(strs(&q), vec![s.to_string()], "{q}");
        }
    }

    #[test]
    fn unterminated_string_is_an_error() {
        assert!(tokenize("print 'abc").is_err());
        assert!(tokenize("print \"a\\\"").is_err());
    }

    #[test]
    fn numbers_and_ranges() {
        let toks: Vec<Tok> = tokenize("1..5 1.5h 0x1F 2e3 5d")
            .unwrap()
            .into_iter()
            .map(|t| t.tok)
            .collect();
        assert_eq!(toks[0], Tok::Number("1".into()));
        assert_eq!(toks[1], Tok::Punct(".."));
        assert_eq!(toks[2], Tok::Number("5".into()));
        assert_eq!(toks[3], Tok::Number("1.5h".into()));
        assert_eq!(toks[4], Tok::Number("0x1F".into()));
        assert_eq!(toks[5], Tok::Number("2e3".into()));
        assert_eq!(toks[6], Tok::Number("5d".into()));
    }

    #[test]
    fn raw_literals() {
        let toks: Vec<Tok> =
            tokenize("datetime(2015-12-31 23:59:59.9) time(1.02:03:04) datetime(\"2020-01-01\")")
                .unwrap()
                .into_iter()
                .map(|t| t.tok)
                .collect();
        assert_eq!(
            toks[0],
            Tok::RawLiteral {
                func: "datetime".into(),
                text: "2015-12-31 23:59:59.9".into()
            }
        );
        assert_eq!(
            toks[1],
            Tok::RawLiteral {
                func: "time".into(),
                text: "1.02:03:04".into()
            }
        );
        assert_eq!(
            toks[2],
            Tok::RawLiteral {
                func: "datetime".into(),
                text: "2020-01-01".into()
            }
        );
    }
}
