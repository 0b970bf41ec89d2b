"""Notebook helpers: a pandas accessor, ``df.rmmhunt``, in MSTICPy's manner.

>>> import rmmhunt.notebook                       # adds df.rmmhunt (imports pandas)
>>> findings = df.rmmhunt.hunt(now="latest")      # doctest: +SKIP
>>> df.rmmhunt.query("DeviceProcessEvents | summarize count() by DeviceName")  # doctest: +SKIP

The DataFrame is the table: its name is inferred from its columns (the Defender schemas rmmhunt
ships) or given with ``table=``. DataFrame in, DataFrame out: results come back as pandas
DataFrames with timezone-aware UTC datetimes and dynamic values as Python lists and dicts, as
MSTICPy's ``QueryProvider`` returns them, so its results can be re-hunted offline.

The accessor delegates to plain functions (:func:`hunt_frame`, :func:`query_frame`) that take
the same parameters. It is registered by :func:`register_pandas_accessor`, which runs when this
module is imported, when ``Findings.to_pandas()`` is first called, or with
``%load_ext rmmhunt.notebook`` in IPython; ``import rmmhunt`` alone never imports pandas.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas
    import pyarrow

    from .rules import Rule, RulePack

__all__ = [
    "RmmhuntAccessor",
    "frame_to_arrow",
    "frame_table",
    "hunt_frame",
    "load_ipython_extension",
    "query_frame",
    "register_pandas_accessor",
]

ACCESSOR = "rmmhunt"
_registered = False


def frame_to_arrow(df: pandas.DataFrame) -> pyarrow.Table:
    """A DataFrame as a ``pyarrow.Table`` the engine reads as Kusto would: object cells that hold
    dicts or lists (dynamic values, as MSTICPy returns them) become JSON text, and naive
    datetimes are UTC (Defender's convention)."""
    import pandas as pd
    import pyarrow as pa

    fixed: dict[str, list[Any]] = {}
    for name in df.columns:
        col = df[name]
        if col.dtype == object and any(isinstance(v, (dict, list, tuple)) for v in col):
            fixed[str(name)] = [_json_cell(v) for v in col]
    if fixed:
        df = df.assign(**{k: pd.Series(v, index=df.index, dtype=object) for k, v in fixed.items()})
    table = pa.Table.from_pandas(df, preserve_index=False)
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is None:
            utc = pa.timestamp(field.type.unit, tz="UTC")
            table = table.set_column(i, pa.field(field.name, utc), table.column(i).cast(utc))
    return table.replace_schema_metadata(None)


def _json_cell(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def frame_table(df: pandas.DataFrame, table: str | None = None, kql: str | None = None) -> str:
    """The table name a DataFrame stands for: ``table``; else the one table ``kql`` reads;
    else the Defender table its columns belong to. Raises ``ValueError`` if none says."""
    if table:
        return table
    if kql is not None:
        from . import _rmmhunt

        read = list(dict.fromkeys(_rmmhunt.parse(kql).tables))
        if len(read) == 1:
            return str(read[0])
    from .hunting import infer_table, known_tables

    name = infer_table(str(c) for c in df.columns)
    if name is None:
        raise ValueError(
            "cannot tell which table this DataFrame is from its columns; pass table=... "
            f"(one of {', '.join(known_tables())}, or the name the query uses)"
        )
    return name


def hunt_frame(
    df: pandas.DataFrame,
    *,
    table: str | None = None,
    rules: str | Rule | RulePack | Iterable[str | Rule] | None = None,
    now: datetime | str | None = None,
    lookback: str | timedelta | None = None,
    exclusions: Literal["apply", "annotate", "off"] = "apply",
) -> pandas.DataFrame:
    """Hunt ``df`` (one table) with the selected rules; the findings as a DataFrame (see
    :func:`rmmhunt.hunt`; rules for other tables are skipped). ``now="latest"`` hunts as of the
    frame's latest Timestamp, which suits a past export."""
    from .hunting import hunt

    name = frame_table(df, table)
    findings = hunt(
        {name: frame_to_arrow(df)}, rules=rules, now=now, lookback=lookback, exclusions=exclusions
    )
    return findings.to_pandas()


def query_frame(
    df: pandas.DataFrame,
    kql: str,
    table: str | None = None,
    *,
    now: datetime | str | None = None,
) -> pandas.DataFrame:
    """Run ``kql`` with ``df`` as the table ``table`` (default: the one table the query reads,
    else inferred from the columns); the result as a DataFrame."""
    from . import _rmmhunt
    from ._result import Result

    name = frame_table(df, table, kql)
    now_text: str | None
    if isinstance(now, datetime):
        from .hunting import _iso, _resolve_now

        now_text = _iso(_resolve_now(now, {}))
    else:
        now_text = now
    result, types = _rmmhunt.query(kql, {name: frame_to_arrow(df)}, now_text)
    return Result(result, types).to_pandas()


class RmmhuntAccessor:
    """``df.rmmhunt``: hunt or query this DataFrame as a Defender table."""

    def __init__(self, df: pandas.DataFrame) -> None:
        self._df = df

    def hunt(
        self,
        *,
        table: str | None = None,
        rules: str | Rule | RulePack | Iterable[str | Rule] | None = None,
        now: datetime | str | None = None,
        lookback: str | timedelta | None = None,
        exclusions: Literal["apply", "annotate", "off"] = "apply",
    ) -> pandas.DataFrame:
        """Hunt this table with the rule pack (or ``rules``); see :func:`hunt_frame`."""
        return hunt_frame(
            self._df, table=table, rules=rules, now=now, lookback=lookback, exclusions=exclusions
        )

    def query(
        self, kql: str, table: str | None = None, *, now: datetime | str | None = None
    ) -> pandas.DataFrame:
        """Run KQL over this table; see :func:`query_frame`."""
        return query_frame(self._df, kql, table, now=now)


def register_pandas_accessor() -> None:
    """Register ``DataFrame.rmmhunt`` (once; later calls do nothing)."""
    global _registered
    if _registered:
        return
    import pandas as pd

    # On the class, pandas' accessor descriptor returns the accessor class itself.
    if getattr(pd.DataFrame, ACCESSOR, None) is not RmmhuntAccessor:
        pd.api.extensions.register_dataframe_accessor(ACCESSOR)(RmmhuntAccessor)
    _registered = True


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext rmmhunt.notebook``: register the accessor."""
    del ipython
    register_pandas_accessor()


register_pandas_accessor()
