"""The rule model: a detection with identity, metadata, documented false positives and a life
in Sentinel.

A :class:`Rule` holds the fields of a Sentinel hunting query / scheduled analytics rule plus
``falsePositives``, a list of :class:`Scenario` (name, description, filter). Python attributes are
snake_case; the YAML keys are Sentinel's camelCase (``requiredDataConnectors``,
``relevantTechniques``, ...). Fields that the model does not know are kept in ``extra`` and written
back, in their original order, by :meth:`Rule.to_yaml`.

Rules are immutable values: compare them with ``==`` (key order and source file do not take part),
derive new ones with :func:`dataclasses.replace`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, overload

from . import exclusions
from .errors import RuleError

if TYPE_CHECKING:
    from .fieldmap import FieldMap
    from .hunt import HuntResult, TablesArg

__all__ = [
    "WINDOW_LET",
    "DataConnector",
    "Rule",
    "RulePack",
    "Scenario",
    "format_iso_duration",
    "format_kql_timespan",
    "parse_duration",
]

#: The ``let`` that holds the start of a rule's time window (``let Time_start = now(-5d);``).
WINDOW_LET = "Time_start"

SEVERITIES = ("Informational", "Low", "Medium", "High")
TRIGGER_OPERATORS = ("gt", "lt", "eq", "ne")


# ----------------------------------------------------------------------------------------------
# Durations: KQL timespans ("5d", "90m"), ISO 8601 ("P5D", "PT1H30M") and timedelta

_KQL_UNITS: dict[str, timedelta] = {}
for _names, _unit in (
    ("d day days", timedelta(days=1)),
    ("h hr hrs hour hours", timedelta(hours=1)),
    ("m min minute minutes", timedelta(minutes=1)),
    ("s sec second seconds", timedelta(seconds=1)),
    ("ms milli millis millisec millisecond milliseconds", timedelta(milliseconds=1)),
    ("micro micros microsec microsecond microseconds", timedelta(microseconds=1)),
):
    for _n in _names.split():
        _KQL_UNITS[_n] = _unit

_KQL_SPAN = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*\Z")
_ISO_SPAN = re.compile(
    r"\s*P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?\s*\Z"
)


def parse_duration(value: str | timedelta) -> timedelta:
    """A duration from a KQL timespan (``"7d"``, ``"1.5h"``, ``"90m"``), an ISO 8601 duration
    (``"P7D"``, ``"PT1H30M"``) or a :class:`~datetime.timedelta`. Raises ``ValueError``."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise TypeError(f"a duration is a str or timedelta, not {type(value).__name__}")
    m = _KQL_SPAN.match(value)
    if m and m.group(2) in _KQL_UNITS:
        unit, number = _KQL_UNITS[m.group(2)], m.group(1)
        return unit * (float(number) if "." in number else int(number))
    m = _ISO_SPAN.match(value)
    if m and any(g is not None for g in m.groups()) and not value.strip().endswith("T"):
        weeks, days, hours, minutes = (int(g) if g else 0 for g in m.groups()[:4])
        seconds = float(m.group(5)) if m.group(5) else 0.0
        return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    raise ValueError(
        f"not a duration: {value!r} (use a KQL timespan such as '7d', '12h', '30m', "
        "or ISO 8601 such as 'P7D')"
    )


def _split(td: timedelta) -> tuple[int, int, int, int, int]:
    us = td // timedelta(microseconds=1)
    days, us = divmod(us, 86_400_000_000)
    hours, us = divmod(us, 3_600_000_000)
    minutes, us = divmod(us, 60_000_000)
    seconds, us = divmod(us, 1_000_000)
    return days, hours, minutes, seconds, us


def format_kql_timespan(td: timedelta) -> str:
    """The shortest exact KQL timespan literal: ``7d``, ``36h``, ``90m``, ``45s``, ``250ms``."""
    us = td // timedelta(microseconds=1)
    if us < 0:
        raise ValueError("negative duration")
    for size, suffix in (
        (86_400_000_000, "d"),
        (3_600_000_000, "h"),
        (60_000_000, "m"),
        (1_000_000, "s"),
        (1_000, "ms"),
    ):
        if us % size == 0:
            return f"{us // size}{suffix}"
    return f"{us}microseconds"


def format_iso_duration(td: timedelta) -> str:
    """ISO 8601: ``P5D``, ``PT1H``, ``P1DT2H30M``."""
    if td < timedelta(0):
        raise ValueError("negative duration")
    days, hours, minutes, seconds, us = _split(td)
    out = "P" + (f"{days}D" if days else "")
    clock = ""
    if hours:
        clock += f"{hours}H"
    if minutes:
        clock += f"{minutes}M"
    if seconds or us:
        clock += f"{seconds}.{us:06d}".rstrip("0").rstrip(".") + "S"
    if clock:
        out += "T" + clock
    return out if out != "P" else "PT0S"


_WINDOW = re.compile(
    r"\blet\s+" + WINDOW_LET + r"\s*=\s*(?:now\s*\(\s*-\s*(?P<now>[0-9.]+\s*[A-Za-z]+)\s*\)"
    r"|ago\s*\(\s*(?P<ago>[0-9.]+\s*[A-Za-z]+)\s*\))\s*;"
)


# ----------------------------------------------------------------------------------------------
# Model


def _freeze_seq(value: Any, what: str) -> tuple[Any, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence):
        return tuple(value)
    raise TypeError(f"{what} must be a sequence, not {type(value).__name__}")


@dataclass(frozen=True)
class DataConnector:
    """One entry of ``requiredDataConnectors``."""

    connector_id: str
    data_types: tuple[str, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)
    key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_types", _freeze_seq(self.data_types, "data_types"))


@dataclass(frozen=True)
class Scenario:
    """A documented false-positive scenario: its name, description and exclusion filter.

    The filter is parsed on construction (:class:`~rmmhunt.rules.ExclusionSyntaxError` if it does
    not parse); :attr:`expression` is the parsed form.
    """

    name: str
    description: str
    filter: str
    extra: Mapping[str, Any] = field(default_factory=dict)
    key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)
    expression: exclusions.Expr = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "expression", exclusions.parse(self.filter))

    def to_kql(self, field_map: FieldMap, present: Sequence[str] | None = None) -> str:
        """The filter as a KQL predicate (see :mod:`rmmhunt.rules.exclusions`)."""
        return self.expression.to_kql(field_map, present)

    def matches(self, row: Mapping[str, object], field_map: FieldMap) -> bool:
        """Whether one event (column -> value) matches the filter (Python reference semantics)."""
        return self.expression.matches(row, field_map)


@dataclass(frozen=True)
class Rule:
    """A detection rule. See the module docs; YAML keys in brackets.

    Required: ``id`` (a GUID), ``name``, ``description``, ``query``,
    ``required_data_connectors`` [requiredDataConnectors], ``tactics``, ``relevant_techniques``
    [relevantTechniques]. Optional: ``false_positives`` [falsePositives], ``version``,
    ``severity``, ``query_frequency``/``query_period`` [queryFrequency/queryPeriod],
    ``trigger_operator``/``trigger_threshold`` [triggerOperator/triggerThreshold],
    ``entity_mappings`` [entityMappings]. ``extra`` holds every other field.
    """

    id: str
    name: str
    description: str
    query: str
    required_data_connectors: tuple[DataConnector, ...]
    tactics: tuple[str, ...]
    relevant_techniques: tuple[str, ...]
    false_positives: tuple[Scenario, ...] = ()
    version: str | None = None
    severity: str | None = None
    query_frequency: str | None = None
    query_period: str | None = None
    trigger_operator: str | None = None
    trigger_threshold: int | None = None
    entity_mappings: tuple[Mapping[str, Any], ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: Order of the keys in the file the rule was read from (not part of equality).
    key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)
    #: The file the rule was read from, if any (not part of equality).
    source: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in (
            "required_data_connectors",
            "tactics",
            "relevant_techniques",
            "false_positives",
        ):
            object.__setattr__(self, name, _freeze_seq(getattr(self, name), name))
        if self.entity_mappings is not None:
            object.__setattr__(
                self, "entity_mappings", _freeze_seq(self.entity_mappings, "entity_mappings")
            )
        names = [s.name.casefold() for s in self.false_positives]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise RuleError(
                f"scenario names must be unique; repeated: {', '.join(dupes)}",
                file=self.source,
                field="falsePositives",
            )

    # -- loading and saving ------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, path_or_text: str | bytes | Any) -> Rule:
        """Load a rule from a path (``str`` naming an existing ``.yaml``/``.yml`` file, or any
        ``os.PathLike``) or from YAML text (``str`` or ``bytes``).

        Published RMM query files with the known ``dataTypes`` indentation defect are repaired
        with a :class:`~rmmhunt.rules.RuleRepairWarning`; any other problem raises
        :class:`~rmmhunt.rules.RuleError` naming file, line and field."""
        from .yamlio import load_rule

        return load_rule(path_or_text)

    def to_yaml(self) -> str:
        """The rule as rmmhunt YAML: every field, unknown ones included, in the original order.
        ``Rule.from_yaml(rule.to_yaml()) == rule``."""
        from .yamlio import dump_rule

        return dump_rule(self)

    # -- derived facts -------------------------------------------------------------------------

    # Derived facts are computed once per rule (the fields are frozen): a hunt of the
    # 55-rule pack asked `tables` ~390 times and `lookback` ~120 (a regex search each).
    @functools.cached_property
    def tables(self) -> tuple[str, ...]:
        """Every data type of every required connector, in order, without repeats."""
        seen: dict[str, None] = {}
        for c in self.required_data_connectors:
            for t in c.data_types:
                seen.setdefault(t, None)
        return tuple(seen)

    @property
    def table(self) -> str:
        """The one table the rule reads (its false-positive filters are about that table's
        events). Raises :class:`RuleError` if the rule declares none or several."""
        tables = self.tables
        if len(tables) != 1:
            raise RuleError(
                f"the rule declares {len(tables)} data types ({', '.join(tables) or 'none'}); "
                "exclusions need exactly one table",
                file=self.source,
                field="requiredDataConnectors",
            )
        return tables[0]

    @functools.cached_property
    def lookback(self) -> timedelta | None:
        """The query's window, read from ``let Time_start = now(-5d);`` (or ``ago(5d)``);
        ``None`` if the query has no such ``let``."""
        m = _WINDOW.search(self.query)
        if not m:
            return None
        return parse_duration(m.group("now") or m.group("ago"))

    def scenario(self, name: str) -> Scenario:
        """The false-positive scenario called ``name`` (case-insensitive)."""
        for s in self.false_positives:
            if s.name.casefold() == name.casefold():
                return s
        known = "; ".join(s.name for s in self.false_positives) or "none"
        raise KeyError(f"rule {self.name!r} has no scenario {name!r} (scenarios: {known})")

    # -- export and hunting ------------------------------------------------------------------

    def to_kql(
        self,
        exclusions: bool = True,
        *,
        scenarios: Sequence[str | Scenario] | None = None,
        field_map: FieldMap | Mapping[str, str] | None = None,
    ) -> str:
        """The rule's query as KQL that Sentinel accepts, with the active false-positive
        exclusions (all, or those named in ``scenarios``) folded in before the last
        ``summarize``, one ``| where not(...)`` per scenario. Printed from the engine's syntax
        tree. With ``exclusions=False`` (or no active scenario) the query is returned as
        written."""
        from .export import to_kql

        return to_kql(self, exclusions=exclusions, scenarios=scenarios, field_map=field_map)

    def to_sentinel_yaml(
        self,
        kind: Literal["hunting", "scheduled"] = "hunting",
        *,
        exclusions: bool = True,
        scenarios: Sequence[str | Scenario] | None = None,
        field_map: FieldMap | Mapping[str, str] | None = None,
        query_frequency: str | timedelta | None = None,
    ) -> str:
        """The rule in Sentinel's YAML schema for a hunting query or a scheduled analytics rule
        (see :func:`rmmhunt.rules.export.to_sentinel_yaml`)."""
        from .export import to_sentinel_yaml

        return to_sentinel_yaml(
            self,
            kind,
            exclusions=exclusions,
            scenarios=scenarios,
            field_map=field_map,
            query_frequency=query_frequency,
        )

    def to_arm(
        self,
        kind: Literal["both", "scheduled", "hunting"] = "both",
        *,
        exclusions: bool = True,
        scenarios: Sequence[str | Scenario] | None = None,
        field_map: FieldMap | Mapping[str, str] | None = None,
        query_frequency: str | timedelta | None = None,
    ) -> str:
        """A deployable ARM template (JSON text) with a ``workspace`` parameter: the scheduled
        analytics rule and/or the hunting query (see :func:`rmmhunt.rules.export.to_arm`)."""
        from .export import to_arm

        return to_arm(
            self,
            kind,
            exclusions=exclusions,
            scenarios=scenarios,
            field_map=field_map,
            query_frequency=query_frequency,
        )

    def hunt(
        self,
        tables: TablesArg,
        *,
        now: datetime | str | None = None,
        lookback: str | timedelta | None = None,
        exclusions: Literal["apply", "annotate", "off"] = "apply",
        scenarios: Sequence[str | Scenario] | None = None,
        field_map: FieldMap | Mapping[str, str] | None = None,
    ) -> HuntResult:
        """Run the rule over local data (see :func:`rmmhunt.rules.hunt.hunt`)."""
        from .hunt import hunt

        return hunt(
            self,
            tables,
            now=now,
            lookback=lookback,
            exclusions=exclusions,
            scenarios=scenarios,
            field_map=field_map,
        )


class RulePack(Sequence[Rule]):
    """An ordered, read-only collection of rules with unique ids, looked up by id, name or
    file name (stem)."""

    def __init__(self, rules: Sequence[Rule] = (), *, name: str = "") -> None:
        self.name = name
        self._rules: tuple[Rule, ...] = tuple(rules)
        seen: dict[str, Rule] = {}
        for r in self._rules:
            key = r.id.lower()
            if key in seen:
                raise RuleError(
                    f"rule id {r.id} appears twice (also in {seen[key].source or 'another rule'})",
                    file=r.source,
                    field="id",
                )
            seen[key] = r

    @overload
    def __getitem__(self, index: int) -> Rule: ...

    @overload
    def __getitem__(self, index: slice) -> RulePack: ...

    def __getitem__(self, index: int | slice) -> Rule | RulePack:
        if isinstance(index, slice):
            return RulePack(self._rules[index], name=self.name)
        return self._rules[index]

    def __len__(self) -> int:
        return len(self._rules)

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"<RulePack{label}: {len(self._rules)} rules>"

    def find(self, id_or_name: str) -> Rule | None:
        """The rule whose id, name (case-insensitive) or file stem is ``id_or_name``, or None."""
        key = id_or_name.strip().casefold()
        for r in self._rules:
            if r.id.casefold() == key or r.name.casefold() == key:
                return r
        for r in self._rules:
            src = r.source
            if (
                src is not None
                and src.lower().endswith((".yaml", ".yml"))
                and _stem(src).casefold() == key
            ):
                return r
        return None

    def get(self, id_or_name: str) -> Rule:
        """Like :meth:`find`, but raises :class:`~rmmhunt.rules.UnknownRuleError`."""
        from .errors import UnknownRuleError

        r = self.find(id_or_name)
        if r is None:
            raise UnknownRuleError(f"no rule with id, name or file name {id_or_name!r}")
        return r

    def by_table(self, table: str) -> RulePack:
        """The rules that read ``table``."""
        return RulePack([r for r in self._rules if table in r.tables], name=self.name)


def _stem(path: str) -> str:
    base = re.split(r"[\\/]", path)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base
