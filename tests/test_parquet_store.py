"""The parquet store: full_drop replaces, incremental appends or upserts, file names never collide,
failures leave nothing visible, and an applied-but-interrupted commit is rolled forward."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hygge.config.models import ParquetStoreConfig
from hygge.storage import Storage
from hygge.stores import parquet as parquet_module
from hygge.stores.base import WriteRequest
from hygge.stores.parquet import WORK, ParquetStore

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("name", pa.string()),
        ("amount", pa.decimal128(38, 18)),
        ("at", pa.timestamp("us", tz="UTC")),
        ("day", pa.date32()),
        ("blob", pa.binary()),
        ("flag", pa.bool_()),
    ]
)


def rows(ids, tag: str = "v1") -> pa.Table:
    ids = list(ids)
    return pa.table(
        {
            "id": ids,
            "name": [f"{tag}-{i}" for i in ids],
            "amount": [Decimal(f"{i}.123456789012345678") for i in ids],
            "at": [dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=i) for i in ids],
            "day": [dt.date(2024, 1, 1) + dt.timedelta(days=i % 28) for i in ids],
            "blob": [bytes([i % 256]) for i in ids],
            "flag": [i % 2 == 0 for i in ids],
        },
        schema=SCHEMA,
    )


def reader_of(table: pa.Table, batch: int = 7) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=batch))


def make_store(folder: Path, **config) -> ParquetStore:
    """The entity in `folder` (its store is the folder's parent; bookkeeping in `parent/_hygge/<name>`)."""
    settings = ParquetStoreConfig(type="parquet", path=str(folder.parent), **config)
    return ParquetStore(Storage.local(folder.parent), folder.name, settings)


def work(folder: Path) -> Path:
    """hygge's bookkeeping for the entity in `folder`: beside it, never inside."""
    return folder.parent / WORK / folder.name


def request(run: str, run_type: str = "full_drop", key: list[str] | None = None, version: int = 1):
    return WriteRequest(run_type=run_type, entity_run_id=run, version=version, primary_key=key or [])


def landed(store: ParquetStore) -> pa.Table:
    return store.scan().sort_by("id")


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# --- full_drop ---------------------------------------------------------------------------------


def test_full_drop_replaces_and_never_doubles(tmp_path: Path) -> None:
    """Each full_drop leaves exactly the rows it wrote (the earlier generation doubled them)."""
    store = make_store(tmp_path)
    for attempt in range(4):
        commit = store.write(reader_of(rows(range(50), f"r{attempt}")), request(f"run{attempt:04d}"))
        assert commit.rows == 50 and commit.run_type == "full_drop"
        table = landed(store)
        assert table.num_rows == 50
        assert table.equals(rows(range(50), f"r{attempt}"))
    assert files_under(work(tmp_path) / "staging") == []


def test_full_drop_of_fewer_rows_removes_the_old_ones(tmp_path: Path) -> None:
    """A smaller full_drop does not leave rows of the earlier, larger load behind."""
    store = make_store(tmp_path, file_rows=10)
    store.write(reader_of(rows(range(100))), request("big00000"))
    assert len(store.data_files()) > 5  # files roll over at batch boundaries past file_rows
    store.write(reader_of(rows(range(3), "small")), request("small000"))
    assert landed(store).equals(rows(range(3), "small"))
    assert len(store.data_files()) == 1


def test_full_drop_keeps_exact_types(tmp_path: Path) -> None:
    """Landed files carry the pinned schema exactly: decimal(38,18), UTC microseconds, binary."""
    store = make_store(tmp_path)
    store.write(reader_of(rows(range(5))), request("types000"))
    [name] = store.data_files()
    assert pq.read_schema(tmp_path / name).equals(SCHEMA)
    assert landed(store).column("amount")[1].as_py() == Decimal("1.123456789012345678")


# --- incremental -------------------------------------------------------------------------------


def test_incremental_without_key_appends(tmp_path: Path) -> None:
    """Incremental runs without a primary key add rows next to what landed."""
    store = make_store(tmp_path)
    store.write(reader_of(rows(range(10))), request("first000"))
    store.write(reader_of(rows(range(10, 15))), request("second00", "incremental"))
    store.write(reader_of(rows(range(15, 20))), request("third000", "incremental"))
    assert landed(store).column("id").to_pylist() == list(range(20))


def test_incremental_with_primary_key_upserts(tmp_path: Path) -> None:
    """Rows whose key already landed are replaced, new keys are added, untouched rows stay."""
    store = make_store(tmp_path, file_rows=10)
    store.write(reader_of(rows(range(30), "old")), request("load0000"))  # three files of ten
    changes = pa.concat_tables([rows([5, 6, 25], "new"), rows([30, 31], "new")])
    commit = store.write(reader_of(changes), request("upsert00", "incremental", ["id"]))
    assert commit.rows == 5
    table = landed(store)
    assert table.column("id").to_pylist() == list(range(32))
    names = dict(zip(table.column("id").to_pylist(), table.column("name").to_pylist(), strict=True))
    assert {i for i, n in names.items() if n.startswith("new")} == {5, 6, 25, 30, 31}
    assert names[0] == "old-0" and names[29] == "old-29"
    assert table.schema.equals(SCHEMA)


def test_an_upsert_rewrite_larger_than_one_file_keeps_every_row(tmp_path: Path) -> None:
    """A file rewritten without the replaced keys may be cut into several files: none overwrites another."""
    count = 140_000  # the rewrite reads back 64k-row batches: three of them
    make_store(tmp_path).write(reader_of(rows(range(count), "old"), 20_000), request("load0000"))  # one file
    store = make_store(tmp_path, file_rows=65_536)
    store.write(reader_of(rows([3, 50], "new")), request("upsert00", "incremental", ["id"]))
    ids = store.scan().column("id")
    assert len(ids) == count and pa.compute.count_distinct(ids).as_py() == count
    assert len(store.data_files()) >= 3  # the new rows, and the rewrite cut in two


def test_incremental_upsert_with_composite_key(tmp_path: Path) -> None:
    """A composite primary key matches on every key column."""
    store = make_store(tmp_path)
    base = rows(range(6), "old")
    store.write(reader_of(base), request("load0000"))
    # Same id, different name: with the key (id, name) these are new rows, not replacements.
    changes = rows([1, 2], "new")
    store.write(reader_of(changes), request("upsert00", "incremental", ["id", "name"]))
    assert landed(store).num_rows == 8
    # Same (id, name): replaced.
    again = rows([1], "new").set_column(6, "flag", pa.array([True]))
    store.write(reader_of(again), request("upsert01", "incremental", ["id", "name"]))
    table = landed(store)
    assert table.num_rows == 8
    match = table.filter(pa.compute.equal(table.column("name"), "new-1"))
    assert match.column("flag").to_pylist() == [True]


def test_repeated_upsert_of_the_same_rows_is_idempotent(tmp_path: Path) -> None:
    """Re-reading the same window (inclusive watermark) and upserting it again changes nothing."""
    store = make_store(tmp_path)
    store.write(reader_of(rows(range(10))), request("load0000"))
    for run in range(3):
        store.write(reader_of(rows(range(5, 12), "again")), request(f"again{run:03d}", "incremental", ["id"]))
    table = landed(store)
    assert table.column("id").to_pylist() == list(range(12))


# --- file names --------------------------------------------------------------------------------


def test_file_names_never_collide_across_runs(tmp_path: Path) -> None:
    """Every run adds new file names (even with a frozen clock and run ids sharing a prefix);
    no run overwrites another's file."""
    store = make_store(tmp_path)
    seen: set[str] = set()
    total = 0
    for run in range(8):
        before = set(store.data_files())
        run_id = f"samepref{run:024d}"  # first 8 characters equal for every run
        store.write(reader_of(rows(range(total, total + 3))), request(run_id, "incremental"))
        total += 3
        added = set(store.data_files()) - before
        assert len(added) == 1
        assert not (added & seen)
        seen |= added
    assert landed(store).num_rows == total
    assert len(store.data_files()) == 8


def test_file_names_unique_with_a_frozen_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs stamped in the same instant (coarse clock) still get different file names."""
    monkeypatch.setattr(parquet_module, "_stamp", lambda: "20240101T000000000000")
    store = make_store(tmp_path)
    store.write(reader_of(rows(range(3))), request("aaaaaaaa1111", "incremental"))
    store.write(reader_of(rows(range(3, 6))), request("aaaaaaaa2222", "incremental"))
    assert landed(store).column("id").to_pylist() == list(range(6))
    assert len(store.data_files()) == 2


def test_the_table_folder_holds_its_data_files_only(tmp_path: Path) -> None:
    """Landed files are plain top-level *.parquet and nothing else is in the folder (any reader of the
    folder sees the table); bookkeeping lives beside it and leaves no empty run folder behind."""
    store = make_store(tmp_path)
    store.write(reader_of(rows(range(3))), request("run00000"))
    store.write(reader_of(rows(range(3, 5))), request("run00001", "incremental", ["id"]))
    assert all(p.is_file() and p.suffix == ".parquet" for p in tmp_path.iterdir())
    assert (work(tmp_path) / "commits").is_dir()
    assert list((work(tmp_path) / "staging").iterdir()) == []


# --- failures ----------------------------------------------------------------------------------


class Boom(RuntimeError):
    pass


def failing_reader(good: pa.Table, after_batches: int) -> pa.RecordBatchReader:
    def batches():
        for index, batch in enumerate(good.to_batches(max_chunksize=5)):
            if index == after_batches:
                raise Boom("source connection dropped")
            yield batch

    return pa.RecordBatchReader.from_batches(good.schema, batches())


@pytest.mark.parametrize("run_type", ["full_drop", "incremental"])
def test_reader_failing_mid_stream_leaves_nothing_visible(tmp_path: Path, run_type: str) -> None:
    """A source failing after some batches changes nothing a reader can see, and the next recover()
    leaves nothing in staging."""
    store = make_store(tmp_path, file_rows=5)  # several files staged before the failure
    store.write(reader_of(rows(range(10), "kept")), request("load0000"))
    before = landed(store)
    files_before = store.data_files()

    with pytest.raises(Boom):
        store.write(
            failing_reader(rows(range(100, 200), "bad"), after_batches=3), request("fail0000", run_type)
        )

    assert store.data_files() == files_before
    assert landed(store).equals(before)
    store.recover()
    assert files_under(work(tmp_path) / "staging") == []
    assert landed(store).equals(before)
    # The entity still works afterwards.
    store.write(reader_of(rows(range(3), "next")), request("next0000"))
    assert landed(store).equals(rows(range(3), "next"))


def test_recover_removes_staging_left_by_a_hard_crash(tmp_path: Path) -> None:
    """Staged files of a process that died before writing its commit record are discarded."""
    store = make_store(tmp_path)
    store.write(reader_of(rows(range(4))), request("load0000"))
    orphan = work(tmp_path) / "staging" / "deadrun0" / "part-x.parquet"
    orphan.parent.mkdir(parents=True)
    pq.write_table(rows(range(100, 110)), orphan)
    assert landed(store).num_rows == 4  # staging is never visible
    commit = store.recover()
    assert files_under(work(tmp_path) / "staging") == []
    assert landed(store).num_rows == 4
    assert commit is not None and commit.entity_run_id == "load0000"


def test_a_store_of_the_older_layout_is_moved_out_of_the_table_folder(tmp_path: Path) -> None:
    """Stores written before the bookkeeping moved beside the table (`_hygge_commits/` and
    `_hygge_staging/` inside it): the next recovery rolls a pending legacy commit forward, moves the
    records, removes legacy staging, and leaves the table folder holding only its data files."""
    import json

    store = make_store(tmp_path)
    pq.write_table(rows(range(4)), tmp_path / "part-old.parquet")
    legacy = tmp_path / "_hygge_commits"
    legacy.mkdir()
    applied = {"entity_run_id": "old00000", "run_type": "full_drop", "rows": 4, "state": "applied",
               "adds": [["_hygge_staging/old00000/part-old.parquet", "part-old.parquet"]], "removes": [],
               "owner": "t/f/e", "position": None}
    (legacy / "20260101T000000000000-old00000.json").write_text(json.dumps(applied))
    staged = tmp_path / "_hygge_staging" / "new00000" / "part-new.parquet"
    staged.parent.mkdir(parents=True)
    pq.write_table(rows(range(4, 6)), staged)
    pending = {**applied, "entity_run_id": "new00000", "run_type": "incremental", "rows": 2, "state": "pending",
               "adds": [["_hygge_staging/new00000/part-new.parquet", "part-new.parquet"]]}
    (legacy / "20260102T000000000000-new00000.json").write_text(json.dumps(pending))
    orphan = tmp_path / "_hygge_staging" / "dead0000" / "part-x.parquet"
    orphan.parent.mkdir(parents=True)
    pq.write_table(rows(range(100, 101)), orphan)

    commit = store.recover()
    assert commit is not None and commit.entity_run_id == "new00000" and commit.owner == "t/f/e"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-new.parquet", "part-old.parquet"]
    assert landed(store).equals(rows(range(6)))
    records = sorted(p.name for p in (work(tmp_path) / "commits").iterdir())
    assert records == ["20260101T000000000000-old00000.json", "20260102T000000000000-new00000.json"]
    assert all(json.loads((work(tmp_path) / "commits" / r).read_text())["state"] == "applied" for r in records)


def test_a_table_folder_deleted_by_hand_is_no_commit(tmp_path: Path) -> None:
    """The records outlive the folder they describe: a folder emptied by hand recovers as no commit
    (the drift check then refuses or reloads), one that lost some files as a foreign change."""
    store = make_store(tmp_path, file_rows=2)
    store.write(reader_of(rows(range(4)), 1), request("load0000"))
    files = sorted(tmp_path.glob("*.parquet"))
    assert len(files) == 2
    files[0].unlink()
    commit = store.recover()
    assert commit is not None and commit.foreign and "gone" in commit.foreign
    for file in files[1:]:
        file.unlink()
    assert store.recover() is None


@pytest.mark.parametrize("run_type", ["full_drop", "incremental"])
def test_crash_after_commit_record_is_rolled_forward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_type: str
) -> None:
    """A crash after the commit record is written but before it was applied is finished by recover():
    the store then holds exactly what that run wrote, and recover() reports that run."""
    store = make_store(tmp_path)
    store.write(reader_of(rows(range(10), "old")), request("load0000"))
    before = landed(store)
    real_apply = ParquetStore._apply

    def crash(self, record_path, record):
        raise Boom("killed before applying")

    monkeypatch.setattr(ParquetStore, "_apply", crash)
    key = ["id"] if run_type == "incremental" else None
    with pytest.raises(Boom):
        store.write(reader_of(rows(range(5, 15), "new")), request("crashed0", run_type, key))
    assert landed(store).equals(before)  # nothing visible yet
    monkeypatch.setattr(ParquetStore, "_apply", real_apply)

    commit = store.recover()
    assert commit is not None and commit.entity_run_id == "crashed0" and commit.rows == 10
    table = landed(store)
    if run_type == "full_drop":
        assert table.equals(rows(range(5, 15), "new"))
    else:
        expected = pa.concat_tables([rows(range(5), "old"), rows(range(5, 15), "new")])
        assert table.equals(expected)
    assert files_under(work(tmp_path) / "staging") == []
    # A second recover() is a no-op.
    assert store.recover().entity_run_id == "crashed0"
    assert landed(store).equals(table)


def test_crash_half_way_through_applying_is_rolled_forward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after some renames of a commit were done is completed by recover() (idempotent apply)."""
    store = make_store(tmp_path, file_rows=4)
    store.write(reader_of(rows(range(6), "old")), request("load0000"))
    real_rename = Storage.rename
    calls = {"n": 0}

    def rename(self, src, dst, *, overwrite=False):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Boom("killed mid-apply")
        return real_rename(self, src, dst, overwrite=overwrite)

    monkeypatch.setattr(Storage, "rename", rename)
    with pytest.raises(Boom):
        store.write(reader_of(rows(range(100, 110), "new")), request("half0000"))
    monkeypatch.undo()

    store.recover()
    assert landed(store).equals(rows(range(100, 110), "new"))
    assert files_under(work(tmp_path) / "staging") == []


def test_recover_on_an_empty_folder(tmp_path: Path) -> None:
    """A store that never committed anything recovers to nothing."""
    store = make_store(tmp_path / "new")
    assert store.recover() is None
    assert store.scan().num_rows == 0
    assert store.max_value("id") is None


def test_max_value_and_rows_between(tmp_path: Path) -> None:
    """max_value and rows_between read the landed rows (used for watermarks and de-duplication)."""
    store = make_store(tmp_path, file_rows=4)
    store.write(reader_of(rows(range(10))), request("load0000"))
    assert store.max_value("id") == 9
    assert store.max_value("at") == dt.datetime(2024, 1, 1, 0, 0, 9, tzinfo=dt.UTC)
    window = store.rows_between("id", 3, 5).sort_by("id")
    assert window.column("id").to_pylist() == [3, 4, 5]


def test_old_commit_records_are_pruned(tmp_path: Path) -> None:
    """recover() keeps only the last few applied commit records, so it does not slow down run after run."""
    from hygge.stores.parquet import KEEP_COMMIT_RECORDS

    store = make_store(tmp_path)
    for i in range(KEEP_COMMIT_RECORDS + 5):
        store.write(reader_of(rows([i])), request(f"run{i:04d}", "incremental"))
        last = store.recover()
    assert len(store.root.list(store.commits)) == KEEP_COMMIT_RECORDS
    assert last is not None and last.entity_run_id == f"run{KEEP_COMMIT_RECORDS + 4:04d}"
    assert landed(store).num_rows == KEEP_COMMIT_RECORDS + 5


def test_a_first_keyed_incremental_load_does_not_gather_keys(tmp_path: Path, monkeypatch) -> None:
    """With nothing landed there is nothing to replace: no keys are gathered and no file rewritten
    (gathering a whole table's keys cost 600 MB at 10M rows)."""
    store = make_store(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("a first load looked for rows to replace")

    monkeypatch.setattr(ParquetStore, "_changed_files", refuse)
    commit = store.write(reader_of(rows(range(20))), request("first000", "incremental", ["id"]))
    assert commit.rows == 20
