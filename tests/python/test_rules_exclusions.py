"""The false-positive filter language: parsing, errors with columns, translation to KQL, match
semantics, and hostile strings that must round-trip and never inject KQL.

Everything here runs without the engine; tests/python/test_rules_engine.py runs the same
translations through it."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rmmhunt.rules import ExclusionSyntaxError, FieldMap, FieldMapError
from rmmhunt.rules import exclusions as ex
from rmmhunt.rules.exclusions import And, Compare, In, Like, Not, Or, parse

FM = FieldMap.for_table("DeviceProcessEvents")

# ---------------------------------------------------------------------------------------------
# A KQL string-literal decoder, written from the documented escapes (SEMANTICS.md §4), used to
# prove that what we print decodes back to the original value and ends where we think it ends.

_SIMPLE = {
    "\\": "\\",
    "'": "'",
    '"': '"',
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}


def kql_decode_string(text: str, start: int = 0) -> tuple[str, int]:
    """Decode the KQL string literal at ``text[start]``; returns (value, index after it)."""
    quote = text[start]
    assert quote in "'\"", text[start:]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        assert ch not in "\n\r", "a raw line break inside a KQL string literal"
        if ch == "\\":
            esc = text[i + 1]
            if esc in _SIMPLE:
                out.append(_SIMPLE[esc])
                i += 2
            elif esc == "u":
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
            elif esc == "U":
                out.append(chr(int(text[i + 2 : i + 10], 16)))
                i += 10
            else:
                raise AssertionError(f"unexpected escape \\{esc}")
        else:
            out.append(ch)
            i += 1
    raise AssertionError("unterminated KQL string")


def kql_split(pred: str) -> tuple[str, str, list[str]]:
    """(column, operator, [values]) of a simple compiled comparison; asserts that nothing
    follows the literal(s)."""
    m = re.match(
        r"(\w+|\[\"(?:[^\"\\]|\\.)*\"\]) (=~|!~|!?contains|!?startswith|!?endswith|"
        r"matches regex|!?in~) ",
        pred,
    )
    assert m, pred
    i = m.end()
    values = []
    if m.group(2).endswith("in~"):
        assert pred[i] == "("
        i += 1
        while True:
            v, i = kql_decode_string(pred, i)
            values.append(v)
            if pred[i] == ")":
                i += 1
                break
            assert pred[i : i + 2] == ", "
            i += 2
    else:
        v, i = kql_decode_string(pred, i)
        values.append(v)
    assert i == len(pred), f"text after the literal: {pred[i:]!r}"
    return m.group(1), m.group(2), values


# ---------------------------------------------------------------------------------------------
# Parsing

PARSE_CASES: list[tuple[str, Any]] = [
    ('a == "x"', Compare("a", "==", "x")),
    ("a != 'x'", Compare("a", "!=", "x")),
    ('process.name LIKE "%x%"', Like("process.name", "%x%")),
    ('process.name like "%x%"', Like("process.name", "%x%")),
    ('p.n NOT LIKE "x%"', Like("p.n", "x%", negated=True)),
    ('p.n not like "x!%" escape "!"', Like("p.n", "x!%", negated=True, escape="!")),
    ('a IN ("x", "y")', In("a", ("x", "y"))),
    ('a in ("x")', In("a", ("x",))),
    ('a NOT IN ("x","y")', In("a", ("x", "y"), negated=True)),
    ('NOT a == "x"', Not(Compare("a", "==", "x"))),
    ('not not a == "x"', Not(Not(Compare("a", "==", "x")))),
    (
        'a == "1" AND b == "2" OR c == "3"',
        Or((And((Compare("a", "==", "1"), Compare("b", "==", "2"))), Compare("c", "==", "3"))),
    ),
    (
        'a == "1" OR b == "2" AND c == "3"',
        Or((Compare("a", "==", "1"), And((Compare("b", "==", "2"), Compare("c", "==", "3"))))),
    ),
    (
        '(a == "1" OR b == "2") AND c == "3"',
        And((Or((Compare("a", "==", "1"), Compare("b", "==", "2"))), Compare("c", "==", "3"))),
    ),
    (
        'a == "1" and (b == "2" and c == "3")',
        And((Compare("a", "==", "1"), Compare("b", "==", "2"), Compare("c", "==", "3"))),
    ),
    ('NOT (a == "1" OR b == "2")', Not(Or((Compare("a", "==", "1"), Compare("b", "==", "2"))))),
    ('((a == "1"))', Compare("a", "==", "1")),
    ('a=="x"and b!="y"', And((Compare("a", "==", "x"), Compare("b", "!=", "y")))),
    # escapes in strings
    (r'a == "q\"uote"', Compare("a", "==", 'q"uote')),
    (r"a == 'it\'s'", Compare("a", "==", "it's")),
    (r'a == "C:\\Windows\\"', Compare("a", "==", "C:\\Windows\\")),
    (r'a == "tab\there\nnl\rcr"', Compare("a", "==", "tab\there\nnl\rcr")),
    (r'a == "\u00e9\U0001F600"', Compare("a", "==", "é😀")),
    ('a == "é 中 😀"', Compare("a", "==", "é 中 😀")),
    ('a == "it\'s"', Compare("a", "==", "it's")),
    ('a == ""', Compare("a", "==", "")),
    # keywords as parts of field paths are fine
    ('process.in.like == "x"', Compare("process.in.like", "==", "x")),
    ('order_id == "x"', Compare("order_id", "==", "x")),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES)
def test_parse(text: str, expected: Any) -> None:
    got = parse(text)
    assert got == expected
    # printing and parsing again gives the same tree
    assert parse(got.to_source()) == got
    assert str(got) == got.to_source()


def test_spans_do_not_take_part_in_equality() -> None:
    a = parse('x == "1" OR y == "2"')
    b = parse('   x   ==   "1"   OR   y == "2"')
    assert a == b
    assert a.items[0].span == (0, 8) and b.items[0].span == (3, 15)  # type: ignore[union-attr]


def test_fields() -> None:
    e = parse('a == "1" AND (b LIKE "x" OR NOT c IN ("z"))')
    assert e.fields() == {"a", "b", "c"}


# ---------------------------------------------------------------------------------------------
# Syntax errors point at the column

ERROR_CASES = [
    ("", 1, "empty filter"),
    ("   ", 4, "empty filter"),
    ('a = "x"', 3, "write == for equality"),
    ('a <> "x"', 3, "write != instead"),
    ('a == "x" && b == "y"', 10, "write AND"),
    ('a == "x" || b == "y"', 10, "write OR"),
    ("a == x", 6, "expected a quoted string after =="),
    ("a == 5", 6, "quote the number"),
    ("a ==", 5, "found end of filter"),
    ('a "x"', 3, "expected ==, !=, LIKE, NOT LIKE, IN or NOT IN after field 'a'"),
    ('a NOT == "x"', 7, "expected LIKE or IN after NOT"),
    ('(a == "x"', 10, "expected ')'"),
    ('a == "x")', 9, "expected AND, OR or end of filter"),
    ('a == "x" b == "y"', 10, "expected AND, OR or end of filter, found 'b'"),
    ('a == "x" AND', 13, "expected a field or '('"),
    ('AND a == "x"', 1, "expected a field, found keyword AND"),
    ("()", 2, "empty parentheses"),
    ('a == "x', 6, "unterminated string"),
    (r'a == "\q"', 7, r"unknown escape \q"),
    (r'a == "\u12"', 7, r"\u must be followed by 4 hex digits"),
    ("a IN ()", 7, "IN needs at least one value"),
    ('a IN ("x",)', 11, "expected a quoted string after ','"),
    ('a IN "x"', 6, "expected '(' after IN"),
    ('a IN ("x" "y")', 11, "expected ',' or ')'"),
    ('a LIKE "x" ESCAPE "ab"', 19, "exactly one character"),
    ('a LIKE "x!" ESCAPE "!"', 8, "must be followed by %, _ or itself"),
    ('a. == "x"', 2, "cannot end with '.'"),
    ('a == "x" # comment', 10, "unexpected character '#'"),
    ('a ≠ "x"', 3, "unexpected character"),
]


@pytest.mark.parametrize(("text", "column", "fragment"), ERROR_CASES)
def test_syntax_errors_point_at_the_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(ExclusionSyntaxError) as info:
        parse(text)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.column == column, str(err)
    assert err.line == 1
    assert fragment in err.message
    # the caret sits under the column
    first, caret = err.snippet.split("\n")
    assert first == "  " + text
    assert caret.index("^") - 2 == column - 1
    assert f"at column {column}" in str(err)


def test_error_on_a_later_line() -> None:
    with pytest.raises(ExclusionSyntaxError) as info:
        parse('a == "x"\n  OR b = "y"')
    assert (info.value.line, info.value.column) == (2, 8)
    assert "line 2, column 8" in str(info.value)
    assert info.value.snippet == '    OR b = "y"\n         ^'


def test_nesting_limit() -> None:
    deep = "(" * 200 + 'a == "x"' + ")" * 200
    with pytest.raises(ExclusionSyntaxError, match="nested deeper"):
        parse(deep)
    nots = "NOT " * 200 + 'a == "x"'
    with pytest.raises(ExclusionSyntaxError, match="nested deeper"):
        parse(nots)
    ok = "(" * 30 + 'a == "x"' + ")" * 30
    assert parse(ok) == Compare("a", "==", "x")


def test_long_flat_chains_do_not_recurse() -> None:
    text = " OR ".join(f'process.name == "{i}"' for i in range(5000))
    e = parse(text)
    assert isinstance(e, Or) and len(e.items) == 5000
    assert e.to_kql(FM).count(" or ") == 4999


def test_parse_rejects_non_text() -> None:
    with pytest.raises(TypeError):
        parse(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Translation to KQL

COMPILE_CASES = [
    ('process.name == "cmd.exe"', 'FileName =~ "cmd.exe"'),
    ('process.name != "cmd.exe"', 'FileName !~ "cmd.exe"'),
    ('process.command_line LIKE "%whoami%"', 'ProcessCommandLine contains "whoami"'),
    ('process.command_line NOT LIKE "%whoami%"', 'ProcessCommandLine !contains "whoami"'),
    ('process.file_path LIKE "C:\\\\Windows\\\\%"', 'FolderPath startswith "C:\\\\Windows\\\\"'),
    ('process.file_path NOT LIKE "C:%"', 'FolderPath !startswith "C:"'),
    ('process.file_path LIKE "%.exe"', 'FolderPath endswith ".exe"'),
    ('process.file_path NOT LIKE "%.exe"', 'FolderPath !endswith ".exe"'),
    ('process.name LIKE "cmd.exe"', 'FileName =~ "cmd.exe"'),
    ('process.name NOT LIKE "cmd.exe"', 'FileName !~ "cmd.exe"'),
    ('process.name LIKE ""', 'FileName =~ ""'),
    ('process.name LIKE "%"', 'FileName contains ""'),
    ('process.name LIKE "%%%"', 'FileName contains ""'),
    ('process.name NOT LIKE "%"', 'FileName !contains ""'),
    ('process.name LIKE "%%x%%"', 'FileName contains "x"'),
    # anything else: an anchored, escaped, case-insensitive regex
    ('process.name LIKE "c_d.exe"', 'FileName matches regex "(?is)^c.d\\\\.exe$"'),
    ('process.name LIKE "a%b"', 'FileName matches regex "(?is)^a.*b$"'),
    ('process.name LIKE "%a%b%"', 'FileName matches regex "(?is)^.*a.*b.*$"'),
    ('process.name LIKE "_"', 'FileName matches regex "(?is)^.$"'),
    ('process.name NOT LIKE "a_"', 'not(FileName matches regex "(?is)^a.$")'),
    (
        'process.name LIKE "%(x)[y]{z}^$|+?*.#&-~%a_"',
        (
            'FileName matches regex "(?is)^.*\\\\(x\\\\)\\\\[y\\\\]\\\\{z\\\\}\\\\^\\\\$\\\\|\\\\+\\\\?'
            '\\\\*\\\\.\\\\#\\\\&\\\\-\\\\~.*a.$"'
        ),
    ),
    # the seed's patterns: '_' is a wildcard, so they become regexes
    (
        'process.command_line LIKE "%scheduled_job%"',
        'ProcessCommandLine matches regex "(?is)^.*scheduled.job.*$"',
    ),
    (
        'process.file_path LIKE "%connectwise_agent.exe"',
        'FolderPath matches regex "(?is)^.*connectwise.agent\\\\.exe$"',
    ),
    # ESCAPE makes % and _ literal, and then the plain operators apply again
    (
        'process.command_line LIKE "%scheduled!_job%" ESCAPE "!"',
        'ProcessCommandLine contains "scheduled_job"',
    ),
    ('process.name LIKE "100!%" ESCAPE "!"', 'FileName =~ "100%"'),
    ('process.name LIKE "a!!%" ESCAPE "!"', 'FileName startswith "a!"'),
    ('process.name IN ("a", "B")', 'FileName in~ ("a", "B")'),
    ('process.name NOT IN ("a")', 'FileName !in~ ("a")'),
    ('NOT process.name == "a"', 'not(FileName =~ "a")'),
    (
        'process.name == "a" AND process.parent_process_name == "b"',
        'FileName =~ "a" and InitiatingProcessFileName =~ "b"',
    ),
    (
        'process.name == "a" OR process.name == "b" AND user.name == "c"',
        'FileName =~ "a" or (FileName =~ "b" and AccountName =~ "c")',
    ),
    (
        '(process.name == "a" OR process.name == "b") AND user.name == "c"',
        '(FileName =~ "a" or FileName =~ "b") and AccountName =~ "c"',
    ),
    ('NOT (process.name == "a" OR process.name == "b")', 'not(FileName =~ "a" or FileName =~ "b")'),
    # the seed's first filter, whole
    (
        'process.parent_process_name == "connectwise" OR process.command_line LIKE "%scheduled_job%"',
        (
            'InitiatingProcessFileName =~ "connectwise" or '
            'ProcessCommandLine matches regex "(?is)^.*scheduled.job.*$"'
        ),
    ),
]


@pytest.mark.parametrize(("text", "kql"), COMPILE_CASES)
def test_compile(text: str, kql: str) -> None:
    assert parse(text).to_kql(FM) == kql


def test_compile_checks_fields_and_columns() -> None:
    with pytest.raises(FieldMapError, match="not in the field map") as info:
        parse('process.nmae == "x"').to_kql(FM)
    assert "process.name" in str(info.value)  # did you mean
    assert info.value.field == "process.nmae"
    # the data at hand lacks the column: an error, never a silent false
    with pytest.raises(FieldMapError, match="FolderPath") as info2:
        parse('process.file_path LIKE "%x%"').to_kql(FM, present=["FileName"])
    assert info2.value.column == "FolderPath"
    # a non-string column
    with pytest.raises(FieldMapError, match="long column"):
        parse('process.pid == "4"').to_kql(FM)
    # the certificate table has no process fields
    cert = FieldMap.for_table("DeviceFileCertificateInfo")
    with pytest.raises(FieldMapError):
        parse('process.parent_process_name == "connectwise"').to_kql(cert)


def test_kql_ident_quotes_odd_names() -> None:
    assert ex.kql_ident("FileName") == "FileName"
    assert ex.kql_ident("where") == '["where"]'
    assert ex.kql_ident("has") == '["has"]'
    assert ex.kql_ident("My Column") == '["My Column"]'
    assert ex.kql_ident('a"b') == '["a\\"b"]'
    custom = FieldMap("T", {"x.y": "odd name"}, None)
    assert parse('x.y == "1"').to_kql(custom) == '["odd name"] =~ "1"'


# ---------------------------------------------------------------------------------------------
# Match semantics (Python reference)

SEMANTIC_CASES: list[tuple[str, dict[str, Any], bool]] = [
    ('process.name == "cmd.exe"', {"FileName": "CMD.EXE"}, True),
    ('process.name == "cmd.exe"', {"FileName": "cmd.exe "}, False),
    ('process.name != "cmd.exe"', {"FileName": "Cmd.Exe"}, False),
    ('process.name == ""', {"FileName": None}, True),  # a missing string is ""
    ('process.name != "x"', {"FileName": None}, True),
    ('process.name == "CAFÉ"', {"FileName": "café"}, True),  # Unicode case folding
    ('process.name == "straße"', {"FileName": "STRASSE"}, False),  # simple mapping only
    ('process.name LIKE "%ConnectWise%"', {"FileName": "my connectwise agent"}, True),
    ('process.name LIKE "connectwise%"', {"FileName": "ConnectWiseControl.exe"}, True),
    ('process.name LIKE "connectwise%"', {"FileName": "x ConnectWise"}, False),
    ('process.name LIKE "%.EXE"', {"FileName": "a.exe"}, True),
    ('process.name LIKE "a_c"', {"FileName": "abc"}, True),
    ('process.name LIKE "a_c"', {"FileName": "ac"}, False),
    ('process.name LIKE "a_c"', {"FileName": "a\nc"}, True),  # _ matches a newline
    ('process.name LIKE "a%c"', {"FileName": "a\n\nc"}, True),  # so does %
    ('process.name LIKE "a%c"', {"FileName": "a\n\nc\n"}, False),  # anchored at the very end
    ('process.name LIKE "%"', {"FileName": None}, True),
    ('process.name LIKE ""', {"FileName": ""}, True),
    ('process.name LIKE ""', {"FileName": "x"}, False),
    ('process.name LIKE "a.c"', {"FileName": "abc"}, False),  # '.' is literal
    ('process.name LIKE "C:\\\\x\\\\%"', {"FileName": "c:\\X\\y"}, True),
    ('process.name NOT LIKE "%x%"', {"FileName": "abc"}, True),
    ('process.name LIKE "%scheduled_job%"', {"FileName": "run scheduled-job"}, True),
    ('process.name LIKE "%scheduled!_job%" ESCAPE "!"', {"FileName": "run scheduled-job"}, False),
    ('process.name LIKE "%scheduled!_job%" ESCAPE "!"', {"FileName": "SCHEDULED_JOB"}, True),
    ('process.name LIKE "100!%" ESCAPE "!"', {"FileName": "100%"}, True),
    ('process.name LIKE "100!%" ESCAPE "!"', {"FileName": "1000"}, False),
    ('process.name IN ("a", "B")', {"FileName": "b"}, True),
    ('process.name IN ("a", "B")', {"FileName": "c"}, False),
    ('process.name NOT IN ("a", "B")', {"FileName": "A"}, False),
    ('process.name NOT IN ("a")', {"FileName": None}, True),
    ('NOT process.name == "a"', {"FileName": "a"}, False),
    ('process.name == "a" AND user.name == "b"', {"FileName": "A", "AccountName": "B"}, True),
    ('process.name == "a" AND user.name == "b"', {"FileName": "A", "AccountName": "c"}, False),
    ('process.name == "x" OR user.name == "b"', {"FileName": "A", "AccountName": "B"}, True),
    ('NOT (process.name == "x" OR user.name == "b")', {"FileName": "a", "AccountName": "c"}, True),
]


@pytest.mark.parametrize(("text", "row", "expected"), SEMANTIC_CASES)
def test_semantics(text: str, row: dict[str, Any], expected: bool) -> None:
    assert parse(text).matches(row, FM) is expected


def test_semantics_refuse_missing_columns_and_non_strings() -> None:
    with pytest.raises(FieldMapError):
        parse('process.name == "a"').matches({"FolderPath": "x"}, FM)
    with pytest.raises(TypeError):
        parse('process.name == "a"').matches({"FileName": 4}, FM)


# An independent evaluator of the compiled KQL (for single comparisons), from the documented
# meaning of each Kusto operator, to check that translation and reference semantics agree.
def eval_compiled(pred: str, value: str) -> bool:
    negate_all = pred.startswith("not(") and pred.endswith(")")
    if negate_all:
        pred = pred[4:-1]
    _, op, values = kql_split(pred)
    v = ex.fold(value)
    needles = [ex.fold(x) for x in values]
    neg = op.startswith("!")
    base = op.lstrip("!")
    if base == "=~" or op == "!~":
        hit = v == needles[0]
        neg = op == "!~"
    elif base == "contains":
        hit = needles[0] in v
    elif base == "startswith":
        hit = v.startswith(needles[0])
    elif base == "endswith":
        hit = v.endswith(needles[0])
    elif base == "in~":
        hit = v in needles
    else:  # matches regex: Rust syntax; '$' without the m flag is the very end of the text
        pattern = values[0]
        assert pattern.startswith("(?is)^") and pattern.endswith("$")
        hit = re.search(pattern[:-1] + r"\Z", value) is not None
        neg = False
    result = hit != neg
    return not result if negate_all else result


_chars = st.sampled_from(list("aAbB_%.!\\\n é") + ["C:", "x"])
_patterns = st.lists(_chars, max_size=8).map("".join)
_values = st.lists(st.sampled_from(list("aAbB_%.!\\\n éÉ") + ["C:"]), max_size=8).map("".join)


@settings(max_examples=400, deadline=None)
@given(pattern=_patterns, value=_values, negated=st.booleans(), escape=st.booleans())
def test_like_translation_agrees_with_reference(
    pattern: str, value: str, negated: bool, escape: bool
) -> None:
    esc = "!" if escape else None
    try:
        node = Like("process.name", pattern, negated, esc)
    except ValueError:
        return  # an escape character not followed by %, _ or itself
    assert eval_compiled(node.to_kql(FM), value) == node.matches({"FileName": value}, FM)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(_values, min_size=1, max_size=3), value=_values, negated=st.booleans())
def test_in_and_compare_translation_agree_with_reference(
    values: list[str], value: str, negated: bool
) -> None:
    node = In("process.name", tuple(values), negated)
    assert eval_compiled(node.to_kql(FM), value) == node.matches({"FileName": value}, FM)
    cmp = Compare("process.name", "!=" if negated else "==", values[0])
    assert eval_compiled(cmp.to_kql(FM), value) == cmp.matches({"FileName": value}, FM)


# Random trees print to source that parses back to the same tree.
_leaf = st.one_of(
    st.builds(Compare, st.sampled_from(["a", "b.c"]), st.sampled_from(["==", "!="]), _values),
    st.builds(Like, st.just("d"), _patterns.filter(lambda p: True), st.booleans()),
    st.builds(
        In, st.just("e"), st.lists(_values, min_size=1, max_size=3).map(tuple), st.booleans()
    ),
)


def _combine(children: Any) -> Any:
    return st.one_of(
        st.builds(Not, children),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
    )


def _normalise(e: Any) -> Any:
    """Flatten nested And/And and Or/Or, as the parser does."""
    if isinstance(e, (And, Or)):
        items: list[Any] = []
        for i in e.items:
            n = _normalise(i)
            items.extend(n.items if type(n) is type(e) else (n,))
        return type(e)(tuple(items))
    if isinstance(e, Not):
        return Not(_normalise(e.item))
    return e


@settings(max_examples=300, deadline=None)
@given(tree=st.recursive(_leaf, _combine, max_leaves=8))
def test_print_parse_round_trip(tree: Any) -> None:
    tree = _normalise(tree)
    assert parse(tree.to_source()) == tree


# ---------------------------------------------------------------------------------------------
# Hostile strings

HOSTILE = [
    '"',
    "'",
    "\\",
    '\\"',
    '"; drop table DeviceProcessEvents; //',
    '" or 1==1 or "',
    "' or '1'=='1",
    'x" | where 1==1 | project secret //',
    "| where 1==1",
    "line1\nline2",
    "cr\r\nlf",
    "tab\there",
    "nul\x00byte",
    "bell\x07 esc\x1b del\x7f",
    "\u2028 line separator \u2029 paragraph",
    "bidi \u202e override \u200b zero width \ufeff bom",
    "non-ASCII: é ü ß 中文 Ωμέγα",
    "emoji 😀 and astral \U0001d11e",
    "private \ue000 and tag \U000e0041",
    "```multi-line literal```",
    "@'verbatim'",
    "h'obfuscated'",
    "\\u0022 looks like an escape",
    "%_ wildcard characters",
    "end with backslash \\",
]


@pytest.mark.parametrize("s", HOSTILE)
def test_kql_string_round_trips_and_cannot_end_early(s: str) -> None:
    for render in (ex._kql_string_fallback, ex.kql_string):
        lit = render(s)
        value, end = kql_decode_string(lit)
        assert value == s
        assert end == len(lit)
        # no raw control character, line/paragraph separator or zero-width character
        assert not any(
            unicodedata.category(c) == "Cc"
            or c in "\u2028\u2029\u200b\u200c\u200d\u200e\u200f\ufeff"
            for c in lit
        )


@pytest.mark.parametrize("s", HOSTILE)
def test_hostile_strings_in_filters_cannot_inject(s: str) -> None:
    # through the filter language: printed, parsed, compiled
    for node in (
        Compare("process.command_line", "==", s),
        Like("process.command_line", "%" + s.replace("%", "").replace("_", "") + "%"),
        In("process.command_line", (s, "other")),
    ):
        again = parse(node.to_source())
        assert again == node
        kql = again.to_kql(FM)
        column, _, values = kql_split(kql)
        assert column == "ProcessCommandLine"
        assert s.replace("%", "").replace("_", "") in values or s in values
    # a wildcard pattern goes through the regex path: the pattern itself round-trips too
    node2 = Like("process.command_line", "a_" + s)
    kql2 = node2.to_kql(FM)
    _, op, (pattern,) = kql_split(kql2)
    assert op == "matches regex"
    assert node2.matches({"ProcessCommandLine": "aX" + s}, FM)
    assert eval_compiled(kql2, "aX" + s)
    assert not eval_compiled(kql2, "")
    assert not node2.matches({"ProcessCommandLine": ""}, FM)
    assert pattern.startswith("(?is)^a.")


def test_hostile_field_values_are_data() -> None:
    # matching never interprets the value
    e = parse('process.command_line == "x"')
    for s in HOSTILE:
        assert e.matches({"ProcessCommandLine": s}, FM) is False
