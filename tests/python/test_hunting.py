"""rmmhunt.hunt: rule selection, one findings table, statistics, skips and suppression.

Events are planted by hand (pyarrow) against the published filters of a few rules, with decoys
that must not match; the expected findings are written out here, not computed by rmmhunt."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rmmhunt.rules as rules_mod
from rmmhunt.errors import DataError, UnsupportedError
from rmmhunt.hunting import (
    META_COLUMNS,
    Findings,
    HuntProgress,
    hunt,
    infer_table,
    rule_info,
    select_rules,
)
from rmmhunt.rules.errors import UnknownRuleError
from rmmhunt.sample import schema

UTC = timezone.utc
NOW = datetime(2024, 6, 6, tzinfo=UTC)
FOUNDING = "83f7b313-b955-4988-b524-b2da55c67b43"
ANYDESK_PROC = "e9c26766-0fe4-49b6-ae27-c41c41aae094"
ANYDESK_SIG = "5882eb11-389c-4095-87f2-e1d3ecaa956c"
ANYDESK_NET = "ed1ef511-c52a-4e07-a864-588e96a7eb91"
ALL_TOOLS_NET = "c65e2d45-2560-4ea5-913b-d3d88de10c42"
SCENARIO = "ConnectWise Agent Service Initialization"


def table(name: str, rows: list[dict]) -> pa.Table:
    """A table with every documented column of ``name``; unspecified cells are null."""
    return pa.Table.from_pylist(rows, schema=schema(name))


def proc(device: str, t: datetime, report: int, **cols) -> dict:
    return {"DeviceId": f"id-{device}", "DeviceName": device, "Timestamp": t, "ReportId": report, **cols}


@pytest.fixture(scope="module")
def data() -> dict[str, pa.Table]:
    dpe = table(
        "DeviceProcessEvents",
        [
            # AnyDesk: two events on one device and account -> one finding, Count 2
            proc("wks-a", NOW - timedelta(days=1), 11, AccountUpn="a@corp",
                 ProcessVersionInfoCompanyName="AnyDesk Software GmbH", ProcessVersionInfoProductName="AnyDesk"),
            proc("wks-a", NOW - timedelta(days=2), 12, AccountUpn="a@corp",
                 ProcessVersionInfoCompanyName="philandro Software GmbH", ProcessVersionInfoProductName="AnyDesk"),
            # decoy: the company term glued into a longer one
            proc("wks-d", NOW - timedelta(days=1), 13, AccountUpn="d@corp",
                 ProcessVersionInfoCompanyName="AnyDesk Softwarez", ProcessVersionInfoProductName="AnyDesk"),
            # outside the 5-day window
            proc("wks-a", NOW - timedelta(days=6), 14, AccountUpn="a@corp",
                 ProcessVersionInfoCompanyName="AnyDesk Software GmbH", ProcessVersionInfoProductName="AnyDesk"),
            # ConnectWise (founding rule)
            proc("wks-b", NOW - timedelta(hours=3), 21, AccountUpn="b@corp",
                 ProcessVersionInfoCompanyName="ConnectWise, Inc.", InitiatingProcessFileName="services.exe",
                 FolderPath=r"C:\Program Files\ScreenConnect\ScreenConnect.ClientService.exe",
                 ProcessCommandLine="ScreenConnect.ClientService.exe"),
            # ConnectWise, but a documented false positive (agent initialisation)
            proc("wks-c", NOW - timedelta(hours=5), 22, AccountUpn="c@corp",
                 ProcessVersionInfoCompanyName="ConnectWise, Inc.", InitiatingProcessFileName="connectwise_agent",
                 FolderPath=r"C:\Program Files\ConnectWise\agent.exe", ProcessCommandLine="agent.exe"),
            proc("wks-e", NOW - timedelta(hours=1), 23, AccountUpn="e@corp",
                 ProcessVersionInfoCompanyName="Microsoft Corporation", ProcessVersionInfoProductName="Windows"),
        ],
    )
    dne = table(
        "DeviceNetworkEvents",
        [
            proc("wks-a", NOW - timedelta(hours=20), 31, InitiatingProcessAccountUpn="a@corp",
                 RemoteUrl="relay-1.net.anydesk.com", InitiatingProcessVersionInfoProductName="AnyDesk"),
            # decoy: near-miss domain
            proc("wks-a", NOW - timedelta(hours=19), 32, InitiatingProcessAccountUpn="a@corp",
                 RemoteUrl="xanydesk.com", InitiatingProcessVersionInfoProductName="AnyDesk"),
        ],
    )
    return {"DeviceProcessEvents": dpe, "DeviceNetworkEvents": dne}


SELECTION = ["anydesk", FOUNDING]


def ts(delta: timedelta) -> datetime:
    return NOW - delta


def essentials(f: Findings) -> list[dict]:
    keep = ("rule_id", "tool", "kind", "table", "DeviceName", "AccountUpn", "InitiatingProcessAccountUpn",
            "RemoteUrl", "FirstSeen", "LastSeen", "Count")
    out = []
    for row in f.to_pylist():
        d = {k: row[k] for k in keep}
        d["Report"] = sorted(row["Report"])
        out.append(d)
    return out


def test_findings_apply(data):
    f = hunt(data, rules=SELECTION, now=NOW)
    assert essentials(f) == [
        {"rule_id": ANYDESK_PROC, "tool": "AnyDesk", "kind": "createproc", "table": "DeviceProcessEvents",
         "DeviceName": "wks-a", "AccountUpn": "a@corp", "InitiatingProcessAccountUpn": None, "RemoteUrl": None,
         "FirstSeen": ts(timedelta(days=2)), "LastSeen": ts(timedelta(days=1)), "Count": 2, "Report": [11, 12]},
        {"rule_id": ANYDESK_NET, "tool": "AnyDesk", "kind": "netconn", "table": "DeviceNetworkEvents",
         "DeviceName": "wks-a", "AccountUpn": None, "InitiatingProcessAccountUpn": "a@corp",
         "RemoteUrl": "relay-1.net.anydesk.com",
         "FirstSeen": ts(timedelta(hours=20)), "LastSeen": ts(timedelta(hours=20)), "Count": 1, "Report": [31]},
        {"rule_id": FOUNDING, "tool": "ConnectWise", "kind": "createproc", "table": "DeviceProcessEvents",
         "DeviceName": "wks-b", "AccountUpn": None, "InitiatingProcessAccountUpn": None, "RemoteUrl": None,
         "FirstSeen": ts(timedelta(hours=3)), "LastSeen": ts(timedelta(hours=3)), "Count": 1, "Report": [21]},
    ]
    assert [(s.rule_id, s.table, s.reason) for s in f.skipped] == [
        (ANYDESK_SIG, "DeviceFileCertificateInfo", "no DeviceFileCertificateInfo data given")
    ]
    stats = {s.rule_id: (s.rows_scanned, s.rows_matched, s.suppressed, s.findings) for s in f.stats}
    assert stats == {
        ANYDESK_PROC: (7, 2, 0, 1),
        ANYDESK_NET: (2, 1, 0, 1),
        FOUNDING: (7, 2, 1, 1),
    }
    assert list(f.suppression) == [FOUNDING]
    assert f.suppression[FOUNDING][SCENARIO].events == 1
    assert f.suppression[FOUNDING][SCENARIO].device_ids == ("id-wks-c",)
    assert f.suppressed == 1
    assert f.now == NOW and f.exclusions == "apply"
    assert f.devices == ["wks-a", "wks-b"] and f.tools == ["AnyDesk", "ConnectWise"]


def test_columns_and_types(data):
    f = hunt(data, rules=SELECTION, now=NOW)
    assert f.columns == [
        *META_COLUMNS,
        "DeviceId", "DeviceName", "AccountUpn", "InitiatingProcessAccountUpn", "RemoteUrl",
        "FirstSeen", "LastSeen", "Report", "Count",
    ]
    row = f.to_pylist()[0]
    assert (row["tactic"], row["technique"]) == ("CommandAndControl", "T1219")
    assert row["rule_name"] == "Remote Management and Monitoring tool - AnyDesk - Create Process"
    t = f.to_arrow()
    assert t.schema.field("FirstSeen").type == pa.timestamp("ns", tz="UTC")
    assert t.schema.field("Count").type == pa.int64()
    assert f.kql_types["FirstSeen"] == "datetime" and f.kql_types["Report"] == "dynamic"
    assert f.kql_types["rule_id"] == "string"
    assert len(f) == 3
    assert pa.table(f).equals(t)  # __arrow_c_stream__


def test_annotate_and_off(data):
    f = hunt(data, rules=FOUNDING, now=NOW, exclusions="annotate")
    rows = sorted(f.to_pylist(), key=lambda r: r["DeviceName"])
    fp_cols = [c for c in f.columns if c.startswith("FP_")]
    assert len(fp_cols) == 5
    col = "FP_ConnectWiseAgentServiceInitialization"
    assert [(r["DeviceName"], r["Count"], r[col]) for r in rows] == [("wks-b", 1, 0), ("wks-c", 1, 1)]
    assert f.stats[FOUNDING].rows_matched == 2 and f.stats[FOUNDING].suppressed == 1
    off = hunt(data, rules=FOUNDING, now=NOW, exclusions="off")
    assert sorted(r["DeviceName"] for r in off.to_pylist()) == ["wks-b", "wks-c"]
    assert off.suppression == {} and off.stats[FOUNDING].suppressed == 0
    with pytest.raises(ValueError, match="exclusions"):
        hunt(data, rules=FOUNDING, now=NOW, exclusions="drop")  # type: ignore[arg-type]


def test_lookback_and_now(data):
    f = hunt(data, rules=ANYDESK_PROC, now=NOW, lookback="36h")
    assert [(r["Count"], sorted(r["Report"])) for r in f.to_pylist()] == [(1, [11])]
    assert f.lookback == timedelta(hours=36)
    # later now: everything is outside the window
    assert len(hunt(data, rules=ANYDESK_PROC, now=NOW + timedelta(days=10))) == 0
    # "latest": the newest Timestamp of the data (wks-e, 1 h before NOW)
    latest = hunt(data, rules=ANYDESK_PROC, now="latest")
    assert latest.now == NOW - timedelta(hours=1)
    assert [r["Count"] for r in latest.to_pylist()] == [2]
    assert hunt(data, rules=ANYDESK_PROC, now="2024-06-06T00:00:00Z").now == NOW
    with pytest.raises(ValueError):
        hunt(data, rules=ANYDESK_PROC, now=NOW, lookback="-1d")


def test_inputs(data, tmp_path):
    expected = essentials(hunt(data, rules=SELECTION, now=NOW))
    # a list of tables: names inferred from the columns
    assert essentials(hunt(list(data.values()), rules=SELECTION, now=NOW)) == expected
    # pandas and polars frames, record batch readers, parquet paths
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    frames = {
        "DeviceProcessEvents": data["DeviceProcessEvents"].to_pandas(),
        "DeviceNetworkEvents": pl.from_arrow(data["DeviceNetworkEvents"]),
    }
    assert isinstance(frames["DeviceProcessEvents"], pd.DataFrame)
    assert essentials(hunt(frames, rules=SELECTION, now=NOW)) == expected
    readers = {k: pa.RecordBatchReader.from_batches(v.schema, v.to_batches()) for k, v in data.items()}
    assert essentials(hunt(readers, rules=SELECTION, now=NOW)) == expected
    paths = []
    for name, t in data.items():
        p = tmp_path / f"{name}.parquet"
        pq.write_table(t, p)
        paths.append(str(p))
    assert essentials(hunt(paths, rules=SELECTION, now=NOW)) == expected
    # two files of the same table are one table
    half = data["DeviceProcessEvents"]
    pq.write_table(half.slice(0, 3), tmp_path / "p1.parquet")
    pq.write_table(half.slice(3), tmp_path / "p2.parquet")
    split = hunt([str(tmp_path / "p1.parquet"), str(tmp_path / "p2.parquet")], rules=FOUNDING, now=NOW)
    assert [r["DeviceName"] for r in split.to_pylist()] == ["wks-b"]
    with pytest.raises(DataError, match="cannot tell which table"):
        hunt(pa.table({"x": [1]}), rules=FOUNDING, now=NOW)


def test_missing_columns_listed(data):
    dne = data["DeviceNetworkEvents"].drop_columns(["RemoteUrl", "InitiatingProcessAccountUpn"])
    with pytest.raises(DataError) as err:
        hunt({"DeviceNetworkEvents": dne}, rules="anydesk", now=NOW)
    text = str(err.value)
    assert "DeviceNetworkEvents.RemoteUrl" in text and "DeviceNetworkEvents.InitiatingProcessAccountUpn" in text
    assert "AnyDesk" in text


def test_unsupported_rule_is_skipped_not_hidden(data, monkeypatch):
    import rmmhunt.rules.hunt as hunt_mod

    real = hunt_mod.plan_hunt

    def fake(rule, tables, **kw):
        if rule.id == ANYDESK_NET:
            raise UnsupportedError("unsupported: something\n  --> line 1")
        return real(rule, tables, **kw)

    monkeypatch.setattr(hunt_mod, "plan_hunt", fake)
    f = hunt(data, rules=SELECTION, now=NOW)
    assert [r["rule_id"] for r in f.to_pylist()] == [ANYDESK_PROC, FOUNDING]
    assert [(s.rule_id, s.reason) for s in f.skipped] == [
        (ANYDESK_SIG, "no DeviceFileCertificateInfo data given"),
        (ANYDESK_NET, "not supported by the engine: unsupported: something"),
    ]
    assert ANYDESK_NET not in {s.rule_id for s in f.stats}


def test_join_rule_needs_both_tables(data):
    dws = [r for r in select_rules("DWService") if len(r.tables) > 1]
    assert dws, "the pack's DWService rules join DeviceFileCertificateInfo"
    f = hunt(data, rules=dws, now=NOW)
    assert f.rules_run == 0
    assert {s.reason for s in f.skipped} == {"joins DeviceFileCertificateInfo, which was not given"}


def test_progress(data):
    seen: list[HuntProgress] = []
    hunt(data, rules=SELECTION, now=NOW, progress=seen.append)
    assert [p.rules_done for p in seen] == [1, 2, 3]
    assert all(p.rules_total == 3 for p in seen)
    assert seen[-1].rows_done == seen[-1].rows_total == 9
    assert [p.rows_done for p in seen] == sorted(p.rows_done for p in seen)


def test_select_rules():
    pack = rules_mod.pack()
    assert len(select_rules(None)) == len(pack) == len(select_rules("all"))
    assert select_rules(None)[0].id == FOUNDING
    anydesk = [r.id for r in select_rules("AnyDesk")]
    assert anydesk == [ANYDESK_PROC, ANYDESK_SIG, ANYDESK_NET]
    assert [r.id for r in select_rules("anydesk")] == anydesk == [r.id for r in select_rules("tool:any desk")]
    assert [r.id for r in select_rules(ANYDESK_SIG.upper())] == [ANYDESK_SIG]
    assert [r.id for r in select_rules("connectwise-create-process")] == [FOUNDING]
    filesig = select_rules("kind:filesig")
    assert filesig and all(rule_info(r).kind == "filesig" for r in filesig)
    assert {rule_info(r).table for r in filesig} == {"DeviceFileCertificateInfo"}
    netconn = select_rules("DeviceNetworkEvents")
    assert all("DeviceNetworkEvents" in r.tables for r in netconn)
    # comma lists and lists, without repeats, in order
    both = select_rules("anydesk, action1,anydesk")
    assert [rule_info(r).tool for r in both] == ["AnyDesk"] * 3 + ["Action1"] * 3
    assert [r.id for r in select_rules([pack[0], ANYDESK_PROC, pack[0]])] == [FOUNDING, ANYDESK_PROC]
    with pytest.raises(UnknownRuleError, match="AnyDesk"):
        select_rules("anydsk")
    with pytest.raises(UnknownRuleError):
        select_rules("kind:nothing")


def test_rule_info_of_founding_rule():
    info = rule_info(rules_mod.get(FOUNDING))
    assert (info.tool, info.kind, info.table) == ("ConnectWise", "createproc", "DeviceProcessEvents")


def test_derived_facts_follow_each_rule_object(data):
    """A rule's derived facts (tables, window, tool, columns) are computed once per rule
    object; an edited copy (rules are frozen: ``dataclasses.replace``) has its own."""
    import dataclasses

    founding = rules_mod.get(FOUNDING)
    assert founding.lookback == timedelta(days=5)
    assert rule_info(founding).tool == "ConnectWise"
    wider = dataclasses.replace(
        founding,
        id="5c8a3c2e-0d1b-4b8e-9a51-1f0e7d3f2a10",
        name="Remote Management and Monitoring tool - ScreenConnect - Create Process",
        query=founding.query.replace("now(-5d)", "now(-30d)"),
    )
    assert (wider.lookback, rule_info(wider).tool) == (timedelta(days=30), "ScreenConnect")
    assert (founding.lookback, rule_info(founding).tool) == (timedelta(days=5), "ConnectWise")
    renamed = dataclasses.replace(founding, name=wider.name)  # same id, another tool
    assert rule_info(renamed).tool == "ScreenConnect"
    assert wider == dataclasses.replace(wider)  # equality still compares the fields only
    # The same rule object twice in one hunt, and again: the same findings.
    first = hunt(data, rules=[founding, wider], now=NOW)
    again = hunt(data, rules=[founding, wider], now=NOW)
    assert first.to_pylist() == again.to_pylist()
    assert [s.rule_name for s in first.stats] == [founding.name, wider.name]


def test_infer_table():
    for name in ("DeviceProcessEvents", "DeviceNetworkEvents", "DeviceFileCertificateInfo"):
        assert infer_table(schema(name).names) == name
    assert infer_table(["Timestamp", "DeviceId", "DeviceName", "RemoteUrl", "RemoteIP"]) == "DeviceNetworkEvents"
    assert infer_table(["Timestamp", "DeviceName", "Signer"]) == "DeviceFileCertificateInfo"
    assert infer_table(["Timestamp", "DeviceId", "DeviceName"]) is None  # common to all three
    assert infer_table(["a", "b"]) is None


def test_conversions(data):
    f = hunt(data, rules=SELECTION, now=NOW)
    pd = pytest.importorskip("pandas")
    df = f.to_pandas()
    assert str(df["FirstSeen"].dtype) == "datetime64[ns, UTC]"
    assert sorted(df["Report"].iloc[0]) == [11, 12] and isinstance(df["Report"].iloc[0], list)
    assert list(df.columns) == f.columns
    assert isinstance(df, pd.DataFrame)
    pl = pytest.importorskip("polars")
    p = f.to_polars()
    assert isinstance(p, pl.DataFrame) and p.shape == (3, len(f.columns))
    assert f.stats.to_pandas()["rows_matched"].tolist() == [2, 1, 2]
    assert f.skipped.to_arrow().column("rule_id").to_pylist() == [ANYDESK_SIG]
    assert f.stats.to_polars().height == 3


def test_html_summary(data):
    f = hunt(data, rules=SELECTION, now=NOW)
    page = f._repr_html_()
    assert "<b>3</b> rules run" in page
    assert "<b>3</b> findings on <b>2</b> devices" in page
    assert "AnyDesk" in page and "wks-a" in page
    assert "ConnectWise Agent Service Initialization" in page  # suppressions
    assert "1 rules skipped" in page
    assert "rules run, 1 skipped; 3 findings on 2 devices from 2 tools" in repr(f)


def test_html_escapes(data):
    evil = "<script>alert(1)</script>"
    dpe = table("DeviceProcessEvents", [
        proc(evil, NOW - timedelta(hours=1), 1, AccountUpn=evil,
             ProcessVersionInfoCompanyName="AnyDesk Software", ProcessVersionInfoProductName="AnyDesk"),
    ])
    page = hunt({"DeviceProcessEvents": dpe}, rules=ANYDESK_PROC, now=NOW)._repr_html_()
    assert evil not in page and "&lt;script&gt;" in page


def test_plot_timeline(data):
    pytest.importorskip("bokeh")
    f = hunt(data, rules=SELECTION, now=NOW)
    fig = f.plot_timeline()
    from bokeh.models import ColumnDataSource

    sources = [r.data_source for r in fig.renderers if isinstance(r.data_source, ColumnDataSource)]
    src = sources[0].data
    assert sorted(src["device"]) == ["wks-a", "wks-a", "wks-b"]
    assert sorted(src["count"]) == [1, 1, 2]
    assert len(fig.y_range.factors) == 3
    empty = hunt(data, rules=ANYDESK_PROC, now=NOW + timedelta(days=30))
    assert len(empty) == 0 and empty.plot_timeline() is not None


def test_no_rules_run_is_empty_not_error():
    f = hunt({}, rules="anydesk", now=NOW)
    assert len(f) == 0 and f.rules_run == 0 and len(f.skipped) == 3
    assert f.columns[: len(META_COLUMNS)] == list(META_COLUMNS)
    assert "FirstSeen" in f.columns and "Count" in f.columns


def test_imports_stay_light():
    code = (
        "import sys, rmmhunt.hunting, rmmhunt.cli\n"
        "heavy = [m for m in ('pandas', 'polars', 'pyarrow', 'bokeh', 'numpy') if m in sys.modules]\n"
        "print(heavy)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_wrong_types_convert_when_lossless_else_error() -> None:
    """Columns of the wrong type are converted when lossless; otherwise a DataError names them."""
    import datetime as _dt

    import pyarrow as _pa
    import rmmhunt
    from rmmhunt.errors import DataError as _DataError

    now = _dt.datetime(2024, 6, 6, tzinfo=_dt.timezone.utc)
    base = {
        "Timestamp": ["2024-06-05T10:00:00Z", "2024-06-05T11:00:00Z"],
        "DeviceId": ["d1", "d1"],
        "DeviceName": ["wks-1", "wks-1"],
        "AccountUpn": ["a@b", "a@b"],
        "ProcessVersionInfoCompanyName": ["ConnectWise, Inc.", "x"],
        "ProcessVersionInfoProductName": ["ScreenConnect", "x"],
        "ReportId": ["17", "18"],
    }
    text_table = _pa.table(base)  # times and report ids as text: lossless
    f = rmmhunt.hunt({"DeviceProcessEvents": text_table}, rules="83f7b313-b955-4988-b524-b2da55c67b43", now=now, exclusions="off")
    rows = f.to_pylist()
    assert [(r["DeviceName"], r["Count"], r["Report"]) for r in rows] == [("wks-1", 1, [17])]
    bad = _pa.table({**base, "ReportId": ["17", "eighteen"]})
    with pytest.raises(_DataError, match="ReportId is documented as long"):
        rmmhunt.hunt({"DeviceProcessEvents": bad}, rules="83f7b313-b955-4988-b524-b2da55c67b43", now=now, exclusions="off")


def test_hunt_does_not_import_pandas(data, tmp_path):
    # pyarrow.array / pyarrow.scalar on Python values import pandas (~0.2 s and ~50 MB on the
    # first hunt of a process, e.g. every CLI run): findings are built from Arrow buffers.
    paths = []
    for name, t in data.items():
        p = tmp_path / f"{name}.parquet"
        pq.write_table(t, p)
        paths.append(str(p))
    expected = essentials(hunt(paths, rules=SELECTION, now=NOW))
    assert len(expected) >= 2
    code = (
        "import sys, json, rmmhunt; from datetime import datetime, timezone; "
        f"f = rmmhunt.hunt({paths!r}, rules={SELECTION!r}, now=datetime(2024, 6, 6, tzinfo=timezone.utc)); "
        "rows = f.to_arrow().num_rows; "
        "print(json.dumps([rows, 'pandas' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"[{len(expected)}, false]", out.stdout


def test_rule_columns_named_like_the_findings_columns(data):
    """A rule's own column named like a findings column (``tool``, ``rule_id``) comes back as
    ``result_<name>``; every row carries its own rule's columns, rules in the order given;
    a rule with no rows still brings its columns (null for the other rules' rows)."""
    import dataclasses

    base = rules_mod.get(FOUNDING)
    named = dataclasses.replace(
        base,
        id="00000000-0000-4000-8000-000000000001",
        name="Columns named like the findings'",
        false_positives=(),
        query='DeviceProcessEvents | where ProcessVersionInfoCompanyName has "AnyDesk" '
        '| summarize Count=count() by DeviceName | extend tool="from the query", rule_id=7',
    )
    empty = dataclasses.replace(
        base,
        id="00000000-0000-4000-8000-000000000002",
        name="No rows",
        false_positives=(),
        query='DeviceProcessEvents | where DeviceName == "nobody" | project DeviceName, Extra=1',
    )
    f = hunt(data, rules=[empty, named, base], now=NOW, exclusions="off")
    t = f.to_arrow()
    for c in ("result_tool", "result_rule_id", "Extra"):
        assert c in t.column_names, t.column_names
    rows = t.to_pylist()
    assert [(r["rule_id"], r["DeviceName"], r["Count"]) for r in rows] == [
        (named.id, "wks-a", 2),  # "AnyDesk Software GmbH", in and out of the window
        (named.id, "wks-d", 1),  # "AnyDesk Softwarez": the term is there
        (base.id, "wks-c", 1),  # by FirstSeen
        (base.id, "wks-b", 1),
    ]
    assert [(r["result_tool"], r["result_rule_id"]) for r in rows] == [("from the query", 7)] * 2 + [(None, None)] * 2
    assert [r["tool"] for r in rows] == [rule_info(named).tool] * 2 + ["ConnectWise"] * 2
    assert all(r["Extra"] is None for r in rows)
    assert [s.findings for s in f.stats] == [0, 2, 2]
