"""The journal: concurrent writers lose no row, compaction changes no read, stale compaction leases
are taken over (the takeover race itself: test_lease.py), write failures surface as JournalError, and
last_success ignores failed runs."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hygge.errors import JournalError
from hygge.journal import LEASE, RUNS, SNAPSHOT, Entry, Journal, new_id
from hygge.lease import Holder
from hygge.storage import Storage

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def entry(
    flow: str = "sales",
    entity: str = "orders",
    *,
    status: str = "success",
    minute: int = 0,
    watermark: str | None = None,
    run_id: str | None = None,
) -> Entry:
    start = T0 + dt.timedelta(minutes=minute)
    return Entry(
        entity_run_id=run_id or new_id(),
        coordinator_run_id="coord",
        flow_run_id="flowrun",
        coordinator="test",
        flow=flow,
        entity=entity,
        start_time=start,
        finish_time=start + dt.timedelta(seconds=30),
        status=status,
        run_type="incremental",
        row_count=10,
        duration=30.0,
        primary_key="id",
        watermark_column="updated_at",
        watermark_type="datetime",
        watermark=watermark,
        message=None if status == "success" else "boom",
        schema_version="abc123",
    )


def run_files(folder: Path) -> list[Path]:
    runs = folder / RUNS
    return sorted(runs.glob("*.parquet")) if runs.exists() else []


# --- (a) many processes at once ----------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import datetime as dt, os, sys, time
    from hygge.journal import Entry, Journal, new_id
    from hygge.storage import Storage

    folder, index, count, compactor, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
    journal = Journal(Storage.local(folder))
    deadline = time.time() + 30
    while not os.path.exists(go):
        if time.time() > deadline:
            sys.exit(4)
        time.sleep(0.002)
    mine = []
    folded = 0
    for i in range(count):
        now = dt.datetime.now(dt.UTC)
        run_id = f"w{index:02d}-{i:03d}-{new_id()}"
        journal.record(Entry(run_id, "coord", "flowrun", "test", f"flow{index % 3}", f"entity{index}",
                             now, now, "success", "incremental", i, 0.1, "id", "ts", "int", str(i)))
        mine.append(run_id)
        if compactor:
            folded += journal.compact()
        if i % 5 == 4:
            seen = set(journal.read().column("entity_run_id").to_pylist())
            missing = [r for r in mine if r not in seen]
            if missing:
                print("missing", missing, file=sys.stderr)
                sys.exit(3)
    if compactor:
        for _ in range(20):
            folded += journal.compact()
        print("folded", folded)
    """
)


@pytest.mark.parametrize(
    ("workers", "count"), [(8, 50), pytest.param(16, 25, marks=pytest.mark.slow)], ids=["8x50", "16x25"]
)
def test_concurrent_writers_and_compaction_lose_no_row(tmp_path: Path, workers: int, count: int) -> None:
    """`workers` processes recording `count` entries each (400 in all; one also compacting all along,
    every one reading its own rows back meanwhile) leave exactly 400 unique entity runs, none missing
    at any read. Eight writers on two cores contend as hard as sixteen; the slow run has sixteen."""
    folder = tmp_path / "journal"
    go = tmp_path / "go"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(folder), str(i), str(count), "1" if i == 0 else "0", str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(workers)
    ]
    time.sleep(0.5)  # let every interpreter start and wait at the barrier
    go.write_text("go")
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    for index, (code, _out, err) in enumerate(results):
        assert code == 0, f"worker {index} exited {code}: {err[-2000:]}"
    assert "folded" in results[0][1]

    table = Journal(Storage.local(folder)).read()
    ids = table.column("entity_run_id").to_pylist()
    assert len(ids) == workers * count
    assert len(set(ids)) == workers * count
    expected = {f"w{w:02d}-{i:03d}" for w in range(workers) for i in range(count)}
    assert {i[:7] for i in ids} == expected
    assert not (folder / LEASE).exists()

    # A final compaction folds whatever is left and the reads stay identical.
    journal = Journal(Storage.local(folder))
    journal.compact()
    assert run_files(folder) == []
    assert sorted(journal.read().column("entity_run_id").to_pylist()) == sorted(ids)


# --- (b) compaction ----------------------------------------------------------------------------


def test_compaction_folds_runs_and_reads_stay_identical(tmp_path: Path) -> None:
    """compact() moves every run object into journal.parquet; read() and entries() do not change."""
    journal = Journal(Storage.local(tmp_path))
    for minute in range(6):
        journal.record(entry(entity=f"e{minute % 2}", minute=minute, watermark=str(minute)))
    before = journal.read().sort_by("entity_run_id")
    entries_before = journal.entries()
    assert before.num_rows == 6 and len(run_files(tmp_path)) == 6

    assert journal.compact() == 6
    assert run_files(tmp_path) == []
    assert (tmp_path / SNAPSHOT).is_file()
    assert not (tmp_path / LEASE).exists()
    after = journal.read().sort_by("entity_run_id")
    assert after.equals(before)
    assert journal.entries() == entries_before
    assert [e.entity for e in journal.entries(entity="e1")] == ["e1"] * 3

    # New runs land beside the snapshot; a second compaction folds them in with the old ones.
    journal.record(entry(minute=10))
    assert journal.read().num_rows == 7
    assert journal.compact() == 1
    assert journal.read().num_rows == 7 and run_files(tmp_path) == []
    assert journal.compact() == 0  # nothing to fold


def test_read_of_an_empty_journal(tmp_path: Path) -> None:
    """A journal folder that does not exist yet reads as an empty table with the full schema."""
    journal = Journal(Storage.local(tmp_path / "nothing"))
    table = journal.read()
    assert table.num_rows == 0
    assert "entity_run_id" in table.column_names and "schema_version" in table.column_names
    assert journal.last_success("f", "e") is None


def test_run_object_and_snapshot_holding_the_same_run_read_once(tmp_path: Path) -> None:
    """A run object left beside a snapshot that already holds it (compaction died after writing the
    snapshot) is read once."""
    journal = Journal(Storage.local(tmp_path))
    first = entry()
    journal.record(first)
    journal.compact()
    journal.record(entry(run_id="other"))
    # Put the folded object back, as if the compaction had died before deleting it.
    journal.location.put(f"{RUNS}/{first.entity_run_id}.parquet", _bytes(first))
    ids = journal.read().column("entity_run_id").to_pylist()
    assert sorted(ids) == sorted([first.entity_run_id, "other"])


def _bytes(e: Entry) -> bytes:
    import io

    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(e.to_table(), sink)
    return sink.getvalue()


def test_recording_the_same_run_twice_is_an_error(tmp_path: Path) -> None:
    """Entity run ids are unique: recording one twice fails instead of overwriting the first."""
    journal = Journal(Storage.local(tmp_path))
    journal.record(entry(run_id="same", watermark="1"))
    with pytest.raises(JournalError):
        journal.record(entry(run_id="same", watermark="2"))
    [only] = journal.entries()
    assert only.watermark == "1"


# --- (c) leases --------------------------------------------------------------------------------


def lease_object(owner: str, expires_in: float) -> str:
    """A compaction lease as another process would have written it (hygge.lease.Holder)."""
    now = time.time()
    return Holder(owner, "other-host", 7, now - 60, now + expires_in).to_bytes().decode()


def test_stale_lease_is_taken_over(tmp_path: Path) -> None:
    """A lease whose holder died (expired) does not block compaction forever."""
    journal = Journal(Storage.local(tmp_path))
    for minute in range(3):
        journal.record(entry(minute=minute))
    (tmp_path / LEASE).write_text(lease_object("dead", -1))
    assert journal.compact() == 3
    assert run_files(tmp_path) == []
    assert not (tmp_path / LEASE).exists()
    assert journal.read().num_rows == 3


def test_live_lease_is_respected(tmp_path: Path) -> None:
    """A lease another process still holds makes compact() a no-op that leaves that lease alone."""
    journal = Journal(Storage.local(tmp_path))
    journal.record(entry())
    live = lease_object("alive", 60)
    (tmp_path / LEASE).write_text(live)
    assert journal.compact() == 0
    assert len(run_files(tmp_path)) == 1
    assert (tmp_path / LEASE).read_text() == live
    assert journal.read().num_rows == 1


def test_live_lease_of_an_older_hygge_is_respected(tmp_path: Path) -> None:
    """A compaction lease in the format hygge wrote before hygge.lease is honoured until it expires."""
    journal = Journal(Storage.local(tmp_path))
    journal.record(entry())
    (tmp_path / LEASE).write_text(json.dumps({"owner": "old-host:7", "expires": time.time() + 60}))
    assert journal.compact() == 0
    (tmp_path / LEASE).write_text(json.dumps({"owner": "old-host:7", "expires": time.time() - 1}))
    assert journal.compact() == 1


def test_unreadable_lease_is_not_taken_as_free_forever(tmp_path: Path) -> None:
    """A corrupt lease file (puts are atomic: never a live holder) is taken over, not a raw error."""
    journal = Journal(Storage.local(tmp_path))
    journal.record(entry())
    (tmp_path / LEASE).write_text("{not json")
    assert journal.compact() == 1
    assert journal.read().num_rows == 1


# --- (d) failures are loud ---------------------------------------------------------------------


def test_record_failure_raises_journal_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A storage failure while recording is a JournalError naming the flow and entity; never swallowed."""
    journal = Journal(Storage.local(tmp_path))

    def broken_put(self, path, data, *, create_only=False):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(Storage, "put", broken_put)
    with pytest.raises(JournalError) as info:
        journal.record(entry(flow="sales", entity="orders"))
    text = str(info.value)
    assert "Read-only file system" in text
    assert "flow 'sales'" in text and "entity 'orders'" in text
    assert info.value.hint
    monkeypatch.undo()
    assert journal.read().num_rows == 0


def test_compaction_failure_raises_journal_error_and_keeps_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the snapshot cannot be written, compact() raises JournalError, releases its lease and
    leaves every run object in place."""
    journal = Journal(Storage.local(tmp_path))
    for minute in range(3):
        journal.record(entry(minute=minute))
    real_put = Storage.put

    def put(self, path, data, *, create_only=False):
        if path == SNAPSHOT:
            raise OSError(28, "No space left on device")
        return real_put(self, path, data, create_only=create_only)

    monkeypatch.setattr(Storage, "put", put)
    with pytest.raises(JournalError) as info:
        journal.compact()
    assert "No space left" in str(info.value)
    monkeypatch.undo()
    assert len(run_files(tmp_path)) == 3
    assert not (tmp_path / LEASE).exists()
    assert journal.read().num_rows == 3


def test_compaction_with_unwritable_storage_raises_journal_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even taking the lease failing surfaces as JournalError, not a raw OSError."""
    journal = Journal(Storage.local(tmp_path))
    journal.record(entry())

    def broken_put(self, path, data, *, create_only=False):
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(Storage, "put", broken_put)
    with pytest.raises(JournalError):
        journal.compact()


# --- (e) last_success --------------------------------------------------------------------------


def test_last_success_ignores_fail_and_skip_rows(tmp_path: Path) -> None:
    """The watermark comes from the latest successful run only; later failures and skips don't count."""
    journal = Journal(Storage.local(tmp_path))
    journal.record(entry(minute=0, watermark="2024-01-01T00:00:00.000000"))
    journal.record(entry(minute=5, watermark="2024-01-02T00:00:00.000000"))
    journal.record(entry(minute=10, status="fail", watermark="2099-01-01T00:00:00.000000"))
    journal.record(entry(minute=15, status="skip", watermark="2098-01-01T00:00:00.000000"))
    journal.record(entry(entity="other", minute=20, watermark="2097-01-01T00:00:00.000000"))
    journal.record(entry(flow="other", minute=25, watermark="2096-01-01T00:00:00.000000"))

    last = journal.last_success("sales", "orders")
    assert last is not None
    assert last.status == "success"
    assert last.watermark == "2024-01-02T00:00:00.000000"
    assert last.start_time == T0 + dt.timedelta(minutes=5)
    assert journal.last_success("sales", "missing") is None

    journal.compact()  # the same answer from the snapshot
    assert journal.last_success("sales", "orders").watermark == "2024-01-02T00:00:00.000000"


def test_last_success_is_none_when_every_run_failed(tmp_path: Path) -> None:
    """An entity whose runs all failed has no watermark yet."""
    journal = Journal(Storage.local(tmp_path))
    journal.record(entry(status="fail", watermark="5"))
    assert journal.last_success("sales", "orders") is None


def test_entries_round_trip_every_field(tmp_path: Path) -> None:
    """What record() wrote comes back field for field, timestamps in UTC."""
    journal = Journal(Storage.local(tmp_path))
    written = entry(watermark="42")
    written.previous_watermark = "41"
    written.store_commit = "commit-1"
    journal.record(written)
    [read] = journal.entries()
    assert read == written
    assert read.start_time.tzinfo is not None and read.start_time.utcoffset() == dt.timedelta(0)


def test_journal_folder_layout(tmp_path: Path) -> None:
    """Run objects live under runs/ named by entity run id; the snapshot is journal.parquet."""
    journal = Journal(Storage.local(tmp_path))
    journal.record(entry(run_id="abc"))
    assert [p.name for p in run_files(tmp_path)] == ["abc.parquet"]
    journal.compact()
    assert sorted(os.listdir(tmp_path)) in (["journal.parquet"], ["journal.parquet", "runs"])


def test_a_recovered_success_supersedes_the_failure_row(tmp_path: Path) -> None:
    """A run that failed after its store commit is later recorded as success (recovery): readers see
    the success, and a second success for the same run is still an error."""
    journal = Journal(Storage.local(tmp_path))
    failed = entry(run_id="r1", watermark="1")
    failed.status = "fail"
    journal.record(failed)
    assert not journal.succeeded("r1")
    journal.record(entry(run_id="r1", watermark="5"))
    assert journal.succeeded("r1")
    [only] = journal.entries()
    assert only.status == "success" and only.watermark == "5"
    with pytest.raises(JournalError):
        journal.record(entry(run_id="r1", watermark="6"))
    journal.compact()
    [only] = journal.entries()
    assert only.status == "success"
