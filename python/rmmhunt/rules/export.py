"""Export to Sentinel: KQL, Sentinel YAML (hunting query or scheduled analytics rule), ARM.

KQL
    :func:`to_kql` folds the active false-positive exclusions into the query as one
    ``| where not(<filter>)`` per scenario, just before the query's last ``summarize``. The
    predicates are compiled by :mod:`rmmhunt.rules.exclusions` and inserted through the engine's
    syntax tree (``rmmhunt.parse(...).insert_where(...)``), then printed from it: no user string
    is ever pasted into KQL text. Without active exclusions the query is returned as written
    (comments included), and the engine is not needed.

Sentinel YAML
    :func:`to_sentinel_yaml` writes Sentinel's schema only: rmmhunt's own fields
    (``falsePositives``, notes) stay in rmmhunt YAML. Sentinel fields that the model does not
    know but a rule carries (``metadata``, ``tags``, ``customDetails``, ...) pass through.
    Defaults where the rule is silent: ``version: 1.0.0``; for a scheduled rule, ``severity:
    Medium``, ``status: Available``, ``triggerOperator: gt``, ``triggerThreshold: 0`` and a Host
    entity mapped from ``DeviceName`` (``FullName``: Defender's DeviceName is the fully qualified
    name). The schedule is derived from the query's window (:func:`schedule`).

ARM
    :func:`to_arm` writes a deployable template with one parameter, ``workspace``: the scheduled
    rule as ``Microsoft.OperationalInsights/workspaces/providers/alertRules`` (kind Scheduled,
    ISO 8601 durations) and the hunting query as a
    ``Microsoft.OperationalInsights/workspaces/savedSearches`` in category "Hunting Queries".
    Resource names derive from the rule id, so the output is deterministic. No output of this
    module contains a timestamp.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal

from .errors import FieldMapError, RuleError
from .fieldmap import FieldMap
from .model import Rule, Scenario, format_iso_duration, parse_duration

__all__ = [
    "ARM_ALERT_RULE_API",
    "ARM_SAVED_SEARCH_API",
    "active_scenarios",
    "exclusion_predicates",
    "resolve_field_map",
    "schedule",
    "to_arm",
    "to_kql",
    "to_sentinel_yaml",
]

#: API versions written into ARM templates (both GA).
ARM_ALERT_RULE_API = "2023-02-01"
ARM_SAVED_SEARCH_API = "2020-08-01"
ARM_SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"

DEFAULT_VERSION = "1.0.0"
DEFAULT_SEVERITY = "Medium"
#: Sentinel's limits for scheduled rules.
MIN_INTERVAL = timedelta(minutes=5)
MAX_INTERVAL = timedelta(days=14)
LONG_PERIOD = timedelta(days=2)  # from this query period on, the frequency must be >= 1 hour
DEFAULT_SUPPRESSION = timedelta(hours=5)

HOST_FROM_DEVICE_NAME: dict[str, Any] = {
    "entityType": "Host",
    "fieldMappings": [{"identifier": "FullName", "columnName": "DeviceName"}],
}

# Sentinel fields the model does not know that pass through to Sentinel YAML, per kind.
_PASS_HUNTING = ("tags", "metadata")
_PASS_SCHEDULED = (
    "status",
    "customDetails",
    "alertDetailsOverride",
    "eventGroupingSettings",
    "incidentConfiguration",
    "sentinelEntitiesMappings",
    "tags",
    "metadata",
)
_TRIGGER_ARM = {"gt": "GreaterThan", "lt": "LessThan", "eq": "Equal", "ne": "NotEqual"}

ScenarioArg = Sequence[str | Scenario] | None
FieldMapArg = FieldMap | Mapping[str, str] | None


# ----------------------------------------------------------------------------------------------
# Exclusions


def active_scenarios(rule: Rule, scenarios: ScenarioArg) -> tuple[Scenario, ...]:
    """The scenarios of ``rule`` selected by ``scenarios`` (names, case-insensitive, or Scenario
    objects of the rule), in the rule's order; all of them when ``None``."""
    if scenarios is None:
        return rule.false_positives
    if isinstance(scenarios, (str, Scenario)):
        scenarios = [scenarios]
    chosen: list[Scenario] = []
    for s in scenarios:
        if isinstance(s, Scenario):
            if s not in rule.false_positives:
                raise KeyError(f"scenario {s.name!r} is not one of rule {rule.name!r}'s")
            found = s
        elif isinstance(s, str):
            found = rule.scenario(s)
        else:
            raise TypeError(f"a scenario is a name or a Scenario, not {type(s).__name__}")
        if found not in chosen:
            chosen.append(found)
    return tuple(s for s in rule.false_positives if s in chosen)


def resolve_field_map(rule: Rule, field_map: FieldMapArg) -> FieldMap:
    """The field map for ``rule``'s table: ``field_map`` itself, the default map overridden by a
    plain mapping, or the default."""
    table = rule.table
    if isinstance(field_map, FieldMap):
        if field_map.table != table:
            raise FieldMapError(
                f"the field map is for {field_map.table}, but rule {rule.name!r} reads {table}",
                field="",
                table=table,
            )
        return field_map
    base = FieldMap.for_table(table)
    return base.override(field_map) if field_map else base


def exclusion_predicates(
    rule: Rule,
    scenarios: ScenarioArg = None,
    field_map: FieldMapArg = None,
    present: Sequence[str] | None = None,
) -> list[tuple[Scenario, str]]:
    """(scenario, KQL predicate) for each active scenario. ``present``: the columns of the data
    at hand (default: the table's documented columns)."""
    active = active_scenarios(rule, scenarios)
    if not active:
        return []
    fm = resolve_field_map(rule, field_map)
    return [(s, s.to_kql(fm, present)) for s in active]


def _engine() -> Any:
    try:
        import rmmhunt
    except ImportError as exc:  # pragma: no cover - depends on the build
        raise ImportError(
            "folding exclusions into KQL needs the rmmhunt engine (the compiled extension); "
            "build it, or export with exclusions=False"
        ) from exc
    if not hasattr(rmmhunt, "parse"):  # pragma: no cover - depends on the build
        raise ImportError("the rmmhunt engine is not built (rmmhunt.parse is missing)")
    return rmmhunt


def to_kql(
    rule: Rule,
    *,
    exclusions: bool = True,
    scenarios: ScenarioArg = None,
    field_map: FieldMapArg = None,
) -> str:
    """:meth:`Rule.to_kql`."""
    preds = exclusion_predicates(rule, scenarios, field_map) if exclusions else []
    if not preds:
        return rule.query
    query = _engine().parse(rule.query)
    for _, pred in preds:
        query = query.insert_where(f"not({pred})")
    text = str(query)
    return text if text.endswith("\n") else text + "\n"


# ----------------------------------------------------------------------------------------------
# Schedule


def _sentinel_duration(td: timedelta) -> str:
    minutes, rest = divmod(td, timedelta(minutes=1))
    if rest:
        raise ValueError(f"Sentinel schedules are in whole minutes, not {td}")
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def _iso(td: timedelta) -> str:
    return format_iso_duration(td)


def _show(td: timedelta) -> str:
    try:
        return _sentinel_duration(td)
    except ValueError:
        return str(td)


def schedule(
    rule: Rule, query_frequency: str | timedelta | None = None
) -> tuple[timedelta, timedelta]:
    """(queryFrequency, queryPeriod) of the scheduled rule.

    ``queryPeriod`` is the query's own window (``let Time_start = now(-5d);`` gives 5 days), or
    the rule's ``queryPeriod`` when the query has no such window; if both exist they must agree.
    ``queryFrequency`` is, in order: the argument, the rule's ``queryFrequency``, or the period
    itself, so that consecutive runs tile time: every event is examined by exactly one run and
    no device is alerted twice for the same events. Checked against Sentinel's limits: both
    between 5 minutes and 14 days, in whole minutes, frequency <= period, and a frequency of at
    least 1 hour once the period reaches 2 days. Raises :class:`RuleError`."""
    lookback = rule.lookback
    period = lookback
    if rule.query_period is not None:
        declared = parse_duration(rule.query_period)
        if lookback is not None and declared != lookback:
            raise RuleError(
                f"queryPeriod {rule.query_period} does not match the query's window "
                f"({_show(lookback)}, from 'let Time_start')",
                file=rule.source,
                field="queryPeriod",
            )
        period = declared
    if period is None:
        raise RuleError(
            "cannot derive queryPeriod: the query has no 'let Time_start = now(-<span>);' and "
            "the rule no queryPeriod",
            file=rule.source,
            field="queryPeriod",
        )
    if query_frequency is not None:
        frequency, field = parse_duration(query_frequency), "queryFrequency (argument)"
    elif rule.query_frequency is not None:
        frequency, field = parse_duration(rule.query_frequency), "queryFrequency"
    else:
        frequency, field = period, "queryPeriod"

    def check(value: timedelta, name: str) -> None:
        if not MIN_INTERVAL <= value <= MAX_INTERVAL:
            raise RuleError(
                f"{name} {_show(value)} is outside Sentinel's limits (5m to 14d)",
                file=rule.source,
                field=name.split()[0],
            )
        if value % timedelta(minutes=1):
            raise RuleError(
                f"{name} {value} is not a whole number of minutes",
                file=rule.source,
                field=name.split()[0],
            )

    check(period, "queryPeriod")
    check(frequency, field)
    if frequency > period:
        raise RuleError(
            f"queryFrequency {_show(frequency)} is longer than queryPeriod {_show(period)}: "
            "events between runs would never be examined",
            file=rule.source,
            field="queryFrequency",
        )
    if period >= LONG_PERIOD and frequency < timedelta(hours=1):
        raise RuleError(
            f"with a queryPeriod of {_show(period)} (2 days or more) Sentinel requires a "
            f"queryFrequency of at least 1h, not {_show(frequency)}",
            file=rule.source,
            field="queryFrequency",
        )
    return frequency, period


# ----------------------------------------------------------------------------------------------
# Sentinel YAML


def _entity_mappings(rule: Rule, query: str) -> list[Any] | None:
    if rule.entity_mappings is not None:
        return [dict(m) for m in rule.entity_mappings]
    if re.search(r"\bDeviceName\b", query):
        return [json.loads(json.dumps(HOST_FROM_DEVICE_NAME))]
    return None


def _connectors(rule: Rule) -> list[dict[str, Any]]:
    return [
        {"connectorId": c.connector_id, "dataTypes": list(c.data_types)}
        for c in rule.required_data_connectors
    ]


def to_sentinel_yaml(
    rule: Rule,
    kind: Literal["hunting", "scheduled"] = "hunting",
    *,
    exclusions: bool = True,
    scenarios: ScenarioArg = None,
    field_map: FieldMapArg = None,
    query_frequency: str | timedelta | None = None,
) -> str:
    """:meth:`Rule.to_sentinel_yaml`. ``query_frequency`` applies to ``kind="scheduled"``."""
    from .yamlio import dump_yaml

    if kind not in ("hunting", "scheduled"):
        raise ValueError(f"kind must be 'hunting' or 'scheduled', not {kind!r}")
    query = to_kql(rule, exclusions=exclusions, scenarios=scenarios, field_map=field_map)
    out: dict[str, Any] = {"id": rule.id, "name": rule.name, "description": rule.description}
    if kind == "scheduled":
        frequency, period = schedule(rule, query_frequency)
        out["severity"] = rule.severity or DEFAULT_SEVERITY
        out["status"] = rule.extra.get("status", "Available")
        out["requiredDataConnectors"] = _connectors(rule)
        out["queryFrequency"] = _sentinel_duration(frequency)
        out["queryPeriod"] = _sentinel_duration(period)
        out["triggerOperator"] = rule.trigger_operator or "gt"
        out["triggerThreshold"] = 0 if rule.trigger_threshold is None else rule.trigger_threshold
    elif query_frequency is not None:
        raise ValueError("query_frequency applies to scheduled rules only")
    else:
        out["requiredDataConnectors"] = _connectors(rule)
    out["tactics"] = list(rule.tactics)
    out["relevantTechniques"] = list(rule.relevant_techniques)
    out["query"] = query
    mappings = _entity_mappings(rule, query)
    if mappings is not None:
        out["entityMappings"] = mappings
    for key in _PASS_SCHEDULED if kind == "scheduled" else _PASS_HUNTING:
        if key in rule.extra and key not in out:
            out[key] = rule.extra[key]
    out["version"] = rule.version or DEFAULT_VERSION
    if kind == "scheduled":
        out["kind"] = "Scheduled"
    return dump_yaml(out)


# ----------------------------------------------------------------------------------------------
# ARM


def _arm_literal(value: Any) -> Any:
    """Make user text literal in ARM: a string that starts with '[' and ends with ']' would be
    evaluated as a template expression; ARM's escape is a second leading '['."""
    if isinstance(value, str):
        return "[" + value if value.startswith("[") and value.endswith("]") else value
    if isinstance(value, list):
        return [_arm_literal(v) for v in value]
    if isinstance(value, dict):
        return {k: _arm_literal(v) for k, v in value.items()}
    return value


def _techniques(rule: Rule) -> list[str]:
    """Parent technique ids (``T1219``; ``T1566.001`` -> ``T1566``), as the API expects."""
    seen: dict[str, None] = {}
    for t in rule.relevant_techniques:
        seen.setdefault(t.split(".")[0], None)
    return list(seen)


def _alert_rule(rule: Rule, query: str, query_frequency: str | timedelta | None) -> dict[str, Any]:
    frequency, period = schedule(rule, query_frequency)
    props: dict[str, Any] = {
        "displayName": rule.name,
        "description": rule.description.strip(),
        "severity": rule.severity or DEFAULT_SEVERITY,
        "enabled": True,
        "query": query,
        "queryFrequency": _iso(frequency),
        "queryPeriod": _iso(period),
        "triggerOperator": _TRIGGER_ARM[rule.trigger_operator or "gt"],
        "triggerThreshold": 0 if rule.trigger_threshold is None else rule.trigger_threshold,
        "suppressionDuration": _iso(DEFAULT_SUPPRESSION),
        "suppressionEnabled": False,
        "tactics": list(rule.tactics),
        "techniques": _techniques(rule),
    }
    mappings = _entity_mappings(rule, query)
    if mappings is not None:
        props["entityMappings"] = mappings
    for key in (
        "customDetails",
        "alertDetailsOverride",
        "eventGroupingSettings",
        "incidentConfiguration",
    ):
        if key in rule.extra:
            props[key] = rule.extra[key]
    return {
        "type": "Microsoft.OperationalInsights/workspaces/providers/alertRules",
        "apiVersion": ARM_ALERT_RULE_API,
        "name": f"[concat(parameters('workspace'), '/Microsoft.SecurityInsights/{rule.id}')]",
        "kind": "Scheduled",
        "properties": _arm_literal(props),
    }


def _saved_search(rule: Rule, query: str) -> dict[str, Any]:
    tags = [
        {"name": "description", "value": rule.description.strip()},
        {"name": "tactics", "value": ",".join(rule.tactics)},
        {"name": "techniques", "value": ",".join(rule.relevant_techniques)},
    ]
    props = {
        "category": "Hunting Queries",
        "displayName": rule.name,
        "query": query,
        "version": 2,
        "tags": tags,
    }
    return {
        "type": "Microsoft.OperationalInsights/workspaces/savedSearches",
        "apiVersion": ARM_SAVED_SEARCH_API,
        "name": f"[concat(parameters('workspace'), '/{rule.id}')]",
        "properties": _arm_literal(props),
    }


def to_arm(
    rule: Rule,
    kind: Literal["both", "scheduled", "hunting"] = "both",
    *,
    exclusions: bool = True,
    scenarios: ScenarioArg = None,
    field_map: FieldMapArg = None,
    query_frequency: str | timedelta | None = None,
) -> str:
    """:meth:`Rule.to_arm`: JSON text, two-space indented, ending in a newline."""
    if kind not in ("both", "scheduled", "hunting"):
        raise ValueError(f"kind must be 'both', 'scheduled' or 'hunting', not {kind!r}")
    if kind == "hunting" and query_frequency is not None:
        raise ValueError("query_frequency applies to scheduled rules only")
    query = to_kql(rule, exclusions=exclusions, scenarios=scenarios, field_map=field_map)
    resources = []
    if kind in ("both", "scheduled"):
        resources.append(_alert_rule(rule, query, query_frequency))
    if kind in ("both", "hunting"):
        resources.append(_saved_search(rule, query))
    template = {
        "$schema": ARM_SCHEMA,
        "contentVersion": "1.0.0.0",
        "parameters": {
            "workspace": {
                "type": "string",
                "metadata": {
                    "description": "Name of the Log Analytics workspace where Microsoft "
                    "Sentinel is enabled"
                },
            }
        },
        "resources": resources,
    }
    return json.dumps(template, indent=2, ensure_ascii=False) + "\n"
