"""The RMM rule pack's data: generated reproducibly from the reference data, complete, with
the published defects corrected, safe string literals and LOLRMM rules only where they add a
tool."""

from __future__ import annotations

import collections
import importlib.util
import ipaddress
import json
import re
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "python" / "rmmhunt" / "data"
SHARED = REPO.parent / "shared"
RMM = SHARED / "rmm"
LOLRMM_NAMESPACE = uuid.UUID("ee5f5f77-8238-5f3a-9f53-0e1f58799642")
KIND_TABLE = {
    "createproc": "DeviceProcessEvents",
    "filesig": "DeviceFileCertificateInfo",
    "netconn": "DeviceNetworkEvents",
}
AGGREGATES = "FirstSeen=min(Timestamp), LastSeen=max(Timestamp), Report=make_set(ReportId), Count=count()"


def _load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_test_{name}", REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pack() -> dict:
    return json.loads((DATA / "pack.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def rules(pack: dict) -> list[dict]:
    return pack["rules"]


@pytest.fixture(scope="module")
def schemas() -> dict:
    return json.loads((DATA / "schemas.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def catalog() -> list[dict]:
    if not (RMM / "catalog.json").exists():
        pytest.skip("reference data ../shared/rmm not available")
    return json.loads((RMM / "catalog.json").read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------------------------
# KQL string literals, decoded independently of the generator


_LITERAL = re.compile(r'@\'[^\']*\'|@"[^"]*"|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'')


def _decode(lit: str) -> str:
    if lit.startswith("@"):
        return lit[2:-1]
    body, out, i = lit[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt == "u":
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        elif nxt == "U":
            out.append(chr(int(body[i + 2 : i + 10], 16)))
            i += 10
        else:
            out.append({"n": "\n", "t": "\t", "r": "\r"}.get(nxt, nxt))
            i += 2
    return "".join(out)


def _literals(query: str) -> list[str]:
    return [_decode(m.group(0)) for m in _LITERAL.finditer(query)]


# ----------------------------------------------------------------------------------------------
# Generation


def test_build_pack_reproduces_the_checked_in_files() -> None:
    if not (RMM / "catalog.json").exists():
        pytest.skip("reference data ../shared/rmm not available")
    build_pack = _load_script("build_pack")
    outputs = build_pack.outputs(RMM, SHARED / "defender")
    assert set(outputs) == {
        DATA / "pack.json",
        DATA / "schemas.json",
        DATA / "LICENSES" / "LICENSE-RemoteManagementMonitoringTools-MIT.txt",
        DATA / "LICENSES" / "LICENSE-LOLRMM-Apache-2.0.txt",
        DATA / "LICENSES" / "NOTICE.md",
    }
    for path, data in outputs.items():
        assert path.read_bytes() == data, (
            f"{path.relative_to(REPO)} is out of date: run scripts/build_pack.py"
        )
    # and generating twice gives the same bytes
    assert build_pack.outputs(RMM, SHARED / "defender") == outputs


def test_pack_format(pack: dict) -> None:
    assert set(pack) == {"about", "sources", "rules"}
    names = {s["name"]: s for s in pack["sources"]}
    assert names["RemoteManagementMonitoringTools"]["license"] == "MIT"
    assert names["RemoteManagementMonitoringTools"]["commit"] == "7bb251e68abd13989445195e9d812cb189277715"
    assert names["LOLRMM"]["license"] == "Apache-2.0"
    assert names["LOLRMM"]["commit"] == "3c75cf091b10bf7e8ecd576055c44d172b35ff21"
    for source in pack["sources"]:
        assert (DATA / source["license_file"]).is_file()


def test_licenses_and_notice() -> None:
    notice = (DATA / "LICENSES" / "NOTICE.md").read_text(encoding="utf-8")
    for needle in ("jischell-msft/RemoteManagementMonitoringTools", "magicsword-io/LOLRMM", "MIT", "Apache"):
        assert needle in notice
    assert "Copyright (c) 2023 J Schell" in (
        DATA / "LICENSES" / "LICENSE-RemoteManagementMonitoringTools-MIT.txt"
    ).read_text(encoding="utf-8")
    assert "Apache License" in (DATA / "LICENSES" / "LICENSE-LOLRMM-Apache-2.0.txt").read_text(
        encoding="utf-8"
    )


def test_every_rule_has_the_sentinel_fields(rules: list[dict]) -> None:
    ids = [r["id"] for r in rules]
    assert len(ids) == len(set(ids))
    for r in rules:
        x = r["x_rmmhunt"]
        uuid.UUID(r["id"])
        assert r["name"] and r["description"] and r["query"]
        assert r["tactics"] == ["CommandAndControl"]
        assert r["relevantTechniques"] == ["T1219"]
        assert r["version"] == "1.0.0"
        (conn,) = r["requiredDataConnectors"]
        assert conn["connectorId"] == "MicrosoftThreatProtection"
        assert conn["dataTypes"] == x["tables"] and conn["dataTypes"][0] == x["table"]
        assert x["table"] == KIND_TABLE[x["kind"]]
        assert x["provenance"] in ("jischell", "lolrmm")
        assert isinstance(x["changes"], list) and x["source_path"]


def test_counts_per_kind_and_provenance(rules: list[dict]) -> None:
    counts = collections.Counter((r["x_rmmhunt"]["provenance"], r["x_rmmhunt"]["kind"]) for r in rules)
    assert counts[("jischell", "createproc")] == 56
    assert counts[("jischell", "filesig")] == 52
    assert counts[("jischell", "netconn")] == 60
    assert counts[("lolrmm", "createproc")] == 0
    assert counts[("lolrmm", "netconn")] > 50
    assert counts[("lolrmm", "filesig")] > 30


def test_every_catalog_entry_is_a_rule(rules: list[dict], catalog: list[dict]) -> None:
    by_id = {r["id"]: r for r in rules}
    assert len(catalog) == 168
    for entry in catalog:
        rule = by_id[entry["yaml_id"]]
        x = rule["x_rmmhunt"]
        assert rule["name"] == entry["yaml_name"]
        assert (x["tool"], x["kind"], x["table"], x["source_path"]) == (
            entry["tool"],
            entry["kind"],
            entry["table"],
            entry["path"],
        )
        assert x["provenance"] == "jischell"
        assert x["match"]["logic"] == entry["logic"]
        # same filters, values and operators (with the invalid one corrected)
        for got, want in zip(x["match"]["filters"], entry["filters"], strict=True):
            assert got["column"] == ("SHA1" if want["column"] == "Sha1" else want["column"])
            assert got["operator"] == (
                "has_any" if want["operator"] == "has_all has_any" else want["operator"]
            )
            assert got["values"] == want["values"]
        group_by = ["InitiatingProcessAccountUpn" if c == "AccountUpn" else c for c in entry["group_by"]]
        assert x["group_by"] == (group_by if entry["kind"] == "netconn" else entry["group_by"])


def test_query_shape(rules: list[dict]) -> None:
    for r in rules:
        x = r["x_rmmhunt"]
        lines = r["query"].split("\n")
        assert lines[:2] == ["let Time_start = now(-5d);", "let Time_end = now();"]
        table_at = lines.index(x["table"])
        assert lines[table_at + 1] == "| where Timestamp between (Time_start..Time_end)"
        assert lines[table_at + 2].startswith("| where ")
        assert lines[-1] == f"| summarize {AGGREGATES} by {', '.join(x['group_by'])}"
        # every filter value appears as a string literal of the query, exactly
        literals = set(_literals(r["query"]))
        for flt in x["match"]["filters"]:
            for value in flt["values"]:
                assert value in literals, (r["name"], value)


def test_string_literals_are_written_safely(rules: list[dict]) -> None:
    for r in rules:
        for m in _LITERAL.finditer(r["query"]):
            lit = m.group(0)
            assert not lit.startswith("'"), "literals are double-quoted or verbatim"
            if lit.startswith("@"):
                assert "\\" in lit and "'" not in lit[2:-1]
            assert all(ch.isprintable() for ch in lit)
    # the non-ASCII literals survive as themselves
    queries = "\n".join(r["query"] for r in rules)
    assert '"DWSNET OÜ"' in queries and '"Krämer IT Solutions GmbH"' in queries
    assert "@'\\Program Files\\Level\\'" in queries


def test_published_defects_are_corrected(rules: list[dict]) -> None:
    by = {
        (r["x_rmmhunt"]["tool"], r["x_rmmhunt"]["kind"]): r
        for r in rules
        if r["x_rmmhunt"]["provenance"] == "jischell"
    }
    for r in by.values():
        q = r["query"]
        assert "has_all" not in q
        assert not re.search(r"\bSha1\b", q)
        assert not re.search(r",\s*\)", q), "no trailing commas"
        if r["x_rmmhunt"]["kind"] == "netconn":
            assert "AccountUpn" not in q.replace("InitiatingProcessAccountUpn", "")
    level = by[("Level", "createproc")]
    assert (
        "FolderPath has_any (@'\\Program Files\\Level\\', @'\\Program Files (x86)\\Level\\')"
        in level["query"]
    )
    dws = by[("DWService", "createproc")]
    assert "| where SHA1 in (rmmInitialFileSet)" in dws["query"]
    assert "| distinct SHA1;" in dws["query"]
    assert dws["requiredDataConnectors"][0]["dataTypes"] == [
        "DeviceProcessEvents",
        "DeviceFileCertificateInfo",
    ]
    dws_net = by[("DWService", "netconn")]
    assert "InitiatingProcessSHA1 in (rmmInitialFileSet)" in dws_net["query"]
    assert "| distinct SHA1;" in dws_net["query"]


def test_published_queries_keep_their_defects(rules: list[dict]) -> None:
    jis = [r for r in rules if r["x_rmmhunt"]["provenance"] == "jischell"]
    with_published = {
        (r["x_rmmhunt"]["tool"], r["x_rmmhunt"]["kind"]): r
        for r in jis
        if "published_query" in r["x_rmmhunt"]
    }
    # every netconn query groups by AccountUpn as published; Level and DWService createproc are invalid
    assert {k for k in with_published if k[1] == "netconn"} == {
        (r["x_rmmhunt"]["tool"], "netconn") for r in jis if r["x_rmmhunt"]["kind"] == "netconn"
    }
    assert {k for k in with_published if k[1] != "netconn"} == {
        ("Level", "createproc"),
        ("DWService", "createproc"),
    }
    for (_tool, kind), r in with_published.items():
        pub = r["x_rmmhunt"]["published_query"]
        assert pub != r["query"]
        assert r["x_rmmhunt"]["changes"], "each correction is documented"
        if kind == "netconn":
            assert pub.split("\n")[-1].endswith(
                "by DeviceId, DeviceName, AccountUpn, RemoteUrl"
                + (", InitiatingProcessFileName" if _tool == "(all tools)" else "")
            )
    assert (
        "FolderPath has_all has_any ("
        in with_published[("Level", "createproc")]["x_rmmhunt"]["published_query"]
    )
    dws = with_published[("DWService", "createproc")]["x_rmmhunt"]["published_query"]
    assert "\n| Sha1 in (rmmInitialFileSet)\n" in dws and "| distinct Sha1;" in dws
    for tool in ("MSP360_CloudBerry", "ZohoAssist"):
        assert re.search(r",\n\s*\)", with_published[(tool, "netconn")]["x_rmmhunt"]["published_query"])
    for r in jis:
        if "published_query" not in r["x_rmmhunt"]:
            assert r["x_rmmhunt"]["changes"] in (
                [],
                ["`//` comments inside the query body dropped (they carried no filter)"],
            )


def test_all_tools_query_keeps_its_datatable_and_extend_steps(rules: list[dict], catalog: list[dict]) -> None:
    (r,) = [r for r in rules if r["x_rmmhunt"]["tool"] == "(all tools)"]
    q = r["query"]
    assert "let rmm_networkSet = datatable(URI:string, RMM_Tool:string) [" in q
    assert "let rmm_URIs = rmm_networkSet | distinct URI;" in q
    assert "| where RemoteUrl has_any (rmm_URIs)" in q
    assert '| extend RemoteUrl = trim_start("http[s]?://", RemoteUrl)' in q
    assert '| extend RemoteUrl = tostring(split(RemoteUrl, "/")[0])' in q
    assert '| extend RemoteUrl = tostring(split(RemoteUrl, ":")[0])' in q
    (entry,) = [e for e in catalog if e["tool"] == "(all tools)"]
    assert r["x_rmmhunt"]["match"]["filters"][0]["values"] == entry["filters"][0]["values"]
    assert len(re.findall(r'^    "[^"]*", "[^"]*",?$', q, re.MULTILINE)) == 186


def test_columns_exist_in_the_documented_schemas(rules: list[dict], schemas: dict) -> None:
    cols = {t: {c["name"] for c in v["columns"]} for t, v in schemas["tables"].items()}
    for r in rules:
        for table, needed in r["x_rmmhunt"]["columns"].items():
            missing = set(needed) - cols[table]
            assert not missing, (r["name"], table, missing)


def test_schemas_are_the_documented_ones(schemas: dict) -> None:
    assert set(schemas["tables"]) == set(KIND_TABLE.values())
    types = {c["type"] for t in schemas["tables"].values() for c in t["columns"]}
    assert types <= {"string", "long", "int", "bool", "datetime", "dynamic"}
    assert "AccountUpn" not in {c["name"] for c in schemas["tables"]["DeviceNetworkEvents"]["columns"]}
    shared = SHARED / "defender" / "schemas.json"
    if shared.exists():
        original = json.loads(shared.read_text(encoding="utf-8"))
        assert {k: v for k, v in schemas.items() if k != "_copied_from"} == original


def test_lolrmm_rules_only_add_tools(rules: list[dict]) -> None:
    jis = {
        (r["x_rmmhunt"]["tool"], r["x_rmmhunt"]["kind"])
        for r in rules
        if r["x_rmmhunt"]["provenance"] == "jischell"
    }
    lol = [r for r in rules if r["x_rmmhunt"]["provenance"] == "lolrmm"]
    for r in lol:
        x = r["x_rmmhunt"]
        assert (x["tool"], x["kind"]) not in jis
        assert r["id"] == str(uuid.uuid5(LOLRMM_NAMESPACE, f"{x['tool']}|{x['kind']}"))
        assert x["kind"] in ("netconn", "filesig")
        (flt,) = x["match"]["filters"]
        assert flt["column"] == ("RemoteUrl" if x["kind"] == "netconn" else "Signer")
        assert flt["operator"] == ("has" if len(flt["values"]) == 1 else "has_any")
        for value in flt["values"]:
            assert value and value == value.strip()
            assert "*" not in value and "user_managed" not in value and "<" not in value
            assert not value.endswith("\\")
            if x["kind"] == "netconn":
                assert value == value.lower() and "/" not in value and ":" not in value
                with pytest.raises(ValueError):
                    ipaddress.ip_address(value)
                assert value not in ("github.com", "raw.githubusercontent.com", "amazonaws.com")
            else:
                assert value not in ("Microsoft Corporation", "Google LLC", ".NET")
    # tools the catalog names only in markdown get LOLRMM rules
    tools = {r["x_rmmhunt"]["tool"] for r in lol}
    assert {"Alpemix", "AnyplaceControl", "Itarian", "JumpCloud", "TechInline", "Xeox", "Syspectr"} <= tools
    # a jischell tool with no filesig query gets one from LOLRMM signers
    assert ("mRemoteNG", "filesig") in {(r["x_rmmhunt"]["tool"], r["x_rmmhunt"]["kind"]) for r in lol}


def test_lolrmm_skips_are_logged(pack: dict) -> None:
    skipped = pack["about"]["lolrmm_skipped"]
    reasons = collections.Counter(s["reason"].split(" (")[0].split(":")[0] for s in skipped)
    assert reasons["placeholder"] > 10
    assert any(s["value"] == "Microsoft Corporation" for s in skipped)
    assert any("overlaps the jischell" in s["reason"] for s in skipped)
