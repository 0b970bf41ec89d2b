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
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from dataclasses import field as _field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import DataError, InternalError, RmmhuntError

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
_RULES_FORMATS = ("table", "csv", "json", "jsonl")
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


_COMPRESSED = (".gz", ".gzip", ".bz2", ".xz", ".zst", ".zstd", ".zip", ".7z", ".lz4")


def _refuse_compressed(output: str, suffix: str) -> None:
    """-o FILE.gz (and the like) is a usage error: rmmhunt writes no compressed files, and a
    plain file under that name would mislead whatever reads it next."""
    if suffix in _COMPRESSED:
        raise UsageError(
            f"-o {output}: rmmhunt does not write compressed files; write {Path(output).stem} "
            "and compress it afterwards"
        )


def _format_for(fmt: str | None, output: str | None, formats: Sequence[str] = FORMATS) -> str:
    """The output format: ``--format``, else -o FILE's extension (none: table), else table.
    An extension that names no format (or a compression rmmhunt does not write) is an error
    rather than a text table under a misleading name."""
    if output is None or output == "-":
        return fmt or "table"
    suffix = Path(output).suffix.lower()
    _refuse_compressed(output, suffix)
    if fmt:
        return fmt
    if not suffix:
        return "table"
    known = {s: f for s, f in _SUFFIX_FORMATS.items() if f in formats}
    if suffix not in known:
        raise UsageError(
            f"-o {output}: cannot tell the output format from the extension {suffix!r}; use "
            f"{', '.join(known)}, or pass --format {'|'.join(formats)}"
        )
    return known[suffix]


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
    if value // timedelta(microseconds=1) * 10 > _MAX_TICKS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is longer than the longest KQL timespan ({_MAX_LOOKBACK_DAYS:,} days)"
        )
    return value


_MAX_TICKS = 2**63 - 1  # a KQL timespan is a signed 64-bit count of 100 ns ticks
_MAX_LOOKBACK_DAYS = _MAX_TICKS // (86_400 * 10_000_000)


def _parse_zone(text: str) -> str:
    """A time zone for --timezone: an IANA name or a UTC offset (the reader checks it again)."""
    value = text.strip()
    if re.fullmatch(r"(?i)(utc|gmt)?([+-]\d{1,2}(:?\d\d)?)?|z|etc/utc", value) and value:
        return value
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        if zoneinfo.available_timezones():  # with no zone database here, leave it to the reader
            raise argparse.ArgumentTypeError(
                f"unknown time zone {text!r}: give an IANA name such as Europe/Berlin or an offset "
                "such as +02:00"
            ) from None
    return value


def _parse_rows(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"rows must be a positive number, not {text!r}")
    return value


_NAME_EQ = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.+)$", re.S)


def _split_named(spec: str) -> tuple[str | None, str]:
    """``NAME=PATH`` -> (NAME, PATH); a plain path (or an existing file with '=' in its
    name) -> (None, PATH)."""
    m = _NAME_EQ.match(spec)
    if m and not Path(spec).exists():
        return m.group(1), m.group(2)
    return None, spec


@dataclass
class _Read:
    """One table read from one input argument, with what the reader said about it."""

    name: str | None
    table: pyarrow.Table
    label: str
    reports: list[dict[str, Any]] = _field(default_factory=list)
    notes: list[str] = _field(default_factory=list)


class _InputIssues:
    """What the reader could not read, gathered over every input: warnings for stderr, and
    the problems that make an input unusable (an empty file, a needed column with no readable
    value)."""

    def __init__(self, how_to_name: str) -> None:
        self.how_to_name = how_to_name
        self.warnings: list[str] = []
        self.notes: list[str] = []
        self.unusable: list[str] = []
        self.bad_rows = 0
        self.read: set[tuple[str, str]] = set()  # (file, table) pairs read
        self.not_read: dict[str, dict[str, int]] = {}  # file -> rows of other tables left out

    def cli_text(self, text: str) -> str:
        """A reader message with its Python-API advice replaced by the command line's."""
        how = self.how_to_name
        text = text.replace("give the table name (table=... / --table NAME=PATH)", f"name it as {how}")
        text = text.replace("give the table name to read them", f"name them as {self.how_to_name}")
        text = re.sub(r"\(table=(\w+) was asked for\)", r"(the input was named \1)", text)
        return re.sub(
            r"pass timezone=\.\.\.,? e\.g\. \"([^\"]+)\"", r"pass --timezone ZONE, e.g. --timezone \1", text
        )

    def add(self, read: _Read, needed: set[str] | None, relabel: Callable[[str], str]) -> None:
        for note in read.notes:
            if "the table whose documented columns it has" in note:
                continue  # the summary names the table
            if "rows of other tables are not read" in note:
                continue  # reported per file below
            text = self.cli_text(relabel(note))
            if "empty file" in note:
                self.warnings.append(text)
            else:
                self.notes.append(text)
        offset = 0
        sliced = sum(int(r.get("rows") or 0) for r in read.reports) == read.table.num_rows
        for report in read.reports:
            path = relabel(str(report.get("path", read.label)))
            rows = int(report.get("rows") or 0)
            part = read.table.slice(offset, rows) if sliced else read.table
            offset += rows
            self._report(path, report, part, needed)
        if not read.reports and read.table.num_rows == 0 and any("empty file" in n for n in read.notes):
            self.unusable.append(f"{read.label}: no data: every file is empty")

    def _report(
        self, path: str, report: dict[str, Any], part: pyarrow.Table, needed: set[str] | None
    ) -> None:
        bad = int(report.get("bad_rows") or 0)
        dropped = int(report.get("dropped_rows") or 0)
        rows = int(report.get("rows") or 0)
        examples: list[dict[str, Any]] = list(report.get("examples") or [])
        if bad:
            self.bad_rows += bad
            kept = bad - dropped
            how = ", ".join(
                x for x in (f"{dropped:,} dropped" if dropped else "", _kept_text(kept, examples)) if x
            )
            text = f"{path}: {bad:,} bad {'row' if bad == 1 else 'rows'} of {rows + dropped:,} ({how})"
            if examples:
                text += f"; first: {_example_text(examples[0])}"
            self.warnings.append(text)
        for warning in report.get("warnings") or []:
            self.warnings.append(f"{path}: {self.cli_text(str(warning))}")
        self.read.add((path, str(report.get("table"))))
        for other, n in (report.get("other_tables") or {}).items():
            self.not_read.setdefault(path, {})[str(other)] = int(n)
        # A column whose every value was unreadable is as good as missing.
        if part.num_rows == 0:
            return
        nulled = {
            str(x["column"])
            for x in examples
            if x.get("kept") and x.get("column") and not str(x.get("reason", "")).startswith("invalid UTF-8")
        }
        if "Timestamp" in part.column_names:
            nulled.add("Timestamp")  # Defender rows always have one; the rules' window needs it
        for column in sorted(nulled):
            if column not in part.column_names or part.column(column).null_count < part.num_rows:
                continue
            text = f"{path}: column {column} has no readable value in its {_plural(part.num_rows, 'row')}"
            if needed is not None and column in needed:
                self.unusable.append(f"{text}, and the rules need it")
            else:
                self.warnings.append(f"{text}; anything computed from it is empty")

    def show(self, console: _Console) -> None:
        for text in self.warnings:
            console.note(f"warning: {text}")
        for text in self.notes:
            console.note(f"note: {text}")
        for path, others in self.not_read.items():
            left = [f"{t} ({_plural(n, 'row')})" for t, n in others.items() if (path, t) not in self.read]
            if left:
                console.note(f"note: {path}: rows of other tables not read: {', '.join(left)}")
        if self.bad_rows:
            console.note("note: --strict makes a bad input row an error")

    def check(self) -> None:
        if self.unusable:
            raise DataError("; ".join(self.unusable) + " (fix or re-export the data)")


def _kept_text(kept: int, examples: Sequence[dict[str, Any]]) -> str:
    """How the rows with bad values were kept, told from the examples' reasons."""
    if not kept:
        return ""
    reasons = [str(x.get("reason", "")) for x in examples if x.get("kept")]
    replaced = any(r.startswith("invalid UTF-8") for r in reasons)
    nulled = any(not r.startswith("invalid UTF-8") for r in reasons)
    if replaced and not nulled:
        return f"{kept:,} kept with invalid UTF-8 replaced by U+FFFD"
    if nulled and not replaced:
        return f"{kept:,} kept with the bad values made null"
    return f"{kept:,} kept with the bad values made null or replaced"


def _example_text(example: dict[str, Any]) -> str:
    """``line 3, column FileSize: not a long ("2.0")`` from a reader report example."""
    where = f"line {example['line']}" if example.get("line") else f"row {example.get('row')}"
    if example.get("column"):
        where += f", column {example['column']}"
    value = example.get("value")
    shown = "" if value is None else f" ({_terminal_text(json.dumps(str(value), ensure_ascii=False), 80)})"
    return f"{where}: {example.get('reason')}{shown}"


def _reader() -> Any | None:
    """``rmmhunt.io`` when this build has the file readers, else ``None``."""
    from .hunting import _io_read

    if _io_read() is None:
        return None
    from . import io as rmmhunt_io

    return rmmhunt_io


def _read_files(
    path: str, name: str | None, *, strict: bool, zone: str | None, label: str, issues: _InputIssues
) -> list[_Read]:
    from .hunting import _materialize, _table_from_file_name

    rmmhunt_io = _reader()
    assert rmmhunt_io is not None
    hint = name or _table_from_file_name(path)
    try:
        if hint is not None:
            found = [(hint, rmmhunt_io.read(path, hint, strict=strict, timezone=zone))]
        else:  # every table the files hold (a Streaming API export can carry several)
            found = list(rmmhunt_io.read_tables(path, strict=strict, timezone=zone).items())
        out = []
        for table_name, file_table in found:
            table = _materialize(table_name, file_table)
            out.append(_Read(table_name, table, label, file_table.report(), file_table.notes))
    except DataError as exc:
        raise DataError(issues.cli_text(str(exc))) from None
    return out


def _read_one(
    path: str, name: str | None, *, strict: bool, zone: str | None, issues: _InputIssues
) -> tuple[list[_Read], Callable[[str], str]]:
    """The tables of one input argument, and how to show the file names the reader used."""
    from .hunting import _materialize, _stdin_suffix, read_path

    label = "standard input" if path == "-" else path
    if _reader() is None:  # a build without the CSV/JSON readers: Parquet through pyarrow
        if zone is not None:
            raise UsageError(
                "--timezone needs the CSV/JSON readers (rmmhunt.io), not installed in this build"
            )
        got, data = read_path(path, name, strict=strict)
        return [_Read(got, _materialize(got or label, data), label)], str
    if path == "-":
        payload = sys.stdin.buffer.read()
        if not payload:
            raise DataError("standard input is empty: there is no data to read")
        with tempfile.TemporaryDirectory(prefix="rmmhunt-stdin-") as tmp:
            spool = Path(tmp) / f"stdin{_stdin_suffix(payload[:64])}"
            spool.write_bytes(payload)
            reads = _read_files(str(spool), name, strict=strict, zone=zone, label=label, issues=issues)
        return reads, lambda text: text.replace(str(spool), label)
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise DataError(f"{path}: the file is empty (0 bytes): there is no data to read")
    return _read_files(path, name, strict=strict, zone=zone, label=label, issues=issues), str


def _read_inputs(
    specs: Sequence[str],
    *,
    strict: bool,
    progress: _Progress,
    console: _Console,
    zone: str | None = None,
    stdin_taken: bool = False,
    needed: Callable[[str], set[str]] | None = None,
    how_to_name: str = "NAME=PATH",
) -> dict[str, pyarrow.Table]:
    """Read the input arguments as {table name: table}. Prints what the reader could not read
    (unless quiet) and raises :class:`DataError` for an input that cannot be used: an empty
    file, or a column in ``needed(table)`` of which no value could be read (``needed`` None:
    such columns are a warning only)."""
    from .hunting import _concat, infer_table, known_tables

    if sum(1 for s in specs if _split_named(s)[1] == "-") + int(stdin_taken) > 1:
        raise UsageError("standard input ('-') can be used once only")
    issues = _InputIssues(how_to_name)
    parts: dict[str, list[Any]] = {}
    for spec in specs:
        name, path = _split_named(spec)
        if path != "-" and not os.path.exists(path) and not any(ch in path for ch in "*?["):
            raise FileNotFoundError(2, "No such file or directory", path)
        label = "standard input" if path == "-" else path
        size = os.path.getsize(path) if path != "-" and os.path.isfile(path) else None
        progress.status(f"reading {label}" + (f" ({_size(size)})" if size is not None else ""))
        reads, relabel = _read_one(path, name, strict=strict, zone=zone, issues=issues)
        for read in reads:
            table_name = read.name or infer_table(read.table.column_names)
            if table_name is None:
                raise UsageError(
                    f"{label}: cannot tell which table this is from its columns; name it as "
                    f"{how_to_name} (one of {', '.join(known_tables())})"
                )
            issues.add(read, needed(table_name) if needed is not None else None, relabel)
            parts.setdefault(table_name, []).append(read.table)
    progress.clear()
    issues.show(console)
    issues.check()
    return {name: _concat(name, ps) for name, ps in parts.items()}


def _bundled(names: Sequence[str] | None = None) -> tuple[dict[str, pyarrow.Table], datetime]:
    from .sample import bundled, bundled_now

    return bundled(names), bundled_now()


def _stdin_text() -> str:
    """The query text on standard input: UTF-8 (a byte order mark is dropped; UTF-16 with its
    byte order mark is read too), else the console's encoding."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        return _without_bom(sys.stdin.read())
    raw: bytes = buffer.read()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _without_bom(raw.decode("utf-16"))
    try:
        return _without_bom(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return _without_bom(raw.decode(sys.stdin.encoding or "utf-8", errors="replace"))


def _without_bom(text: str) -> str:
    """KQL text without a leading byte order mark (Notepad and PowerShell 5.1 write one)."""
    return text[1:] if text.startswith("\ufeff") else text


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


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _rule_columns(rules: Sequence[Rule]) -> Callable[[str], set[str]]:
    """Table name -> the names the rules for that table mention (their columns among them),
    exclusions included."""
    from .hunting import rule_info

    words: dict[str, set[str]] = {}
    for rule in rules:
        words.setdefault(rule_info(rule).table, set()).update(_WORD.findall(rule.to_kql(True)))
    return lambda table: words.get(table, set())


def _cmd_hunt(args: argparse.Namespace) -> int:
    from .hunting import _latest, hunt, select_rules

    console = _Console(args.quiet)
    rules = select_rules(_selection(args.rules))  # an unknown rule fails before reading data
    progress = _Progress(sys.stderr, quiet=args.quiet)
    fmt = _format_for(args.format, args.output)
    now: datetime | str | None = args.now
    if args.paths:
        data = _read_inputs(
            args.paths,
            strict=args.strict,
            progress=progress,
            console=console,
            zone=args.timezone,
            needed=_rule_columns(rules),
        )
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
    if args.kql == "-" and any(_split_named(s)[1] == "-" for s in args.table or []):
        # Checked before stdin is read: the query would swallow the table's rows and
        # report them as a KQL syntax error.
        raise UsageError("standard input ('-') can be used once only: for the query or for one --table")
    kql = _stdin_text() if args.kql == "-" else _without_bom(args.kql)
    if not kql.strip():
        raise UsageError("empty query")
    parsed = _rmmhunt.parse(kql)
    data = _read_inputs(
        args.table or [],
        strict=args.strict,
        progress=progress,
        console=console,
        zone=args.timezone,
        stdin_taken=args.kql == "-",
        how_to_name="--table NAME=PATH",
    )
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


_SAMPLE_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".json": "jsonl",
                    ".jsonl": "jsonl", ".ndjson": "jsonl"}


def _sample_format(output: str, fmt: str | None) -> str:
    """--format, else -o FILE's extension (none, or '-': jsonl)."""
    suffix = "" if output == "-" else Path(output).suffix.lower()
    _refuse_compressed(output, suffix)
    if fmt:
        return fmt
    if not suffix:
        return "jsonl"
    if suffix not in _SAMPLE_SUFFIXES:
        raise UsageError(
            f"-o {output}: cannot tell the format from the extension {suffix!r}; use .parquet, "
            ".csv or .jsonl, or pass --format parquet|csv|jsonl"
        )
    return _SAMPLE_SUFFIXES[suffix]


def _cmd_sample(args: argparse.Namespace) -> int:
    from .sample import write_sample

    fmt = _sample_format(args.output, args.format)
    progress = _Progress(sys.stderr, quiet=args.quiet, delay=0.0)
    progress.status(f"generating {args.rows:,} rows of {args.table}")
    try:
        write_sample(args.output, args.table, args.rows, args.seed, fmt)
    except ValueError as exc:
        m = re.match(r"rows=\d+ is too small for (?:the )?(\d+) planted/decoy rows", str(exc))
        if m is None:
            raise
        n = int(m.group(1))
        raise UsageError(
            f"--rows {args.rows:,} is too small: the {args.table} sample holds {n:,} planted and "
            f"decoy events; pass --rows {n} or more"
        ) from None
    finally:
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


def _add_timezone(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--timezone",
        type=_parse_zone,
        metavar="ZONE",
        help='the zone of "[Local Time]" columns in Log Analytics CSV exports: an IANA name '
        "(Europe/Berlin) or an offset (+02:00); default UTC, with a warning",
    )


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
    _add_timezone(h)
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
    _add_timezone(q)
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
    _add_output(r, _RULES_FORMATS)
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
    s.add_argument(
        "--rows",
        type=_parse_rows,
        default=10_000,
        metavar="N",
        help="rows (default 10000; at least the table's planted and decoy events, a few hundred)",
    )
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
