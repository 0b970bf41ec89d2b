"""Detection rules: identity, metadata, documented false positives, and export to Sentinel.

A :class:`Rule` is a Sentinel hunting query / scheduled analytics rule plus its false-positive
scenarios (:class:`Scenario`), each with a filter in a small language
(:mod:`rmmhunt.rules.exclusions`) whose field paths map to table columns through a
:class:`FieldMap` (:mod:`rmmhunt.rules.fieldmap`).

>>> import rmmhunt.rules as rules
>>> rule = rules.get("connectwise-create-process")      # the bundled founding rule
>>> rule.relevant_techniques
('T1219',)
>>> [s.name for s in rule.false_positives][:1]
['Scheduled Job Execution via ConnectWise']

What a rule does:

* ``Rule.from_yaml(path_or_text)`` / ``rule.to_yaml()``: rmmhunt YAML, unknown fields kept; the
  published RMM files' indentation defect is repaired with a warning.
* ``rule.hunt(tables, now=..., lookback="7d", exclusions="apply" | "annotate" | "off")``: run it
  locally; the result carries a suppression report (:mod:`rmmhunt.rules.hunt`).
* ``rule.to_kql()``, ``rule.to_sentinel_yaml("hunting" | "scheduled")``, ``rule.to_arm()``:
  export with the exclusions folded in (:mod:`rmmhunt.rules.export`).

Bundled rules: :func:`get` (by id, name or file name), :func:`pack` (all of them);
:func:`load` reads a file or a directory of your own.
"""

from __future__ import annotations

from .errors import (
    ExclusionSyntaxError,
    FieldMapError,
    RuleError,
    RuleRepairWarning,
    UnknownRuleError,
)
from .fieldmap import FieldMap
from .hunt import HuntResult, ScenarioSuppression, SuppressionReport
from .model import DataConnector, Rule, RulePack, Scenario
from .yamlio import get, load, pack

__all__ = [
    "DataConnector",
    "ExclusionSyntaxError",
    "FieldMap",
    "FieldMapError",
    "HuntResult",
    "Rule",
    "RuleError",
    "RulePack",
    "RuleRepairWarning",
    "Scenario",
    "ScenarioSuppression",
    "SuppressionReport",
    "UnknownRuleError",
    "get",
    "load",
    "pack",
]
