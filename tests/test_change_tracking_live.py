"""Against a real SQL Server / Azure SQL: Change Tracking windows over rounds of writes replay to the
table, and a rowversion watermark loses no row of a transaction that was open while reading.
Skipped unless HYGGE_TEST_MSSQL_URL is set (see tests/test_mssql_live.py for the variables).

The login needs CREATE TABLE in `dbo`, and ALTER on the database if Change Tracking is not on yet
(the test turns it on with a 2-day retention; it never turns it off).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from hygge import watermark as wm
from hygge.changes.feed import FeedChanges
from hygge.changes.feed_for import feed_for
from hygge.config.models import ResolvedEntity
from hygge.homes.base import Bound
from hygge.homes.sql import mssql_python as mp
from hygge.homes.sql.home import SqlHome
from tests.test_mssql_live import URL, _connection, _engines

pytestmark = pytest.mark.skipif(not URL, reason="HYGGE_TEST_MSSQL_URL is not set (no SQL Server here)")


@pytest.fixture
def cursor() -> Iterator[Any]:
    connection = mp.connect(_connection("mssql-python"))
    try:
        yield connection.cursor()
    finally:
        connection.close()


@pytest.fixture
def scratch(cursor: Any) -> Iterator[str]:
    """A fresh change-tracked table dbo.[hygge_ct_<id> x] (a space in the name, on purpose)."""
    cursor.execute("SELECT CHANGE_TRACKING_CURRENT_VERSION()")
    if cursor.fetchone()[0] is None:
        try:
            cursor.execute(
                "ALTER DATABASE CURRENT SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON)"
            )
        except Exception as exc:
            pytest.skip(f"Change Tracking is off and this login cannot turn it on: {exc}")
    name = f"hygge_ct_{uuid.uuid4().hex[:10]} x"
    cursor.execute(
        f"CREATE TABLE dbo.[{name}] (id int NOT NULL PRIMARY KEY, [na me] nvarchar(40), qty smallint, rv rowversion)"
    )
    cursor.execute(f"ALTER TABLE dbo.[{name}] ENABLE CHANGE_TRACKING")
    try:
        yield name
    finally:
        cursor.execute(f"DROP TABLE dbo.[{name}]")


def entity(table: str, **settings: Any) -> ResolvedEntity:
    return ResolvedEntity.model_validate(
        {
            "flow": "live",
            "name": "ct",
            "table": table,
            "home": {"type": "sql", "connection": "live", "schema": "dbo", "batch_size": 2},
            "store": {"type": "parquet", "path": "lake"},
            "run_type": "incremental",
            "watermark": {"primary_key": ["id"]},
            "file": "live",
            **settings,
        }
    )


def current(home: SqlHome) -> dict[int, tuple]:
    return {r["id"]: (r["na me"], r["qty"]) for r in home.read().read_all().to_pylist()}


def apply(store: dict[int, tuple], changes: FeedChanges) -> None:
    for row in changes.upserts.read_all().to_pylist():
        store[row["id"]] = (row["na me"], row["qty"])
    for row in changes.deletes.to_pylist():
        store.pop(row["id"], None)


@pytest.mark.parametrize("engine", _engines())
def test_change_tracking_windows_replay_to_the_table(engine: str, cursor: Any, scratch: str) -> None:
    table = f"dbo.[{scratch}]"
    cursor.execute(f"INSERT INTO {table} (id, [na me], qty) VALUES (1, N'a', 1), (2, N'b', 2), (3, N'c', 3)")
    the_entity = entity(scratch, feed={"type": "change_tracking"})
    home = SqlHome(the_entity, _connection(engine))
    feed = feed_for(the_entity, home)
    window = feed.open(None)
    store = current(home)  # the first run's full load
    position = window.end
    rounds = [
        f"UPDATE {table} SET qty = 20 WHERE id = 2; DELETE FROM {table} WHERE id = 3; "
        f"INSERT INTO {table} (id, [na me], qty) VALUES (4, N'd', 4)",
        f"INSERT INTO {table} (id, [na me], qty) VALUES (5, N'gone', 5); DELETE FROM {table} WHERE id = 5",
        f"DELETE FROM {table} WHERE id = 1; INSERT INTO {table} (id, [na me], qty) VALUES (1, N'back', 10)",
        f"UPDATE {table} SET qty = 40 WHERE id = 4; UPDATE {table} SET [na me] = N'dé' WHERE id = 4",
        None,
    ]
    for statement in rounds:
        if statement:
            cursor.execute(statement)
        window = feed.open(position)
        assert window.expired is None
        assert int(window.end) >= int(position)
        apply(store, feed.changes(window))
        assert store == current(home), statement
        position = window.end
    assert store == {1: ("back", 10), 2: ("b", 20), 4: ("dé", 40)}


def test_a_version_from_before_a_truncate_is_expired(cursor: Any, scratch: str) -> None:
    the_entity = entity(scratch, feed={"type": "change_tracking"})
    feed = feed_for(the_entity, SqlHome(the_entity, _connection(_engines()[0])))
    cursor.execute(f"INSERT INTO dbo.[{scratch}] (id) VALUES (1)")
    before = feed.open(None).end
    cursor.execute(f"INSERT INTO dbo.[{scratch}] (id) VALUES (2)")
    cursor.execute(f"TRUNCATE TABLE dbo.[{scratch}]")  # resets the table's tracking, as if just enabled
    window = feed.open(before)
    assert window.expired and "minimum valid version" in window.expired


@pytest.mark.parametrize("engine", _engines())
def test_rowversion_read_waits_for_an_open_transaction(engine: str, cursor: Any, scratch: str) -> None:
    other = f"hygge_rv_{uuid.uuid4().hex[:10]}"
    cursor.execute(f"CREATE TABLE dbo.[{other}] (id int, rv rowversion)")
    holder = mp.connect(_connection("mssql-python"))
    try:
        held = holder.cursor()
        held.execute(f"BEGIN TRANSACTION; INSERT INTO dbo.[{other}] (id) VALUES (1)")
        held.execute(f"SELECT rv FROM dbo.[{other}]")
        open_rv = bytes(held.fetchone()[0])
        cursor.execute(f"INSERT INTO dbo.[{scratch}] (id, [na me]) VALUES (1, N'after the open one')")
        home = SqlHome(
            entity(scratch, watermark={"primary_key": ["id"], "watermark_column": "rv"}), _connection(engine)
        )
        assert wm.check_column(home.schema(), "rv", home.rowversion_columns()) == "rowversion"
        assert home.read().read_all().num_rows == 0  # its rowversion is above the open transaction's
        assert home.watermark_ceiling is not None and home.watermark_ceiling <= open_rv
        journaled = wm.to_text(home.watermark_ceiling, "rowversion")
        held.execute("COMMIT")
        again = home.read(Bound("rv", "rowversion", wm.from_text(journaled, "rowversion"))).read_all()
        assert again.column("id").to_pylist() == [1]
        assert home.watermark_ceiling > wm.from_text(journaled, "rowversion")
    finally:
        holder.close()
        cursor.execute(f"DROP TABLE dbo.[{other}]")
