"""The rmmhunt command tells what the reader could not read, gives command-line advice (not
Python's), and refuses options it cannot honour: input reports, --timezone, empty and unusable
inputs, multi-table files, BOM-prefixed KQL, -o extensions, --lookback, sample's --rows."""

from __future__ import annotations

import io
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rmmhunt import cli
from rmmhunt.sample import schema

UTC = timezone.utc
NOW = datetime(2024, 6, 6, tzinfo=UTC)
NOW_TEXT = "2024-06-06T00:00:00Z"
CONNECTWISE = "83f7b313-b955-4988-b524-b2da55c67b43"
PYTHON_ADVICE = ("table=", "read_tables", "plant=", "decoys=", "format=", "timezone=", "['", "[\"")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def no_python_advice(err: str) -> bool:
    return not any(x in err for x in PYTHON_ADVICE)


def procs(n: int = 4) -> pa.Table:
    """n DeviceProcessEvents rows; the first is a ConnectWise process the founding rule finds."""
    rows = [
        {
            "Timestamp": NOW - timedelta(hours=3 + i),
            "DeviceId": f"id-{i}",
            "DeviceName": f"wks-{i}",
            "ReportId": i,
            "AccountUpn": f"u{i}@corp",
            "FileName": "a.exe",
            "FolderPath": r"C:\x\a.exe",
            "ProcessCommandLine": "a.exe",
            "InitiatingProcessFileName": "services.exe",
            "ProcessVersionInfoCompanyName": "ConnectWise, Inc." if i == 0 else "Contoso",
            "ProcessVersionInfoProductName": "Contoso Widget",
        }
        for i in range(n)
    ]
    return pa.Table.from_pylist(rows, schema=schema("DeviceProcessEvents"))


def write_csv(table: pa.Table, path: Path) -> Path:
    pacsv.write_csv(table, path)
    return path


# ----------------------------------------------------------------------------------------------
# What the reader could not read (F2)


def test_truncated_csv_is_reported(capsys, tmp_path):
    path = write_csv(procs(), tmp_path / "DeviceProcessEvents.csv")
    data = path.read_bytes()
    path.write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 40])  # cut the last row short
    code, out, err = run(capsys, "query", "DeviceProcessEvents | count", "--table", str(path), "--format", "json")
    assert code == 0 and json.loads(out) == [{"Count": 3}]
    assert "DeviceProcessEvents.csv: 1 bad row of 4 (1 dropped); first: line 5:" in err
    assert "--strict" in err
    # --quiet: nothing on stderr
    code, out, err = run(capsys, "query", "DeviceProcessEvents | count", "--table", str(path), "-q")
    assert code == 0 and err == ""


def test_invalid_utf8_is_reported(capsys, tmp_path):
    path = write_csv(procs(), tmp_path / "DeviceProcessEvents.csv")
    path.write_bytes(path.read_bytes().replace(b"Widget", b"Widget\xae"))  # cp1252 (R)
    code, _, err = run(capsys, "hunt", str(path), "--now", NOW_TEXT, "--rules", CONNECTWISE, "--format", "json")
    assert code == 0
    assert "4 bad rows of 4 (4 kept with invalid UTF-8 replaced by U+FFFD)" in err
    assert "column ProcessVersionInfoProductName: invalid UTF-8" in err


def test_unreadable_timestamps_stop_a_hunt(capsys, tmp_path):
    t = procs()
    i = t.schema.get_field_index("Timestamp")
    path = tmp_path / "DeviceProcessEvents_intts.parquet"
    pq.write_table(t.set_column(i, "Timestamp", pc.cast(t["Timestamp"], pa.int64())), path)
    # the same rows with real timestamps give a finding: the check is not the rules' doing
    good = tmp_path / "DeviceProcessEvents.parquet"
    pq.write_table(t, good)
    assert run(capsys, "hunt", str(good), "--now", NOW_TEXT, "--rules", CONNECTWISE, "--fail-on-match")[0] == 1
    code, out, err = run(capsys, "hunt", str(path), "--now", NOW_TEXT, "--rules", CONNECTWISE, "--fail-on-match")
    assert code == 2 and out == ""
    assert "warning: " in err and "4 bad rows of 4 (4 kept with the bad values made null)" in err
    assert "first: row 1, column Timestamp: a long value where a datetime is expected" in err
    assert "column Timestamp has no readable value in its 4 rows, and the rules need it" in err
    # --quiet drops the warnings, not the error
    code, _, err = run(capsys, "hunt", str(path), "--now", NOW_TEXT, "--rules", CONNECTWISE, "-q")
    assert code == 2 and err.startswith("rmmhunt: error:") and "warning" not in err
    # query only warns: looking at bad data is what it is for
    code, out, err = run(capsys, "query", "DeviceProcessEvents | count", "--table", str(path), "--format", "json")
    assert code == 0 and json.loads(out) == [{"Count": 4}]
    assert "column Timestamp has no readable value" in err


def test_an_unneeded_unreadable_column_is_only_a_warning(capsys, tmp_path):
    t = procs()
    path = write_csv(t, tmp_path / "DeviceProcessEvents.csv")
    text = path.read_text()
    header, *rows = text.splitlines()
    col = header.split(",").index('"FileSize"')
    fixed = []
    for row in rows:
        cells = row.split(",")
        cells[col] = "lots"
        fixed.append(",".join(cells))
    path.write_text("\n".join([header, *fixed]) + "\n")
    code, out, err = run(capsys, "hunt", str(path), "--now", NOW_TEXT, "--rules", CONNECTWISE, "--format", "json")
    assert code == 0 and len(json.loads(out)) == 1
    assert "column FileSize has no readable value in its 4 rows; anything computed from it is empty" in err


def test_empty_files(capsys, tmp_path, monkeypatch):
    empty = tmp_path / "DeviceProcessEvents.parquet"
    empty.write_bytes(b"")
    code, out, err = run(capsys, "hunt", str(empty), "--now", NOW_TEXT, "--fail-on-match")
    assert code == 2 and out == "" and "the file is empty (0 bytes)" in err
    code, _, err = run(capsys, "hunt", f"DeviceProcessEvents={empty}", "--fail-on-match", "-q")
    assert code == 2 and "empty" in err
    code, _, err = run(capsys, "query", "T | count", "--table", f"T={empty}")
    assert code == 2 and "empty" in err
    # a directory of empty files
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "a.csv").write_bytes(b"")
    (folder / "b.csv").write_bytes(b"")
    code, _, err = run(capsys, "hunt", f"DeviceProcessEvents={folder}", "--fail-on-match")
    assert code == 2 and "a.csv: empty file" in err and "every file is empty" in err
    # one empty file among good ones: a warning
    write_csv(procs(), folder / "c.csv")
    code, _, err = run(capsys, "hunt", f"DeviceProcessEvents={folder}", "--now", NOW_TEXT, "--rules", CONNECTWISE,
                       "--fail-on-match")
    assert code == 1 and "warning: " in err and "a.csv: empty file" in err
    # empty standard input
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    code, _, err = run(capsys, "hunt", "-", "--fail-on-match")
    assert code == 2 and "standard input is empty" in err


def test_stdin_report_names_standard_input(capsys, tmp_path, monkeypatch):
    data = write_csv(procs(), tmp_path / "p.csv").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data[:-20])))
    code, out, err = run(capsys, "query", "DeviceProcessEvents | count", "--table", "DeviceProcessEvents=-",
                         "--format", "json")
    assert code == 0 and json.loads(out) == [{"Count": 3}]
    assert "standard input: 1 bad row of 4 (1 dropped)" in err and "rmmhunt-stdin" not in err


LOCAL_CSV = (
    "TenantId,Timestamp [Local Time],DeviceId,DeviceName,ActionType,FileName,Type\n"
    'tid,"6/1/2024, 12:45:17.813 AM",d1,wks-1,ProcessCreated,a.exe,DeviceProcessEvents\n'
)


def test_local_time_export_and_timezone(capsys, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(LOCAL_CSV)
    kql = "DeviceProcessEvents | project Timestamp"
    code, out, err = run(capsys, "query", kql, "--table", str(path), "--format", "json")
    assert code == 0 and json.loads(out) == [{"Timestamp": "2024-06-01T00:45:17.8130000Z"}]
    assert "local time" in err and "--timezone ZONE" in err and no_python_advice(err)
    code, out, err = run(capsys, "query", kql, "--table", str(path), "--format", "json", "--timezone", "+02:00")
    assert code == 0 and json.loads(out) == [{"Timestamp": "2024-05-31T22:45:17.8130000Z"}]
    assert "local time" not in err
    code, out, _ = run(capsys, "query", kql, "--table", str(path), "--format", "json",
                       "--timezone", "America/New_York")
    assert code == 0 and json.loads(out) == [{"Timestamp": "2024-06-01T04:45:17.8130000Z"}]
    code, _, err = run(capsys, "hunt", str(path), "--timezone", "Mars/Base")
    assert code == 2 and "unknown time zone" in err


# ----------------------------------------------------------------------------------------------
# Command-line advice, not Python's (F6)


def test_multi_table_file_is_read_as_each_table(capsys, tmp_path):
    def record(table: str, row: dict) -> str:
        return json.dumps({"time": "2024-06-05T00:00:00Z", "category": f"AdvancedHunting-{table}",
                           "properties": row})

    lines = [
        record("DeviceProcessEvents", {"Timestamp": "2024-06-05T00:00:00Z", "DeviceId": "d1",
                                       "DeviceName": "wks-1", "FileName": "a.exe"}),
        record("DeviceNetworkEvents", {"Timestamp": "2024-06-05T01:00:00Z", "DeviceId": "d2",
                                       "DeviceName": "wks-2", "RemoteUrl": "x.example"}),
    ]
    path = tmp_path / "hub.json"
    path.write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, "query", "union DeviceProcessEvents, DeviceNetworkEvents | count",
                         "--table", str(path), "--format", "json")
    assert code == 0 and json.loads(out) == [{"Count": 2}], err
    assert no_python_advice(err)
    # named once: the other table's rows are said to be left out, in command-line terms
    code, out, err = run(capsys, "query", "DeviceNetworkEvents | count", "--table",
                         f"DeviceNetworkEvents={path}", "--format", "json")
    assert code == 0 and json.loads(out) == [{"Count": 1}]
    assert "rows of other tables not read: DeviceProcessEvents (1 row)" in err and no_python_advice(err)
    # named once per table: nothing left out
    code, out, err = run(capsys, "query", "union DeviceProcessEvents, DeviceNetworkEvents | count",
                         "--table", f"DeviceNetworkEvents={path}", "--table", f"DeviceProcessEvents={path}")
    assert code == 0 and "not read" not in err


def test_unnamed_file_advice(capsys, tmp_path):
    path = tmp_path / "blob.jsonl"
    path.write_text(json.dumps({"Timestamp": "2024-06-05T00:00:00Z", "x": 1}) + "\n")
    code, _, err = run(capsys, "hunt", str(path))
    assert code == 2 and "NAME=PATH" in err and no_python_advice(err)
    code, _, err = run(capsys, "query", "T | count", "--table", str(path))
    assert code == 2 and "--table NAME=PATH" in err and no_python_advice(err)


def test_sample_errors_speak_cli(capsys, tmp_path):
    code, _, err = run(capsys, "sample", "--rows", "10", "-o", str(tmp_path / "x.csv"))
    assert code == 2 and "--rows 10 is too small" in err and "--rows 224 or more" in err
    assert no_python_advice(err)
    code, _, err = run(capsys, "sample", "--rows", "0", "-o", str(tmp_path / "x.csv"))
    assert code == 2 and "argument --rows" in err and "positive" in err
    for name in ("x.csv.gz", "x.xyz"):
        code, _, err = run(capsys, "sample", "--rows", "300", "-o", str(tmp_path / name))
        assert code == 2 and ("--format" in err or "compress" in err)
        assert no_python_advice(err) and not (tmp_path / name).exists()
    code, _, err = run(capsys, "sample", "--rows", "300", "--format", "csv", "-o", str(tmp_path / "x.csv.gz"))
    assert code == 2 and "does not write compressed files" in err
    assert run(capsys, "sample", "--rows", "224", "-o", str(tmp_path / "ok.csv"))[0] == 0


# ----------------------------------------------------------------------------------------------
# KQL with a byte order mark (F8)


def test_query_text_with_bom(capsys, monkeypatch):
    for payload in (b"\xef\xbb\xbfprint x = 1\r\n| extend y = 2\r\n", "\ufeffprint x = 1 | extend y = 2".encode("utf-16")):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(payload)))
        code, out, err = run(capsys, "query", "-", "--format", "json")
        assert code == 0 and json.loads(out) == [{"x": 1, "y": 2}], err
    code, out, _ = run(capsys, "query", "\ufeffprint x = 1", "--format", "json")
    assert code == 0 and json.loads(out) == [{"x": 1}]


def test_query_and_table_cannot_both_come_from_stdin(capsys, monkeypatch):
    # The query used to read the table's rows and report them as a KQL syntax error.
    payload = b'{"Timestamp": "2024-06-01T00:00:00Z", "DeviceName": "a", "FileName": "x"}\n'
    for table in ("-", "DeviceProcessEvents=-"):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(payload)))
        code, out, err = run(capsys, "query", "-", "--table", table)
        assert code == 2 and out == "", err
        assert "standard input ('-') can be used once only" in err and "syntax" not in err


# ----------------------------------------------------------------------------------------------
# -o extensions and --lookback (F10)


def test_output_extension_must_name_a_format(capsys, tmp_path):
    for name in ("findings.csv.gz", "out.xyz", "findings.gz"):
        target = tmp_path / name
        code, out, err = run(capsys, "hunt", "--rules", CONNECTWISE, "-o", str(target))
        assert code == 2 and not target.exists()
        assert f"-o {target}" in err
        code, _, err = run(capsys, "query", "print x = 1", "-o", str(target))
        assert code == 2 and not target.exists()
    # what still works: --format with any extension, no extension (a table), any case
    code, _, _ = run(capsys, "query", "print x = 1", "-o", str(tmp_path / "x.xyz"), "--format", "csv")
    assert code == 0 and (tmp_path / "x.xyz").read_text() == "x\n1\n"
    code, _, _ = run(capsys, "query", "print x = 1", "-o", str(tmp_path / "plain"))
    assert code == 0 and (tmp_path / "plain").read_text().splitlines()[0].strip() == "x"
    code, _, _ = run(capsys, "query", "print x = 1", "-o", str(tmp_path / "x.JSONL"))
    assert code == 0 and json.loads((tmp_path / "x.JSONL").read_text()) == {"x": 1}


def test_lookback_out_of_range_is_a_usage_error(capsys):
    for span in ("100000000d", "10675199.5d"):
        code, out, err = run(capsys, "hunt", "--lookback", span)
        assert code == 2 and out == ""
        assert "argument --lookback" in err and "longest KQL timespan" in err and "syntax error" not in err
    code, out, _ = run(capsys, "hunt", "--lookback", "10675199d", "--rules", CONNECTWISE, "--format", "json")
    assert code == 0 and len(json.loads(out)) > 0
