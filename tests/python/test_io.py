"""rmmhunt.read: Parquet, CSV, JSON and gzip files, directories and globs, bad-row reports,
strict mode, and file tables in rmmhunt.query. Fixtures are written here, into tmp_path."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import subprocess
import sys
import zoneinfo
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rmmhunt
from rmmhunt import DataError

NOW = "2024-06-06T00:00:00Z"


def _procs_table(n: int = 30) -> pa.Table:
    start = dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)
    return pa.table(
        {
            "Timestamp": pa.array(
                [start + dt.timedelta(hours=i) for i in range(n)], pa.timestamp("us", tz="UTC")
            ),
            "DeviceName": pa.array([f"wks-{i % 4:02d}" for i in range(n)]).dictionary_encode(),
            "FileName": ["AnyDesk.exe" if i % 10 == 0 else f"proc{i}.exe" for i in range(n)],
            "ProcessId": pa.array(range(1000, 1000 + n), pa.int64()),
        }
    )


@pytest.fixture
def procs_parquet(tmp_path: Path) -> Path:
    p = tmp_path / "DeviceProcessEvents.parquet"
    pq.write_table(_procs_table(), p, row_group_size=10)
    return p


PLAIN_CSV = (
    "Timestamp,DeviceName,ProcessId,FileName\n"
    "2024-06-01T10:00:00Z,wks-01,100,AnyDesk.exe\n"
    "2024-06-01T10:05:00Z,wks-02,not-a-number,cmd.exe\n"
    "yesterday,wks-03,300,cmd.exe\n"
    "2024-06-01T10:15:00Z,wks-04\n"
)

PORTAL_CSV = (
    '\ufeffTenantId,"TimeGenerated [Local Time]","Timestamp [UTC]",DeviceName,ProcessId,AdditionalFields,Type\n'
    't1,"6/1/2024, 12:43:21.994 PM","6/1/2024, 10:43:21.994 AM",wks-01,4242,"{""a"":1}",DeviceProcessEvents\n'
)


def _record(category: str, device: str, pid: object) -> str:
    return json.dumps(
        {
            "time": "2024-06-01T10:00:00.1234567Z",
            "tenantId": "00000000-0000-0000-0000-000000000001",
            "operationName": "Publish",
            "category": category,
            "properties": {
                "Timestamp": "2024-06-01T10:00:00.1234567Z",
                "DeviceName": device,
                "ProcessId": pid,
            },
        }
    )


# ----------------------------------------------------------------------------------------------
# Parquet


def test_read_parquet_names_the_table_by_file_name(procs_parquet: Path) -> None:
    t = rmmhunt.read(procs_parquet)
    assert isinstance(t, rmmhunt.FileTable)
    assert t.table == "DeviceProcessEvents"
    assert t.paths == [str(procs_parquet)]
    assert t.columns == {
        "Timestamp": "datetime",
        "DeviceName": "string",
        "FileName": "string",
        "ProcessId": "long",
    }
    assert "DeviceProcessEvents" in repr(t)


def test_file_table_in_query(procs_parquet: Path) -> None:
    t = rmmhunt.read(procs_parquet)
    r = rmmhunt.query(
        "DeviceProcessEvents | where FileName =~ 'anydesk.exe' | summarize n = count() by DeviceName | order by DeviceName asc",
        tables={"DeviceProcessEvents": t},
        now=NOW,
    )
    assert r.to_arrow().to_pylist() == [
        {"DeviceName": "wks-00", "n": 2},
        {"DeviceName": "wks-02", "n": 1},
    ]


def test_paths_are_accepted_in_tables(procs_parquet: Path) -> None:
    r = rmmhunt.query(
        "DeviceProcessEvents | count", tables={"DeviceProcessEvents": str(procs_parquet)}, now=NOW
    )
    assert r.to_arrow().to_pylist() == [{"Count": 30}]


def test_to_arrow_and_pycapsule(procs_parquet: Path) -> None:
    t = rmmhunt.read(procs_parquet)
    a = t.to_arrow()
    assert a.num_rows == 30
    assert a.schema.field("Timestamp").type == pa.timestamp("ns", tz="UTC")
    assert a.column("ProcessId").to_pylist()[:2] == [1000, 1001]
    assert pa.table(t).num_rows == 30


def test_corrupt_parquet_is_a_data_error_naming_it(tmp_path: Path, procs_parquet: Path) -> None:
    bad = tmp_path / "cut.parquet"
    bad.write_bytes(procs_parquet.read_bytes()[:-30])
    with pytest.raises(DataError, match="cut.parquet") as e:
        rmmhunt.read(bad, table="DeviceProcessEvents")
    assert isinstance(e.value, ValueError)


def test_bundled_sample_directory() -> None:
    data = Path(rmmhunt.__file__).parent / "data" / "sample"
    tables = rmmhunt.read_tables(data)
    assert sorted(tables) == ["DeviceFileCertificateInfo", "DeviceNetworkEvents", "DeviceProcessEvents"]
    r = rmmhunt.query("DeviceNetworkEvents | count", tables=tables, now=NOW)
    assert r.to_arrow().to_pylist() == [{"Count": 10000}]


# ----------------------------------------------------------------------------------------------
# CSV


def test_csv_bad_rows_are_reported(tmp_path: Path) -> None:
    p = tmp_path / "procs.csv"
    p.write_text(PLAIN_CSV)
    t = rmmhunt.read(p, table="DeviceProcessEvents")
    assert t.columns["Timestamp"] == "datetime"
    assert t.columns["ProcessId"] == "long"
    [rep] = t.report()
    assert rep["path"] == str(p)
    assert rep["table"] == "DeviceProcessEvents"
    assert (rep["rows"], rep["bad_rows"], rep["dropped_rows"]) == (3, 3, 1)
    first = rep["examples"][0]
    assert first == {
        "line": 3,
        "row": 2,
        "column": "ProcessId",
        "value": "not-a-number",
        "reason": "not a long (64-bit integer)",
        "kept": True,
    }
    assert rep["examples"][1]["column"] == "Timestamp"
    assert rep["examples"][2]["column"] is None and rep["examples"][2]["kept"] is False
    assert "line 4, column Timestamp" in rep["text"]
    # The kept rows carry nulls where values were bad.
    rows = t.to_arrow().to_pylist()
    assert [r["ProcessId"] for r in rows] == [100, None, 300]


def test_strict_makes_bad_rows_errors(tmp_path: Path) -> None:
    p = tmp_path / "procs.csv"
    p.write_text(PLAIN_CSV)
    t = rmmhunt.read(p, table="DeviceProcessEvents", strict=True)
    assert t.strict
    with pytest.raises(DataError) as e:
        rmmhunt.query("DeviceProcessEvents | count", tables={"DeviceProcessEvents": t}, now=NOW)
    msg = str(e.value)
    assert "procs.csv" in msg and "line 3" in msg and "ProcessId" in msg


def test_portal_export_with_time_zone(tmp_path: Path) -> None:
    p = tmp_path / "query_data.csv"
    p.write_text(PORTAL_CSV, encoding="utf-8")
    utc = rmmhunt.read(p)
    assert utc.table == "DeviceProcessEvents"
    assert utc.columns["TimeGenerated"] == "datetime"
    [rep] = utc.report()
    assert rep["format"] == "csv (Log Analytics export)"
    assert any("TimeGenerated" in w for w in rep["warnings"])
    row = utc.to_arrow().to_pylist()[0]
    assert row["Timestamp"] == dt.datetime(2024, 6, 1, 10, 43, 21, 994000, tzinfo=dt.timezone.utc)
    assert row["TimeGenerated"] == dt.datetime(2024, 6, 1, 12, 43, 21, 994000, tzinfo=dt.timezone.utc)
    for zone in ("Europe/Berlin", zoneinfo.ZoneInfo("Europe/Berlin"), dt.timezone(dt.timedelta(hours=2))):
        local = rmmhunt.read(p, timezone=zone)
        row = local.to_arrow().to_pylist()[0]
        assert row["TimeGenerated"] == dt.datetime(2024, 6, 1, 10, 43, 21, 994000, tzinfo=dt.timezone.utc), (
            zone
        )
        assert local.report()[0]["warnings"] == []
    with pytest.raises(DataError, match="Atlantis/Lost"):
        rmmhunt.read(p, timezone="Atlantis/Lost")


def test_unknown_table_is_an_error_naming_the_file(tmp_path: Path) -> None:
    p = tmp_path / "export.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="export.csv"):
        rmmhunt.read(p)
    t = rmmhunt.read(p, table="MyTable")
    assert t.columns == {"a": "string", "b": "string"}


def test_forced_format(tmp_path: Path) -> None:
    p = tmp_path / "data.txt"
    p.write_text("DeviceName,ProcessId\nwks-1,5\n")
    t = rmmhunt.read(p, table="DeviceProcessEvents", format="csv")
    assert t.to_arrow().to_pylist() == [{"DeviceName": "wks-1", "ProcessId": 5}]
    with pytest.raises(DataError, match="unknown format"):
        rmmhunt.read(p, table="DeviceProcessEvents", format="xlsx")


# ----------------------------------------------------------------------------------------------
# JSON


def test_advanced_hunting_api_response(tmp_path: Path) -> None:
    doc = {
        "Stats": {},
        "Schema": [{"Name": "Timestamp", "Type": "DateTime"}, {"Name": "ProcessId", "Type": "Int64"}],
        "Results": [
            {"Timestamp": "2024-06-01T10:00:00.1234567Z", "ProcessId": 1},
            {"Timestamp": "bad", "ProcessId": 2},
        ],
    }
    p = tmp_path / "ah.json"
    p.write_text(json.dumps(doc, indent=2))
    t = rmmhunt.read(p, table="DeviceProcessEvents")
    [rep] = t.report()
    assert rep["format"] == "json (Advanced Hunting API)"
    assert (rep["rows"], rep["bad_rows"]) == (2, 1)
    assert rep["examples"][0]["column"] == "Timestamp"
    assert rep["examples"][0]["line"] > 1


def test_streaming_records_several_tables(tmp_path: Path) -> None:
    lines = [
        _record("AdvancedHunting-DeviceProcessEvents", "wks-01", 1),
        _record("AdvancedHunting-DeviceNetworkEvents", "wks-02", 2),
        "{not json",
        _record("AdvancedHunting-DeviceProcessEvents", "wks-03", 3),
    ]
    p = tmp_path / "PT1H.json"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="several tables"):
        rmmhunt.read(p)
    tables = rmmhunt.read_tables(p)
    assert list(tables) == ["DeviceProcessEvents", "DeviceNetworkEvents"]
    procs = rmmhunt.read(p, table="DeviceProcessEvents")
    assert any("DeviceNetworkEvents" in n for n in procs.notes)
    [rep] = procs.report()
    assert rep["other_tables"] == {"DeviceNetworkEvents": 1}
    assert (rep["rows"], rep["dropped_rows"]) == (2, 1)
    assert rep["examples"][0]["line"] == 3
    r = rmmhunt.query(
        "DeviceProcessEvents | order by ProcessId asc | project DeviceName",
        tables={"DeviceProcessEvents": procs},
        now=NOW,
    )
    assert r.to_arrow().column("DeviceName").to_pylist() == ["wks-01", "wks-03"]


def test_gzip_directory_and_glob(tmp_path: Path) -> None:
    d = tmp_path / "insights-logs-advancedhunting-deviceprocessevents" / "y=2024" / "m=06"
    d.mkdir(parents=True)
    (d / "PT1H.json.gz").write_bytes(
        gzip.compress((_record("AdvancedHunting-DeviceProcessEvents", "w1", 1) + "\n").encode())
    )
    (d / "notes.txt").write_text("not data")
    t = rmmhunt.read(tmp_path)
    assert t.table == "DeviceProcessEvents"
    assert len(t.paths) == 1
    assert any("notes.txt" in n for n in t.notes)
    g = rmmhunt.read(str(tmp_path / "**" / "*.json.gz"))
    assert g.paths == t.paths
    with pytest.raises(DataError, match="no files match"):
        rmmhunt.read(str(tmp_path / "*.parquet"), table="DeviceProcessEvents")


def test_truncated_gzip_is_a_data_error(tmp_path: Path) -> None:
    body = "".join(f"wks-{i},{i}\n" for i in range(20000))
    z = gzip.compress(("DeviceName,ProcessId\n" + body).encode())
    p = tmp_path / "procs.csv.gz"
    p.write_bytes(z[: len(z) // 2])
    with pytest.raises(DataError, match="procs.csv.gz"):
        t = rmmhunt.read(p, table="DeviceProcessEvents")
        rmmhunt.query("DeviceProcessEvents | count", tables={"DeviceProcessEvents": t}, now=NOW)


def test_importing_io_does_not_import_pyarrow() -> None:
    code = "import sys, rmmhunt.io; assert 'pyarrow' not in sys.modules, 'pyarrow imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
