"""Key sets at scale: reconciling millions of keys costs about 8 bytes a key (fingerprints in a numpy
array), never one Python object a key; deletes found are exact for integer and text keys alike."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from hygge.changes.keys import FingerprintSet, KeyShape
from hygge.changes.reconcile import find_deletes

SCRIPT = r"""
import json, sys
import numpy as np, polars, pyarrow as pa  # imported first: their own memory is not the key set's
from hygge.changes.keys import KeyShape
from hygge.changes.reconcile import find_deletes

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024

rows, text = int(sys.argv[1]), sys.argv[2] == "text"
def batches(skip_every):
    for start in range(0, rows, 200_000):
        ids = np.arange(start, min(start + 200_000, rows), dtype=np.int64)
        if skip_every:
            ids = ids[ids % skip_every != 0]
        column = pa.array(ids.astype(str)) if text else pa.array(ids)
        yield pa.RecordBatch.from_arrays([column], names=["id"])
shape = KeyShape.of(pa.schema([("id", pa.string() if text else pa.int64())]), ["id"])
before = hwm()
found = find_deletes(shape, batches(100), batches(0))
print(json.dumps({"grew": hwm() - before, "deletes": found.deletes.num_rows,
                  "source": found.source_keys, "landed": found.landed_keys,
                  "first": found.deletes.column(0).slice(0, 3).to_pylist()}))
"""


def _measure(rows: int, kind: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(rows), kind], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_reconciling_ten_million_integer_keys_stays_lean() -> None:
    result = _measure(10_000_000, "int")
    assert (result["source"], result["landed"], result["deletes"]) == (9_900_000, 10_000_000, 100_000)
    # 8 bytes a source key (79 MB; measured 128 MB in all, with the batches and search chunks); a
    # Python set of 10M ints alone would take over 500 MB.
    assert result["grew"] < 160e6, result


def test_reconciling_two_million_text_keys_stays_lean() -> None:
    result = _measure(2_000_000, "text")
    assert (result["source"], result["deletes"]) == (1_980_000, 20_000)
    assert result["grew"] < 120e6, result  # measured 90 MB (16 MB of fingerprints, polars' buffers)


def test_deletes_are_exact_values_from_the_landed_side() -> None:
    shape = KeyShape.of(pa.schema([("a", pa.int32()), ("b", pa.string())]), ["a", "b"])
    source = pa.table({"a": pa.array([1, 1, 2], pa.int32()), "b": ["x", "y", "x"]})
    landed = pa.table({"a": pa.array([1, 1, 2, 3, None], pa.int32()), "b": ["x", "y", "y", "x", "z"]})
    found = find_deletes(shape, iter(source.to_batches()), iter(landed.to_batches()))
    assert sorted(found.deletes.to_pylist(), key=lambda r: (r["a"], r["b"])) == [
        {"a": 2, "b": "y"},
        {"a": 3, "b": "x"},
    ]
    assert found.deletes.schema == pa.schema([("a", pa.int32()), ("b", pa.string())])
    assert (found.source_keys, found.landed_keys) == (3, 4)  # NULL keys are never landed keys


def test_fingerprint_set_membership_in_chunks() -> None:
    values = np.random.default_rng(3).integers(0, 1 << 62, 3_000_000, dtype=np.uint64)
    members = FingerprintSet()
    members.add(values[:2_000_000])
    probe = values[1_500_000:]
    found = members.contains(probe)
    assert found[:500_000].all() and not found[500_000:].any()


def test_a_single_integer_key_is_read_in_ranges_and_exactly(pg_db) -> None:
    """A reconciliation's source keys come on two connections (ranges of the key) when the key is one
    integer column; the key set is exact across negative, gapped and the largest bigint values (which
    connectorx's own partition_on loses, every row with them)."""
    from hygge.config.models import ConnectionConfig, ResolvedEntity
    from hygge.homes.sql.home import SqlHome
    from tests.helpers import pg_execute

    ids = [-(2**62), -5, 0, 1, 2, 3, 10**6, 2**62, 2**63 - 1]
    pg_execute(
        pg_db,
        "CREATE TABLE ranged (id bigint PRIMARY KEY, v text)",
        ("INSERT INTO ranged SELECT unnest(%s::bigint[]), 'v'", (ids,)),
    )
    entity = ResolvedEntity.model_validate(
        {
            "flow": "f", "name": "ranged", "table": "ranged", "file": "flows/f/flow.yml",
            "home": {"type": "sql", "connection": "db"}, "store": {"type": "parquet", "path": "lake"},
            "run_type": "full_drop", "watermark": {"primary_key": ["id"]},
        }
    )
    home = SqlHome(entity, ConnectionConfig(type="postgres", url=pg_db))
    calls: list[tuple] = []
    stream = home.engine.stream
    home.engine.stream = lambda sql, size, on=None, parts=None: calls.append((on, parts)) or stream(sql, size, on, parts)
    read = pa.Table.from_batches(list(home.read_columns(["id"])), schema=pa.schema([("id", pa.int64())]))
    assert sorted(read.column("id").to_pylist()) == ids
    assert calls == [('"id"', 2)]


@pytest.mark.parametrize("parts", [2, 3, 7])
def test_partitioned_reads_keep_nulls_and_the_extremes(pg_db, parts) -> None:
    """`partition_on` ranges cover the column's NULLs, its smallest and its largest values, integer or not."""
    from hygge.homes.sql.engines import Connectorx
    from tests.helpers import pg_execute

    ints = [None, -(2**63), -1, 0, 5, 2**63 - 1, None]
    floats = [None, -1e300, -0.5, 0.0, 0.25, 1e300, 3.5]
    decimals = [None, "-9999999999999999.9999", "-0.5", "0", None, "9999999999999999.9999", "3.5"]
    pg_execute(
        pg_db,
        "CREATE TABLE parted (i bigint, f float8, d numeric(20,4))",
        (
            "INSERT INTO parted SELECT unnest(%s::bigint[]), unnest(%s::float8[]), unnest(%s::numeric[])",
            (ints, floats, decimals),
        ),
    )
    engine = Connectorx(pg_db)
    for column in ("i", "f", "d"):
        read = pa.Table.from_batches(list(engine.stream("SELECT i, f, d FROM parted", 1000, column, parts)))
        assert sorted(read.column("i").to_pylist(), key=str) == sorted(ints, key=str), column


@pytest.mark.parametrize("composite", [False, True])
def test_key_matcher_finds_exactly_the_listed_keys(composite, monkeypatch) -> None:
    """The rewrite's row matcher: exact for integer keys, text and composite keys, NULL keys never
    match, and a fingerprint shared by two keys (forced here) still matches only the listed one."""
    from hygge.changes import keys as keys_module
    from hygge.stores.rewrite import KeyMatcher

    names = ["k", "n"] if composite else ["k"]
    listed = pa.table({"k": ["a", "b", "é", None], "n": [1, 2, 3, 4]}).select(names).slice(0, 3)
    rows = pa.table({"k": ["a", "x", None, "é", "b", "a"], "n": [1, 1, 5, 3, 9, 2]}).select(names)
    expected = [
        tuple(r.values()) in {tuple(x.values()) for x in listed.to_pylist()} for r in rows.to_pylist()
    ]
    assert KeyMatcher(listed, names).mask(rows).tolist() == expected
    ints = pa.table({"k": pa.array([5, None, 7, 9], pa.int64())})
    assert KeyMatcher(pa.table({"k": pa.array([7, 5], pa.int32())}), ["k"]).mask(ints).tolist() == [
        True, False, True, False
    ]  # fmt: skip
    monkeypatch.setattr(keys_module.KeyShape, "fingerprints", lambda self, t: np.zeros(t.num_rows, np.uint64))
    assert KeyMatcher(listed, names).mask(rows).tolist() == expected  # every key collides


def test_a_configured_partition_column_is_quoted(pg_db) -> None:
    """`home.partition_on` names a column, not SQL: a name with a capital and a space reads every row."""
    from hygge.config.models import ConnectionConfig, ResolvedEntity
    from hygge.homes.sql.home import SqlHome
    from tests.helpers import pg_execute

    pg_execute(
        pg_db,
        'CREATE TABLE "Odd Parts" ("Big Id" bigint, v text)',
        ("""INSERT INTO "Odd Parts" SELECT g, 'v' FROM generate_series(1, 1000) g""", None),
        """INSERT INTO "Odd Parts" VALUES (NULL, 'no id')""",
    )
    entity = ResolvedEntity.model_validate(
        {
            "flow": "f", "name": "odd", "table": "Odd Parts", "file": "flows/f/flow.yml",
            "home": {"type": "sql", "connection": "db", "partition_on": "Big Id", "partition_num": 3},
            "store": {"type": "parquet", "path": "lake"}, "run_type": "full_drop",
        }
    )  # fmt: skip
    read = SqlHome(entity, ConnectionConfig(type="postgres", url=pg_db)).read().read_all()
    assert read.num_rows == 1001 and read.column("Big Id").null_count == 1
