r"""The false-positive filter language, and its translation to KQL.

A scenario's filter says which events are benign::

    process.parent_process_name == "connectwise" OR process.command_line LIKE "%scheduled_job%"

Grammar (keywords are case-insensitive)::

    filter     := or
    or         := and ( OR and )*
    and        := not ( AND not )*
    not        := NOT not | "(" or ")" | comparison
    comparison := FIELD ( "==" | "!=" ) STRING
                | FIELD [NOT] LIKE STRING [ESCAPE STRING]
                | FIELD [NOT] IN "(" STRING ( "," STRING )* ")"
    FIELD      := NAME ( "." NAME )*          NAME := [A-Za-z_][A-Za-z0-9_]*
    STRING     := "..." | '...'   escapes: \\ \" \' \n \r \t \uXXXX \UXXXXXXXX

Semantics. Every comparison is a case-insensitive string comparison (Windows paths and names),
with Kusto's rule: simple per-character case mapping, no normalisation. ``LIKE`` is SQL's: ``%``
matches any run of characters (newlines included), ``_`` exactly one character, and the whole
value must match. Without ``ESCAPE`` there is no escape character (a backslash is literal, so
Windows paths need no doubling inside the pattern); ``ESCAPE '!'`` makes ``!%``, ``!_`` and
``!!`` literal. A missing (null) value is the empty string, as in Kusto.

Translation to KQL (:meth:`Expr.to_kql`) uses the closest exact Kusto operator:

==============================  =====================================================
filter                          KQL
==============================  =====================================================
``f == "x"`` / ``f != "x"``     ``Col =~ "x"`` / ``Col !~ "x"``
``f LIKE "%x%"``                ``Col contains "x"``
``f LIKE "x%"``                 ``Col startswith "x"``
``f LIKE "%x"``                 ``Col endswith "x"``
``f LIKE "x"`` (no wildcard)    ``Col =~ "x"``
any other pattern               ``Col matches regex "(?is)^...$"`` (anchored, escaped)
``NOT LIKE``                    the negated operator (``!contains``, ...), or ``not(...)``
``f IN ("a", "b")``             ``Col in~ ("a", "b")``; ``NOT IN``: ``!in~``
``AND`` / ``OR`` / ``NOT``      ``and`` / ``or`` / ``not(...)``
==============================  =====================================================

The regex uses the ``s`` flag as well as ``i`` so that ``%`` and ``_`` match newlines as they do
in LIKE. Every string reaches KQL through :func:`kql_string`, so no value can end the literal
early or inject KQL. Columns come from a :class:`~rmmhunt.rules.FieldMap`; a field that maps to
no column of the table raises :class:`~rmmhunt.rules.FieldMapError`.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field

from .errors import ExclusionSyntaxError, FieldMapError
from .fieldmap import FieldMap

__all__ = [
    "And",
    "Compare",
    "Expr",
    "In",
    "Like",
    "Not",
    "Or",
    "kql_ident",
    "kql_string",
    "parse",
]

#: Deepest nesting of parentheses / NOT accepted (hostile input must not exhaust the stack).
MAX_DEPTH = 64

# ----------------------------------------------------------------------------------------------
# KQL literals


_SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _needs_unicode_escape(ch: str) -> bool:
    cp = ord(ch)
    return (
        unicodedata.category(ch) == "Cc"
        or cp in (0x2028, 0x2029, 0xFEFF)
        or 0x200B <= cp <= 0x200F
        or 0xD800 <= cp <= 0xDFFF  # lone surrogates (possible in Python strings)
    )


def _kql_string_fallback(s: str) -> str:
    """A double-quoted KQL string literal whose value is exactly ``s``: the same text as the
    engine's ``rmmhunt.kql_string`` (``quote_string`` in src/syntax/lexer.rs).

    ``\\`` and ``"`` are escaped, newline, carriage return and tab become ``\\n``, ``\\r``,
    ``\\t``; every other control character, the line and paragraph separators, the zero-width
    characters U+200B..U+200F and the BOM become ``\\uXXXX`` (UTF-16 code units). Everything
    else, non-ASCII included, stays as it is.
    """
    out = ['"']
    for ch in s:
        short = _SHORT_ESCAPES.get(ch)
        if short is not None:
            out.append(short)
        elif _needs_unicode_escape(ch):
            cp = ord(ch)
            if cp > 0xFFFF:
                cp -= 0x10000
                out.append(f"\\u{0xD800 + (cp >> 10):04x}\\u{0xDC00 + (cp & 0x3FF):04x}")
            else:
                out.append(f"\\u{cp:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


@functools.cache
def _engine_kql_string() -> Callable[[str], str] | None:
    try:
        import rmmhunt
    except ImportError:
        return None
    fn = getattr(rmmhunt, "kql_string", None)
    return fn if callable(fn) else None


def kql_string(s: str) -> str:
    """A KQL string literal with value ``s``: the engine's ``rmmhunt.kql_string`` when it is
    available, else an equivalent pure-Python fallback."""
    if not isinstance(s, str):
        raise TypeError(f"kql_string expects str, not {type(s).__name__}")
    fn = _engine_kql_string()
    return fn(s) if fn is not None else _kql_string_fallback(s)


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Words that cannot be bare column names in KQL (operators and keywords that may appear where an
# expression starts). Anything in doubt is bracket-quoted, which is always valid.
_KQL_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "not",
        "in",
        "has",
        "contains",
        "startswith",
        "endswith",
        "matches",
        "regex",
        "between",
        "like",
        "true",
        "false",
        "null",
        "by",
        "on",
        "with",
        "let",
        "where",
        "project",
        "extend",
        "summarize",
        "as",
        "of",
        "asc",
        "desc",
        "nulls",
        "first",
        "last",
        "datatable",
        "print",
        "range",
        "union",
        "join",
        "kind",
        "typeof",
        "dynamic",
        "bool",
        "int",
        "long",
        "real",
        "decimal",
        "string",
        "datetime",
        "date",
        "time",
        "timespan",
        "guid",
    }
)


def kql_ident(name: str) -> str:
    """A column reference: bare when ``name`` is a plain identifier, else ``["name"]``."""
    if _IDENT.match(name) and name.lower() not in _KQL_KEYWORDS:
        return name
    return f"[{kql_string(name)}]"


# ----------------------------------------------------------------------------------------------
# Case-insensitive comparison (the Python reference semantics)


def fold(s: str) -> str:
    """Kusto's case-insensitive comparison key: per-character simple lower-casing (characters
    whose lower case is more than one character are kept as they are, e.g. ``İ``)."""
    if s.isascii():
        return s.lower()
    out = []
    for ch in s:
        low = ch.lower()
        out.append(low if len(low) == 1 else ch)
    return "".join(out)


def _value(row: Mapping[str, object], column: str) -> str:
    if column not in row:
        raise FieldMapError(f"the row has no column {column!r}", field="", table="", column=column)
    v = row[column]
    if v is None:
        return ""
    if not isinstance(v, str):
        raise TypeError(f"column {column!r} holds {type(v).__name__}; filters compare strings")
    return v


# ----------------------------------------------------------------------------------------------
# AST

_Span = tuple[int, int]


def _quote(s: str) -> str:
    """A string literal of the filter language with value ``s``."""
    out = ['"']
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch.isprintable():
            out.append(ch)
        else:
            cp = ord(ch)
            out.append(f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}")
    out.append('"')
    return "".join(out)


class _Node:
    """Shared behaviour of the AST nodes."""

    def to_source(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def __str__(self) -> str:
        return self.to_source()

    def fields(self) -> frozenset[str]:
        """The field paths the filter uses."""
        return frozenset(_walk_fields(self))  # type: ignore[arg-type]

    def to_kql(
        self,
        field_map: FieldMap,
        present: Iterable[str] | None = None,
    ) -> str:
        """The filter as a KQL predicate over the columns of ``field_map``'s table.

        ``present``: the columns of the data at hand (default: the columns the map knows). A
        field without a column there raises :class:`FieldMapError`."""
        cols = None if present is None else frozenset(present)
        return _compile(self, field_map, cols)  # type: ignore[arg-type]

    def matches(self, row: Mapping[str, object], field_map: FieldMap) -> bool:
        """Whether an event (column name -> value) matches, with Kusto's semantics; the
        reference against which the KQL translation is tested."""
        return _eval(self, row, field_map)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Compare(_Node):
    """``field == "value"`` or ``field != "value"`` (case-insensitive)."""

    field: str
    op: str  # "==" or "!="
    value: str
    span: _Span = dc_field(default=(0, 0), compare=False, repr=False)

    def to_source(self) -> str:
        return f"{self.field} {self.op} {_quote(self.value)}"


@dataclass(frozen=True)
class Like(_Node):
    """``field [NOT] LIKE "pattern" [ESCAPE "c"]``."""

    field: str
    pattern: str
    negated: bool = False
    escape: str | None = None
    span: _Span = dc_field(default=(0, 0), compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.escape is not None and len(self.escape) != 1:
            raise ValueError("ESCAPE takes exactly one character")
        _like_parts(self.pattern, self.escape)  # validates the escapes

    def parts(self) -> list[tuple[str, str]]:
        """The pattern as ``("lit", text)``, ``("any", "%")`` and ``("one", "_")`` parts, with
        runs of ``%`` collapsed and adjacent literals merged."""
        return _like_parts(self.pattern, self.escape)

    def to_source(self) -> str:
        op = "NOT LIKE" if self.negated else "LIKE"
        text = f"{self.field} {op} {_quote(self.pattern)}"
        if self.escape is not None:
            text += f" ESCAPE {_quote(self.escape)}"
        return text


@dataclass(frozen=True)
class In(_Node):
    """``field [NOT] IN ("a", "b", ...)`` (case-insensitive)."""

    field: str
    values: tuple[str, ...]
    negated: bool = False
    span: _Span = dc_field(default=(0, 0), compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("IN needs at least one value")

    def to_source(self) -> str:
        op = "NOT IN" if self.negated else "IN"
        return f"{self.field} {op} ({', '.join(_quote(v) for v in self.values)})"


@dataclass(frozen=True)
class And(_Node):
    items: tuple[Expr, ...]
    span: _Span = dc_field(default=(0, 0), compare=False, repr=False)

    def to_source(self) -> str:
        return " AND ".join(
            f"({i.to_source()})" if isinstance(i, Or) else i.to_source() for i in self.items
        )


@dataclass(frozen=True)
class Or(_Node):
    items: tuple[Expr, ...]
    span: _Span = dc_field(default=(0, 0), compare=False, repr=False)

    def to_source(self) -> str:
        return " OR ".join(i.to_source() for i in self.items)


@dataclass(frozen=True)
class Not(_Node):
    item: Expr
    span: _Span = dc_field(default=(0, 0), compare=False, repr=False)

    def to_source(self) -> str:
        inner = self.item.to_source()
        if isinstance(self.item, (And, Or)):
            inner = f"({inner})"
        return f"NOT {inner}"


Expr = Compare | Like | In | And | Or | Not


def _walk_fields(e: Expr) -> Iterable[str]:
    if isinstance(e, (Compare, Like, In)):
        yield e.field
    elif isinstance(e, (And, Or)):
        for i in e.items:
            yield from _walk_fields(i)
    else:
        yield from _walk_fields(e.item)


# ----------------------------------------------------------------------------------------------
# LIKE patterns


def _like_parts(pattern: str, escape: str | None) -> list[tuple[str, str]]:
    parts: list[tuple[str, str]] = []
    lit: list[str] = []

    def flush() -> None:
        if lit:
            parts.append(("lit", "".join(lit)))
            lit.clear()

    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if escape is not None and ch == escape:
            if i + 1 >= len(pattern) or pattern[i + 1] not in ("%", "_", escape):
                raise ValueError(
                    f"in LIKE pattern {pattern!r}: escape character {escape!r} must be "
                    f"followed by %, _ or itself"
                )
            lit.append(pattern[i + 1])
            i += 2
            continue
        if ch == "%":
            flush()
            if not parts or parts[-1][0] != "any":
                parts.append(("any", "%"))
        elif ch == "_":
            flush()
            parts.append(("one", "_"))
        else:
            lit.append(ch)
        i += 1
    flush()
    return parts


# The characters the Rust regex crate treats as meta (regex::escape escapes exactly these).
_REGEX_META = frozenset("\\.+*?()|[]{}^$#&-~")


def _regex_escape(s: str) -> str:
    return "".join(f"\\{c}" if c in _REGEX_META else c for c in s)


def like_regex(parts: list[tuple[str, str]]) -> str:
    """The anchored, case-insensitive, dot-matches-newline regex of a LIKE pattern."""
    body = []
    for kind, text in parts:
        if kind == "lit":
            body.append(_regex_escape(text))
        elif kind == "any":
            body.append(".*")
        else:
            body.append(".")
    return "(?is)^" + "".join(body) + "$"


# ----------------------------------------------------------------------------------------------
# Compilation to KQL


def _column(f: str, fm: FieldMap, present: frozenset[str] | None) -> str:
    column = fm.resolve(f, present)
    kusto_type = fm.column_type(column)
    if kusto_type is not None and kusto_type != "string":
        raise FieldMapError(
            f"field {f!r} maps to {fm.table}.{column}, a {kusto_type} column; "
            "false-positive filters compare strings",
            field=f,
            table=fm.table,
            column=column,
        )
    return kql_ident(column)


def _compile(e: Expr, fm: FieldMap, present: frozenset[str] | None) -> str:
    if isinstance(e, Compare):
        op = "=~" if e.op == "==" else "!~"
        return f"{_column(e.field, fm, present)} {op} {kql_string(e.value)}"
    if isinstance(e, In):
        op = "!in~" if e.negated else "in~"
        values = ", ".join(kql_string(v) for v in e.values)
        return f"{_column(e.field, fm, present)} {op} ({values})"
    if isinstance(e, Like):
        col = _column(e.field, fm, present)
        parts = e.parts()
        kinds = [k for k, _ in parts]
        neg = "!" if e.negated else ""
        if "any" not in kinds and "one" not in kinds:
            lit = parts[0][1] if parts else ""
            return f"{col} {'!~' if e.negated else '=~'} {kql_string(lit)}"
        if kinds == ["any"]:
            return f"{col} {neg}contains {kql_string('')}"
        if kinds == ["any", "lit", "any"]:
            return f"{col} {neg}contains {kql_string(parts[1][1])}"
        if kinds == ["lit", "any"]:
            return f"{col} {neg}startswith {kql_string(parts[0][1])}"
        if kinds == ["any", "lit"]:
            return f"{col} {neg}endswith {kql_string(parts[1][1])}"
        pred = f"{col} matches regex {kql_string(like_regex(parts))}"
        return f"not({pred})" if e.negated else pred
    if isinstance(e, Not):
        return f"not({_compile(e.item, fm, present)})"
    joiner = " and " if isinstance(e, And) else " or "
    out = []
    for item in e.items:
        text = _compile(item, fm, present)
        out.append(f"({text})" if isinstance(item, (And, Or)) else text)
    return joiner.join(out)


# ----------------------------------------------------------------------------------------------
# Python evaluation (reference semantics)


def _eval(e: Expr, row: Mapping[str, object], fm: FieldMap) -> bool:
    if isinstance(e, Compare):
        same = fold(_value(row, fm.resolve(e.field, row.keys()))) == fold(e.value)
        return same if e.op == "==" else not same
    if isinstance(e, In):
        v = fold(_value(row, fm.resolve(e.field, row.keys())))
        found = any(v == fold(x) for x in e.values)
        return found != e.negated
    if isinstance(e, Like):
        v = fold(_value(row, fm.resolve(e.field, row.keys())))
        body = []
        for kind, text in e.parts():
            if kind == "lit":
                body.append(re.escape(fold(text)))
            elif kind == "any":
                body.append(".*")
            else:
                body.append(".")
        hit = re.fullmatch("".join(body), v, flags=re.DOTALL) is not None
        return hit != e.negated
    if isinstance(e, Not):
        return not _eval(e.item, row, fm)
    if isinstance(e, And):
        return all(_eval(i, row, fm) for i in e.items)
    return any(_eval(i, row, fm) for i in e.items)


# ----------------------------------------------------------------------------------------------
# Lexer and parser


@dataclass(frozen=True)
class _Tok:
    kind: str  # "field", "kw", "str", "num", "op", "(", ")", ",", "eof"
    text: str  # keyword upper-cased; string value decoded
    start: int
    end: int


_KEYWORDS = frozenset({"AND", "OR", "NOT", "LIKE", "IN", "ESCAPE"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SIMPLE_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "r": "\r", "t": "\t"}


def _lex(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
        elif ch in "(),":
            toks.append(_Tok(ch, ch, i, i + 1))
            i += 1
        elif text.startswith("==", i) or text.startswith("!=", i):
            toks.append(_Tok("op", text[i : i + 2], i, i + 2))
            i += 2
        elif ch == "=":
            raise ExclusionSyntaxError("'=' is not an operator; write == for equality", text, i)
        elif text.startswith("<>", i):
            raise ExclusionSyntaxError("'<>' is not an operator; write != instead", text, i)
        elif text.startswith("&&", i) or text.startswith("||", i):
            word = "AND" if ch == "&" else "OR"
            raise ExclusionSyntaxError(
                f"{text[i : i + 2]!r} is not an operator; write {word}", text, i
            )
        elif ch in "\"'":
            value, end = _lex_string(text, i)
            toks.append(_Tok("str", value, i, end))
            i = end
        elif ch.isdigit():
            m = re.compile(r"[0-9][0-9.]*").match(text, i)
            assert m is not None
            toks.append(_Tok("num", m.group(), i, m.end()))
            i = m.end()
        elif _NAME.match(text, i):
            start = i
            m = _NAME.match(text, i)
            assert m is not None
            i = m.end()
            while i < n and text[i] == "." and _NAME.match(text, i + 1):
                m = _NAME.match(text, i + 1)
                assert m is not None
                i = m.end()
            if i < n and text[i] == ".":
                raise ExclusionSyntaxError("a field path cannot end with '.'", text, i)
            word = text[start:i]
            if word.upper() in _KEYWORDS:
                toks.append(_Tok("kw", word.upper(), start, i))
            else:
                toks.append(_Tok("field", word, start, i))
        else:
            raise ExclusionSyntaxError(f"unexpected character {ch!r}", text, i)
    toks.append(_Tok("eof", "", n, n))
    return toks


def _lex_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\":
            if i + 1 >= n:
                break
            esc = text[i + 1]
            if esc in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[esc])
                i += 2
            elif esc in "uU":
                width = 4 if esc == "u" else 8
                digits = text[i + 2 : i + 2 + width]
                if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise ExclusionSyntaxError(
                        f"\\{esc} must be followed by {width} hex digits", text, i
                    )
                cp = int(digits, 16)
                if cp > 0x10FFFF:
                    raise ExclusionSyntaxError("code point beyond U+10FFFF", text, i)
                out.append(chr(cp))
                i += 2 + width
            else:
                raise ExclusionSyntaxError(
                    f"unknown escape \\{esc} in string (write \\\\ for a backslash)", text, i
                )
        else:
            out.append(ch)
            i += 1
    raise ExclusionSyntaxError("unterminated string", text, start)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _lex(text)
        self.pos = 0
        self.depth = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.pos]

    def error(self, message: str, tok: _Tok | None = None) -> ExclusionSyntaxError:
        t = tok or self.tok
        return ExclusionSyntaxError(message, self.text, t.start)

    def describe(self, t: _Tok) -> str:
        if t.kind == "eof":
            return "end of filter"
        if t.kind == "str":
            return "a string"
        return repr(self.text[t.start : t.end])

    def advance(self) -> _Tok:
        t = self.tok
        self.pos += 1
        return t

    def is_kw(self, *words: str) -> bool:
        return self.tok.kind == "kw" and self.tok.text in words

    def parse(self) -> Expr:
        if self.tok.kind == "eof":
            raise self.error("empty filter")
        e = self.parse_or()
        if self.tok.kind != "eof":
            raise self.error(f"expected AND, OR or end of filter, found {self.describe(self.tok)}")
        return e

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"filter nested deeper than {MAX_DEPTH} levels")

    def parse_or(self) -> Expr:
        start = self.tok.start
        items = [self.parse_and()]
        while self.is_kw("OR"):
            self.advance()
            items.append(self.parse_and())
        if len(items) == 1:
            return items[0]
        flat: list[Expr] = []
        for it in items:
            flat.extend(it.items if isinstance(it, Or) else (it,))
        return Or(tuple(flat), span=(start, self.toks[self.pos - 1].end))

    def parse_and(self) -> Expr:
        start = self.tok.start
        items = [self.parse_not()]
        while self.is_kw("AND"):
            self.advance()
            items.append(self.parse_not())
        if len(items) == 1:
            return items[0]
        flat: list[Expr] = []
        for it in items:
            flat.extend(it.items if isinstance(it, And) else (it,))
        return And(tuple(flat), span=(start, self.toks[self.pos - 1].end))

    def parse_not(self) -> Expr:
        t = self.tok
        if self.is_kw("NOT"):
            self.advance()
            self.enter()
            inner = self.parse_not()
            self.depth -= 1
            return Not(inner, span=(t.start, self.toks[self.pos - 1].end))
        if t.kind == "(":
            self.advance()
            self.enter()
            if self.tok.kind == ")":
                raise self.error("empty parentheses")
            inner = self.parse_or()
            self.depth -= 1
            if self.tok.kind != ")":
                raise self.error(
                    f"expected ')' (to close the '(' at column "
                    f"{t.start + 1}), found {self.describe(self.tok)}"
                )
            self.advance()
            return inner
        return self.parse_comparison()

    def expect_string(self, after: str) -> _Tok:
        t = self.tok
        if t.kind == "str":
            return self.advance()
        if t.kind == "num":
            raise self.error(f"values are strings: quote the number after {after}")
        if t.kind == "field":
            raise self.error(
                f"expected a quoted string after {after}, found {self.describe(t)} "
                "(comparing two fields is not supported)"
            )
        raise self.error(f"expected a quoted string after {after}, found {self.describe(t)}")

    def parse_comparison(self) -> Expr:
        f = self.tok
        if f.kind != "field":
            if f.kind == "kw":
                raise self.error(f"expected a field, found keyword {f.text}")
            raise self.error(f"expected a field or '(', found {self.describe(f)}")
        self.advance()
        t = self.tok
        if t.kind == "op":
            self.advance()
            v = self.expect_string(t.text)
            return Compare(f.text, t.text, v.text, span=(f.start, v.end))
        negated = False
        if self.is_kw("NOT"):
            self.advance()
            negated = True
            if not self.is_kw("LIKE", "IN"):
                raise self.error(f"expected LIKE or IN after NOT, found {self.describe(self.tok)}")
        if self.is_kw("LIKE"):
            self.advance()
            op = "NOT LIKE" if negated else "LIKE"
            p = self.expect_string(op)
            escape: str | None = None
            end = p.end
            if self.is_kw("ESCAPE"):
                self.advance()
                esc = self.expect_string("ESCAPE")
                if len(esc.text) != 1:
                    raise self.error("ESCAPE takes a string of exactly one character", esc)
                escape, end = esc.text, esc.end
            try:
                return Like(f.text, p.text, negated, escape, span=(f.start, end))
            except ValueError as exc:
                raise self.error(str(exc), p) from None
        if self.is_kw("IN"):
            self.advance()
            op = "NOT IN" if negated else "IN"
            if self.tok.kind != "(":
                raise self.error(f"expected '(' after {op}, found {self.describe(self.tok)}")
            self.advance()
            values: list[str] = []
            while True:
                if self.tok.kind == ")" and not values:
                    raise self.error(f"{op} needs at least one value")
                values.append(self.expect_string(op if not values else "','").text)
                if self.tok.kind == ",":
                    self.advance()
                    continue
                if self.tok.kind == ")":
                    end = self.advance().end
                    break
                raise self.error(
                    f"expected ',' or ')' in {op} list, found {self.describe(self.tok)}"
                )
            return In(f.text, tuple(values), negated, span=(f.start, end))
        raise self.error(
            f"expected ==, !=, LIKE, NOT LIKE, IN or NOT IN after field {f.text!r}, "
            f"found {self.describe(t)}"
        )


def parse(text: str) -> Expr:
    """Parse a filter. Raises :class:`ExclusionSyntaxError` with the 1-based column of the
    problem and a caret snippet."""
    if not isinstance(text, str):
        raise TypeError(f"a filter is a str, not {type(text).__name__}")
    return _Parser(text).parse()
