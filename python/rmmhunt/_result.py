"""Query results: Arrow underneath, converted on request to pyarrow, pandas or polars."""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

from ._arrow import to_pyarrow_table

if TYPE_CHECKING:
    import pandas
    import polars
    import pyarrow


class Result:
    """The rows, columns and Kusto types of a query's result.

    ``Result`` exports Arrow through the PyCapsule interface, so ``pyarrow.table(r)``,
    ``polars.DataFrame(r)`` and DuckDB read it without copying.
    """

    def __init__(self, table: Any, kql_types: list[str]) -> None:
        self._table = table
        self._kql_types = kql_types

    @property
    def columns(self) -> list[str]:
        """Column names, in Kusto's order."""
        return [f.name for f in self.to_arrow().schema]

    @property
    def kql_types(self) -> dict[str, str]:
        """Column name -> Kusto type (``long``, ``string``, ``datetime``, ``dynamic``...)."""
        return dict(zip(self.columns, self._kql_types, strict=True))

    def __len__(self) -> int:
        return int(len(self._table))

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self._table.__arrow_c_stream__(requested_schema)

    def to_arrow(self) -> pyarrow.Table:
        """The result as a ``pyarrow.Table`` (datetimes are ``timestamp[ns, UTC]``)."""
        return to_pyarrow_table(self._table)

    def _dynamic_columns(self) -> list[str]:
        return [n for n, t in zip(self.columns, self._kql_types, strict=True) if t == "dynamic"]

    def to_pandas(self) -> pandas.DataFrame:
        """The result as a pandas DataFrame: timezone-aware UTC datetimes, dynamic values
        as Python lists and dicts (as MSTICPy's query providers return them), and ``int`` /
        ``long`` columns that hold nulls as pandas' nullable ``Int32`` / ``Int64`` (as
        azure-kusto-data gives them), where numpy's float64 would round values past 2**53."""
        table = self.to_arrow()
        df: pandas.DataFrame = table.to_pandas()
        for name in _ints_with_nulls(table):
            df[name] = table.column(name).to_pandas(types_mapper=_nullable_int)
        for name in self._dynamic_columns():
            df[name] = [_py_dynamic(v) for v in table.column(name).to_pylist()]
        return df

    def to_polars(self) -> polars.DataFrame:
        """The result as a polars DataFrame."""
        import polars as pl

        out = pl.from_arrow(self.to_arrow())
        assert isinstance(out, pl.DataFrame)
        return out

    def to_pylist(self) -> list[dict[str, Any]]:
        """The rows as dicts (dynamic values decoded from JSON)."""
        rows: list[dict[str, Any]] = self.to_arrow().to_pylist()
        dyn = self._dynamic_columns()
        for row in rows:
            for name in dyn:
                row[name] = _py_dynamic(row[name])
        return rows

    def column_pylist(self, name: str) -> list[Any]:
        """One column's values (dynamic values decoded from JSON). Reading only the columns
        wanted also avoids converting datetimes, which pyarrow turns into pandas Timestamps
        (importing pandas) when pandas is installed."""
        values: list[Any] = self.to_arrow().column(name).to_pylist()
        if name in self._dynamic_columns():
            values = [_py_dynamic(v) for v in values]
        return values

    def __repr__(self) -> str:
        cols = ", ".join(f"{n}:{t}" for n, t in self.kql_types.items())
        return f"<rmmhunt.Result {len(self)} rows [{cols}]>"

    def _repr_html_(self, max_rows: int = 20) -> str:
        table = self.to_arrow()
        head = "".join(
            f"<th title='{html.escape(t)}'>{html.escape(n)}</th>"
            for n, t in zip(self.columns, self._kql_types, strict=True)
        )
        body = []
        for row in table.slice(0, max_rows).to_pylist():
            cells = "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row.values())
            body.append(f"<tr>{cells}</tr>")
        more = len(self) - min(len(self), max_rows)
        foot = f"<p>… {more} more rows</p>" if more > 0 else ""
        return (
            f"<div class='rmmhunt-result'><p><b>{len(self)}</b> rows × <b>{len(self.columns)}</b> columns</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{foot}</div>"
        )


def _py_dynamic(v: Any) -> Any:
    """Dynamic values arrive as Arrow lists or as JSON text."""
    if isinstance(v, str):
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, list | dict):
        return json.dumps(v, default=str)
    return str(v)


def _ints_with_nulls(table: pyarrow.Table) -> list[str]:
    """The integer columns that hold nulls (a column without stays numpy ``int64``)."""
    import pyarrow as pa

    return [
        f.name
        for f, c in zip(table.schema, table.columns, strict=True)
        if pa.types.is_integer(f.type) and c.null_count
    ]


def _nullable_int(t: pyarrow.DataType) -> Any:
    """A ``types_mapper`` for ``to_pandas``: Arrow int32/int64 to pandas' nullable dtypes."""
    import pandas as pd
    import pyarrow as pa

    return {pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype()}.get(t)
