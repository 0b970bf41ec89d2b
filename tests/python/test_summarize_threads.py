"""``summarize`` over several chunks (the engine aggregates 128K-row chunks on their own and
merges them, in parallel, when groups are few): every aggregate gives the same rows on one, two
and three threads, and counts, sums and extremes equal pyarrow's."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import rmmhunt
from rmmhunt import sample

QUERIES = [
    # Few groups, constant-time merges: chunks aggregated apart, then merged.
    "T | summarize n=count(), exe=countif(FileName endswith '.exe'), first=min(Timestamp), "
    "last=max(Timestamp), ids=sum(ReportId), mean=avg(ReportId) by DeviceName",
    "T | summarize arg_max(Timestamp, FileName, ProcessCommandLine) by DeviceName",
    "T | summarize arg_min(Timestamp, *) by ProcessVersionInfoCompanyName",
    "T | summarize take_any(FileName), take_any(ProcessCommandLine, FolderPath) by DeviceName",
    "T | summarize count(), sum(ReportId) by bin(Timestamp, 1h)",
    "T | summarize count(), avg(ReportId), max(ReportId)",
    "T | extend early = Timestamp < datetime(2024-06-03) | summarize count() by early",
    # Sets and many groups: chunk by chunk.
    "T | summarize dcount(FileName), make_set(FileName, 5), make_list(ReportId, 3) by DeviceName",
    "T | summarize count() by ReportId | summarize count(), sum(count_)",
]


@pytest.fixture(scope="module")
def events() -> pa.Table:
    # Three chunks and a part: the merges are not vacuous.
    return sample.sample("DeviceProcessEvents", 400_000, seed=7)


@pytest.mark.parametrize("kql", QUERIES)
def test_the_same_rows_on_any_thread_count(events, kql):
    one = rmmhunt.query(kql, {"T": events}, threads=1).to_pylist()
    assert one
    for threads in (2, 3):
        assert rmmhunt.query(kql, {"T": events}, threads=threads).to_pylist() == one, threads


def test_counts_sums_and_extremes_equal_pyarrow(events):
    got = rmmhunt.query(QUERIES[0], {"T": events}, threads=2).to_arrow()
    keyed = events.set_column(
        events.schema.get_field_index("DeviceName"),
        "DeviceName",
        pc.fill_null(events["DeviceName"], ""),  # a null string groups as "" (Kusto)
    )
    want = keyed.group_by("DeviceName").aggregate(
        [
            ("DeviceName", "count", pc.CountOptions(mode="all")),
            ("Timestamp", "min"),
            ("Timestamp", "max"),
            ("ReportId", "sum"),
            ("ReportId", "mean"),
        ]
    )
    want_rows = {
        r["DeviceName"]: (
            r["DeviceName_count"],
            r["Timestamp_min"],
            r["Timestamp_max"],
            r["ReportId_sum"],
            r["ReportId_mean"],
        )
        for r in want.to_pylist()
    }
    got_rows = {r["DeviceName"]: r for r in got.to_pylist()}
    assert got_rows.keys() == want_rows.keys() and len(got_rows) > 10
    for name, (n, first, last, ids, mean) in want_rows.items():
        r = got_rows[name]
        assert (r["n"], r["first"], r["last"], r["ids"]) == (n, first, last, ids), name
        assert r["mean"] == pytest.approx(mean, rel=1e-12), name
    assert sum(r["n"] for r in got_rows.values()) == events.num_rows
    assert max(r["last"] for r in got_rows.values()) - min(r["first"] for r in got_rows.values()) > timedelta(
        days=1
    )
