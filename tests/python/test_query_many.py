"""``rmmhunt.query_many``: many queries in one pass over each table (issue #4) give exactly
what each gives alone; errors stay with their query; ``threads=`` pins the scan threads."""

from __future__ import annotations

import re

import pytest
import rmmhunt
from rmmhunt import sample
from rmmhunt.rules import pack


@pytest.fixture(scope="module")
def tables():
    return sample.bundled()


def test_every_pack_rule_in_one_pass_equals_alone(tables):
    now = sample.bundled_now()
    rules = list(pack())
    queries = [r.query for r in rules]
    together = rmmhunt.query_many(queries, tables, now=now, return_exceptions=True)
    assert len(together) == len(queries)
    found = 0
    for rule, got in zip(rules, together, strict=True):
        try:
            alone = rmmhunt.query(rule.query, tables, now=now)
        except rmmhunt.RmmhuntError as exc:
            assert type(got) is type(exc), rule.name
            continue
        assert not isinstance(got, BaseException), (rule.name, got)
        assert got.columns == alone.columns, rule.name
        assert got.to_pylist() == alone.to_pylist(), rule.name
        found += len(got) > 0
    # The bundled sample plants events for every rule: the comparison is not vacuous.
    assert found == len(rules)


def test_pack_from_parquet_in_one_pass_equals_in_memory(tables, tmp_path):
    """From Parquet, the pack's one pass filters rows while decoding, in stages (the columns
    several rules read, then those one rule reads, then time ranges): each rule still gets
    exactly its in-memory result, over row groups small enough that some hold no hit."""
    import pyarrow.parquet as pq

    now = sample.bundled_now()
    queries = [r.query for r in pack()]
    files = {}
    for name, table in tables.items():
        path = tmp_path / f"{name}.parquet"
        pq.write_table(table, path, row_group_size=1000, data_page_size=4096)
        files[name] = rmmhunt.read(str(path), table=name)
    from_files = rmmhunt.query_many(queries, files, now=now, return_exceptions=True)
    in_memory = rmmhunt.query_many(queries, tables, now=now, return_exceptions=True)
    for q, got, want in zip(queries, from_files, in_memory, strict=True):
        assert not isinstance(got, BaseException), (q, got)
        assert not isinstance(want, BaseException), (q, want)
        assert got.to_pylist() == want.to_pylist(), q


def test_dictionary_answers_follow_each_row_group(tmp_path):
    """From Parquet, string columns come back as dictionaries, each 8,192-row batch with a
    values array over its row group's dictionary; a predicate's answers per dictionary are
    kept for the batches that share it. Three row groups of 20,000 rows list the same
    company names in different orders (a key means another name in each), and one has a
    name the others lack: every query over the file equals the same query in memory, on
    one thread and on two."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = ["AnyDesk Software GmbH", "TeamViewer", "Atera Networks", "Microsoft Corporation"]
    groups = []
    for g in range(3):
        order = names[g:] + names[:g] + (["ScreenConnect Software"] if g == 1 else [])
        groups.append([order[(i * 7 + i // 13) % len(order)] for i in range(20_000)])
    company = [c for grp in groups for c in grp]
    start = pa.scalar(1_717_200_000_000_000, pa.timestamp("us", tz="UTC")).value
    table = pa.table(
        {
            "Timestamp": pa.array(
                [start + i * 1_000_000 for i in range(len(company))], pa.timestamp("us", tz="UTC")
            ),
            "ProcessVersionInfoCompanyName": company,
            "DeviceName": [f"wks-{i % 5}" for i in range(len(company))],
        }
    )
    path = tmp_path / "DeviceProcessEvents.parquet"
    pq.write_table(table, path, row_group_size=20_000)
    queries = [
        "DeviceProcessEvents | where ProcessVersionInfoCompanyName has 'anydesk' | count",
        "DeviceProcessEvents | where ProcessVersionInfoCompanyName startswith 'team' | count",
        "DeviceProcessEvents | where ProcessVersionInfoCompanyName == 'Atera Networks' | count",
        "DeviceProcessEvents | where ProcessVersionInfoCompanyName has_any ('ScreenConnect', "
        "'TeamViewer', 'Atera') | summarize count() by ProcessVersionInfoCompanyName, DeviceName",
    ]
    memory = {"DeviceProcessEvents": table}
    for threads in (1, 2):
        want = [r.to_pylist() for r in rmmhunt.query_many(queries, memory, threads=threads)]
        file = {"DeviceProcessEvents": rmmhunt.read(str(path), table="DeviceProcessEvents")}
        got = [r.to_pylist() for r in rmmhunt.query_many(queries, file, threads=threads)]
        alone = [
            rmmhunt.query(q, {"DeviceProcessEvents": rmmhunt.read(str(path))}, threads=threads)
            for q in queries
        ]
        assert got == want
        assert [r.to_pylist() for r in alone] == want
    assert want[0] == [{"Count": sum(c.startswith("AnyDesk") for c in company)}]
    assert want[2] == [{"Count": company.count("Atera Networks")}]


def test_errors_stay_with_their_query(tables):
    now = sample.bundled_now()
    good = "DeviceProcessEvents | where FileName has 'AnyDesk' | count"
    bad = "DeviceProcessEvents | where NoSuchColumn has 'x' | count"
    out = rmmhunt.query_many([good, bad, "print 1 +", good], tables, now=now, return_exceptions=True)
    assert out[0].to_pylist() == out[3].to_pylist() == rmmhunt.query(good, tables, now=now).to_pylist()
    assert isinstance(out[1], rmmhunt.KqlSemanticError) and "NoSuchColumn" in str(out[1])
    assert isinstance(out[2], rmmhunt.KqlSyntaxError)
    with pytest.raises(rmmhunt.KqlSemanticError, match="NoSuchColumn"):
        rmmhunt.query_many([good, bad], tables, now=now)
    assert rmmhunt.query_many([], tables) == []


def test_threads_option(tables):
    now = sample.bundled_now()
    q = next(r.query for r in pack() if "83f7b313" in r.id or "ConnectWise" in r.name)
    one = rmmhunt.query(q, tables, now=now, threads=1).to_pylist()
    assert rmmhunt.query(q, tables, now=now, threads=2).to_pylist() == one
    assert rmmhunt.query_many([q], tables, now=now, threads=2)[0].to_pylist() == one
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads"):
            rmmhunt.query("print 1", threads=bad)  # type: ignore[arg-type]


def test_threads_environment_variable(monkeypatch):
    """RMMHUNT_THREADS pins the default; a value that is not a positive whole number is an
    error naming it (it used to mean every core, silently)."""
    monkeypatch.setenv("RMMHUNT_THREADS", "1")
    assert rmmhunt.query("print x = 1").to_pylist() == [{"x": 1}]
    monkeypatch.setenv("RMMHUNT_THREADS", " ")
    assert rmmhunt.query("print x = 1").to_pylist() == [{"x": 1}]
    for bad in ("0", "-1", "abc", "2.5"):
        monkeypatch.setenv("RMMHUNT_THREADS", bad)
        with pytest.raises(ValueError, match=f"RMMHUNT_THREADS .* not \"{re.escape(bad)}\""):
            rmmhunt.query("print x = 1")
        with pytest.raises(ValueError, match="RMMHUNT_THREADS"):
            rmmhunt.query_many(["print x = 1"])
        assert rmmhunt.query("print x = 1", threads=1).to_pylist() == [{"x": 1}]


def _count_in_child(queue) -> None:  # runs in a forked child
    import pyarrow as pa

    t = pa.table({"x": pa.array(range(300_000), pa.int64())})
    got = rmmhunt.query("T | where x % 7 == 0 | count", {"T": t}, threads=2)
    queue.put(got.to_pylist())


def test_scan_threads_survive_fork():
    """The scan threads are a pool kept between queries; a child forked after the parent
    used it (``multiprocessing`` on Linux) has none of its threads and must not wait on
    them: it builds its own."""
    import multiprocessing

    import pyarrow as pa

    t = pa.table({"x": pa.array(range(300_000), pa.int64())})  # three morsels
    want = rmmhunt.query("T | where x % 7 == 0 | count", {"T": t}, threads=2).to_pylist()
    assert want == [{"Count": 42858}]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_count_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("a forked child hung on the parent's scan threads")
    assert child.exitcode == 0
    assert queue.get(timeout=5) == want


def test_more_threads_than_a_pool_holds():
    """A pool keeps at most 256 threads: a huge ``threads=`` runs on those."""
    import pyarrow as pa

    t = pa.table({"x": pa.array(range(300_000), pa.int64())})
    got = rmmhunt.query("T | where x % 7 == 0 | count", {"T": t}, threads=100_000)
    assert got.to_pylist() == [{"Count": 42858}]


def test_time_ranges_from_parquet_equal_in_memory(tmp_path):
    """From Parquet the reader drops rows while decoding, leaving a member's time range to
    the engine when the member also tests strings: rows outside the window still never
    come out, alone or in one pass, and a time-only filter still filters."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    start = dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)
    n = 4000
    companies = ["ConnectWise, Inc.", "Microsoft Corporation", "", "ScreenConnect"]
    table = pa.table(
        {
            # Ten days, out of order within each row group (no pruning by statistics alone).
            "Timestamp": pa.array(
                [start + dt.timedelta(minutes=(i * 7919) % (10 * 24 * 60)) for i in range(n)],
                pa.timestamp("us", tz="UTC"),
            ),
            "ProcessVersionInfoCompanyName": [companies[i % 4] for i in range(n)],
            "DeviceName": [f"host-{i % 13}" for i in range(n)],
        }
    )
    path = tmp_path / "DeviceProcessEvents.parquet"
    pq.write_table(table, path, row_group_size=1000, data_page_size=2048)
    queries = [
        "DeviceProcessEvents | where Timestamp between (datetime(2024-06-03) .. datetime(2024-06-05))"
        " | where ProcessVersionInfoCompanyName has_any ('ConnectWise', 'ScreenConnect')"
        " | summarize Count=count(), First=min(Timestamp) by DeviceName | order by DeviceName",
        "DeviceProcessEvents | where Timestamp > datetime(2024-06-09) | count",
        "DeviceProcessEvents | where Timestamp < datetime(2024-06-02) and isempty(ProcessVersionInfoCompanyName)"
        " | count",
    ]
    files = {"DeviceProcessEvents": rmmhunt.read(str(path))}
    memory = {"DeviceProcessEvents": table}
    in_memory = [rmmhunt.query(q, memory).to_pylist() for q in queries]
    assert 0 < in_memory[1][0]["Count"] < n and in_memory[0]
    for q, want in zip(queries, in_memory, strict=True):
        assert rmmhunt.query(q, files).to_pylist() == want, q
    together = rmmhunt.query_many(queries, files)
    assert [r.to_pylist() for r in together] == in_memory
