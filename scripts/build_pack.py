"""Generate the RMM rule pack (``python/rmmhunt/data/pack.json``) from the reference data.

Usage::

    python scripts/build_pack.py [RMM_DIR] [--defender DIR] [--check]

``RMM_DIR`` defaults to ``../shared/rmm`` relative to the repository root and must hold
``catalog.json``, ``RMM_SummaryNetworkURI.csv``, ``lolrmm_tools.json`` and the two license
files. ``--defender`` (default ``RMM_DIR/../defender``) holds ``schemas.json``.

The script writes, under ``python/rmmhunt/data/``:

* ``pack.json``: one Sentinel-style hunting rule per jischell query (corrected where the
  published query is defective), plus LOLRMM-derived rules for tools (per kind) that the
  jischell queries do not cover;
* ``schemas.json``: a copy of the documented Defender table schemas;
* ``LICENSES/``: the two source licenses and ``NOTICE.md``.

The output is deterministic: the same inputs give byte-identical files. ``--check`` compares
instead of writing and exits 1 when a file would change.
"""

from __future__ import annotations

import argparse
import csv
import ipaddress
import json
import re
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "python" / "rmmhunt" / "data"

JISCHELL_REPO = "jischell-msft/RemoteManagementMonitoringTools"
JISCHELL_COMMIT = "7bb251e68abd13989445195e9d812cb189277715"
JISCHELL_LICENSE = "LICENSE-RemoteManagementMonitoringTools-MIT.txt"
LOLRMM_REPO = "magicsword-io/LOLRMM"
LOLRMM_COMMIT = "3c75cf091b10bf7e8ecd576055c44d172b35ff21"
LOLRMM_LICENSE = "LICENSE-LOLRMM-Apache-2.0.txt"

# Namespace of the ids of LOLRMM-derived rules: uuid5(NAMESPACE_URL,
# "https://github.com/magicsword-io/LOLRMM#rmmhunt"), written out so that it never changes.
LOLRMM_NAMESPACE = uuid.UUID("ee5f5f77-8238-5f3a-9f53-0e1f58799642")

KIND_TABLE = {
    "createproc": "DeviceProcessEvents",
    "filesig": "DeviceFileCertificateInfo",
    "netconn": "DeviceNetworkEvents",
}
KIND_TITLE = {
    "createproc": "Create Process",
    "filesig": "File Signature",
    "netconn": "Network Connection",
}
AGGREGATES = "FirstSeen=min(Timestamp), LastSeen=max(Timestamp), Report=make_set(ReportId), Count=count()"
JISCHELL_DESCRIPTION = (
    "Remote Monitoring and Management (RMM) programs are IT to manage remote endpoints. "
    "Attackers have begun to abuse these programs to persist or provide C2 channels.\n"
    "https://github.com/jischell-msft/RemoteManagementMonitoringTools"
)

# --------------------------------------------------------------------------------------
# KQL text
# --------------------------------------------------------------------------------------


def kql_string(value: str) -> str:
    """A KQL string literal whose decoded value is exactly ``value``.

    ``@'...'`` (verbatim) when the value has a backslash, no quote and only printable
    characters; otherwise ``"..."`` with ``\\\\`` and ``\\"`` escaped and every
    non-printable character written as ``\\uXXXX`` (``\\UXXXXXXXX`` above the BMP).
    """
    printable = all(ch.isprintable() for ch in value)
    if "\\" in value and "'" not in value and printable:
        return "@'" + value + "'"
    out = ['"']
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif not ch.isprintable():
            code = ord(ch)
            out.append(f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _tokens(logic: str) -> list[str]:
    toks = re.findall(r"\d+|and|or|\(|\)|\S", logic)
    for tok in toks:
        if not (tok.isdigit() or tok in ("and", "or", "(", ")")):
            raise ValueError(f"bad token {tok!r} in logic {logic!r}")
    return toks


def render_logic(logic: str, preds: Sequence[str]) -> str:
    """Substitute the predicate texts into a logic string such as ``0 and (1 or 2)``."""
    parts: list[str] = []
    for tok in _tokens(logic):
        if tok.isdigit():
            parts.append(preds[int(tok)])
        elif tok == "(":
            parts.append("(")
        elif tok == ")":
            parts.append(")")
        else:
            parts.append(f" {tok} ")
    return "".join(parts)


def render_list(values: Sequence[str], *, trailing_comma: bool = False) -> str:
    items = [kql_string(v) for v in values]
    if len(items) <= 6 and not trailing_comma:
        return "(" + ", ".join(items) + ")"
    body = ",\n".join("    " + item for item in items)
    return "(\n" + body + (",\n" if trailing_comma else "\n") + "    )"


def render_predicate(flt: Mapping[str, Any], *, published: bool = False) -> str:
    """One filter as KQL. ``published`` keeps the published defects (operator, trailing comma)."""
    col = flt["column"]
    op = flt["operator"]
    values = flt.get("values", [])
    if op == "isempty":
        return f"isempty({col})"
    if op == "in":
        return f"{col} in ({flt['values_from']['let']})"
    if op in ("has_any", "has_all has_any"):
        if flt.get("values_from", {}).get("kind") == "datatable":
            return f"{col} has_any ({flt['values_from']['name']})"
        shown = op if published else "has_any"
        trailing = published and bool(flt.get("trailing_comma", False))
        return f"{col} {shown} {render_list(values, trailing_comma=trailing)}"
    if op in ("has", "startswith", "=~"):
        (value,) = values
        return f"{col} {op} {kql_string(value)}"
    raise ValueError(f"unsupported operator {op!r}")


def render_query(spec: Mapping[str, Any], *, published: bool = False) -> str:
    """The rule's query text in the published shape (or with the published defects)."""
    lines = ["let Time_start = now(-5d);", "let Time_end = now();"]
    for sub in spec.get("subqueries", []):
        preds = [render_predicate(f) for f in sub["filters"]]
        distinct = sub["published_distinct"] if published else sub["distinct"]
        lines.append(f"let {sub['let']} = {sub['table']}")
        lines.append(f"| where {render_logic(sub['logic'], preds)}")
        lines.append(f"| distinct {distinct};")
    datatable = spec.get("datatable")
    if datatable:
        lines.append(f"let {datatable['let']} = datatable(URI:string, RMM_Tool:string) [")
        rows = [f"    {kql_string(u)}, {kql_string(t)}" for u, t in datatable["rows"]]
        lines.append(",\n".join(rows))
        lines.append("];")
        lines.append(f"let {datatable['name']} = {datatable['let']} | distinct URI;")
    lines.append(spec["table"])
    lines.append("| where Timestamp between (Time_start..Time_end)")
    filters = spec["filters"]
    if published and spec.get("published_filters"):
        filters = spec["published_filters"]
    preds = [render_predicate(f, published=published) for f in filters]
    where = render_logic(spec["logic"], preds)
    if published and spec.get("published_missing_where"):
        lines.append(f"| {where}")
    else:
        lines.append(f"| where {where}")
    for step in spec.get("post_steps", []):
        lines.append(f"| extend {step['column']} = {step['expression']}")
    group_by = spec["published_group_by"] if published else spec["group_by"]
    lines.append(f"| summarize {AGGREGATES} by {', '.join(group_by)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Reference term matching (SEMANTICS.md 1.2), used to choose LOLRMM indicators
# --------------------------------------------------------------------------------------


def _fold(text: str) -> str:
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def has(hay: str, needle: str) -> bool:
    """Kusto ``has``: ``needle`` occurs with term boundaries at its alphanumeric edges."""
    if needle == "":
        return True
    h, n = _fold(hay), _fold(needle)
    left_term, right_term = n[0].isalnum(), n[-1].isalnum()
    start = h.find(n)
    while start >= 0:
        end = start + len(n)
        left_ok = not left_term or start == 0 or not h[start - 1].isalnum()
        right_ok = not right_term or end == len(h) or not h[end].isalnum()
        if left_ok and right_ok:
            return True
        start = h.find(n, start + 1)
    return False


# --------------------------------------------------------------------------------------
# jischell rules
# --------------------------------------------------------------------------------------

NETCONN_GROUP_FIX = (
    "grouping column AccountUpn -> InitiatingProcessAccountUpn: DeviceNetworkEvents has no "
    "AccountUpn column (the published query fails with an unknown-column error)"
)


def _clean_filter(flt: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"column": flt["column"], "operator": flt["operator"]}
    out["values"] = list(flt.get("values", []))
    return out


def jischell_spec(entry: Mapping[str, Any], uri_rows: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Corrected query facts for one catalog entry, plus what the published text had."""
    kind = entry["kind"]
    notes = entry["notes"]
    changes: list[str] = []
    filters: list[dict[str, Any]] = []
    published_filters: list[dict[str, Any]] = []
    defective = False
    for flt in entry["filters"]:
        fixed = _clean_filter(flt)
        pub = _clean_filter(flt)
        if flt["operator"] == "has_all has_any":
            fixed["operator"] = "has_any"
            defective = True
            changes.append(
                f"{flt['column']} `has_all has_any (...)` (two operators in a row: a syntax "
                "error) -> `has_any (...)`, as in the later Azure-Sentinel copy"
            )
        if flt["column"] == "Sha1":
            fixed["column"] = "SHA1"
            pub["column"] = "Sha1"
            changes.append(
                "filter column Sha1 -> SHA1 (Defender column names are case-sensitive; Sha1 "
                "is an unknown column)"
            )
        if "values_from" in flt:
            vf = flt["values_from"]
            if vf["kind"] == "subquery":
                fixed["values_from"] = {"kind": "subquery", "let": vf["let"]}
                pub["values_from"] = dict(fixed["values_from"])
            else:
                fixed["values_from"] = {
                    "kind": "datatable",
                    "let": vf["let"],
                    "name": "rmm_URIs",
                    "distinct": vf["distinct"],
                }
                pub["values_from"] = dict(fixed["values_from"])
        if "trailing comma" in notes and flt["operator"] == "has_any" and flt["column"] == "RemoteUrl":
            pub["trailing_comma"] = True
        filters.append(fixed)
        published_filters.append(pub)
    if "trailing comma" in notes:
        defective = True
        changes.append("trailing comma before `)` in the RemoteUrl has_any list removed")
    if "// comments" in notes:
        changes.append("`//` comments inside the query body dropped (they carried no filter)")

    subqueries: list[dict[str, Any]] = []
    for sub in entry["subqueries"]:
        distinct = ["SHA1" if c == "Sha1" else c for c in sub["distinct"]]
        if distinct != sub["distinct"]:
            defective = True
            changes.append(
                f"subquery {sub['let']}: `distinct Sha1` -> `distinct SHA1` "
                "(DeviceFileCertificateInfo has SHA1, not Sha1)"
            )
        subqueries.append(
            {
                "let": sub["let"],
                "table": sub["table"],
                "filters": [_clean_filter(f) for f in sub["filters"]],
                "logic": sub["logic"],
                "distinct": ", ".join(distinct),
                "published_distinct": ", ".join(sub["distinct"]),
            }
        )

    missing_where = "missing 'where'" in notes
    if missing_where:
        defective = True
        changes.insert(
            0,
            "added the missing `where` before `Sha1 in (rmmInitialFileSet)` (a pipe stage "
            "with no operator: a syntax error)",
        )

    group_by = list(entry["group_by"])
    published_group_by = list(group_by)
    if kind == "netconn" and "AccountUpn" in group_by:
        defective = True
        group_by = ["InitiatingProcessAccountUpn" if c == "AccountUpn" else c for c in group_by]
        changes.append(NETCONN_GROUP_FIX)

    tables = [entry["table"]] + sorted({s["table"] for s in entry["subqueries"]} - {entry["table"]})
    if len(tables) > 1:
        changes.append(
            "requiredDataConnectors.dataTypes also lists "
            + ", ".join(tables[1:])
            + ", which the let subquery reads"
        )

    post_steps: list[dict[str, str]] = []
    datatable = None
    if entry["post_steps"]:
        exprs = {
            "trim_start": 'trim_start("http[s]?://", RemoteUrl)',
            "/": 'tostring(split(RemoteUrl, "/")[0])',
            ":": 'tostring(split(RemoteUrl, ":")[0])',
        }
        for step in entry["post_steps"]:
            key = "trim_start" if "trim_start" in step["expression_functions"] else step["string_args"][0]
            post_steps.append({"column": step["column"], "expression": exprs[key]})
        datatable = {
            "let": "rmm_networkSet",
            "name": "rmm_URIs",
            "rows": list(uri_rows),
        }

    return {
        "table": entry["table"],
        "tables": tables,
        "filters": filters,
        "published_filters": published_filters,
        "logic": entry["logic"],
        "subqueries": subqueries,
        "group_by": group_by,
        "published_group_by": published_group_by,
        "post_steps": post_steps,
        "datatable": datatable,
        "published_missing_where": missing_where,
        "defective": defective,
        "changes": changes,
    }


def _needed_columns(spec: Mapping[str, Any]) -> dict[str, list[str]]:
    cols: dict[str, set[str]] = {spec["table"]: {"Timestamp", "ReportId", *spec["group_by"]}}
    for flt in spec["filters"]:
        cols[spec["table"]].add(flt["column"])
    for sub in spec.get("subqueries", []):
        sub_cols = cols.setdefault(sub["table"], set())
        sub_cols.update(f["column"] for f in sub["filters"])
        sub_cols.update(c.strip() for c in sub["distinct"].split(","))
    return {t: sorted(c) for t, c in sorted(cols.items())}


def make_rule(
    *,
    rule_id: str,
    name: str,
    description: str,
    tool: str,
    kind: str,
    provenance: str,
    source_path: str,
    spec: Mapping[str, Any],
    changes: Sequence[str],
    published_query: str | None = None,
) -> dict[str, Any]:
    match: dict[str, Any] = {"logic": spec["logic"], "filters": spec["filters"]}
    if spec.get("subqueries"):
        match["subqueries"] = [
            {k: v for k, v in sub.items() if k != "published_distinct"} for sub in spec["subqueries"]
        ]
    x: dict[str, Any] = {
        "tool": tool,
        "kind": kind,
        "table": spec["table"],
        "tables": list(spec["tables"]),
        "provenance": provenance,
        "source_path": source_path,
        "changes": list(changes),
        "group_by": list(spec["group_by"]),
        "columns": _needed_columns(spec),
        "match": match,
    }
    if spec.get("post_steps"):
        x["post_steps"] = list(spec["post_steps"])
    if published_query is not None:
        x["published_query"] = published_query
    return {
        "id": rule_id,
        "name": name,
        "description": description,
        "requiredDataConnectors": [
            {
                "connectorId": "MicrosoftThreatProtection",
                "dataTypes": list(spec["tables"]),
            }
        ],
        "tactics": ["CommandAndControl"],
        "relevantTechniques": ["T1219"],
        "query": render_query(spec),
        "version": "1.0.0",
        "x_rmmhunt": x,
    }


def jischell_rules(
    catalog: Sequence[Mapping[str, Any]], uri_rows: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    rules = []
    for entry in catalog:
        spec = jischell_spec(entry, uri_rows)
        rules.append(
            make_rule(
                rule_id=entry["yaml_id"],
                name=entry["yaml_name"],
                description=JISCHELL_DESCRIPTION,
                tool=entry["tool"],
                kind=entry["kind"],
                provenance="jischell",
                source_path=entry["path"],
                spec=spec,
                changes=spec["changes"],
                published_query=render_query(spec, published=True) if spec["defective"] else None,
            )
        )
    return rules


# --------------------------------------------------------------------------------------
# LOLRMM extension
# --------------------------------------------------------------------------------------

# The jischell tool folders that hold only markdown (no query): LOLRMM rules for these tools
# are labelled with the folder name (README.md of the reference data lists them).
JISCHELL_MARKDOWN_FOLDERS = (
    "Alpemix", "AnyplaceControl", "Auvik", "BeAnywhere", "BeamYourScreen", "BlueTrait.io",
    "CrossLoop", "CrossTec", "DeskDay", "EHorus", "ElectricAI", "Itarian", "JumpCloud",
    "Syspectr", "TSPlus", "TechInline", "Xeox",
)  # fmt: skip

# LOLRMM tool names that are the same tool as a jischell tool folder. Names whose letters
# and digits equal a folder name's (case-insensitively) are matched without being listed.
LOLRMM_TO_JISCHELL: dict[str, str] = {
    "247ithelp.com (ConnectWise)": "ConnectWise",
    "Ammyy Admin": "Ammyy",
    "AweRay": "AweSun",
    "Barracuda": "BarracudaRMM",
    "BeAnyWhere": "BeAnywhere",
    "Bluetrait": "BlueTrait.io",
    "CrossTec Remote Control": "CrossTec",
    "Electric AI (Kaseya)": "ElectricAI",
    "FixMe.it": "TechInline",
    "BeyondTrust (Bomgar)": "BeyondTrust",
    "CentraStage (Now Datto)": "DattoRMM",
    "Chrome Remote Desktop": "ChromeRDP",
    "Connectwise Automate (LabTech)": "ConnectWise",
    "ConnectWise Control": "ConnectWise",
    "DW Service": "DWService",
    "FleetDeck.io": "FleetDeck",
    "GoTo Opener": "LogMeIn",
    "GoToAssist": "LogMeIn",
    "GoToAssist (GoTo Resolve)": "LogMeIn",
    "GoToAssist Agent Desktop Console": "LogMeIn",
    "GoToMyPC": "LogMeIn",
    "ISL Light": "ISLOnline",
    "ITSupport247 (ConnectWise)": "ConnectWise",
    "Iperius Remote": "IperiusRemote",
    "Kabuto": "SyncroMSP",
    "Kaseya (VSA)": "Kaseya",
    "LabTeach (Connectwise Automate)": "ConnectWise",
    "LabTech RMM (Now ConnectWise Automate)": "ConnectWise",
    "Level.io": "Level",
    "Lite Manager": "LiteManager",
    "LogMeIn rescue": "LogMeIn",
    "MSP360": "MSP360_CloudBerry",
    "N-ABLE Remote Access Software": "NAble",
    "N-Able Advanced Monitoring Agent": "NAble",
    "NetSupport Manager": "NetSupport",
    "NinjaOne (formerly NinjaRMM)": "NinjaRMM",
    "Parsec": "parsec.app",
    "PDQ Connect": "PDQ",
    "Remote Desktop Plus": "RemoteDesktopPlus",
    "Remote Utilities": "RemoteUtilities",
    "ScreenConnect": "ConnectWise",
    "Splashtop (Beta)": "Splashtop",
    "Splashtop Remote": "Splashtop",
    "Supremo": "SupRemo",
    "Syncro": "SyncroMSP",
    "VNC Connect": "RealVNC",
    "Zoho Assist": "ZohoAssist",
}

# LOLRMM entries that describe the same tool under different names: merged into one.
LOLRMM_SAME_TOOL: dict[str, str] = {
    "Dev Tunnels (aka Visual Studio Dev Tunnel)": "Visual Studio Dev Tunnel",
    "Impero Connect": "Netop Remote Control (Impero Connect)",
    "Microsoft Quick Assist": "Quick Assist",
    "MioNet (Also known as WD Anywhere Access)": "MioNet (WD Anywhere Access)",
    "Netop": "Netop Remote Control (Impero Connect)",
    "Netop Remote Control (aka Impero Connect)": "Netop Remote Control (Impero Connect)",
    "Netviewer (GoToMeet)": "Netviewer",
    "Pandora RC (eHorus)": "eHorus",
    "Pocket Controller": "Pocket Controller (Soti Xsight)",
    "Ultra VNC": "UltraVNC",
}

# Signer names that are not evidence of the tool they are listed under.
SIGNER_EXCLUDED: dict[str, str] = {
    ".NET": "not a publisher name (a fragment of a certificate field)",
    "Certification Authority": "not a publisher name (a fragment of a certificate field)",
    "CodeSigningMico": "not a publisher name (a fragment of a certificate field)",
    "GlobalSigningDig": "not a publisher name (a fragment of a certificate field)",
    "Google LLC": "platform vendor: signs Chrome and most Google software",
    "Microsoft Corporation": "platform vendor: signs most of Windows",
    "Microsoft Windows Component Publisher": "platform vendor: signs Windows components",
    "Adobe Systems Incorporated": "publisher of a bundled third-party component",
    "OpenVPN Inc.": "publisher of a bundled third-party component",
    "Oculus VR, LLC": "publisher of a bundled third-party component",
    "Power Software Limited": "publisher of a bundled third-party component",
    "RARE IDEAS, LLC": "signs PortableApps.com launchers of many applications",
    "Simon Tatham": "author of PuTTY, bundled by several tools",
    "Symantec Corporation": "publisher of a bundled third-party component",
    "Tuxera Inc": "publisher of a bundled third-party component",
    "Unity Technologies ApS": "publisher of a bundled third-party component",
    "Unity Technologies SF": "publisher of a bundled third-party component",
    "Wide Vision Trade GmbH": "signer of unrelated files listed for an unsigned tool",
    "win.rar GmbH": "publisher of a bundled third-party component (WinRAR/SFX)",
    "中移动信息技术有限公司": "signer of unrelated files listed for an unsigned tool",
    "北京火绒网络科技有限公司": "publisher of a bundled third-party component (Huorong)",
}
# Signer names kept only for the tool they belong to.
SIGNER_ONLY_FOR: dict[str, str] = {"Martin Prikryl": "WinSCP"}

# Host names that are shared infrastructure or download portals, not a tool's own service.
SHARED_HOSTS = frozenset(
    {
        "amazonaws.com",
        "azurewebsites.net",
        "blob.core.windows.net",
        "cloudflare.net",
        "cloudflarestorage.com",
        "core.windows.net",
        "firebaseapp.com",
        "ghcr.io",
        "github.com",
        "github.io",
        "githubusercontent.com",
        "objects.githubusercontent.com",
        "pages.dev",
        "r2.cloudflarestorage.com",
        "raw.githubusercontent.com",
        "s3.amazonaws.com",
        "servicebus.windows.net",
        "stunserver.stunprotocol.org",
        "web.app",
        "windows.net",
    }
)
DOWNLOAD_PORTALS = ("softonic.com", "software.informer.com")
_LABEL = re.compile(r"[a-z0-9_-]+")


def _norm_name(name: str) -> str:
    return "".join(c for c in name.casefold() if c.isalnum())


def reduce_domain(raw: str) -> tuple[str | None, str | None]:
    """A LOLRMM domain string as a RemoteUrl ``has`` needle, or ``None`` with the reason.

    Scheme, path and port are removed; ``www.`` is dropped; a wildcard or pattern label and
    every label left of it are dropped (``*.x.com``, ``plus*.x.com``, ``a.*.x.com`` and
    ``relay-[a-f0-9]{8}.x.com`` all become ``x.com``): under ``has`` term semantics ``x.com``
    matches every host name ending in ``.x.com``.
    """
    text = raw.strip().lower()
    if not text or text == "user_managed" or text.startswith("<"):
        return None, "placeholder"
    text = re.sub(r"^[a-z]+://", "", text).split("/")[0]
    text = re.sub(r":\d+$", "", text)
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return (
            None,
            "IP address (RemoteUrl holds host names; addresses are in RemoteIP)",
        )
    labels = text.split(".")
    bad = [i for i, label in enumerate(labels) if not _LABEL.fullmatch(label)]
    if bad:
        labels = labels[bad[-1] + 1 :]
    if labels and labels[0] == "www":
        labels = labels[1:]
    if len(labels) < 2:
        return None, "nothing specific left after removing the wildcard"
    host = ".".join(labels)
    if host in SHARED_HOSTS:
        return None, "shared infrastructure host, not the tool's own service"
    if any(host == p or host.endswith("." + p) for p in DOWNLOAD_PORTALS):
        return None, "download-portal page, not the tool's traffic"
    return host, None


def _drop_redundant(needles: Iterable[str]) -> list[str]:
    """Sorted needles without those that another needle of the list already matches."""
    uniq = sorted({n.casefold(): n for n in sorted(needles)}.values(), key=lambda s: (len(s), s))
    kept: list[str] = []
    for n in uniq:
        if not any(has(n, k) for k in kept):
            kept.append(n)
    return sorted(kept, key=str.casefold)


def _conflict(needle: str, others: Mapping[str, str]) -> str | None:
    for other, tool in sorted(others.items()):
        if has(needle, other) or has(other, needle):
            return tool
    return None


def lolrmm_groups(
    tools: Sequence[Mapping[str, Any]], jischell_tools: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """LOLRMM entries merged per tool label (the jischell folder name when it is the same tool)."""
    by_norm = {_norm_name(t): t for t in (*jischell_tools, *JISCHELL_MARKDOWN_FOLDERS)}
    groups: dict[str, dict[str, Any]] = {}
    for item in tools:
        name = item["Name"]
        name = LOLRMM_SAME_TOOL.get(name, name)
        jis = LOLRMM_TO_JISCHELL.get(name) or by_norm.get(_norm_name(name))
        label = jis or name
        group = groups.setdefault(label, {"jischell": jis, "names": set(), "domains": [], "signers": []})
        group["names"].add(item["Name"])
        for net in item.get("Artifacts", {}).get("Network") or []:
            group["domains"].extend(net.get("Domains") or [])
        for cert in (item.get("CodeSigning") or {}).get("certificates") or []:
            if cert.get("signer_name"):
                group["signers"].append(cert["signer_name"])
    return groups


def lolrmm_rules(
    tools: Sequence[Mapping[str, Any]], catalog: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """LOLRMM-derived rules, and a log of every indicator that was left out and why."""
    jis_tools = sorted({e["tool"] for e in catalog if e["tool"] != "(all tools)"})
    covered = {(e["tool"], e["kind"]) for e in catalog}
    url_needles: dict[str, str] = {}
    signer_needles: dict[str, str] = {}
    for e in catalog:
        if e["tool"] == "(all tools)":
            continue
        for f in e["filters"]:
            if f["column"] == "RemoteUrl":
                url_needles.update({v: e["tool"] for v in f["values"]})
            if f["column"] == "Signer":
                signer_needles.update({v: e["tool"] for v in f["values"]})

    rules: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    groups = lolrmm_groups(tools, jis_tools)
    for label in sorted(groups, key=str.casefold):
        group = groups[label]
        names = sorted(group["names"], key=str.casefold)
        source = "website/public/api/rmm_tools.json: " + "; ".join(names)
        for kind in ("netconn", "filesig"):
            if group["jischell"] and (group["jischell"], kind) in covered:
                continue
            notes: list[str] = []
            needles: list[str] = []
            if kind == "netconn":
                for raw in sorted(set(group["domains"])):
                    host, why = reduce_domain(raw)
                    if host is None:
                        dropped.append({"tool": label, "kind": kind, "value": raw, "reason": why})
                        continue
                    if host != raw.strip().lower():
                        notes.append(f"domain {raw!r} reduced to {host!r}")
                    other = _conflict(host, {k: v for k, v in url_needles.items() if v != label})
                    if other:
                        dropped.append(
                            {
                                "tool": label,
                                "kind": kind,
                                "value": raw,
                                "reason": f"overlaps the jischell {other} netconn RemoteUrl list",
                            }
                        )
                        continue
                    needles.append(host)
            else:
                for raw in sorted(set(group["signers"])):
                    signer = raw.strip().rstrip("\\").strip()
                    why = SIGNER_EXCLUDED.get(signer)
                    only = SIGNER_ONLY_FOR.get(signer)
                    if only is not None and only != label:
                        why = f"belongs to {only}, not to this tool"
                    if why is None:
                        other = _conflict(
                            signer,
                            {k: v for k, v in signer_needles.items() if v != label},
                        )
                        if other:
                            why = f"overlaps the jischell {other} filesig Signer list"
                    if why:
                        dropped.append({"tool": label, "kind": kind, "value": raw, "reason": why})
                        continue
                    if signer != raw:
                        notes.append(f"signer {raw!r} trimmed to {signer!r}")
                    needles.append(signer)
            if not needles:
                continue
            kept = _drop_redundant(needles)
            for n in sorted(set(needles) - set(kept), key=str.casefold):
                notes.append(f"{n!r} left out: another value of the list already matches it")
            rules.append(lolrmm_rule(label, kind, kept, source, notes))
    return rules, dropped


def lolrmm_rule(
    tool: str, kind: str, needles: Sequence[str], source: str, notes: Sequence[str]
) -> dict[str, Any]:
    table = KIND_TABLE[kind]
    column = "RemoteUrl" if kind == "netconn" else "Signer"
    op = "has" if len(needles) == 1 else "has_any"
    group_by = (
        [
            "DeviceId",
            "DeviceName",
            "InitiatingProcessAccountUpn",
            "RemoteUrl",
            "InitiatingProcessFileName",
        ]
        if kind == "netconn"
        else ["DeviceId", "DeviceName"]
    )
    spec = {
        "table": table,
        "tables": [table],
        "filters": [{"column": column, "operator": op, "values": list(needles)}],
        "logic": "0",
        "group_by": group_by,
    }
    what = "connections to its domains" if kind == "netconn" else "files signed by its publisher"
    description = (
        f"Looks for {tool}, a remote access tool listed by LOLRMM, through {what}. "
        "Remote Monitoring and Management (RMM) tools are abused by attackers to persist or "
        "provide C2 channels. Indicators from the LOLRMM catalog (https://lolrmm.io, "
        f"{LOLRMM_REPO}), where the jischell queries have no {KIND_TITLE[kind]} query for "
        "this tool."
    )
    field = "Artifacts.Network[].Domains" if kind == "netconn" else "CodeSigning.certificates[].signer_name"
    changes = [f"generated from LOLRMM {field} as `{column} {op}`", *notes]
    return make_rule(
        rule_id=str(uuid.uuid5(LOLRMM_NAMESPACE, f"{tool}|{kind}")),
        name=f"Remote Management and Monitoring tool - {tool} - {KIND_TITLE[kind]} (LOLRMM)",
        description=description,
        tool=tool,
        kind=kind,
        provenance="lolrmm",
        source_path=source,
        spec=spec,
        changes=changes,
    )


# --------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------

ABOUT: dict[str, Any] = {
    "title": "rmmhunt RMM rule pack",
    "generated_by": "scripts/build_pack.py (do not edit by hand)",
    "description": (
        "Hunting rules for abused Remote Monitoring and Management tools (MITRE ATT&CK T1219) "
        "over the Defender tables DeviceProcessEvents (createproc), DeviceFileCertificateInfo "
        "(filesig) and DeviceNetworkEvents (netconn). provenance 'jischell': one rule per "
        "query of the jischell repository, with its published id, name and filters; the KQL "
        "is re-printed in the published shape with double-quoted string literals, and the "
        "published defects are corrected (x_rmmhunt.changes; the uncorrected text is in "
        "x_rmmhunt.published_query, reconstructed from the catalog facts). provenance "
        "'lolrmm': rules from the LOLRMM catalog for tools that have no jischell query of "
        "that kind (netconn from Artifacts.Network[].Domains, filesig from "
        "CodeSigning.certificates[].signer_name)."
    ),
    "x_rmmhunt": {
        "tool": "jischell tool folder, or the LOLRMM tool name",
        "kind": "createproc | filesig | netconn",
        "table": "the table the query scans; tables: every table it reads",
        "columns": "per table, the columns the query needs",
        "group_by": "the summarize by-columns",
        "match": "the filters as data: logic over filter indexes; operators has, has_any, "
        "isempty, startswith, =~, in (a let subquery); values are the decoded strings",
        "post_steps": "extend steps before summarize (all-tools query only)",
    },
    "lolrmm_method": [
        (
            "LOLRMM entries naming the same tool are merged; an entry that is a jischell tool "
            "(same letters and digits, or the alias table in scripts/build_pack.py) is "
            "labelled with the jischell folder name (also for the folders that hold only "
            "markdown) and only adds a rule for a kind jischell has no query for."
        ),
        (
            "Domains: placeholders (user_managed, <...>), IP addresses, shared infrastructure "
            "hosts and download portals are skipped; scheme, path, port and 'www.' are removed; "
            "a wildcard or pattern label and everything left of it is removed (*.x.com -> x.com, "
            "which `has` matches on every subdomain); a domain that overlaps another tool's "
            "jischell RemoteUrl value is skipped; a value already matched by a shorter value of "
            "the same list is left out."
        ),
        (
            "Signers: platform vendors, certificate-field fragments and publishers of bundled "
            "third-party components are skipped (list in scripts/build_pack.py); trailing "
            "backslashes are trimmed; a signer that overlaps another tool's jischell Signer "
            "value is skipped."
        ),
        "Rule ids are uuid5(" + str(LOLRMM_NAMESPACE) + ", '<tool>|<kind>').",
    ],
}


def read_uri_rows(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if rows[0] != ["URI", "RMM_Tool"]:
        raise ValueError(f"unexpected header in {path}: {rows[0]}")
    return [(r[0], r[1]) for r in rows[1:]]


def build(rmm_dir: Path) -> dict[str, Any]:
    """The pack as a JSON-ready dict."""
    readme = (rmm_dir / "README.md").read_text(encoding="utf-8")
    for commit in (JISCHELL_COMMIT, LOLRMM_COMMIT):
        if commit not in readme:
            raise ValueError(f"{rmm_dir}/README.md does not name commit {commit}")
    for folder in JISCHELL_MARKDOWN_FOLDERS:
        if folder not in readme:
            raise ValueError(f"{rmm_dir}/README.md does not list the folder {folder}")
    catalog = json.loads((rmm_dir / "catalog.json").read_text(encoding="utf-8"))
    uri_rows = read_uri_rows(rmm_dir / "RMM_SummaryNetworkURI.csv")
    (all_tools,) = [e for e in catalog if e["tool"] == "(all tools)"]
    if sorted(u for u, _ in uri_rows) != sorted(all_tools["filters"][0]["values"]):
        raise ValueError("RMM_SummaryNetworkURI.csv differs from the all-tools query's list")
    tools = json.loads((rmm_dir / "lolrmm_tools.json").read_text(encoding="utf-8"))

    rules = jischell_rules(catalog, uri_rows)
    extra, dropped = lolrmm_rules(tools, catalog)
    rules.extend(extra)
    ids = [r["id"] for r in rules]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate rule ids")
    about = dict(ABOUT)
    about["lolrmm_skipped"] = dropped
    return {
        "about": about,
        "sources": [
            {
                "name": "RemoteManagementMonitoringTools",
                "repo": JISCHELL_REPO,
                "commit": JISCHELL_COMMIT,
                "license": "MIT",
                "license_file": "LICENSES/" + JISCHELL_LICENSE,
                "used_for": "the jischell rules (catalog.json, RMM_SummaryNetworkURI.csv)",
            },
            {
                "name": "LOLRMM",
                "repo": LOLRMM_REPO,
                "commit": LOLRMM_COMMIT,
                "license": "Apache-2.0",
                "license_file": "LICENSES/" + LOLRMM_LICENSE,
                "used_for": "the lolrmm rules (website/public/api/rmm_tools.json)",
            },
        ],
        "rules": rules,
    }


NOTICE = """\
# Third-party data in rmmhunt/data

## pack.json

`pack.json` is generated by `scripts/build_pack.py` from two public sources.

* **RemoteManagementMonitoringTools** by J Schell
  (https://github.com/{jischell_repo}, commit `{jischell_commit}`), MIT License,
  Copyright (c) 2023 J Schell: see `LICENSE-RemoteManagementMonitoringTools-MIT.txt`.
  The rules with `x_rmmhunt.provenance == "jischell"` reproduce the ids, names, filters and
  grouping of its hunting queries (`RMM/<Tool>/rmm_<Tool>_*.yaml` and
  `Network Indicators/rmm__all_netconn.yaml`, including the domain list of
  `Network Indicators/RMM_SummaryNetworkURI.csv`). The queries were modified: defects were
  corrected and the text re-printed; each rule's `x_rmmhunt.changes` lists what changed.
* **LOLRMM** by magicsword-io and contributors
  (https://github.com/{lolrmm_repo}, commit `{lolrmm_commit}`), Apache License 2.0:
  see `LICENSE-LOLRMM-Apache-2.0.txt` (the repository has no NOTICE file). The rules with
  `x_rmmhunt.provenance == "lolrmm"` are derived from the domain and code-signing signer
  names of `website/public/api/rmm_tools.json`; the indicators were selected and
  transformed as described in `pack.json` (`about.lolrmm_method`) and in each rule's
  `x_rmmhunt.changes`.

## schemas.json

Column names and Kusto types of DeviceProcessEvents, DeviceNetworkEvents and
DeviceFileCertificateInfo, as documented by Microsoft in MicrosoftDocs/defender-docs
(`defender-xdr/advanced-hunting-<table>-table.md`; commits in the file). Facts (names and
types) only.

## sample/

The bundled sample tables are synthetic, generated by `scripts/build_sample.py` with
`rmmhunt.sample`. The indicator strings planted in them (company, product, signer and domain
names) come from the rules above.
"""


def outputs(rmm_dir: Path, defender_dir: Path) -> dict[Path, bytes]:
    pack = build(rmm_dir)
    text = json.dumps(pack, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    schemas = json.loads((defender_dir / "schemas.json").read_text(encoding="utf-8"))
    schemas["_copied_from"] = "rmmhunt reference data: defender/schemas.json (unchanged)"
    schemas_text = json.dumps(schemas, indent=1, ensure_ascii=False) + "\n"
    notice = NOTICE.format(
        jischell_repo=JISCHELL_REPO,
        jischell_commit=JISCHELL_COMMIT,
        lolrmm_repo=LOLRMM_REPO,
        lolrmm_commit=LOLRMM_COMMIT,
    )
    return {
        DATA / "pack.json": text.encode("utf-8"),
        DATA / "schemas.json": schemas_text.encode("utf-8"),
        DATA / "LICENSES" / JISCHELL_LICENSE: (rmm_dir / JISCHELL_LICENSE).read_bytes(),
        DATA / "LICENSES" / LOLRMM_LICENSE: (rmm_dir / LOLRMM_LICENSE).read_bytes(),
        DATA / "LICENSES" / "NOTICE.md": notice.encode("utf-8"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rmm_dir", nargs="?", type=Path, default=REPO.parent / "shared" / "rmm")
    parser.add_argument("--defender", type=Path, default=None, help="folder with schemas.json")
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    defender = args.defender or args.rmm_dir.parent / "defender"
    stale = []
    for path, data in outputs(args.rmm_dir, defender).items():
        if args.check:
            if not path.exists() or path.read_bytes() != data:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if stale:
        for path in stale:
            print(f"out of date: {path.relative_to(REPO)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
