#!/usr/bin/env python3
"""rmmhunt benchmark: rmmhunt against DuckDB and Polars on the same hunting semantics.

One command (see benchmarks/README.md)::

    PYTHONPATH=python python benchmarks/run.py [--rows N] [--repeat K] [--threads 1,2] [--smoke]
                                               [--out benchmarks/results/latest.json]

1. Generates DeviceProcessEvents rows with the project's generator (``rmmhunt.sample``) and caches
   them under ``benchmarks/data/`` as Parquet (every column) and as an Arrow IPC file holding the
   columns the rules read (the "in-memory Arrow" input, loaded into memory by each run).
2. Runs every engine for every case in a fresh subprocess (so that thread settings and peak RSS
   belong to that engine alone), ``K`` timed repetitions each, and reports the median.
3. Checks that DuckDB's and Polars' results are identical to rmmhunt's (same groups, FirstSeen,
   LastSeen, Count and set of ReportIds, rule by rule) and fails loudly if they are not.
4. Prints medians, ratios (engine / rmmhunt) and peak RSS, and writes everything to ``--out``.

The peers' queries are written here from each rule's structured filters (``x_rmmhunt.match`` in
the pack; the founding rule by hand) with Kusto's semantics (../shared/kql/SEMANTICS.md 1.2, 1.3,
3): ``has`` is a case-insensitive whole-term match where terms are maximal runs of Unicode letters
and digits (``_`` separates terms) and a needle's non-alphanumeric edge imposes no boundary;
``between`` is inclusive; a null string is ``""``; ``make_set`` collects distinct non-null values.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
PY_SRC = ROOT / "python"
TABLE = "DeviceProcessEvents"
FOUNDING_ID = "83f7b313-b955-4988-b524-b2da55c67b43"
DEFAULT_NOW = "2024-06-05T12:00:00Z"  # data span 2024-06-01 .. 06-06: the 5-day window drops ~10%
DEFAULT_ROWS = 10_000_000
SMOKE_ROWS = 20_000
# Timed repetitions per run. rmmhunt's runs take 0.01 to 0.3 s, and on this shared 2-core
# VM a few repetitions of a series can be 50-80% slower than the rest (the pack on two
# threads, one worker process: 0.048-0.064 s, and 0.084-0.086 s twice in nine): the median
# of nine stays with the bulk where that of five may not.
REPEAT = 9
ROW_GROUP = 1 << 20  # Parquet row group = in-memory record batch size
GEN_CHUNK = 1 << 21  # rows per generator call (a 10M-row table does not fit in memory whole)
CASES = ("founding-memory", "founding-parquet", "pack-memory", "pack-parquet")
# engines per case, in run order; the first one ("rmmhunt") is the reference of the checks
ENGINES: dict[str, tuple[str, ...]] = {
    "founding-memory": ("rmmhunt", "duckdb", "duckdb-table", "polars"),
    "founding-parquet": ("rmmhunt", "duckdb", "polars"),
    "pack-memory": (
        "rmmhunt",
        "rmmhunt-hunt",
        "duckdb",
        "duckdb-combined",
        "polars",
        "polars-combined",
    ),
    # From Parquet the peers run the hand-written combined query only (one query per rule
    # re-reads the file 55 times: minutes per repetition at 10M rows).
    "pack-parquet": ("rmmhunt", "duckdb-combined", "polars-combined"),
}
ENGINE_NOTES = {
    "rmmhunt": "rmmhunt.query, one query per rule",
    "rmmhunt-hunt": "rmmhunt.hunt(tables, rules=...): all rules in one call",
    "duckdb": "DuckDB SQL over the Arrow table / read_parquet, one query per rule",
    "duckdb-table": "DuckDB SQL over a native DuckDB table (loaded before timing)",
    "duckdb-combined": "DuckDB, one hand-written query: shared prefilter, then UNION ALL per rule",
    "polars": "Polars lazy query (DataFrame converted from Arrow before timing / scan_parquet)",
    "polars-combined": "Polars, shared prefilter collected once, then collect_all per rule",
}
AGG_RE = re.compile(
    r"\|\s*summarize\s+FirstSeen\s*=\s*min\(Timestamp\)\s*,\s*LastSeen\s*=\s*max\(Timestamp\)\s*,"
    r"\s*Report\s*=\s*make_set\(ReportId\)\s*,\s*Count\s*=\s*count\(\)\s+by\s+(?P<by>[\w\s,]+?)\s*$"
)
WINDOW_RE = re.compile(
    r"let\s+Time_start\s*=\s*now\(-[^)]*\);\s*let\s+Time_end\s*=\s*now\(\);.*"
    r"\|\s*where\s+Timestamp\s+between\s*\(\s*Time_start\s*\.\.\s*Time_end\s*\)",
    re.S,
)
SUPPORTED_OPS = frozenset({"has", "has_any", "startswith", "=~", "isempty"})
STRING_KEYS = frozenset({"DeviceId", "DeviceName", "AccountUpn", "AccountName", "AccountDomain"})


def log(msg: str) -> None:
    print(msg, flush=True)


# ==============================================================================================
# Rules as plain data: what the peers need to reproduce a rule
# ==============================================================================================


def founding_spec(query: str, lookback: timedelta) -> dict[str, Any]:
    """The founding rule, translated by hand (its KQL is in rmmhunt/data/rules/)."""
    return {
        "id": FOUNDING_ID,
        "name": "founding rule (ConnectWise / Continuum / ScreenConnect)",
        "query": query,
        "lookback_us": _td_us(lookback),
        "group_by": ["DeviceId", "DeviceName"],
        "filters": [
            {
                "column": "ProcessVersionInfoCompanyName",
                "operator": "has_any",
                "values": ["ConnectWise", "Continuum Managed", "ScreenConnect"],
            }
        ],
        "logic": "0",
    }


def _td_us(td: timedelta) -> int:
    return (td.days * 86_400 + td.seconds) * 1_000_000 + td.microseconds


def rule_specs() -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The founding rule plus every pack rule over DeviceProcessEvents alone that the peers can
    reproduce; and the rules left out, with the reason."""
    import rmmhunt.rules as rr

    founding = rr.get(FOUNDING_ID)
    lookback = founding.lookback
    if lookback is None:
        raise SystemExit("the founding rule has no Time_start window")
    specs = [founding_spec(founding.query, lookback)]
    skipped: list[dict[str, str]] = []
    for rule in rr.pack():
        if rule.id.lower() == FOUNDING_ID:
            continue
        if TABLE not in rule.tables:
            continue
        reason = _unsupported(rule)
        if reason:
            skipped.append({"id": rule.id, "name": rule.name, "reason": reason})
            continue
        x = rule.extra["x_rmmhunt"]
        lb = rule.lookback
        assert lb is not None
        specs.append(
            {
                "id": rule.id,
                "name": rule.name,
                "query": rule.query,
                "lookback_us": _td_us(lb),
                "group_by": list(x["group_by"]),
                "filters": [dict(f) for f in x["match"]["filters"]],
                "logic": x["match"]["logic"],
            }
        )
    return specs, skipped


def _unsupported(rule: Any) -> str | None:
    if rule.tables != (TABLE,):
        return f"reads {', '.join(rule.tables)} (the benchmark generates {TABLE} only)"
    x = rule.extra.get("x_rmmhunt")
    if not isinstance(x, Mapping) or "match" not in x:
        return "no structured filters (x_rmmhunt.match) to translate"
    match = x["match"]
    if match.get("subqueries") or x.get("post_steps"):
        return "subqueries or post-steps"
    ops = {f["operator"] for f in match["filters"]}
    if not ops <= SUPPORTED_OPS:
        return f"operators {sorted(ops - SUPPORTED_OPS)} not translated"
    if rule.lookback is None or not WINDOW_RE.search(rule.query):
        return "no `Timestamp between (Time_start..Time_end)` window"
    m = AGG_RE.search(rule.query.strip())
    if not m:
        return "summarize is not FirstSeen/LastSeen/Report/Count"
    by = [c.strip() for c in m.group("by").split(",")]
    if by != list(x["group_by"]):
        return f"summarize by {by} but x_rmmhunt.group_by is {x['group_by']}"
    if not set(by) <= STRING_KEYS:
        return f"non-string group keys {by}"
    if not _needs_positive(match["filters"], match["logic"]):
        return "can match with only isempty() filters true (no shared prefilter possible)"
    return None


def _needs_positive(filters: Sequence[Mapping[str, Any]], logic: str) -> bool:
    """True if the rule is false whenever all its positive (non-isempty) filters are false; the
    logic is monotone (and/or only), so the worst case is every isempty() being true."""
    truth = [f["operator"] == "isempty" for f in filters]
    return not _logic_eval(_parse_logic(logic), truth)


def rule_columns(specs: Iterable[Mapping[str, Any]]) -> list[str]:
    cols = {"Timestamp", "ReportId"}
    for s in specs:
        cols.update(s["group_by"])
        cols.update(f["column"] for f in s["filters"])
    return sorted(cols)


# ---- the logic mini-language of x_rmmhunt.match: "0 and (1 or 2)" ---------------------------

Logic = Any  # int | tuple[str, list[Logic]]


# The parser and evaluator live with the pack's generator (rmmhunt.sample).
def _parse_logic(text: str) -> Logic:
    from rmmhunt.sample import parse_logic

    return parse_logic(text)


def _logic_eval(tree: Logic, truth: Sequence[bool]) -> bool:
    from rmmhunt.sample import logic_value

    return logic_value(tree, truth)


def _logic_fold(
    tree: Logic,
    leaf: Callable[[int], Any],
    both: Callable[[Any, Any], Any],
    either: Callable[[Any, Any], Any],
) -> Any:
    if isinstance(tree, int):
        return leaf(tree)
    op, items = tree
    parts = [_logic_fold(t, leaf, both, either) for t in items]
    out = parts[0]
    for p in parts[1:]:
        out = both(out, p) if op == "and" else either(out, p)
    return out


# ---- Kusto string operators as regular expressions (RE2 in DuckDB, Rust regex in Polars) -----

NOT_TERM = r"[^\pL\pN]"  # not a term character (a Unicode letter or digit; "_" is not one)


def _esc(text: str) -> str:
    """Escape regex metacharacters; both RE2 and Rust's regex accept these escapes."""
    return "".join("\\" + c if c in "\\.+*?()|[]{}^$" else c for c in text)


def _has_alternation(needles: Sequence[str]) -> str:
    """``has_any(needles)`` without the ``(?i)`` flag: each needle literally, with a term boundary
    outside each alphanumeric edge (a punctuation edge imposes none: ``has ".exe"`` matches
    ``cmd.exe``). Needles are grouped by the boundaries they need so that each boundary class
    appears once: RE2 (DuckDB) slows down a hundredfold with one Unicode class per needle."""
    groups: dict[tuple[bool, bool], list[str]] = {}
    for n in dict.fromkeys(needles):
        groups.setdefault((n[0].isalnum(), n[-1].isalnum()), []).append(_esc(n))
    parts = []
    for (left, right), alts in sorted(groups.items(), reverse=True):
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        parts.append((f"(?:^|{NOT_TERM})" if left else "") + body + (f"(?:$|{NOT_TERM})" if right else ""))
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def filter_regex(flt: Mapping[str, Any]) -> str | None:
    """The case-insensitive regex a filter is true on; None for ``isempty``; "" if always true."""
    op, values = flt["operator"], list(flt["values"])
    if op in ("has", "has_any"):
        if any(v == "" for v in values):
            return ""
        return "(?i)" + _has_alternation(values)
    if op == "startswith":
        return "(?i)^(?:" + "|".join(_esc(v) for v in values) + ")"
    if op == "=~":
        return "(?i)^(?:" + "|".join(_esc(v) for v in values) + ")$"
    if op == "isempty":
        return None
    raise ValueError(f"operator {op!r} not translated")


def prefilter_regexes(specs: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Per column, one regex that is true wherever any rule's positive filter on it is true."""
    needles: dict[str, list[str]] = {}
    anchored: dict[str, list[str]] = {}
    always: set[str] = set()
    for s in specs:
        for f in s["filters"]:
            op, col, values = f["operator"], f["column"], f["values"]
            if op in ("has", "has_any"):
                if any(v == "" for v in values):
                    always.add(col)
                needles.setdefault(col, []).extend(values)
            elif op == "startswith":
                anchored.setdefault(col, []).extend("^" + _esc(v) for v in values)
            elif op == "=~":
                anchored.setdefault(col, []).extend("^" + _esc(v) + "$" for v in values)
    out = {}
    for col in dict.fromkeys([*needles, *anchored]):
        if col in always:
            out[col] = ""
            continue
        parts = ([_has_alternation(needles[col])] if col in needles else []) + anchored.get(col, [])
        out[col] = "(?i)" + (parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")")
    return out


# ---- SQL (DuckDB) ----------------------------------------------------------------------------


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ts_lit(us: int) -> str:
    dt = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=us)
    return "TIMESTAMPTZ " + _lit(dt.strftime("%Y-%m-%d %H:%M:%S.%f+00"))


def sql_filter(flt: Mapping[str, Any]) -> str:
    col = _q(flt["column"])
    rx = filter_regex(flt)
    if rx is None:
        return f"({col} IS NULL OR {col} = '')"
    if rx == "":
        return "TRUE"
    return f"regexp_matches({col}, {_lit(rx)})"


def sql_predicate(spec: Mapping[str, Any]) -> str:
    preds = [sql_filter(f) for f in spec["filters"]]
    return str(
        _logic_fold(
            _parse_logic(spec["logic"]),
            lambda i: preds[i],
            lambda a, b: f"({a} AND {b})",
            lambda a, b: f"({a} OR {b})",
        )
    )


def sql_window(spec: Mapping[str, Any], now_us: int) -> str:
    return f"{_q('Timestamp')} BETWEEN {_ts_lit(now_us - spec['lookback_us'])} AND {_ts_lit(now_us)}"


AGGREGATES_SQL = (
    f"min({_q('Timestamp')}) AS FirstSeen, max({_q('Timestamp')}) AS LastSeen, "
    f"list(DISTINCT {_q('ReportId')}) FILTER (WHERE {_q('ReportId')} IS NOT NULL) AS Report, "
    "count(*) AS Count"
)


def sql_rule(spec: Mapping[str, Any], src: str, now_us: int) -> str:
    keys = [f"coalesce({_q(k)}, '')" for k in spec["group_by"]]
    cols = ", ".join(f"{e} AS {_q(k)}" for e, k in zip(keys, spec["group_by"], strict=True))
    return (
        f"SELECT {cols}, {AGGREGATES_SQL} FROM {src} "
        f"WHERE {sql_window(spec, now_us)} AND {sql_predicate(spec)} GROUP BY {', '.join(keys)}"
    )


def sql_combined(specs: Sequence[Mapping[str, Any]], src: str, now_us: int) -> str:
    """One query for all rules, written by hand as an analyst would: one scan selects the rows
    any rule can match (one regex per column over all the rules' needles) and tags each with the
    rules it matches; one aggregation groups by rule and the rule's keys. (A UNION ALL of one
    branch per rule gives the same result but DuckDB takes seconds just to plan it.)"""
    pre = prefilter_regexes(specs)
    pre_sql = " OR ".join(
        "TRUE" if rx == "" else f"regexp_matches({_q(col)}, {_lit(rx)})" for col, rx in pre.items()
    )
    lo = min(now_us - s["lookback_us"] for s in specs)
    tags = ",\n  ".join(
        f"CASE WHEN {sql_window(s, now_us)} AND {sql_predicate(s)} THEN {_lit(s['id'])} END" for s in specs
    )
    keys = sorted({k for s in specs for k in s["group_by"]})
    key_cols = []
    for k in keys:
        lacking = [_lit(s["id"]) for s in specs if k not in s["group_by"]]
        val = f"coalesce({_q(k)}, '')"
        if lacking:
            val = f"CASE WHEN RuleId IN ({', '.join(lacking)}) THEN NULL ELSE {val} END"
        key_cols.append(f"{val} AS {_q(k)}")
    return (
        f"WITH m AS (SELECT *, unnest(list_filter([\n  {tags}], lambda x: x IS NOT NULL)) AS RuleId\n"
        f"  FROM {src} WHERE {_q('Timestamp')} BETWEEN {_ts_lit(lo)} AND {_ts_lit(now_us)}\n"
        f"  AND ({pre_sql})),\n"
        f"k AS (SELECT RuleId, {', '.join(key_cols)}, {_q('Timestamp')}, {_q('ReportId')} FROM m)\n"
        f"SELECT RuleId, {', '.join(_q(k) for k in keys)}, {AGGREGATES_SQL} FROM k GROUP BY ALL"
    )


# ---- Polars ----------------------------------------------------------------------------------


def polars_filter(flt: Mapping[str, Any]) -> Any:
    import polars as pl

    col = pl.col(flt["column"])
    rx = filter_regex(flt)
    if rx is None:
        return col.is_null() | (col == "")
    if rx == "":
        return pl.lit(True)
    return col.str.contains(rx)


def polars_predicate(spec: Mapping[str, Any]) -> Any:
    preds = [polars_filter(f) for f in spec["filters"]]
    return _logic_fold(
        _parse_logic(spec["logic"]), lambda i: preds[i], lambda a, b: a & b, lambda a, b: a | b
    )


def _us_dt(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=us)


def polars_window(spec: Mapping[str, Any], now_us: int) -> Any:
    import polars as pl

    return pl.col("Timestamp").is_between(
        pl.lit(_us_dt(now_us - spec["lookback_us"])), pl.lit(_us_dt(now_us)), closed="both"
    )


def polars_rule(lf: Any, spec: Mapping[str, Any], now_us: int) -> Any:
    import polars as pl

    return (
        lf.filter(polars_window(spec, now_us) & polars_predicate(spec))
        .group_by([pl.col(k).fill_null("") for k in spec["group_by"]])
        .agg(
            pl.col("Timestamp").min().alias("FirstSeen"),
            pl.col("Timestamp").max().alias("LastSeen"),
            pl.col("ReportId").drop_nulls().unique().alias("Report"),
            pl.len().alias("Count"),
        )
    )


def polars_prefilter(lf: Any, specs: Sequence[Mapping[str, Any]], now_us: int) -> Any:
    import polars as pl

    pre: Any = pl.lit(False)
    for col, rx in prefilter_regexes(specs).items():
        pre = pre | (pl.lit(True) if rx == "" else pl.col(col).str.contains(rx))
    lo = min(now_us - s["lookback_us"] for s in specs)
    window = pl.col("Timestamp").is_between(pl.lit(_us_dt(lo)), pl.lit(_us_dt(now_us)), closed="both")
    return lf.filter(window & pre).select(rule_columns(specs))


# ==============================================================================================
# Data: generated once per (rows, seed, generator version), cached as Parquet + Arrow IPC
# ==============================================================================================


def _generator_hash() -> str:
    h = hashlib.sha256(f"{GEN_CHUNK}/{ROW_GROUP}".encode())
    data = PY_SRC / "rmmhunt"
    for p in [data / "sample.py", *sorted((data / "data").glob("*.json"))]:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:10]


def chunk_sizes(rows: int) -> list[int]:
    n = max(1, math.ceil(rows / GEN_CHUNK))
    return [rows // n + (1 if i < rows % n else 0) for i in range(n)]


def generate_parquet(rows: int, seed: int, path: Path) -> dict[str, Any]:
    """Write ``rows`` generated rows to ``path``. Chunk ``k`` of a table larger than GEN_CHUNK
    rows is ``sample(TABLE, n_k, seed=seed + k)``: its own estate of devices, all over the
    same days; a table of at most GEN_CHUNK rows is exactly ``sample(TABLE, rows, seed=seed)``."""
    import pyarrow.parquet as pq
    from rmmhunt.sample import sample

    tmp = path.with_suffix(".parquet.tmp")
    writer = None
    t0 = time.perf_counter()
    for k, n in enumerate(chunk_sizes(rows)):
        table = sample(TABLE, n, seed=seed + k)
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema, compression="snappy")
        writer.write_table(table, row_group_size=ROW_GROUP)
        log(f"  generated chunk {k}: {n:,} rows ({time.perf_counter() - t0:.1f} s)")
        del table
    assert writer is not None
    writer.close()
    os.replace(tmp, path)
    return {"seconds": round(time.perf_counter() - t0, 2)}


def write_ipc(parquet: Path, columns: Sequence[str], path: Path) -> None:
    """The in-memory input: the rules' columns, one record batch per Parquet row group."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(parquet)
    tmp = path.with_suffix(".arrow.tmp")
    schema = pa.schema([pf.schema_arrow.field(c) for c in columns])
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for i in range(pf.num_row_groups):
            writer.write_table(pf.read_row_group(i, columns=list(columns)), max_chunksize=ROW_GROUP)
    os.replace(tmp, path)


def load_ipc(path: str) -> pa.Table:
    import pyarrow as pa

    with pa.OSFile(path, "rb") as f:  # read into memory (not memory-mapped)
        return pa.ipc.open_file(f).read_all()


# ==============================================================================================
# Worker: one engine, one case, one thread count, in a fresh process
# ==============================================================================================


def _maxrss_kb() -> int:
    """This process's peak RSS in KiB since exec (VmHWM; ru_maxrss would include the RSS of the
    process that forked it)."""
    try:
        m = re.search(r"VmHWM:\s*(\d+)", Path("/proc/self/status").read_text())
        if m:
            return int(m.group(1))
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _ts_us(col: Any) -> list[int | None]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_timestamp(col.type):
        col = pc.cast(col, pa.timestamp("us", tz="UTC"))  # raises rather than truncate
    return list(pc.cast(col, pa.int64()).to_pylist())


def _report_values(v: Any) -> list[int]:
    if v is None:
        return []
    if isinstance(v, str):
        v = json.loads(v)
    return sorted({int(x) for x in v if x is not None})


def normalize(table: pa.Table, keys: Sequence[str]) -> list[list[Any]]:
    """Rows ``[*keys, FirstSeen_us, LastSeen_us, Count, sorted(Report)]``, sorted; a null key
    is ``""`` (Kusto strings have no null)."""
    first, last = _ts_us(table.column("FirstSeen")), _ts_us(table.column("LastSeen"))
    count = table.column("Count").to_pylist()
    report = table.column("Report").to_pylist()
    keyvals = [table.column(k).to_pylist() for k in keys]
    rows = []
    for i in range(table.num_rows):
        key = ["" if kv[i] is None else str(kv[i]) for kv in keyvals]
        rows.append([*key, first[i], last[i], int(count[i]), _report_values(report[i])])
    rows.sort(key=lambda r: json.dumps(r))
    return rows


def split_by_rule(table: pa.Table, specs: Sequence[Mapping[str, Any]]) -> dict[str, list[list[Any]]]:
    """A findings table of several rules -> normalized rows per rule id."""
    import pyarrow.compute as pc

    names = {n.lower().replace("_", "").replace(" ", ""): n for n in table.column_names}
    col = next((names[c] for c in ("ruleid", "id", "rule") if c in names), None)
    if col is None:
        raise RuntimeError(f"no rule id column among {table.column_names}")
    ids = table.column(col).cast("string")
    known = {s["id"].lower() for s in specs}
    extra = set(x.lower() for x in ids.to_pylist() if x is not None) - known
    if extra:
        raise RuntimeError(f"findings for rules that were not asked for: {sorted(extra)[:5]}")
    out = {}
    for s in specs:
        mask = pc.equal(pc.utf8_lower(ids), s["id"].lower())
        out[s["id"]] = normalize(table.filter(mask), s["group_by"])
    return out


def _reader(probe: str) -> tuple[str, Callable[[str, Sequence[str]], Any]]:
    """rmmhunt's file reader (``rmmhunt.io.read``, or ``rmmhunt.read``) when it exists and the
    built engine supports it (tried once on ``probe``, untimed), else pyarrow.parquet reading
    the columns the rules need."""
    import importlib

    candidates: list[tuple[str, Callable[..., Any]]] = []
    try:
        rio = importlib.import_module("rmmhunt.io")
        if callable(getattr(rio, "read", None)):
            candidates.append(("rmmhunt.io.read", rio.read))
    except ImportError:
        pass
    read = getattr(importlib.import_module("rmmhunt"), "read", None)
    if callable(read):
        candidates.append(("rmmhunt.read", read))
    why = "no rmmhunt reader"
    for name, fn in candidates:
        try:
            fn(probe, table=TABLE)
        except (AttributeError, ImportError, NotImplementedError) as e:  # engine built without it
            why = f"{name} unusable: {type(e).__name__}: {e}"
            continue
        return name, lambda p, _c, fn=fn: fn(p, table=TABLE)
    import pyarrow.parquet as pq

    return (
        f"pyarrow.parquet.read_table(columns=...) then rmmhunt.query (fallback: {why})",
        lambda p, c: pq.read_table(p, columns=list(c)),
    )


def find_hunt() -> Callable[..., Any] | None:
    """``rmmhunt.hunt``, or ``rmmhunt.hunting.hunt`` before the package exports it."""
    import importlib

    import rmmhunt

    hunt: Any = getattr(rmmhunt, "hunt", None)
    if not callable(hunt):
        try:
            hunt = getattr(importlib.import_module("rmmhunt.hunting"), "hunt", None)
        except ImportError:
            return None
    return hunt if callable(hunt) else None


def _params(fn: Callable[..., Any]) -> set[str]:
    import inspect

    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


def worker(task: Mapping[str, Any]) -> dict[str, Any]:
    """Run one task; return times and normalized results of the first repetition."""
    engine, source, threads = task["engine"], task["source"], int(task["threads"])
    specs: list[dict[str, Any]] = task["rules"]
    now_us: int = task["now_us"]
    now = _us_dt(now_us)
    info: dict[str, Any] = {"notes": []}

    import pyarrow as pa

    pa.set_cpu_count(threads)
    t_load = time.perf_counter()
    table = load_ipc(task["ipc"]) if source == "memory" else None
    info["load_s"] = round(time.perf_counter() - t_load, 3)
    parquet: str = task["parquet"]
    columns = rule_columns(specs)
    t_setup = time.perf_counter()
    run: Callable[[], Any]
    collect: Callable[[Any], dict[str, list[list[Any]]]]

    if engine in ("rmmhunt", "rmmhunt-hunt"):
        import rmmhunt

        info["version"] = rmmhunt.__version__
        if engine == "rmmhunt":
            qkw: dict[str, Any] = {"now": now}
            if "threads" in _params(rmmhunt.query):
                qkw["threads"] = threads
            many = getattr(rmmhunt, "query_many", None)
            queries = [s["query"] for s in specs]
            # All rules in one call (one pass over the table) when the engine can.
            info["api"] = "rmmhunt.query_many (one pass)" if many else "rmmhunt.query per rule"

            def run_on(data: Any) -> Any:
                if many is not None:
                    return many(queries, {TABLE: data}, **qkw)
                return [rmmhunt.query(q, {TABLE: data}, **qkw) for q in queries]

            if source == "memory":

                def run() -> Any:
                    return run_on(table)

            else:
                info["reader"], read = _reader(parquet)
                log(f"    rmmhunt from Parquet via {info['reader']}")

                def run() -> Any:
                    return run_on(read(parquet, columns))

            def collect(out: Any) -> dict[str, list[list[Any]]]:
                pairs = zip(specs, out, strict=True)
                return {s["id"]: normalize(r.to_arrow(), s["group_by"]) for s, r in pairs}

        else:
            import rmmhunt.rules as rr

            hunt = find_hunt()
            if hunt is None:
                raise RuntimeError("rmmhunt.hunt does not exist")
            info["hunt"] = f"{hunt.__module__}.{hunt.__name__}"
            rule_objs = [rr.get(s["id"]) for s in specs]
            kwargs: dict[str, Any] = {"rules": rule_objs, "now": now}
            params = _params(hunt)
            if "exclusions" in params:
                kwargs["exclusions"] = "off"  # the queries as published, as the peers run them
            if "threads" in params:
                kwargs["threads"] = threads

            def run() -> Any:
                return hunt({TABLE: table}, **kwargs)

            def collect(out: Any) -> dict[str, list[list[Any]]]:
                res = out.to_arrow() if hasattr(out, "to_arrow") else pa.table(out)
                return split_by_rule(res, specs)

    elif engine.startswith("duckdb"):
        import duckdb

        info["version"] = duckdb.__version__
        con = duckdb.connect()
        con.execute(f"SET threads={threads}")
        if source == "memory":
            con.register("dpe_arrow", table)
            src = "dpe_arrow"
            if engine == "duckdb-table":
                con.execute("CREATE TABLE dpe AS SELECT * FROM dpe_arrow")
                con.unregister("dpe_arrow")
                table = None
                src = "dpe"
        else:
            src = f"read_parquet({_lit(parquet)})"
        if engine == "duckdb-combined":
            sql = sql_combined(specs, src, now_us)

            def run() -> Any:
                return con.sql(sql).to_arrow_table()

            def collect(out: Any) -> dict[str, list[list[Any]]]:
                return split_by_rule(out, specs)

        else:
            sqls = [sql_rule(s, src, now_us) for s in specs]

            def run() -> Any:
                return [con.sql(q).to_arrow_table() for q in sqls]

            def collect(out: Any) -> dict[str, list[list[Any]]]:
                return {s["id"]: normalize(r, s["group_by"]) for s, r in zip(specs, out, strict=True)}

        info["sql_example"] = (
            sql_combined(specs, src, now_us)
            if engine == "duckdb-combined"
            else (sql_rule(specs[0], src, now_us))
        )

    elif engine.startswith("polars"):
        import polars as pl

        info["version"] = pl.__version__
        info["polars_threads"] = pl.thread_pool_size()
        if source == "memory":
            t0 = time.perf_counter()
            df = pl.DataFrame(pl.from_arrow(table))
            info["from_arrow_s"] = round(time.perf_counter() - t0, 4)
            table = None

            def frame() -> Any:
                return df.lazy()

        else:

            def frame() -> Any:
                return pl.scan_parquet(parquet)

        if engine == "polars-combined":

            def run() -> Any:
                m = polars_prefilter(frame(), specs, now_us).collect()
                return pl.collect_all([polars_rule(m.lazy(), s, now_us) for s in specs])

        else:

            def run() -> Any:
                return [polars_rule(frame(), s, now_us).collect() for s in specs]

        def collect(out: Any) -> dict[str, list[list[Any]]]:
            return {s["id"]: normalize(r.to_arrow(), s["group_by"]) for s, r in zip(specs, out, strict=True)}

    else:
        raise ValueError(f"unknown engine {engine!r}")

    info["setup_s"] = round(time.perf_counter() - t_setup, 4)
    info["rss_baseline_kb"] = _maxrss_kb()
    times: list[float] = []
    results: dict[str, list[list[Any]]] = {}
    for i in range(int(task["repeat"])):
        t0 = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t0)
        if i == 0:
            results = collect(out)
        del out
    info.update(times=times, results=results, peak_rss_self_kb=_maxrss_kb())
    return info


# ==============================================================================================
# Parent: data, subprocesses, checks, report
# ==============================================================================================


# The engine runs in a grandchild started by this small launcher: a child's ru_maxrss starts at
# the RSS of the process that forked it, so forking the engine from this (bigger) parent would
# put a floor under every measurement. The launcher has exactly one child, so its
# RUSAGE_CHILDREN is that child's own peak RSS.
_LAUNCHER = """
import json, os, resource, signal, sys, time
out, timeout, argv = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
pid = os.posix_spawn(argv[0], argv, os.environ)
deadline = time.monotonic() + timeout
while True:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    if time.monotonic() > deadline:
        os.kill(pid, signal.SIGKILL)
        done, status = os.waitpid(pid, 0)
        break
    time.sleep(0.01)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(out, "w") as f:
    json.dump([os.waitstatus_to_exitcode(status), rss], f)
"""


def spawn(args: list[str], env: Mapping[str, str], timeout: float) -> tuple[int, int, float]:
    """Run a command; return (exit code, its peak RSS in KiB, wall seconds)."""
    t0 = time.perf_counter()
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run(
            [sys.executable, "-S", "-c", _LAUNCHER, f.name, str(timeout), *args], env=dict(env), check=False
        )
        try:
            code, rss = json.loads(Path(f.name).read_text())
        except ValueError:
            code, rss = -1, 0
    return int(code), int(rss), time.perf_counter() - t0


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PY_SRC), *filter(None, [env.get("PYTHONPATH")])])
    env["RMMHUNT_THREADS"] = str(threads)
    env["POLARS_MAX_THREADS"] = str(threads)
    # numpy's OpenBLAS starts a thread per core that spins after use; in the worker, after
    # the first repetition's results were normalized, they took CPU from a two-thread run
    # (rmmhunt's pack: 0.065-0.078 s a repetition against 0.052-0.057 s with one BLAS
    # thread). No engine here uses BLAS.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def ensure_data(
    args: argparse.Namespace, specs: Sequence[Mapping[str, Any]], need_ipc: bool
) -> dict[str, Any]:
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    key = f"{TABLE}-r{args.rows}-s{args.seed}-g{_generator_hash()}"
    parquet = data_dir / f"{key}.parquet"
    cols = rule_columns(specs)
    col_key = hashlib.sha256(",".join(cols).encode()).hexdigest()[:8]
    ipc = data_dir / f"{key}-c{col_key}.arrow"
    info: dict[str, Any] = {"parquet": str(parquet), "ipc": str(ipc), "columns_in_memory": cols}
    if not parquet.exists():
        log(f"generating {args.rows:,} rows of {TABLE} (seed {args.seed}) -> {parquet}")
        code, rss, wall = spawn(
            [sys.executable, __file__, "--_generate", json.dumps([args.rows, args.seed, str(parquet)])],
            child_env(os.cpu_count() or 1),
            args.timeout,
        )
        if code != 0:
            raise SystemExit(f"data generation failed (exit {code})")
        info["generated"] = {"seconds": round(wall, 1), "peak_rss_mb": round(rss / 1024)}
    else:
        log(f"using cached data {parquet}")
    if need_ipc and not ipc.exists():
        write_ipc(parquet, cols, ipc)
    import pyarrow.parquet as pq

    md = pq.ParquetFile(parquet).metadata
    info.update(
        rows=md.num_rows,
        columns=md.num_columns,
        row_groups=md.num_row_groups,
        parquet_mb=round(parquet.stat().st_size / 1e6, 1),
        generator_chunks=chunk_sizes(args.rows),
    )
    if ipc.exists():
        info["ipc_mb"] = round(ipc.stat().st_size / 1e6, 1)
    # size of the company column, as quoted in issue 6 (~18 bytes per name)
    import pyarrow as pa

    if ipc.exists():
        with pa.memory_map(str(ipc)) as src:
            t = pa.ipc.open_file(src).read_all()
            company = t.column("ProcessVersionInfoCompanyName")
            info["company_column_bytes"] = company.nbytes
            info["company_bytes_per_row"] = round(company.nbytes / max(1, t.num_rows), 1)
            del t, company
    return info


def machine_info() -> dict[str, Any]:
    import pyarrow as pa

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "pyarrow": pa.__version__,
    }
    try:
        cpu = Path("/proc/cpuinfo").read_text()
        m = re.search(r"model name\s*:\s*(.+)", cpu)
        info["cpu"] = m.group(1).strip() if m else None
        mem = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
        info["mem_total_gib"] = round(int(mem.group(1)) / 2**20, 1) if mem else None
    except OSError:
        pass
    for mod in ("duckdb", "polars", "rmmhunt"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception as e:  # noqa: BLE001 - recorded, not fatal
            info[mod] = f"unavailable: {e}"
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        info["git"] = head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        pass
    info["engine_binary"] = engine_binary()
    return info


def engine_binary() -> dict[str, str] | None:
    """The extension module the workers import (to notice a rebuild in the middle of a run)."""
    so = next((PY_SRC / "rmmhunt").glob("_rmmhunt*.so"), None)
    if so is None:
        return None
    return {
        "file": so.name,
        "mtime": datetime.fromtimestamp(so.stat().st_mtime, timezone.utc).isoformat(timespec="seconds"),
        "sha256": hashlib.sha256(so.read_bytes()).hexdigest()[:16],
    }


def compare(
    ref: Mapping[str, list[list[Any]]], got: Mapping[str, list[list[Any]]], specs: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Differences between two engines' normalized results, rule by rule (empty: identical)."""
    problems = []
    for s in specs:
        a, b = ref.get(s["id"]), got.get(s["id"])
        if a is None or b is None:
            problems.append(f"{s['id']}: missing result ({'reference' if a is None else 'engine'})")
            continue
        if a == b:
            continue
        nk = len(s["group_by"])
        da = {json.dumps(r[:nk]): r for r in a}
        db = {json.dumps(r[:nk]): r for r in b}
        msg = [f"rule {s['id']} ({s['name']}): {len(a)} groups in rmmhunt, {len(b)} here"]
        for k in sorted(set(da) | set(db))[:200]:
            if da.get(k) != db.get(k):
                msg.append(f"    group {k}: rmmhunt {_short(da.get(k), nk)} vs {_short(db.get(k), nk)}")
            if len(msg) > 6:
                break
        if len(da) != len(a) or len(db) != len(b):
            msg.append("    duplicate groups")
        problems.append("\n".join(msg))
    return problems


def _short(row: list[Any] | None, nk: int) -> str:
    if row is None:
        return "absent"
    first, last, count, rep = row[nk:]
    more = "..." if len(rep) > 4 else ""
    return f"First={first} Last={last} Count={count} Report({len(rep)})={rep[:4]}{more}"


def fmt_s(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.4f}" if x < 10 else f"{x:.2f}"


def evaluate_targets(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Issue 6's targets, as ratios measured in this run (informational; nothing fails on them)."""

    def get(case: str, engine: str, threads: int) -> Mapping[str, Any] | None:
        for r in runs:
            if (r["case"], r["engine"], r["threads"]) == (case, engine, threads) and r.get("median_s"):
                return r
        return None

    out: list[dict[str, Any]] = []

    def add(name: str, value: float | None, op: str, bound: float, detail: str) -> None:
        met = None if value is None else (value >= bound if op == ">=" else value <= bound)
        out.append(
            {
                "target": name,
                "value": None if value is None else round(value, 2),
                "op": op,
                "bound": bound,
                "met": met,
                "detail": detail,
            }
        )

    def ratio(
        a: Mapping[str, Any] | None, b: Mapping[str, Any] | None, key: str = "median_s"
    ) -> float | None:
        return None if a is None or b is None or not b.get(key) else float(a[key]) / float(b[key])

    rm1 = get("founding-memory", "rmmhunt", 1)
    add(
        "founding rule, in-memory Arrow, 1 thread: DuckDB / rmmhunt",
        ratio(get("founding-memory", "duckdb", 1), rm1),
        ">=",
        6,
        "time ratio",
    )
    rp1 = get("founding-parquet", "rmmhunt", 1)
    dp1 = get("founding-parquet", "duckdb", 1)
    add("from Parquet, 1 thread: DuckDB / rmmhunt", ratio(dp1, rp1), ">=", 3, "time ratio")
    add(
        "from Parquet, 1 thread: rmmhunt peak RSS / DuckDB peak RSS",
        ratio(rp1, dp1, "peak_rss_mb"),
        "<=",
        0.5,
        "peak RSS ratio (whole process)",
    )
    # The pack: the engine's one pass (rmmhunt.query_many), and the whole hunt() API on top
    # (rule planning, exclusion bookkeeping, the findings table).
    for which in ("rmmhunt", "rmmhunt-hunt"):
        pack = get("pack-memory", which, 1)
        if pack is None:
            continue
        add(f"whole pack ({which}) / founding rule, 1 thread", ratio(pack, rm1), "<=", 2, "time ratio")
        add(
            f"whole pack, 1 thread: DuckDB one query per rule / {which}",
            ratio(get("pack-memory", "duckdb", 1), pack),
            ">=",
            10,
            "time ratio",
        )
    pp1 = get("pack-parquet", "rmmhunt", 1)
    if pp1 is not None:
        add(
            "whole pack from Parquet / founding rule from Parquet, 1 thread",
            ratio(pp1, rp1),
            "<=",
            2,
            "time ratio",
        )
    for case in CASES:
        for eng in ("rmmhunt", "rmmhunt-hunt") if case == "pack-memory" else ("rmmhunt",):
            add(
                f"{case} ({eng}): 1 thread / 2 threads",
                ratio(get(case, eng, 1), get(case, eng, 2)),
                ">=",
                1.7,
                "speed-up",
            )
    return out


def print_report(runs: Sequence[Mapping[str, Any]], targets: Sequence[Mapping[str, Any]]) -> None:
    head = (
        f"{'case':<17} {'thr':>3} {'engine':<16} {'median s':>9} {'min s':>9} {'x rmmhunt':>9} "
        f"{'peak RSS MB':>11} {'+over data':>10}  check"
    )
    log("\n" + head)
    log("-" * len(head))
    for r in runs:
        ratio = r.get("ratio_vs_rmmhunt")
        log(
            f"{r['case']:<17} {r['threads']:>3} {r['engine']:<16} {fmt_s(r.get('median_s')):>9} "
            f"{fmt_s(r.get('min_s')):>9} {'-' if ratio is None else f'{ratio:.2f}':>9} "
            f"{r.get('peak_rss_mb', '-'):>11} {r.get('rss_over_baseline_mb', '-'):>10}  {r['check']}"
        )
    log("\nx rmmhunt = engine median / rmmhunt median (same case and threads): above 1, rmmhunt is faster.")
    log("peak RSS = the engine's whole process (wait4 ru_maxrss); +over data = peak minus the RSS")
    log("           after loading the input and the engine, before the first query.")
    readers = sorted({r["reader"] for r in runs if r.get("reader")})
    for reader in readers:
        log(f"rmmhunt read Parquet with: {reader}")
    if targets:
        log("\nIssue 6 targets (informational, this run):")
        for t in targets:
            state = "n/a" if t["met"] is None else ("met" if t["met"] else "NOT met")
            val = "-" if t["value"] is None else t["value"]
            log(f"  {t['target']}: {val} (target {t['op']} {t['bound']}) {state}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--rows",
        type=int,
        default=None,
        help=f"rows of {TABLE} (default {DEFAULT_ROWS:,}; --smoke: {SMOKE_ROWS:,})",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="timed repetitions per run (default 9; --smoke: 1); the median is reported",
    )
    p.add_argument(
        "--pack-repeat",
        type=int,
        default=None,
        help="repetitions of the peers in the pack case (default: min(--repeat, 3)); rmmhunt's "
        "engines, a tenth of a second each, repeat --repeat times there too",
    )
    p.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default 1,2)")
    p.add_argument("--cases", default=",".join(CASES), help=f"subset of {','.join(CASES)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--now", default=DEFAULT_NOW, help=f"fixed now() (default {DEFAULT_NOW})")
    p.add_argument("--smoke", action="store_true", help="tiny data, one repetition (for CI)")
    p.add_argument("--data-dir", default=str(ROOT / "benchmarks" / "data"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "latest.json"))
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per engine run")
    p.add_argument("--_worker", help=argparse.SUPPRESS)
    p.add_argument("--_generate", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args._generate:
        rows, seed, path = json.loads(args._generate)
        generate_parquet(int(rows), int(seed), Path(path))
        return 0
    if args._worker:
        task_file = Path(args._worker)
        task = json.loads(task_file.read_text())
        out = worker(task)
        Path(task["result_file"]).write_text(json.dumps(out))
        return 0

    args.rows = args.rows if args.rows is not None else (SMOKE_ROWS if args.smoke else DEFAULT_ROWS)
    args.repeat = args.repeat if args.repeat is not None else (1 if args.smoke else REPEAT)
    pack_repeat = args.pack_repeat if args.pack_repeat is not None else min(args.repeat, 3)
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for c in cases:
        if c not in CASES:
            p.error(f"unknown case {c!r}; choose from {', '.join(CASES)}")
    now_dt = datetime.fromisoformat(args.now.replace("Z", "+00:00"))
    if now_dt.tzinfo is None:
        now_dt = now_dt.replace(tzinfo=timezone.utc)
    now_us = _td_us(now_dt - datetime(1970, 1, 1, tzinfo=timezone.utc))

    sys.path.insert(0, str(PY_SRC))
    machine = machine_info()
    log(f"rmmhunt benchmark: {args.rows:,} rows, repeat {args.repeat}, threads {threads}, now {args.now}")
    log(f"load average {machine['load_avg_at_start']} on {machine['cpus']} CPUs")
    specs, skipped = rule_specs()
    founding = specs[:1]
    log(
        f"pack: {len(specs)} rules over {TABLE} (founding rule + {len(specs) - 1} pack rules); "
        f"{len(skipped)} left out"
    )
    for s in skipped:
        log(f"  left out {s['name']}: {s['reason']}")
    has_hunt = find_hunt() is not None
    data = ensure_data(args, specs, need_ipc=any(c.endswith("-memory") for c in cases))

    runs: list[dict[str, Any]] = []
    failures: list[str] = []
    checks: list[dict[str, Any]] = []
    refs: dict[str, dict[str, list[list[Any]]]] = {}
    with tempfile.TemporaryDirectory(prefix="rmmhunt-bench-") as tmp:
        for case in cases:
            case_specs = specs if case.startswith("pack") else founding
            # An engine's thread counts back to back: its speed-up compares runs a few
            # seconds apart, not minutes (the peers' runs between them once left the
            # machine in another state, and rmmhunt's two-thread ratio with it).
            for engine, th in ((e, t) for e in ENGINES[case] for t in threads):
                if engine == "rmmhunt-hunt" and not has_hunt:
                    continue
                # The pack's peers take tens of seconds a run; rmmhunt's 0.1 s runs get the
                # full count (three of them left its two-thread ratio at the mercy of one).
                slow = case.startswith("pack") and not engine.startswith("rmmhunt")
                repeat = pack_repeat if slow else args.repeat
                task = {
                    "engine": engine,
                    "case": case,
                    "source": "parquet" if case.endswith("parquet") else "memory",
                    "threads": th,
                    "repeat": repeat,
                    "rules": case_specs,
                    "now_us": now_us,
                    "parquet": data["parquet"],
                    "ipc": data["ipc"],
                    "result_file": str(Path(tmp) / f"{case}-{engine}-{th}.json"),
                }
                task_file = Path(tmp) / f"{case}-{engine}-{th}.task.json"
                task_file.write_text(json.dumps(task))
                log(f"[{case} | {th} thread{'s' if th > 1 else ''} | {engine}] {repeat}x ...")
                code, rss_kb, wall = spawn(
                    [sys.executable, __file__, "--_worker", str(task_file)], child_env(th), args.timeout
                )
                run: dict[str, Any] = {
                    "case": case,
                    "engine": engine,
                    "threads": th,
                    "rules": len(case_specs),
                    "repeat": repeat,
                    "what": ENGINE_NOTES[engine],
                    "wall_s": round(wall, 2),
                    "peak_rss_mb": round(rss_kb / 1024),
                }
                rf = Path(task["result_file"])
                if code != 0 or not rf.exists():
                    run.update(check="ERROR", error=f"exit code {code}")
                    failures.append(f"{case} {engine} {th} threads: the run failed (exit {code})")
                    runs.append(run)
                    continue
                out = json.loads(rf.read_text())
                results = out.pop("results")
                times = out.pop("times")
                run.update(out)
                run.update(
                    times_s=[round(t, 5) for t in times],
                    median_s=statistics.median(times),
                    min_s=min(times),
                    rss_baseline_mb=round(out["rss_baseline_kb"] / 1024),
                    rss_over_baseline_mb=round((rss_kb - out["rss_baseline_kb"]) / 1024),
                    groups=sum(len(v) for v in results.values()),
                    matched_rows=sum(r[-2] for v in results.values() for r in v),
                )
                run.pop("rss_baseline_kb", None)
                log(
                    f"    median {fmt_s(run['median_s'])} s, peak RSS {run['peak_rss_mb']} MB, "
                    f"{run['groups']} groups / {run['matched_rows']} rows matched"
                )
                if engine == "rmmhunt" and case not in refs:
                    refs[case] = results
                    run["check"] = "reference"
                    if run["groups"] == 0:
                        failures.append(f"{case}: rmmhunt found nothing; the checks would be vacuous")
                elif case not in refs:
                    run["check"] = "no reference"
                    failures.append(f"{case} {engine}: no rmmhunt reference to check against")
                else:
                    problems = compare(refs[case], results, case_specs)
                    ok = not problems
                    run["check"] = "identical" if ok else "DIFFERENT"
                    checks.append(
                        {
                            "case": case,
                            "engine": engine,
                            "threads": th,
                            "ok": ok,
                            "rules": len(case_specs),
                            "groups": run["groups"],
                            "problems": problems[:20],
                        }
                    )
                    if not ok:
                        failures.append(f"{case} {engine} {th} threads: results differ from rmmhunt")
                        log("    RESULTS DIFFER FROM RMMHUNT:")
                        for prob in problems[:10]:
                            log("      " + prob.replace("\n", "\n      "))
                runs.append(run)

    for r in runs:
        ref = next(
            (
                x
                for x in runs
                if (x["case"], x["threads"], x["engine"]) == (r["case"], r["threads"], "rmmhunt")
                and x.get("median_s")
            ),
            None,
        )
        if ref is not None and r.get("median_s"):
            r["ratio_vs_rmmhunt"] = round(r["median_s"] / ref["median_s"], 3)
    if engine_binary() != machine["engine_binary"]:
        failures.append("the rmmhunt extension module changed during the run: the runs mix two builds")
    targets = evaluate_targets(runs)
    print_report(runs, targets)
    n_ok = sum(c["ok"] for c in checks)
    log(
        f"\nresult checks: {n_ok} identical, {len(checks) - n_ok} different "
        f"({sum(c['rules'] for c in checks)} rule results compared)"
    )

    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "rows": args.rows,
        "seed": args.seed,
        "now": args.now,
        "repeat": args.repeat,
        "pack_repeat": pack_repeat,
        "threads": threads,
        "smoke": args.smoke,
        "data": data,
        "rules": [{"id": s["id"], "name": s["name"]} for s in specs],
        "rules_left_out": skipped,
        "hunt_available": has_hunt,
        "runs": runs,
        "checks": checks,
        "checks_passed": n_ok,
        "checks_failed": len(checks) - n_ok,
        "targets": targets,
        "failures": failures,
        "ok": not failures,
    }
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    log(f"results written to {out_path}")
    if failures:
        log("\nFAILED:")
        for f in failures:
            log(f"  {f}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
