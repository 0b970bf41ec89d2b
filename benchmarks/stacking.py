#!/usr/bin/env python3
"""Stacking benchmark: the general (non-rule) queries an analyst types between hunts.

One command (see benchmarks/README.md)::

    PYTHONPATH=python python benchmarks/stacking.py [--rows N] [--repeat K]
                                                    [--out benchmarks/results/stacking.json]

Over the same generated DeviceProcessEvents as ``run.py`` (cached Parquet under
``benchmarks/data/``, the columns read loaded into memory once), each query runs on rmmhunt, DuckDB
and Polars in this one process, one thread each, ``K`` times; medians and ratios (peer / rmmhunt)
are printed and written to ``--out``. Every peer's rows must equal rmmhunt's (sorted, timestamps
compared as UTC microseconds), or the run fails. Kusto's rules that the peers are written to: a
null string is ``""`` (so it groups, counts and lowercases as one), ``tolower`` is Unicode
lowercase, ``dcount`` here is exact (rmmhunt counts distinct values exactly).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("POLARS_MAX_THREADS", "1")  # before polars is imported

import run as bench  # noqa: E402  (benchmarks/run.py: data generation and caching)

COMPANY = "ProcessVersionInfoCompanyName"
PRODUCT = "ProcessVersionInfoProductName"
COLUMNS = [COMPANY, PRODUCT, "FileName", "DeviceName", "Timestamp"]
NOW = datetime(2024, 6, 5, 12, tzinfo=timezone.utc)


def cases() -> list[dict[str, Any]]:
    """Each case: its KQL, DuckDB SQL over table ``t`` and Polars expression over a frame."""
    import polars as pl

    def s(c: str) -> Any:
        return pl.col(c).fill_null("")

    def c(name: str) -> str:
        return f"coalesce({name}, '')"

    return [
        {
            "name": "count by company",
            "kql": f"summarize Count=count() by {COMPANY}",
            "sql": f"select {c(COMPANY)}, count(*) from t group by 1",
            "polars": lambda df: df.group_by(s(COMPANY)).agg(pl.len()),
        },
        {
            "name": "count by device",
            "kql": "summarize Count=count() by DeviceName",
            "sql": f"select {c('DeviceName')}, count(*) from t group by 1",
            "polars": lambda df: df.group_by(s("DeviceName")).agg(pl.len()),
        },
        {
            "name": "count, first by company, file",
            "kql": f"summarize Count=count(), FirstSeen=min(Timestamp) by {COMPANY}, FileName",
            "sql": f"select {c(COMPANY)}, {c('FileName')}, count(*), min(Timestamp) from t group by 1, 2",
            "polars": lambda df: df.group_by(s(COMPANY), s("FileName")).agg(
                pl.len(), pl.col("Timestamp").min()
            ),
        },
        {
            "name": "dcount devices by file",
            "kql": "summarize Devices=dcount(DeviceName) by FileName",
            "sql": f"select {c('FileName')}, count(distinct {c('DeviceName')}) from t group by 1",
            "polars": lambda df: df.group_by(s("FileName")).agg(s("DeviceName").n_unique()),
        },
        {
            "name": "latest file by device",
            "kql": "summarize arg_max(Timestamp, FileName) by DeviceName",
            "sql": f"select {c('DeviceName')}, max(Timestamp), arg_max({c('FileName')}, Timestamp) "
            "from t group by 1",
            "polars": lambda df: df.group_by(s("DeviceName")).agg(
                pl.col("Timestamp").max(), s("FileName").get(pl.col("Timestamp").arg_max())
            ),
        },
        {
            "name": "count by day",
            "kql": "summarize Count=count() by bin(Timestamp, 1d)",
            "sql": "select time_bucket(interval '1 day', Timestamp::timestamp), count(*) from t group by 1",
            "polars": lambda df: df.group_by(pl.col("Timestamp").dt.truncate("1d")).agg(pl.len()),
        },
        {
            "name": "distinct product",
            "kql": f"distinct {PRODUCT}",
            "sql": f"select distinct {c(PRODUCT)} from t",
            "polars": lambda df: df.select(s(PRODUCT).unique()),
        },
        {
            "name": "tolower ==",
            "kql": f'where tolower({COMPANY}) == "google llc" | count',
            "sql": f"select count(*) from t where lower({c(COMPANY)}) = 'google llc'",
            "polars": lambda df: df.filter(s(COMPANY).str.to_lowercase() == "google llc").select(pl.len()),
        },
        {
            "name": "strlen >",
            "kql": "where strlen(FileName) > 20 | count",
            "sql": f"select count(*) from t where length({c('FileName')}) > 20",
            "polars": lambda df: df.filter(s("FileName").str.len_chars() > 20).select(pl.len()),
        },
    ]


def normalize(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Rows as sorted tuples; datetimes as UTC microseconds since the epoch."""

    def cell(v: Any) -> Any:
        if isinstance(v, datetime):
            if v.tzinfo is None:
                v = v.replace(tzinfo=timezone.utc)
            return round(v.timestamp() * 1_000_000)
        return v

    return sorted((tuple(cell(v) for v in r) for r in rows), key=repr)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=bench.DEFAULT_ROWS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--data-dir", default=str(bench.ROOT / "benchmarks" / "data"))
    p.add_argument("--out", default=str(bench.ROOT / "benchmarks" / "results" / "stacking.json"))
    args = p.parse_args(argv)

    import duckdb
    import polars as pl
    import pyarrow.parquet as pq
    import rmmhunt

    data = Path(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    parquet = data / f"{bench.TABLE}-r{args.rows}-s{args.seed}-g{bench._generator_hash()}.parquet"
    if not parquet.exists():
        bench.log(f"generating {args.rows:,} rows -> {parquet}")
        bench.generate_parquet(args.rows, args.seed, parquet)
    table = pq.read_table(parquet, columns=COLUMNS)
    con = duckdb.connect()
    con.execute("SET threads=1")
    con.execute("SET TimeZone='UTC'")  # timestamptz -> timestamp (day bins) in UTC, as Kusto
    con.register("t", table)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)

    results = []
    failures = []
    bench.log(f"{'case':<32} {'rmmhunt s':>10} {'DuckDB s':>10} {'x':>6} {'Polars s':>10} {'x':>6}")
    for case in cases():
        kql = f"{bench.TABLE} | {case['kql']}"
        ours_s, ours = timed(
            lambda k=kql: rmmhunt.query(k, {bench.TABLE: table}, now=NOW, threads=1).to_arrow(),
            args.repeat,
        )
        duck_s, duck = timed(lambda q=case["sql"]: con.sql(q).fetchall(), args.repeat)
        polars_s, polars = timed(lambda f=case["polars"]: f(frame), args.repeat)
        want = normalize([tuple(r.values()) for r in ours.to_pylist()])
        for peer, got in (("duckdb", normalize(duck)), ("polars", normalize(polars.rows()))):
            if got != want:
                failures.append(f"{case['name']}: {peer} differs ({len(got)} rows, rmmhunt {len(want)})")
        row = {
            "case": case["name"],
            "kql": case["kql"],
            "rows_out": len(want),
            "rmmhunt_s": round(ours_s, 4),
            "duckdb_s": round(duck_s, 4),
            "polars_s": round(polars_s, 4),
            "duckdb_ratio": round(duck_s / ours_s, 2),
            "polars_ratio": round(polars_s / ours_s, 2),
        }
        results.append(row)
        bench.log(
            f"{case['name']:<32} {ours_s:>10.4f} {duck_s:>10.4f} {row['duckdb_ratio']:>6.2f} "
            f"{polars_s:>10.4f} {row['polars_ratio']:>6.2f}"
        )
    bench.log("x = peer median / rmmhunt median, one thread each: above 1, rmmhunt is faster.")
    for f in failures:
        bench.log(f"RESULT MISMATCH: {f}")
    out = {
        "rows": table.num_rows,
        "repeat": args.repeat,
        "threads": 1,
        "machine": bench.machine_info(),
        "versions": {"duckdb": duckdb.__version__, "polars": pl.__version__},
        "results": results,
        "failures": failures,
        "ok": not failures,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
