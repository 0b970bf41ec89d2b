"""examples/hunt_rmm.ipynb runs top to bottom (nbclient, kernel python3) without a failing cell."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("bokeh")
pytest.importorskip("pandas")

import rmmhunt  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hunt_rmm.ipynb"


def test_example_notebook_runs(tmp_path, monkeypatch):
    assert hasattr(rmmhunt, "hunt"), "wire `from .hunting import Findings, hunt` into rmmhunt/__init__.py"
    # The kernel imports the same rmmhunt as these tests (an installed package or python/).
    package_root = str(Path(rmmhunt.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(EXAMPLE, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError naming the cell on the first failure
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    # the pack's HTML summary and the timeline were displayed
    html = [
        o["data"]["text/html"]
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type in ("execute_result", "display_data") and "text/html" in o.get("data", {})
    ]
    assert any("rmmhunt-findings" in h for h in html)
    assert any(
        "application/vnd.bokehjs_exec.v0+json" in o.get("data", {})
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
