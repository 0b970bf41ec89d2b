"""Rules on the engine: hunting with exclusions applied, annotated or off; the exported KQL gives
the same rows as the hunt; the suppression report adds up; hostile strings cannot inject.

These tests need the compiled engine (``rmmhunt.query``, ``rmmhunt.parse``)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest
import rmmhunt
import yaml
from rmmhunt import rules
from rmmhunt.rules import FieldMap, FieldMapError, Rule, RuleError
from rmmhunt.rules import exclusions as ex
from rmmhunt.rules.exclusions import Compare, In, Like

UTC = timezone(timedelta(0))
NOW = datetime(2024, 6, 10, 12, 0, 0, tzinfo=UTC)
FOUNDING_ID = "83f7b313-b955-4988-b524-b2da55c67b43"
FM = FieldMap.for_table("DeviceProcessEvents")

S1 = "Scheduled Job Execution via ConnectWise"
S2 = "Admin Task to Deploy Software via ConnectWise"
S3 = "ConnectWise Agent Service Initialization"
S4 = "Remote System Monitoring via ConnectWise"
S5 = "ConnectWise Integration with Third-Party Tools"
COLUMNS = {
    S1: "FP_ScheduledJobExecutionViaConnectWise",
    S2: "FP_AdminTaskToDeploySoftwareViaConnectWise",
    S3: "FP_ConnectWiseAgentServiceInitialization",
    S4: "FP_RemoteSystemMonitoringViaConnectWise",
    S5: "FP_ConnectWiseIntegrationWithThirdPartyTools",
}
HOSTILE_CMD = '"; drop table x | where 1==1 //\nline2 \u202e é'

# (days ago, device, company, parent, command line, folder path, file name, scenarios whose
# filter matches the event)
EVENTS: list[tuple[float, str, str, str | None, str | None, str | None, str | None, set[str]]] = [
    (
        1,
        "dev1",
        "ScreenConnect Software",
        "services.exe",
        "ScreenConnect.ClientService.exe ?e=Access",
        "C:\\Program Files (x86)\\ScreenConnect Client (abc)\\ScreenConnect.ClientService.exe",
        "ScreenConnect.ClientService.exe",
        set(),
    ),
    (
        1,
        "dev1",
        "ConnectWise, LLC",
        "connectwise",
        "setup.exe /quiet",
        "C:\\tools\\software_update\\setup.exe",
        "setup.exe",
        {S1, S2},
    ),
    (
        2,
        "dev2",
        "Continuum Managed Services",
        "SAAZapsc.exe",
        "run.exe --scheduled_job nightly",
        "C:\\Program Files\\SAAZOD\\run.exe",
        "run.exe",
        {S1},
    ),
    # '_' in LIKE is a wildcard: "scheduled-job" matches "%scheduled_job%" too
    (
        2,
        "dev2",
        "Continuum Managed Services",
        "SAAZapsc.exe",
        "run.exe --Scheduled-Job weekly",
        "C:\\Program Files\\SAAZOD\\run.exe",
        "run.exe",
        {S1},
    ),
    (
        3,
        "dev3",
        "ConnectWise",
        "svchost.exe",
        "connectwise_agent.exe -service",
        "C:\\Program Files\\ConnectWise\\ConnectWise_Agent.exe",
        "connectwise_agent.exe",
        {S3},
    ),
    (
        3,
        "dev3",
        "ConnectWise",
        "CONNECTWISE_AGENT",
        "cmd.exe /c ipconfig",
        "C:\\Windows\\System32\\cmd.exe",
        "cmd.exe",
        {S3},
    ),
    (
        4,
        "dev4",
        "ScreenConnect Software",
        "connectwise",
        "powershell.exe -File diag.ps1",
        "D:\\diagnostic_script\\powershell.exe",
        "powershell.exe",
        {S1, S4},
    ),
    # not a ConnectWise process: the filters match it, but the query drops it before the
    # summarize, so no scenario counts it
    (
        1,
        "dev5",
        "Microsoft Corporation",
        "connectwise",
        "notepad.exe",
        "C:\\tools\\software_update\\notepad.exe",
        "notepad.exe",
        {S1, S2},
    ),
    # six days old: outside the rule's 5-day window, inside a 7-day lookback
    (6, "dev6", "ConnectWise", "explorer.exe", "x.exe", "C:\\x.exe", "x.exe", set()),
    (
        0.5,
        "dev7",
        "ConnectWise",
        "ConnectWise",
        "integrate.exe",
        "C:\\third_party_integration\\integrate.exe",
        "integrate.exe",
        {S1, S5},
    ),
    # nulls are empty strings: they match no scenario
    (0.25, "dev8", "ConnectWise", None, None, None, None, set()),
    (
        0.1,
        "dev9",
        "ScreenConnect",
        "services.exe",
        HOSTILE_CMD,
        "C:\\ScreenConnect\\é\\x.exe",
        "x.exe",
        set(),
    ),
    # ten days old: outside every window used here
    (10, "dev1", "ConnectWise", "connectwise", "old.exe", "C:\\old.exe", "old.exe", {S1}),
]


def events_table(drop: tuple[str, ...] = ()) -> pa.Table:
    cols: dict[str, list[Any]] = {
        "Timestamp": [],
        "DeviceId": [],
        "DeviceName": [],
        "ProcessVersionInfoCompanyName": [],
        "ReportId": [],
        "InitiatingProcessFileName": [],
        "ProcessCommandLine": [],
        "FolderPath": [],
        "FileName": [],
        "AccountUpn": [],
    }
    for i, (days, dev, company, parent, cmd, path, name, _) in enumerate(EVENTS):
        cols["Timestamp"].append(NOW - timedelta(days=days))
        cols["DeviceId"].append(dev)
        cols["DeviceName"].append(f"{dev}.contoso.com")
        cols["ProcessVersionInfoCompanyName"].append(company)
        cols["ReportId"].append(1000 + i)
        cols["InitiatingProcessFileName"].append(parent)
        cols["ProcessCommandLine"].append(cmd)
        cols["FolderPath"].append(path)
        cols["FileName"].append(name)
        cols["AccountUpn"].append(f"admin@{dev}")
    types = {"Timestamp": pa.timestamp("us", tz="UTC"), "ReportId": pa.int64()}
    table = pa.table({k: pa.array(v, type=types.get(k, pa.string())) for k, v in cols.items()})
    return table.drop_columns(list(drop)) if drop else table


@pytest.fixture(scope="module")
def founding() -> Rule:
    return rules.get(FOUNDING_ID)


@pytest.fixture(scope="module")
def tables() -> dict[str, pa.Table]:
    return {"DeviceProcessEvents": events_table()}


def _report_ids(value: Any) -> list[int]:
    if isinstance(value, str):
        value = json.loads(value)
    return sorted(int(v) for v in value)


def normalise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        r = dict(row)
        if "Report" in r:
            r["Report"] = _report_ids(r["Report"])
        out.append(r)
    return sorted(out, key=lambda r: (str(r.get("DeviceId")), str(r.get("DeviceName"))))


def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {r["DeviceId"]: int(r["Count"]) for r in rows}


def in_window(days: float, window: float) -> bool:
    return days <= window


def reference(window: float = 5) -> dict[str, tuple[int, set[str]]]:
    """Per scenario (and '*'), events and devices, from the table above and the Python
    semantics of the filters: the events that reach the query's summarize."""
    out: dict[str, tuple[int, set[str]]] = {}
    for days, dev, company, *_, expected in EVENTS:
        if not in_window(days, window):
            continue
        if not any(w in company for w in ("ConnectWise", "Continuum Managed", "ScreenConnect")):
            continue
        for name in [*expected, "*"] if expected else []:
            n, devs = out.get(name, (0, set()))
            out[name] = (n + 1, devs | {dev})
    return out


# ---------------------------------------------------------------------------------------------
# The expected scenario sets above agree with the filters' own semantics


def test_event_table_expectations_match_the_filters(founding: Rule) -> None:
    table = events_table()
    for row, event in zip(table.to_pylist(), EVENTS):
        matched = {s.name for s in founding.false_positives if s.matches(row, FM)}
        assert matched == event[-1], row


# ---------------------------------------------------------------------------------------------
# Hunting


def test_hunt_off_is_the_query(founding: Rule, tables: dict[str, pa.Table]) -> None:
    res = founding.hunt(tables, now=NOW, exclusions="off")
    plain = rmmhunt.query(founding.query, tables, now=NOW)
    assert normalise(res.to_pylist()) == normalise(plain.to_pylist())
    assert counts(res.to_pylist()) == {
        "dev1": 2,
        "dev2": 2,
        "dev3": 2,
        "dev4": 1,
        "dev7": 1,
        "dev8": 1,
        "dev9": 1,
    }
    assert len(res.suppression) == 0 and res.suppression.total is None
    assert res.columns == ["DeviceId", "DeviceName", "FirstSeen", "LastSeen", "Report", "Count"]


def test_hunt_apply(founding: Rule, tables: dict[str, pa.Table]) -> None:
    res = founding.hunt(tables, now=NOW)
    assert res.mode == "apply" and res.now == NOW
    rows = normalise(res.to_pylist())
    assert counts(rows) == {"dev1": 1, "dev8": 1, "dev9": 1}
    assert rows[0]["Report"] == [1000]
    report = res.suppression
    assert [s.scenario for s in report] == [S1, S2, S3, S4, S5]
    assert {s.scenario: (s.events, s.devices) for s in report} == {
        S1: (5, 4),
        S2: (1, 1),
        S3: (2, 1),
        S4: (1, 1),
        S5: (1, 1),
    }
    assert report[S1].device_ids == ("dev1", "dev2", "dev4", "dev7")
    assert report.total is not None
    assert (report.total.events, report.total.devices) == (7, 5)
    # the same numbers from the Python semantics of the filters
    ref = reference()
    assert {s.scenario: (s.events, set(s.device_ids)) for s in report} == {
        k: v for k, v in ref.items() if k != "*"
    }
    assert (report.total.events, set(report.total.device_ids)) == ref["*"]


def test_nothing_is_dropped_without_being_counted(
    founding: Rule, tables: dict[str, pa.Table]
) -> None:
    off = founding.hunt(tables, now=NOW, exclusions="off")
    applied = founding.hunt(tables, now=NOW, exclusions="apply")
    dropped = sum(counts(off.to_pylist()).values()) - sum(counts(applied.to_pylist()).values())
    assert applied.suppression.total is not None
    assert dropped == applied.suppression.total.events == 7


def test_exported_kql_gives_the_same_rows_as_the_hunt(
    founding: Rule, tables: dict[str, pa.Table]
) -> None:
    kql = founding.to_kql(exclusions=True)
    exported = rmmhunt.query(kql, tables, now=NOW)
    hunted = founding.hunt(tables, now=NOW, exclusions="apply")
    assert normalise(exported.to_pylist()) == normalise(hunted.to_pylist())
    assert hunted.kql.strip() == kql.strip()
    # also for a subset of scenarios
    subset = [S1, S3]
    kql2 = founding.to_kql(scenarios=subset)
    hunted2 = founding.hunt(tables, now=NOW, scenarios=subset)
    assert normalise(rmmhunt.query(kql2, tables, now=NOW).to_pylist()) == normalise(
        hunted2.to_pylist()
    )
    assert counts(hunted2.to_pylist()) == {"dev1": 1, "dev8": 1, "dev9": 1}
    assert [s.scenario for s in hunted2.suppression] == [S1, S3]


def test_annotate_counts_add_up_to_the_report(founding: Rule, tables: dict[str, pa.Table]) -> None:
    annotated = founding.hunt(tables, now=NOW, exclusions="annotate")
    applied = founding.hunt(tables, now=NOW, exclusions="apply")
    assert dict(annotated.scenario_columns) == COLUMNS
    assert annotated.columns == [
        "DeviceId",
        "DeviceName",
        "FirstSeen",
        "LastSeen",
        "Report",
        "Count",
        *COLUMNS.values(),
    ]
    rows = normalise(annotated.to_pylist())
    # nothing is dropped: the rows are those of "off", plus the counts
    off = normalise(founding.hunt(tables, now=NOW, exclusions="off").to_pylist())
    assert [{k: r[k] for k in off[0]} for r in rows] == off
    for s in applied.suppression:
        assert sum(int(r[COLUMNS[s.scenario]]) for r in rows) == s.events
        assert {r["DeviceId"] for r in rows if int(r[COLUMNS[s.scenario]])} == set(s.device_ids)
    by_dev = {r["DeviceId"]: r for r in rows}
    assert int(by_dev["dev1"][COLUMNS[S1]]) == 1 and int(by_dev["dev1"][COLUMNS[S2]]) == 1
    assert int(by_dev["dev2"][COLUMNS[S1]]) == 2
    assert int(by_dev["dev3"][COLUMNS[S3]]) == 2
    assert all(int(by_dev["dev8"][c]) == 0 for c in COLUMNS.values())
    # the annotate report is the apply report
    assert annotated.suppression.scenarios == tuple(
        dataclasses.replace(s, column=COLUMNS[s.scenario]) for s in applied.suppression
    )
    assert annotated.suppression.total == applied.suppression.total


def test_lookback_overrides_the_window(founding: Rule, tables: dict[str, pa.Table]) -> None:
    week = founding.hunt(tables, now=NOW, lookback="7d")
    assert week.lookback == timedelta(days=7)
    assert counts(week.to_pylist()) == {"dev1": 1, "dev6": 1, "dev8": 1, "dev9": 1}
    assert "now(-7d)" in week.kql
    same = founding.hunt(tables, now=NOW, lookback=timedelta(days=7))
    assert normalise(same.to_pylist()) == normalise(week.to_pylist())
    twelve = founding.hunt(tables, now=NOW, lookback="12h", exclusions="off")
    assert counts(twelve.to_pylist()) == {"dev7": 1, "dev8": 1, "dev9": 1}
    eleven_days = founding.hunt(tables, now=NOW, lookback="11d")
    assert eleven_days.suppression[S1].events == 6  # the ten-day-old event now counts
    with pytest.raises(ValueError):
        founding.hunt(tables, now=NOW, lookback="0d")
    with pytest.raises(ValueError):
        founding.hunt(tables, now=NOW, lookback="soon")


def test_now_as_iso_text(founding: Rule, tables: dict[str, pa.Table]) -> None:
    a = founding.hunt(tables, now="2024-06-10T12:00:00Z")
    b = founding.hunt(tables, now=NOW)
    assert a.now == NOW
    assert normalise(a.to_pylist()) == normalise(b.to_pylist())


def test_pandas_and_polars_inputs(founding: Rule) -> None:
    table = events_table()
    expected = normalise(founding.hunt({"DeviceProcessEvents": table}, now=NOW).to_pylist())
    df = table.to_pandas()
    got = founding.hunt({"DeviceProcessEvents": df}, now=NOW)
    assert normalise(got.to_pylist()) == expected
    # DataFrame in, result out: one table is the rule's table
    assert normalise(founding.hunt(df, now=NOW).to_pylist()) == expected
    assert normalise(founding.hunt(table, now=NOW).to_pylist()) == expected
    with pytest.raises(TypeError):
        founding.hunt([1, 2, 3], now=NOW)
    import polars as pl

    got_pl = founding.hunt({"DeviceProcessEvents": pl.from_arrow(table)}, now=NOW)
    assert normalise(got_pl.to_pylist()) == expected
    # a one-shot stream is read once and still serves every query of the hunt
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    got_stream = founding.hunt({"DeviceProcessEvents": reader}, now=NOW)
    assert normalise(got_stream.to_pylist()) == expected
    assert got_stream.suppression.total == got.suppression.total


def test_report_as_rows(founding: Rule, tables: dict[str, pa.Table]) -> None:
    report = founding.hunt(tables, now=NOW).suppression
    rows = report.to_pylist()
    assert rows[-1] == {"scenario": "(any scenario)", "events": 7, "devices": 5}
    df = report.to_pandas()
    assert list(df.columns) == ["scenario", "events", "devices"] and len(df) == 6
    assert S1 in str(report)


def test_a_missing_column_is_an_error_not_a_silent_false(founding: Rule) -> None:
    no_path = {"DeviceProcessEvents": events_table(drop=("FolderPath",))}
    with pytest.raises(FieldMapError, match="FolderPath"):
        founding.hunt(no_path, now=NOW)
    # scenario 1 does not need FolderPath
    res = founding.hunt(no_path, now=NOW, scenarios=[S1])
    assert res.suppression[S1].events == 5
    # exclusions off needs no field at all
    founding.hunt(no_path, now=NOW, exclusions="off")


def test_field_map_override(founding: Rule, tables: dict[str, pa.Table]) -> None:
    # point "parent process name" at the file name instead: different events are suppressed
    res = founding.hunt(
        tables, now=NOW, scenarios=[S3], field_map={"process.parent_process_name": "FileName"}
    )
    assert res.suppression[S3].events == 1  # row 5 only (its file name is connectwise_agent.exe)


def test_bad_arguments(founding: Rule, tables: dict[str, pa.Table]) -> None:
    with pytest.raises(ValueError):
        founding.hunt(tables, now=NOW, exclusions="maybe")  # type: ignore[arg-type]
    with pytest.raises(RuleError, match="no data given for table"):
        founding.hunt({"Other": events_table()}, now=NOW)
    with pytest.raises(KeyError):
        founding.hunt(tables, now=NOW, scenarios=["nope"])
    no_window = dataclasses.replace(
        founding,
        query=founding.query.replace("let Time_start = now(-5d);\n", "").replace(
            "Time_start", "now(-5d)"
        ),
    )
    with pytest.raises(RuleError, match="lookback needs"):
        no_window.hunt(tables, now=NOW, lookback="7d")


# ---------------------------------------------------------------------------------------------
# Export with the exclusions folded in


def test_to_kql_folds_one_where_per_scenario_before_summarize(founding: Rule) -> None:
    kql = founding.to_kql()
    assert kql.count("not(") == 5
    assert kql.index("not(") < kql.index("summarize")
    assert kql.index("has_any") < kql.index("not(")
    # printed from the syntax tree: parsing and printing again changes nothing
    assert str(rmmhunt.parse(kql)).strip() == kql.strip()


def test_sentinel_exports_carry_the_exclusions(founding: Rule) -> None:
    kql = founding.to_kql()
    for kind in ("hunting", "scheduled"):
        doc = yaml.safe_load(founding.to_sentinel_yaml(kind))  # type: ignore[arg-type]
        assert doc["query"] == kql
        again = Rule.from_yaml(founding.to_sentinel_yaml(kind))  # type: ignore[arg-type]
        assert again.query == kql and again.id == founding.id
    arm = json.loads(founding.to_arm())
    assert [r["properties"]["query"] for r in arm["resources"]] == [kql, kql]
    assert founding.to_kql(exclusions=False) == founding.query


# ---------------------------------------------------------------------------------------------
# Hostile strings through the engine

HOSTILE = [
    '"',
    "'",
    "\\",
    '\\"',
    '"; drop table DeviceProcessEvents; //',
    '" or 1==1 or "',
    'x" | where 1==1 | project secret //',
    "| where 1==1",
    "line1\nline2",
    "cr\r\nlf",
    "tab\there",
    "nul\x00byte",
    "bell\x07 esc\x1b",
    "\u2028sep\u2029",
    "bidi \u202e \u200b",
    "é ü ß 中文",
    "emoji 😀 \U0001d11e",
    "```x```",
    "@'verbatim'",
    "\\u0022",
    "100%_x",
]


@pytest.mark.parametrize("s", HOSTILE)
def test_kql_string_matches_the_engine(s: str) -> None:
    assert ex._kql_string_fallback(s) == rmmhunt.kql_string(s)
    t = {"T": pa.table({"k": ["row"]})}
    res = rmmhunt.query(f"T | extend v = {ex.kql_string(s)} | project v", t)
    assert res.to_pylist() == [{"v": s}]


@pytest.mark.parametrize("s", HOSTILE)
def test_hostile_filter_values_match_exactly_their_row(s: str) -> None:
    others = ["plain", "other value", "x"]
    table = pa.table({"FileName": [s, *others], "DeviceId": ["d"] * 4})
    q = rmmhunt.parse("DeviceProcessEvents | summarize n = count() by FileName")
    for node, expected in (
        (Compare("process.name", "==", s), [s]),
        (Compare("process.name", "!=", s), others),
        (In("process.name", (s, "nothing")), [s]),
        (Like("process.name", s, escape="!") if "!" not in s else None, None),
    ):
        if node is None:
            continue
        if expected is None:
            expected = [v for v in [s, *others] if node.matches({"FileName": v}, FM)]
        pred = node.to_kql(FM, present=["FileName", "DeviceId"])
        res = rmmhunt.query(str(q.insert_where(pred)), {"DeviceProcessEvents": table})
        got = sorted(r["FileName"] for r in res.to_pylist())
        assert got == sorted(expected), pred
        py = sorted(v for v in [s, *others] if node.matches({"FileName": v}, FM))
        assert got == py


def test_like_regex_semantics_on_the_engine() -> None:
    values = ["abc", "ABC", "a\nc", "ac", "abbc", "xabc", "a.c", "aXc\n"]
    table = pa.table({"FileName": values})
    q = rmmhunt.parse("DeviceProcessEvents | summarize n = count() by FileName")
    for pattern in ["a_c", "a%c", "%b%", "a%", "%c", "A_C", "a.c", "%", "", "_%_"]:
        for negated in (False, True):
            node = Like("process.name", pattern, negated)
            pred = node.to_kql(FM, present=["FileName"])
            res = rmmhunt.query(str(q.insert_where(pred)), {"DeviceProcessEvents": table})
            got = sorted(r["FileName"] for r in res.to_pylist())
            want = sorted(v for v in values if node.matches({"FileName": v}, FM))
            assert got == want, (pattern, negated, pred)
