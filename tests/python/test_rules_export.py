"""Export to Sentinel without the engine: Sentinel YAML and ARM (golden files), the schedule,
durations, and the details that make a template deployable and safe.

Golden files live in tests/python/golden/; regenerate them with RMMHUNT_UPDATE_GOLDEN=1.
Exports with the exclusions folded in need the engine: see test_rules_engine.py."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from rmmhunt import rules
from rmmhunt.rules import Rule, RuleError
from rmmhunt.rules.export import active_scenarios, exclusion_predicates, schedule
from rmmhunt.rules.model import format_iso_duration, format_kql_timespan, parse_duration

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("RMMHUNT_UPDATE_GOLDEN") == "1"
FOUNDING_ID = "83f7b313-b955-4988-b524-b2da55c67b43"
TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}|createdTime|lastModified|generated", re.IGNORECASE
)


@pytest.fixture(scope="module")
def founding() -> Rule:
    return rules.get(FOUNDING_ID)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8", newline="\n")
    assert path.exists(), f"missing golden file {path}; run with RMMHUNT_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"
    assert not TIMESTAMP.search(text)


def with_query(rule: Rule, query: str) -> Rule:
    return dataclasses.replace(rule, query=query)


# ---------------------------------------------------------------------------------------------
# Golden files (the query as written: no engine needed)


def test_golden_hunting_yaml(founding: Rule) -> None:
    check_golden(
        "connectwise-create-process.hunting.yaml",
        founding.to_sentinel_yaml("hunting", exclusions=False),
    )


def test_golden_scheduled_yaml(founding: Rule) -> None:
    check_golden(
        "connectwise-create-process.scheduled.yaml",
        founding.to_sentinel_yaml("scheduled", exclusions=False),
    )


def test_golden_arm(founding: Rule) -> None:
    check_golden("connectwise-create-process.arm.json", founding.to_arm(exclusions=False))


def test_exports_are_deterministic(founding: Rule) -> None:
    for _ in range(2):
        assert founding.to_arm(exclusions=False) == founding.to_arm(exclusions=False)
        assert founding.to_sentinel_yaml("scheduled", exclusions=False) == (
            founding.to_sentinel_yaml("scheduled", exclusions=False)
        )


# ---------------------------------------------------------------------------------------------
# Sentinel YAML


def test_scheduled_yaml_fields(founding: Rule) -> None:
    doc = yaml.safe_load(founding.to_sentinel_yaml("scheduled", exclusions=False))
    assert list(doc) == [
        "id",
        "name",
        "description",
        "severity",
        "status",
        "requiredDataConnectors",
        "queryFrequency",
        "queryPeriod",
        "triggerOperator",
        "triggerThreshold",
        "tactics",
        "relevantTechniques",
        "query",
        "entityMappings",
        "version",
        "kind",
    ]
    assert doc["queryFrequency"] == "5d" and doc["queryPeriod"] == "5d"
    assert doc["triggerOperator"] == "gt" and doc["triggerThreshold"] == 0
    assert doc["severity"] == "Medium" and doc["version"] == "1.0.0"
    assert doc["kind"] == "Scheduled"
    assert doc["entityMappings"] == [
        {
            "entityType": "Host",
            "fieldMappings": [{"identifier": "FullName", "columnName": "DeviceName"}],
        }
    ]
    assert doc["requiredDataConnectors"] == [
        {"connectorId": "MicrosoftThreatProtection", "dataTypes": ["DeviceProcessEvents"]}
    ]
    assert doc["tactics"] == ["CommandAndControl"] and doc["relevantTechniques"] == ["T1219"]
    assert doc["query"] == founding.query


def test_hunting_yaml_fields(founding: Rule) -> None:
    doc = yaml.safe_load(founding.to_sentinel_yaml("hunting", exclusions=False))
    assert list(doc) == [
        "id",
        "name",
        "description",
        "requiredDataConnectors",
        "tactics",
        "relevantTechniques",
        "query",
        "entityMappings",
        "version",
    ]


def test_sentinel_yaml_keeps_rmmhunt_fields_out(founding: Rule) -> None:
    for kind in ("hunting", "scheduled"):
        text = founding.to_sentinel_yaml(kind, exclusions=False)  # type: ignore[arg-type]
        for key in ("falsePositives", "summary", "sentinelTables"):
            assert f"\n{key}:" not in text


def test_sentinel_yaml_loads_back(founding: Rule) -> None:
    hunting = Rule.from_yaml(founding.to_sentinel_yaml("hunting", exclusions=False))
    expected = dataclasses.replace(
        founding,
        false_positives=(),
        extra={},
        version="1.0.0",
        entity_mappings=(
            {
                "entityType": "Host",
                "fieldMappings": [{"identifier": "FullName", "columnName": "DeviceName"}],
            },
        ),
    )
    assert hunting == expected
    scheduled = Rule.from_yaml(founding.to_sentinel_yaml("scheduled", exclusions=False))
    assert scheduled == dataclasses.replace(
        expected,
        severity="Medium",
        query_frequency="5d",
        query_period="5d",
        trigger_operator="gt",
        trigger_threshold=0,
        extra={"status": "Available", "kind": "Scheduled"},
    )
    # and exporting the loaded scheduled rule again gives the same text
    assert scheduled.to_sentinel_yaml("scheduled") == founding.to_sentinel_yaml(
        "scheduled", exclusions=False
    )


def test_sentinel_yaml_uses_the_rules_own_settings(founding: Rule) -> None:
    mapping = {
        "entityType": "Account",
        "fieldMappings": [{"identifier": "FullName", "columnName": "AccountUpn"}],
    }
    rule = dataclasses.replace(
        founding,
        severity="High",
        version="2.1.0",
        trigger_threshold=3,
        trigger_operator="gt",
        entity_mappings=(mapping,),
        extra={**founding.extra, "tags": ["RMM"], "customDetails": {"Cmd": "ProcessCommandLine"}},
    )
    doc = yaml.safe_load(rule.to_sentinel_yaml("scheduled", exclusions=False))
    assert doc["severity"] == "High" and doc["version"] == "2.1.0"
    assert doc["triggerThreshold"] == 3
    assert doc["entityMappings"] == [mapping]
    assert doc["tags"] == ["RMM"] and doc["customDetails"] == {"Cmd": "ProcessCommandLine"}
    hunting = yaml.safe_load(rule.to_sentinel_yaml("hunting", exclusions=False))
    assert "customDetails" not in hunting and hunting["tags"] == ["RMM"]
    assert "severity" not in hunting and "queryFrequency" not in hunting


def test_no_host_mapping_without_device_name(founding: Rule) -> None:
    rule = with_query(founding, "let Time_start = now(-1d);\nT | summarize count() by X\n")
    doc = yaml.safe_load(rule.to_sentinel_yaml("scheduled", exclusions=False))
    assert "entityMappings" not in doc


def test_bad_kind(founding: Rule) -> None:
    with pytest.raises(ValueError):
        founding.to_sentinel_yaml("nrt", exclusions=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        founding.to_sentinel_yaml("hunting", exclusions=False, query_frequency="1h")
    with pytest.raises(ValueError):
        founding.to_arm("all", exclusions=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        founding.to_arm("hunting", exclusions=False, query_frequency="1h")


# ---------------------------------------------------------------------------------------------
# Schedule


@pytest.mark.parametrize(
    ("window", "frequency", "expected"),
    [
        ("5d", None, ("5d", "5d")),
        ("5d", "1h", ("1h", "5d")),
        ("5d", "1d", ("1d", "5d")),
        ("1h", None, ("1h", "1h")),
        ("1h", "5m", ("5m", "1h")),
        ("14d", None, ("14d", "14d")),
        ("5m", None, ("5m", "5m")),
        ("36h", "2h", ("2h", "36h")),
        ("90m", None, ("90m", "90m")),
    ],
)
def test_schedule(
    founding: Rule, window: str, frequency: str | None, expected: tuple[str, str]
) -> None:
    rule = with_query(founding, founding.query.replace("now(-5d)", f"now(-{window})"))
    f, p = schedule(rule, frequency)
    assert (f, p) == (parse_duration(expected[0]), parse_duration(expected[1]))
    doc = yaml.safe_load(
        rule.to_sentinel_yaml("scheduled", exclusions=False, query_frequency=frequency)
    )
    assert (doc["queryFrequency"], doc["queryPeriod"]) == expected


@pytest.mark.parametrize(
    ("window", "frequency", "fragment"),
    [
        ("15d", None, "outside Sentinel's limits"),
        ("4m", None, "outside Sentinel's limits"),
        ("5d", "30m", "at least 1h"),
        ("2d", "59m", "at least 1h"),
        ("1d", "2d", "longer than queryPeriod"),
        ("1h", "1m", "outside Sentinel's limits"),
        ("90s", None, "outside Sentinel's limits"),
        ("390s", None, "whole number of minutes"),
    ],
)
def test_schedule_limits(founding: Rule, window: str, frequency: str | None, fragment: str) -> None:
    rule = with_query(founding, founding.query.replace("now(-5d)", f"now(-{window})"))
    with pytest.raises(RuleError, match=fragment) as info:
        schedule(rule, frequency)
    assert info.value.field in ("queryFrequency", "queryPeriod")


def test_schedule_from_rule_fields(founding: Rule) -> None:
    assert schedule(dataclasses.replace(founding, query_frequency="1d")) == (
        timedelta(days=1),
        timedelta(days=5),
    )
    assert schedule(dataclasses.replace(founding, query_period="P5D")) == (
        timedelta(days=5),
        timedelta(days=5),
    )
    with pytest.raises(RuleError, match="does not match the query's window"):
        schedule(dataclasses.replace(founding, query_period="1d"))
    no_window = with_query(founding, "DeviceProcessEvents | summarize count() by DeviceName\n")
    assert no_window.lookback is None
    with pytest.raises(RuleError, match="cannot derive queryPeriod"):
        schedule(no_window)
    assert schedule(dataclasses.replace(no_window, query_period="12h")) == (
        timedelta(hours=12),
        timedelta(hours=12),
    )


def test_lookback_is_read_from_the_query(founding: Rule) -> None:
    assert founding.lookback == timedelta(days=5)
    assert with_query(founding, "let Time_start = ago(36h);\nT\n").lookback == timedelta(hours=36)
    assert with_query(founding, "let  Time_start=now( - 1.5d ) ;\nT\n").lookback == timedelta(
        days=1.5
    )


@pytest.mark.parametrize(
    ("text", "td"),
    [
        ("7d", timedelta(days=7)),
        ("1.5h", timedelta(minutes=90)),
        ("90m", timedelta(minutes=90)),
        ("30s", timedelta(seconds=30)),
        ("250ms", timedelta(milliseconds=250)),
        ("2 days", timedelta(days=2)),
        ("P7D", timedelta(days=7)),
        ("PT1H30M", timedelta(minutes=90)),
        ("P1DT2H", timedelta(hours=26)),
        ("P1W", timedelta(days=7)),
        ("PT0.5S", timedelta(milliseconds=500)),
        (timedelta(hours=3), timedelta(hours=3)),
    ],
)
def test_parse_duration(text: Any, td: timedelta) -> None:
    assert parse_duration(text) == td


@pytest.mark.parametrize("text", ["", "7", "d", "7w", "P", "PT", "7D", "five days", "-1d"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("td", "kql", "iso"),
    [
        (timedelta(days=5), "5d", "P5D"),
        (timedelta(hours=36), "36h", "P1DT12H"),
        (timedelta(minutes=90), "90m", "PT1H30M"),
        (timedelta(seconds=45), "45s", "PT45S"),
        (timedelta(milliseconds=1500), "1500ms", "PT1.5S"),
        (timedelta(microseconds=7), "7microseconds", "PT0.000007S"),
        (timedelta(0), "0d", "PT0S"),
    ],
)
def test_duration_formats(td: timedelta, kql: str, iso: str) -> None:
    assert format_kql_timespan(td) == kql
    assert format_iso_duration(td) == iso
    assert parse_duration(kql) == td
    assert parse_duration(iso) == td


# ---------------------------------------------------------------------------------------------
# ARM


def test_arm_structure(founding: Rule) -> None:
    t = json.loads(founding.to_arm(exclusions=False))
    assert t["$schema"].endswith("deploymentTemplate.json#")
    assert t["contentVersion"] == "1.0.0.0"
    assert list(t["parameters"]) == ["workspace"]
    assert t["parameters"]["workspace"]["type"] == "string"
    alert, search = t["resources"]
    assert alert["type"] == "Microsoft.OperationalInsights/workspaces/providers/alertRules"
    assert alert["kind"] == "Scheduled"
    assert alert["name"] == (
        "[concat(parameters('workspace'), '/Microsoft.SecurityInsights/" + FOUNDING_ID + "')]"
    )
    p = alert["properties"]
    assert p["displayName"] == founding.name
    assert p["enabled"] is True
    assert p["queryFrequency"] == "P5D" and p["queryPeriod"] == "P5D"
    assert p["triggerOperator"] == "GreaterThan" and p["triggerThreshold"] == 0
    assert p["suppressionEnabled"] is False and p["suppressionDuration"] == "PT5H"
    assert p["tactics"] == ["CommandAndControl"] and p["techniques"] == ["T1219"]
    assert p["severity"] == "Medium"
    assert p["query"] == founding.query
    assert p["entityMappings"][0]["entityType"] == "Host"
    assert search["type"] == "Microsoft.OperationalInsights/workspaces/savedSearches"
    assert search["name"] == f"[concat(parameters('workspace'), '/{FOUNDING_ID}')]"
    sp = search["properties"]
    assert sp["category"] == "Hunting Queries"
    assert sp["displayName"] == founding.name and sp["query"] == founding.query
    assert sp["version"] == 2
    assert {x["name"]: x["value"] for x in sp["tags"]} == {
        "description": founding.description.strip(),
        "tactics": "CommandAndControl",
        "techniques": "T1219",
    }
    for r in t["resources"]:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", r["apiVersion"])


def test_arm_kinds(founding: Rule) -> None:
    only_rule = json.loads(founding.to_arm("scheduled", exclusions=False))["resources"]
    assert [r["type"].rsplit("/", 1)[1] for r in only_rule] == ["alertRules"]
    only_search = json.loads(founding.to_arm("hunting", exclusions=False))["resources"]
    assert [r["type"].rsplit("/", 1)[1] for r in only_search] == ["savedSearches"]
    hourly = json.loads(founding.to_arm("scheduled", exclusions=False, query_frequency="1h"))
    assert hourly["resources"][0]["properties"]["queryFrequency"] == "PT1H"


def test_arm_escapes_text_that_looks_like_an_expression(founding: Rule) -> None:
    rule = dataclasses.replace(
        founding,
        name="[concat(subscription().id)]",
        description="[deployment().properties.templateLink.uri]",
        query=founding.query + "// [x]",
    )
    text = rule.to_arm(exclusions=False)
    t = json.loads(text)
    p = t["resources"][0]["properties"]
    assert p["displayName"] == "[[concat(subscription().id)]"
    assert p["description"] == "[[deployment().properties.templateLink.uri]"
    assert p["query"] == rule.query  # does not start with '[': left alone
    sp = t["resources"][1]["properties"]
    assert sp["displayName"] == "[[concat(subscription().id)]"
    assert sp["tags"][0]["value"] == "[[deployment().properties.templateLink.uri]"
    # "[x] y" is not an expression (it does not end with ']') and is left alone
    plain = dataclasses.replace(founding, name="[RMM] ConnectWise")
    assert (
        json.loads(plain.to_arm(exclusions=False))["resources"][0]["properties"]["displayName"]
        == "[RMM] ConnectWise"
    )


def test_arm_techniques_are_parents(founding: Rule) -> None:
    rule = dataclasses.replace(founding, relevant_techniques=("T1566.001", "T1219", "T1566.002"))
    p = json.loads(rule.to_arm("scheduled", exclusions=False))["resources"][0]["properties"]
    assert p["techniques"] == ["T1566", "T1219"]


def test_arm_is_json_with_unicode_kept(founding: Rule) -> None:
    rule = dataclasses.replace(founding, name='Fernwartung "ConnectWise" – Prozess ü')
    text = rule.to_arm(exclusions=False)
    assert 'Fernwartung \\"ConnectWise\\" – Prozess ü' in text
    assert json.loads(text)["resources"][0]["properties"]["displayName"] == rule.name


# ---------------------------------------------------------------------------------------------
# Exclusion plumbing that needs no engine


def test_to_kql_without_exclusions_is_the_query(founding: Rule) -> None:
    assert founding.to_kql(exclusions=False) == founding.query
    assert founding.to_kql(scenarios=[]) == founding.query
    bare = dataclasses.replace(founding, false_positives=())
    assert bare.to_kql() == founding.query


def test_active_scenarios(founding: Rule) -> None:
    names = [s.name for s in founding.false_positives]
    assert active_scenarios(founding, None) == founding.false_positives
    picked = active_scenarios(founding, [names[3], names[0].upper(), founding.false_positives[0]])
    assert [s.name for s in picked] == [names[0], names[3]]  # rule order, no repeats
    assert active_scenarios(founding, names[1]) == (founding.false_positives[1],)
    with pytest.raises(KeyError):
        active_scenarios(founding, ["nope"])
    with pytest.raises(TypeError):
        active_scenarios(founding, [3])  # type: ignore[list-item]


def test_exclusion_predicates_of_the_founding_rule(founding: Rule) -> None:
    preds = [p for _, p in exclusion_predicates(founding)]
    assert preds == [
        (
            'InitiatingProcessFileName =~ "connectwise" or '
            'ProcessCommandLine matches regex "(?is)^.*scheduled.job.*$"'
        ),
        (
            'InitiatingProcessFileName =~ "connectwise" and '
            'FolderPath matches regex "(?is)^.*software.update.*$"'
        ),
        (
            'InitiatingProcessFileName =~ "connectwise_agent" or '
            'FolderPath matches regex "(?is)^.*connectwise.agent\\\\.exe$"'
        ),
        (
            'InitiatingProcessFileName =~ "connectwise" and '
            'FolderPath matches regex "(?is)^.*diagnostic.script.*$"'
        ),
        (
            'InitiatingProcessFileName =~ "connectwise" and '
            'FolderPath matches regex "(?is)^.*third.party.integration.*$"'
        ),
    ]
    # an overridden field map changes the columns
    over = exclusion_predicates(
        founding,
        [founding.false_positives[0].name],
        {"process.parent_process_name": "InitiatingProcessParentFileName"},
    )
    assert over[0][1].startswith('InitiatingProcessParentFileName =~ "connectwise"')
    # a field map for another table is refused
    with pytest.raises(rules.FieldMapError, match="DeviceNetworkEvents"):
        exclusion_predicates(founding, None, rules.FieldMap.for_table("DeviceNetworkEvents"))


def test_a_rule_on_two_tables_cannot_take_exclusions(founding: Rule) -> None:
    two = dataclasses.replace(
        founding,
        required_data_connectors=(
            rules.DataConnector(
                "MicrosoftThreatProtection", ("DeviceProcessEvents", "DeviceNetworkEvents")
            ),
        ),
    )
    with pytest.raises(RuleError, match="exactly one table"):
        exclusion_predicates(two)
