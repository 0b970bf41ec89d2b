"""rmmhunt: run Sentinel/Defender hunting KQL over local data, with Kusto's results.

>>> import rmmhunt
>>> rmmhunt.query("print x = 1 + 1").to_pylist()
[{'x': 2}]

``import rmmhunt`` does not import pandas, polars or pyarrow; they load when used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from . import _rmmhunt
from ._result import Result
from .errors import (
    DataError,
    InternalError,
    KqlSemanticError,
    KqlSyntaxError,
    RmmhuntError,
    UnsupportedError,
)
from .hunting import Findings, hunt
from .io import FileTable, read, read_tables
from .rules import Rule

__version__: str = _rmmhunt.__version__

Query = _rmmhunt.Query


def _now_text(now: datetime | str | None) -> str | None:
    """`now` as ISO-8601 UTC text (naive datetimes are UTC, as in Defender data)."""
    if now is None:
        return None
    if isinstance(now, str):
        return now
    if isinstance(now, datetime):
        if now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
        return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    raise TypeError(f"now must be a datetime or an ISO-8601 string, not {type(now).__name__}")


def _arrow_input(name: str, data: Any) -> Any:
    """Anything that exports Arrow (pyarrow, polars, pandas, DuckDB objects), a file table
    from :func:`read`, or a path (read with :func:`read`)."""
    if isinstance(data, FileTable):
        return data._inner
    if isinstance(data, str | os.PathLike):
        return read(data, table=name)._inner
    if hasattr(data, "__arrow_c_stream__"):
        return data
    mod = type(data).__module__.split(".")[0]
    if mod == "pandas":
        import pyarrow as pa

        return pa.Table.from_pandas(data, preserve_index=False)
    if hasattr(data, "__arrow_c_array__"):
        import pyarrow as pa

        return pa.table(data)
    for method in ("to_arrow_table", "arrow", "to_arrow"):
        fn = getattr(data, method, None)
        if callable(fn):
            return fn()
    raise TypeError(
        f"table {name!r}: expected Arrow data (pyarrow Table or RecordBatchReader, pandas or polars "
        f"DataFrame, DuckDB relation), got {type(data).__name__}"
    )


def _threads(threads: int | None) -> int | None:
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer, not {threads!r}")
    return threads


def query(
    kql: str,
    tables: Mapping[str, Any] | None = None,
    *,
    now: datetime | str | None = None,
    threads: int | None = None,
) -> Result:
    """Run a KQL query over the given tables and return Kusto's result.

    ``tables`` maps table names (``DeviceProcessEvents``) to Arrow data. ``now`` freezes
    ``now()``/``ago()`` for the whole query (default: the current UTC time), so that
    results are reproducible. ``threads``: scan threads (default: the ``RMMHUNT_THREADS``
    environment variable, else one per core).
    """
    inputs = {name: _arrow_input(name, data) for name, data in (tables or {}).items()}
    table, types = _rmmhunt.query(kql, inputs, _now_text(now), _threads(threads))
    return Result(table, types)


def query_many(
    kqls: Sequence[str],
    tables: Mapping[str, Any] | None = None,
    *,
    now: datetime | str | None = None,
    threads: int | None = None,
    return_exceptions: bool = False,
) -> list[Any]:
    """Run many KQL queries over the same tables, scanning each table once for all of them,
    and return their results in order (each as :func:`query` would).

    Every filter that sits right on a table joins that table's one pass: the string needles
    of all the queries over a column are matched together. ``now`` is frozen for all of them.
    A query that fails raises its error (the first such, in order), or, with
    ``return_exceptions=True``, gives the exception in its place while the others still run.
    """
    inputs = {name: _arrow_input(name, data) for name, data in (tables or {}).items()}
    outs = _rmmhunt.query_many([str(k) for k in kqls], inputs, _now_text(now), _threads(threads))
    results: list[Any] = []
    for out in outs:
        if isinstance(out, BaseException):
            if not return_exceptions:
                raise out
            results.append(out)
        else:
            table, types = out
            results.append(Result(table, types))
    return results


def parse(kql: str) -> Query:
    """Parse KQL. ``str(q)`` prints it back; ``q.tables`` lists the tables it reads;
    ``q.explain(tables)`` shows the plan and the kernel each filter runs with."""
    return _rmmhunt.parse(kql)


def kql_string(s: str) -> str:
    """A KQL string literal whose value is exactly ``s``, safe for any text."""
    return _rmmhunt.kql_string(s)


__all__ = [
    "query",
    "query_many",
    "read",
    "read_tables",
    "FileTable",
    "hunt",
    "Findings",
    "Rule",
    "parse",
    "kql_string",
    "Query",
    "Result",
    "RmmhuntError",
    "KqlSyntaxError",
    "KqlSemanticError",
    "UnsupportedError",
    "DataError",
    "InternalError",
    "__version__",
]
