"""The Delta store: streamed files committed in one transaction that other Delta readers understand."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from hygge.errors import SourceError
from hygge.storage import Storage
from hygge.stores.base import WriteRequest
from hygge.stores.delta import DeltaStore
from hygge.stores.files import FileLayout

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("at", pa.timestamp("us")),
        ("at_utc", pa.timestamp("us", tz="UTC")),
        ("amount", pa.decimal128(38, 18)),
        ("name", pa.string()),
    ]
)


def table(ids: range) -> pa.Table:
    base = dt.datetime(2024, 1, 1, 0, 0, 0, 1)
    return pa.table(
        {
            "id": list(ids),
            "at": [base + dt.timedelta(seconds=i) if i % 7 else None for i in ids],
            "at_utc": [(base + dt.timedelta(seconds=i)).replace(tzinfo=dt.UTC) for i in ids],
            "amount": [Decimal(f"{i}.000000000000000001") for i in ids],
            "name": [f"n{i}" * 20 for i in ids],
        },
        schema=SCHEMA,
    )


def store(path: Path, **layout) -> DeltaStore:
    return DeltaStore(Storage.local(path), app_id="hygge:f.e", layout=FileLayout(**layout))


def write(s: DeltaStore, data: pa.Table, run: str, run_type: str, version: int, key=()) -> None:
    reader = pa.RecordBatchReader.from_batches(SCHEMA, data.to_batches(max_chunksize=100))
    s.write(reader, WriteRequest(run_type, run, version, list(key)))


def test_files_are_readable_and_filterable_by_other_delta_readers(tmp_path: Path) -> None:
    """Row groups and files follow the layout; polars and pyarrow filters see every matching row
    (partial min/max statistics once made deltalake's reader prune files wrongly)."""
    s = store(tmp_path, row_group_rows=250, file_rows=1000)
    write(s, table(range(2500)), "run1", "full_drop", 1)
    dtable = DeltaTable(str(tmp_path))
    assert len(dtable.file_uris()) == 3
    assert dtable.to_pyarrow_table().sort_by("id").equals(table(range(2500)))
    low = dt.datetime(2024, 1, 1, 0, 10)
    expected = sum(1 for i in range(2500) if i % 7 and i >= 600)
    assert pl.scan_delta(str(tmp_path)).filter(pl.col("at") >= low).collect().height == expected
    dataset = dtable.to_pyarrow_dataset()
    assert dataset.to_table(filter=pc.field("at") >= low).num_rows == expected
    assert s.rows_between("at", low, dt.datetime(2030, 1, 1)).num_rows == expected


def test_full_drop_replaces_and_commit_is_tagged(tmp_path: Path) -> None:
    """full_drop is one overwrite commit carrying the entity run id; repeated full_drops never double."""
    s = store(tmp_path)
    write(s, table(range(50)), "run1", "full_drop", 1)
    write(s, table(range(20)), "run2", "full_drop", 2)
    assert s.scan().num_rows == 20
    commit = s.recover()
    assert commit is not None and commit.entity_run_id == "run2" and commit.run_type == "full_drop"


def test_retried_commit_is_a_no_op(tmp_path: Path) -> None:
    """A write whose transaction version already committed changes nothing."""
    s = store(tmp_path)
    write(s, table(range(10)), "run1", "incremental", 5)
    write(s, table(range(10, 20)), "run1-again", "incremental", 5)
    assert s.scan().num_rows == 10
    assert DeltaTable(str(tmp_path)).transaction_version("hygge:f.e") == 5


def test_failure_mid_stream_leaves_no_files(tmp_path: Path) -> None:
    """A source failing mid-stream leaves the table as it was and no orphan data files."""
    s = store(tmp_path, row_group_rows=10)
    write(s, table(range(30)), "run1", "full_drop", 1)
    before = sorted(p.name for p in tmp_path.glob("*.parquet"))

    def failing():
        yield from table(range(100, 150)).to_batches(max_chunksize=10)
        raise SourceError("boom")

    with pytest.raises(SourceError):
        s.write(
            pa.RecordBatchReader.from_batches(SCHEMA, failing()), WriteRequest("full_drop", "run2", 2, [])
        )
    assert sorted(p.name for p in tmp_path.glob("*.parquet")) == before
    assert s.scan().sort_by("id").equals(table(range(30)))


def test_incremental_with_key_merges(tmp_path: Path) -> None:
    """incremental with a primary key updates matching rows and inserts new ones."""
    s = store(tmp_path)
    write(s, table(range(10)), "run1", "full_drop", 1)
    changed = table(range(5, 15)).set_column(4, "name", pa.array(["new"] * 10))
    write(s, changed, "run2", "incremental", 2, key=["id"])
    landed = s.scan().sort_by("id")
    assert landed.num_rows == 15
    assert landed.column("name").to_pylist()[5:] == ["new"] * 10
