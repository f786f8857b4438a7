"""Drift and ownership: an incremental run continues only while the store still holds the journal's last
commit; a store deleted, emptied, rolled back or rewritten by someone else fails (or, opted in, is
reloaded in full); a store location has one owner; a moved `store.path` starts afresh."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
import yaml

from hygge.errors import StoreError
from tests.convergence import STORES, T0, create, land, landed_rows, project, source, store_block, verified
from tests.helpers import journal, pg_execute


def grow(pg_db: str, start: int, count: int) -> None:
    pg_execute(
        pg_db,
        (
            "INSERT INTO items SELECT g, 'n' || g, g, %s + g * interval '1 second' "
            "FROM generate_series(%s::int, %s::int) g",
            (T0, start, start + count - 1),
        ),
    )


def folder(tmp_path, kind: str):
    return tmp_path / ("zone/items" if kind == "open_mirroring" else "lake/items")


@pytest.mark.parametrize("kind", STORES)
def test_store_deleted_by_hand_fails_the_incremental(tmp_path, pg_db, kind) -> None:
    create(pg_db, 1000)
    root = project(tmp_path, pg_db, kind)
    land(root, run_type="full_drop")
    shutil.rmtree(folder(tmp_path, kind))
    if kind == "open_mirroring":
        shutil.rmtree(tmp_path / "zone" / "_hygge" / "items")  # everything of that table
    grow(pg_db, 1001, 10)
    with pytest.raises(StoreError) as caught:
        land(root)
    message = caught.value.message
    assert "holds no hygge commit, but the journal's last success" in message
    assert str(folder(tmp_path, kind).name) in message
    assert "--full-drop" in (caught.value.hint or "")
    assert journal(root, "f", "items")[-1].status == "fail"
    land(root, run_type="full_drop")  # the fix the message names
    assert landed_rows(root) == source(pg_db)


@pytest.mark.parametrize("kind", STORES)
def test_on_drift_full_drop_reloads_and_journals_it(tmp_path, pg_db, kind) -> None:
    create(pg_db, 100)
    root = project(tmp_path, pg_db, kind, entity={"on_drift": "full_drop"})
    land(root, run_type="full_drop")
    shutil.rmtree(folder(tmp_path, kind))
    if kind == "open_mirroring":
        shutil.rmtree(tmp_path / "zone" / "_hygge" / "items")
    grow(pg_db, 101, 10)
    result = land(root)
    assert result.run_type == "full_drop" and result.rows == 110
    assert result.message.startswith("reloaded in full (on_drift: full_drop)")
    assert landed_rows(root) == source(pg_db)
    last = journal(root, "f", "items")[-1]
    assert (last.run_type, last.status) == ("full_drop", "success")


@pytest.mark.parametrize("kind", STORES)
def test_two_flows_writing_one_store_folder(tmp_path, pg_db, kind) -> None:
    create(pg_db, 300)
    store, _ = store_block(kind)
    second = {
        "home": {"type": "sql", "connection": "db"},
        "store": store,
        "run_type": "full_drop",
        "entities": [{"name": "items", "query": "SELECT * FROM items WHERE id > 250"}],
    }
    root = project(tmp_path, pg_db, kind, extra_flows={"g": second})
    land(root, run_type="full_drop")
    with pytest.raises(StoreError) as caught:
        land(root, flow="g")
    assert "belongs to t/f/items" in caught.value.message and "t/g/items would" in caught.value.message
    grow(pg_db, 301, 700)
    land(root)
    assert landed_rows(root) == source(pg_db)  # the owner's rows are untouched: 1,000 of 1,000
    assert verified(root)


def test_moved_store_path_starts_afresh_with_a_shared_journal(tmp_path, pg_db) -> None:
    create(pg_db, 1000)
    root = project(tmp_path, pg_db, "delta")
    config = yaml.safe_load((root / "hygge.yml").read_text())
    config["journal"] = {"path": "journal"}
    (root / "hygge.yml").write_text(yaml.safe_dump(config))
    land(root, run_type="full_drop")
    grow(pg_db, 1001, 10)
    flow_file = root / "flows" / "f" / "flow.yml"
    flow = yaml.safe_load(flow_file.read_text())
    flow["store"]["path"] = "lake2"
    flow_file.write_text(yaml.safe_dump(flow))
    result = land(root)
    assert result.rows == 1010  # everything: the watermark belonged to the old location
    assert result.watermark_before is None


def test_delta_rolled_back_by_someone_else(tmp_path, pg_db) -> None:
    from deltalake import DeltaTable

    create(pg_db, 10)
    root = project(tmp_path, pg_db, "delta")
    land(root, run_type="full_drop")
    pg_execute(
        pg_db, ("UPDATE items SET name = 'x', updated_at = %s WHERE id = 1", (T0 + dt.timedelta(hours=1),))
    )
    land(root)
    DeltaTable(str(tmp_path / "lake" / "items")).restore(0)
    with pytest.raises(StoreError, match="another writer"):
        land(root)


def test_a_project_moved_to_another_folder_continues(tmp_path, pg_db) -> None:
    """The same store content under a new absolute path (a clone, a renamed folder) is the same store."""
    create(pg_db, 20)
    root = project(tmp_path / "a", pg_db, "parquet")
    land(root, run_type="full_drop")
    moved = tmp_path / "b"
    shutil.move(str(tmp_path / "a"), moved)
    grow(pg_db, 21, 5)
    result = land(moved)
    assert result.rows == 5 and result.watermark_before is not None
    assert landed_rows(moved) == source(pg_db)
