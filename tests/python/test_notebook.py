"""The pandas accessor df.rmmhunt: the DataFrame is the table; DataFrames come back, UTC-aware."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

pd = pytest.importorskip("pandas")

import rmmhunt.notebook as nb  # noqa: E402  (registers the accessor)
from rmmhunt.sample import schema  # noqa: E402

UTC = timezone.utc
NOW = datetime(2024, 6, 6, tzinfo=UTC)
ANYDESK_PROC = "e9c26766-0fe4-49b6-ae27-c41c41aae094"


def events_frame(naive: bool = False) -> pd.DataFrame:
    """A DeviceProcessEvents frame as MSTICPy returns one: every documented column, aware UTC
    timestamps, dynamic values as dicts."""
    rows = []
    for i, (device, company, hours) in enumerate(
        [
            ("wks-a", "AnyDesk Software GmbH", 30),
            ("wks-a", "AnyDesk Software GmbH", 10),
            ("wks-b", "AnyDesk Softwarez", 5),  # decoy
            ("wks-c", "Microsoft Corporation", 2),
        ]
    ):
        t = NOW - timedelta(hours=hours)
        rows.append(
            {
                "Timestamp": t.replace(tzinfo=None) if naive else t,
                "DeviceId": f"id-{device}",
                "DeviceName": device,
                "AccountUpn": f"{device}@corp",
                "ProcessVersionInfoCompanyName": company,
                "ProcessVersionInfoProductName": "AnyDesk",
                "ReportId": 100 + i,
                "AdditionalFields": {"k": i},
            }
        )
    df = pd.DataFrame(rows)
    for name in schema("DeviceProcessEvents").names:
        if name not in df.columns:
            df[name] = None
    return df


def test_accessor_hunt():
    df = events_frame()
    out = df.rmmhunt.hunt(rules="anydesk", now=NOW)
    assert isinstance(out, pd.DataFrame)
    assert out[["rule_id", "DeviceName", "AccountUpn", "Count"]].values.tolist() == [
        [ANYDESK_PROC, "wks-a", "wks-a@corp", 2]
    ]
    assert str(out["FirstSeen"].dtype) == "datetime64[ns, UTC]"
    assert out["FirstSeen"].iloc[0] == pd.Timestamp(NOW - timedelta(hours=30))
    assert sorted(out["Report"].iloc[0]) == [100, 101]


def test_naive_timestamps_are_utc():
    aware = events_frame().rmmhunt.hunt(rules="anydesk", now=NOW)
    naive = events_frame(naive=True).rmmhunt.hunt(rules="anydesk", now=NOW)
    assert naive["FirstSeen"].tolist() == aware["FirstSeen"].tolist()
    assert str(naive["LastSeen"].dtype) == "datetime64[ns, UTC]"


def test_accessor_query():
    df = events_frame()
    out = df.rmmhunt.query(
        "DeviceProcessEvents | summarize n = count(), last = max(Timestamp) by DeviceName | order by DeviceName asc"
    )
    assert out["DeviceName"].tolist() == ["wks-a", "wks-b", "wks-c"]
    assert out["n"].tolist() == [2, 1, 1]
    assert str(out["last"].dtype) == "datetime64[ns, UTC]"
    assert out["last"].iloc[0] == pd.Timestamp(NOW - timedelta(hours=10))
    # the table name comes from the query when it reads one table
    renamed = df.rmmhunt.query("Events | count")
    assert renamed.iloc[0, 0] == 4
    # dynamic values survive as JSON and come back as Python objects
    dyn = df.rmmhunt.query("DeviceProcessEvents | where ReportId == 102 | project AdditionalFields")
    assert dyn["AdditionalFields"].iloc[0] in ({"k": 2}, '{"k": 2}', '{"k":2}')


def test_table_inference_and_errors():
    df = events_frame()
    assert nb.frame_table(df) == "DeviceProcessEvents"
    assert nb.frame_table(df, "Custom") == "Custom"
    odd = pd.DataFrame({"a": [1], "b": ["x"]})
    with pytest.raises(ValueError, match="table="):
        odd.rmmhunt.hunt(now=NOW)
    assert odd.rmmhunt.query("T | project a", table="T")["a"].tolist() == [1]


def test_query_now():
    df = events_frame()
    out = df.rmmhunt.query("DeviceProcessEvents | where Timestamp > ago(6h) | count", now=NOW)
    assert out.iloc[0, 0] == 2
    out = df.rmmhunt.query(
        "DeviceProcessEvents | where Timestamp > ago(6h) | count", now="2024-06-06T00:00:00Z"
    )
    assert out.iloc[0, 0] == 2


def test_register_is_idempotent_and_lazy():
    nb.register_pandas_accessor()
    nb.register_pandas_accessor()
    assert pd.DataFrame.rmmhunt is nb.RmmhuntAccessor  # type: ignore[attr-defined]
    code = (
        "import sys, rmmhunt\n"
        "assert 'pandas' not in sys.modules\n"
        "import pandas as pd\n"
        "assert not hasattr(pd.DataFrame, 'rmmhunt'), 'registered at import rmmhunt'\n"
        "import rmmhunt.notebook\n"
        "assert hasattr(pd.DataFrame, 'rmmhunt')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_findings_to_pandas_registers():
    code = (
        "import pandas as pd, pyarrow as pa\n"
        "from rmmhunt.hunting import hunt\n"
        "assert not hasattr(pd.DataFrame, 'rmmhunt')\n"
        "hunt({}, rules='anydesk').to_pandas()\n"
        "assert hasattr(pd.DataFrame, 'rmmhunt')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_readme_python_examples():
    """The ``>>>`` examples of the README's Notebooks section (README.cli.md until merged)."""
    import doctest
    import re
    from pathlib import Path

    import rmmhunt

    pytest.importorskip("bokeh")
    assert hasattr(rmmhunt, "hunt"), "wire `from .hunting import Findings, hunt` into rmmhunt/__init__.py"
    repo = Path(__file__).resolve().parents[2]
    path = repo / "README.cli.md"
    if not path.exists():
        path = repo / "README.md"
    text = path.read_text(encoding="utf-8")
    start = text.index("## Notebooks\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end >= 0 else len(text)]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) >= 2
    test = doctest.DocTestParser().get_doctest("\n".join(blocks), {}, "README Notebooks", str(path), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0 and runner.tries >= 10
