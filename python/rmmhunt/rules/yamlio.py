"""Reading and writing rule YAML, and the bundled rules.

Loading is strict: invalid YAML, a duplicate key, a missing required field or a field of the wrong
type raises :class:`~rmmhunt.rules.RuleError` with the file, the 1-based line and the field's
path (``requiredDataConnectors[0].dataTypes``).

One defect is repaired, because every published RMM hunting query has it (the jischell-msft
RemoteManagementMonitoringTools files): ``dataTypes:`` indented at the level of the
``- connectorId:`` dash instead of under ``connectorId``, which YAML rejects. Such a file loads
with a :class:`~rmmhunt.rules.RuleRepairWarning` that names the repair and the lines. CRLF line
endings (which those files also have) are read as LF; that alone is valid YAML and is not
warned about.

Writing (:func:`dump_rule`) keeps every field, unknown ones included, in the order they were
read, uses literal blocks (``|``) for multi-line text, and indents lists the way Sentinel's own
YAML does.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .errors import ExclusionSyntaxError, RuleError, RuleRepairWarning, UnknownRuleError
from .model import (
    SEVERITIES,
    TRIGGER_OPERATORS,
    DataConnector,
    Rule,
    RulePack,
    Scenario,
    parse_duration,
)

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["dump_rule", "get", "load", "load_rule", "pack", "parse_rule_text"]

#: YAML key -> Rule attribute, in the canonical order used for keys a rule did not read.
KNOWN_FIELDS: dict[str, str] = {
    "id": "id",
    "name": "name",
    "description": "description",
    "requiredDataConnectors": "required_data_connectors",
    "tactics": "tactics",
    "relevantTechniques": "relevant_techniques",
    "query": "query",
    "version": "version",
    "severity": "severity",
    "queryFrequency": "query_frequency",
    "queryPeriod": "query_period",
    "triggerOperator": "trigger_operator",
    "triggerThreshold": "trigger_threshold",
    "entityMappings": "entity_mappings",
    "falsePositives": "false_positives",
}
REQUIRED_FIELDS = (
    "id",
    "name",
    "description",
    "requiredDataConnectors",
    "tactics",
    "relevantTechniques",
    "query",
)

_Path = tuple[str | int, ...]


def _fmt_path(path: _Path) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else p
    return out


# ----------------------------------------------------------------------------------------------
# Reading text


def _read_source(path_or_text: Any) -> tuple[str, str]:
    """(text, file label)."""
    if isinstance(path_or_text, os.PathLike):
        path = Path(path_or_text)
        return _decode(path.read_bytes(), str(path)), str(path)
    if isinstance(path_or_text, bytes):
        return _decode(path_or_text, "<bytes>"), "<bytes>"
    if isinstance(path_or_text, str):
        looks_like_path = "\n" not in path_or_text and (
            path_or_text.lower().endswith((".yaml", ".yml")) or _is_file(path_or_text)
        )
        if looks_like_path:
            path = Path(path_or_text)
            return _decode(path.read_bytes(), str(path)), str(path)
        return path_or_text, "<string>"
    raise TypeError(f"expected a path, str or bytes, not {type(path_or_text).__name__}")


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # too long for a path, or a NUL character
        return False


def _decode(data: bytes, file: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RuleError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x})", file=file, line=line
        ) from None


# ----------------------------------------------------------------------------------------------
# The published files' defect

_DASH_CONNECTOR = re.compile(r"^(?P<indent>[ ]*)-[ ]+(?P<key>connectorId)[ ]*:")
_DATATYPES = re.compile(r"^(?P<indent>[ ]*)dataTypes[ ]*:")
_SCALAR_ITEM = re.compile(r"-[ ]+(?![\w-]+[ ]*:(?:[ ]|$))")  # "- X", not "- key: ..."


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _find_defect(lines: list[str]) -> list[tuple[int, int]]:
    """(0-based index, target indentation) of each ``dataTypes:`` line that sits at the
    indentation of the dash of the ``- connectorId:`` item it belongs to; the target is the
    column of ``connectorId``."""
    found = []
    dash: tuple[int, int] | None = None  # (dash indentation, key column)
    for i, line in enumerate(lines):
        m = _DASH_CONNECTOR.match(line)
        if m:
            dash = (len(m.group("indent")), m.start("key"))
            continue
        m = _DATATYPES.match(line)
        if m and dash is not None and len(m.group("indent")) == dash[0]:
            found.append((i, dash[1]))
            dash = None
            continue
        stripped = line.strip()
        if (
            dash is not None
            and stripped
            and not stripped.startswith(("#", "-"))
            and _indent(line) <= dash[0]
        ):
            dash = None  # left the connector list
    return found


def _repair(lines: list[str], defects: list[tuple[int, int]]) -> list[str]:
    """Re-indent each defective ``dataTypes:`` under ``connectorId``, with the block below it:
    lines indented deeper, and scalar list items (``- DeviceProcessEvents``) written at the
    key's own indentation."""
    out = list(lines)
    for i, target in defects:
        indent = _indent(out[i])
        shift = " " * (target - indent)
        out[i] = shift + out[i]
        for j in range(i + 1, len(out)):
            nxt = out[j]
            if not nxt.strip():
                continue
            deeper = _indent(nxt) > indent
            item = _indent(nxt) == indent and _SCALAR_ITEM.match(nxt.strip()) is not None
            if not (deeper or item):
                break
            out[j] = shift + nxt
    return out


# ----------------------------------------------------------------------------------------------
# YAML -> data with line numbers


@dataclass
class _Doc:
    file: str
    data: Any
    marks: dict[_Path, tuple[int, int]]  # path -> (line, column), 1-based

    def mark(self, path: _Path) -> tuple[int | None, int | None]:
        p = path
        while True:
            if p in self.marks:
                return self.marks[p]
            if not p:
                return None, None
            p = p[:-1]

    def missing(self, path: _Path, key: str) -> RuleError:
        """A required field is absent: name it, at the line of the mapping that lacks it."""
        line, column = self.mark(path)
        return RuleError(
            f"missing required field '{key}'",
            file=self.file,
            line=line,
            column=column,
            field=_fmt_path((*path, key)),
        )

    def error(self, path: _Path, problem: str) -> RuleError:
        line, column = self.mark(path)
        return RuleError(
            problem,
            file=self.file,
            line=line,
            field=_fmt_path(path) or None,
            column=None if column is None else column,
        )


def _section_at(text: str, line: int) -> str | None:
    """The top-level key whose block contains 1-based ``line`` (for syntax errors)."""
    lines = text.split("\n")
    for i in range(min(line, len(lines)) - 1, -1, -1):
        m = re.match(r"([A-Za-z_][\w-]*)[ ]*:", lines[i])
        if m:
            return m.group(1)
    return None


def _yaml_error(exc: yaml.YAMLError, text: str, file: str, note: str = "") -> RuleError:
    """A RuleError at the line where the broken construct starts (an unterminated string is
    reported where it opens, not at the end of the file), naming the section it is in."""
    line = column = None
    field: str | None = None
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        pline, pcol = exc.problem_mark.line + 1, exc.problem_mark.column + 1
        problem = exc.problem or "invalid YAML"
        ctx = exc.context_mark
        if isinstance(exc, yaml.composer.ComposerError) and "single document" in (
            exc.context or ""
        ):
            line, column = pline, pcol
            problem = "a rule file holds one YAML document, but another one starts here"
        elif (
            ctx is not None
            and exc.context
            and ctx.line + 1 < pline
            and ("quoted scalar" in exc.context or "flow" in exc.context)
        ):
            line, column = ctx.line + 1, ctx.column + 1
            problem = f"{exc.context}: {problem} (at line {pline}, column {pcol})"
            field = _section_at(text, line)
        else:
            line, column = pline, pcol
            if exc.context:
                problem = f"{exc.context}: {problem}"
            field = _section_at(text, line)
    elif isinstance(exc, yaml.reader.ReaderError):
        line = text[: exc.position].count("\n") + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        problem = f"character U+{code:04X} is not allowed in YAML"
        field = _section_at(text, line)
    else:
        problem = str(exc)
    return RuleError(
        f"invalid YAML: {problem}{note}", file=file, line=line, column=column, field=field
    )


def _parse_yaml(text: str, file: str, note: str = "") -> _Doc:
    try:
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, file, note) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise RuleError("the document is empty", file=file, line=1)
        marks: dict[_Path, tuple[int, int]] = {}
        _index(node, (), marks, file, set())
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, file, note) from None
    finally:
        loader.dispose()
    return _Doc(file, data, marks)


def _index(
    node: yaml.Node,
    path: _Path,
    marks: dict[_Path, tuple[int, int]],
    file: str,
    seen_nodes: set[int],
) -> None:
    """Record the line of every field path, and refuse duplicate keys. Each node is visited
    once: aliases (even recursive ones, or a "billion laughs" file) cost nothing more."""
    marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key: Any = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            line = key_node.start_mark.line + 1
            if key is not None:
                if key in seen:
                    raise RuleError(
                        f"duplicate key {key!r} (first at line {seen[key]})",
                        file=file,
                        line=line,
                        field=_fmt_path((*path, key)),
                    )
                seen[key] = line
                child = (*path, key)
                marks[child] = (line, key_node.start_mark.column + 1)
                _index(value_node, child, marks, file, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), marks, file, seen_nodes)


# ----------------------------------------------------------------------------------------------
# data -> Rule


_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")


def _type_name(v: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "text",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "empty",
    }.get(type(v), type(v).__name__)


def _need_mapping(doc: _Doc, value: Any, path: _Path) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise doc.error(path, f"expected a mapping, found {_type_name(value)}")
    return value


def _text(
    doc: _Doc,
    m: Mapping[Any, Any],
    key: str,
    path: _Path,
    *,
    required: bool,
    allow_empty: bool = False,
) -> str | None:
    if key not in m:
        if required:
            raise doc.missing(path, key)
        return None
    v = m[key]
    if not isinstance(v, str):
        raise doc.error((*path, key), f"expected text, found {_type_name(v)}")
    if not allow_empty and not v.strip():
        raise doc.error((*path, key), "must not be empty")
    return v


def _text_list(doc: _Doc, m: Mapping[Any, Any], key: str, path: _Path) -> tuple[str, ...]:
    if key not in m:
        raise doc.missing(path, key)
    v = m[key]
    if isinstance(v, str):
        v = [v]  # the published files write a single tactic/technique as a scalar
    if not isinstance(v, list) or not v:
        raise doc.error((*path, key), f"expected a non-empty list of text, found {_type_name(v)}")
    for i, item in enumerate(v):
        if not isinstance(item, str) or not item.strip():
            raise doc.error((*path, key, i), f"expected text, found {_type_name(item)}")
    return tuple(v)


def _connectors(doc: _Doc, value: Any) -> tuple[DataConnector, ...]:
    path: _Path = ("requiredDataConnectors",)
    if not isinstance(value, list) or not value:
        raise doc.error(path, f"expected a non-empty list of connectors, found {_type_name(value)}")
    out = []
    for i, item in enumerate(value):
        m = _need_mapping(doc, item, (*path, i))
        cid = _text(doc, m, "connectorId", (*path, i), required=True)
        assert cid is not None
        types = _text_list(doc, m, "dataTypes", (*path, i))
        extra = {k: v for k, v in m.items() if k not in ("connectorId", "dataTypes")}
        out.append(DataConnector(cid, types, extra, key_order=tuple(m)))
    return tuple(out)


def _scenarios(doc: _Doc, value: Any) -> tuple[Scenario, ...]:
    path: _Path = ("falsePositives",)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise doc.error(path, f"expected a list of scenarios, found {_type_name(value)}")
    out = []
    for i, item in enumerate(value):
        m = _need_mapping(doc, item, (*path, i))
        name = _text(doc, m, "name", (*path, i), required=True)
        desc = _text(doc, m, "description", (*path, i), required=True)
        filt = _text(doc, m, "filter", (*path, i), required=True)
        assert name is not None and desc is not None and filt is not None
        extra = {k: v for k, v in m.items() if k not in ("name", "description", "filter")}
        try:
            out.append(Scenario(name, desc, filt, extra, key_order=tuple(m)))
        except ExclusionSyntaxError as exc:
            raise doc.error((*path, i, "filter"), f"the filter does not parse: {exc}") from exc
    return tuple(out)


def _entity_mappings(doc: _Doc, value: Any) -> tuple[dict[str, Any], ...]:
    path: _Path = ("entityMappings",)
    if not isinstance(value, list):
        raise doc.error(path, f"expected a list of entity mappings, found {_type_name(value)}")
    for i, item in enumerate(value):
        m = _need_mapping(doc, item, (*path, i))
        _text(doc, m, "entityType", (*path, i), required=True)
        fms = m.get("fieldMappings")
        if not isinstance(fms, list) or not fms:
            raise doc.error((*path, i, "fieldMappings"), "expected a non-empty list")
        for j, fm in enumerate(fms):
            fmm = _need_mapping(doc, fm, (*path, i, "fieldMappings", j))
            for key in ("identifier", "columnName"):
                _text(doc, fmm, key, (*path, i, "fieldMappings", j), required=True)
    return tuple(value)


def _build_rule(doc: _Doc) -> Rule:
    m = doc.data
    if not isinstance(m, dict):
        raise doc.error((), f"a rule is a mapping of fields, found {_type_name(m)}")
    for key in m:
        if not isinstance(key, str):
            raise doc.error((), f"field names are text, found {key!r}")
    root: _Path = ()
    rule_id = _text(doc, m, "id", root, required=True)
    assert rule_id is not None
    if not _GUID.match(rule_id):
        raise doc.error(("id",), f"expected a GUID, found {rule_id!r}")
    for key in REQUIRED_FIELDS:
        if key not in m:
            raise doc.missing(root, key)
    name = _text(doc, m, "name", root, required=True)
    description = _text(doc, m, "description", root, required=True)
    query = _text(doc, m, "query", root, required=True)
    assert name is not None and description is not None and query is not None

    version: str | None = None
    if "version" in m:
        v = m["version"]
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise doc.error(
                ("version",), f"expected a version such as 1.0.0, found {_type_name(v)}"
            )
        version = str(v)
    severity = _text(doc, m, "severity", root, required=False)
    if severity is not None and severity not in SEVERITIES:
        raise doc.error(
            ("severity",), f"expected one of {', '.join(SEVERITIES)}, found {severity!r}"
        )
    durations = {}
    for key in ("queryFrequency", "queryPeriod"):
        d = _text(doc, m, key, root, required=False)
        if d is not None:
            try:
                parse_duration(d)
            except ValueError as exc:
                raise doc.error((key,), str(exc)) from None
        durations[key] = d
    op = _text(doc, m, "triggerOperator", root, required=False)
    if op is not None and op not in TRIGGER_OPERATORS:
        raise doc.error(
            ("triggerOperator",), f"expected one of {', '.join(TRIGGER_OPERATORS)}, found {op!r}"
        )
    threshold = m.get("triggerThreshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int)):
        raise doc.error(
            ("triggerThreshold",), f"expected a whole number, found {_type_name(threshold)}"
        )

    extra = {k: v for k, v in m.items() if k not in KNOWN_FIELDS}
    try:
        return Rule(
            id=rule_id,
            name=name,
            description=description,
            query=query,
            required_data_connectors=_connectors(doc, m["requiredDataConnectors"]),
            tactics=_text_list(doc, m, "tactics", root),
            relevant_techniques=_text_list(doc, m, "relevantTechniques", root),
            false_positives=_scenarios(doc, m.get("falsePositives")),
            version=version,
            severity=severity,
            query_frequency=durations["queryFrequency"],
            query_period=durations["queryPeriod"],
            trigger_operator=op,
            trigger_threshold=threshold,
            entity_mappings=(
                _entity_mappings(doc, m["entityMappings"]) if "entityMappings" in m else None
            ),
            extra=extra,
            key_order=tuple(m),
            source=None if doc.file.startswith("<") else doc.file,
        )
    except RuleError as exc:
        if exc.line is None:  # e.g. duplicate scenario names
            raise doc.error(("falsePositives",), exc.problem) from None
        raise


# ----------------------------------------------------------------------------------------------
# Public loading API


def parse_rule_text(
    text: str,
    file: str = "<string>",
    *,
    on_repair: Callable[[str], None] | None = None,
) -> Rule:
    """Parse rule YAML. ``on_repair`` receives the message of a repair (default:
    ``warnings.warn(..., RuleRepairWarning)``)."""
    crlf = "\r\n" in text
    text = text.replace("\r\n", "\n")
    try:
        doc = _parse_yaml(text, file)
    except RuleError:
        lines = text.split("\n")
        defects = _find_defect(lines)
        if not defects:
            raise
        where = ("line " if len(defects) == 1 else "lines ") + ", ".join(
            str(i + 1) for i, _ in defects
        )
        repair = (
            f"{file}: repaired the known defect of the published RMM query files: "
            f"'dataTypes:' ({where}) was indented at the level of '- connectorId:'; "
            "re-indented it under connectorId"
        )
        if crlf:
            repair += " (and read the CRLF line endings as LF)"
        doc = _parse_yaml(
            "\n".join(_repair(lines, defects)),
            file,
            note=f" (after re-indenting 'dataTypes:' at {where})",
        )
        rule = _build_rule(doc)
        if on_repair is None:
            warnings.warn(repair, RuleRepairWarning, stacklevel=4)
        else:
            on_repair(repair)
        return rule
    return _build_rule(doc)


def load_rule(path_or_text: Any, *, on_repair: Callable[[str], None] | None = None) -> Rule:
    """:meth:`Rule.from_yaml`."""
    text, file = _read_source(path_or_text)
    return parse_rule_text(text, file, on_repair=on_repair)


def load(path: str | os.PathLike[str]) -> Rule | RulePack:
    """A rule from a ``.yaml``/``.yml`` file; a :class:`RulePack` from a JSON pack file
    (``{"rules": [...]}``) or from a directory (every YAML file under it, recursively, in path
    order). Repairs are summarised in one warning."""
    p = Path(path)
    if p.is_dir():
        return _load_tree(p, name=str(p))
    if not p.exists():
        raise FileNotFoundError(f"no rule file or directory {str(p)!r}")
    if p.suffix.lower() == ".json":
        return RulePack(_load_json_pack(p.read_bytes(), str(p)), name=str(p))
    return load_rule(p)


def _walk(root: Traversable, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        rel = f"{prefix}{entry.name}"
        if entry.is_dir():
            yield from _walk(entry, rel + "/")
        elif entry.name.lower().endswith((".yaml", ".yml")):
            yield rel, entry


def _warn_repairs(repairs: list[str]) -> None:
    if not repairs:
        return
    detail = (
        repairs[0]
        if len(repairs) == 1
        else (
            f"repaired {len(repairs)} rule files with the known defect of the published RMM "
            f"query files ('dataTypes:' indented at the level of '- connectorId:'), "
            f"e.g. {repairs[0]}"
        )
    )
    warnings.warn(detail, RuleRepairWarning, stacklevel=4)


def _tree_rules(root: Traversable, name: str, first: str | None = None) -> list[Rule]:
    repairs: list[str] = []
    entries = list(_walk(root))
    if first is not None:
        entries.sort(key=lambda e: e[0] != first)
    rules = [
        parse_rule_text(
            _decode(entry.read_bytes(), f"{name}/{rel}"), f"{name}/{rel}", on_repair=repairs.append
        )
        for rel, entry in entries
    ]
    _warn_repairs(repairs)
    return rules


def _load_tree(root: Traversable, *, name: str) -> RulePack:
    return RulePack(_tree_rules(root, name), name=name)


def _load_json_pack(data: bytes, file: str) -> list[Rule]:
    """Rules from a JSON pack: ``{"rules": [<rule>, ...], ...}`` or a bare list. Each rule has
    the YAML fields; errors name the file and the rule's index (JSON carries no lines here)."""
    try:
        doc = json.loads(_decode(data, file))
    except json.JSONDecodeError as exc:
        raise RuleError(
            f"invalid JSON: {exc.msg}", file=file, line=exc.lineno, column=exc.colno
        ) from None
    items = doc.get("rules") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise RuleError(
            "a rule pack is a list of rules or an object with a 'rules' list",
            file=file,
            field="rules",
        )
    out = []
    for i, item in enumerate(items):
        rule = _build_rule(_Doc(f"{file}#rules[{i}]", item, {}))
        out.append(rule)
    return out


#: The founding rule's file, under rmmhunt/data/rules/; the pack is rmmhunt/data/pack.json.
FOUNDING_RULE_FILE = "connectwise-create-process.yaml"
PACK_FILE = "pack.json"

_PACK: RulePack | None = None


def _data_root() -> Traversable:
    return importlib.resources.files("rmmhunt") / "data"


def pack() -> RulePack:
    """Every rule bundled with rmmhunt: the founding rule first, then any other YAML rule under
    ``rmmhunt/data/rules/``, then the rule pack ``rmmhunt/data/pack.json`` when present. A rule
    whose id is already taken (the pack's own copy of the founding query) is left out: the
    earlier one wins. Loaded once, then cached."""
    global _PACK
    if _PACK is None:
        root = _data_root()
        rules = _tree_rules(root / "rules", "rmmhunt/data/rules", first=FOUNDING_RULE_FILE)
        pack_file = root / PACK_FILE
        if pack_file.is_file():
            rules += _load_json_pack(pack_file.read_bytes(), f"rmmhunt/data/{PACK_FILE}")
        unique: dict[str, Rule] = {}
        for r in rules:
            unique.setdefault(r.id.lower(), r)
        _PACK = RulePack(list(unique.values()), name="rmmhunt")
    return _PACK


def get(id_or_name: str) -> Rule:
    """A bundled rule by id (GUID, any case), name (case-insensitive) or rule file name without
    extension (``"connectwise-create-process"``); the founding rule comes first, then the pack.
    Raises :class:`UnknownRuleError`."""
    if not isinstance(id_or_name, str):
        raise TypeError(f"expected an id or name, not {type(id_or_name).__name__}")
    rule = pack().find(id_or_name)
    if rule is None:
        raise UnknownRuleError(
            f"no bundled rule with id, name or file name {id_or_name!r} "
            f"({len(pack())} bundled rules)"
        )
    return rule


# ----------------------------------------------------------------------------------------------
# Writing


class _Dumper(yaml.SafeDumper):
    """Block style, lists indented under their key (as in Sentinel's YAML), literal blocks for
    multi-line text even when a line ends in spaces."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def analyze_scalar(self, scalar: str) -> Any:
        analysis = super().analyze_scalar(scalar)
        if (
            "\n" in scalar
            and not analysis.allow_block
            and all(ch == "\n" or (ch.isprintable() and ch != "\ufeff") for ch in scalar)
            and not scalar.startswith(" ")
            and not any(line.startswith(" ") and not line.strip() for line in scalar.split("\n"))
        ):
            analysis.allow_block = True
        return analysis


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _represent_tuple(dumper: yaml.SafeDumper, value: tuple[Any, ...]) -> yaml.SequenceNode:
    return dumper.represent_list(list(value))


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(tuple, _represent_tuple)


def _ordered(values: Mapping[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    out = {k: values[k] for k in order if k in values}
    for k, v in values.items():
        out.setdefault(k, v)
    return out


def rule_to_data(rule: Rule) -> dict[str, Any]:
    """The rule as plain YAML data (dicts, lists, str, int) in output order."""
    values: dict[str, Any] = {
        "id": rule.id,
        "name": rule.name,
        "description": rule.description,
        "requiredDataConnectors": [
            _ordered(
                {"connectorId": c.connector_id, "dataTypes": list(c.data_types), **c.extra},
                c.key_order,
            )
            for c in rule.required_data_connectors
        ],
        "tactics": list(rule.tactics),
        "relevantTechniques": list(rule.relevant_techniques),
        "query": rule.query,
    }
    optional = {
        "version": rule.version,
        "severity": rule.severity,
        "queryFrequency": rule.query_frequency,
        "queryPeriod": rule.query_period,
        "triggerOperator": rule.trigger_operator,
        "triggerThreshold": rule.trigger_threshold,
        "entityMappings": None if rule.entity_mappings is None else list(rule.entity_mappings),
    }
    values.update({k: v for k, v in optional.items() if v is not None})
    if rule.false_positives:
        values["falsePositives"] = [
            _ordered(
                {"name": s.name, "description": s.description, "filter": s.filter, **s.extra},
                s.key_order,
            )
            for s in rule.false_positives
        ]
    values.update(rule.extra)
    return _ordered(values, rule.key_order)


def dump_yaml(data: Any) -> str:
    """YAML text in the house style (see :class:`_Dumper`)."""
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1 << 16,
    )


def dump_rule(rule: Rule) -> str:
    """:meth:`Rule.to_yaml`."""
    return dump_yaml(rule_to_data(rule))
