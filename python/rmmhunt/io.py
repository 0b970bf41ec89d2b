"""Reading Defender data from files: ``rmmhunt.read(path, table=None)``.

Parquet, CSV (including the Log Analytics portal's "Export to CSV") and JSON (the Advanced
Hunting and Graph ``runHuntingQuery`` responses, the Streaming API / storage-account export,
JSON Lines), plain or gzip-compressed; a path may be a file, a directory (read recursively)
or a glob pattern, or a list of those.

The result is a lazy :class:`FileTable`: nothing is loaded until a query scans it, and then
only the columns the query reads (Parquet row groups outside the query's time window are
skipped). Pass it wherever rmmhunt takes a table::

    procs = rmmhunt.read("exports/DeviceProcessEvents/*.json.gz")
    rmmhunt.query("DeviceProcessEvents | take 10", tables={"DeviceProcessEvents": procs})

Values that do not fit their column's type (an unreadable time, text in a number column)
become null and are counted; broken rows are dropped and counted. ``report()`` lists them
per file with the first few examples and their line numbers; ``strict=True`` makes the
first one an error instead. Nothing is dropped silently.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import _rmmhunt
from ._arrow import to_pyarrow_table
from .errors import DataError

if TYPE_CHECKING:
    import pyarrow

__all__ = ["FileTable", "read", "read_tables"]

PathArg = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


class FileTable:
    """Files holding one table, read lazily each time a query scans them.

    ``table`` is the table's name, ``paths`` the files, ``columns`` the column names and
    Kusto types, ``report()`` the bad-row report of each file. Exports Arrow through the
    PyCapsule interface (``pyarrow.table(t)`` reads every row).
    """

    __slots__ = ("_inner",)

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @property
    def table(self) -> str:
        """The table's name, e.g. ``DeviceProcessEvents``."""
        return str(self._inner.table)

    @property
    def paths(self) -> list[str]:
        """The files read, in reading order."""
        return list(self._inner.paths)

    @property
    def columns(self) -> dict[str, str]:
        """Column name -> Kusto type (``datetime``, ``string``, ``long``...), in order."""
        return dict(self._inner.columns)

    @property
    def notes(self) -> list[str]:
        """Notes about the files as a whole: files skipped in a directory, files or rows
        holding other tables."""
        return list(self._inner.notes)

    @property
    def strict(self) -> bool:
        """Whether bad rows are errors."""
        return bool(self._inner.strict)

    def report(self) -> list[dict[str, Any]]:
        """One dict per file: ``path``, ``format``, ``table``, ``rows`` (rows read),
        ``bad_rows`` (rows with a problem, kept with a null or dropped), ``dropped_rows``,
        ``examples`` (the first five problems, each with ``line``, ``row``, ``column``,
        ``value``, ``reason``, ``kept``), ``warnings``, ``other_tables`` (rows of other tables
        in the file, not read here) and ``text`` (all of it, readable).

        Files that no query has read to the end yet are read once for it."""
        return list(self._inner.report())

    def to_arrow(self) -> pyarrow.Table:
        """All rows as a pyarrow Table, typed as the engine types them (datetimes as
        ``timestamp[ns, UTC]``, each field tagged with its Kusto type)."""
        return to_pyarrow_table(self._inner.to_arrow())

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self._inner.to_arrow().__arrow_c_stream__(requested_schema)

    def __repr__(self) -> str:
        paths = self.paths
        where = paths[0] if len(paths) == 1 else f"{len(paths)} files"
        return f"<rmmhunt.FileTable {self.table} from {where}>"


def _path_list(path: PathArg) -> list[str]:
    if isinstance(path, (str, os.PathLike)):
        return [os.fspath(path)]
    if isinstance(path, Sequence):
        return [os.fspath(p) for p in path]
    raise TypeError(f"path must be a str, a path or a list of them, not {type(path).__name__}")


def _zone_text(timezone: str | _dt.tzinfo | None) -> str | None:
    """An IANA name or an offset such as ``+02:00``, from text, ``zoneinfo.ZoneInfo`` or
    ``datetime.timezone``."""
    if timezone is None or isinstance(timezone, str):
        return timezone
    key = getattr(timezone, "key", None)
    if isinstance(key, str):
        return key
    if isinstance(timezone, _dt.timezone):
        offset = timezone.utcoffset(None)
        minutes = int(offset.total_seconds() // 60)
        sign = "-" if minutes < 0 else "+"
        return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    raise TypeError(
        'timezone must be an IANA name ("Europe/Berlin"), an offset ("+02:00"), '
        f"a zoneinfo.ZoneInfo or a datetime.timezone, not {type(timezone).__name__}"
    )


def _read(
    path: PathArg,
    table: str | None,
    strict: bool,
    timezone: str | _dt.tzinfo | None,
    format: str | None,
) -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = _rmmhunt.read(
        _path_list(path), table, strict, _zone_text(timezone), format
    )
    return pairs


def read(
    path: PathArg,
    table: str | None = None,
    *,
    strict: bool = False,
    timezone: str | _dt.tzinfo | None = None,
    format: str | None = None,
) -> FileTable:
    """Read Defender data from files, directories or glob patterns, lazily.

    ``table`` names the table where the content does not (Streaming API records carry it in
    ``category``, portal CSV exports in their ``Type`` column, and files named after a
    Defender table, like ``DeviceProcessEvents.parquet``, by their name); with it, only that
    table's rows are read. ``strict=True`` turns bad rows into a :class:`DataError` naming
    file and line. ``timezone`` is the zone of ``[Local Time]`` columns in Log Analytics
    exports (default UTC, with a warning in the report). ``format`` (``parquet``, ``csv``,
    ``tsv``, ``json``) overrides sniffing the content.

    Raises :class:`DataError` for unreadable, truncated or corrupt files, for files whose
    table cannot be told, and when the files hold several tables and ``table`` is not given
    (use :func:`read_tables` then).
    """
    pairs = _read(path, table, strict, timezone, format)
    if len(pairs) != 1:
        names = ", ".join(name for name, _ in pairs)
        raise DataError(
            f"{_path_list(path)}: the files hold rows of several tables ({names}); "
            "pass table=... or use rmmhunt.read_tables()"
        )
    return FileTable(pairs[0][1])


def read_tables(
    path: PathArg,
    *,
    strict: bool = False,
    timezone: str | _dt.tzinfo | None = None,
    format: str | None = None,
) -> dict[str, FileTable]:
    """Like :func:`read`, for files holding several tables (a directory of Streaming API
    exports, say): table name -> :class:`FileTable`, in order of first appearance."""
    return {name: FileTable(inner) for name, inner in _read(path, None, strict, timezone, format)}
