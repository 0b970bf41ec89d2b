"""The benchmark harness runs end to end on tiny data and its result checks pass.

Runs ``benchmarks/run.py --smoke`` in a subprocess (a few seconds of generated data, every engine
once per case and thread count). Nothing here asserts timings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("duckdb")
pytest.importorskip("polars")

from benchmark_script import run_benchmark  # noqa: E402  (after the skips)


def test_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    code, stdout, log = run_benchmark(
        "run.py", "--smoke", "--data-dir", str(tmp_path / "data"), "--out", str(out)
    )
    assert code == 0, log
    assert "result checks:" in stdout, log

    res = json.loads(out.read_text())
    assert res["ok"] and not res["failures"], res["failures"]
    assert res["smoke"] and res["repeat"] == 1
    assert res["checks_failed"] == 0
    assert res["checks_passed"] == len(res["checks"]) > 0

    runs = res["runs"]
    cases = {r["case"] for r in runs}
    assert cases == {"founding-memory", "founding-parquet", "pack-memory", "pack-parquet"}
    for case in cases:
        case_runs = [r for r in runs if r["case"] == case]
        # rmmhunt is the reference; it found something, so the comparisons are not vacuous
        refs = [r for r in case_runs if r["check"] == "reference"]
        assert len(refs) == 1 and refs[0]["engine"] == "rmmhunt" and refs[0]["groups"] > 0
        engines = {r["engine"] for r in case_runs}
        if case == "pack-parquet":
            assert engines == {"rmmhunt", "duckdb-combined", "polars-combined"}
        else:
            assert {"rmmhunt", "duckdb", "polars"} <= engines
        # every other run was compared with rmmhunt, rule by rule, and was identical
        for r in case_runs:
            if r is refs[0]:
                continue
            assert r["check"] == "identical", r
            assert r["groups"] == refs[0]["groups"] and r["matched_rows"] == refs[0]["matched_rows"]
            check = next(
                c
                for c in res["checks"]
                if (c["case"], c["engine"], c["threads"]) == (case, r["engine"], r["threads"])
            )
            assert check["ok"] and check["rules"] == r["rules"]
        # each engine ran once per thread count, in its own process, with a peak RSS measured
        assert sorted({r["threads"] for r in case_runs}) == [1, 2]
        assert all(r["peak_rss_mb"] > 0 and len(r["times_s"]) == 1 for r in case_runs)

    pack = [r for r in runs if r["case"] == "pack-memory"]
    assert {"duckdb-combined", "polars-combined"} <= {r["engine"] for r in pack}
    assert all(r["rules"] == len(res["rules"]) > 30 for r in pack)
