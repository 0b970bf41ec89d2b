"""The synthetic data generator: documented schema, determinism, realism, and ground truth.

The planted events and decoys are checked against every rule of the pack with a reference
``has`` written here, from SEMANTICS.md 1.2, independently of the generator's own."""

from __future__ import annotations

import collections
import datetime as dt
import importlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE_PY = REPO / "python" / "rmmhunt" / "sample.py"
DATA = REPO / "python" / "rmmhunt" / "data"
TABLES = ("DeviceProcessEvents", "DeviceNetworkEvents", "DeviceFileCertificateInfo")
ROWS = {"DeviceProcessEvents": 3_000, "DeviceNetworkEvents": 4_000, "DeviceFileCertificateInfo": 3_000}


def _load_sample() -> ModuleType:
    """``rmmhunt.sample``; straight from its file when the package cannot be imported (the
    compiled extension is not built), since the generator does not need it."""
    try:
        return importlib.import_module("rmmhunt.sample")
    except ImportError:
        spec = importlib.util.spec_from_file_location("_rmmhunt_sample_under_test", SAMPLE_PY)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module


S = _load_sample()


# ----------------------------------------------------------------------------------------------
# Reference semantics (SEMANTICS.md 1.2 and 1.3)


def fold(text: str) -> str:
    """Simple one-to-one case mapping."""
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def has(hay: str | None, needle: str) -> bool:
    """Terms are maximal runs of alphanumerics (str.isalnum; '_' separates); a needle's
    non-alphanumeric edge imposes no boundary; case-insensitive; ``has ""`` is true."""
    if needle == "":
        return True
    h, n = fold(hay or ""), fold(needle)
    i = h.find(n)
    while i >= 0:
        j = i + len(n)
        left = not n[0].isalnum() or i == 0 or not h[i - 1].isalnum()
        right = not n[-1].isalnum() or j == len(h) or not h[j].isalnum()
        if left and right:
            return True
        i = h.find(n, i + 1)
    return False


@pytest.mark.parametrize(
    ("hay", "needle", "expected"),
    [
        ("alpha-beta", "alpha", True),
        ("alpha_beta", "alpha", True),
        ("alphabeta", "alpha", False),
        ("Привет Мир", "привет", True),
        ("ПриветМир", "привет", False),
        ("NAÏVE", "naïve", True),
        ("1_2_3", "2", True),
        ("v1.2.3", "1", False),
        ("version=1.2.3", "2.3", True),
        ("a b", " ", True),
        ("ab", " ", False),
        ("", "", True),
        ("KustoExplorerQueryRun", "Explorer", False),
        ("https://x/resourcegroups/test.rg000001?api", "/resourcegroups/test.rg000001?", True),
        ("Continuum Managed Services LLC", "Continuum Managed", True),
        ("ContinuumManaged", "Continuum Managed", False),
        ("Continuum-Managed", "Continuum Managed", False),
        ("anydesk.com.evil", "anydesk.com", True),
        ("xanydesk.com", "anydesk.com", False),
        ("relay-1.net.anydesk.com", "anydesk.com", True),
        ("ScreenConnectorz Ltd", "ScreenConnect", False),
        ("Servably, Inc.x", "Servably, Inc.", True),
        ("Straße", "STRASSE", False),
    ],
)
def test_reference_has(hay: str, needle: str, expected: bool) -> None:
    assert has(hay, needle) is expected


def _logic(logic: str, truth: list[bool]) -> bool:
    tokens = re.findall(r"\d+|and|or|\(|\)", logic)
    assert "".join(tokens) == re.sub(r"\s+", "", logic)
    expr = " ".join(f"t[{tok}]" if tok.isdigit() else tok for tok in tokens)
    return bool(eval(expr, {"__builtins__": {}}, {"t": truth}))  # tokens checked above


def _filter(flt: dict, value: object, sets: dict[str, set[str]]) -> bool:
    text = "" if value is None else str(value)
    op = flt["operator"]
    if op == "has":
        return has(text, flt["values"][0])
    if op == "has_any":
        return any(has(text, v) for v in flt["values"])
    if op == "isempty":
        return text == ""
    if op == "startswith":
        return fold(text).startswith(fold(flt["values"][0]))
    if op == "=~":
        return fold(text) == fold(flt["values"][0])
    if op == "in":
        return text in sets[flt["values_from"]["let"]]
    raise AssertionError(op)


def matches(rule: dict, row: dict, sets: dict[str, set[str]]) -> bool:
    match = rule["x_rmmhunt"]["match"]
    return _logic(match["logic"], [_filter(f, row.get(f["column"]), sets) for f in match["filters"]])


def matching_rows(rule: dict, table: pa.Table, sets: dict[str, set[str]]) -> list[int]:
    """Row numbers of ``table`` the rule matches (evaluated once per distinct filter values)."""
    cols = sorted({f["column"] for f in rule["x_rmmhunt"]["match"]["filters"]})
    values = [table.column(c).to_pylist() for c in cols]
    combos: dict[tuple, list[int]] = collections.defaultdict(list)
    for i, combo in enumerate(zip(*values, strict=True)):
        combos[combo].append(i)
    out: list[int] = []
    for combo, rows in combos.items():
        if matches(rule, dict(zip(cols, combo, strict=True)), sets):
            out.extend(rows)
    return sorted(out)


def subquery_sets(rules: list[dict], certs: pa.Table) -> dict[str, set[str]]:
    """The let subqueries' values, computed on a DeviceFileCertificateInfo table."""
    out: dict[str, set[str]] = {}
    for r in rules:
        for sub in r["x_rmmhunt"]["match"].get("subqueries", []):
            assert sub["table"] == "DeviceFileCertificateInfo"
            fake = {"x_rmmhunt": {"match": {"logic": sub["logic"], "filters": sub["filters"]}}}
            rows = matching_rows(fake, certs, {})
            column = certs.column(sub["distinct"]).to_pylist()
            out[sub["let"]] = {column[i] for i in rows}
    return out


@pytest.fixture(scope="module")
def pack() -> list[dict]:
    return json.loads((DATA / "pack.json").read_text(encoding="utf-8"))["rules"]


@pytest.fixture(scope="module")
def tables() -> dict[str, pa.Table]:
    return {t: S.sample(t, ROWS[t], seed=11) for t in TABLES}


# ----------------------------------------------------------------------------------------------
# Schema, determinism, sizes


def test_schema_is_the_documented_one(tables: dict[str, pa.Table]) -> None:
    schemas = json.loads((DATA / "schemas.json").read_text(encoding="utf-8"))["tables"]
    arrow = {
        "string": pa.string(),
        "dynamic": pa.string(),
        "long": pa.int64(),
        "int": pa.int32(),
        "bool": pa.bool_(),
        "datetime": pa.timestamp("us", tz="UTC"),
    }
    for name, table in tables.items():
        expected = [(c["name"], arrow[c["type"]]) for c in schemas[name]["columns"]]
        assert [(f.name, f.type) for f in table.schema] == expected
        assert table.schema == S.schema(name)
        assert table.num_rows == ROWS[name]


def test_same_seed_same_table_other_seed_other_table() -> None:
    for name in TABLES:
        a = S.sample(name, 1_500, seed=3, plant=False, decoys=False)
        b = S.sample(name, 1_500, seed=3, plant=False, decoys=False)
        c = S.sample(name, 1_500, seed=4, plant=False, decoys=False)
        assert a.equals(b)
        assert not a.equals(c)
    assert S.sample("DeviceNetworkEvents", 2_000, seed=5).equals(
        S.sample("DeviceNetworkEvents", 2_000, seed=5)
    )


def test_rows_and_arguments() -> None:
    assert S.sample("DeviceProcessEvents", 0, plant=False, decoys=False).num_rows == 0
    assert S.sample("DeviceFileCertificateInfo", 7, plant=False, decoys=False).num_rows == 7
    with pytest.raises(ValueError, match="too small"):
        S.sample("DeviceNetworkEvents", 100)
    with pytest.raises(ValueError, match="unknown table"):
        S.sample("DeviceEvents", 10)
    t = S.sample(
        "DeviceProcessEvents", 500, seed=1, start="2023-01-02T03:04:05Z", days=1, plant=False, decoys=False
    )
    ts = t.column("Timestamp").to_pylist()
    lo = dt.datetime(2023, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert all(lo <= x < lo + dt.timedelta(days=1) for x in ts)
    assert ts == sorted(ts)


def test_planted_events_do_not_depend_on_rows() -> None:
    for name in TABLES:
        assert S.planted(name, 5_000, seed=2) == S.planted(name, 9_000, seed=2)
        assert S.decoys(name, 5_000, seed=2) == S.decoys(name, 9_000, seed=2)


def test_import_does_not_load_numpy_or_pyarrow() -> None:
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('s', {str(SAMPLE_PY)!r})\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['s'] = m; spec.loader.exec_module(m)\n"
        "assert 'numpy' not in sys.modules and 'pyarrow' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------------------------
# Realism


def test_devices_accounts_and_vendors_look_real(tables: dict[str, pa.Table]) -> None:
    proc = tables["DeviceProcessEvents"]
    ids = set(proc.column("DeviceId").to_pylist())
    names = set(proc.column("DeviceName").to_pylist())
    assert 150 <= len(ids) <= 400 and len(names) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{40}", i) for i in ids)
    assert all(re.fullmatch(r"(wks-\d{4}|srv-[a-z]+-\d{2})\.contoso\.local", n) for n in names)
    companies = proc.column("ProcessVersionInfoCompanyName").to_pylist()
    avg = sum(len((c or "").encode()) for c in companies) / len(companies)
    assert 16 <= avg <= 20, avg
    common = collections.Counter(companies).most_common(6)
    assert common[0][0] == "Microsoft Corporation"
    assert {"Google LLC", "Mozilla Corporation"} <= set(companies)
    upns = [u for u in proc.column("AccountUpn").to_pylist() if u]
    assert upns and all(re.fullmatch(r"[a-z]+\.[a-z]+@contoso\.com", u) for u in upns)
    assert "svchost.exe" in set(proc.column("FileName").to_pylist())
    paths = proc.column("FolderPath").to_pylist()
    assert all(p.endswith(f) for p, f in zip(paths, proc.column("FileName").to_pylist(), strict=True))
    reports = proc.column("ReportId").to_pylist()
    assert len(set(reports)) > 0.99 * len(reports)
    net = tables["DeviceNetworkEvents"]
    urls = {u for u in net.column("RemoteUrl").to_pylist() if u}
    assert "login.microsoftonline.com" in urls and "www.google.com" in urls
    signers = set(tables["DeviceFileCertificateInfo"].column("Signer").to_pylist())
    assert {"Microsoft Windows", "Microsoft Corporation", "Google LLC"} <= signers


# ----------------------------------------------------------------------------------------------
# Ground truth


def test_every_rule_of_the_pack_has_planted_events_and_a_decoy(pack: list[dict]) -> None:
    for name in TABLES:
        rules = [r for r in pack if r["x_rmmhunt"]["table"] == name]
        planted = collections.Counter(e["rule_id"] for e in S.planted(name, ROWS[name], seed=11))
        decoys = collections.Counter(e["imitates"] for e in S.decoys(name, ROWS[name], seed=11))
        for r in rules:
            assert planted[r["id"]] == 3, r["name"]
            assert decoys[r["id"]] == 1, r["name"]


def test_planted_events_match_and_nothing_else_does(pack: list[dict], tables: dict[str, pa.Table]) -> None:
    """Every rule matches exactly the planted events that say so: no background row and no
    decoy matches any rule; ``or`` rules get events for each branch."""
    sets = subquery_sets(pack, tables["DeviceFileCertificateInfo"])
    assert len(sets["rmmInitialFileSet"]) == 2
    for name, table in tables.items():
        rules = [r for r in pack if r["x_rmmhunt"]["table"] == name]
        planted = {e["ReportId"]: e for e in S.planted(name, ROWS[name], seed=11)}
        decoy_ids = {e["ReportId"] for e in S.decoys(name, ROWS[name], seed=11)}
        report = table.column("ReportId").to_pylist()
        assert planted.keys() <= set(report) and decoy_ids <= set(report)
        seen: dict[int, set[str]] = collections.defaultdict(set)
        for r in rules:
            for i in matching_rows(r, table, sets):
                seen[report[i]].add(r["id"])
        assert set(seen) == set(planted), f"{name}: rows matched that were not planted, or the reverse"
        for rid, event in planted.items():
            assert seen[rid] == set(event["rules"])
            assert event["rule_id"] in event["rules"]
        assert not decoy_ids & set(seen)


def test_planted_values_are_in_the_table(tables: dict[str, pa.Table]) -> None:
    for name, table in tables.items():
        rows = {r["ReportId"]: r for r in table.to_pylist()}
        for e in S.planted(name, ROWS[name], seed=11) + S.decoys(name, ROWS[name], seed=11):
            row = rows[e["ReportId"]]
            assert (row["DeviceId"], row["DeviceName"], row["Timestamp"]) == (
                e["DeviceId"],
                e["DeviceName"],
                e["Timestamp"],
            )
            for col, value in e["values"].items():
                assert row[col] == value


def test_decoys_are_glued_names_and_near_miss_domains(pack: list[dict]) -> None:
    """A decoy keeps a term of the tool's indicator but glued into a longer term (or a
    near-miss domain), so that no needle of the rule matches it."""
    by_id = {r["id"]: r for r in pack}
    for name in TABLES:
        for e in S.decoys(name, ROWS[name], seed=11):
            flts = by_id[e["imitates"]]["x_rmmhunt"]["match"]["filters"]
            for flt in flts:
                if flt["operator"] in ("isempty", "in") or flt["column"] not in e["values"]:
                    continue
                value = e["values"][flt["column"]]
                assert not any(has(value, n) for n in flt["values"]), (e["tool"], value)
                terms = [re.findall(r"[^\W_]+", n)[0] for n in flt["values"]]
                assert any(fold(t) in fold(value) for t in terms), (e["tool"], value)


def test_or_rules_are_planted_branch_by_branch(pack: list[dict]) -> None:
    events = S.planted("DeviceProcessEvents", ROWS["DeviceProcessEvents"], seed=11)
    by_id = {r["id"]: r for r in pack}
    for tool in ("PDQ", "Panorama9", "DameWare"):
        (rule,) = [
            r for r in pack if r["x_rmmhunt"]["tool"] == tool and r["x_rmmhunt"]["kind"] == "createproc"
        ]
        branches = set()
        for e in events:
            if e["rule_id"] != rule["id"]:
                continue
            flts = by_id[rule["id"]]["x_rmmhunt"]["match"]["filters"]
            branches.add(tuple(f["column"] in e["values"] for f in flts))
        assert len(branches) == 2, (tool, branches)


def test_expected_findings_aggregate_the_planted_events(pack: list[dict]) -> None:
    by_id = {r["id"]: r for r in pack}
    for name in TABLES:
        events = S.planted(name, ROWS[name], seed=11)
        findings = S.expected_findings(name, ROWS[name], seed=11)
        assert sum(f["Count"] for f in findings) == sum(len(e["rules"]) for e in events)
        for f in findings:
            group_by = by_id[f["rule_id"]]["x_rmmhunt"]["group_by"]
            assert set(group_by) <= set(f)
            assert f["FirstSeen"] <= f["LastSeen"] and len(f["Report"]) == f["Count"]
        # two events of each rule share a device and account: one group with Count 2
        assert any(f["Count"] == 2 for f in findings)
        all_tools = [f for f in findings if f["tool"] == "(all tools)"]
        for f in all_tools:
            assert "/" not in f["RemoteUrl"] and ":" not in f["RemoteUrl"]


# ----------------------------------------------------------------------------------------------
# Files and the bundled dataset


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_write_sample(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"out.{fmt}"
    S.write_sample(path, "DeviceNetworkEvents", 300, seed=2, plant=False, decoys=False)
    expected = S.sample("DeviceNetworkEvents", 300, seed=2, plant=False, decoys=False)
    if fmt == "parquet":
        assert pq.read_table(path).equals(expected)
    elif fmt == "csv":
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines[0].split(",")[:3] == ['"Timestamp"', '"DeviceId"', '"DeviceName"']
        assert len(lines) == 301
    else:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        assert len(rows) == 300 and list(rows[0]) == expected.column_names
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", rows[0]["Timestamp"])
        assert rows[5]["ReportId"] == expected.column("ReportId")[5].as_py()
    with pytest.raises(ValueError, match="format"):
        S.write_sample(tmp_path / "out.xlsx", "DeviceNetworkEvents", 10, plant=False, decoys=False)


def test_bundled_dataset_is_the_generated_one() -> None:
    folder = DATA / "sample"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    total = sum((folder / f"{t}.parquet").stat().st_size for t in TABLES)
    assert total < 3_200_000
    bundled = S.bundled()
    assert S.bundled_now() == dt.datetime(2024, 6, 6, tzinfo=dt.timezone.utc)
    assert manifest["now"] == "2024-06-06T00:00:00Z"
    for name in TABLES:
        rows = S.BUNDLED_ROWS[name]
        assert manifest["tables"][name]["rows"] == rows == bundled[name].num_rows
        assert bundled[name].equals(S.sample(name, rows, seed=0)), "run scripts/build_sample.py"
        assert manifest["tables"][name]["planted"] == len(S.planted(name, rows, seed=0))
