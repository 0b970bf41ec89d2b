"""Every rule of the pack, hunted over generated tables with planted events and decoys,
reports exactly the planted findings: nothing missed, no decoy matched."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import rmmhunt
from rmmhunt import sample as S

SEED = 5
ROWS = {"DeviceProcessEvents": 3000, "DeviceNetworkEvents": 3000, "DeviceFileCertificateInfo": 2000}
START = "2024-06-01T00:00:00Z"
DAYS = 5
NOW = dt.datetime(2024, 6, 6, tzinfo=dt.timezone.utc)
FOUNDING = "83f7b313-b955-4988-b524-b2da55c67b43"


def _key(row: dict) -> str:
    def norm(v: object) -> object:
        if isinstance(v, dt.datetime):
            return v.astimezone(dt.timezone.utc).isoformat()
        if hasattr(v, "to_pydatetime"):
            return v.to_pydatetime().astimezone(dt.timezone.utc).isoformat()  # type: ignore[attr-defined]
        if isinstance(v, list | tuple):
            return sorted(v)
        return v

    return json.dumps({k: norm(v) for k, v in sorted(row.items()) if v is not None and v != ""}, sort_keys=True, default=str)


@pytest.fixture(scope="module")
def findings() -> rmmhunt.Findings:
    tables = {t: S.sample(t, n, seed=SEED, start=START, days=DAYS) for t, n in ROWS.items()}
    return rmmhunt.hunt(tables, rules="all", now=NOW, exclusions="off")


def test_every_rule_ran(findings: rmmhunt.Findings) -> None:
    assert list(findings.skipped) == []
    assert len(findings.stats) == len(rmmhunt.rules.pack())


@pytest.mark.parametrize("table", list(ROWS))
def test_exact_findings_per_rule(findings: rmmhunt.Findings, table: str) -> None:
    want: dict[str, set[str]] = {}
    for f in S.expected_findings(table, ROWS[table], seed=SEED, start=START, days=DAYS):
        if f["rule_id"] == FOUNDING:
            continue  # the founding rule groups by DeviceId, DeviceName only (checked below)
        keep = {k: v for k, v in f.items() if k not in ("rule_name", "tool", "kind")}
        want.setdefault(f["rule_id"], set()).add(_key(keep))
    got: dict[str, set[str]] = {}
    for row in findings.to_pylist():
        if row["table"] != table or row["rule_id"] == FOUNDING:
            continue
        keep = {k: v for k, v in row.items() if k not in ("rule_name", "tool", "kind", "table", "tactic", "technique")}
        got.setdefault(row["rule_id"], set()).add(_key(keep))
    rules = {r.id for r in rmmhunt.rules.pack() if r.tables[0] == table and r.id != FOUNDING}
    missing = sorted(r for r in rules if got.get(r, set()) != want.get(r, set()))
    assert not missing, f"{len(missing)} rules differ, e.g. {missing[:3]}: got {got.get(missing[0])} want {want.get(missing[0])}"
    assert sum(len(v) for v in want.values()) > 0


def test_founding_rule_findings(findings: rmmhunt.Findings) -> None:
    rows = [r for r in findings.to_pylist() if r["rule_id"] == FOUNDING]
    planted = [e for e in S.planted("DeviceProcessEvents", ROWS["DeviceProcessEvents"], seed=SEED, start=START, days=DAYS) if FOUNDING in e["rules"]]
    by_device: dict[str, int] = {}
    for e in planted:
        by_device[e["DeviceName"]] = by_device.get(e["DeviceName"], 0) + 1
    assert {r["DeviceName"]: r["Count"] for r in rows} == by_device
