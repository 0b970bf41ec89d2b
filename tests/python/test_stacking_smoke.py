"""The stacking benchmark runs end to end on tiny data and the peers' rows equal rmmhunt's.

Runs ``benchmarks/stacking.py --rows 20000 --repeat 1`` in a subprocess. Nothing here asserts
timings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("duckdb")
pytest.importorskip("polars")

from benchmark_script import run_benchmark  # noqa: E402  (after the skips)


def test_stacking_smoke(tmp_path: Path) -> None:
    out = tmp_path / "stacking.json"
    args = ["--rows", "20000", "--repeat", "1", "--data-dir", str(tmp_path / "data")]
    code, _, log = run_benchmark("stacking.py", *args, "--out", str(out))
    assert code == 0, log
    res = json.loads(out.read_text())
    assert res["ok"] and not res["failures"], res["failures"]
    assert res["rows"] == 20000
    assert len(res["results"]) >= 7
    assert all(r["rows_out"] > 0 for r in res["results"]), res["results"]
