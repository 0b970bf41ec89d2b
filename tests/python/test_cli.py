"""The rmmhunt command: subcommands, output formats, stdin, exit codes, spreadsheet-safe CSV."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rmmhunt.hunting as hunting
import yaml
from rmmhunt import cli
from rmmhunt.errors import InternalError
from rmmhunt.sample import schema

UTC = timezone.utc
NOW = datetime(2024, 6, 6, tzinfo=UTC)
NOW_TEXT = "2024-06-06T00:00:00Z"
FOUNDING = "83f7b313-b955-4988-b524-b2da55c67b43"
ANYDESK_PROC = "e9c26766-0fe4-49b6-ae27-c41c41aae094"
ANYDESK_NET = "ed1ef511-c52a-4e07-a864-588e96a7eb91"
EVIL = "=HYPERLINK(\"http://x\",\"y\")"


def event(device: str, hours: float, report: int, **cols) -> dict:
    return {
        "DeviceId": f"id-{device}",
        "DeviceName": device,
        "Timestamp": NOW - timedelta(hours=hours),
        "ReportId": report,
        **cols,
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    dpe = pa.Table.from_pylist(
        [
            event("wks-a", 24, 11, AccountUpn="a@corp", ProcessVersionInfoCompanyName="AnyDesk Software GmbH",
                  ProcessVersionInfoProductName="AnyDesk"),
            event("wks-a", 48, 12, AccountUpn="a@corp", ProcessVersionInfoCompanyName="AnyDesk Software GmbH",
                  ProcessVersionInfoProductName="AnyDesk"),
            event("wks-d", 24, 13, AccountUpn="d@corp", ProcessVersionInfoCompanyName="AnyDesk Softwarez",
                  ProcessVersionInfoProductName="AnyDesk"),  # decoy
            event(EVIL, 2, 14, AccountUpn="-2+3@corp", ProcessVersionInfoCompanyName="AnyDesk Software",
                  ProcessVersionInfoProductName="AnyDesk"),
            event("wks-b", 3, 21, AccountUpn="b@corp", ProcessVersionInfoCompanyName="ConnectWise, Inc.",
                  InitiatingProcessFileName="services.exe", FolderPath=r"C:\x\a.exe", ProcessCommandLine="a.exe"),
        ],
        schema=schema("DeviceProcessEvents"),
    )
    dne = pa.Table.from_pylist(
        [
            event("wks-a", 20, 31, InitiatingProcessAccountUpn="a@corp", RemoteUrl="relay-1.net.anydesk.com",
                  InitiatingProcessVersionInfoProductName="AnyDesk"),
            event("wks-a", 19, 32, InitiatingProcessAccountUpn="a@corp", RemoteUrl="xanydesk.com",
                  InitiatingProcessVersionInfoProductName="AnyDesk"),  # decoy
        ],
        schema=schema("DeviceNetworkEvents"),
    )
    out = {
        "proc": root / "DeviceProcessEvents.parquet",
        "net": root / "net-export.parquet",  # named from its columns
        "unnamed": root / "blob.parquet",
        "corrupt": root / "DeviceProcessEvents-bad.parquet",
    }
    pq.write_table(dpe, out["proc"])
    pq.write_table(dne, out["net"])
    pq.write_table(pa.table({"x": [1, 2]}), out["unnamed"])
    out["corrupt"].write_bytes(b"PAR1 this is not parquet")
    return out


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def hunt_json(capsys, files, *extra: str) -> tuple[int, list[dict], str]:
    code, out, err = run(
        capsys, "hunt", str(files["proc"]), str(files["net"]), "--now", NOW_TEXT, "--format", "json",
        "--rules", "anydesk", "--rules", FOUNDING, *extra,
    )
    return code, (json.loads(out) if out.strip() else []), err


# ----------------------------------------------------------------------------------------------
# hunt


def test_hunt_json_exact(capsys, files):
    code, rows, err = hunt_json(capsys, files)
    assert code == 0
    got = [
        (r["rule_id"], r["DeviceName"], r["AccountUpn"] or r["InitiatingProcessAccountUpn"], r["RemoteUrl"],
         r["FirstSeen"], r["LastSeen"], sorted(r["Report"]), r["Count"])
        for r in rows
    ]
    assert got == [
        (ANYDESK_PROC, "wks-a", "a@corp", None, "2024-06-04T00:00:00.0000000Z", "2024-06-05T00:00:00.0000000Z",
         [11, 12], 2),
        (ANYDESK_PROC, EVIL, "-2+3@corp", None, "2024-06-05T22:00:00.0000000Z", "2024-06-05T22:00:00.0000000Z",
         [14], 1),
        (ANYDESK_NET, "wks-a", "a@corp", "relay-1.net.anydesk.com", "2024-06-05T04:00:00.0000000Z",
         "2024-06-05T04:00:00.0000000Z", [31], 1),
        (FOUNDING, "wks-b", None, None, "2024-06-05T21:00:00.0000000Z", "2024-06-05T21:00:00.0000000Z", [21], 1),
    ]
    assert rows[0]["tool"] == "AnyDesk" and rows[0]["kind"] == "createproc" and rows[0]["tactic"] == "CommandAndControl"
    # summaries go to stderr: counts and the skipped filesig rule
    assert "4 findings on 3 devices from 2 tools" in err
    assert "skipped 1 rule(s) for DeviceFileCertificateInfo" in err


def test_threads_option(capsys, files):
    code, default, _ = hunt_json(capsys, files)
    for n in ("1", "2"):
        assert hunt_json(capsys, files, "--threads", n)[1] == default
    code, out, _ = run(
        capsys, "query", "DeviceProcessEvents | where ProcessVersionInfoProductName has 'anydesk' | count",
        "--table", f"DeviceProcessEvents={files['proc']}", "--threads", "1", "--format", "json",
    )
    assert code == 0 and json.loads(out)[0]["Count"] == 4
    code, _, err = run(capsys, "hunt", str(files["proc"]), "--threads", "0")
    assert code == 2 and "positive number of threads" in err


def test_hunt_formats_agree(capsys, files, tmp_path):
    _, rows, _ = hunt_json(capsys, files)
    code, out, _ = run(capsys, "hunt", str(files["proc"]), str(files["net"]), "--now", NOW_TEXT,
                       "--rules", "anydesk," + FOUNDING, "--format", "jsonl", "-q")
    assert code == 0 and [json.loads(line) for line in out.splitlines()] == rows
    target = tmp_path / "f.parquet"
    code, out, _ = run(capsys, "hunt", str(files["proc"]), str(files["net"]), "--now", NOW_TEXT,
                       "--rules", "anydesk," + FOUNDING, "-o", str(target), "-q")
    assert code == 0 and out == ""
    back = pq.read_table(target)
    assert back.column("rule_id").to_pylist() == [r["rule_id"] for r in rows]
    assert back.schema.field("FirstSeen").type == pa.timestamp("ns", tz="UTC")
    # -o with .csv writes CSV
    target = tmp_path / "f.csv"
    assert run(capsys, "hunt", str(files["proc"]), "--now", NOW_TEXT, "--rules", "anydesk", "-o", str(target), "-q")[0] == 0
    with target.open(newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["DeviceName"] for r in table] == ["wks-a", "'" + EVIL]
    # the terminal table
    code, out, _ = run(capsys, "hunt", str(files["proc"]), "--now", NOW_TEXT, "--rules", "anydesk", "-q")
    lines = out.splitlines()
    assert lines[0].split() == ["tool", "kind", "DeviceName", "User", "FirstSeen", "LastSeen", "Count"]
    assert lines[2].split() == ["AnyDesk", "createproc", "wks-a", "a@corp", "2024-06-04", "00:00:00",
                                "2024-06-05", "00:00:00", "2"]


def test_csv_is_spreadsheet_safe(capsys, files):
    code, out, _ = run(capsys, "hunt", str(files["proc"]), "--now", NOW_TEXT, "--rules", ANYDESK_PROC,
                       "--format", "csv", "-q")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    header, body = rows[0], rows[1:]
    evil_row = next(r for r in body if EVIL in r[header.index("DeviceName")])
    assert evil_row[header.index("DeviceName")] == "'" + EVIL
    assert evil_row[header.index("AccountUpn")] == "'-2+3@corp"
    assert evil_row[header.index("Count")] == "1"  # numbers are left alone
    assert evil_row[header.index("Report")] == "[14]"
    for cell in (c for r in body for c in r):
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert cli.safe_csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert cli.safe_csv_cell("\tx") == "'\tx"
    assert cli.safe_csv_cell("a=b") == "a=b"


def test_fail_on_match(capsys, files):
    assert hunt_json(capsys, files, "--fail-on-match")[0] == 1
    code, out, _ = run(capsys, "hunt", str(files["proc"]), "--now", "2025-01-01T00:00:00Z", "--rules", "anydesk",
                       "--fail-on-match", "--format", "json")
    assert code == 0 and json.loads(out) == []


def test_stale_data_hint_and_now_latest(capsys, files):
    code, out, err = run(capsys, "hunt", str(files["proc"]), "--now", "2025-01-01T00:00:00Z", "--rules", "anydesk")
    assert code == 0 and "--now latest" in err
    code, out, err = run(capsys, "hunt", str(files["proc"]), "--now", "latest", "--rules", ANYDESK_PROC,
                         "--format", "json")
    assert code == 0 and [r["Count"] for r in json.loads(out)] == [2, 1]


def test_lookback_and_exclusions(capsys, files):
    code, rows, _ = hunt_json(capsys, files, "--lookback", "36h")
    assert code == 0
    assert [r["Count"] for r in rows if r["rule_id"] == ANYDESK_PROC] == [1, 1]
    code, rows, _ = hunt_json(capsys, files, "--exclusions", "annotate")
    assert code == 0
    founding = [r for r in rows if r["rule_id"] == FOUNDING]
    assert founding and all(founding[0][k] == 0 for k in founding[0] if k.startswith("FP_"))
    assert run(capsys, "hunt", "--exclusions", "maybe")[0] == 2
    assert run(capsys, "hunt", "--lookback", "five days")[0] == 2
    assert run(capsys, "hunt", "--now", "yesterday")[0] == 2


def test_table_naming(capsys, files):
    # NAME=PATH names a file whose name and columns say nothing
    code, out, err = run(capsys, "hunt", f"DeviceProcessEvents={files['unnamed']}", "--rules", "anydesk", "-q")
    assert code == 2 and "AccountUpn" in err  # named, then refused for its missing columns
    code, out, err = run(capsys, "hunt", str(files["unnamed"]), "-q")
    assert code == 2 and "NAME=PATH" in err


def test_stdin_parquet(capsys, files, monkeypatch):
    data = files["proc"].read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, _ = run(capsys, "hunt", "-", "--now", NOW_TEXT, "--rules", ANYDESK_PROC, "--format", "json", "-q")
    assert code == 0 and [r["Count"] for r in json.loads(out)] == [2, 1]


def test_bad_input_exit_2(capsys, files, tmp_path):
    code, _, err = run(capsys, "hunt", str(tmp_path / "missing.parquet"))
    assert code == 2 and "missing.parquet" in err
    code, _, err = run(capsys, "hunt", str(files["corrupt"]), "-q")
    assert code == 2 and "DeviceProcessEvents-bad.parquet" in err
    code, _, err = run(capsys, "hunt", "--rules", "anydsk")
    assert code == 2 and "did you mean 'AnyDesk'" in err
    code, _, err = run(capsys, "hunt", str(files["net"]), "--rules", "kind:filesig", "-q")
    assert code == 2 and "no selected rule could run" in err
    assert run(capsys, "hunt", "--no-such-flag")[0] == 2
    assert run(capsys)[0] == 2  # no command


def test_internal_errors_exit_101(capsys, files, monkeypatch):
    def boom(*a, **k):
        raise InternalError("engine invariant broken")

    monkeypatch.setattr(hunting, "hunt", boom)
    code, _, err = run(capsys, "hunt", str(files["proc"]))
    assert code == 101 and "please report" in err and "engine invariant broken" in err

    def bug(*a, **k):
        raise KeyError("oops")

    monkeypatch.setattr(hunting, "hunt", bug)
    code, _, err = run(capsys, "hunt", str(files["proc"]))
    assert code == 101 and "Traceback" in err


def test_interrupt_exit_130(capsys, files, monkeypatch):
    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(hunting, "hunt", stop)
    assert run(capsys, "hunt", str(files["proc"]))[0] == 130


def test_hunt_bundled_sample(capsys):
    code, out, err = run(capsys, "hunt", "--format", "json")
    assert code == 0
    rows = json.loads(out)
    from rmmhunt.sample import bundled, bundled_now

    expected = hunting.hunt(bundled(), now=bundled_now())
    assert len(rows) == len(expected) > 100
    assert {r["tool"] for r in rows} >= {"ConnectWise", "AnyDesk", "TeamViewer"}
    assert "bundled sample data" in err


def test_progress_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    progress = cli._Progress(stream, quiet=False, delay=0.0)
    progress(hunting.HuntProgress("DeviceProcessEvents", 5, 10, 500, 1000, 5000, 10_000, 1.0))
    text = stream.getvalue()
    assert text.startswith("\r[##########..........] 5/10 rules") and "500/1,000 rows" in text
    progress.clear()
    quiet = Tty()
    cli._Progress(quiet, quiet=True, delay=0.0)(hunting.HuntProgress("T", 1, 1, 1, 1, 1, 1, 1.0))
    assert quiet.getvalue() == ""
    plain = io.StringIO()
    cli._Progress(plain, quiet=False, delay=0.0)(hunting.HuntProgress("T", 1, 1, 1, 1, 1, 1, 1.0))
    assert plain.getvalue() == ""


def test_quiet_means_quiet(capsys, files):
    code, out, err = run(capsys, "hunt", str(files["proc"]), "--now", NOW_TEXT, "-q")
    assert code == 0 and out and err == ""


# ----------------------------------------------------------------------------------------------
# query


def test_query(capsys, files, monkeypatch):
    code, out, _ = run(capsys, "query", "print x = 1, s = 'a', t = datetime(2024-01-02 03:04:05.1234567)",
                       "--format", "json")
    assert code == 0 and json.loads(out) == [{"x": 1, "s": "a", "t": "2024-01-02T03:04:05.1234567Z"}]
    code, out, _ = run(capsys, "query",
                       "DeviceProcessEvents | summarize n = count() by DeviceName | order by DeviceName asc",
                       "--table", f"DeviceProcessEvents={files['proc']}", "--format", "csv")
    assert code == 0
    assert list(csv.reader(io.StringIO(out))) == [
        ["DeviceName", "n"], ["'" + EVIL, "1"], ["wks-a", "2"], ["wks-b", "1"], ["wks-d", "1"],
    ]
    # PATH without NAME: named from the file
    code, out, _ = run(capsys, "query", "DeviceNetworkEvents | count", "--table", str(files["net"]),
                       "--format", "jsonl")
    assert code == 0 and json.loads(out) == {"Count": 2}
    monkeypatch.setattr(sys, "stdin", io.StringIO("print y = 2"))
    code, out, _ = run(capsys, "query", "-", "--format", "json")
    assert code == 0 and json.loads(out) == [{"y": 2}]


def test_query_now(capsys, files):
    code, out, _ = run(capsys, "query", "print t = now()", "--now", NOW_TEXT, "--format", "json")
    assert code == 0 and json.loads(out) == [{"t": "2024-06-06T00:00:00.0000000Z"}]
    code, out, _ = run(capsys, "query", "DeviceProcessEvents | where Timestamp > ago(4h) | count",
                       "--table", str(files["proc"]), "--now", "latest", "--format", "json")
    assert code == 0 and json.loads(out) == [{"Count": 2}]


def test_query_errors(capsys, files):
    code, _, err = run(capsys, "query", "print x = ")
    assert code == 2 and "^" in err and "line 1" in err
    code, _, err = run(capsys, "query", "DeviceProcessEvents | project NoSuchColumn",
                       "--table", str(files["proc"]))
    assert code == 2 and "NoSuchColumn" in err


def test_query_bundled_sample(capsys):
    code, out, err = run(capsys, "query", "DeviceProcessEvents | count", "--format", "json")
    assert code == 0 and json.loads(out) == [{"Count": 20_000}]
    assert "bundled sample" in err


# ----------------------------------------------------------------------------------------------
# rules, export, sample, version


def test_rules_list_and_show(capsys):
    code, out, _ = run(capsys, "rules", "list", "anydesk", "--format", "json")
    assert code == 0
    assert [(r["tool"], r["kind"]) for r in json.loads(out)] == [
        ("AnyDesk", "createproc"), ("AnyDesk", "filesig"), ("AnyDesk", "netconn"),
    ]
    code, out, err = run(capsys, "rules")
    assert code == 0 and out.splitlines()[2].startswith(FOUNDING)
    from rmmhunt.rules import pack

    assert f"{len(pack())} rules" in err
    code, out, _ = run(capsys, "rules", "show", "connectwise-create-process")
    assert code == 0 and yaml.safe_load(out)["id"] == FOUNDING
    assert run(capsys, "rules", "show", "nonesuch")[0] == 2
    assert run(capsys, "rules", "show")[0] == 2


def test_export(capsys):
    from rmmhunt.rules import get

    rule = get(FOUNDING)
    code, out, _ = run(capsys, "export", FOUNDING)
    assert code == 0 and out.rstrip("\n") == rule.to_kql().rstrip("\n") and "not(" in out
    code, out, _ = run(capsys, "export", FOUNDING, "--no-exclusions")
    assert code == 0 and out.rstrip("\n") == rule.to_kql(False).rstrip("\n")
    code, out, _ = run(capsys, "export", "connectwise-create-process", "--format", "yaml")
    assert code == 0 and yaml.safe_load(out)["id"] == FOUNDING
    code, out, _ = run(capsys, "export", FOUNDING, "--format", "scheduled-yaml")
    assert code == 0 and yaml.safe_load(out)["triggerOperator"] == "gt"
    code, out, _ = run(capsys, "export", FOUNDING, "--format", "arm")
    assert code == 0 and "resources" in json.loads(out)
    code, _, err = run(capsys, "export", "anydesk")
    assert code == 2 and "names 3 rules" in err


def test_export_rule_file(capsys, tmp_path):
    import dataclasses

    from rmmhunt.rules import Scenario, get

    rule = get(FOUNDING)
    tuned = dataclasses.replace(
        rule,
        false_positives=(Scenario("Lab host", "The lab runs it.", 'device.name == "lab-01"'),),
    )
    path = tmp_path / "tuned.yaml"
    path.write_text(tuned.to_yaml(), encoding="utf-8")
    code, out, _ = run(capsys, "export", str(path))
    assert code == 0 and '"lab-01"' in out and "DeviceName" in out


def test_sample(capsys, tmp_path):
    target = tmp_path / "s.parquet"
    code, _, err = run(capsys, "sample", "--rows", "1000", "--table", "DeviceFileCertificateInfo",
                       "-o", str(target), "--seed", "3")
    assert code == 0 and "wrote 1,000 rows" in err
    table = pq.read_table(target)
    assert table.num_rows == 1000 and "Signer" in table.column_names
    assert run(capsys, "sample", "--rows", "5", "-o", str(tmp_path / "t.parquet"))[0] == 2  # too few rows
    assert run(capsys, "sample", "--table", "Nope", "-o", str(target))[0] == 2


def test_version_and_help(capsys):
    import rmmhunt

    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"rmmhunt {rmmhunt.__version__}"
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for line in ("0 ", "1 ", "2 ", "101 "):
        assert any(x.strip().startswith(line) for x in out.splitlines())
    code, out, _ = run(capsys, "hunt", "--help")
    assert code == 0 and "--fail-on-match" in out and "101" in out


def test_python_dash_m():
    done = subprocess.run([sys.executable, "-m", "rmmhunt", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("rmmhunt ")
    done = subprocess.run([sys.executable, "-m", "rmmhunt", "query", "print x = "], capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""


# ----------------------------------------------------------------------------------------------
# The README's command-line examples, run in a shell


REPO = Path(__file__).resolve().parents[2]


def readme_section(title: str) -> str:
    """A ``## title`` section of README.cli.md (until merged) or README.md."""
    path = REPO / "README.cli.md"
    if not path.exists():
        path = REPO / "README.md"
    text = path.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def console_commands(section: str) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for every ``$ `` line of the section's console blocks."""
    out: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", section, re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                out.append((line[2:], []))
            elif out:
                out[-1][1].append(line.rstrip())
    return out


def line_pattern(expected: str) -> re.Pattern[str]:
    """``...`` in an expected line stands for any text."""
    return re.compile(".*".join(re.escape(part) for part in expected.split("...")))


def test_readme_console_examples(tmp_path):
    import rmmhunt

    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "rmmhunt"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m rmmhunt "$@"\n')
    shim.chmod(0o755)
    package_root = str(Path(rmmhunt.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    commands = console_commands(readme_section("Command line"))
    assert len(commands) >= 10
    last = 0
    for i, (command, expected) in enumerate(commands):
        if command == "echo $?":
            assert expected == [str(last)], f"exit code of {commands[i - 1][0]!r}"
            continue
        done = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=300,
        )
        last = done.returncode
        if not (i + 1 < len(commands) and commands[i + 1][0] == "echo $?"):
            assert last == 0, f"{command!r} exited {last}:\n{done.stdout}"
        got = [line.rstrip() for line in done.stdout.splitlines()]
        for want in expected:
            if want.strip() in ("", "..."):
                continue
            pattern = line_pattern(want)
            assert any(pattern.fullmatch(g) for g in got), f"{command!r}: no line {want!r} in\n{done.stdout}"
