"""A change feed through the runner: PostgreSQL logical decoding lands every insert, update and delete
on every store; the first run (and an expired or truncated window) reloads in full; the slot moves
only after the journal recorded the window, so a crash in between re-reads and never loses."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from hygge.changes import pg_logical
from hygge.errors import SourceError
from tests.convergence import STORES, T0, create, land, landed_rows, listing, project, source, verified
from tests.helpers import journal, pg_execute

FEED = {"feed": {"type": "postgres_logical"}}


def confirmed(pg_db: str) -> str | None:
    with psycopg.connect(pg_db) as conn:
        row = conn.execute("SELECT confirmed_flush_lsn::text FROM pg_replication_slots").fetchone()
    return row[0] if row else None


def lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def later(hours: int) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


@pytest.mark.parametrize("kind", STORES)
def test_logical_decoding_lands_every_change(tmp_path, pg_db, kind) -> None:
    create(pg_db, 20)
    root = project(tmp_path, pg_db, kind, entity=FEED)
    first = land(root)  # no position yet: a full load, which creates the slot first
    assert (first.run_type, first.rows) == ("full_drop", 20)
    assert landed_rows(root) == source(pg_db)
    pg_execute(
        pg_db,
        "DELETE FROM items WHERE id IN (2, 3)",
        "UPDATE items SET name = 'once' WHERE id = 5",
        "UPDATE items SET name = 'twice' WHERE id = 5",
        "UPDATE items SET amount = 0 WHERE id = 6",  # no watermark change: a feed still sees it
        ("INSERT INTO items VALUES (2, 'back', 1, %s), (30, 'new', 2, %s)", (later(1), later(1))),
    )
    second = land(root)
    assert second.run_type == "incremental" and second.rows == 4  # 2 (again), 5, 6, 30
    assert landed_rows(root) == source(pg_db)
    assert verified(root)
    last = [e for e in journal(root, "f", "items") if e.run_type != "verify"][-1]
    assert (last.watermark_type, last.deleted_count) == ("pg_lsn", 1)
    assert lsn(confirmed(pg_db)) == lsn(last.watermark)  # acknowledged only after the journal

    before = listing(tmp_path, kind)
    assert land(root).rows == 0  # nothing changed: nothing written
    assert listing(tmp_path, kind) == before


@pytest.mark.parametrize("kind", ["parquet", "open_mirroring"])
def test_a_crash_before_the_slot_moves_re_reads_the_window(tmp_path, pg_db, kind, monkeypatch) -> None:
    create(pg_db, 10)
    root = project(tmp_path, pg_db, kind, entity=FEED)
    land(root)
    pg_execute(pg_db, "DELETE FROM items WHERE id = 4", "UPDATE items SET name = 'x' WHERE id = 7")
    with monkeypatch.context() as patched:
        patched.setattr(pg_logical.LogicalFeed, "acknowledge", lambda self, window: None)
        land(root)  # journaled, but the slot was never advanced (as if the process died there)
    held = confirmed(pg_db)
    pg_execute(pg_db, ("INSERT INTO items VALUES (40, 'later', 1, %s)", (later(2),)))
    land(root)
    assert lsn(confirmed(pg_db)) > lsn(held)
    assert landed_rows(root) == source(pg_db)


def test_truncate_reloads_in_full(tmp_path, pg_db) -> None:
    create(pg_db, 10)
    root = project(tmp_path, pg_db, "delta", entity=FEED)
    land(root)
    pg_execute(pg_db, "TRUNCATE items", ("INSERT INTO items VALUES (1, 'only', 1, %s)", (later(1),)))
    result = land(root, allow_mass_delete=True)
    assert result.run_type == "full_drop"
    assert landed_rows(root) == source(pg_db)


def test_an_expired_position_reloads_or_fails(tmp_path, pg_db) -> None:
    create(pg_db, 10)
    root = project(tmp_path, pg_db, "parquet", entity=FEED)
    land(root)
    pg_execute(pg_db, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots")
    pg_execute(pg_db, "DELETE FROM items WHERE id = 1")  # not in any slot: only a reload finds it
    result = land(root)
    assert result.run_type == "full_drop"
    assert landed_rows(root) == source(pg_db)

    strict = project(
        tmp_path / "strict", pg_db, "parquet", entity={"feed": {"type": "postgres_logical", "on_expired": "fail"}}
    )
    land(strict)
    pg_execute(pg_db, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots")
    with pytest.raises(SourceError) as caught:
        land(strict)
    assert "--full-drop" in (caught.value.hint or "")


def test_feed_on_the_wrong_dialect_is_a_config_error(tmp_path, pg_db) -> None:
    from hygge.errors import ConfigError

    create(pg_db, 2)
    root = project(tmp_path, pg_db, "parquet", entity={"feed": {"type": "change_tracking"}})
    with pytest.raises(ConfigError, match="reads a mssql table"):
        land(root)


@pytest.mark.parametrize("kind", STORES)
def test_a_feed_deleting_most_keys_is_refused_until_confirmed(tmp_path, pg_db, kind) -> None:
    create(pg_db, 10)
    root = project(tmp_path, pg_db, kind, entity=FEED)
    land(root)
    before = landed_rows(root)
    pg_execute(pg_db, "DELETE FROM items WHERE id > 2")
    with pytest.raises(SourceError, match="change feed would delete 8 of 10 landed keys"):
        land(root)
    assert landed_rows(root) == before
    land(root, allow_mass_delete=True)  # the same window again, confirmed
    assert landed_rows(root) == source(pg_db)


def test_a_truncate_reload_of_a_feed_entity_is_guarded(tmp_path, pg_db) -> None:
    """A feed entity has no `deletes:`, yet a TRUNCATE (reloaded in full) must not empty its store
    unconfirmed either."""
    create(pg_db, 10)
    root = project(tmp_path, pg_db, "open_mirroring", entity=FEED)
    land(root)
    pg_execute(pg_db, "TRUNCATE items")
    with pytest.raises(SourceError, match="full reload would delete 10 of 10 landed keys"):
        land(root)
    assert len(landed_rows(root)) == 10


def test_feed_drop_command_removes_the_slot_and_the_next_run_reloads(tmp_path, pg_db) -> None:
    from typer.testing import CliRunner

    from hygge.cli.main import app

    create(pg_db, 5)
    root = project(tmp_path, pg_db, "parquet", entity=FEED)
    land(root)
    assert confirmed(pg_db) is not None
    result = CliRunner().invoke(app, ["feed", "drop", "--project", str(root), "--entity", "f.items"])
    assert result.exit_code == 0, result.output
    assert "dropped slot hygge_f_items_" in result.output
    assert confirmed(pg_db) is None
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT count(*) FROM pg_publication").fetchone()[0] == 0
    assert land(root).run_type == "full_drop"  # no slot: the position is gone, reloaded in full
    assert landed_rows(root) == source(pg_db)


def test_open_mirroring_feed_guard_counts_keys_only_when_the_floor_refuses(tmp_path, pg_db, monkeypatch) -> None:
    """The key log's floor (first log less later deletes) spares a replay of every key each run; a
    floor below the guard's line is recounted exactly, so keys deleted and inserted again never
    make the guard refuse what the true count allows."""
    from hygge.stores.open_mirroring import OpenMirroringStore

    create(pg_db, 10)
    root = project(tmp_path, pg_db, "open_mirroring", entity=FEED)
    land(root)
    pg_execute(pg_db, "DELETE FROM items WHERE id IN (1, 2, 3)")
    land(root)
    pg_execute(pg_db, ("INSERT INTO items SELECT g, 'again', 1, %s FROM generate_series(1, 3) g", (later(1),)))
    land(root)  # floor 7, live 10
    exact = OpenMirroringStore.row_count
    with monkeypatch.context() as patched:
        patched.setattr(OpenMirroringStore, "row_count", lambda self: pytest.fail("replayed every key"))
        pg_execute(pg_db, "DELETE FROM items WHERE id = 10")
        land(root)  # 1 <= 0.5 * 7: the floor suffices
    counted: list[int] = []
    monkeypatch.setattr(OpenMirroringStore, "row_count", lambda self: counted.append(exact(self)) or counted[-1])
    pg_execute(pg_db, "DELETE FROM items WHERE id IN (5, 6, 7, 8)")
    land(root)  # 4 > 0.5 * 6 (floor: 10 - 3 - 1) yet 4 <= 0.5 * 9 live: allowed on the exact count
    assert counted == [9]
    assert landed_rows(root) == source(pg_db)
