"""Running a rule over local data, with its false-positive exclusions accounted for.

``rule.hunt(tables, now=..., lookback=..., exclusions=..., scenarios=...)`` runs the rule's query
with the engine and returns a :class:`HuntResult`: the query's own output plus a
:class:`SuppressionReport` that says, per active scenario, how many events and how many distinct
devices it matched among the events that reach the query's last ``summarize``.

``exclusions``

``"apply"`` (default)
    Events that match any active scenario are dropped before aggregation, exactly as in the
    exported KQL (``rule.to_kql()``): one ``| where not(<filter>)`` per scenario, inserted
    before the last ``summarize``. The report counts what was dropped, per scenario and in total
    (an event that two scenarios match is dropped, and counted in the total, once).
``"annotate"``
    Nothing is dropped; the last ``summarize`` gains one ``countif(<filter>)`` column per scenario
    (named in :attr:`HuntResult.scenario_columns`), so every result row says how many of its
    events each scenario matched. The report is the same as with ``"apply"``; per scenario, the
    column sums equal the report's event counts.
``"off"``
    The query as written; the report is empty.

Nothing is dropped without being counted. All the queries of one hunt use the same ``now``
(the argument, or the time the hunt started), so the result and the report describe the same
window. ``lookback`` ("7d", a timedelta) replaces the rule's window: ``let Time_start =
now(-7d);``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal, cast

from .._arrow import to_pyarrow_table
from .errors import RuleError
from .exclusions import kql_ident
from .export import active_scenarios, resolve_field_map
from .fieldmap import FieldMap
from .model import WINDOW_LET, Rule, Scenario, format_kql_timespan, parse_duration

if TYPE_CHECKING:
    import pandas

__all__ = ["HuntPlan", "HuntResult", "ScenarioSuppression", "SuppressionReport", "hunt", "plan_hunt"]

#: A mapping of table name -> data, or the data of the rule's one table.
TablesArg = Mapping[str, Any] | Any

_UTC = timezone(timedelta(0))
_EVENTS = "RmmhuntSuppressedEvents"
_DEVICES = "RmmhuntSuppressedDevices"


@dataclass(frozen=True)
class ScenarioSuppression:
    """What one scenario (or, for :attr:`SuppressionReport.total`, all of them together)
    matched: events and distinct devices (``device_ids``, sorted)."""

    scenario: str
    events: int
    devices: int
    device_ids: tuple[str, ...] = field(repr=False)
    column: str | None = None  # the annotate-mode column, if any


@dataclass(frozen=True)
class SuppressionReport:
    """Per active scenario, the events and devices it suppressed (``apply``) or would suppress
    (``annotate``); ``total`` counts each event once."""

    mode: str
    scenarios: tuple[ScenarioSuppression, ...]
    total: ScenarioSuppression | None

    def __iter__(self) -> Iterator[ScenarioSuppression]:
        return iter(self.scenarios)

    def __len__(self) -> int:
        return len(self.scenarios)

    def __getitem__(self, name: str) -> ScenarioSuppression:
        for s in self.scenarios:
            if s.scenario.casefold() == name.casefold():
                return s
        raise KeyError(name)

    def to_pylist(self) -> list[dict[str, Any]]:
        """One dict per scenario, then the total: scenario, events, devices."""
        rows = [
            {"scenario": s.scenario, "events": s.events, "devices": s.devices}
            for s in self.scenarios
        ]
        if self.total is not None:
            rows.append(
                {
                    "scenario": self.total.scenario,
                    "events": self.total.events,
                    "devices": self.total.devices,
                }
            )
        return rows

    def to_pandas(self) -> pandas.DataFrame:
        import pandas as pd

        out: pandas.DataFrame = pd.DataFrame(self.to_pylist(), columns=["scenario", "events", "devices"])
        return out

    def __str__(self) -> str:
        rows = self.to_pylist()
        if not rows:
            return f"no exclusions ({self.mode})"
        width = max(len(r["scenario"]) for r in rows)
        lines = [f"{'scenario'.ljust(width)}  events  devices"]
        lines += [
            f"{r['scenario'].ljust(width)}  {r['events']:>6}  {r['devices']:>7}" for r in rows
        ]
        return "\n".join(lines)


@dataclass(frozen=True)
class HuntResult:
    """The output of :meth:`Rule.hunt`: the query's result (``result``, an ``rmmhunt.Result``)
    and the :class:`SuppressionReport` (``suppression``). ``kql`` is the exact query run;
    ``scenario_columns`` maps scenario names to their count columns (annotate mode)."""

    rule: Rule
    result: Any
    suppression: SuppressionReport
    mode: str
    now: datetime
    lookback: timedelta | None
    kql: str
    scenario_columns: Mapping[str, str] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return list(self.result.columns)

    def __len__(self) -> int:
        return len(self.result)

    def to_pylist(self) -> list[dict[str, Any]]:
        return list(self.result.to_pylist())

    def to_arrow(self) -> Any:
        return self.result.to_arrow()

    def to_pandas(self) -> pandas.DataFrame:
        return cast("pandas.DataFrame", self.result.to_pandas())


# ----------------------------------------------------------------------------------------------


def _engine() -> Any:
    from .export import _engine as engine

    return engine()


@functools.lru_cache(maxsize=1024)
def _parsed(kql: str) -> Any:
    """The engine's parse of a rule's query, kept: parsed queries are immutable (their
    edits return new ones), and a hunt of the bundled pack parses every rule again each
    time (~0.5 ms of a hunt's ~8 ms of Python)."""
    return _engine().parse(kql)


def _column_names(data: Any) -> list[str] | None:
    """Column names of a table-like object without consuming it; None if unknown."""
    schema = getattr(data, "schema", None)
    names = getattr(schema, "names", None)
    if isinstance(names, list):  # pyarrow Table / RecordBatch / Reader
        return [str(n) for n in names]
    cols = getattr(data, "columns", None)
    if cols is not None and not callable(cols):
        try:
            return [str(c) for c in cols]  # pandas Index, polars list
        except TypeError:
            return None
    return None


def _reusable(data: Any) -> Any:
    """Inputs that can be read once only (Arrow streams, readers) are materialised, because a
    hunt runs several queries over the same data."""
    module = type(data).__module__.split(".")[0]
    if module in ("pandas", "polars"):
        return data
    import pyarrow as pa

    if isinstance(data, (pa.Table, pa.RecordBatch)):
        return data
    if hasattr(data, "__arrow_c_stream__") or isinstance(data, pa.RecordBatchReader):
        return to_pyarrow_table(data)
    return data


def _annotate_name(name: str, taken: set[str], index: int) -> str:
    words = re.findall(r"[A-Za-z0-9]+", name)
    base = "FP_" + "".join(w[:1].upper() + w[1:] for w in words) if words else f"FP_{index + 1}"
    candidate, n = base, 2
    while candidate.casefold() in taken:
        candidate, n = f"{base}_{n}", n + 1
    taken.add(candidate.casefold())
    return candidate


def _device_ids(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):  # a dynamic array printed as JSON
        value = json.loads(value)
    return [str(v) for v in value if v is not None]


def _now(now: datetime | str | None) -> datetime:
    if now is None:
        return datetime.now(_UTC)
    if isinstance(now, str):
        text = now.strip().replace("Z", "+00:00")
        parsed = datetime.fromisoformat(text)
    elif isinstance(now, datetime):
        parsed = now
    else:
        raise TypeError(f"now must be a datetime or an ISO string, not {type(now).__name__}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_UTC)
    return parsed.astimezone(_UTC)


@dataclass(frozen=True)
class _Count:
    """One counting query of a hunt: events (before the last summarize) matching a scenario
    predicate, and their devices. ``aggregated``: the query ends in a summarize that gained
    the count columns; else it returns the matching rows themselves."""

    label: str
    kql: str
    aggregated: bool


def _count_query(query: Any, predicate: str, device_column: str, label: str) -> _Count:
    from rmmhunt import errors as engine_errors

    no_summarize: tuple[type[BaseException], ...] = tuple(
        cls
        for cls in (
            getattr(engine_errors, "KqlSemanticError", None),
            getattr(engine_errors, "UnsupportedError", None),
        )
        if isinstance(cls, type) and issubclass(cls, BaseException)
    )
    filtered = query.insert_where(predicate)
    try:
        counting = filtered.add_aggregates(
            [(_EVENTS, "count()"), (_DEVICES, f"make_set({kql_ident(device_column)})")]
        )
    except no_summarize:
        return _Count(label, str(filtered), False)  # no summarize: count the rows themselves
    return _Count(label, str(counting), True)


def _counted(count: _Count, result: Any, device_column: str) -> ScenarioSuppression:
    events = 0
    devices: set[str] = set()
    if count.aggregated:
        for n, ids in zip(result.column_pylist(_EVENTS), result.column_pylist(_DEVICES), strict=True):
            events += int(n)
            devices.update(_device_ids(ids))
    else:
        events = len(result)
        if device_column in result.columns:
            devices.update(str(d) for d in result.column_pylist(device_column) if d is not None)
    ids = tuple(sorted(devices))
    return ScenarioSuppression(count.label, events, len(ids), ids)


@dataclass(frozen=True)
class HuntPlan:
    """The queries one :meth:`Rule.hunt` runs (``queries``: the rule's own, then one count per
    active scenario and one for all of them), all over ``tables`` with ``now`` frozen, and how
    their results become a :class:`HuntResult` (:meth:`finish`). Plans of many rules can run
    together, in one pass over each table (``rmmhunt.query_many``)."""

    rule: Rule
    tables: Mapping[str, Any]
    now: datetime
    lookback: timedelta | None
    mode: str
    kql: str
    counts: tuple[_Count, ...] = ()
    device_column: str = "DeviceId"
    scenario_columns: Mapping[str, str] = field(default_factory=dict)

    @property
    def queries(self) -> list[str]:
        return [self.kql, *(c.kql for c in self.counts)]

    def finish(self, results: Sequence[Any]) -> HuntResult:
        """The :class:`HuntResult` from the results of :attr:`queries`, in order."""
        if len(results) != len(self.queries):
            raise ValueError(f"expected {len(self.queries)} results, got {len(results)}")
        counted = [
            _counted(c, r, self.device_column) for c, r in zip(self.counts, results[1:], strict=True)
        ]
        report = SuppressionReport(self.mode, (), None)
        if counted:
            per_scenario = tuple(
                ScenarioSuppression(
                    c.scenario, c.events, c.devices, c.device_ids, self.scenario_columns.get(c.scenario)
                )
                for c in counted[:-1]
            )
            report = SuppressionReport(self.mode, per_scenario, counted[-1])
        return HuntResult(
            self.rule,
            results[0],
            report,
            self.mode,
            self.now,
            self.lookback,
            self.kql,
            dict(self.scenario_columns),
        )


def plan_hunt(
    rule: Rule,
    tables: TablesArg,
    *,
    now: datetime | str | None = None,
    lookback: str | timedelta | None = None,
    exclusions: Literal["apply", "annotate", "off"] = "apply",
    scenarios: Sequence[str | Scenario] | None = None,
    field_map: FieldMap | Mapping[str, str] | None = None,
) -> HuntPlan:
    """The :class:`HuntPlan` of :meth:`Rule.hunt` (same arguments): what it would run."""
    if exclusions not in ("apply", "annotate", "off"):
        raise ValueError(f"exclusions must be 'apply', 'annotate' or 'off', not {exclusions!r}")
    if not isinstance(tables, Mapping):
        if _column_names(tables) is None and not hasattr(tables, "__arrow_c_stream__"):
            raise TypeError("tables must be a mapping of table name -> data, or one table")
        tables = {rule.table: tables}
    frozen_now = _now(now)
    tables = {name: _reusable(data) for name, data in tables.items()}

    query = _parsed(rule.query)
    window: timedelta | None = rule.lookback
    if lookback is not None:
        window = parse_duration(lookback)
        if window <= timedelta(0):
            raise ValueError(f"lookback must be positive, not {lookback!r}")
        if rule.lookback is None:
            raise RuleError(
                f"lookback needs the query to declare 'let {WINDOW_LET} = now(-<span>);'",
                file=rule.source,
                field="query",
            )
        query = query.set_let(WINDOW_LET, f"now(-{format_kql_timespan(window)})")

    active = active_scenarios(rule, scenarios) if exclusions != "off" else ()
    if not active:
        return HuntPlan(rule, tables, frozen_now, window, exclusions, str(query))

    fm = resolve_field_map(rule, field_map)
    table = fm.table
    if table not in tables:
        raise RuleError(
            f"no data given for table {table!r} (given: {', '.join(tables) or 'none'})",
            file=rule.source,
            field="requiredDataConnectors",
        )
    present = _column_names(tables[table])
    predicates = [(s, s.to_kql(fm, present)) for s in active]
    device_column = fm.resolve("device.id", present)

    if exclusions == "apply":
        run = query
        for _, pred in predicates:
            run = run.insert_where(f"not({pred})")
        columns: dict[str, str] = {}
    else:
        taken = {c.casefold() for c in (present or [])}
        columns = {s.name: _annotate_name(s.name, taken, i) for i, (s, _) in enumerate(predicates)}
        run = query.add_aggregates([(columns[s.name], f"countif({p})") for s, p in predicates])
    counts = [_count_query(query, pred, device_column, s.name) for s, pred in predicates]
    any_pred = " or ".join(f"({p})" for _, p in predicates)
    counts.append(_count_query(query, any_pred, device_column, "(any scenario)"))
    return HuntPlan(
        rule, tables, frozen_now, window, exclusions, str(run), tuple(counts), device_column, columns
    )


def hunt(
    rule: Rule,
    tables: TablesArg,
    *,
    now: datetime | str | None = None,
    lookback: str | timedelta | None = None,
    exclusions: Literal["apply", "annotate", "off"] = "apply",
    scenarios: Sequence[str | Scenario] | None = None,
    field_map: FieldMap | Mapping[str, str] | None = None,
) -> HuntResult:
    """:meth:`Rule.hunt`. ``tables``: table name -> pyarrow Table, pandas or polars DataFrame,
    or any object with ``__arrow_c_stream__``; a single such object is the rule's table. The
    rule's query and its counting queries run together, in one pass over each table."""
    plan = plan_hunt(
        rule,
        tables,
        now=now,
        lookback=lookback,
        exclusions=exclusions,
        scenarios=scenarios,
        field_map=field_map,
    )
    engine = _engine()
    results = engine.query_many(plan.queries, plan.tables, now=plan.now)
    return plan.finish(results)
