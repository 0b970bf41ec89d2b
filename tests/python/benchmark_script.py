"""Runs a script of ``benchmarks/`` in a subprocess with the package on its path (the smoke tests
of ``run.py`` and ``stacking.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_benchmark(script: str, *args: str) -> tuple[int, str, str]:
    """Exit status, standard output and the last 12,000 characters of both (for messages)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "python"), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc.returncode, proc.stdout, proc.stdout[-6000:] + proc.stderr[-6000:]
