"""Key sets at scale: reconciling millions of keys costs about 8 bytes a key (fingerprints in a numpy
array), never one Python object a key; deletes found are exact for integer and text keys alike."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa

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
