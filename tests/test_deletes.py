"""Deletes reach every store: keys gone from the source are found by comparing key sets and land as
deletes (or soft deletes) in the same commit as the run's upserts; the mass-delete guard refuses a
source that suddenly returns nothing; `every` and `--reconcile` decide when key sets are compared."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from typer.testing import CliRunner

from hygge.cli.main import app
from hygge.errors import SourceError
from tests.convergence import (
    STORES,
    T0,
    create,
    land,
    landed_rows,
    listing,
    project,
    soft_deleted,
    source,
    verified,
)
from tests.helpers import journal, pg_execute


@pytest.fixture(params=["local", "azurite"])
def azure(request):
    """None for a local store, else (AzuriteInfo, container) of a fresh container."""
    return None if request.param == "local" else request.getfixturevalue("azure_container")


@pytest.mark.parametrize("kind", STORES)
def test_hard_deletes_land_with_the_upserts(tmp_path, pg_db, kind, azure) -> None:
    create(pg_db, 20)
    root = project(tmp_path, pg_db, kind, azure=azure, deletes={})
    land(root, run_type="full_drop")
    pg_execute(
        pg_db,
        "DELETE FROM items WHERE id IN (3, 7, 19)",
        ("UPDATE items SET name = 'changed', updated_at = %s WHERE id = 5", (T0 + dt.timedelta(hours=1),)),
        ("INSERT INTO items VALUES (21, 'new', 1, %s)", (T0 + dt.timedelta(hours=1),)),
    )
    result = land(root)
    assert result.rows == 2
    assert landed_rows(root) == source(pg_db)
    assert verified(root)
    last = [e for e in journal(root, "f", "items") if e.run_type == "incremental"][-1]
    assert (last.deleted_count, last.reconciled) == (3, True)
    assert "deleted 3 key(s)" in (last.message or "")

    # A deleted key inserted again comes back; deleting it again removes it again.
    pg_execute(pg_db, ("INSERT INTO items VALUES (3, 'again', 2, %s)", (T0 + dt.timedelta(hours=2),)))
    land(root)
    assert landed_rows(root) == source(pg_db)
    pg_execute(pg_db, "DELETE FROM items WHERE id = 3")
    land(root)
    assert landed_rows(root) == source(pg_db)
    assert verified(root)


@pytest.mark.parametrize("kind", STORES)
def test_soft_deletes_keep_the_row_and_set_the_column(tmp_path, pg_db, kind, azure) -> None:
    create(pg_db, 10)
    root = project(tmp_path, pg_db, kind, azure=azure, deletes={"mode": "soft", "column": "gone_at"})
    land(root, run_type="full_drop")
    pg_execute(pg_db, "DELETE FROM items WHERE id IN (2, 4)")
    before = dt.datetime.now(dt.UTC)
    land(root)
    marks = soft_deleted(root, "gone_at")
    assert sorted(marks) == [2, 4]
    assert all(before - dt.timedelta(seconds=5) <= v <= dt.datetime.now(dt.UTC) for v in marks.values())
    assert landed_rows(root, soft="gone_at") == source(pg_db)
    assert verified(root)

    # A second reconciliation leaves the first deletion time alone; a key inserted again is live again.
    pg_execute(pg_db, ("INSERT INTO items VALUES (4, 'back', 9, %s)", (T0 + dt.timedelta(hours=1),)))
    land(root)
    assert soft_deleted(root, "gone_at") == {2: marks[2]}
    assert landed_rows(root, soft="gone_at") == source(pg_db)
    assert verified(root)


@pytest.mark.parametrize("kind", STORES)
def test_mass_delete_guard_refuses_an_emptied_source(tmp_path, pg_db, kind) -> None:
    create(pg_db, 10)
    root = project(tmp_path, pg_db, kind, deletes={})
    land(root, run_type="full_drop")
    before = landed_rows(root)
    files = listing(tmp_path, kind)
    pg_execute(pg_db, "DELETE FROM items")
    with pytest.raises(SourceError) as caught:
        land(root)
    assert "would delete 10 of 10 landed keys (100%)" in caught.value.message
    assert "--allow-mass-delete" in (caught.value.hint or "")
    assert landed_rows(root) == before and listing(tmp_path, kind) == files
    assert journal(root, "f", "items")[-1].status == "fail"

    land(root, allow_mass_delete=True)  # confirmed for this run: the landing zone follows the source
    assert landed_rows(root) == []


def test_guard_share_is_configurable(tmp_path, pg_db) -> None:
    create(pg_db, 10)
    root = project(tmp_path, pg_db, "parquet", deletes={"max_share": 0.2})
    land(root, run_type="full_drop")
    pg_execute(pg_db, "DELETE FROM items WHERE id <= 3")
    with pytest.raises(SourceError, match="3 of 10 landed keys"):
        land(root)
    pg_execute(
        pg_db, ("INSERT INTO items VALUES (1, 'x', 1, %s)", (T0 + dt.timedelta(hours=1),))
    )  # 2 of 10 now
    land(root)
    assert landed_rows(root) == source(pg_db)


def test_every_nth_run_and_on_demand(tmp_path, pg_db) -> None:
    create(pg_db, 10)
    root = project(tmp_path, pg_db, "delta", deletes={"every": 3})
    land(root, run_type="full_drop")
    pg_execute(pg_db, "DELETE FROM items WHERE id = 1")
    land(root)
    land(root)
    assert 1 in [r["id"] for r in landed_rows(root)]  # runs 1 and 2 after the full load: not yet
    land(root)
    assert landed_rows(root) == source(pg_db)  # run 3 compares key sets
    reconciled = [e.reconciled for e in journal(root, "f", "items") if e.run_type == "incremental"]
    assert reconciled == [None, None, True]

    root = project(tmp_path / "ondemand", pg_db, "delta", deletes={"every": 0})
    land(root, run_type="full_drop")
    pg_execute(pg_db, "DELETE FROM items WHERE id = 2")
    land(root)
    assert 2 in [r["id"] for r in landed_rows(root)]
    result = CliRunner().invoke(app, ["go", "--project", str(root), "--reconcile"])
    assert result.exit_code == 0, result.output
    assert landed_rows(root) == source(pg_db)


def test_cli_guard_message_and_confirmation(tmp_path, pg_db) -> None:
    create(pg_db, 4)
    root = project(tmp_path, pg_db, "parquet", deletes={})
    assert CliRunner().invoke(app, ["go", "--project", str(root), "--full-drop"]).exit_code == 0
    pg_execute(pg_db, "DELETE FROM items")
    refused = CliRunner().invoke(app, ["go", "--project", str(root)])
    assert refused.exit_code == 1
    assert "would delete 4 of 4 landed keys" in refused.output
    assert "Traceback" not in refused.output
    allowed = CliRunner().invoke(app, ["go", "--project", str(root), "--allow-mass-delete"])
    assert allowed.exit_code == 0, allowed.output
    assert landed_rows(root) == []
    header = next(line for line in allowed.output.splitlines() if "entity" in line and "status" in line)
    assert "deleted" in header  # the summary shows what was deleted
    assert "note f.items: deleted 4 key(s) gone from the source" in allowed.output


def test_deletes_need_a_primary_key(tmp_path, pg_db) -> None:
    from hygge.errors import ConfigError
    from tests.helpers import load

    create(pg_db, 2)
    root = project(tmp_path, pg_db, "parquet", deletes={}, watermark={"primary_key": []})
    with pytest.raises(ConfigError, match=re.escape("`deletes:` needs watermark.primary_key")):
        load(root)


@pytest.mark.parametrize("kind", STORES)
def test_full_reload_of_an_emptied_source_is_refused(tmp_path, pg_db, kind) -> None:
    create(pg_db, 10)
    root = project(tmp_path, pg_db, kind, deletes={})
    land(root, run_type="full_drop")
    before = landed_rows(root)
    pg_execute(pg_db, "DELETE FROM items WHERE id > 2")
    with pytest.raises(SourceError, match="full reload would delete 8 of 10 landed keys"):
        land(root, run_type="full_drop")
    assert landed_rows(root) == before
    land(root, run_type="full_drop", allow_mass_delete=True)
    assert landed_rows(root) == source(pg_db)


@pytest.mark.parametrize("kind", STORES)
def test_a_deleted_row_inserted_again_exactly_as_it_was_lands(tmp_path, pg_db, kind) -> None:
    """The row at the watermark's maximum is deleted, then inserted again unchanged (same watermark):
    the boundary comparison must not take it for a row that already landed."""
    create(pg_db, 10)
    root = project(tmp_path, pg_db, kind, deletes={})
    land(root, run_type="full_drop")
    [row] = [r for r in source(pg_db) if r["id"] == 10]
    pg_execute(pg_db, "DELETE FROM items WHERE id = 10")
    land(root)
    assert 10 not in [r["id"] for r in landed_rows(root)]
    pg_execute(pg_db, ("INSERT INTO items VALUES (%s, %s, %s, %s)", tuple(row.values())))
    land(root)
    assert landed_rows(root) == source(pg_db)


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_open_mirroring_key_log_is_compacted_and_stays_right(tmp_path, pg_db, monkeypatch, mode) -> None:
    from hygge.stores import key_log

    monkeypatch.setattr(key_log, "COMPACT_AFTER", 3)
    create(pg_db, 10)
    root = project(tmp_path, pg_db, "open_mirroring", deletes={"mode": mode})
    land(root, run_type="full_drop")
    for round_ in range(1, 9):
        at = T0 + dt.timedelta(hours=round_)
        pg_execute(
            pg_db,
            ("UPDATE items SET name = %s, updated_at = %s WHERE id = %s", (f"r{round_}", at, round_)),
            f"DELETE FROM items WHERE id = {10 - round_ % 5}",
            ("INSERT INTO items VALUES (%s, 'n', 1, %s) ON CONFLICT DO NOTHING", (10 - (round_ + 2) % 5, at)),
        )
        land(root)
        logs = list((tmp_path / "zone" / "_hygge" / "items" / "keys").glob("*.parquet"))
        assert len(logs) <= 4
        assert landed_rows(root, soft="hygge_deleted_at" if mode == "soft" else None) == source(pg_db)
