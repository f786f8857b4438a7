"""The acceptance exercises Microsoft's mirroring guide sets for Open Mirroring writers (the "Mirroring
Book", MarkPryceMaherMSFT/Mirroring-Book, Part 3, "Acceptance Exercises"), each run with a real
PostgreSQL source against the local replicator (hygge/fabric/replicator.py, a test double for
Fabric's service), with the mirrored database item on local disk and on Azurite. Every test ends by
comparing what Fabric's side holds (the replicated Delta table) with the source, after ingestion, not
only after upload."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from hygge.errors import HyggeError, StoreError
from hygge.fabric.replicator import LocalReplicator
from hygge.storage import Storage
from hygge.stores.replay import DATA_FILE
from tests.crash_harness import REPO, run_killed
from tests.helpers import MirrorItem, mirror_item, pg_execute, pg_rows, run, write_project


class Item(MirrorItem):
    """The item, with the exercises' one table `items`."""

    @property
    def items(self) -> Storage:
        return self.table("items")

    def data_files(self) -> list[str]:
        return sorted(o["path"] for o in self.items.list() if DATA_FILE.match(o["path"]))


@pytest.fixture(params=["local", "azurite"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Item:
    found = mirror_item(request, tmp_path / "project")
    return Item(found.store, found.item)


@pytest.fixture(autouse=True)
def _short_leases(monkeypatch: pytest.MonkeyPatch) -> None:
    """A killed run leaves its entity lease behind until it expires: 3 s here, not 2 minutes."""
    monkeypatch.setenv("HYGGE_LEASE_SECONDS", "3")


def project(place: Item, tmp_path: Path, pg_db: str, **extra: Any) -> Path:
    flow: dict[str, Any] = {
        "home": {"type": "sql", "connection": "db", "batch_size": 100},
        "store": {
            "type": "open_mirroring",
            **place.store,
            "folder_deletion_wait_seconds": 0,
            "file_rows": 200,
        },
        "run_type": "incremental",
        "watermark": {"primary_key": ["id"], "watermark_column": "updated_at"},
        "entities": ["items"],
    }
    flow.update(extra)
    root = tmp_path / "project"
    return write_project(root, connections={"db": {"type": "postgres", "url": pg_db}}, flows={"f": flow})


@pytest.fixture
def items(pg_db: str) -> str:
    pg_execute(
        pg_db,
        "CREATE TABLE items (id int PRIMARY KEY, v text, updated_at timestamp DEFAULT clock_timestamp())",
        "INSERT INTO items (id, v, updated_at) SELECT i, 'v' || i, timestamp '2026-01-01' FROM generate_series(1, 1000) i",
    )
    return pg_db


def source(pg_db: str) -> list[dict]:
    return sorted(pg_rows(pg_db, "SELECT id, v, updated_at FROM items")[1], key=lambda r: r["id"])


def fabric(place: Item) -> list[dict]:
    """The mirrored table, once the replicator applied everything published."""
    LocalReplicator(place.item).step()
    rows = place.mirrored("items").to_pylist()
    assert len({r["id"] for r in rows}) == len(rows), "a key twice in Fabric's table"
    return sorted(rows, key=lambda r: r["id"])


def test_writes_during_the_initial_snapshot(place: Item, tmp_path: Path, items: str) -> None:
    """Rows inserted and updated while the first load streams land by the next run: the snapshot's
    boundary is its watermark, and the next window starts there."""
    root = project(place, tmp_path, items)
    env = dict(os.environ, HYGGE_FAULT="extract.batch:2:sleep", HYGGE_FAULT_SLEEP="2", PYTHONPATH=str(REPO))
    go = [
        sys.executable,
        "-c",
        "from hygge.cli.main import app; app()",
        "go",
        "--project",
        str(root),
        "--full-drop",
    ]
    proc = subprocess.Popen(go, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "hygge fault: extract.batch hit" in line:
            break
    pg_execute(
        items,
        "UPDATE items SET v = 'during', updated_at = clock_timestamp() WHERE id IN (5, 950)",
        "INSERT INTO items (id, v) VALUES (2000, 'during')",
        "DELETE FROM items WHERE id = 7",  # a delete: found by the key comparison below
    )
    proc.stderr.read()
    assert proc.wait(timeout=120) == 0
    flow = root / "flows" / "f" / "flow.yml"
    config = yaml.safe_load(flow.read_text())
    config["deletes"] = {}
    flow.write_text(yaml.safe_dump(config))
    assert run(root, "f", "items").status == "success"
    assert fabric(place) == source(items)


def test_a_key_deleted_and_a_key_changed(place: Item, tmp_path: Path, items: str) -> None:
    """The old identity is gone and the new one holds the right values (a key update is a delete of the
    old key and an insert of the new: found by comparing keys)."""
    root = project(place, tmp_path, items, deletes={})
    run(root, "f", "items", run_type="full_drop")
    pg_execute(items, "UPDATE items SET id = 5000, v = 'moved', updated_at = clock_timestamp() WHERE id = 3")
    pg_execute(items, "DELETE FROM items WHERE id = 4")
    assert run(root, "f", "items").status == "success"
    mirrored = fabric(place)
    assert mirrored == source(items)
    assert {3, 4}.isdisjoint(r["id"] for r in mirrored) and mirrored[-1]["v"] == "moved"


def test_several_changes_to_one_key_between_runs(place: Item, tmp_path: Path, items: str) -> None:
    """Updated three times, deleted and inserted again: the final state follows the source."""
    root = project(place, tmp_path, items, deletes={})
    run(root, "f", "items", run_type="full_drop")
    for value in ("a", "b", "c"):
        pg_execute(items, f"UPDATE items SET v = '{value}', updated_at = clock_timestamp() WHERE id = 10")
    pg_execute(items, "DELETE FROM items WHERE id = 11", "INSERT INTO items (id, v) VALUES (11, 'again')")
    assert run(root, "f", "items").status == "success"
    assert fabric(place) == source(items)


def test_a_failed_temporary_upload_exposes_no_file(place: Item, tmp_path: Path, items: str) -> None:
    """Killed while a staged file is half written: no new data file is visible; the rerun lands all."""
    root = project(place, tmp_path, items)
    run(root, "f", "items", run_type="full_drop")
    before = place.data_files()
    pg_execute(items, "UPDATE items SET v = 'x', updated_at = clock_timestamp() WHERE id <= 600")
    run_killed(root, "incremental", "files.row_group:3")
    assert place.data_files() == before
    assert run(root, "f", "items").status == "success"
    assert fabric(place) == source(items)


def test_a_lost_rename_response_publishes_the_batch_once(
    place: Item, tmp_path: Path, items: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rename of a staged file succeeds but its response is lost (the call raises): the retry finds
    the same assigned batch at its number and neither overwrites it nor publishes it again."""
    root = project(place, tmp_path, items)
    run(root, "f", "items", run_type="full_drop")
    pg_execute(items, "UPDATE items SET v = 'y', updated_at = clock_timestamp() WHERE id <= 500")
    rename, lost = Storage.rename, []

    def flaky(self: Storage, src: str, dst: str, *, overwrite: bool = False) -> None:
        rename(self, src, dst, overwrite=overwrite)
        if not lost and "/staging/" in src:
            lost.append(dst)
            raise StoreError("connection reset while renaming", transient=True)

    monkeypatch.setattr(Storage, "rename", flaky)
    with pytest.raises(HyggeError, match="connection reset"):
        run(root, "f", "items")
    monkeypatch.setattr(Storage, "rename", rename)
    files = place.data_files()
    assert run(root, "f", "items").status == "success"
    after = place.data_files()
    assert after[: len(files)] == files and [int(n[:20]) for n in after] == list(range(1, len(after) + 1))
    replicator = LocalReplicator(place.item)
    replicator.step()
    status = replicator.item.get("Files/Monitoring/tables.json")
    assert b'"processedRows": 1500' in status  # 1,000 loaded + 500 upserted, each once
    assert fabric(place) == source(items)


@pytest.mark.parametrize("point", ["om.file_published:1", "om.published", "runner.committed"])
def test_a_crash_after_publishing_before_the_checkpoint(place: Item, tmp_path: Path, items: str, point: str) -> None:
    """Recovery reconciles the assigned files before the watermark moves: nothing published twice,
    nothing skipped (a crash after the first file of a batch keeps it and publishes the rest)."""
    root = project(place, tmp_path, items)
    run(root, "f", "items", run_type="full_drop")
    pg_execute(items, "UPDATE items SET v = 'z', updated_at = clock_timestamp() WHERE id <= 700")
    run_killed(root, "incremental", point)
    published = place.data_files()
    assert run(root, "f", "items").status == "success"
    after = place.data_files()
    assert after[: len(published)] == published
    assert [int(n[:20]) for n in after] == list(range(1, len(after) + 1))
    assert fabric(place) == source(items)


def test_a_published_path_with_other_content_stops_for_a_reconcile(place: Item, tmp_path: Path, items: str) -> None:
    """Verify before retry: the commit record holds each file's digest; a published path that now holds
    other bytes is never overwritten or reused, the run stops and says what to do."""
    root = project(place, tmp_path, items)
    run(root, "f", "items", run_type="full_drop")
    pg_execute(items, "UPDATE items SET v = 'w', updated_at = clock_timestamp() WHERE id <= 300")
    run_killed(root, "incremental", "om.file_published:1")
    victim = place.data_files()[-1]
    tampered = place.items.get(victim)[:-8] + b"12345678"
    place.items.put(victim, tampered)
    with pytest.raises(StoreError, match="does not hold the content hygge published") as info:
        run(root, "f", "items")
    assert "--full-drop" in str(info.value)
    assert place.items.get(victim) == tampered  # left as it is


def test_lost_local_state_reloads_instead_of_jumping_ahead(place: Item, tmp_path: Path, items: str) -> None:
    """hygge's own folder (commit records, key log, journal) deleted: the next run does not jump to the
    latest position; it reads every row again and Fabric ends equal to the source."""
    root = project(place, tmp_path, items)
    run(root, "f", "items", run_type="full_drop")
    pg_execute(items, "UPDATE items SET v = 'after', updated_at = clock_timestamp() WHERE id <= 50")
    place.item.child("Files", "LandingZone").delete_folder("_hygge")
    result = run(root, "f", "items")
    assert result.status == "success" and result.rows == 1000
    assert fabric(place) == source(items)


def test_a_key_change_needs_a_planned_rebuild(place: Item, tmp_path: Path, items: str) -> None:
    root = project(place, tmp_path, items)
    run(root, "f", "items", run_type="full_drop")
    pg_execute(items, "ALTER TABLE items ADD COLUMN w int DEFAULT 1")  # compatible: carries on
    pg_execute(items, "UPDATE items SET updated_at = clock_timestamp() WHERE id = 1")
    assert run(root, "f", "items").status == "success"
    flow = root / "flows" / "f" / "flow.yml"
    config = yaml.safe_load(flow.read_text())
    config["watermark"]["primary_key"] = ["id", "v"]
    flow.write_text(yaml.safe_dump(config))
    with pytest.raises(StoreError, match="key columns"):
        run(root, "f", "items")
    assert run(root, "f", "items", run_type="full_drop").status == "success"
    expected = sorted(pg_rows(items, "SELECT id, v, updated_at, w FROM items")[1], key=lambda r: r["id"])
    assert fabric(place) == expected


def test_two_publishers_at_once(place: Item, tmp_path: Path, items: str) -> None:
    """Two runs of the entity at once: one lands, the other is refused by the lease; the numbers stay
    continuous and in order."""
    root = project(place, tmp_path, items)
    run(root, "f", "items", run_type="full_drop")
    pg_execute(items, "UPDATE items SET v = 'two', updated_at = clock_timestamp() WHERE id <= 400")
    outcomes: list[str] = []

    def one() -> None:
        try:
            outcomes.append(run(root, "f", "items").status)
        except HyggeError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert "success" in outcomes
    assert [int(n[:20]) for n in place.data_files()] == list(range(1, len(place.data_files()) + 1))
    assert fabric(place) == source(items)
