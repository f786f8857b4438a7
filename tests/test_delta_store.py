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


def _keyed_round(tmp_path: Path, s: DeltaStore, deletes: list[int] | None = None) -> pa.Table:
    """A full load of 0..99 in files of 25 rows, then an upsert of 10..14 (new names) and 200..201, less `deletes`."""
    s.write(
        pa.RecordBatchReader.from_batches(SCHEMA, table(range(100)).to_batches(max_chunksize=25)),
        WriteRequest("full_drop", "run1", 1, []),
    )
    assert len(DeltaTable(str(tmp_path)).file_uris()) == 4
    changed = pa.concat_tables([table(range(10, 15)), table(range(200, 202))])
    changed = changed.set_column(4, "name", pa.array(["new"] * changed.num_rows))
    gone = pa.table({"id": pa.array(deletes or [], pa.int64())})
    reader = pa.RecordBatchReader.from_batches(SCHEMA, changed.to_batches(max_chunksize=3))
    s.write(reader, WriteRequest("incremental", "run2", 2, ["id"], deletes=gone if deletes else None))
    expected = [i for i in [*range(100), 200, 201] if i not in (deletes or [])]
    landed = s.scan().sort_by("id")
    assert landed.column("id").to_pylist() == expected
    assert [n for i, n in zip(landed.column("id").to_pylist(), landed.column("name").to_pylist(), strict=True)
            if n == "new"] == ["new"] * 7  # fmt: skip
    return landed


def test_a_keyed_change_rewrites_only_the_files_it_touches_in_one_commit(tmp_path: Path) -> None:
    """No MERGE: the files holding a changed or deleted key are removed and rewritten, the others stay,
    in one commit every Delta reader replays alike; a retry of the same commit is a no-op."""
    tmp = tmp_path / "keyed"
    s = store(tmp, file_rows=25, row_group_rows=25)
    landed = _keyed_round(tmp, s, deletes=[60, 61])
    dtable = DeltaTable(str(tmp))
    entry = dtable.history(1)[0]
    assert entry["operation"] == "MERGE" and entry["hygge.entity_run_id"] == "run2"
    assert entry["operationParameters"]["by"] == "hygge file rewrite"
    log = (tmp / "_delta_log" / f"{dtable.version():020d}.json").read_text()
    removes = log.count('"remove"')
    assert removes == 2  # the files of 10..14 (0..24) and of 60, 61 (50..74); 25..49 and 75..99 stay
    assert pl.read_delta(str(tmp)).sort("id").to_dicts() == pl.from_arrow(landed).to_dicts()
    assert dtable.to_pyarrow_dataset().to_table().num_rows == landed.num_rows
    assert dtable.transaction_version("hygge:f.e") == 2
    again = pa.RecordBatchReader.from_batches(SCHEMA, table(range(300, 301)).to_batches())
    s.write(again, WriteRequest("incremental", "run2-again", 2, ["id"]))
    assert DeltaTable(str(tmp)).version() == dtable.version()
    assert s.recover().entity_run_id == "run2"


def test_soft_deletes_rewrite_too(tmp_path: Path) -> None:
    schema = SCHEMA.append(pa.field("gone_at", pa.timestamp("us", tz="UTC")))
    s = store(tmp_path, file_rows=25)
    data = table(range(50))
    data = data.append_column("gone_at", pa.nulls(50, schema.field("gone_at").type))
    s.write(
        pa.RecordBatchReader.from_batches(schema, data.to_batches()), WriteRequest("full_drop", "r1", 1, [])
    )
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    request = WriteRequest(
        "incremental", "r2", 2, ["id"], deletes=pa.table({"id": pa.array([3, 40], pa.int64())}),
        soft_column="gone_at", deleted_at=when,
    )  # fmt: skip
    s.write(pa.RecordBatchReader.from_batches(schema, iter(())), request)
    landed = s.scan().sort_by("id")
    assert landed.num_rows == 50
    marked = [
        i
        for i, g in zip(landed.column("id").to_pylist(), landed.column("gone_at").to_pylist(), strict=True)
        if g
    ]
    assert marked == [3, 40]
    assert DeltaTable(str(tmp_path)).history(1)[0]["operationParameters"]["by"] == "hygge file rewrite"


@pytest.mark.parametrize(
    "feature",
    ["partitioned", "constraint", "change_data_feed"],
)
def test_tables_using_features_keep_deltalakes_merge(tmp_path: Path, feature: str, monkeypatch) -> None:
    """A table whose features a plain remove/add commit would not honour is merged by deltalake."""
    from deltalake import write_deltalake

    from hygge.stores import delta_commit

    data = table(range(100))
    if feature == "partitioned":
        data = data.append_column("part", pa.array([i % 2 for i in range(100)], pa.int64()))
        write_deltalake(str(tmp_path), data, partition_by=["part"])
    else:
        write_deltalake(str(tmp_path), data)
        dtable = DeltaTable(str(tmp_path))
        if feature == "constraint":
            dtable.alter.add_constraint({"id_positive": "id >= 0"})
        else:
            dtable.alter.set_table_properties({"delta.enableChangeDataFeed": "true"})
    assert delta_commit.own_commit_refusal(DeltaTable(str(tmp_path))) is not None
    monkeypatch.setattr(delta_commit, "commit", lambda *a, **k: pytest.fail("hygge committed by hand"))
    schema = data.schema
    changed = data.slice(10, 5).set_column(4, "name", pa.array(["new"] * 5))
    s = store(tmp_path)
    s.write(
        pa.RecordBatchReader.from_batches(schema, changed.to_batches()),
        WriteRequest("incremental", "r2", 2, ["id"]),
    )
    landed = s.scan().sort_by("id")
    assert landed.num_rows == 100 and landed.column("name").to_pylist()[10:15] == ["new"] * 5


def test_a_commit_that_loses_its_version_changes_nothing(tmp_path: Path, monkeypatch) -> None:
    """Another writer committing between hygge's read of the table and its commit: hygge's commit
    fails put-if-absent, the table is the other writer's, and hygge's staged files are gone."""
    from hygge.errors import StoreError
    from hygge.stores import delta_commit

    s = store(tmp_path, file_rows=25)
    write(s, table(range(100)), "run1", "full_drop", 1)
    real = delta_commit.commit

    def racing(location, dtable, *args, **kwargs):
        from deltalake import write_deltalake

        write_deltalake(str(tmp_path), table(range(500, 501)), mode="append")  # takes the next version
        return real(location, dtable, *args, **kwargs)

    monkeypatch.setattr("hygge.stores.delta.commit", racing)
    files_before = {p.name for p in tmp_path.glob("*.parquet")}
    changed = table(range(10, 12)).set_column(4, "name", pa.array(["new"] * 2))
    with pytest.raises(StoreError, match="committed by another writer"):
        s.write(
            pa.RecordBatchReader.from_batches(SCHEMA, changed.to_batches()),
            WriteRequest("incremental", "r2", 2, ["id"]),
        )
    landed = s.scan().sort_by("id")
    assert landed.column("id").to_pylist() == [*range(100), 500]
    assert "new" not in landed.column("name").to_pylist()
    extra = {p.name for p in tmp_path.glob("*.parquet")} - files_before
    assert len(extra) == 1  # the other writer's file only


def test_a_new_table_is_checkpointed_every_ten_commits(tmp_path: Path) -> None:
    """Spark's default interval (deltalake's is 100), for hygge's commits and deltalake's alike."""
    s = store(tmp_path)
    write(s, table(range(10)), "run1", "full_drop", 1)
    assert DeltaTable(str(tmp_path)).metadata().configuration["delta.checkpointInterval"] == "10"
    for n in range(2, 12):
        changed = table(range(n, n + 1)).set_column(4, "name", pa.array([f"v{n}"]))
        if n % 2:
            write(s, changed, f"run{n}", "incremental", n, key=["id"])  # hygge's commit
        else:
            write(s, table(range(100 + n, 101 + n)), f"run{n}", "incremental", n)  # deltalake's append
    checkpoints = sorted(p.name for p in (tmp_path / "_delta_log").glob("*.checkpoint.parquet"))
    # Version 10 is hygge's (Spark's rule: version % interval == 0); deltalake's hook counts from
    # one, so it takes version 9 for its own commit there.
    assert f"{10:020d}.checkpoint.parquet" in checkpoints and len(checkpoints) <= 2, checkpoints
    assert DeltaTable(str(tmp_path)).to_pyarrow_table().num_rows == 16  # 10, 5 appended, id 11 upserted


def test_own_commits_are_checkpointed_at_the_interval(tmp_path: Path) -> None:
    s = store(tmp_path)
    write(s, table(range(10)), "run1", "full_drop", 1)
    DeltaTable(str(tmp_path)).alter.set_table_properties({"delta.checkpointInterval": "3"})
    for n in range(2, 6):
        changed = table(range(n, n + 1)).set_column(4, "name", pa.array([f"v{n}"]))
        write(s, changed, f"run{n}", "incremental", n, key=["id"])
    dtable = DeltaTable(str(tmp_path))
    checkpoints = sorted(p.name for p in (tmp_path / "_delta_log").glob("*.checkpoint.parquet"))
    assert checkpoints == [f"{3:020d}.checkpoint.parquet"]  # versions 2-5 are hygge's; 3 is due
    assert dtable.to_pyarrow_table().num_rows == 10


def test_the_orphan_sweep_deletes_only_this_stores_files(tmp_path: Path) -> None:
    """An interrupted Delta write's file goes; a parquet store's file in a folder it shares (a
    misconfiguration, refused by ownership once both have committed) and any other file stay."""
    s = store(tmp_path)
    write(s, table(range(10)), "run1", "full_drop", 1)
    run = "0" * 32
    orphan = tmp_path / f"part-20991231T000000000000-{run}-d-00000.parquet"
    parquet_stores = tmp_path / f"part-20991231T000000000000-{run}-00000.parquet"
    foreign = tmp_path / "part-00000-abc.snappy.parquet"
    for path in (orphan, parquet_stores, foreign):
        path.write_bytes(b"PAR1")
    assert s.remove_orphans() == [orphan.name]
    assert not orphan.exists() and parquet_stores.exists() and foreign.exists()
    assert DeltaTable(str(tmp_path)).to_pyarrow_table().num_rows == 10
