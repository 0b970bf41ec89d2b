"""The engine through the public Python API: inputs of every Arrow shape, results in
every format, errors, and the founding query against DuckDB on generated data."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
import rmmhunt
from rmmhunt.sample import sample

FOUNDING = """let Time_start = now(-5d);
let Time_end = now();
DeviceProcessEvents
| where Timestamp between (Time_start..Time_end)
| where ProcessVersionInfoCompanyName has_any ('ConnectWise','Continuum Managed','ScreenConnect')
| summarize FirstSeen=min(Timestamp), LastSeen=max(Timestamp),
  Report=make_set(ReportId), Count=count() by DeviceId, DeviceName"""

NOW = datetime(2024, 6, 6, tzinfo=timezone.utc)


def test_import_does_not_load_dataframe_libraries() -> None:
    code = (
        "import sys, rmmhunt, rmmhunt.rules; "
        "bad = [m for m in ('pandas', 'polars', 'pyarrow') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_to_arrow_does_not_import_pandas() -> None:
    # pyarrow.table(obj) imports pandas to ask whether obj is a DataFrame: ~50 MB and a third
    # of a second for a ten-row result. Results and file tables convert as Arrow streams.
    code = (
        "import sys, rmmhunt; "
        "t = rmmhunt.query('print x = 1').to_arrow(); "
        "d = rmmhunt.query('datatable(s: string) [\"a\", \"b\", \"c\", \"d\"]').to_arrow(); "
        "f = rmmhunt.query('T | where s != \"d\"', {'T': d}).to_arrow(); "
        "assert t.num_rows == 1 and f.num_rows == 3, (t, f); "
        "print('pandas' in sys.modules); sys.exit(1 if 'pandas' in sys.modules else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_print_and_result_formats() -> None:
    r = rmmhunt.query('print n = 1 + 1, s = "a", d = datetime(2020-01-01), l = dynamic([1, 2]), m = dynamic({"k": "v"})')
    assert r.columns == ["n", "s", "d", "l", "m"]
    assert r.kql_types == {"n": "long", "s": "string", "d": "datetime", "l": "dynamic", "m": "dynamic"}
    assert len(r) == 1
    t = r.to_arrow()
    assert t.schema.field("n").type == pa.int64()
    assert t.schema.field("d").type == pa.timestamp("ns", tz="UTC")
    assert t.schema.field("l").type == pa.list_(pa.int64())
    df = r.to_pandas()
    assert str(df["d"].dtype) == "datetime64[ns, UTC]"
    assert df["l"][0] == [1, 2] and isinstance(df["l"][0], list)
    assert df["m"][0] == {"k": "v"}
    assert r.to_polars().shape == (1, 5)
    assert pa.table(r).num_rows == 1  # PyCapsule export
    assert "<table>" in r._repr_html_()


def test_now_freezes_the_clock() -> None:
    r = rmmhunt.query("print a = now(), b = ago(1d), c = now(-5d)", now="2024-06-06T00:00:00Z")
    row = r.to_pylist()[0]
    assert row["a"] == datetime(2024, 6, 6, tzinfo=timezone.utc)
    assert row["b"] == datetime(2024, 6, 5, tzinfo=timezone.utc)
    assert row["c"] == datetime(2024, 6, 1, tzinfo=timezone.utc)
    naive = rmmhunt.query("print a = now()", now=datetime(2024, 6, 6)).to_pylist()[0]["a"]
    assert naive == datetime(2024, 6, 6, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "arr",
    [
        pa.array(["ScreenConnect", None, "x"], pa.string()),
        pa.array(["ScreenConnect", None, "x"], pa.large_string()),
        pa.array(["ScreenConnect", None, "x"], pa.string_view()),
        pa.array(["ScreenConnect", None, "x"]).dictionary_encode(),
        pa.array(["ScreenConnect", None, "x"], pa.large_string()).dictionary_encode(),
    ],
    ids=["utf8", "large", "view", "dict", "dict-large"],
)
def test_every_string_layout(arr: pa.Array) -> None:
    t = pa.table({"s": arr})
    r = rmmhunt.query("T | extend e = isempty(s) | where s has 'screenconnect' or e", {"T": t})
    assert r.to_pylist() == [{"s": "ScreenConnect", "e": False}, {"s": "", "e": True}]


@pytest.mark.parametrize("typ", [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()])
def test_integer_widths(typ: pa.DataType) -> None:
    t = pa.table({"x": pa.array([1, None, 3], typ)})
    r = rmmhunt.query("T | summarize s = sum(x), c = count(), n = countif(isnull(x))", {"T": t})
    assert r.to_pylist() == [{"s": 4, "c": 3, "n": 1}]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", "+02:00"])
def test_timestamps_of_any_unit_and_zone(unit: str, tz: str | None) -> None:
    t = pa.table({"ts": pa.array([0, 86400], pa.int64()).cast(pa.timestamp("s")).cast(pa.timestamp(unit, tz=tz))})
    r = rmmhunt.query("T | where ts > datetime(1970-01-01) | project ts, d = bin(ts, 1d)", {"T": t})
    rows = r.to_pylist()
    assert rows == [{"ts": datetime(1970, 1, 2, tzinfo=timezone.utc), "d": datetime(1970, 1, 2, tzinfo=timezone.utc)}]


def test_floats_bools_durations() -> None:
    t = pa.table(
        {
            "f": pa.array([1.5, None], pa.float32()),
            "b": pa.array([True, None]),
            "d": pa.array([timedelta(hours=1), None], pa.duration("us")),
        }
    )
    r = rmmhunt.query("T | project f2 = f * 2, nb = not(b), d2 = d + 1h", {"T": t})
    assert r.kql_types == {"f2": "real", "nb": "bool", "d2": "timespan"}
    assert r.to_pylist() == [{"f2": 3.0, "nb": False, "d2": timedelta(hours=2)}, {"f2": None, "nb": None, "d2": None}]


def test_to_pandas_keeps_long_values_exact_with_nulls() -> None:
    """A long column with nulls becomes pandas' nullable Int64 (as azure-kusto-data gives
    it), not float64, which rounds 2**53 + 1; a column without nulls stays int64."""
    r = rmmhunt.query(
        "datatable(n:long, m:long, i:int)[9007199254740993, 1, int(null), long(null), 2, 3]"
    )
    df = r.to_pandas()
    assert df["n"].tolist()[0] == 9007199254740993 and df["n"].isna().tolist() == [False, True]
    assert str(df["n"].dtype) == "Int64" and str(df["i"].dtype) == "Int32"
    assert str(df["m"].dtype) == "int64" and df["m"].tolist() == [1, 2]


def test_pandas_polars_duckdb_inputs() -> None:
    df = pd.DataFrame({"Timestamp": pd.to_datetime(["2024-06-05T00:00:00Z"]), "DeviceName": ["wks-1"]})
    for data in (df, pl.from_pandas(df), duckdb.sql("select * from df"), pa.Table.from_pandas(df).to_reader()):
        r = rmmhunt.query("T | where Timestamp > ago(2d) | project DeviceName", {"T": data}, now=NOW)
        assert r.to_pylist() == [{"DeviceName": "wks-1"}], type(data)


def test_errors_are_typed_with_position() -> None:
    with pytest.raises(rmmhunt.KqlSyntaxError) as e:
        rmmhunt.query("print x = 1\n| wher x")
    assert (e.value.line, e.value.column) == (2, 3)
    assert isinstance(e.value, ValueError) and isinstance(e.value, rmmhunt.RmmhuntError)
    assert "^" in str(e.value)
    with pytest.raises(rmmhunt.KqlSemanticError, match="closest available: DeviceProcessEvents"):
        rmmhunt.query("DeviceProcessEvent | take 1", {"DeviceProcessEvents": pa.table({"a": [1]})})
    with pytest.raises(rmmhunt.UnsupportedError, match="'mv-expand'") as u:
        rmmhunt.query("print x = 1 | mv-expand x")
    assert isinstance(u.value, NotImplementedError)
    with pytest.raises(rmmhunt.KqlSemanticError, match="string and long"):
        rmmhunt.query("print x = 'a' + 1")
    with pytest.raises(TypeError, match="expected Arrow data"):
        rmmhunt.query("T", {"T": 42})


def test_parse_print_explain_tables() -> None:
    q = rmmhunt.parse(FOUNDING)
    assert q.tables == ["DeviceProcessEvents"]
    again = rmmhunt.parse(str(q))
    assert str(again) == str(q)
    t = sample("DeviceProcessEvents", 1000, seed=3)
    plan = q.explain({"DeviceProcessEvents": t})
    assert "Scan DeviceProcessEvents" in plan
    assert "kernel:" in plan and "HasAny" in plan
    edited = q.insert_where('FolderPath !contains "temp"').set_let("Time_start", "now(-7d)")
    assert "now(-7d)" in str(edited) and '!contains "temp"' in str(edited)
    assert rmmhunt.kql_string('a"b\\c\n') == '"a\\"b\\\\c\\n"'


def _duckdb_founding(t: pa.Table, now: datetime) -> set[tuple[object, ...]]:
    """The founding query in SQL, with Kusto's term rule as an anchored regex."""
    needles = ["connectwise", "continuum managed", "screenconnect"]
    pattern = "(?i)" + "|".join(f"(^|[^\\pL\\pN]){n}($|[^\\pL\\pN])" for n in needles)
    con = duckdb.connect()
    con.register("t", t)
    rows = con.execute(
        """
        select coalesce(DeviceId, ''), coalesce(DeviceName, ''), min(Timestamp), max(Timestamp),
               list_sort(list(distinct ReportId)), count(*)
        from t
        where Timestamp between ? - interval 5 day and ?
          and regexp_matches(coalesce(ProcessVersionInfoCompanyName, ''), ?)
        group by all
        """,
        [now, now, pattern],
    ).fetchall()
    return {(a, b, c, d, tuple(e), f) for a, b, c, d, e, f in rows}


@pytest.mark.parametrize("seed", [1, 2])
def test_founding_query_matches_duckdb(seed: int) -> None:
    t = sample("DeviceProcessEvents", 50_000, seed=seed)
    r = rmmhunt.query(FOUNDING, {"DeviceProcessEvents": t}, now=NOW)
    assert r.columns == ["DeviceId", "DeviceName", "FirstSeen", "LastSeen", "Report", "Count"]
    ours = {
        (row["DeviceId"], row["DeviceName"], row["FirstSeen"].to_pydatetime(), row["LastSeen"].to_pydatetime(), tuple(sorted(row["Report"])), row["Count"])
        for row in r.to_pandas().to_dict("records")
    }
    theirs = _duckdb_founding(t, NOW)
    assert ours == theirs
    assert len(ours) > 0


def test_column_read_by_the_scan_filter_and_wanted_above() -> None:
    """A column the fused scan filter tests is converted for the kept rows only when
    something above (or the rest of the filter) reads it: projected, grouped by, or
    tested again by a non-raw conjunct, it is there; counted, it need not be."""
    t = pa.table({"FileName": ["a.exe", "svchost.exe", "B.dll", None], "X": [1, 2, 3, 4]})
    q = 'T | where FileName !startswith "svc"'
    assert rmmhunt.query(q + " | count", {"T": t}).to_pylist() == [{"Count": 3}]
    assert rmmhunt.query(q + " | project FileName, X", {"T": t}).to_pylist() == [
        {"FileName": "a.exe", "X": 1},
        {"FileName": "B.dll", "X": 3},
        {"FileName": "", "X": 4},
    ]
    got = rmmhunt.query(q + " and strlen(FileName) > 4 | summarize n = count() by X", {"T": t})
    assert got.to_pylist() == [{"X": 1, "n": 1}, {"X": 3, "n": 1}]
