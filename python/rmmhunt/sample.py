"""Deterministic synthetic Defender data, with planted RMM events and decoys.

``sample()`` builds one of the three Defender tables the rule pack reads
(``DeviceProcessEvents``, ``DeviceNetworkEvents``, ``DeviceFileCertificateInfo``) with every
documented column, typed as in ``data/schemas.json``: ``string`` -> ``pa.string()``,
``long`` -> ``int64``, ``int`` -> ``int32``, ``bool`` -> ``bool_``, ``datetime`` ->
``timestamp("us", tz="UTC")``, ``dynamic`` -> JSON text.

The background is a plausible office estate: a few hundred devices (``wks-0042.contoso.local``,
``srv-sql-03.contoso.local``), their users and service accounts, common Windows processes with
their real folders, command lines and version information, vendors' signers and the web and
Microsoft endpoints they talk to. None of it matches a rule of the pack.

With ``plant=True`` every rule of the pack whose table is being generated gets three planted
events (two on one device with the same account, one on another device), built from the rule's
own filters and satisfying its ``and``/``or`` logic (for ``or``, each event satisfies one branch
only). With ``decoys=True`` every rule also gets one decoy: a copy of its first planted event in
which each indicator is glued into a longer term (``ScreenConnectorz``, ``xanydesk.com``,
``levelorz.exe``) so that it matches no rule. Every planted event and every decoy is checked
against every rule with a reference implementation of Kusto's ``has`` term rule.

The planted events and decoys depend on ``seed``, ``start`` and ``days`` but not on ``rows``:
``planted()``, ``decoys()`` and ``expected_findings()`` give the ground truth. The two DWService
rules join to ``DeviceFileCertificateInfo`` (``SHA1 in (files signed by DWSNET OÜ)``): their
planted events match only when that table is generated with the same seed.

numpy and pyarrow are imported by the functions that need them, not by ``import rmmhunt``.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import importlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "BUNDLED_ROWS",
    "TABLES",
    "bundled",
    "bundled_now",
    "decoys",
    "expected_findings",
    "planted",
    "sample",
    "schema",
    "write_sample",
]

TABLES = ("DeviceProcessEvents", "DeviceNetworkEvents", "DeviceFileCertificateInfo")
_TABLE_CODE = {name: i + 1 for i, name in enumerate(TABLES)}
_DATA = Path(__file__).resolve().parent / "data"
_BUNDLED = _DATA / "sample"
# The bundled default dataset (data/sample/<table>.parquet, made by scripts/build_sample.py)
BUNDLED_ROWS = {
    "DeviceProcessEvents": 20_000,
    "DeviceNetworkEvents": 10_000,
    "DeviceFileCertificateInfo": 10_000,
}
BUNDLED_SEED = 0
BUNDLED_START = "2024-06-01T00:00:00Z"
BUNDLED_DAYS = 5
_UTC = _dt.timezone.utc
_US = 1_000_000
_EVENTS_PER_RULE = 3
_CHUNK = 1 << 21  # rows per Arrow chunk

# ======================================================================================
# Reference matching (SEMANTICS.md 1.2): terms are maximal runs of alphanumerics
# ======================================================================================


def _fold(text: str) -> str:
    """Simple (one-to-one) case mapping, so that indexes do not move."""
    if text.isascii():
        return text.lower()
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def _has(hay: str | None, needle: str) -> bool:
    if needle == "":
        return True
    h, n = _fold(hay or ""), _fold(needle)
    left_term, right_term = n[0].isalnum(), n[-1].isalnum()
    start = h.find(n)
    while start >= 0:
        end = start + len(n)
        if (not left_term or start == 0 or not h[start - 1].isalnum()) and (
            not right_term or end == len(h) or not h[end].isalnum()
        ):
            return True
        start = h.find(n, start + 1)
    return False


def _filter_true(flt: Mapping[str, Any], value: Any, sets: Mapping[str, frozenset[str]]) -> bool:
    op = flt["operator"]
    text = "" if value is None else str(value)
    if op == "has":
        return _has(text, flt["values"][0])
    if op == "has_any":
        return any(_has(text, v) for v in flt["values"])
    if op == "isempty":
        return text == ""
    if op == "startswith":
        return _fold(text).startswith(_fold(flt["values"][0]))
    if op == "=~":
        return _fold(text) == _fold(flt["values"][0])
    if op == "in":
        return text in sets.get(flt["values_from"]["let"], frozenset())
    raise ValueError(f"unsupported operator {op!r}")


@functools.cache
def parse_logic(logic: str) -> Any:
    """The boolean structure of a pack rule's ``x_rmmhunt.match.logic``:
    ``"0 and (1 or 2)"`` -> ``("and", [0, ("or", [1, 2])])``."""
    toks = re.findall(r"\d+|and|or|\(|\)", logic)
    pos = 0

    def expr() -> Any:
        nonlocal pos
        items = [term()]
        while pos < len(toks) and toks[pos] == "or":
            pos += 1
            items.append(term())
        return items[0] if len(items) == 1 else ("or", items)

    def term() -> Any:
        nonlocal pos
        items = [atom()]
        while pos < len(toks) and toks[pos] == "and":
            pos += 1
            items.append(atom())
        return items[0] if len(items) == 1 else ("and", items)

    def atom() -> Any:
        nonlocal pos
        tok = toks[pos]
        pos += 1
        if tok == "(":
            inner = expr()
            pos += 1
            return inner
        return int(tok)

    tree = expr()
    if pos != len(toks):
        raise ValueError(f"bad logic {logic!r}")
    return tree


def logic_value(tree: Any, truth: Sequence[bool]) -> bool:
    """Evaluates a tree from :func:`parse_logic` over the filters' truth values."""
    if isinstance(tree, int):
        return truth[tree]
    op, items = tree
    vals = (logic_value(t, truth) for t in items)
    return all(vals) if op == "and" else any(vals)


def _rule_matches(
    rule: Mapping[str, Any], row: Mapping[str, Any], sets: Mapping[str, frozenset[str]]
) -> bool:
    match = rule["x_rmmhunt"]["match"]
    truth = [_filter_true(f, row.get(f["column"]), sets) for f in match["filters"]]
    return logic_value(parse_logic(match["logic"]), truth)


def _minimal_assignments(logic: str, n: int) -> list[frozenset[int]]:
    """Smallest sets of filters whose truth alone (others false) satisfies the logic."""
    tree = parse_logic(logic)
    sats = []
    for mask in range(1 << n):
        truth = [bool(mask >> i & 1) for i in range(n)]
        if logic_value(tree, truth):
            sats.append(frozenset(i for i in range(n) if truth[i]))
    return sorted(
        (s for s in sats if not any(o < s for o in sats)),
        key=lambda s: (len(s), sorted(s)),
    )


def _group_key(rule: Mapping[str, Any], row: Mapping[str, Any]) -> dict[str, Any]:
    x = rule["x_rmmhunt"]
    out = {c: row.get(c) for c in x["group_by"]}
    if x.get("post_steps") and "RemoteUrl" in out:
        url = re.sub(r"^(?:http[s]?://)+", "", out["RemoteUrl"] or "")
        out["RemoteUrl"] = url.split("/")[0].split(":")[0]
    return out


# ======================================================================================
# Pack and schemas
# ======================================================================================


@functools.lru_cache(maxsize=1)
def _pack() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((_DATA / "pack.json").read_text(encoding="utf-8"))
    return data


@functools.lru_cache(maxsize=1)
def _schemas() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((_DATA / "schemas.json").read_text(encoding="utf-8"))
    return data


def _rules(table: str) -> list[dict[str, Any]]:
    return [r for r in _pack()["rules"] if r["x_rmmhunt"]["table"] == table]


def _columns(table: str) -> list[tuple[str, str]]:
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}")
    return [(c["name"], c["type"]) for c in _schemas()["tables"][table]["columns"]]


def schema(table: str = "DeviceProcessEvents") -> pa.Schema:
    """The Arrow schema of a generated table: every documented column, in documented order."""
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "dynamic": pa.string(),
        "long": pa.int64(),
        "int": pa.int32(),
        "bool": pa.bool_(),
        "datetime": pa.timestamp("us", tz="UTC"),
    }
    return pa.schema([pa.field(name, types[kusto]) for name, kusto in _columns(table)])


# ======================================================================================
# Reference pools of the background
# ======================================================================================


@dataclass(frozen=True)
class _Proc:
    name: str
    folder: str
    company: str
    product: str
    description: str
    version: str
    account: str  # "svc" (service accounts), "user", "any"
    w_proc: float  # weight as a created process (DeviceProcessEvents)
    w_net: float  # weight as a connecting process (DeviceNetworkEvents)
    signer_type: str
    parents: tuple[str, ...]
    cmds: tuple[str, ...]
    dest: str = "ms"
    signer: str = ""
    builds: int = 2
    original: str = ""
    internal: str = ""


@functools.lru_cache(maxsize=1)
def _pools() -> dict[str, Any]:
    """The background's value pools (data/sample_pools.json)."""
    data: dict[str, Any] = json.loads((_DATA / "sample_pools.json").read_text(encoding="utf-8"))
    procs = []
    for item in data["processes"]:
        fields = dict(item)
        fields["parents"] = tuple(fields["parents"])
        fields["cmds"] = tuple(fields["cmds"])
        procs.append(_Proc(**fields))
    data["procs"] = tuple(procs)
    return data


def _procs() -> tuple[_Proc, ...]:
    procs: tuple[_Proc, ...] = _pools()["procs"]
    return procs


_N_DEVICES = 300
_N_SERVERS = 36
_N_USERS = 320

# ======================================================================================
# Small deterministic helpers
# ======================================================================================


def _hexdigest(kind: str, *parts: object) -> str:
    data = "|".join(str(p) for p in parts).encode("utf-8")
    return hashlib.new(kind, data).hexdigest()


def _guid(*parts: object) -> str:
    h = _hexdigest("md5", "guid", *parts)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def _ip(*parts: object, private: bool = False) -> str:
    h = int(_hexdigest("sha1", "ip", *parts)[:8], 16)
    if private:
        return f"10.{16 + (h >> 16) % 16}.{(h >> 8) & 255}.{1 + h % 250}"
    first = (13, 20, 23, 34, 40, 52, 104, 142, 151, 172, 185, 199)[h % 12]
    return f"{first}.{(h >> 16) & 255}.{(h >> 8) & 255}.{1 + h % 250}"


def _parse_start(start: str | _dt.datetime) -> int:
    if isinstance(start, _dt.datetime):
        when = start
    else:
        text = start.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        when = _dt.datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=_UTC)
    delta = when - _dt.datetime(1970, 1, 1, tzinfo=_UTC)
    return (delta.days * 86_400 + delta.seconds) * _US + delta.microseconds


def _to_datetime(us: int) -> _dt.datetime:
    return _dt.datetime(1970, 1, 1, tzinfo=_UTC) + _dt.timedelta(microseconds=us)


# ======================================================================================
# The world: devices, accounts, process builds, signed files
# ======================================================================================


@dataclass
class _World:
    dev_id: list[str]
    dev_name: list[str]
    dev_ip: list[str]
    dev_user: Any  # ndarray: account index of the device's main user
    dev_server: Any  # ndarray[bool]
    dev_weight: Any  # ndarray[float]
    acc_name: list[str]
    acc_domain: list[str]
    acc_sid: list[str]
    acc_upn: list[str]
    acc_oid: list[str]
    # process builds (one process has several builds with their own hashes)
    b_proc: Any  # ndarray: build -> process index
    b_sha1: list[str]
    b_sha256: list[str]
    b_md5: list[str]
    b_size: Any  # ndarray[int64]
    b_version: list[str]
    p_build_off: Any
    p_build_n: Any


@functools.lru_cache(maxsize=8)
def _world(seed: int) -> _World:
    import numpy as np

    rng = np.random.default_rng([seed, 0x57])
    n_users = _N_USERS
    first_names, last_names = _pools()["first_names"], _pools()["last_names"]
    pairs = rng.permutation(len(first_names) * len(last_names))[:n_users]
    names: list[tuple[str, str]] = [
        (first_names[i // len(last_names)], last_names[i % len(last_names)]) for i in pairs.tolist()
    ]
    acc_name = ["system", "local service", "network service"]
    acc_domain = ["nt authority"] * 3
    acc_sid = ["S-1-5-18", "S-1-5-19", "S-1-5-20"]
    acc_upn = ["", "", ""]
    acc_oid = ["", "", ""]
    seen: set[str] = set()
    for i, (first, last) in enumerate(names):
        sam = (first[0] + last)[:20]
        while sam in seen:
            sam = sam + "2"
        seen.add(sam)
        acc_name.append(sam)
        acc_domain.append("contoso")
        acc_sid.append(f"S-1-5-21-1004336348-1177238915-682003330-{1107 + 3 * i}")
        acc_upn.append(f"{first}.{last}@contoso.com")
        acc_oid.append(_guid(seed, "user", sam))

    n_wks = _N_DEVICES - _N_SERVERS
    dev_name = [f"wks-{i:04d}.contoso.local" for i in sorted(rng.choice(9000, n_wks, replace=False) + 1)]
    roles = _pools()["server_roles"]
    for i in range(_N_SERVERS):
        role = roles[i % len(roles)]
        dev_name.append(f"srv-{role}-{i // len(roles) + 1:02d}.contoso.local")
    dev_id = [bytes(rng.integers(0, 256, 20, dtype=np.uint8)).hex() for _ in dev_name]
    dev_ip = [_ip(seed, "dev", n, private=True) for n in dev_name]
    dev_server = np.array([n.startswith("srv-") for n in dev_name])
    users = 3 + rng.permutation(n_users)[: len(dev_name)]
    admins = 3 + np.arange(12)
    dev_user = np.where(dev_server, admins[np.arange(len(dev_name)) % 12], users)
    dev_weight = rng.lognormal(0.0, 0.6, len(dev_name)) * np.where(dev_server, 2.5, 1.0)

    b_proc: list[int] = []
    b_sha1: list[str] = []
    b_sha256: list[str] = []
    b_md5: list[str] = []
    b_size: list[int] = []
    b_version: list[str] = []
    off: list[int] = []
    cnt: list[int] = []
    for p, proc in enumerate(_procs()):
        off.append(len(b_proc))
        cnt.append(proc.builds)
        for b in range(proc.builds):
            b_proc.append(p)
            b_sha1.append(_hexdigest("sha1", seed, "build", proc.name, b))
            b_sha256.append(_hexdigest("sha256", seed, "build", proc.name, b))
            b_md5.append(_hexdigest("md5", seed, "build", proc.name, b))
            h = int(b_sha1[-1][:6], 16)
            b_size.append(40_000 + h % 4_000_000)
            ver = proc.version
            if ver and b:
                head, _, tail = ver.rpartition(".")
                ver = f"{head}.{int(tail) + 17 * b}" if tail.isdigit() else ver
            b_version.append(ver)
    return _World(
        dev_id=dev_id,
        dev_name=dev_name,
        dev_ip=dev_ip,
        dev_user=dev_user,
        dev_server=dev_server,
        dev_weight=dev_weight,
        acc_name=acc_name,
        acc_domain=acc_domain,
        acc_sid=acc_sid,
        acc_upn=acc_upn,
        acc_oid=acc_oid,
        b_proc=np.array(b_proc),
        b_sha1=b_sha1,
        b_sha256=b_sha256,
        b_md5=b_md5,
        b_size=np.array(b_size, dtype=np.int64),
        b_version=b_version,
        p_build_off=np.array(off),
        p_build_n=np.array(cnt),
    )


# ======================================================================================
# Column blocks: every column is a pool of values + indices, or a numeric array
# ======================================================================================


@dataclass
class _D:
    """A string column as pool + int32 indices (None in the pool is a null)."""

    pool: list[Any]  # str, or None for a null
    idx: Any


@dataclass
class _N:
    """A numeric/bool/timestamp column; ``as_text`` turns integers into strings at the end."""

    values: Any
    mask: Any = None
    as_text: bool = False


_Block = dict[str, Any]


def _pick(rng: Any, weights: Any, n: int) -> Any:
    import numpy as np

    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    out = np.searchsorted(cdf / cdf[-1], rng.random(n), side="right")
    return np.minimum(out, len(cdf) - 1).astype(np.int32)


def _ragged(rng: Any, offsets: Any, counts: Any, keys: Any) -> Any:
    import numpy as np

    r = rng.integers(0, 1 << 30, len(keys))
    return (offsets[keys] + r % np.maximum(counts[keys], 1)).astype(np.int32)


def _flat(lists: Sequence[Sequence[Any]]) -> tuple[list[Any], Any, Any]:
    import numpy as np

    pool: list[Any] = []
    off: list[int] = []
    cnt: list[int] = []
    for items in lists:
        off.append(len(pool))
        cnt.append(len(items))
        pool.extend(items)
    return pool, np.array(off, dtype=np.int64), np.array(cnt, dtype=np.int64)


@functools.lru_cache(maxsize=1)
def _proc_tables() -> dict[str, Any]:
    """Lookup arrays over _procs(): parents, command lines, accounts."""
    import numpy as np

    index = {p.name: i for i, p in enumerate(_procs())}
    parents = [[index[n] for n in p.parents if n in index] or [index["services.exe"]] for p in _procs()]
    par_pool, par_off, par_cnt = _flat(parents)
    cmd_pool, cmd_off, cmd_cnt = _flat([list(p.cmds) for p in _procs()])
    grand = [p.parents[0] if p.parents else "" for p in _procs()]
    return {
        "index": index,
        "par_pool": np.array(par_pool, dtype=np.int64),
        "par_off": par_off,
        "par_cnt": par_cnt,
        "cmd_pool": cmd_pool,
        "cmd_off": cmd_off,
        "cmd_cnt": cmd_cnt,
        "grand": grand,
        "account": np.array([{"svc": 0, "user": 1, "any": 2}[p.account] for p in _procs()]),
        "w_proc": np.array([p.w_proc for p in _procs()]),
        "w_net": np.array([p.w_net for p in _procs()]),
    }


def _accounts(rng: Any, world: _World, proc: Any, dev: Any) -> Any:
    import numpy as np

    n = len(proc)
    kind = _proc_tables()["account"][proc]
    other = 3 + rng.integers(0, len(world.acc_name) - 3, n)
    user = np.where(rng.random(n) < 0.93, world.dev_user[dev], other)
    u = rng.random(n)
    service = np.where(u < 0.8, 0, np.where(u < 0.9, 1, 2))
    anyone = np.where(rng.random(n) < 0.5, user, service)
    return np.where(kind == 1, user, np.where(kind == 0, service, anyone))


def _process_columns(
    prefix: str,
    world: _World,
    builds: Any,
    proc: Any,
    cmd: Any,
    *,
    with_path_name: bool = True,
) -> _Block:
    """Image columns of a process (created process with prefix "", initiating otherwise)."""
    t = _proc_tables()
    names = [p.name for p in _procs()]
    p_of_b = world.b_proc.tolist()
    cols: _Block = {}
    vi = "ProcessVersionInfo" if prefix == "" else "InitiatingProcessVersionInfo"
    file_col = "FileName" if prefix == "" else "InitiatingProcessFileName"
    folder_col = "FolderPath" if prefix == "" else "InitiatingProcessFolderPath"
    procs = _procs()
    if with_path_name:
        cols[file_col] = _D(list(names), proc)
        cols[folder_col] = _D([p.folder + p.name for p in _procs()], proc)
    cols[prefix + "SHA1"] = _D(list(world.b_sha1), builds)
    cols[prefix + "SHA256"] = _D(list(world.b_sha256), builds)
    cols[prefix + "MD5"] = _D(list(world.b_md5), builds)
    cols[prefix + "FileSize"] = _N(world.b_size[builds])
    cols[vi + "CompanyName"] = _D([p.company for p in _procs()], proc)
    cols[vi + "ProductName"] = _D([p.product for p in _procs()], proc)
    cols[vi + "ProductVersion"] = _D(list(world.b_version), builds)
    cols[vi + "InternalFileName"] = _D(
        [procs[p].internal or (procs[p].name if procs[p].company else "") for p in p_of_b],
        builds,
    )
    cols[vi + "OriginalFileName"] = _D(
        [procs[p].original or (procs[p].name if procs[p].company else "") for p in p_of_b],
        builds,
    )
    cols[vi + "FileDescription"] = _D([p.description for p in _procs()], proc)
    cols[("Process" if prefix == "" else "InitiatingProcess") + "CommandLine"] = _D(list(t["cmd_pool"]), cmd)
    return cols


def _identity_columns(prefix: str, world: _World, acc: Any, dev: Any, rng: Any) -> _Block:
    import numpy as np

    n = len(acc)
    system = acc < 3
    high = rng.random(n) < 0.15
    integrity = np.where(system, 0, np.where(high, 2, 1))
    logon = np.where(
        acc == 0,
        999,
        np.where(
            acc == 1,
            997,
            np.where(acc == 2, 996, 100_000 + (dev * 7919 + acc * 104_729) % 9_000_000),
        ),
    ).astype(np.int64)
    p = prefix
    return {
        p + "AccountDomain": _D(list(world.acc_domain), acc),
        p + "AccountName": _D(list(world.acc_name), acc),
        p + "AccountSid": _D(list(world.acc_sid), acc),
        p + "AccountUpn": _D(list(world.acc_upn), acc),
        p + "AccountObjectId": _D(list(world.acc_oid), acc),
        p + "LogonId": _N(logon),
        p + "IntegrityLevel": _D(["System", "Medium", "High"], integrity),
        p + "TokenElevation": _D(
            [
                "TokenElevationTypeDefault",
                "TokenElevationTypeLimited",
                "TokenElevationTypeFull",
            ],
            integrity,
        ),
    }


def _session_columns(world: _World, acc: Any, dev: Any, rng: Any, *, created: bool) -> _Block:
    import numpy as np

    n = len(acc)
    session = np.where(acc < 3, 0, 1 + dev % 3).astype(np.int64)
    remote = world.dev_server[dev] & (acc >= 3) & (rng.random(n) < 0.7)
    admin = rng.integers(0, 10, n)
    names = [""] + world.dev_name[:10]
    ips = [""] + world.dev_ip[:10]
    ridx = np.where(remote, 1 + admin, 0)
    cols: _Block = {
        "InitiatingProcessSessionId": _N(session),
        "IsInitiatingProcessRemoteSession": _N(remote),
        "InitiatingProcessRemoteSessionDeviceName": _D(names, ridx),
        "InitiatingProcessRemoteSessionIP": _D(ips, ridx),
    }
    if created:
        cols.update(
            {
                "CreatedProcessSessionId": _N(session.copy()),
                "IsProcessRemoteSession": _N(remote.copy()),
                "ProcessRemoteSessionDeviceName": _D(list(names), ridx),
                "ProcessRemoteSessionIP": _D(list(ips), ridx),
            }
        )
    return cols


def _common(world: _World, dev: Any, ts: Any, rng: Any) -> _Block:
    import numpy as np

    return {
        "Timestamp": _N(ts),
        "DeviceId": _D(list(world.dev_id), dev),
        "DeviceName": _D(list(world.dev_name), dev),
        "ReportId": _N(rng.integers(1_000, 1 << 39, len(ts), dtype=np.int64)),
    }


def _block_process(world: _World, dev: Any, ts: Any, rng: Any, acc: Any | None) -> _Block:
    import numpy as np

    t = _proc_tables()
    n = len(ts)
    proc = _pick(rng, t["w_proc"], n)
    if acc is None:
        acc = _accounts(rng, world, proc, dev)
    builds = _ragged(rng, world.p_build_off, world.p_build_n, proc)
    cmd = _ragged(rng, t["cmd_off"], t["cmd_cnt"], proc)
    parent = t["par_pool"][_ragged(rng, t["par_off"], t["par_cnt"], proc)]
    pbuilds = _ragged(rng, world.p_build_off, world.p_build_n, parent)
    pcmd = _ragged(rng, t["cmd_off"], t["cmd_cnt"], parent)
    cols = _common(world, dev, ts, rng)
    cols["ActionType"] = _D(["ProcessCreated"], np.zeros(n, dtype=np.int64))
    cols.update(_process_columns("", world, builds, proc, cmd))
    cols["ProcessId"] = _N(rng.integers(1, 16_000, n, dtype=np.int64) * 4)
    cols["ProcessCreationTime"] = _N(ts - rng.integers(0, 2_000, n))
    cols.update(_identity_columns("Process", world, acc, dev, rng))
    cols.update(_identity_columns("InitiatingProcess", world, acc, dev, rng))
    # the created process runs with the creator's token: same integrity and elevation
    cols["InitiatingProcessIntegrityLevel"] = _D(
        list(cols["ProcessIntegrityLevel"].pool), cols["ProcessIntegrityLevel"].idx
    )
    cols["InitiatingProcessTokenElevation"] = _D(
        list(cols["ProcessTokenElevation"].pool), cols["ProcessTokenElevation"].idx
    )
    for name in ("Domain", "Name", "Sid", "Upn", "ObjectId"):
        cols["Account" + name] = cols.pop("ProcessAccount" + name)
    cols["LogonId"] = cols.pop("ProcessLogonId")
    cols.update(_process_columns("InitiatingProcess", world, pbuilds, parent, pcmd))
    _initiating_rest(cols, world, parent, ts, rng)
    cols["AppGuardContainerId"] = _D([""], np.zeros(n, dtype=np.int64))
    extra = ['{"ProcessStartKey":844424930131969}', '{"IsUserElevated":false}']
    cols["AdditionalFields"] = _D([None, *extra], np.where(rng.random(n) < 0.9, 0, 1 + rng.integers(0, 2, n)))
    cols.update(_session_columns(world, acc, dev, rng, created=True))
    cols["ProcessUniqueId"] = _N(rng.integers(10**15, 10**16, n, dtype=np.int64), as_text=True)
    cols["InitiatingProcessUniqueId"] = _N(rng.integers(10**15, 10**16, n, dtype=np.int64), as_text=True)
    return cols


def _initiating_rest(cols: _Block, world: _World, parent: Any, ts: Any, rng: Any) -> None:
    import numpy as np

    n = len(ts)
    t = _proc_tables()
    created = ts - (rng.exponential(3 * 3600, n) * _US).astype(np.int64) - _US
    cols["InitiatingProcessId"] = _N(rng.integers(1, 16_000, n, dtype=np.int64) * 4)
    cols["InitiatingProcessCreationTime"] = _N(created)
    cols["InitiatingProcessParentId"] = _N(rng.integers(1, 4_000, n, dtype=np.int64) * 4)
    cols["InitiatingProcessParentFileName"] = _D(list(t["grand"]), parent)
    cols["InitiatingProcessParentCreationTime"] = _N(
        created - (rng.exponential(86_400, n) * _US).astype(np.int64) - _US
    )
    signer_types = sorted({p.signer_type for p in _procs()})
    st = np.array([signer_types.index(p.signer_type) for p in _procs()])
    cols["InitiatingProcessSignerType"] = _D(list(signer_types), st[parent])
    status = np.array([1 if p.signer_type == "Unknown" else 0 for p in _procs()])
    cols["InitiatingProcessSignatureStatus"] = _D(["Valid", "Unsigned"], status[parent])


@functools.lru_cache(maxsize=4)
def _dest_tables(seed: int) -> dict[str, Any]:
    import numpy as np

    dests: list[tuple[str, str, int, str, str]] = []
    groups: dict[str, list[int]] = {"ms": [], "web": [], "internal": []}
    pools = _pools()["destinations"]
    for url in pools["ms"]:
        groups["ms"].append(len(dests))
        port = 80 if url.startswith("http://") else 443
        dests.append((url, _ip(seed, url), port, "Tcp", "Public"))
    for url in pools["web"]:
        groups["web"].append(len(dests))
        dests.append((url, _ip(seed, url), 443, "Tcp", "Public"))
    for item in pools["internal"]:
        url, ip, port, proto = item["url"], item["ip"], int(item["port"]), item["protocol"]
        groups["internal"].append(len(dests))
        dests.append((url, ip, port, proto, "Private"))
    lists = {
        "ms": groups["ms"],
        "sys": groups["ms"] * 2 + groups["internal"],
        "web": groups["web"] * 3 + groups["ms"],
        "browser": groups["web"] * 3 + groups["ms"],
        "internal": groups["internal"],
    }
    order = sorted(lists)
    pool, off, cnt = _flat([lists[k] for k in order])
    proc_group = np.array([order.index(p.dest) for p in _procs()])
    return {
        "dests": dests,
        "pool": np.array(pool, dtype=np.int64),
        "off": off,
        "cnt": cnt,
        "proc_group": proc_group,
    }


_NET_ACTIONS = (
    ("ConnectionSuccess", 0.8),
    ("ConnectionFailed", 0.04),
    ("ConnectionRequest", 0.07),
    ("InboundConnectionAccepted", 0.05),
    ("ListeningConnectionCreated", 0.04),
)


def _block_network(world: _World, dev: Any, ts: Any, rng: Any, acc: Any | None, seed: int) -> _Block:
    import numpy as np

    t = _proc_tables()
    d = _dest_tables(seed)
    n = len(ts)
    proc = _pick(rng, t["w_net"], n)
    if acc is None:
        acc = _accounts(rng, world, proc, dev)
    builds = _ragged(rng, world.p_build_off, world.p_build_n, proc)
    cmd = _ragged(rng, t["cmd_off"], t["cmd_cnt"], proc)
    dest = d["pool"][_ragged(rng, d["off"], d["cnt"], d["proc_group"][proc])]
    action = _pick(rng, [w for _, w in _NET_ACTIONS], n)
    listening = action == 4
    inbound = action == 3
    dests = d["dests"]
    cols = _common(world, dev, ts, rng)
    cols["ActionType"] = _D([a for a, _ in _NET_ACTIONS], action)
    ip_pool = [x[1] for x in dests] + ["0.0.0.0"] + list(world.dev_ip)
    ip_idx = np.where(listening, len(dests), dest)
    ip_idx = np.where(inbound, len(dests) + 1 + rng.integers(0, len(world.dev_ip), n), ip_idx)
    cols["RemoteIP"] = _D(ip_pool, ip_idx)
    port = np.array([x[2] for x in dests], dtype=np.int32)[dest]
    ephemeral = rng.integers(49_152, 65_536, n).astype(np.int32)
    cols["RemotePort"] = _N(np.where(listening, 0, np.where(inbound, ephemeral, port)).astype(np.int32))
    url_pool = [x[0] for x in dests] + [""]
    cols["RemoteUrl"] = _D(url_pool, np.where(listening | inbound, len(dests), dest))
    cols["LocalIP"] = _D(list(world.dev_ip), dev)
    cols["LocalPort"] = _N(np.where(listening | inbound, port, ephemeral).astype(np.int32))
    cols["Protocol"] = _D(["Tcp", "Udp"], np.array([x[3] == "Udp" for x in dests], dtype=np.int64)[dest])
    cols["LocalIPType"] = _D(["Private"], np.zeros(n, dtype=np.int64))
    rtype = np.array([0 if x[4] == "Public" else 1 for x in dests])[dest]
    cols["RemoteIPType"] = _D(
        ["Public", "Private", "Unspecified"],
        np.where(listening, 2, np.where(inbound, 1, rtype)),
    )
    cols.update(_process_columns("InitiatingProcess", world, builds, proc, cmd))
    _initiating_rest(cols, world, proc, ts, rng)
    # the connecting process is the initiating process: its parent is the process' parent
    parent = t["par_pool"][_ragged(rng, t["par_off"], t["par_cnt"], proc)]
    cols["InitiatingProcessParentFileName"] = _D([p.name for p in _procs()], parent)
    cols.update(_identity_columns("InitiatingProcess", world, acc, dev, rng))
    cols["AppGuardContainerId"] = _D([""], np.zeros(n, dtype=np.int64))
    cols["AdditionalFields"] = _D(
        [None, '{"direction":"Out"}', '{"direction":"In"}'],
        np.where(rng.random(n) < 0.85, 0, np.where(inbound, 2, 1)),
    )
    cols.update(_session_columns(world, acc, dev, rng, created=False))
    return cols


@functools.lru_cache(maxsize=4)
def _file_tables(seed: int) -> dict[str, Any]:
    """Signed (and a few unsigned) files seen by DeviceFileCertificateInfo."""
    import numpy as np

    world = _world(seed)
    procs = _procs()
    others = [(x["signer"], x["issuer"], int(x["files"])) for x in _pools()["signers"]]
    signers: list[tuple[str, str]] = [(s, i) for s, i, _ in others]
    s_index = {s: k for k, (s, _) in enumerate(signers)}
    f_sha1: list[str] = []
    f_signer: list[int] = []
    f_weight: list[float] = []
    for b, p in enumerate(world.b_proc.tolist()):
        proc = procs[p]
        f_sha1.append(world.b_sha1[b])
        f_signer.append(s_index.get(proc.signer, -1) if proc.signer else -1)
        f_weight.append(1.0 + proc.w_proc + proc.w_net)
    for s, _, n_files in others:
        for k in range(n_files):
            f_sha1.append(_hexdigest("sha1", seed, "file", s, k))
            f_signer.append(s_index[s])
            f_weight.append(1.5 if s.startswith("Microsoft") else 0.6)
    for k in range(25):
        f_sha1.append(_hexdigest("sha1", seed, "unsigned", k))
        f_signer.append(-1)
        f_weight.append(0.3)
    return {
        "signers": signers,
        "f_sha1": f_sha1,
        "f_signer": np.array(f_signer),
        "f_weight": np.array(f_weight),
    }


def _signer_columns(seed: int, signers: Sequence[tuple[str, str]], sig: Any, start_us: int) -> _Block:
    """Certificate columns for signer indexes ``sig`` (-1: unsigned) into ``signers``."""
    import numpy as np

    crl = _pools()["crl"]
    k = np.where(sig < 0, len(signers), sig)
    names = [s for s, _ in signers] + [""]
    issuers = [i for _, i in signers] + [""]
    created = []
    for s, _ in signers:
        h = int(_hexdigest("sha1", seed, "cert", s)[:8], 16)
        created.append(start_us - (200 + h % 900) * 86_400 * _US - (h % 86_400) * _US)
    created_arr = np.array(created + [0], dtype=np.int64)
    expires = created_arr + np.array(
        [(365 * (1 + i % 3)) * 86_400 * _US for i in range(len(created))] + [0],
        dtype=np.int64,
    )
    unsigned = sig < 0
    return {
        "IsSigned": _N(~unsigned),
        "SignatureType": _D(
            ["Embedded", "Catalog", ""],
            np.where(
                unsigned,
                2,
                np.array([1 if s == "Microsoft Windows" else 0 for s, _ in signers] + [2])[k],
            ),
        ),
        "Signer": _D(names, k),
        "SignerHash": _D([_hexdigest("sha1", "signer", s) for s, _ in signers] + [""], k),
        "Issuer": _D(issuers, k),
        "IssuerHash": _D([_hexdigest("sha1", "issuer", i) for _, i in signers] + [""], k),
        "CertificateSerialNumber": _D(
            [_hexdigest("md5", seed, "serial", s)[:32] for s, _ in signers] + [""], k
        ),
        "CrlDistributionPointUrls": _D(
            [json.dumps([crl[i]]) if i in crl else None for _, i in signers] + [None],
            k,
        ),
        "CertificateCreationTime": _N(created_arr[k], mask=unsigned),
        "CertificateExpirationTime": _N(expires[k], mask=unsigned),
        "IsTrusted": _N(~unsigned),
        "IsRootSignerMicrosoft": _N(np.array([s.startswith("Microsoft") for s, _ in signers] + [False])[k]),
    }


def _block_certs(world: _World, dev: Any, ts: Any, rng: Any, seed: int, start_us: int) -> _Block:
    import numpy as np

    f = _file_tables(seed)
    n = len(ts)
    files = _pick(rng, f["f_weight"], n)
    sig = f["f_signer"][files]
    cols = _common(world, dev, ts, rng)
    cols["SHA1"] = _D(list(f["f_sha1"]), files)
    cols.update(_signer_columns(seed, f["signers"], sig, start_us))
    counter = ts - (rng.exponential(200 * 86_400, n) * _US).astype(np.int64)
    cols["CertificateCountersignatureTime"] = _N(counter, mask=(sig < 0) | (rng.random(n) < 0.2))
    return cols


def _block(
    table: str,
    seed: int,
    world: _World,
    dev: Any,
    ts: Any,
    rng: Any,
    start_us: int,
    acc: Any | None = None,
) -> _Block:
    if table == "DeviceProcessEvents":
        return _block_process(world, dev, ts, rng, acc)
    if table == "DeviceNetworkEvents":
        return _block_network(world, dev, ts, rng, acc, seed)
    return _block_certs(world, dev, ts, rng, seed, start_us)


def _timestamps(rng: Any, n: int, start_us: int, days: float) -> Any:
    """Sorted event times; most fall in office hours (07:00-19:00 UTC)."""
    import numpy as np

    span = int(days * 86_400 * _US)
    uniform = rng.integers(0, max(span, 1), n)
    day = rng.integers(0, max(int(days), 1), n) * 86_400 * _US
    office = day + rng.integers(7 * 3600 * _US, 19 * 3600 * _US, n)
    ts = np.where((rng.random(n) < 0.7) & (office < span), office, uniform)
    ts.sort()
    return ts.astype(np.int64) + start_us


# ======================================================================================
# Planted events and decoys
# ======================================================================================

_COMPANY = ("ProcessVersionInfoCompanyName", "InitiatingProcessVersionInfoCompanyName")
_PRODUCT = ("ProcessVersionInfoProductName", "InitiatingProcessVersionInfoProductName")
_MAC_TOOLS = frozenset({"Addigy"})
_HOST_FOR = {"atera-agent-heartbeat": "atera-agent-heartbeat.servicebus.windows.net"}
_NEUTRAL = {
    "company": "Contoso Support Services",
    "product": "Support Agent",
    "description": "Support agent service",
    "file": "supportagent.exe",
    "url": "updates.contoso.com",
}


def _slug(tool: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "", tool) or "agent"


@functools.lru_cache(maxsize=1)
def _profiles() -> dict[str, dict[str, str]]:
    """Per tool: the company, product, signer and file name its planted events carry."""
    out: dict[str, dict[str, str]] = {}
    for rule in _pack()["rules"]:
        x = rule["x_rmmhunt"]
        prof = out.setdefault(x["tool"], {})
        for flt in x["match"]["filters"]:
            if flt["operator"] not in ("has", "has_any"):
                continue
            value = flt["values"][0]
            col = flt["column"]
            if col in _COMPANY:
                prof.setdefault("company", value)
            elif col in _PRODUCT:
                prof.setdefault("product", value)
            elif col == "Signer":
                prof.setdefault("signer", value)
    for tool, prof in out.items():
        prof.setdefault("signer", prof.get("company", tool))
        prof.setdefault("company", prof["signer"])
        prof.setdefault("product", tool)
        prof.setdefault("description", prof["product"])
        ext = "" if tool in _MAC_TOOLS else ".exe"
        prof.setdefault("file", _slug(tool) + ext)
        folder = f"/Library/{_slug(tool)}/" if tool in _MAC_TOOLS else f"C:\\Program Files (x86)\\{tool}\\"
        prof.setdefault("folder", folder)
    return out


def _tool_sha1(seed: int, tool: str, k: int) -> str:
    return _hexdigest("sha1", seed, "tool", tool, k)


def _dws_sets(seed: int) -> dict[str, frozenset[str]]:
    """The let subquery sets the rules use (files signed by DWSNET OÜ, planted in DFCI)."""
    return {"rmmInitialFileSet": frozenset(_tool_sha1(seed, "DWService", k) for k in (0, 1))}


def _dress(col: str, needle: str, variant: int, row: Mapping[str, Any]) -> str:
    """A realistic column value that satisfies ``has``/``has_any`` for ``needle``."""
    if col == "RemoteUrl":
        host = _HOST_FOR.get(needle, needle if "." in needle else needle + ".com")
        return f"https://{host}:443/api/v1/status" if variant else host
    if col in ("FileName", "InitiatingProcessFileName"):
        windows = not str(row.get("InitiatingProcessFolderPath") or row.get("FolderPath") or "").startswith(
            "/"
        )
        return needle + ".exe" if windows and "." not in needle and needle[-1:].isalnum() else needle
    if col in ("FolderPath", "InitiatingProcessFolderPath"):
        name = row.get("FileName" if col == "FolderPath" else "InitiatingProcessFileName") or ""
        return "C:" + needle + name if needle.startswith("\\") else needle
    if variant and len(needle.upper()) == len(needle) and _fold(needle.upper()) == _fold(needle):
        return needle.upper()
    return needle


def _neutral(col: str) -> str:
    if col in _COMPANY or col == "Signer":
        return _NEUTRAL["company"]
    if col in _PRODUCT:
        return _NEUTRAL["product"]
    if col.endswith("FileDescription"):
        return _NEUTRAL["description"]
    if col == "RemoteUrl":
        return _NEUTRAL["url"]
    if col.endswith("FolderPath"):
        return "C:\\Program Files\\Support\\" + _NEUTRAL["file"]
    return _NEUTRAL["file"]


def _tool_values(table: str, tool: str, seed: int, k: int, start_us: int) -> dict[str, Any]:
    """Column values of a tool's own process / file (before the rule's filters are applied)."""
    prof = _profiles()[tool]
    sha1 = _tool_sha1(seed, tool, k)
    image = {
        "SHA1": sha1,
        "SHA256": _hexdigest("sha256", seed, "tool", tool, k),
        "MD5": _hexdigest("md5", seed, "tool", tool, k),
        "FileName": prof["file"],
        "FolderPath": prof["folder"] + prof["file"],
        "VersionInfoCompanyName": prof["company"],
        "VersionInfoProductName": prof["product"],
        "VersionInfoFileDescription": prof["description"],
        "VersionInfoOriginalFileName": prof["file"],
        "VersionInfoInternalFileName": prof["file"].rsplit(".", 1)[0],
        "VersionInfoProductVersion": f"{3 + k}.{len(tool) % 9}.{int(sha1[:4], 16) % 2000}",
        "CommandLine": f'"{prof["folder"]}{prof["file"]}" --service',
    }
    if table == "DeviceFileCertificateInfo":
        issuer = (
            "DigiCert Trusted G4 Code Signing RSA4096 SHA384 2021 CA1",
            "Sectigo Public Code Signing CA R36",
            "Sectigo Public Code Signing CA EV R36",
            "GlobalSign GCC R45 CodeSigning CA 2020",
        )[int(_hexdigest("md5", tool)[:2], 16) % 4]
        created = start_us - (120 + int(sha1[:3], 16) % 600) * 86_400 * _US
        return {
            "SHA1": sha1,
            "IsSigned": True,
            "SignatureType": "Embedded",
            "Signer": prof["signer"],
            "SignerHash": _hexdigest("sha1", "signer", prof["signer"]),
            "Issuer": issuer,
            "IssuerHash": _hexdigest("sha1", "issuer", issuer),
            "CertificateSerialNumber": _hexdigest("md5", seed, "serial", tool)[:32],
            "CrlDistributionPointUrls": json.dumps([_pools()["crl"][issuer]]),
            "CertificateCreationTime": created,
            "CertificateExpirationTime": created + 3 * 365 * 86_400 * _US,
            "IsTrusted": True,
            "IsRootSignerMicrosoft": False,
        }
    prefix = "Process" if table == "DeviceProcessEvents" else "InitiatingProcess"
    out: dict[str, Any] = {}
    for key, value in image.items():
        if key in ("SHA1", "SHA256", "MD5", "FileName", "FolderPath"):
            col = key if table == "DeviceProcessEvents" else "InitiatingProcess" + key
        else:
            col = prefix + key
        out[col] = value
    if table == "DeviceNetworkEvents":
        out.update(
            {
                "ActionType": "ConnectionSuccess",
                "RemotePort": 443,
                "Protocol": "Tcp",
                "RemoteIPType": "Public",
                "InitiatingProcessParentFileName": "services.exe",
                "InitiatingProcessSignerType": "ThirdParty",
                "InitiatingProcessSignatureStatus": "Valid",
            }
        )
    return out


def _apply_filter(
    row: dict[str, Any],
    flt: Mapping[str, Any],
    variant: int,
    choice: int,
    sets: Mapping[str, frozenset[str]],
) -> str:
    """Make ``flt`` true on ``row``; return the needle used ('' for isempty and in)."""
    col, op = flt["column"], flt["operator"]
    if op == "isempty":
        row[col] = ""
        return ""
    if op == "in":
        row[col] = sorted(sets[flt["values_from"]["let"]])[choice % 2]
        return ""
    values = flt["values"]
    needle = str(values[choice % len(values)])
    if op in ("has", "has_any"):
        row[col] = _dress(col, needle, variant, row)
    elif op == "startswith":
        row[col] = needle + ".exe"
    elif op == "=~":
        row[col] = needle.upper() if variant else needle
    return needle


def _glued(value: str, needle: str, variant: int) -> str | None:
    """``value`` with ``needle``'s occurrence glued into a longer term (``None``: no variant)."""
    pos = _fold(value).find(_fold(needle))
    if pos < 0 or not needle:
        return None
    alnum = [i for i, c in enumerate(needle) if c.isalnum()]
    if not alnum:
        return None
    first = alnum[0]
    end = first
    while end < len(needle) and needle[end].isalnum():
        end += 1
    domain = "." in needle and " " not in needle
    if variant == 0:  # a longer term: ScreenConnect -> ScreenConnectorz, anydesk.com -> anydeskorz.com
        at = pos + end
        return value[:at] + "orz" + value[at:]
    if variant == 1:  # a prefix glued on: anydesk.com -> xanydesk.com
        at = pos + first
        return value[:at] + ("x" if domain or value[at].islower() else "X") + value[at:]
    if variant == 2 and domain:  # a near-miss domain: anydesk.com -> anydesk.co
        return value[:pos] + value[pos : pos + len(needle) - 1] + value[pos + len(needle) :]
    return None


@dataclass
class _Special:
    """The planted and decoy rows of one table (independent of ``rows``)."""

    block: _Block
    meta: list[dict[str, Any]]


@functools.lru_cache(maxsize=16)
def _special(table: str, seed: int, start_us: int, days: float) -> _Special:
    import random

    import numpy as np

    world = _world(seed)
    sets = _dws_sets(seed)
    rules = _rules(table)
    rnd = random.Random(f"{seed}|{table}|special")
    span = int(days * 86_400 * _US)
    margin = min(3600 * _US, span // 10)
    n_dev = len(world.dev_name)

    def when() -> int:
        return start_us + rnd.randrange(margin, max(span - margin, margin + 1))

    rows: list[dict[str, Any]] = []  # overrides
    meta: list[dict[str, Any]] = []
    devs: list[int] = []
    times: list[int] = []
    rids: list[int] = []
    report_ids: set[int] = set()

    def report_id() -> int:
        while True:
            rid = rnd.randrange(1 << 39, 1 << 40)  # apart from the background's
            if rid not in report_ids:
                report_ids.add(rid)
                return rid

    all_tools_uris = _all_tools_choices(table, seed, rules, sets)
    for rule in rules:
        x = rule["x_rmmhunt"]
        filters = x["match"]["filters"]
        assignments = _minimal_assignments(x["match"]["logic"], len(filters))
        dev_a, dev_b = rnd.sample(range(n_dev), 2)
        choice2 = rnd.randrange(1 << 16)
        first_row: dict[str, Any] | None = None
        first_needles: list[tuple[str, str]] = []
        first_touched: list[str] = []
        for e in range(_EVENTS_PER_RULE):
            k = 0 if e < 2 else 1
            assign = assignments[0 if e < 2 else 1 % len(assignments)]
            dev = dev_a if e < 2 else dev_b
            row = _tool_values(table, x["tool"], seed, k, start_us)
            needles: list[tuple[str, str]] = []
            touched: list[str] = []
            if x["tool"] == "(all tools)":
                uri, label = all_tools_uris[k]
                row["RemoteUrl"] = _dress("RemoteUrl", uri, e == 2, row)
                row["InitiatingProcessFileName"] = _slug(label) + ".exe"
                row["InitiatingProcessFolderPath"] = f"C:\\Program Files\\{_slug(label)}\\{_slug(label)}.exe"
                row["InitiatingProcessVersionInfoCompanyName"] = ""
                row["InitiatingProcessVersionInfoProductName"] = ""
                needles.append(("RemoteUrl", uri))
                touched.append("RemoteUrl")
            else:
                # filters on file names first: folder paths are built from them
                order = sorted(
                    range(len(filters)),
                    key=lambda i: "FolderPath" in filters[i]["column"],
                )
                for i in order:
                    if i in assign:
                        needle = _apply_filter(row, filters[i], int(e == 2), 0 if e < 2 else choice2, sets)
                        if needle:
                            needles.append((filters[i]["column"], needle))
                        touched.append(filters[i]["column"])
                for i in order:
                    if i not in assign and _filter_true(filters[i], row.get(filters[i]["column"]), sets):
                        row[filters[i]["column"]] = _neutral(filters[i]["column"])
            _sync_paths(row)
            _sync_command_line(row)
            if table == "DeviceNetworkEvents":
                host = re.sub(r"^https?://", "", row.get("RemoteUrl", "")).split("/")[0].split(":")[0]
                row.setdefault("RemoteUrl", "")
                row["RemoteIP"] = _ip(seed, host or x["tool"])
                if not host:  # a direct connection to a remote-control port
                    row["RemotePort"] = 5900 if "VNC" in x["tool"] else 443
            if not _rule_matches(rule, row, sets):
                raise RuntimeError(f"internal error: planted event does not match {x['tool']} {x['kind']}")
            if e == 0:
                first_row, first_needles, first_touched = (
                    dict(row),
                    list(needles),
                    list(touched),
                )
            rows.append(row)
            devs.append(dev)
            times.append(when())
            rids.append(report_id())
            meta.append({"kind": "planted", "rule": rule, "event": e, "columns": touched})
        # the decoy: the first event with each indicator glued into a longer term
        assert first_row is not None
        decoy = _make_decoy(first_row, first_needles, filters, seed, rules, sets)
        if decoy is not None:
            rows.append(decoy)
            devs.append(rnd.randrange(n_dev))
            times.append(when())
            rids.append(report_id())
            meta.append({"kind": "decoy", "rule": rule, "event": 0, "columns": first_touched})
    order = sorted(range(len(rows)), key=lambda i: (times[i], i))
    rows = [rows[i] for i in order]
    meta = [meta[i] for i in order]
    dev_arr = np.array([devs[i] for i in order], dtype=np.int64)
    ts_arr = np.array([times[i] for i in order], dtype=np.int64)
    rng = np.random.default_rng([seed, _TABLE_CODE[table], 1])
    # the account: the device's main user (service accounts for the cert table do not matter)
    acc_arr = world.dev_user[dev_arr]
    block = _block(table, seed, world, dev_arr, ts_arr, rng, start_us, acc=acc_arr)
    for col, spec in block.items():  # columns may share arrays: give each its own copy
        if isinstance(spec, _D):
            block[col] = _D(list(spec.pool), np.array(spec.idx, dtype=np.int64))
        else:
            mask = None if spec.mask is None else np.array(spec.mask, dtype=bool)
            block[col] = _N(np.array(spec.values), mask, spec.as_text)
    block["ReportId"] = _N(np.array([rids[i] for i in order], dtype=np.int64))
    for i, row in enumerate(rows):
        for col, value in row.items():
            spec = block[col]
            if isinstance(spec, _D):
                spec.pool.append(value)
                spec.idx[i] = len(spec.pool) - 1
            else:
                spec.values[i] = value
                if spec.mask is not None:
                    spec.mask[i] = False
    # ground truth: evaluate every rule of the table on every special row
    for i, m in enumerate(meta):
        full = _row_values(block, i)
        m["row"] = full
        m["matches"] = [r for r in rules if _rule_matches(r, full, sets)]
        if m["kind"] == "planted" and m["rule"] not in m["matches"]:
            raise RuntimeError("internal error: planted event lost its match")
        if m["kind"] == "decoy" and m["matches"]:
            raise RuntimeError("internal error: a decoy matches a rule")
    return _Special(block, meta)


def _row_values(block: _Block, i: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col, spec in block.items():
        if isinstance(spec, _D):
            out[col] = spec.pool[int(spec.idx[i])]
        else:
            masked = spec.mask is not None and bool(spec.mask[i])
            v = None if masked else spec.values[i].item()
            out[col] = str(v) if spec.as_text and v is not None else v
    return out


def _all_tools_choices(
    table: str,
    seed: int,
    rules: Sequence[Mapping[str, Any]],
    sets: Mapping[str, frozenset[str]],
) -> list[tuple[str, str]]:
    """Two URIs of the all-tools list that no other rule's RemoteUrl filter matches."""
    if table != "DeviceNetworkEvents":
        return []
    (all_tools,) = [r for r in rules if r["x_rmmhunt"]["tool"] == "(all tools)"]
    labels = _datatable_labels(all_tools["query"])
    picks: list[tuple[str, str]] = []
    for uri in all_tools["x_rmmhunt"]["match"]["filters"][0]["values"]:
        url = _dress("RemoteUrl", uri, 0, {})
        hits = [
            r
            for r in rules
            if r is not all_tools
            and any(
                f["column"] == "RemoteUrl" and _filter_true(f, url, sets)
                for f in r["x_rmmhunt"]["match"]["filters"]
            )
        ]
        if not hits:
            picks.append((uri, labels.get(uri, "rmm")))
        if len(picks) == 2:
            break
    return picks


def _datatable_labels(query: str) -> dict[str, str]:
    pairs = re.findall(r'^\s*"((?:[^"\\]|\\.)*)", "((?:[^"\\]|\\.)*)",?$', query, re.MULTILINE)
    return {u: t for u, t in pairs}


def _sync_paths(row: dict[str, Any]) -> None:
    """The image path ends with the image file name."""
    for file_col, folder_col in (
        ("FileName", "FolderPath"),
        ("InitiatingProcessFileName", "InitiatingProcessFolderPath"),
    ):
        if file_col in row and folder_col in row:
            folder = str(row[folder_col])
            sep = "/" if folder.startswith("/") else "\\"
            row[folder_col] = folder.rsplit(sep, 1)[0] + sep + str(row[file_col])


def _sync_command_line(row: dict[str, Any]) -> None:
    """The tool's command line starts with its image path."""
    for folder_col, cmd_col in (
        ("FolderPath", "ProcessCommandLine"),
        ("InitiatingProcessFolderPath", "InitiatingProcessCommandLine"),
    ):
        if folder_col in row and cmd_col in row:
            row[cmd_col] = f'"{row[folder_col]}" --service'


def _make_decoy(
    row: Mapping[str, Any],
    needles: Sequence[tuple[str, str]],
    filters: Sequence[Mapping[str, Any]],
    seed: int,
    rules: Sequence[Mapping[str, Any]],
    sets: Mapping[str, frozenset[str]],
) -> dict[str, Any] | None:
    for variant in range(3):
        decoy = dict(row)
        ok = True
        for col, needle in needles:
            glued = _glued(str(decoy.get(col) or ""), needle, variant)
            if glued is None:
                glued = _glued(str(decoy.get(col) or ""), needle, 0)
            if glued is None:
                ok = False
                break
            decoy[col] = glued
        if not ok:
            continue
        for flt in filters:
            if flt["operator"] == "in":
                decoy[flt["column"]] = _hexdigest("sha1", seed, "decoy", decoy[flt["column"]])
        for key in ("SHA1", "InitiatingProcessSHA1"):
            if key in decoy and decoy[key] in sets["rmmInitialFileSet"]:
                decoy[key] = _hexdigest("sha1", seed, "decoy", decoy[key])
        _sync_paths(decoy)
        _sync_command_line(decoy)
        if not any(_rule_matches(r, decoy, sets) for r in rules):
            return decoy
    return None


# ======================================================================================
# Assembly
# ======================================================================================


def _assemble(table: str, bg: _Block, special: _Block, pos: Any) -> pa.Table:
    """Insert the special rows before the background rows at ``pos``; build Arrow columns.

    Columns are built in threads, one column per task, in chunks of ``_CHUNK`` rows.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import pyarrow as pa

    sch = schema(table)

    def build(fld: pa.Field) -> pa.ChunkedArray:
        b, s = bg[fld.name], special[fld.name]
        if isinstance(b, _D):
            idx = np.insert(
                np.asarray(b.idx, dtype=np.int32),
                pos,
                np.asarray(s.idx, dtype=np.int32) + len(b.pool),
            )
            dictionary = pa.array(list(b.pool) + list(s.pool), type=pa.string())
            parts = [
                pa.DictionaryArray.from_arrays(
                    pa.array(idx[lo : lo + _CHUNK], type=pa.int32()), dictionary
                ).cast(pa.string())
                for lo in range(0, max(len(idx), 1), _CHUNK)
            ]
            return pa.chunked_array(parts, type=fld.type)
        values = np.insert(np.asarray(b.values), pos, np.asarray(s.values))
        mask = None
        if b.mask is not None or s.mask is not None:
            bm = b.mask if b.mask is not None else np.zeros(len(b.values), dtype=bool)
            sm = s.mask if s.mask is not None else np.zeros(len(s.values), dtype=bool)
            mask = np.insert(bm, pos, sm)
        out = []
        for lo in range(0, max(len(values), 1), _CHUNK):
            m = None if mask is None else mask[lo : lo + _CHUNK]
            if b.as_text:
                arr = pa.array(values[lo : lo + _CHUNK], type=pa.int64(), mask=m)
                out.append(arr.cast(pa.string()))
            else:
                out.append(pa.array(values[lo : lo + _CHUNK], type=fld.type, mask=m))
        return pa.chunked_array(out, type=fld.type)

    workers = max(1, min(os.cpu_count() or 1, 4))
    with ThreadPoolExecutor(workers) as ex:
        columns = list(ex.map(build, list(sch)))
    return pa.Table.from_arrays(columns, schema=sch)


def sample(
    table: str = "DeviceProcessEvents",
    rows: int = 10_000,
    *,
    seed: int = 0,
    start: str | _dt.datetime = "2024-06-01T00:00:00Z",
    days: float = 5,
    plant: bool = True,
    decoys: bool = True,
) -> pa.Table:
    """Generate ``rows`` rows of ``table`` (a ``pyarrow.Table``), deterministically.

    Events fall in ``[start, start + days)``. ``plant`` adds three events per rule of the pack
    for that table and ``decoys`` one near-miss per rule; they count towards ``rows``. The same
    arguments always give the same table.
    """
    import numpy as np

    _columns(table)
    if rows < 0:
        raise ValueError("rows must be >= 0")
    if days <= 0:
        raise ValueError("days must be > 0")
    start_us = _parse_start(start)
    world = _world(seed)
    if plant or decoys:
        special = _select(_special(table, seed, start_us, float(days)), plant, decoys)
    else:
        none = np.zeros(0, dtype=np.int64)
        empty = _block(table, seed, world, none, none, np.random.default_rng(0), start_us, acc=none)
        special = (empty, [])
    n_special = len(special[1])
    if n_special > rows:
        raise ValueError(
            f"rows={rows} is too small for {n_special} planted/decoy rows of {table}; "
            "pass more rows or plant=False, decoys=False"
        )
    rng = np.random.default_rng([seed, _TABLE_CODE[table], 0])
    n_bg = rows - n_special
    dev = _pick(rng, world.dev_weight, n_bg)
    ts = _timestamps(rng, n_bg, start_us, days)
    bg = _block(table, seed, world, dev, ts, rng, start_us)
    block, meta = special
    s_ts = np.array([m["row"]["Timestamp"] for m in meta], dtype=np.int64)
    pos = np.searchsorted(ts, s_ts, side="right")
    return _assemble(table, bg, block, pos)


def _select(sp: _Special, plant: bool, decoys: bool) -> tuple[_Block, list[dict[str, Any]]]:
    """The special rows kept by the ``plant``/``decoys`` switches, as a sub-block."""
    import numpy as np

    keep = [
        i
        for i, m in enumerate(sp.meta)
        if (plant and m["kind"] == "planted") or (decoys and m["kind"] == "decoy")
    ]
    sel = np.array(keep, dtype=np.int64)
    block: _Block = {}
    for col, spec in sp.block.items():
        if isinstance(spec, _D):
            block[col] = _D(spec.pool, np.asarray(spec.idx)[sel])
        else:
            mask = None if spec.mask is None else np.asarray(spec.mask)[sel]
            block[col] = _N(np.asarray(spec.values)[sel], mask, spec.as_text)
    return block, [sp.meta[i] for i in keep]


def _check_args(table: str, rows: int, seed: int, start: str | _dt.datetime, days: float) -> _Special:
    _columns(table)
    sp = _special(table, seed, _parse_start(start), float(days))
    if rows < len(sp.meta):
        raise ValueError(f"rows={rows} is too small for the {len(sp.meta)} planted/decoy rows of {table}")
    return sp


def _public_row(m: Mapping[str, Any]) -> dict[str, Any]:
    row = m["row"]
    return {
        "DeviceId": row["DeviceId"],
        "DeviceName": row["DeviceName"],
        "ReportId": row["ReportId"],
        "Timestamp": _to_datetime(row["Timestamp"]),
    }


def planted(
    table: str = "DeviceProcessEvents",
    rows: int = 10_000,
    *,
    seed: int = 0,
    start: str | _dt.datetime = "2024-06-01T00:00:00Z",
    days: float = 5,
) -> list[dict[str, Any]]:
    """The planted events of ``sample(table, rows, seed=..., start=..., days=...)``.

    One dict per event, in table order: ``rule_id``, ``rule_name``, ``tool``, ``kind``,
    ``provenance`` (the rule the event was planted for), ``event`` (0-2), ``DeviceId``,
    ``DeviceName``, ``ReportId``, ``Timestamp`` (aware UTC datetime), ``values`` (the indicator
    columns that were set, column -> value), ``rules`` (the ids of every rule of the pack that
    matches the event, the planted rule included) and ``groups`` (rule id -> that rule's
    ``summarize ... by`` values for this event; the all-tools rule's RemoteUrl after its
    ``extend`` steps). ``requires`` names another table the match depends on (the DWService
    rules need ``DeviceFileCertificateInfo`` generated with the same seed).
    """
    sp = _check_args(table, rows, seed, start, days)
    out = []
    for m in sp.meta:
        if m["kind"] != "planted":
            continue
        rule = m["rule"]
        x = rule["x_rmmhunt"]
        rec = {
            "table": table,
            "rule_id": rule["id"],
            "rule_name": rule["name"],
            "tool": x["tool"],
            "kind": x["kind"],
            "provenance": x["provenance"],
            "event": m["event"],
            **_public_row(m),
            "values": {col: m["row"][col] for col in m["columns"]},
            "rules": [r["id"] for r in m["matches"]],
            "groups": {r["id"]: _group_key(r, m["row"]) for r in m["matches"]},
        }
        others = sorted({t for r in m["matches"] for t in r["x_rmmhunt"]["tables"]} - {table})
        if others:
            rec["requires"] = others
        out.append(rec)
    return out


def decoys(
    table: str = "DeviceProcessEvents",
    rows: int = 10_000,
    *,
    seed: int = 0,
    start: str | _dt.datetime = "2024-06-01T00:00:00Z",
    days: float = 5,
) -> list[dict[str, Any]]:
    """The decoy rows of ``sample(...)``: near misses that match no rule.

    One dict per decoy: ``imitates`` (the rule id whose first planted event it copies),
    ``tool``, ``kind``, ``DeviceId``, ``DeviceName``, ``ReportId``, ``Timestamp`` and
    ``values`` (the glued indicator columns, column -> value).
    """
    sp = _check_args(table, rows, seed, start, days)
    out = []
    for m in sp.meta:
        if m["kind"] != "decoy":
            continue
        x = m["rule"]["x_rmmhunt"]
        out.append(
            {
                "table": table,
                "imitates": m["rule"]["id"],
                "tool": x["tool"],
                "kind": x["kind"],
                **_public_row(m),
                "values": {col: m["row"][col] for col in m["columns"]},
            }
        )
    return out


def expected_findings(
    table: str = "DeviceProcessEvents",
    rows: int = 10_000,
    *,
    seed: int = 0,
    start: str | _dt.datetime = "2024-06-01T00:00:00Z",
    days: float = 5,
) -> list[dict[str, Any]]:
    """The findings every rule of ``table`` must report on ``sample(...)`` (with the DFCI
    table of the same seed present for the DWService rules), with ``now = start + days``.

    One dict per (rule, group): ``rule_id``, ``rule_name``, ``tool``, ``kind``, the rule's
    group-by columns, ``FirstSeen``, ``LastSeen``, ``Report`` (sorted ReportIds) and ``Count``.
    """
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    rules = {r["id"]: r for r in _rules(table)}
    for ev in planted(table, rows, seed=seed, start=start, days=days):
        for rid in ev["rules"]:
            key_vals = ev["groups"][rid]
            key = (rid, json.dumps(key_vals, sort_keys=True, default=str))
            g = groups.get(key)
            if g is None:
                x = rules[rid]["x_rmmhunt"]
                g = {
                    "rule_id": rid,
                    "rule_name": rules[rid]["name"],
                    "tool": x["tool"],
                    "kind": x["kind"],
                    **key_vals,
                    "FirstSeen": ev["Timestamp"],
                    "LastSeen": ev["Timestamp"],
                    "Report": [],
                    "Count": 0,
                }
                groups[key] = g
            g["FirstSeen"] = min(g["FirstSeen"], ev["Timestamp"])
            g["LastSeen"] = max(g["LastSeen"], ev["Timestamp"])
            g["Report"].append(ev["ReportId"])
            g["Count"] += 1
    out = []
    for key in sorted(groups):
        g = groups[key]
        g["Report"] = sorted(set(g["Report"]))
        out.append(g)
    return out


# ======================================================================================
# Files
# ======================================================================================


def _jsonable(value: Any) -> Any:
    if isinstance(value, _dt.datetime):
        return value.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def write_sample(
    path: str | Path,
    table: str = "DeviceProcessEvents",
    rows: int = 10_000,
    seed: int = 0,
    format: str | None = None,
    *,
    start: str | _dt.datetime = "2024-06-01T00:00:00Z",
    days: float = 5,
    plant: bool = True,
    decoys: bool = True,
) -> None:
    """Write ``sample(...)`` to ``path`` as ``parquet``, ``csv`` or ``jsonl``.

    ``format`` defaults to the file extension (``.parquet``, ``.csv``, ``.jsonl``/``.json``);
    ``path="-"`` writes to standard output (``format`` then defaults to ``jsonl``). JSON lines
    hold one object per row with ISO-8601 UTC timestamps (``...Z``) and nulls as ``null``.
    """
    import pyarrow as pa

    fmt = format
    if fmt is None:
        suffix = "" if str(path) == "-" else Path(path).suffix.lower().lstrip(".")
        fmt = {
            "parquet": "parquet",
            "pq": "parquet",
            "csv": "csv",
            "json": "jsonl",
            "jsonl": "jsonl",
            "ndjson": "jsonl",
            "": "jsonl",
        }.get(suffix)
        if fmt is None:
            raise ValueError(f"cannot tell the format of {path!s}; pass format='parquet'|'csv'|'jsonl'")
    fmt = fmt.lower()
    if fmt not in ("parquet", "csv", "jsonl"):
        raise ValueError(f"unknown format {fmt!r}; expected parquet, csv or jsonl")
    tbl = sample(table, rows, seed=seed, start=start, days=days, plant=plant, decoys=decoys)
    to_stdout = str(path) == "-"
    sink: Any = sys.stdout.buffer if to_stdout else open(path, "wb")  # noqa: SIM115
    try:
        if fmt == "parquet":
            importlib.import_module("pyarrow.parquet").write_table(tbl, sink, compression="zstd")
        elif fmt == "csv":
            importlib.import_module("pyarrow.csv").write_csv(tbl, sink)
        else:
            for batch in tbl.to_batches(max_chunksize=20_000):
                assert isinstance(batch, pa.RecordBatch)
                lines = [
                    json.dumps({k: _jsonable(v) for k, v in rec.items()}, ensure_ascii=False)
                    for rec in batch.to_pylist()
                ]
                sink.write(("\n".join(lines) + "\n").encode("utf-8"))
    finally:
        if to_stdout:
            sink.flush()
        else:
            sink.close()


# ======================================================================================
# The bundled default dataset
# ======================================================================================


def bundled(tables: Sequence[str] | None = None) -> dict[str, pa.Table]:
    """The small dataset shipped in ``rmmhunt/data/sample/`` (table name -> ``pyarrow.Table``).

    It is ``sample(table, BUNDLED_ROWS[table], seed=0)`` for each of the three tables, so
    ``planted()``, ``decoys()`` and ``expected_findings()`` with the same arguments describe
    it. Hunt it with ``now=bundled_now()``.
    """
    pq = importlib.import_module("pyarrow.parquet")
    out: dict[str, pa.Table] = {}
    for table in TABLES if tables is None else tables:
        _columns(table)
        out[table] = pq.read_table(_BUNDLED / f"{table}.parquet")
    return out


def bundled_now() -> _dt.datetime:
    """The ``now`` at which the bundled dataset's planted events all fall in the rules'
    ``now(-5d)..now()`` window: the end of its time range."""
    return _to_datetime(_parse_start(BUNDLED_START) + BUNDLED_DAYS * 86_400 * _US)
