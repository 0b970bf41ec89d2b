"""The stacking benchmark runs end to end on tiny data and the peers' rows equal rmmhunt's.

Runs ``benchmarks/stacking.py --rows 20000 --repeat 1`` in a subprocess. Nothing here asserts
timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("duckdb")
pytest.importorskip("polars")

ROOT = Path(__file__).resolve().parents[2]


def test_stacking_smoke(tmp_path: Path) -> None:
    out = tmp_path / "stacking.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "python"), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "stacking.py"),
            "--rows",
            "20000",
            "--repeat",
            "1",
            "--data-dir",
            str(tmp_path / "data"),
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = proc.stdout[-6000:] + proc.stderr[-6000:]
    assert proc.returncode == 0, log
    res = json.loads(out.read_text())
    assert res["ok"] and not res["failures"], res["failures"]
    assert res["rows"] == 20000
    assert len(res["results"]) >= 7
    assert all(r["rows_out"] > 0 for r in res["results"]), res["results"]
