"""The ``rmmhunt`` command: hunt, query, list and export rules, generate sample data.

Data goes to standard output, summaries and progress to standard error. ``-`` as a PATH or as
the KQL text reads standard input. Exit codes are documented in :data:`EXIT_CODES` (and in
``rmmhunt --help``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import InternalError, RmmhuntError

if TYPE_CHECKING:
    import pyarrow

    from .hunting import Findings, HuntProgress
    from .rules import Rule

__all__ = ["EXIT_CODES", "main"]

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2
EXIT_INTERNAL = 101
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "done (with or without findings)",
    EXIT_FINDINGS: "findings, with --fail-on-match",
    EXIT_ERROR: "could not run: bad usage or bad input (unknown rule, invalid KQL, unreadable file)",
    EXIT_INTERNAL: "internal error: a bug in rmmhunt, please report it",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

FORMATS = ("table", "csv", "json", "jsonl", "parquet")
_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "table",
}
#: Characters that make a spreadsheet treat a cell as a formula (OWASP CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1)


class UsageError(RmmhuntError, ValueError):
    """A command-line argument that cannot be used."""


# ----------------------------------------------------------------------------------------------
# Progress and messages (standard error)


def _size(n: float) -> str:
    """Bytes as text: 512 B, 12.3 kB, 4.5 MB."""
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if n < 1000 or unit == "GB":
            break
    return f"{n:.1f} {unit}"


class _Progress:
    """A one-line progress indicator on stderr, shown only on a terminal, not with --quiet,
    and only once the work has taken longer than ``delay`` seconds."""

    def __init__(self, stream: IO[str], *, quiet: bool, delay: float = 0.5) -> None:
        isatty = getattr(stream, "isatty", None)
        self.enabled = not quiet and callable(isatty) and bool(isatty())
        self.stream = stream
        self.delay = delay
        self.started = time.monotonic()
        self.last = 0.0
        self.shown = False

    def status(self, text: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.started < self.delay or now - self.last < 0.1:
            return
        self.last = now
        width = shutil.get_terminal_size((80, 20)).columns - 1
        self.stream.write("\r" + text[:width].ljust(width))
        self.stream.flush()
        self.shown = True

    def __call__(self, p: HuntProgress) -> None:
        share = p.rules_done / p.rules_total if p.rules_total else 1.0
        filled = int(share * 20)
        rate = p.rows_done / p.elapsed if p.elapsed > 0 else 0.0
        self.status(
            f"[{'#' * filled}{'.' * (20 - filled)}] {p.rules_done}/{p.rules_total} rules  "
            f"{p.rows_done:,}/{p.rows_total:,} rows  {_size(p.bytes_done)}/{_size(p.bytes_total)}  "
            f"{rate:,.0f} rows/s  {p.table}"
        )

    def clear(self) -> None:
        if self.shown:
            width = shutil.get_terminal_size((80, 20)).columns - 1
            self.stream.write("\r" + " " * width + "\r")
            self.stream.flush()
            self.shown = False


class _Console:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def note(self, text: str) -> None:
        if not self.quiet:
            print(f"rmmhunt: {text}", file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# Output


def _format_for(fmt: str | None, output: str | None) -> str:
    if fmt:
        return fmt
    if output and output != "-":
        return _SUFFIX_FORMATS.get(Path(output).suffix.lower(), "table")
    return "table"


def _ticks_text(ticks: int) -> str:
    """A Kusto datetime text (100 ns ticks since the Unix epoch): 2024-06-02T14:25:42.9225810Z."""
    seconds, frac = divmod(ticks, 10_000_000)
    try:
        base = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    except OverflowError:
        return str(ticks)
    return f"{base}.{frac:07d}Z"


def _timespan_text(ticks: int) -> str:
    """A Kusto timespan text: [-][d.]hh:mm:ss[.fffffff]."""
    sign = "-" if ticks < 0 else ""
    ticks = abs(ticks)
    seconds, frac = divmod(ticks, 10_000_000)
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = f"{sign}{f'{days}.' if days else ''}{hours:02d}:{minutes:02d}:{seconds:02d}"
    return text + (f".{frac:07d}" if frac else "")


_TICKS_PER = {"s": 10_000_000, "ms": 10_000, "us": 10, "ns": 1}


def _to_ticks(values: list[int | None], unit: str) -> list[int | None]:
    if unit == "ns":
        return [None if v is None else v // 100 for v in values]
    factor = _TICKS_PER[unit]
    return [None if v is None else v * factor for v in values]


def _plain_columns(table: pyarrow.Table, kql_types: dict[str, str]) -> list[list[Any]]:
    """Each column as JSON-ready Python values: datetimes and timespans as Kusto text, dynamic
    values as lists/dicts, non-finite reals as "NaN"/"Infinity"."""
    import pyarrow as pa

    out: list[list[Any]] = []
    for field in table.schema:
        col = table.column(field.name)
        t = field.type
        if pa.types.is_timestamp(t):
            raw = col.cast(pa.int64()).to_pylist()
            out.append([None if v is None else _ticks_text(v) for v in _to_ticks(raw, t.unit)])
        elif pa.types.is_duration(t):
            raw = col.cast(pa.int64()).to_pylist()
            out.append([None if v is None else _timespan_text(v) for v in _to_ticks(raw, t.unit)])
        elif pa.types.is_floating(t):
            out.append([_real(v) for v in col.to_pylist()])
        elif pa.types.is_decimal(t):
            out.append([None if v is None else str(v) for v in col.to_pylist()])
        elif kql_types.get(field.name) == "dynamic" and (
            pa.types.is_string(t) or pa.types.is_large_string(t)
        ):
            out.append([_decode_dynamic(v) for v in col.to_pylist()])
        elif pa.types.is_nested(t):
            out.append([_jsonable(v) for v in col.to_pylist()])
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
            out.append([None if v is None else v.hex() for v in col.to_pylist()])
        else:
            out.append([_jsonable(v) for v in col.to_pylist()])
    return out


def _real(v: float | None) -> Any:
    if v is None:
        return None
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def _decode_dynamic(v: str | None) -> Any:
    if v is None:
        return None
    try:
        return json.loads(v)
    except ValueError:
        return v


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        if v.tzinfo is not None:
            v = v.astimezone(_UTC).replace(tzinfo=None)
        return v.isoformat(timespec="microseconds") + "0Z"
    if isinstance(v, timedelta):
        return _timespan_text(v // timedelta(microseconds=1) * 10)
    if isinstance(v, float):
        return _real(v)
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, tuple):  # map entries
        return [_jsonable(x) for x in v]
    if isinstance(v, bytes):
        return v.hex()
    return v


def _text_cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    return str(v)


def safe_csv_cell(text: str) -> str:
    """Neutralise a cell that a spreadsheet would read as a formula: a leading ``= + - @``,
    tab or carriage return gets a single quote in front."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _write_csv(table: pyarrow.Table, kql_types: dict[str, str], sink: IO[str]) -> None:
    import pyarrow as pa

    writer = csv.writer(sink, lineterminator="\n")
    writer.writerow([safe_csv_cell(n) for n in table.column_names])
    textual = [
        pa.types.is_string(f.type)
        or pa.types.is_large_string(f.type)
        or pa.types.is_nested(f.type)
        or pa.types.is_dictionary(f.type)
        for f in table.schema
    ]
    columns = _plain_columns(table, kql_types)
    for row in zip(*columns, strict=True) if columns else ():
        writer.writerow(
            [
                safe_csv_cell(_text_cell(v)) if txt else _text_cell(v)
                for v, txt in zip(row, textual, strict=True)
            ]
        )


def _rows(table: pyarrow.Table, kql_types: dict[str, str]) -> Iterator[dict[str, Any]]:
    names = table.column_names
    columns = _plain_columns(table, kql_types)
    for row in zip(*columns, strict=True) if columns else ():
        yield dict(zip(names, row, strict=True))


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _terminal_text(text: str, width: int) -> str:
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _write_table(
    table: pyarrow.Table, kql_types: dict[str, str], sink: IO[str], *, max_width: int = 48
) -> None:
    names = table.column_names
    if not names:
        return
    columns = _plain_columns(table, kql_types)
    cells = [[_terminal_text(_short_time(_text_cell(v)), max_width) for v in col] for col in columns]
    heads = [_terminal_text(n, max_width) for n in names]
    widths = [max([len(h)] + [len(c) for c in col]) for h, col in zip(heads, cells, strict=True)]
    sink.write("  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip() + "\n")
    sink.write("  ".join("-" * w for w in widths) + "\n")
    for row in zip(*cells, strict=True):
        sink.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


_KUSTO_TIME = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)\.\d{7}Z$")


def _short_time(text: str) -> str:
    m = _KUSTO_TIME.match(text)
    return f"{m.group(1)} {m.group(2)}" if m else text


def _open_text(output: str | None) -> tuple[IO[str], bool]:
    if output is None or output == "-":
        return sys.stdout, False
    return open(output, "w", encoding="utf-8", newline=""), True  # noqa: SIM115


def write_result(
    table: pyarrow.Table,
    kql_types: dict[str, str],
    fmt: str,
    output: str | None,
) -> None:
    """Write a result table in ``fmt`` to ``output`` (a path; ``None`` or ``-``: stdout)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        if output is None or output == "-":
            if sys.stdout.isatty():
                raise UsageError("refusing to write Parquet to a terminal; use -o FILE or a pipe")
            sys.stdout.flush()
            pq.write_table(table, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            pq.write_table(table, output)
        return
    sink, close = _open_text(output)
    try:
        if fmt == "csv":
            _write_csv(table, kql_types, sink)
        elif fmt == "json":
            sink.write("[")
            for i, row in enumerate(_rows(table, kql_types)):
                sink.write(("," if i else "") + "\n" + json.dumps(row, ensure_ascii=False))
            sink.write("\n]\n")
        elif fmt == "jsonl":
            for row in _rows(table, kql_types):
                sink.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif fmt == "table":
            _write_table(table, kql_types, sink)
        else:  # pragma: no cover - argparse restricts the choices
            raise UsageError(f"unknown format {fmt!r}")
        sink.flush()
    finally:
        if close:
            sink.close()


# ----------------------------------------------------------------------------------------------
# Inputs


def _parse_now(text: str) -> str:
    from .hunting import _resolve_now

    if text.strip().casefold() == "latest":
        return "latest"
    try:
        _resolve_now(text, {})
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _parse_lookback(text: str) -> timedelta:
    from .rules.model import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= timedelta(0):
        raise argparse.ArgumentTypeError("the lookback must be positive")
    return value


def _parse_rows(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("rows must be >= 0")
    return value


_NAME_EQ = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.+)$", re.S)


def _split_named(spec: str) -> tuple[str | None, str]:
    """``NAME=PATH`` -> (NAME, PATH); a plain path (or an existing file with '=' in its
    name) -> (None, PATH)."""
    m = _NAME_EQ.match(spec)
    if m and not Path(spec).exists():
        return m.group(1), m.group(2)
    return None, spec


def _read_inputs(
    specs: Sequence[str], *, strict: bool, progress: _Progress, stdin_taken: bool = False
) -> dict[str, pyarrow.Table]:
    from .hunting import _concat, _materialize, infer_table, known_tables, read_path

    if sum(1 for s in specs if _split_named(s)[1] == "-") + int(stdin_taken) > 1:
        raise UsageError("standard input ('-') can be used once only")
    parts: dict[str, list[Any]] = {}
    for spec in specs:
        name, path = _split_named(spec)
        if path != "-" and not os.path.exists(path) and not any(ch in path for ch in "*?["):
            raise FileNotFoundError(2, "No such file or directory", path)
        label = "standard input" if path == "-" else path
        size = os.path.getsize(path) if path != "-" and os.path.isfile(path) else None
        progress.status(f"reading {label}" + (f" ({_size(size)})" if size is not None else ""))
        got_name, data = read_path(path, name, strict=strict)
        table = _materialize(got_name or label, data)
        name = got_name or infer_table(table.column_names)
        if name is None:
            raise UsageError(
                f"{label}: cannot tell which table this is from its columns; name it as "
                f"NAME=PATH (one of {', '.join(known_tables())})"
            )
        parts.setdefault(name, []).append(table)
    progress.clear()
    return {name: _concat(name, ps) for name, ps in parts.items()}


def _bundled(names: Sequence[str] | None = None) -> tuple[dict[str, pyarrow.Table], datetime]:
    from .sample import bundled, bundled_now

    return bundled(names), bundled_now()


def _stdin_text() -> str:
    return sys.stdin.read()


# ----------------------------------------------------------------------------------------------
# Commands


def _selection(values: Sequence[str] | None) -> str | None:
    if not values:
        return None
    return ",".join(values)


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of threads, got {text!r}")
    return n


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        help="scan threads (default: $RMMHUNT_THREADS, else one per core)",
    )


def _cmd_hunt(args: argparse.Namespace) -> int:
    from .hunting import _latest, hunt, select_rules

    console = _Console(args.quiet)
    rules = select_rules(_selection(args.rules))  # an unknown rule fails before reading data
    progress = _Progress(sys.stderr, quiet=args.quiet)
    fmt = _format_for(args.format, args.output)
    now: datetime | str | None = args.now
    if args.paths:
        data = _read_inputs(args.paths, strict=args.strict, progress=progress)
    else:
        data, sample_now = _bundled()
        if now is None:
            now = sample_now
        rows = sum(t.num_rows for t in data.values())
        console.note(
            f"no PATH given: hunting the bundled sample data ({rows:,} synthetic events, "
            f"now = {_iso(sample_now) if now is sample_now else now})"
        )
    findings = hunt(
        data,
        rules=rules,
        now=now,
        lookback=args.lookback,
        exclusions=args.exclusions,
        threads=args.threads,
        progress=progress,
    )
    progress.clear()
    if findings.rules_run == 0:
        reasons = "; ".join(sorted({s.reason for s in findings.skipped})) or "no rules selected"
        raise UsageError(f"no selected rule could run: {reasons}")
    table = findings.to_arrow() if fmt != "table" else _findings_view(findings)
    write_result(table, findings.kql_types, fmt, args.output)
    if not args.quiet:
        _hunt_summary(findings, data, console)
        if len(findings) == 0:
            _stale_hint(findings, _latest(data), console)
    if args.fail_on_match and len(findings) > 0:
        return EXIT_FINDINGS
    return EXIT_OK


def _iso(value: datetime) -> str:
    from .hunting import _iso as iso

    return iso(value)


def _findings_view(findings: Findings) -> pyarrow.Table:
    """The columns of the findings that fit a terminal: tool, kind, device, user, URL, times,
    count (the account column is whichever the rule grouped by)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = findings.to_arrow()
    cols: dict[str, Any] = {"tool": t.column("tool"), "kind": t.column("kind")}
    if "DeviceName" in t.column_names:
        cols["DeviceName"] = t.column("DeviceName")
    users = [c for c in ("AccountUpn", "InitiatingProcessAccountUpn") if c in t.column_names]
    if users:
        user = t.column(users[0])
        for other in users[1:]:
            user = pc.coalesce(user, t.column(other))
        if user.null_count < len(user):
            cols["User"] = user
    for extra in ("RemoteUrl", "InitiatingProcessFileName"):
        if extra in t.column_names and t.column(extra).null_count < t.num_rows:
            cols[extra] = t.column(extra)
    for c in ("FirstSeen", "LastSeen", "Count"):
        if c in t.column_names:
            cols[c] = t.column(c)
    return pa.table(cols)


def _hunt_summary(findings: Findings, data: dict[str, pyarrow.Table], console: _Console) -> None:
    tables = ", ".join(f"{name} ({t.num_rows:,} rows)" for name, t in data.items())
    console.note(
        f"{findings.rules_run} rules over {tables} in {findings.elapsed:.1f} s: "
        f"{_plural(len(findings), 'finding')} on {_plural(len(findings.devices), 'device')} from "
        f"{_plural(len(findings.tools), 'tool')}"
    )
    absent: dict[str, int] = {}
    others = []
    for s in findings.skipped:
        m = re.match(r"^no (\S+) data given$", s.reason)
        if m:
            absent[m.group(1)] = absent.get(m.group(1), 0) + 1
        else:
            others.append(s)
    for table, n in absent.items():
        console.note(f"skipped {n} rule(s) for {table}: no {table} data given")
    for s in others[:10]:
        console.note(f"skipped {s.rule_name}: {s.reason}")
    if len(others) > 10:
        console.note(f"... and {len(others) - 10} more skipped rules")
    if findings.suppressed:
        verb = "would suppress" if findings.exclusions == "annotate" else "suppressed"
        console.note(f"exclusions {verb} {findings.suppressed} events")
        for rid, report in findings.suppression.items():
            for sc in report:
                if sc.events:
                    console.note(f"  {findings.stats[rid].rule_name}: {sc.scenario}: {sc.events} events")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _stale_hint(findings: Findings, latest: datetime | None, console: _Console) -> None:
    window = findings.lookback or timedelta(days=5)
    if latest is not None and latest < findings.now - window:
        console.note(
            f"note: the newest event ({_iso(latest)}) is older than the rules' window before now "
            f"({_iso(findings.now)}); to hunt as of the data, pass --now latest"
        )


def _cmd_query(args: argparse.Namespace) -> int:
    from . import _rmmhunt
    from ._result import Result
    from .hunting import _iso as iso
    from .hunting import _resolve_now

    console = _Console(args.quiet)
    progress = _Progress(sys.stderr, quiet=args.quiet)
    kql = _stdin_text() if args.kql == "-" else args.kql
    if not kql.strip():
        raise UsageError("empty query")
    parsed = _rmmhunt.parse(kql)
    data = _read_inputs(args.table or [], strict=args.strict, progress=progress, stdin_taken=args.kql == "-")
    now: str | None = args.now
    if not args.table:
        from .sample import TABLES

        wanted = [t for t in dict.fromkeys(parsed.tables) if t in TABLES]
        if wanted:
            data, sample_now = _bundled(wanted)
            if now is None:
                now = iso(sample_now)
            console.note(
                f"no --table given: querying the bundled sample data ({', '.join(wanted)}; now = {now})"
            )
    if now is not None:
        now = iso(_resolve_now(now, data))
    progress.status("running the query")
    table, types = _rmmhunt.query(kql, data, now, args.threads)
    result = Result(table, types)
    progress.clear()
    fmt = _format_for(args.format, args.output)
    write_result(result.to_arrow(), result.kql_types, fmt, args.output)
    console.note(_plural(len(result), "row"))
    return EXIT_OK


def _rules_table(rules: Sequence[Rule]) -> pyarrow.Table:
    import pyarrow as pa

    from .hunting import rule_info

    rows = []
    for r in rules:
        info = rule_info(r)
        x = r.extra.get("x_rmmhunt")
        provenance = x.get("provenance") if isinstance(x, dict) else None
        rows.append(
            {
                "id": r.id,
                "tool": info.tool,
                "kind": info.kind,
                "table": info.table,
                "provenance": provenance or "rmmhunt",
                "scenarios": len(r.false_positives),
                "name": r.name,
            }
        )
    schema = pa.schema(
        [(n, pa.string()) for n in ("id", "tool", "kind", "table", "provenance")]
        + [("scenarios", pa.int64()), ("name", pa.string())]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def _cmd_rules(args: argparse.Namespace) -> int:
    from .hunting import select_rules

    action = args.action or "list"
    if action == "show":
        if not args.target:
            raise UsageError("rules show needs a rule id, name or file name")
        rule = _one_rule(args.target)
        sink, close = _open_text(args.output)
        try:
            sink.write(rule.to_yaml())
        finally:
            if close:
                sink.close()
        return EXIT_OK
    rules = select_rules(args.target)
    table = _rules_table(rules)
    fmt = _format_for(args.format, args.output)
    if fmt == "table":
        table = table.drop_columns(["name"])
    write_result(table, {}, fmt, args.output)
    _Console(args.quiet).note(_plural(len(rules), "rule"))
    return EXIT_OK


def _one_rule(spec: str) -> Rule:
    from .hunting import select_rules
    from .rules import Rule, load
    from .rules.errors import UnknownRuleError

    if Path(spec).is_file():
        loaded = load(spec)
        if isinstance(loaded, Rule):
            return loaded
        raise UsageError(f"{spec} holds {len(loaded)} rules; name one")
    rules = select_rules(spec)
    if len(rules) != 1:
        names = "; ".join(f"{r.id} ({r.name})" for r in rules[:8])
        more = f"; and {len(rules) - 8} more" if len(rules) > 8 else ""
        raise UnknownRuleError(f"{spec!r} names {len(rules)} rules, give one id: {names}{more}")
    return rules[0]


def _cmd_export(args: argparse.Namespace) -> int:
    rule = _one_rule(args.rule)
    exclusions = not args.no_exclusions
    if args.format == "kql":
        text = rule.to_kql(exclusions)
    elif args.format == "yaml":
        text = rule.to_sentinel_yaml("hunting", exclusions=exclusions)
    elif args.format == "scheduled-yaml":
        text = rule.to_sentinel_yaml("scheduled", exclusions=exclusions)
    else:
        text = rule.to_arm(exclusions=exclusions)
    if not text.endswith("\n"):
        text += "\n"
    sink, close = _open_text(args.output)
    try:
        sink.write(text)
    finally:
        if close:
            sink.close()
    return EXIT_OK


def _cmd_sample(args: argparse.Namespace) -> int:
    from .sample import write_sample

    progress = _Progress(sys.stderr, quiet=args.quiet, delay=0.0)
    progress.status(f"generating {args.rows:,} rows of {args.table}")
    write_sample(args.output, args.table, args.rows, args.seed, args.format)
    progress.clear()
    if args.output != "-":
        _Console(args.quiet).note(f"wrote {args.rows:,} rows of {args.table} to {args.output}")
    return EXIT_OK


# ----------------------------------------------------------------------------------------------
# The parser


def _exit_code_text() -> str:
    return "exit codes:\n" + "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES.items())


_DESCRIPTION = "Run Microsoft Sentinel / Defender hunting KQL over local data: the RMM rule pack, any query."


def _version() -> str:
    from . import _rmmhunt

    return f"rmmhunt {_rmmhunt.__version__}"


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _add_output(p: argparse.ArgumentParser, formats: Sequence[str] = FORMATS) -> None:
    p.add_argument(
        "--format",
        choices=formats,
        help="output format (default: from -o's extension, else table)",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")


def _add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no progress or summary on stderr (errors still)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``rmmhunt`` argument parser."""
    from .sample import TABLES

    parser = argparse.ArgumentParser(
        prog="rmmhunt",
        description=_DESCRIPTION,
        epilog=_exit_code_text(),
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    h = sub.add_parser(
        "hunt",
        help="run the rule pack over Defender data (default: the bundled sample)",
        description=(
            "Run the RMM rule pack (the founding ConnectWise rule and every pack rule) over "
            "Defender tables and print one findings table. Tables are named from the file "
            "(content or file name) or its columns, or given as NAME=PATH. With no PATH, hunts "
            "the bundled sample data."
        ),
        epilog=_exit_code_text(),
        formatter_class=_Formatter,
    )
    h.add_argument(
        "paths", nargs="*", metavar="PATH", help="data files ('-': stdin; NAME=PATH names the table)"
    )
    h.add_argument(
        "--rules",
        action="append",
        metavar="ID|TOOL|all",
        help="rules to run: id, name, tool, kind (createproc, filesig, netconn), table or all; "
        "comma-separated or repeated (default: all)",
    )
    h.add_argument(
        "--now",
        type=_parse_now,
        metavar="T",
        help="freeze now() at T (ISO 8601, e.g. 2024-06-06T00:00:00Z; 'latest': the newest "
        "Timestamp in the data; default: the current time, or the sample's end with no PATH)",
    )
    _add_threads(h)
    h.add_argument(
        "--lookback", type=_parse_lookback, metavar="SPAN", help="replace the rules' window, e.g. 5d, 12h"
    )
    h.add_argument(
        "--exclusions",
        choices=("apply", "annotate", "off"),
        default="apply",
        help="false-positive exclusions: drop and count (apply, default), count per finding "
        "(annotate), or run the queries as published (off)",
    )
    _add_output(h)
    h.add_argument("--fail-on-match", action="store_true", help="exit with 1 when there are findings")
    h.add_argument("--strict", action="store_true", help="treat bad input rows as an error")
    _add_quiet(h)
    h.set_defaults(func=_cmd_hunt)

    q = sub.add_parser(
        "query",
        help="run any KQL query over local data",
        description=(
            "Run a KQL query. Tables come from --table NAME=PATH (or PATH, named from the file); "
            "with no --table, the Defender tables the query reads come from the bundled sample."
        ),
        epilog=_exit_code_text(),
        formatter_class=_Formatter,
    )
    q.add_argument("kql", metavar="KQL", help="the query ('-': read it from stdin)")
    q.add_argument("--table", action="append", metavar="NAME=PATH", help="a table (repeatable)")
    q.add_argument("--now", type=_parse_now, metavar="T", help="freeze now() at T (ISO 8601, or 'latest')")
    _add_threads(q)
    _add_output(q)
    q.add_argument("--strict", action="store_true", help="treat bad input rows as an error")
    _add_quiet(q)
    q.set_defaults(func=_cmd_query)

    r = sub.add_parser(
        "rules",
        help="list the bundled rules, or show one as YAML",
        description="rules [list [SELECTION]] | rules show ID",
        formatter_class=_Formatter,
    )
    r.add_argument("action", nargs="?", choices=("list", "show"), help="list (default) or show")
    r.add_argument(
        "target", nargs="?", metavar="ID", help="list: a selection as for hunt --rules; show: a rule"
    )
    _add_output(r, ("table", "csv", "json", "jsonl"))
    _add_quiet(r)
    r.set_defaults(func=_cmd_rules)

    e = sub.add_parser(
        "export",
        help="export a rule to Sentinel (KQL, YAML, ARM)",
        description=(
            "Print a rule for Sentinel with its false-positive exclusions folded in: KQL, a "
            "hunting query YAML, a scheduled analytics rule YAML, or an ARM template. RULE is a "
            "bundled rule's id, name or file name, or a rule YAML file."
        ),
        formatter_class=_Formatter,
    )
    e.add_argument("rule", metavar="RULE")
    e.add_argument("--format", choices=("kql", "yaml", "scheduled-yaml", "arm"), default="kql")
    e.add_argument("--no-exclusions", action="store_true", help="the query as written, without exclusions")
    e.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    e.set_defaults(func=_cmd_export)

    s = sub.add_parser(
        "sample",
        help="generate synthetic Defender data with planted RMM events",
        description="Write deterministic synthetic data for one Defender table (parquet, csv or jsonl).",
        formatter_class=_Formatter,
    )
    s.add_argument("--rows", type=_parse_rows, default=10_000, metavar="N", help="rows (default 10000)")
    s.add_argument(
        "--table",
        choices=TABLES,
        default="DeviceProcessEvents",
        metavar="NAME",
        help=f"one of {', '.join(TABLES)} (default DeviceProcessEvents)",
    )
    s.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="output file (.parquet, .csv, .jsonl; '-': jsonl on stdout)",
    )
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--format", choices=("parquet", "csv", "jsonl"), help="default: from the extension")
    _add_quiet(s)
    s.set_defaults(func=_cmd_sample)
    return parser


# ----------------------------------------------------------------------------------------------
# Entry point


def _error(text: str) -> None:
    print(f"rmmhunt: error: {text}", file=sys.stderr)


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    notes = getattr(exc, "__notes__", None) or []
    return "\n".join([text, *(f"  ({n})" for n in notes)])


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return func(args)
    except KeyboardInterrupt:
        print("\nrmmhunt: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (`| head`): stop quietly.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass
        return EXIT_OK
    except InternalError as exc:
        _error(f"internal error (a bug in rmmhunt, please report it):\n{_message(exc)}")
        return EXIT_INTERNAL
    except (RmmhuntError, OSError, ValueError) as exc:
        _error(_message(exc))
        return EXIT_ERROR
    except Exception:
        _error("internal error (a bug in rmmhunt, please report it with this traceback):")
        traceback.print_exc()
        return EXIT_INTERNAL
    except BaseException as exc:  # a Rust panic (pyo3 PanicException) derives from BaseException
        if isinstance(exc, SystemExit):
            raise
        _error("internal error (a bug in rmmhunt, please report it with this traceback):")
        traceback.print_exc()
        return EXIT_INTERNAL


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rmmhunt`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit
    code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    code: int = _run(args.func, args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
