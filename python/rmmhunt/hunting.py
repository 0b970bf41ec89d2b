"""Hunting with many rules at once: :func:`hunt` and its :class:`Findings`.

>>> import rmmhunt
>>> from rmmhunt.sample import bundled, bundled_now
>>> findings = rmmhunt.hunt(bundled(), now=bundled_now())       # the whole pack
>>> findings.to_pandas()[["tool", "kind", "DeviceName", "FirstSeen", "Count"]]  # doctest: +SKIP

:func:`hunt` runs every selected rule (default: the founding rule and the whole RMM pack) over
the tables given, grouped by table, and returns one findings table: ``rule_id``, ``rule_name``,
``tool``, ``table``, ``kind``, ``tactic``, ``technique``, then the rules' own grouping and
aggregate columns (``DeviceId``, ``DeviceName``, ``AccountUpn``, ``RemoteUrl``, ...,
``FirstSeen``, ``LastSeen``, ``Report``, ``Count``; null where a rule does not group by a
column). Rules whose table is not given are skipped and listed in :attr:`Findings.skipped`, as
are rules that the engine refuses (``UnsupportedError``): nothing is left out silently.

Rule selection (the ``rules`` argument, and the CLI's ``--rules``): ``None`` or ``"all"`` for
every bundled rule; a :class:`~rmmhunt.rules.RulePack`, a :class:`~rmmhunt.rules.Rule` or a list of
rules and names; or a string naming a rule (id, name, file name), a tool (``"AnyDesk"``,
``"anydesk"``), a kind (``createproc``, ``filesig``, ``netconn``) or a table. Several names are
separated by commas; a prefix (``tool:``, ``kind:``, ``table:``, ``id:``) removes any doubt.

``import rmmhunt.hunting`` does not import pyarrow, pandas, polars or bokeh.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import html
import importlib
import json
import os
import re
import sys
import tempfile
import time
import types
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast, overload

from ._arrow import string_array, to_pyarrow_table
from .errors import DataError, RmmhuntError, UnsupportedError
from .rules import Rule, RulePack
from .rules.errors import UnknownRuleError
from .rules.hunt import HuntResult, SuppressionReport
from .rules.model import parse_duration

if TYPE_CHECKING:
    import pandas
    import polars
    import pyarrow

__all__ = [
    "META_COLUMNS",
    "Findings",
    "HuntProgress",
    "RuleStats",
    "Skipped",
    "hunt",
    "infer_table",
    "read_path",
    "rule_info",
    "select_rules",
]

#: The columns every finding starts with, before the rule's own columns.
META_COLUMNS = ("rule_id", "rule_name", "tool", "table", "kind", "tactic", "technique")
#: Grouping columns, in the order they appear in the findings table when present.
_GROUP_ORDER = (
    "DeviceId",
    "DeviceName",
    "AccountUpn",
    "InitiatingProcessAccountUpn",
    "RemoteUrl",
    "InitiatingProcessFileName",
)
#: Aggregate columns of the published hunts, after the grouping columns.
_AGG_ORDER = ("FirstSeen", "LastSeen", "Report", "Count")
#: Kinds of rule (the catalog's query kinds) and the table each reads.
KINDS = {
    "createproc": "DeviceProcessEvents",
    "filesig": "DeviceFileCertificateInfo",
    "netconn": "DeviceNetworkEvents",
}
_KIND_BY_TITLE = {
    "create process": "createproc",
    "file signature": "filesig",
    "network connection": "netconn",
}
_UTC = timezone.utc
Exclusions = Literal["apply", "annotate", "off"]


# ----------------------------------------------------------------------------------------------
# Rules: metadata and selection


@dataclass(frozen=True)
class RuleInfo:
    """What the findings table says about a rule: tool, kind, table, tactic, technique."""

    tool: str | None
    kind: str | None
    table: str
    tactic: str
    technique: str


#: Per rule object (by identity, the rule kept with its entry): facts derived from its frozen
#: fields, asked several times a rule by every hunt.
_DERIVED: dict[tuple[int, str], tuple[Rule, Any]] = {}


def _derived(rule: Rule, what: str, compute: Callable[[], Any]) -> Any:
    key = (id(rule), what)
    hit = _DERIVED.get(key)
    if hit is not None and hit[0] is rule:
        return hit[1]
    if len(_DERIVED) > 20_000:  # rules built and dropped in a loop: start again
        _DERIVED.clear()
    value = compute()
    _DERIVED[key] = (rule, value)
    return value


def rule_info(rule: Rule) -> RuleInfo:
    """Tool, kind and table of ``rule``: from the pack's ``x_rmmhunt`` metadata, else from the
    published name shape ``"... - <Tool> - Create Process"`` (the founding rule)."""
    return cast(RuleInfo, _derived(rule, "info", lambda: _rule_info(rule)))


def _rule_info(rule: Rule) -> RuleInfo:
    x = rule.extra.get("x_rmmhunt")
    meta: Mapping[str, Any] = x if isinstance(x, Mapping) else {}
    tool = meta.get("tool")
    kind = meta.get("kind")
    if tool is None or kind is None:
        parts = [p.strip() for p in rule.name.split(" - ")]
        if len(parts) >= 3 and parts[-1].casefold() in _KIND_BY_TITLE:
            tool = tool or parts[-2]
            kind = kind or _KIND_BY_TITLE[parts[-1].casefold()]
    table = meta.get("table")
    if not isinstance(table, str):
        table = rule.tables[0] if rule.tables else ""
    return RuleInfo(
        tool=str(tool) if tool is not None else None,
        kind=str(kind) if kind is not None else None,
        table=table,
        tactic=", ".join(rule.tactics),
        technique=", ".join(rule.relevant_techniques),
    )


def _norm(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.casefold())


def _bundled() -> RulePack:
    from .rules import pack

    return pack()


def _resolve_name(spec: str, bundled: RulePack) -> list[Rule]:
    """The rules one selection word names (see the module docs)."""
    word = spec.strip()
    if not word:
        raise UnknownRuleError("empty rule selection")
    prefix, sep, rest = word.partition(":")
    scope = prefix.casefold() if sep and prefix.casefold() in ("tool", "kind", "table", "id") else ""
    value = rest.strip() if scope else word
    if not scope and value.casefold() == "all":
        return list(bundled)
    if scope in ("", "id"):
        found = bundled.find(value)
        if found is not None:
            return [found]
    if scope in ("", "tool"):
        key = _norm(value)
        hits = [r for r in bundled if _norm(rule_info(r).tool or "") == key]
        if hits:
            return hits
    if scope in ("", "kind"):
        hits = [r for r in bundled if rule_info(r).kind == value.casefold()]
        if hits:
            return hits
    if scope in ("", "table"):
        hits = [r for r in bundled if value.casefold() in (t.casefold() for t in r.tables)]
        if hits:
            return hits
    if not scope and (value.lower().endswith((".yaml", ".yml")) or Path(value).is_dir()):
        if Path(value).exists():
            from .rules import load

            loaded = load(value)
            return [loaded] if isinstance(loaded, Rule) else list(loaded)
    candidates = sorted({rule_info(r).tool or "" for r in bundled} - {""})
    close = difflib.get_close_matches(value, candidates, n=3, cutoff=0.6)
    if not close:
        by_norm = {_norm(c): c for c in candidates}
        close = [by_norm[k] for k in difflib.get_close_matches(_norm(value), list(by_norm), n=3)]
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownRuleError(
        f"no bundled rule, tool, kind or table called {word!r}{hint} (`rmmhunt rules list` shows them all)"
    )


def select_rules(rules: str | Rule | RulePack | Iterable[str | Rule] | None = None) -> list[Rule]:
    """The rules a selection names, in order, each once (see the module docs).

    Raises :class:`~rmmhunt.rules.UnknownRuleError` for a name that matches nothing."""
    bundled = _bundled()
    items: Iterable[str | Rule]
    if rules is None:
        return list(bundled)
    if isinstance(rules, Rule):
        items = [rules]
    elif isinstance(rules, str):
        items = [part for part in rules.split(",") if part.strip()] or [rules]
    elif isinstance(rules, Iterable):
        items = rules
    else:
        raise TypeError(f"rules must be a name, a Rule, a RulePack or a list, not {type(rules).__name__}")
    out: dict[str, Rule] = {}
    for item in items:
        if isinstance(item, Rule):
            out.setdefault(item.id.lower(), item)
        elif isinstance(item, str):
            for part in item.split(",") if "," in item else [item]:
                for r in _resolve_name(part, bundled):
                    out.setdefault(r.id.lower(), r)
        else:
            raise TypeError(f"a rule selection item is a Rule or a name, not {type(item).__name__}")
    return list(out.values())


# ----------------------------------------------------------------------------------------------
# Tables: names, inputs and schemas


@functools.lru_cache(maxsize=1)
def _schemas() -> dict[str, tuple[str, ...]]:
    """Documented columns of each Defender table (rmmhunt/data/schemas.json)."""
    path = Path(__file__).resolve().parent / "data" / "schemas.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {name: tuple(c["name"] for c in spec["columns"]) for name, spec in doc["tables"].items()}


def known_tables() -> tuple[str, ...]:
    """The Defender tables whose schemas rmmhunt ships."""
    return tuple(_schemas())


def infer_table(columns: Iterable[str]) -> str | None:
    """The Defender table whose documented columns these are, or ``None`` when no table's
    distinctive columns are present or two tables fit equally well."""
    cols = set(columns)
    schemas = {name: set(names) for name, names in _schemas().items()}
    scores = []
    for name, own in schemas.items():
        others = set().union(*(s for n, s in schemas.items() if n != name))
        scores.append((len(cols & (own - others)), len(cols & own), name))
    scores.sort(reverse=True)
    best = scores[0]
    if best[0] == 0:
        return None
    if len(scores) > 1 and scores[1][:2] == best[:2]:
        return None
    return best[2]


def _table_from_file_name(path: str) -> str | None:
    base = re.split(r"[\\/]", path.rstrip("/\\"))[-1].casefold()
    for name in sorted(_schemas(), key=len, reverse=True):
        if base.startswith(name.casefold()):
            return name
    return None


def _io_read() -> Callable[..., Any] | None:
    """``rmmhunt.io.read`` when the file readers are installed."""
    try:
        rmmhunt_io = importlib.import_module(f"{__package__}.io")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__package__}.io":
            return None
        raise
    read = getattr(rmmhunt_io, "read", None)
    return read if callable(read) else None


def _reported_table(data: Any) -> str | None:
    for attr in ("table", "table_name"):
        value = getattr(data, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


def _stdin_suffix(head: bytes) -> str:
    if head.startswith(b"PAR1"):
        return ".parquet"
    if head.startswith(b"\x1f\x8b"):
        return ".gz"
    if head.lstrip()[:1] in (b"{", b"["):
        return ".json"
    return ".csv"


def read_path(
    path: str | os.PathLike[str], table: str | None = None, *, strict: bool = False
) -> tuple[str | None, Any]:
    """Read a data file (``"-"``: standard input) as ``(table name or None, data)``.

    Uses :func:`rmmhunt.io.read` when present; otherwise reads Parquet with pyarrow and refuses
    other formats. The table name is ``table``, else the one the reader reports, else the one
    the file is named after (``DeviceProcessEvents*.csv``); ``None`` when none of these says."""
    text = os.fspath(path)
    hint = table or (None if text == "-" else _table_from_file_name(text))
    read = _io_read()
    if text == "-":
        payload = sys.stdin.buffer.read()
        if payload.startswith(b"PAR1"):
            import pyarrow as pa
            import pyarrow.parquet as pq

            return table, pq.read_table(pa.BufferReader(payload))
        if read is None:
            raise DataError(
                "standard input: only Parquet can be read from stdin in this build "
                "(the CSV/JSON readers, rmmhunt.io, are not installed)"
            )
        with tempfile.TemporaryDirectory(prefix="rmmhunt-stdin-") as tmp:
            spool = Path(tmp) / f"stdin{_stdin_suffix(payload[:64])}"
            spool.write_bytes(payload)
            data = read(str(spool), table=table, strict=strict)
            data = _materialize(table or "stdin", data)  # the temporary file goes away
        return table or _reported_table(data), data
    if read is not None:
        data = read(text, table=hint, strict=strict)
        return hint or _reported_table(data), data
    p = Path(text)
    if not p.exists():
        raise FileNotFoundError(2, "No such file or directory", text)
    if p.is_dir() or p.suffix.lower() not in (".parquet", ".pq"):
        raise DataError(
            f"{text}: only Parquet files can be read in this build "
            "(the CSV/JSON readers, rmmhunt.io, are not installed)"
        )
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return hint, pq.read_table(text)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"{text}: not a readable Parquet file: {exc}") from None


def _materialize(name: str, data: Any) -> pyarrow.Table:
    """Any accepted input as a ``pyarrow.Table``, read once (several rules scan it)."""
    import pyarrow as pa

    if isinstance(data, pa.Table | pa.RecordBatch | pa.RecordBatchReader):
        return to_pyarrow_table(data)
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        from .notebook import frame_to_arrow

        return frame_to_arrow(data)
    if module == "polars":
        out = data.to_arrow()
        assert isinstance(out, pa.Table)
        return out
    if hasattr(data, "__arrow_c_stream__") or hasattr(data, "__arrow_c_array__"):
        return to_pyarrow_table(data)
    for method in ("to_arrow_table", "to_arrow", "arrow"):
        fn = getattr(data, method, None)
        if callable(fn):
            return _materialize(name, fn())
    raise TypeError(
        f"table {name!r}: expected Arrow data (pyarrow Table or RecordBatchReader, pandas or "
        f"polars DataFrame, DuckDB relation) or a path, got {type(data).__name__}"
    )


def _concat(name: str, parts: list[pyarrow.Table]) -> pyarrow.Table:
    import pyarrow as pa

    if len(parts) == 1:
        return parts[0]
    try:
        return pa.concat_tables(parts, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"table {name!r}: the inputs given for it do not share a schema: {exc}") from None


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def load_tables(tables: Any, *, strict: bool = False) -> dict[str, pyarrow.Table]:
    """The ``tables`` argument of :func:`hunt` as ``{table name: pyarrow.Table}``.

    Accepts a mapping of name -> data or path, one table or path, or a list of them (names taken
    from the file, else inferred from the columns; inputs for the same table are concatenated)."""
    parts: dict[str, list[pyarrow.Table]] = {}

    def add(name: str | None, data: Any, label: str) -> None:
        table = _materialize(name or label, data)
        if name is None:
            name = infer_table(table.column_names)
            if name is None:
                raise DataError(
                    f"{label}: cannot tell which table this is from its columns; name it "
                    f"(NAME=PATH on the command line, or tables={{'DeviceProcessEvents': ...}}); "
                    f"known tables: {', '.join(_schemas())}"
                )
        parts.setdefault(name, []).append(table)

    if isinstance(tables, Mapping):
        for name, data in tables.items():
            if not isinstance(name, str):
                raise TypeError(f"table names are strings, not {type(name).__name__}")
            if _is_path(data):
                _, read = read_path(data, name, strict=strict)
                add(name, read, os.fspath(data))
            else:
                add(name, data, name)
    else:
        items = list(tables) if isinstance(tables, (list, tuple)) else [tables]
        for i, item in enumerate(items):
            if _is_path(item):
                name, read = read_path(item, strict=strict)
                add(name, read, os.fspath(item))
            else:
                add(None, item, f"input {i + 1} ({type(item).__name__})")
    return {name: _concat(name, ps) for name, ps in parts.items()}


def _rule_columns(rule: Rule, table: str) -> tuple[str, ...]:
    return cast("tuple[str, ...]", _derived(rule, "columns:" + table, lambda: _columns_of(rule, table)))


def _columns_of(rule: Rule, table: str) -> tuple[str, ...]:
    x = rule.extra.get("x_rmmhunt")
    if isinstance(x, Mapping):
        cols = x.get("columns")
        if isinstance(cols, Mapping) and isinstance(cols.get(table), list):
            return tuple(str(c) for c in cols[table])
    return ()


def _check_columns(data: Mapping[str, pyarrow.Table], rules: Sequence[Rule]) -> None:
    """Every column the selected rules read must be there: one error lists them all."""
    missing: dict[tuple[str, str], list[Rule]] = {}
    for rule in rules:
        for table in rule.tables:
            present = set(data[table].column_names)
            for col in _rule_columns(rule, table):
                if col not in present:
                    missing.setdefault((table, col), []).append(rule)
    if not missing:
        return
    lines = []
    for (table, col), needing in sorted(missing.items()):
        names = ", ".join(rule_info(r).tool or r.name for r in needing[:4])
        more = f" and {len(needing) - 4} more" if len(needing) > 4 else ""
        lines.append(f"  {table}.{col}: needed by {len(needing)} rule(s) ({names}{more})")
    raise DataError("the data lacks columns the selected rules need:\n" + "\n".join(lines))


def _named_columns(rule: Rule, table: str) -> tuple[str, ...]:
    """Which of ``table``'s documented columns ``rule``'s query names."""

    def named() -> tuple[str, ...]:
        columns = _column_types().get(table, {})
        return tuple(c for c in columns if re.search(rf"\b{re.escape(c)}\b", rule.query))

    return cast("tuple[str, ...]", _derived(rule, "named:" + table, named))


def _conform_types(
    data: Mapping[str, pyarrow.Table], rules: Sequence[Rule]
) -> dict[str, pyarrow.Table]:
    """Columns the rules read whose Arrow type does not fit the documented Kusto type are
    converted when the conversion is lossless (text holding numbers, ISO times or
    booleans; integral floats; numbers read as text); anything else is a DataError naming
    the table, column and both types."""
    import pyarrow as pa

    out = dict(data)
    documented = _column_types()
    for table in {t for r in rules for t in r.tables}:
        if table not in out:
            continue
        types = documented.get(table, {})
        tab = out[table]
        needed = {c for r in rules if table in r.tables for c in _rule_columns(r, table)}
        # Rules without column metadata (loaded from YAML): the documented columns their
        # query names.
        needed |= {
            c
            for r in rules
            if table in r.tables and not _rule_columns(r, table)
            for c in _named_columns(r, table)
        }
        for col in sorted(needed):
            want = types.get(col)
            if want is None or col not in tab.column_names:
                continue
            arr = tab.column(col)
            t = arr.type
            if pa.types.is_dictionary(t):
                t = t.value_type
            fits = {
                "string": pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t),
                "long": pa.types.is_integer(t),
                "int": pa.types.is_integer(t),
                "real": pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t),
                "bool": pa.types.is_boolean(t),
                "datetime": pa.types.is_timestamp(t) or pa.types.is_date(t),
                "timespan": pa.types.is_duration(t),
            }.get(want, True)
            if fits or pa.types.is_null(t):
                continue
            target = {
                "string": pa.string(),
                "long": pa.int64(),
                "int": pa.int32(),
                "real": pa.float64(),
                "bool": pa.bool_(),
                "datetime": pa.timestamp("ns", tz="UTC"),
                "timespan": pa.duration("ns"),
            }[want]
            try:
                converted = arr.cast(target, safe=True)  # imports pyarrow.compute only here
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataError(
                    f"{table}.{col} is documented as {want} but the data holds {arr.type}, "
                    f"which does not convert without loss: {exc}"
                ) from None
            tab = tab.set_column(tab.column_names.index(col), col, converted)
        out[table] = tab
    return out


@functools.lru_cache(maxsize=1)
def _column_types() -> dict[str, dict[str, str]]:
    """Documented Kusto type of each column of each Defender table (data/schemas.json)."""
    path = Path(__file__).resolve().parent / "data" / "schemas.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {t: {c["name"]: c["type"] for c in spec["columns"]} for t, spec in doc["tables"].items()}


def _latest(data: Mapping[str, pyarrow.Table]) -> datetime | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    best: datetime | None = None
    for table in data.values():
        if "Timestamp" not in table.column_names:
            continue
        col = table.column("Timestamp")
        if not pa.types.is_timestamp(col.type) or table.num_rows == 0:
            continue
        value = pc.max(col.cast(pa.timestamp("us", tz=col.type.tz))).as_py()
        if value is None:
            continue
        if value.tzinfo is None:
            value = value.replace(tzinfo=_UTC)
        best = value if best is None or value > best else best
    return best


def _resolve_now(now: datetime | str | None, data: Mapping[str, pyarrow.Table]) -> datetime:
    if isinstance(now, str) and now.strip().casefold() == "latest":
        latest = _latest(data)
        if latest is None:
            raise DataError("now='latest': no Timestamp values in the data")
        # Rules filter `Timestamp between (now(-5d)..now())`: the latest event is included.
        return latest
    if now is None:
        return datetime.now(_UTC)
    if isinstance(now, str):
        text = now.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"now must be an ISO 8601 time such as 2024-06-06T00:00:00Z, or 'latest'; got {now!r}"
            ) from None
    elif isinstance(now, datetime):
        parsed = now
    else:
        raise TypeError(f"now must be a datetime or an ISO 8601 string, not {type(now).__name__}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_UTC)
    return parsed.astimezone(_UTC)


# ----------------------------------------------------------------------------------------------
# Running


@dataclass(frozen=True)
class HuntProgress:
    """Passed to the ``progress`` callback of :func:`hunt` after each rule."""

    table: str
    rules_done: int
    rules_total: int
    rows_done: int
    rows_total: int
    bytes_done: int
    bytes_total: int
    elapsed: float


@dataclass(frozen=True)
class RuleStats:
    """What one rule did: the rows of its table it scanned, the events that matched its filters
    (before exclusions), the events its exclusions suppressed (``annotate``: would suppress),
    and the number of findings (result rows) it produced."""

    rule_id: str
    rule_name: str
    tool: str | None
    kind: str | None
    table: str
    rows_scanned: int
    rows_matched: int | None
    suppressed: int
    findings: int


@dataclass(frozen=True)
class Skipped:
    """A selected rule that did not run, and why."""

    rule_id: str
    rule_name: str
    table: str
    reason: str


@dataclass
class _Outcome:
    rule: Rule
    table: str
    result: HuntResult | None
    reason: str | None = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _run_table(
    table_name: str,
    data: pyarrow.Table,
    rules: Sequence[Rule],
    *,
    tables: Mapping[str, pyarrow.Table],
    now: datetime,
    lookback: timedelta | None,
    exclusions: Exclusions,
    threads: int | None,
    on_rule: Callable[[Rule], None],
) -> list[_Outcome]:
    """Run ``rules`` (all reading ``table_name``) over ``data``; one outcome per rule, in order.

    This is the one place that runs rules. Every rule's queries (its own, and the counts of its
    exclusions) go to the engine together (``rmmhunt.query_many``), which scans each table
    once for all of them: the needles of every rule over a column are matched in one pass.
    ``tables`` holds every table given (rules that join read a second one)."""
    from rmmhunt import query_many

    from .rules.hunt import plan_hunt

    inputs = {t: (data if t == table_name else d) for t, d in tables.items()}
    plans: list[tuple[Rule, Any]] = []
    out: list[_Outcome] = []
    for rule in rules:
        try:
            plan = plan_hunt(rule, inputs, now=now, lookback=lookback, exclusions=exclusions)
        except UnsupportedError as exc:
            out.append(_Outcome(rule, table_name, None, f"not supported by the engine: {_first_line(exc)}"))
            on_rule(rule)
            continue
        except RmmhuntError as exc:
            if hasattr(exc, "add_note"):
                exc.add_note(f"while running rule {rule.name!r} ({rule.id})")
            raise
        plans.append((rule, plan))
    queries = [q for _, plan in plans for q in plan.queries]
    results = query_many(queries, inputs, now=now, threads=threads, return_exceptions=True)
    at = 0
    for rule, plan in plans:
        mine = results[at : at + len(plan.queries)]
        at += len(plan.queries)
        failed = next((r for r in mine if isinstance(r, BaseException)), None)
        if isinstance(failed, UnsupportedError):
            reason = f"not supported by the engine: {_first_line(failed)}"
            out.append(_Outcome(rule, table_name, None, reason))
        elif failed is not None:
            if hasattr(failed, "add_note"):
                failed.add_note(f"while running rule {rule.name!r} ({rule.id})")
            raise failed
        else:
            out.append(_Outcome(rule, table_name, plan.finish(mine)))
        on_rule(rule)
    order = {id(r): i for i, r in enumerate(rules)}
    out.sort(key=lambda o: order[id(o.rule)])
    return out


def hunt(
    tables: Any,
    *,
    rules: str | Rule | RulePack | Iterable[str | Rule] | None = None,
    now: datetime | str | None = None,
    lookback: str | timedelta | None = None,
    exclusions: Exclusions = "apply",
    threads: int | None = None,
    progress: Callable[[HuntProgress], None] | None = None,
) -> Findings:
    """Run many rules over local data and return their :class:`Findings`.

    ``tables``: ``{"DeviceProcessEvents": data, ...}`` where data is a pyarrow Table or
    RecordBatchReader, a pandas or polars DataFrame, anything with ``__arrow_c_stream__``, or a
    path; or one such table or path, or a list of them (table names inferred).

    ``rules``: which rules (default: all bundled rules; see the module docs). Rules whose table
    is not given are skipped and listed in :attr:`Findings.skipped`.

    ``now``: the time every rule's ``now()`` is frozen at (default: the current UTC time;
    ``"latest"``: the latest ``Timestamp`` in the data). ``lookback`` (``"7d"``, a timedelta)
    replaces the rules' window. ``exclusions``: ``"apply"`` drops the events of the rules'
    documented false-positive scenarios (and counts them), ``"annotate"`` counts them per
    finding, ``"off"`` runs the queries as published. ``threads``: worker threads for the scan
    (default: one per core). ``progress`` is called after each rule with a :class:`HuntProgress`.

    Raises :class:`~rmmhunt.errors.DataError` when the data lacks columns the selected rules
    need (all of them listed), :class:`~rmmhunt.rules.UnknownRuleError` for an unknown rule name.
    """
    if exclusions not in ("apply", "annotate", "off"):
        raise ValueError(f"exclusions must be 'apply', 'annotate' or 'off', not {exclusions!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer, not {threads!r}")
    window: timedelta | None = None
    if lookback is not None:
        window = parse_duration(lookback)
        if window <= timedelta(0):
            raise ValueError(f"lookback must be positive, not {lookback!r}")
    selected = select_rules(rules)
    data = load_tables(tables)
    frozen_now = _resolve_now(now, data)

    skipped: list[Skipped] = []
    by_table: dict[str, list[Rule]] = {}
    for rule in selected:
        info = rule_info(rule)
        absent = [t for t in rule.tables if t not in data]
        if not rule.tables:
            skipped.append(Skipped(rule.id, rule.name, info.table, "the rule names no table"))
        elif absent:
            main = info.table if info.table in rule.tables else rule.tables[0]
            reason = (
                f"no {main} data given"
                if main in absent
                else f"joins {', '.join(absent)}, which was not given"
            )
            skipped.append(Skipped(rule.id, rule.name, main, reason))
        else:
            main = info.table if info.table in rule.tables else rule.tables[0]
            by_table.setdefault(main, []).append(rule)
    _check_columns(data, [r for rs in by_table.values() for r in rs])
    data = _conform_types(data, [r for rs in by_table.values() for r in rs])

    rows_total = sum(data[t].num_rows for t in by_table)
    # A table's byte size walks every buffer of every chunk (1.5 ms for 11 columns of 10M
    # rows in 80 chunks, and it was asked twice: a twentieth of the pack's time on two
    # threads), so it is asked once, and only for progress reports.
    bytes_of = {t: int(data[t].nbytes) if progress is not None else 0 for t in by_table}
    bytes_total = sum(bytes_of.values())
    rules_total = sum(len(rs) for rs in by_table.values())
    started = time.monotonic()
    state = {"done": 0, "rows_before": 0, "bytes_before": 0}
    outcomes: list[_Outcome] = []
    for table_name, table_rules in by_table.items():
        table = data[table_name]
        done_here = [0]

        def on_rule(
            rule: Rule,
            table_name: str = table_name,
            table: Any = table,
            done_here: list[int] = done_here,
            n: int = len(table_rules),
        ) -> None:
            state["done"] += 1
            done_here[0] += 1
            if progress is not None:
                share = done_here[0] / n
                progress(
                    HuntProgress(
                        table=table_name,
                        rules_done=state["done"],
                        rules_total=rules_total,
                        rows_done=state["rows_before"] + int(table.num_rows * share),
                        rows_total=rows_total,
                        bytes_done=state["bytes_before"] + int(bytes_of[table_name] * share),
                        bytes_total=bytes_total,
                        elapsed=time.monotonic() - started,
                    )
                )

        outcomes += _run_table(
            table_name,
            table,
            table_rules,
            tables=data,
            now=frozen_now,
            lookback=window,
            exclusions=exclusions,
            threads=threads,
            on_rule=on_rule,
        )
        state["rows_before"] += table.num_rows
        state["bytes_before"] += bytes_of[table_name]

    order = {r.id.lower(): i for i, r in enumerate(selected)}
    outcomes.sort(key=lambda o: order[o.rule.id.lower()])
    for o in outcomes:
        if o.result is None:
            skipped.append(Skipped(o.rule.id, o.rule.name, o.table, o.reason or "did not run"))
    skipped.sort(key=lambda s: order[s.rule_id.lower()])
    return _build_findings(
        outcomes,
        skipped,
        {name: t.num_rows for name, t in data.items()},
        frozen_now,
        window,
        exclusions,
        time.monotonic() - started,
    )


# ----------------------------------------------------------------------------------------------
# Findings


def _count_sum(table: pyarrow.Table) -> int | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    if "Count" not in table.column_names or not pa.types.is_integer(table.column("Count").type):
        return None
    if table.num_rows == 0:
        return 0
    total = pc.sum(table.column("Count")).as_py()
    return int(total or 0)


def _json_text(table: pyarrow.Table, name: str) -> pyarrow.Table:
    import pyarrow as pa

    idx = table.column_names.index(name)
    col = table.column(name)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return table
    values = [None if v is None else json.dumps(v, default=str) for v in col.to_pylist()]
    return table.set_column(idx, pa.field(name, pa.string()), string_array(values))


def _unify(parts: list[pyarrow.Table]) -> pyarrow.Table:
    import pyarrow as pa

    try:
        return pa.concat_tables(parts, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, NotImplementedError):
        pass
    types_by_col: dict[str, set[str]] = {}
    for p in parts:
        for f in p.schema:
            types_by_col.setdefault(f.name, set()).add(str(f.type))
    clash = [c for c, ts in types_by_col.items() if len(ts) > 1]
    fixed = []
    for p in parts:
        for c in clash:
            if c in p.column_names:
                p = _json_text(p, c)
        fixed.append(p)
    return pa.concat_tables(fixed, promote_options="permissive")


def _empty_rule_schema() -> pyarrow.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("DeviceId", pa.string()),
            ("DeviceName", pa.string()),
            ("FirstSeen", pa.timestamp("ns", tz="UTC")),
            ("LastSeen", pa.timestamp("ns", tz="UTC")),
            ("Report", pa.list_(pa.int64())),
            ("Count", pa.int64()),
        ]
    )


_EMPTY_KQL = {
    "DeviceId": "string",
    "DeviceName": "string",
    "FirstSeen": "datetime",
    "LastSeen": "datetime",
    "Report": "dynamic",
    "Count": "long",
}


def _build_findings(
    outcomes: list[_Outcome],
    skipped: list[Skipped],
    table_rows: Mapping[str, int],
    now: datetime,
    lookback: timedelta | None,
    exclusions: Exclusions,
    elapsed: float,
) -> Findings:
    import pyarrow as pa

    # Each rule's result table as it is (columns named like the rule columns renamed; the
    # findings table is built from the columns, so the fields' metadata goes); the rule
    # columns and the order column are made once for all rows afterwards, by taking each
    # row's rule from one small array per column (per rule, eight arrays and two tables
    # cost the 55-rule pack ~4 ms a hunt).
    parts: list[pa.Table] = []
    part_meta: dict[str, list[str | None]] = {c: [] for c in META_COLUMNS}
    row_part = array("q")
    kql_types: dict[str, str] = dict.fromkeys(META_COLUMNS, "string")
    stats: list[RuleStats] = []
    suppression: dict[str, SuppressionReport] = {}
    scenario_cols: list[str] = []
    for o in outcomes:
        if o.result is None:
            continue
        info = rule_info(o.rule)
        result = o.result.to_arrow()
        renamed = [f"result_{c}" if c in META_COLUMNS else c for c in result.column_names]
        if renamed != result.column_names:
            result = result.rename_columns(renamed)
        for name, kql in zip(renamed, o.result.result._kql_types, strict=False):
            kql_types.setdefault(name, kql)
        for col in o.result.scenario_columns.values():
            if col not in scenario_cols:
                scenario_cols.append(col)
        n = result.num_rows
        meta = {
            "rule_id": o.rule.id,
            "rule_name": o.rule.name,
            "tool": info.tool,
            "table": o.table,
            "kind": info.kind,
            "tactic": info.tactic,
            "technique": info.technique,
        }
        for c in META_COLUMNS:
            part_meta[c].append(meta[c])
        row_part.extend([len(parts)] * n)
        parts.append(result)
        report = o.result.suppression
        suppressed = report.total.events if report.total is not None else 0
        if len(report):
            suppression[o.rule.id] = report
        matched = _count_sum(result)
        if matched is not None and exclusions == "apply":
            matched += suppressed
        stats.append(
            RuleStats(
                rule_id=o.rule.id,
                rule_name=o.rule.name,
                tool=info.tool,
                kind=info.kind,
                table=o.table,
                rows_scanned=int(table_rows.get(o.table, 0)),
                rows_matched=matched,
                suppressed=suppressed,
                findings=n,
            )
        )
    if parts:
        results = _unify(parts)
        # Each row's part, which is also its order: parts come in the rules' order.
        rows = pa.Array.from_buffers(pa.int64(), len(row_part), [None, pa.py_buffer(row_part.tobytes())])
        table = pa.Table.from_arrays(
            [string_array(part_meta[c]).take(rows) for c in META_COLUMNS] + [rows, *results.columns],
            names=[*META_COLUMNS, "__order", *results.column_names],
        )
    else:
        schema = _empty_rule_schema()
        table = pa.Table.from_arrays(
            [pa.nulls(0, pa.string()) for _ in META_COLUMNS]
            + [pa.nulls(0, pa.int64())]
            + [pa.nulls(0, f.type) for f in schema],
            names=[*META_COLUMNS, "__order", *schema.names],
        )
        for k, v in _EMPTY_KQL.items():
            kql_types.setdefault(k, v)
    cols = table.column_names
    rest = [c for c in cols if c not in META_COLUMNS and c != "__order"]
    group = [c for c in _GROUP_ORDER if c in rest]
    aggs = [c for c in _AGG_ORDER if c in rest]
    other = [c for c in rest if c not in group and c not in aggs and c not in scenario_cols]
    fp = [c for c in scenario_cols if c in rest]
    sort_keys = [("__order", "ascending")]
    sort_keys += [(c, "ascending") for c in ("FirstSeen", "DeviceName", "DeviceId") if c in cols]
    sort_keys += [(c, "ascending") for c in group + other if c not in ("DeviceName", "DeviceId")]
    sortable = [(c, o) for c, o in sort_keys if not pa.types.is_nested(table.schema.field(c).type)]
    table = table.sort_by(sortable).select([*META_COLUMNS, *group, *other, *aggs, *fp])
    types = {c: kql_types.get(c, "string") for c in table.column_names}
    return Findings(
        table,
        types,
        stats=stats,
        skipped=skipped,
        suppression=suppression,
        now=now,
        lookback=lookback,
        exclusions=exclusions,
        table_rows=dict(table_rows),
        elapsed=elapsed,
    )


R = TypeVar("R")


class Records(Sequence[R], Generic[R]):
    """A read-only list of records (dataclasses) that converts to pyarrow, pandas or polars."""

    def __init__(self, items: Iterable[R], fields: Sequence[str], key: str | None = None) -> None:
        self._items = tuple(items)
        self._fields = tuple(fields)
        self._key = key

    @overload
    def __getitem__(self, index: int) -> R: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[R]: ...

    @overload
    def __getitem__(self, index: str) -> R: ...

    def __getitem__(self, index: int | slice | str) -> R | Sequence[R]:
        """By position, or by rule id (case-insensitive)."""
        if isinstance(index, str):
            for item in self._items:
                if self._key and str(getattr(item, self._key)).casefold() == index.casefold():
                    return item
            raise KeyError(index)
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[R]:
        return iter(self._items)

    def __repr__(self) -> str:
        return f"<{len(self._items)} records: {', '.join(self._fields)}>"

    def to_pylist(self) -> list[dict[str, Any]]:
        return [{f: getattr(item, f) for f in self._fields} for item in self._items]

    def to_arrow(self) -> pyarrow.Table:
        import pyarrow as pa

        rows = self.to_pylist()
        if rows:
            return pa.Table.from_pylist(rows)
        return pa.table({f: pa.array([], pa.string()) for f in self._fields})

    def to_pandas(self) -> pandas.DataFrame:
        import pandas as pd

        df: pandas.DataFrame = pd.DataFrame(self.to_pylist(), columns=list(self._fields))
        return df

    def to_polars(self) -> polars.DataFrame:
        import polars as pl

        out = pl.from_arrow(self.to_arrow())
        assert isinstance(out, pl.DataFrame)
        return out


_STATS_FIELDS = [f.name for f in dataclasses.fields(RuleStats)]
_SKIPPED_FIELDS = [f.name for f in dataclasses.fields(Skipped)]


class Findings:
    """The result of :func:`hunt`: one findings table over every rule that ran.

    The table is Arrow underneath (``to_arrow``, ``to_pandas``, ``to_polars``, ``to_pylist``,
    and ``__arrow_c_stream__``, so ``polars.DataFrame(findings)`` works). Alongside it:
    :attr:`stats` (per rule: rows scanned, rows matched, suppressed, findings), :attr:`skipped`
    (rules that did not run, and why) and :attr:`suppression` (rule id -> the
    :class:`~rmmhunt.rules.SuppressionReport` of each rule with false-positive scenarios).
    In a notebook it renders as a compact summary; :meth:`plot_timeline` draws it.
    """

    def __init__(
        self,
        table: pyarrow.Table,
        kql_types: Mapping[str, str],
        *,
        stats: Sequence[RuleStats],
        skipped: Sequence[Skipped],
        suppression: Mapping[str, SuppressionReport],
        now: datetime,
        lookback: timedelta | None,
        exclusions: str,
        table_rows: Mapping[str, int],
        elapsed: float = 0.0,
    ) -> None:
        self._table = table
        self._kql_types = dict(kql_types)
        self.stats: Records[RuleStats] = Records(stats, _STATS_FIELDS, key="rule_id")
        self.skipped: Records[Skipped] = Records(skipped, _SKIPPED_FIELDS, key="rule_id")
        self.suppression: Mapping[str, SuppressionReport] = types.MappingProxyType(dict(suppression))
        #: The instant every rule's ``now()`` was frozen at (UTC).
        self.now = now
        #: The window that replaced the rules' own, if any.
        self.lookback = lookback
        #: ``"apply"``, ``"annotate"`` or ``"off"``.
        self.exclusions = exclusions
        #: Rows of each table given.
        self.table_rows: Mapping[str, int] = types.MappingProxyType(dict(table_rows))
        #: Seconds the rules took.
        self.elapsed = elapsed

    # -- the table -------------------------------------------------------------------------

    @property
    def columns(self) -> list[str]:
        return list(self._table.column_names)

    @property
    def kql_types(self) -> dict[str, str]:
        """Column name -> Kusto type."""
        return dict(self._kql_types)

    def __len__(self) -> int:
        return int(self._table.num_rows)

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self._table.__arrow_c_stream__(requested_schema)

    def to_arrow(self) -> pyarrow.Table:
        """The findings as a ``pyarrow.Table`` (datetimes ``timestamp[ns, UTC]``)."""
        return self._table

    def to_pandas(self) -> pandas.DataFrame:
        """The findings as a pandas DataFrame: timezone-aware UTC datetimes, ``Report`` and other
        dynamic values as Python lists (as MSTICPy's query providers return them), integer
        columns with nulls (``Count`` of rules that do not count) as nullable ``Int64``."""
        import pyarrow as pa

        from .notebook import register_pandas_accessor

        register_pandas_accessor()
        from ._result import _ints_with_nulls, _nullable_int

        df: pandas.DataFrame = self._table.to_pandas()
        for name in _ints_with_nulls(self._table):  # nullable Int64, as Result.to_pandas
            df[name] = self._table.column(name).to_pandas(types_mapper=_nullable_int)
        for field in self._table.schema:
            if pa.types.is_nested(field.type):
                df[field.name] = _object_array(self._table.column(field.name).to_pylist())
        return df

    def to_polars(self) -> polars.DataFrame:
        import polars as pl

        out = pl.from_arrow(self._table)
        assert isinstance(out, pl.DataFrame)
        return out

    def to_pylist(self) -> list[dict[str, Any]]:
        """One dict per finding (datetimes as aware UTC ``datetime``)."""
        rows: list[dict[str, Any]] = _to_pylist(self._table)
        return rows

    # -- summaries -------------------------------------------------------------------------

    @property
    def rules_run(self) -> int:
        return len(self.stats)

    @property
    def devices(self) -> list[str]:
        """The devices with at least one finding (DeviceName, else DeviceId), sorted."""
        out: set[str] = set()
        for name in ("DeviceName", "DeviceId"):
            if name in self._table.column_names:
                out.update(v for v in self._table.column(name).to_pylist() if v)
                break
        return sorted(out)

    @property
    def tools(self) -> list[str]:
        """The tools with at least one finding, sorted."""
        return sorted({v for v in self._table.column("tool").to_pylist() if v})

    @property
    def suppressed(self) -> int:
        """Events suppressed by exclusions (``annotate``: that would be), over all rules."""
        return sum(s.suppressed for s in self.stats)

    def summary(self) -> str:
        """One line: rules run and skipped, findings, devices, tools, suppressed events."""
        text = (
            f"{self.rules_run} rules run, {len(self.skipped)} skipped; "
            f"{_plural(len(self), 'finding')} on {_plural(len(self.devices), 'device')} from "
            f"{_plural(len(self.tools), 'tool')}"
        )
        if self.suppressed:
            verb = "would be suppressed" if self.exclusions == "annotate" else "suppressed"
            text += f"; {_plural(self.suppressed, 'event')} {verb} by exclusions"
        return text

    def __repr__(self) -> str:
        return f"<rmmhunt.Findings: {self.summary()}>"

    def _tool_rows(self) -> list[dict[str, Any]]:
        agg: dict[str, dict[str, Any]] = {}
        for row in self._table.select(
            [
                c
                for c in ("tool", "kind", "DeviceName", "FirstSeen", "LastSeen", "Count")
                if c in self._table.column_names
            ]
        ).to_pylist():
            a = agg.setdefault(
                row["tool"] or "?",
                {"kinds": set(), "devices": set(), "events": 0, "first": None, "last": None},
            )
            a["kinds"].add(row.get("kind") or "?")
            if row.get("DeviceName"):
                a["devices"].add(row["DeviceName"])
            a["events"] += int(row.get("Count") or 0)
            first, last = row.get("FirstSeen"), row.get("LastSeen")
            if first is not None and (a["first"] is None or first < a["first"]):
                a["first"] = first
            if last is not None and (a["last"] is None or last > a["last"]):
                a["last"] = last
        rows = [
            {
                "tool": tool,
                "kinds": ", ".join(sorted(a["kinds"])),
                "devices": len(a["devices"]),
                "events": a["events"],
                "first seen": a["first"],
                "last seen": a["last"],
            }
            for tool, a in agg.items()
        ]
        rows.sort(key=lambda r: (-r["devices"], -r["events"], r["tool"]))
        return rows

    def _repr_html_(self, max_rows: int = 10) -> str:
        esc = html.escape
        window = f", window {self.lookback}" if self.lookback is not None else ""
        head = (
            f"<p><b>rmmhunt</b>: <b>{self.rules_run}</b> rules run over "
            f"{esc(', '.join(f'{t} ({n:,} rows)' for t, n in self.table_rows.items()) or 'no tables')}"
            f"; <b>{len(self)}</b> findings on <b>{len(self.devices)}</b> devices from "
            f"<b>{len(self.tools)}</b> tools. now = {esc(_iso(self.now))}{esc(window)}, "
            f"exclusions: {esc(self.exclusions)}.</p>"
        )
        parts = [head]
        tools = self._tool_rows()
        if tools:
            parts.append(f"<p>Top tools ({len(tools)}):</p>")
            parts.append(_html_table(tools[:max_rows]))
        if len(self):
            show = [
                c
                for c in (
                    "tool",
                    "kind",
                    "DeviceName",
                    "AccountUpn",
                    "InitiatingProcessAccountUpn",
                    "RemoteUrl",
                    "FirstSeen",
                    "LastSeen",
                    "Count",
                )
                if c in self._table.column_names
            ]
            top = _to_pylist(self._table.select(show))
            top.sort(key=lambda r: (-(r.get("Count") or 0), str(r.get("DeviceName"))))
            parts.append(f"<p>Top findings (of {len(self)}):</p>")
            parts.append(_html_table(top[:max_rows]))
        if self.suppression:
            rows = []
            for rid, report in self.suppression.items():
                name = self.stats[rid].rule_name if rid in {s.rule_id for s in self.stats} else rid
                for s in report:
                    rows.append(
                        {"rule": name, "scenario": s.scenario, "events": s.events, "devices": s.devices}
                    )
            verb = "would suppress" if self.exclusions == "annotate" else "suppressed"
            parts.append(f"<p>Exclusions ({verb} {self.suppressed} events):</p>")
            parts.append(_html_table(rows))
        if len(self.skipped):
            items = "".join(f"<li>{esc(s.rule_name)}: {esc(s.reason)}</li>" for s in list(self.skipped)[:50])
            more = f"<li>… {len(self.skipped) - 50} more</li>" if len(self.skipped) > 50 else ""
            summary = f"<summary>{len(self.skipped)} rules skipped</summary>"
            parts.append(f"<details>{summary}<ul>{items}{more}</ul></details>")
        return "<div class='rmmhunt-findings'>" + "".join(parts) + "</div>"

    # -- plotting --------------------------------------------------------------------------

    def plot_timeline(self, *, max_rows: int = 60, title: str | None = None, width: int = 900) -> Any:
        """A bokeh figure with one row per device and rule, a bar from FirstSeen to LastSeen
        (coloured by tool, hover for details). Rows beyond ``max_rows`` (oldest LastSeen first)
        are left out and the title says so. Needs bokeh (``pip install rmmhunt[plot]``);
        ``bokeh.plotting.show(fig)`` displays it."""
        try:
            from bokeh.models import ColumnDataSource, FactorRange, HoverTool
            from bokeh.palettes import Category10_10
            from bokeh.plotting import figure
        except ImportError as exc:
            raise ImportError(
                "plot_timeline needs bokeh: pip install 'rmmhunt[plot]' (or pip install bokeh)"
            ) from exc
        wanted = [
            c
            for c in ("tool", "kind", "rule_name", "DeviceName", "DeviceId", "FirstSeen", "LastSeen", "Count")
            if c in self._table.column_names
        ]
        rows = _to_pylist(self._table.select(wanted)) if len(self) else []
        rows = [r for r in rows if r.get("FirstSeen") is not None and r.get("LastSeen") is not None]
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for r in rows:
            device = r.get("DeviceName") or r.get("DeviceId") or "?"
            label = f"{device} · {r.get('tool') or '?'} {r.get('kind') or ''}".strip()
            key = (label, r.get("rule_name") or "")
            m = merged.get(key)
            if m is None:
                merged[key] = dict(r, label=label, device=device, Count=int(r.get("Count") or 0))
            else:
                m["FirstSeen"] = min(m["FirstSeen"], r["FirstSeen"])
                m["LastSeen"] = max(m["LastSeen"], r["LastSeen"])
                m["Count"] += int(r.get("Count") or 0)
        items = sorted(merged.values(), key=lambda m: m["LastSeen"], reverse=True)
        dropped = max(0, len(items) - max_rows)
        items = sorted(items[:max_rows], key=lambda m: (m["FirstSeen"], m["label"]))
        labels: list[str] = []
        for m in items:
            if m["label"] not in labels:
                labels.append(m["label"])
        tools = sorted({m.get("tool") or "?" for m in items})
        colors = {t: Category10_10[i % 10] for i, t in enumerate(tools)}
        source = ColumnDataSource(
            {
                "label": [m["label"] for m in items],
                "start": [_naive_utc(m["FirstSeen"]) for m in items],
                "end": [_naive_utc(m["LastSeen"]) for m in items],
                "tool": [m.get("tool") or "?" for m in items],
                "rule": [m.get("rule_name") or "" for m in items],
                "device": [m["device"] for m in items],
                "count": [m["Count"] for m in items],
                "first": [_iso(m["FirstSeen"]) for m in items],
                "last": [_iso(m["LastSeen"]) for m in items],
                "color": [colors[m.get("tool") or "?"] for m in items],
            }
        )
        text = title or f"RMM findings: {len(self)} on {len(self.devices)} devices"
        if dropped:
            text += f" (latest {max_rows} device/rule rows; {dropped} older not shown)"
        fig = figure(
            y_range=FactorRange(factors=list(reversed(labels)) or ["(no findings)"]),
            x_axis_type="datetime",
            height=max(200, 40 + 22 * max(1, len(labels))),
            width=width,
            title=text,
            tools="xpan,xwheel_zoom,reset,save",
            toolbar_location="above",
        )
        bars = fig.hbar(
            y="label",
            left="start",
            right="end",
            height=0.5,
            color="color",
            source=source,
            legend_field="tool",
        )
        fig.scatter(x="start", y="label", size=7, color="color", source=source)
        fig.scatter(x="end", y="label", size=7, color="color", source=source)
        fig.add_tools(
            HoverTool(
                renderers=[bars],
                tooltips=[
                    ("device", "@device"),
                    ("rule", "@rule"),
                    ("first seen", "@first"),
                    ("last seen", "@last"),
                    ("events", "@count"),
                ],
            )
        )
        fig.xaxis.axis_label = "time (UTC)"
        if items:
            fig.legend.location = "top_left"
            fig.legend.click_policy = "hide"
        return fig


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(_UTC).replace(tzinfo=None)
    return value


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_UTC).replace(tzinfo=None)
        spec = "seconds" if value.microsecond == 0 else "microseconds"
        return str(value.isoformat(timespec=spec)) + "Z"
    return "" if value is None else str(value)


def _to_pylist(table: pyarrow.Table) -> list[dict[str, Any]]:
    """Rows as dicts with timestamps as aware ``datetime`` (microseconds), never pandas
    ``Timestamp`` objects."""
    import pyarrow as pa

    cols: dict[str, list[Any]] = {}
    for field in table.schema:
        col = table.column(field.name)
        if pa.types.is_timestamp(field.type) and field.type.unit == "ns":
            col = col.cast(pa.timestamp("us", tz=field.type.tz), safe=False)
        cols[field.name] = col.to_pylist()
    names = list(cols)
    return [dict(zip(names, vals, strict=True)) for vals in zip(*cols.values(), strict=True)] if names else []


def _object_array(values: list[Any]) -> Any:
    """A numpy object array of Python values (lists stay lists, as pandas object cells)."""
    import numpy as np

    arr = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        arr[i] = v
    return arr


def _html_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    esc = html.escape
    names = list(rows[0])
    head = "".join(f"<th>{esc(n)}</th>" for n in names)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(_cell(r.get(n)))}</td>" for n in names) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)
