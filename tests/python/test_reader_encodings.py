"""rmmhunt.read on text that is not UTF-8 and on files that are not text: UTF-16 (Excel's
"Unicode Text", Windows PowerShell 5.1) is read, binary files are a DataError naming the
file, Parquet strings stored as BINARY are read as text, and report lines are file lines
on CRLF files. Fixtures are written here, into tmp_path."""

from __future__ import annotations

import csv
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rmmhunt
from rmmhunt import DataError

ROWS = [
    ["Timestamp", "DeviceName", "ProcessId", "FileName"],
    *[[f"2024-06-01T10:{i:02d}:00Z", f"wks-{i % 3}", str(100 + i), f"proc{i}.exé"] for i in range(40)],
]


def _write_csv(path: Path, encoding: str) -> Path:
    with open(path, "w", encoding=encoding, newline="") as f:
        csv.writer(f).writerows(ROWS)
    return path


def _count(t: rmmhunt.FileTable) -> int:
    r = rmmhunt.query("DeviceProcessEvents | count", {"DeviceProcessEvents": t})
    return int(r.to_arrow().column(0)[0].as_py())


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-16-le"])
def test_utf16_csv_is_read_like_utf8(tmp_path: Path, encoding: str) -> None:
    t16 = rmmhunt.read(_write_csv(tmp_path / "u16.csv", encoding), table="DeviceProcessEvents")
    t8 = rmmhunt.read(_write_csv(tmp_path / "u8.csv", "utf-8"), table="DeviceProcessEvents")
    assert _count(t16) == 40
    assert t16.to_arrow().equals(t8.to_arrow())
    rep = t16.report()[0]
    assert rep["bad_rows"] == 0
    assert "UTF-16" in rep["format"]


def test_binary_file_is_a_data_error_naming_it(tmp_path: Path) -> None:
    rng = random.Random(7)
    p = tmp_path / "random.bin"
    p.write_bytes(bytes(range(256)) + bytes(rng.randrange(256) for _ in range(3000)))
    with pytest.raises(DataError, match=r"random\.bin: not a CSV, JSON or Parquet file"):
        rmmhunt.read(p, table="DeviceProcessEvents")
    # Random bytes without a NUL in the first line are refused too.
    q = tmp_path / "noise.csv"
    q.write_bytes(b"a" + bytes(rng.randrange(1, 256) for _ in range(3000)))
    with pytest.raises(DataError, match=r"noise\.csv: not a CSV, JSON or Parquet file"):
        rmmhunt.read(q, table="DeviceProcessEvents")


def test_cli_names_the_binary_file(tmp_path: Path) -> None:
    p = tmp_path / "random.bin"
    p.write_bytes(bytes(range(256)) * 4)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rmmhunt",
            "query",
            "DeviceProcessEvents | count",
            "--table",
            f"DeviceProcessEvents={p}",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "random.bin: not a CSV, JSON or Parquet file" in out.stderr
    assert "C Data interface" not in out.stderr


def test_nul_in_a_json_key_is_a_data_error_not_arrow_invalid(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text('{"Time\\u0000stamp": "2024-06-01T10:00:00Z", "DeviceName": "w"}\n')
    with pytest.raises(DataError, match=r"x\.jsonl: column name .* NUL"):
        rmmhunt.read(p, table="DeviceProcessEvents").to_arrow()


def test_parquet_binary_strings_are_read_as_text(tmp_path: Path) -> None:
    t = pa.table(
        {
            "Timestamp": pa.array([1717236000000000, 1717236060000000], pa.timestamp("us", tz="UTC")),
            "DeviceName": pa.array([b"wks-1", b"caf\xe9"], pa.binary()),
            "FileName": pa.array([b"ScreenConnect.exe", b"a.exe"], pa.large_binary()),
            "ProcessId": pa.array([1, 2], pa.int64()),
        }
    )
    p = tmp_path / "DeviceProcessEvents.parquet"
    pq.write_table(t, p)
    ft = rmmhunt.read(p)
    assert ft.columns["DeviceName"] == "string"
    r = rmmhunt.query(
        "DeviceProcessEvents | where FileName has 'screenconnect' | project DeviceName",
        {"DeviceProcessEvents": ft},
    )
    assert r.to_arrow().column(0).to_pylist() == ["wks-1"]
    assert ft.to_arrow().column("DeviceName").to_pylist() == ["wks-1", "caf\ufffd"]
    rep = ft.report()[0]
    assert rep["bad_rows"] == 1
    assert "invalid UTF-8" in rep["examples"][0]["reason"]


def test_parquet_binary_not_documented_as_string_names_the_column(tmp_path: Path) -> None:
    t = pa.table({"DeviceName": ["w"], "ProcessId": pa.array([b"12"], pa.binary())})
    p = tmp_path / "DeviceProcessEvents.parquet"
    pq.write_table(t, p)
    ft = rmmhunt.read(p)
    with pytest.raises(DataError, match=r"column ProcessId: Arrow type Binary holds bytes") as e:
        rmmhunt.query("DeviceProcessEvents | project ProcessId", {"DeviceProcessEvents": ft})
    assert "dynamic value" not in str(e.value)


def test_binary_documented_string_columns_in_a_query(tmp_path: Path) -> None:
    # The reviewer's case: every string column of a Defender export stored as BINARY.
    t = pa.table(
        {
            "Timestamp": pa.array([1717236000000000], pa.timestamp("us", tz="UTC")),
            "DeviceId": pa.array([b"d1"], pa.binary()),
            "DeviceName": pa.array([b"wks-1"], pa.binary()),
        }
    )
    p = tmp_path / "DeviceProcessEvents_bin.parquet"
    pq.write_table(t, p)
    r = rmmhunt.query(
        "DeviceProcessEvents | project DeviceId, DeviceName",
        {"DeviceProcessEvents": rmmhunt.read(p, table="DeviceProcessEvents")},
    )
    assert r.to_arrow().to_pylist() == [{"DeviceId": "d1", "DeviceName": "wks-1"}]


def test_invalid_utf8_lines_are_file_lines_on_crlf_files(tmp_path: Path) -> None:
    p = tmp_path / "latin1.csv"
    with open(p, "w", encoding="latin-1", newline="") as f:
        csv.writer(f).writerows(
            [
                ["Timestamp", "DeviceName", "ProcessId"],
                ["2024-06-01T10:00:00Z", "café", "1"],
                ["2024-06-01T10:00:00Z", "wks-2", "x"],
            ]
        )
    assert b"\r\n" in p.read_bytes()
    rep = rmmhunt.read(p, table="DeviceProcessEvents").report()[0]
    got = [(e["line"], e["column"]) for e in rep["examples"]]
    assert got == [(2, "DeviceName"), (3, "ProcessId")]
    assert "line 2, column DeviceName: invalid UTF-8" in rep["text"]
