"""Rule model and YAML loading: the founding rule, round trips, the published files' defect,
and errors that name file, line and field."""

from __future__ import annotations

import dataclasses
import importlib.resources
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rmmhunt import rules
from rmmhunt.rules import (
    DataConnector,
    ExclusionSyntaxError,
    Rule,
    RuleError,
    RulePack,
    RuleRepairWarning,
    Scenario,
    UnknownRuleError,
)
from rmmhunt.rules.yamlio import FOUNDING_RULE_FILE

FOUNDING_ID = "83f7b313-b955-4988-b524-b2da55c67b43"
FOUNDING_NAME = "Remote Management and Monitoring tool - ConnectWise - Create Process"

# The founding document's content, verbatim (only its YAML indentation was lost).
SEED_DESCRIPTION = (
    "Remote Monitoring and Management (RMM) programs are IT to manage remote endpoints. "
    "Attackers have begun to abuse these programs to persist or provide C2 channels.\n"
    "https://github.com/jischell-msft/RemoteManagementMonitoringTools\n"
)
SEED_QUERY = """let Time_start = now(-5d);
let Time_end = now();
//
DeviceProcessEvents
| where Timestamp between (Time_start..Time_end)
| where ProcessVersionInfoCompanyName has_any (
'ConnectWise',
'Continuum Managed',
'ScreenConnect'
)
| summarize FirstSeen=min(Timestamp), LastSeen=max(Timestamp),
Report=make_set(ReportId), Count=count() by DeviceId, DeviceName
"""
SEED_SCENARIOS = [
    (
        "Scheduled Job Execution via ConnectWise",
        (
            "A legitimate scheduled job in ConnectWise is configured to create a process for system "
            "maintenance (e.g., patching or log cleanup)."
        ),
        (
            'process.parent_process_name == "connectwise" OR process.command_line LIKE '
            '"%scheduled_job%"'
        ),
    ),
    (
        "Admin Task to Deploy Software via ConnectWise",
        (
            "An IT admin is using ConnectWise to deploy a software update across endpoints, which "
            "triggers a process creation event."
        ),
        (
            'process.parent_process_name == "connectwise" AND process.file_path LIKE '
            '"%software_update%"'
        ),
    ),
    (
        "ConnectWise Agent Service Initialization",
        (
            "The ConnectWise agent service starts up and creates a process as part of its normal "
            "initialization routine."
        ),
        (
            'process.parent_process_name == "connectwise_agent" OR process.file_path LIKE '
            '"%connectwise_agent.exe"'
        ),
    ),
    (
        "Remote System Monitoring via ConnectWise",
        (
            "A system monitoring task initiated through ConnectWise is running a diagnostic script "
            "that creates a process."
        ),
        (
            'process.parent_process_name == "connectwise" AND process.file_path LIKE '
            '"%diagnostic_script%"'
        ),
    ),
    (
        "ConnectWise Integration with Third-Party Tools",
        (
            "ConnectWise is integrated with a third-party tool (e.g., Microsoft Intune or SCCM) and "
            "the integration process creates a new process."
        ),
        (
            'process.parent_process_name == "connectwise" AND process.file_path LIKE '
            '"%third_party_integration%"'
        ),
    ),
]

# The published file's shape: 4-space indentation, 'dataTypes:' at the level of the dash,
# scalar tactics/techniques, trailing spaces, CRLF line endings.
PUBLISHED = (
    "id: 83f7b313-b955-4988-b524-b2da55c67b43\n"
    "name: Remote Management and Monitoring tool - ConnectWise - Create Process\n"
    "description: |\n"
    "    Remote Monitoring and Management (RMM) programs are IT to manage remote endpoints. "
    "Attackers have begun to abuse these programs to persist or provide C2 channels.\n"
    "    https://github.com/jischell-msft/RemoteManagementMonitoringTools\n"
    "requiredDataConnectors:\n"
    "    - connectorId: MicrosoftThreatProtection\n"
    "    dataTypes:\n"
    "        - DeviceProcessEvents\n"
    "tactics: CommandAndControl\n"
    "relevantTechniques: T1219\n"
    "query: |\n"
    "  let Time_start = now(-5d);\n"
    "  let Time_end = now();\n"
    "  //\n"
    "  DeviceProcessEvents \n"
    "  | where Timestamp between (Time_start..Time_end)\n"
    "  | where ProcessVersionInfoCompanyName has_any (\n"
    "          'ConnectWise', \n"
    "          'Continuum Managed', \n"
    "          'ScreenConnect'\n"
    "      )\n"
    "  | summarize FirstSeen=min(Timestamp), LastSeen=max(Timestamp), \n"
    "      Report=make_set(ReportId), Count=count() by DeviceId, DeviceName, AccountUpn \n"
).replace("\n", "\r\n")


def bundled_text() -> str:
    path = importlib.resources.files("rmmhunt") / "data" / "rules" / FOUNDING_RULE_FILE
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def founding() -> Rule:
    return rules.get(FOUNDING_ID)


# ---------------------------------------------------------------------------------------------
# The founding rule


def test_founding_rule_identity(founding: Rule) -> None:
    assert founding.id == FOUNDING_ID
    assert founding.name == FOUNDING_NAME
    assert founding.description == SEED_DESCRIPTION
    assert (
        "https://github.com/jischell-msft/RemoteManagementMonitoringTools" in founding.description
    )


def test_founding_rule_connector_tactic_technique(founding: Rule) -> None:
    assert founding.required_data_connectors == (
        DataConnector("MicrosoftThreatProtection", ("DeviceProcessEvents",)),
    )
    assert founding.tactics == ("CommandAndControl",)
    assert founding.relevant_techniques == ("T1219",)
    assert founding.table == "DeviceProcessEvents"
    assert founding.tables == ("DeviceProcessEvents",)


def test_founding_rule_query_is_the_seed_query(founding: Rule) -> None:
    assert founding.query == SEED_QUERY
    assert founding.lookback is not None and founding.lookback.days == 5


def test_founding_rule_five_scenarios_exactly_as_in_the_seed(founding: Rule) -> None:
    got = [(s.name, s.description, s.filter) for s in founding.false_positives]
    assert got == SEED_SCENARIOS


def test_founding_rule_matches_the_seed_document_text(founding: Rule) -> None:
    # Every scenario line of the founding document, as the document writes it.
    seed = """Scenario: Scheduled Job Execution via ConnectWise
Description: A legitimate scheduled job in ConnectWise is configured to create a process for system maintenance (e.g., patching or log cleanup).
Filter/Exclusion: process.parent_process_name == "connectwise" OR process.command_line LIKE "%scheduled_job%"
Scenario: Admin Task to Deploy Software via ConnectWise
Description: An IT admin is using ConnectWise to deploy a software update across endpoints, which triggers a process creation event.
Filter/Exclusion: process.parent_process_name == "connectwise" AND process.file_path LIKE "%software_update%"
Scenario: ConnectWise Agent Service Initialization
Description: The ConnectWise agent service starts up and creates a process as part of its normal initialization routine.
Filter/Exclusion: process.parent_process_name == "connectwise_agent" OR process.file_path LIKE "%connectwise_agent.exe"
Scenario: Remote System Monitoring via ConnectWise
Description: A system monitoring task initiated through ConnectWise is running a diagnostic script that creates a process.
Filter/Exclusion: process.parent_process_name == "connectwise" AND process.file_path LIKE "%diagnostic_script%"
Scenario: ConnectWise Integration with Third-Party Tools
Description: ConnectWise is integrated with a third-party tool (e.g., Microsoft Intune or SCCM) and the integration process creates a new process.
Filter/Exclusion: process.parent_process_name == "connectwise" AND process.file_path LIKE "%third_party_integration%\""""
    rendered = "\n".join(
        f"Scenario: {s.name}\nDescription: {s.description}\nFilter/Exclusion: {s.filter}"
        for s in founding.false_positives
    )
    assert rendered == seed


def test_founding_rule_keeps_the_document_notes(founding: Rule) -> None:
    assert founding.extra["summary"].startswith(
        "The detection identifies the use of the ConnectWise RMM tool to create processes"
    )
    assert founding.extra["sentinelTables"] == [
        {"table": "DeviceProcessEvents", "notes": "Ensure this data connector is enabled"}
    ]


def test_founding_rule_scenario_filters_parse(founding: Rule) -> None:
    for s in founding.false_positives:
        assert s.expression.to_source() == s.filter
    assert founding.scenario("connectwise agent service initialization").name == (
        "ConnectWise Agent Service Initialization"
    )
    with pytest.raises(KeyError):
        founding.scenario("nope")


@pytest.mark.parametrize(
    "key",
    [
        FOUNDING_ID,
        FOUNDING_ID.upper(),
        FOUNDING_NAME,
        FOUNDING_NAME.lower(),
        "connectwise-create-process",
        "  connectwise-create-process ",
    ],
)
def test_get_by_id_name_or_file(key: str, founding: Rule) -> None:
    assert rules.get(key) is founding


def test_get_unknown() -> None:
    with pytest.raises(UnknownRuleError) as info:
        rules.get("no such rule")
    assert isinstance(info.value, LookupError)
    with pytest.raises(TypeError):
        rules.get(42)  # type: ignore[arg-type]


def test_pack_starts_with_the_founding_rule_and_has_unique_ids(founding: Rule) -> None:
    p = rules.pack()
    assert isinstance(p, RulePack)
    assert p[0] is founding
    ids = [r.id.lower() for r in p]
    assert len(ids) == len(set(ids))
    assert rules.pack() is p  # cached
    assert p.get(FOUNDING_ID) is founding
    assert isinstance(p[:1], RulePack) and len(p[:1]) == 1
    assert founding in p.by_table("DeviceProcessEvents")


def test_pack_json_rules_load_when_present() -> None:
    pack_file = importlib.resources.files("rmmhunt") / "data" / "pack.json"
    p = rules.pack()
    if pack_file.is_file():
        # The pack's own copy of the founding query is shadowed by the founding rule.
        assert len(p) > 1
        assert all(r.lookback is not None for r in p)
    else:
        assert len(p) == 1


def test_bundled_file_round_trips_textually() -> None:
    text = bundled_text()
    body = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))
    rule = Rule.from_yaml(text)
    assert rule.to_yaml() == body


# ---------------------------------------------------------------------------------------------
# Round trips and unknown fields


def test_to_yaml_from_yaml_equal(founding: Rule) -> None:
    again = Rule.from_yaml(founding.to_yaml())
    assert again == founding
    assert again.to_yaml() == founding.to_yaml()


def test_unknown_fields_are_kept_in_order() -> None:
    text = f"""zeta: 1
id: {FOUNDING_ID}
name: n
metadata:
  source:
    kind: Community
description: d
requiredDataConnectors:
  - dataTypes:
      - DeviceProcessEvents
    connectorId: MicrosoftThreatProtection
    note: kept
tactics: [CommandAndControl]
relevantTechniques: [T1219]
query: DeviceProcessEvents
alpha:
  - x
  - y: 2
falsePositives:
  - filter: process.name == "a"
    owner: soc
    name: s
    description: d
"""
    rule = Rule.from_yaml(text)
    assert list(rule.extra) == ["zeta", "metadata", "alpha"]
    assert rule.required_data_connectors[0].extra == {"note": "kept"}
    assert rule.false_positives[0].extra == {"owner": "soc"}
    out = rule.to_yaml()
    keys = [line.split(":")[0] for line in out.splitlines() if line and not line[0].isspace()]
    assert keys == [
        "zeta",
        "id",
        "name",
        "metadata",
        "description",
        "requiredDataConnectors",
        "tactics",
        "relevantTechniques",
        "query",
        "alpha",
        "falsePositives",
    ]
    assert "  - dataTypes:" in out  # the connector's own key order is kept too
    assert "  - filter: process.name ==" in out
    assert Rule.from_yaml(out) == rule


def test_equality_ignores_key_order_and_source(founding: Rule) -> None:
    other = dataclasses.replace(founding, key_order=(), source=None)
    assert other == founding
    assert dataclasses.replace(founding, name="x") != founding


def test_rule_from_path_and_bytes(tmp_path: Path, founding: Rule) -> None:
    f = tmp_path / "r.yaml"
    f.write_text(founding.to_yaml(), encoding="utf-8")
    assert Rule.from_yaml(f) == founding
    assert Rule.from_yaml(str(f)) == founding
    assert Rule.from_yaml(f.read_bytes()) == founding
    assert Rule.from_yaml(str(f)).source == str(f)
    assert rules.load(f) == founding
    loaded = rules.load(tmp_path)
    assert isinstance(loaded, RulePack) and list(loaded) == [founding]
    with pytest.raises(FileNotFoundError):
        Rule.from_yaml(str(tmp_path / "missing.yaml"))
    with pytest.raises(FileNotFoundError):
        rules.load(tmp_path / "missing")


_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x85\u2028\u2029"),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(
    name=_text.filter(lambda s: s.strip() != ""),
    description=_text.filter(lambda s: s.strip() != ""),
    query=_text.filter(lambda s: s.strip() != ""),
    value=_text,
)
def test_round_trip_any_text(name: str, description: str, query: str, value: str) -> None:
    rule = Rule(
        id=FOUNDING_ID,
        name=name,
        description=description,
        query=query,
        required_data_connectors=[
            DataConnector("MicrosoftThreatProtection", ["DeviceProcessEvents"])
        ],
        tactics=["CommandAndControl"],
        relevant_techniques=["T1219"],
        false_positives=[Scenario("s", description, 'process.name == "x"')],
        extra={"custom": value, "nested": {"k": [value]}},
    )
    assert Rule.from_yaml(rule.to_yaml()) == rule


# ---------------------------------------------------------------------------------------------
# The published files' defect


def test_published_defect_is_repaired_with_a_warning() -> None:
    with pytest.warns(RuleRepairWarning) as record:
        rule = Rule.from_yaml(PUBLISHED)
    assert len(record) == 1
    message = str(record[0].message)
    assert "dataTypes:" in message and "- connectorId:" in message
    assert "line 8" in message and "re-indented" in message and "CRLF" in message
    assert rule.required_data_connectors == (
        DataConnector("MicrosoftThreatProtection", ("DeviceProcessEvents",)),
    )
    assert rule.tactics == ("CommandAndControl",)
    assert rule.relevant_techniques == ("T1219",)
    assert "\r" not in rule.query
    assert rule.query.startswith("let Time_start = now(-5d);\nlet Time_end = now();\n//\n")
    assert "DeviceProcessEvents \n" in rule.query  # trailing spaces are content, kept
    # Written back, the file is valid YAML and loads without a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Rule.from_yaml(rule.to_yaml()) == rule


def test_published_defect_with_several_connectors() -> None:
    text = f"""id: {FOUNDING_ID}
name: n
description: d
requiredDataConnectors:
  -   connectorId: MicrosoftThreatProtection
  dataTypes:
  - DeviceProcessEvents
  - DeviceNetworkEvents
  - connectorId: Other
  dataTypes:
      - X
tactics: CommandAndControl
relevantTechniques: T1219
query: q
"""
    with pytest.warns(RuleRepairWarning, match="lines 6, 10"):
        rule = Rule.from_yaml(text)
    assert rule.required_data_connectors == (
        DataConnector("MicrosoftThreatProtection", ("DeviceProcessEvents", "DeviceNetworkEvents")),
        DataConnector("Other", ("X",)),
    )


def test_published_defect_in_a_file_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "rmm_ConnectWise_createproc.yaml"
    f.write_bytes(PUBLISHED.encode("utf-8"))
    with pytest.warns(RuleRepairWarning, match="rmm_ConnectWise_createproc.yaml"):
        Rule.from_yaml(f)


def test_a_directory_of_published_files_warns_once(tmp_path: Path) -> None:
    for i in range(3):
        text = PUBLISHED.replace("83f7b313", f"83f7b31{i}")
        (tmp_path / f"r{i}.yaml").write_bytes(text.encode())
    with pytest.warns(RuleRepairWarning, match="repaired 3 rule files") as record:
        loaded = rules.load(tmp_path)
    assert len(record) == 1
    assert isinstance(loaded, RulePack) and len(loaded) == 3


def test_crlf_alone_is_not_a_defect() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rule = Rule.from_yaml(rules.get(FOUNDING_ID).to_yaml().replace("\n", "\r\n"))
    assert rule == rules.get(FOUNDING_ID)


def test_published_defect_plus_another_error_reports_the_other_error() -> None:
    broken = PUBLISHED.replace("tactics: CommandAndControl", "tactics: [CommandAndControl")
    with pytest.raises(RuleError) as info:
        Rule.from_yaml(broken)
    assert info.value.line is not None and info.value.line >= 10
    assert "after re-indenting 'dataTypes:' at line 8" in str(info.value)


# ---------------------------------------------------------------------------------------------
# Errors name file, line and field


VALID = f"""id: {FOUNDING_ID}
name: n
description: d
requiredDataConnectors:
  - connectorId: MicrosoftThreatProtection
    dataTypes:
      - DeviceProcessEvents
tactics:
  - CommandAndControl
relevantTechniques:
  - T1219
query: DeviceProcessEvents
falsePositives:
  - name: s
    description: d
    filter: process.name == "x"
"""


def _lines_without(text: str, prefix: str) -> str:
    return "".join(x for x in text.splitlines(keepends=True) if not x.startswith(prefix))


@pytest.mark.parametrize(
    ("text", "line", "field", "fragment"),
    [
        # missing required fields: the line of the mapping that lacks them
        (_lines_without(VALID, "name:"), 1, "name", "missing required field 'name'"),
        (_lines_without(VALID, "query:"), 1, "query", "missing required field 'query'"),
        (VALID.replace("\ndescription: d\n", "\n"), 1, "description", "missing"),
        (
            VALID.replace("    dataTypes:\n      - DeviceProcessEvents\n", ""),
            5,
            "requiredDataConnectors[0].dataTypes",
            "missing required field 'dataTypes'",
        ),
        (
            VALID.replace(
                "  - connectorId: MicrosoftThreatProtection\n    dataTypes:", "  - dataTypes:"
            ),
            5,
            "requiredDataConnectors[0].connectorId",
            "missing required field 'connectorId'",
        ),
        (
            VALID.replace('    filter: process.name == "x"\n', ""),
            14,
            "falsePositives[0].filter",
            "missing required field 'filter'",
        ),
        # wrong types and values
        (
            VALID.replace("id: 83f7b313-b955-4988-b524-b2da55c67b43", "id: not-a-guid"),
            1,
            "id",
            "expected a GUID",
        ),
        (VALID.replace("name: n", "name: [a, b]"), 2, "name", "expected text"),
        (
            VALID.replace("tactics:\n  - CommandAndControl", "tactics: []"),
            8,
            "tactics",
            "non-empty list",
        ),
        (
            VALID.replace(
                "query: DeviceProcessEvents", "query: DeviceProcessEvents\nseverity: Huge"
            ),
            13,
            "severity",
            "expected one of",
        ),
        (
            VALID.replace("query: DeviceProcessEvents", "query: x\ntriggerThreshold: lots"),
            13,
            "triggerThreshold",
            "whole number",
        ),
        (
            VALID.replace("query: DeviceProcessEvents", "query: x\nqueryPeriod: soon"),
            13,
            "queryPeriod",
            "not a duration",
        ),
        (
            VALID.replace('filter: process.name == "x"', "filter: process.name = 'x'"),
            16,
            "falsePositives[0].filter",
            "does not parse",
        ),
        # YAML-level problems
        (VALID.replace("name: n", "name: n\nname: m"), 3, "name", "duplicate key 'name'"),
        (
            VALID.replace("tactics:\n  - CommandAndControl", "tactics: [CommandAndControl"),
            8,
            "tactics",
            "invalid YAML",
        ),
        (VALID.replace("name: n", "name: n\n  bad: indent"), 3, "name", "invalid YAML"),
        (VALID.replace("name: n", "name: \x07"), 2, "name", "not allowed in YAML"),
        (
            VALID.replace("query: DeviceProcessEvents", "query: 'unterminated"),
            12,
            "query",
            "invalid YAML",
        ),
        ("- just\n- a list\n", 1, None, "a rule is a mapping"),
        ("", 1, None, "empty"),
        (VALID + "---\nid: x\n", 17, None, "another one starts here"),
    ],
)
def test_errors_name_file_line_field(
    text: str, line: int, field: str | None, fragment: str, tmp_path: Path
) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(RuleError) as info:
        Rule.from_yaml(f)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.file == str(f)
    assert err.line == line, str(err)
    assert err.field == field, str(err)
    assert fragment in str(err)
    assert str(err).startswith(f"{f}:{line}")
    if field:
        assert f"field '{field}'" in str(err)


def test_filter_error_keeps_the_caret_and_cause() -> None:
    text = VALID.replace('filter: process.name == "x"', "filter: process.name LIKE 12")
    with pytest.raises(RuleError) as info:
        Rule.from_yaml(text)
    assert isinstance(info.value.__cause__, ExclusionSyntaxError)
    assert info.value.__cause__.column == 19
    assert "^" in str(info.value)


def test_invalid_utf8(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_bytes(VALID.encode() + b"x: \xff\n")
    with pytest.raises(RuleError) as info:
        Rule.from_yaml(f)
    assert info.value.line == 17 and "UTF-8" in str(info.value)


def test_duplicate_scenario_names() -> None:
    text = VALID + '  - name: S\n    description: d\n    filter: process.name == "y"\n'
    with pytest.raises(RuleError, match="repeated: s"):
        Rule.from_yaml(text)


def test_pack_rejects_duplicate_ids(founding: Rule) -> None:
    with pytest.raises(RuleError, match="appears twice"):
        RulePack([founding, dataclasses.replace(founding, name="other")])
