"""PostgreSQL logical decoding as a change feed (hygge/changes/pg_logical.py), against a real server
started with wal_level=logical: windows, net changes per key, open transactions, truncate, crash and
re-read, expiry, odd identifiers and key types. Server and table checks: test_pg_logical_checks.py."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import psycopg
import pyarrow as pa
import pytest

from hygge.changes import pg_logical
from hygge.changes.pg_logical import LogicalFeed
from hygge.errors import SourceError
from tests.pg_feed import confirmed, db, ident, items, literal, make_feed, next_window, one, read, sql

__all__ = ["db", "items"]  # fixtures
UTC = dt.UTC


def test_rounds_of_changes_net_per_key(
    items: tuple[str, LogicalFeed], monkeypatch: pytest.MonkeyPatch
) -> None:
    """First window (full load), then rounds: the last operation per key wins, deleted-then-inserted
    keys are upserts, inserted-then-deleted keys are deletes, statements are cut in chunks of keys."""
    db, feed = items
    monkeypatch.setattr(pg_logical, "CHUNK", 2)
    assert feed.open(None).expired is None  # a first run that crashed before its journal entry
    first = feed.open(None)
    assert first.start is None and first.expired is None
    assert re.fullmatch(r"[0-9A-F]{8}/[0-9A-F]{8}", first.end)
    assert one(db, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (feed.slot,)) == 1

    sql(
        db,
        "INSERT INTO items VALUES (4,'d')",
        "UPDATE items SET v = 'a2' WHERE id = 1",
        "DELETE FROM items WHERE id = 2",
    )
    second = next_window(feed, first)
    assert read(feed, second) == ([{"id": 1, "v": "a2"}, {"id": 4, "v": "d"}], [{"id": 2}], None)

    sql(
        db,
        "DELETE FROM items WHERE id = 3",
        "INSERT INTO items VALUES (3, 'c2')",
        "UPDATE items SET v = 'd1' WHERE id = 4",
        "UPDATE items SET v = 'd2' WHERE id = 4",
        "INSERT INTO items VALUES (5, 'e')",
        "DELETE FROM items WHERE id = 5",
    )
    third = next_window(feed, second)
    assert read(feed, third) == ([{"id": 3, "v": "c2"}, {"id": 4, "v": "d2"}], [{"id": 5}], None)

    fourth = next_window(feed, third)
    assert read(feed, fourth) == ([], [], None)


def test_open_transaction_lands_in_the_next_window(items: tuple[str, LogicalFeed]) -> None:
    """A transaction open while `open()` fixes the window commits after `end`: never in this window,
    always in the next one."""
    db, feed = items
    first = feed.open(None)
    feed.acknowledge(first)
    with psycopg.connect(db) as open_tx:
        open_tx.execute("INSERT INTO items VALUES (10, 'late')")
        open_tx.execute("UPDATE items SET v = 'late' WHERE id = 1")
        sql(db, "UPDATE items SET v = 'b2' WHERE id = 2")
        window = feed.open(first.end)
        open_tx.commit()
    assert read(feed, window) == ([{"id": 2, "v": "b2"}], [], None)
    following = next_window(feed, window)
    assert read(feed, following) == ([{"id": 1, "v": "late"}, {"id": 10, "v": "late"}], [], None)


def test_truncate_is_reported(items: tuple[str, LogicalFeed]) -> None:
    """TRUNCATE voids every landed key: flagged, and only what came after it is listed."""
    db, feed = items
    first = feed.open(None)
    sql(db, "INSERT INTO items VALUES (7, 'g')", "TRUNCATE items", "INSERT INTO items VALUES (8, 'h')")
    upserts, deletes, truncated = read(feed, next_window(feed, first))
    assert upserts == [{"id": 8, "v": "h"}] and deletes == []
    assert truncated is not None and truncated.startswith('TRUNCATE of "public"."items"')


def test_table_dropped_and_created_again(items: tuple[str, LogicalFeed]) -> None:
    """DROP TABLE takes the table out of hygge's publication: the next open puts it back and reports the
    window expired. Under a publication FOR ALL TABLES the new table's changes flow on; when the old
    table changed in the window too, the window reports that every landed key is void."""
    db, feed = items
    first = feed.open(None)
    feed.acknowledge(first)
    recreate = (
        "DROP TABLE items",
        "CREATE TABLE items (id int PRIMARY KEY, v text)",
        "INSERT INTO items VALUES (9, 'i')",
    )
    sql(db, *recreate)
    window = feed.open(first.end)
    assert window.expired is not None and "no longer in publication" in window.expired
    sql(db, "INSERT INTO items VALUES (10, 'j')")
    assert read(feed, next_window(feed, window)) == ([{"id": 10, "v": "j"}], [], None)

    sql(db, "CREATE PUBLICATION everything FOR ALL TABLES")
    every = make_feed(db, "items", ["id"], slot="every", publication="everything")
    start = every.open(None)
    sql(db, "UPDATE items SET v = 'j2' WHERE id = 10", *recreate)  # noticed through the old table's change
    upserts, deletes, truncated = read(every, next_window(every, start))
    assert upserts == [{"id": 9, "v": "i"}] and deletes == []
    assert truncated is not None and "dropped and created again" in truncated


def test_acknowledge_and_crash_before_it(items: tuple[str, LogicalFeed]) -> None:
    """Nothing is consumed before `acknowledge`: re-reading a window (a crash before the journal) gives
    the same net changes, also from a new feed object; acknowledge moves the slot to exactly `end`; a
    crash after the journal but before acknowledge is caught up by the next `open`."""
    db, feed = items
    first = feed.open(None)
    feed.acknowledge(first)
    assert confirmed(db, feed) == first.end
    sql(db, "UPDATE items SET v = 'x' WHERE id = 1", "DELETE FROM items WHERE id = 3")
    window = feed.open(first.end)
    expected = ([{"id": 1, "v": "x"}], [{"id": 3}], None)
    assert read(feed, window) == expected
    assert read(feed, window) == expected
    assert confirmed(db, feed) == first.end
    again = make_feed(db, "items", ["id"])
    rerun = again.open(first.end)
    assert read(again, rerun) == expected

    # journaled rerun.end, crashed before acknowledging: the next open advances the slot itself
    sql(db, "UPDATE items SET v = 'y' WHERE id = 2")
    later = again.open(rerun.end)
    assert confirmed(db, feed) == rerun.end
    assert read(again, later) == ([{"id": 2, "v": "y"}], [], None)
    again.acknowledge(later)
    again.acknowledge(later)  # twice: harmless
    assert confirmed(db, feed) == later.end


def test_expired_positions(items: tuple[str, LogicalFeed]) -> None:
    """A dropped slot, a slot past the journaled position and a position ahead of the server's WAL all
    come back as expired with the reason; the slot then exists again for the full reload."""
    db, feed = items
    first = feed.open(None)
    second = next_window(feed, first)
    sql(db, "UPDATE items SET v = 'z' WHERE id = 1")
    feed.acknowledge(next_window(feed, second))
    behind = feed.open(first.end)
    assert behind.expired is not None and "after the journaled position" in behind.expired

    ahead = feed.open("000000FF/00000000")
    assert ahead.expired is not None and "ahead of the server's WAL" in ahead.expired

    sql(db, f"SELECT pg_drop_replication_slot('{feed.slot}')")
    gone = feed.open(second.end)
    assert gone.start == second.end and gone.expired is not None and "does not exist" in gone.expired
    assert one(db, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (feed.slot,)) == 1
    with pytest.raises(SourceError, match="expired"):
        feed.changes(gone)


def test_odd_identifiers(db: str) -> None:
    """Spaces, quotes, backslashes and non-ASCII letters in schema, table, column names and key values;
    key values that mean something inside an array literal (braces, commas, NULL, empty)."""
    schema, table, key, value = 'Sch "q" é', 'Tåble "x" y', 'Kéy "1"', "va lue"
    target = f"{ident(schema)}.{ident(table)}"
    odd = ["it's", "back\\slash", '"dq"', "ünï 'q' \\x"]
    array_like = ["{a,b}", "NULL", "", "x,y", '\\"}{']
    sql(
        db,
        f"CREATE SCHEMA {ident(schema)}",
        f"CREATE TABLE {target} ({ident(key)} text PRIMARY KEY, {ident(value)} int)",
        f"INSERT INTO {target} VALUES ({literal(odd[0])}, 1), ({literal(odd[1])}, 2), ({literal(odd[2])}, 3)",
    )
    feed = make_feed(db, table, [key], schema=schema, name="odd")
    assert re.fullmatch(r"[a-z0-9_]{1,63}", feed.slot) and feed.publication == feed.slot
    first = feed.open(None)
    sql(
        db,
        f"UPDATE {target} SET {ident(value)} = 10 WHERE {ident(key)} = {literal(odd[0])}",
        f"DELETE FROM {target} WHERE {ident(key)} = {literal(odd[1])}",
        f"INSERT INTO {target} VALUES ({literal(odd[3])}, 4)",
        *(f"INSERT INTO {target} VALUES ({literal(v)}, 5)" for v in array_like),
    )
    upserts, deletes, _ = read(feed, next_window(feed, first))
    expected = [{key: odd[0], value: 10}, {key: odd[3], value: 4}, *({key: v, value: 5} for v in array_like)]
    assert upserts == sorted(expected, key=lambda row: row[key])
    assert deletes == [{key: odd[1]}]


def test_composite_keys_of_many_types(db: str) -> None:
    """int, text, uuid, timestamp and timestamptz key columns: deletes carry the pinned types, a key
    changed by an UPDATE is a delete of the old key and an upsert of the new one."""
    u1, u2 = uuid.UUID(int=1), uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    sql(
        db,
        "CREATE TABLE multi (ki int, kt text, ku uuid, kts timestamp, ktz timestamptz, v text, "
        "PRIMARY KEY (ki, kt, ku, kts, ktz))",
        f"INSERT INTO multi VALUES (1, 'a', '{u1}', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.5+02', 'x'),"
        f" (2, 'b', '{u2}', '1999-12-31 23:59:59', '2000-01-01 00:00:00+00', 'y'),"
        f" (3, 'c', '{u2}', '2024-06-01 00:00:00', '2024-06-01 12:00:00-05', 'z')",
    )
    feed = make_feed(db, "multi", ["ki", "kt", "ku", "kts", "ktz"])
    first = feed.open(None)
    sql(
        db,
        "UPDATE multi SET v = 'x2' WHERE ki = 1",
        "DELETE FROM multi WHERE ki = 2",
        "UPDATE multi SET kts = '2024-06-01 00:00:00.000001' WHERE ki = 3",
    )
    window = next_window(feed, first)
    schema = feed.home.schema()
    changes = feed.changes(window)
    changes.upserts.read_all()  # deletes are gathered while the rows are read
    assert changes.deletes.schema == pa.schema([schema.field(k) for k in feed.keys])
    assert schema.field("ki").type == pa.int32() and schema.field("ktz").type == pa.timestamp("us", tz="UTC")
    upserts, deletes, _ = read(feed, window)
    ts = dt.datetime
    assert upserts == [
        {"ki": 1, "kt": "a", "ku": str(u1), "kts": ts(2024, 1, 2, 3, 4, 5, 123456),
         "ktz": ts(2024, 1, 2, 1, 4, 5, 500000, tzinfo=UTC), "v": "x2"},
        {"ki": 3, "kt": "c", "ku": str(u2), "kts": ts(2024, 6, 1, 0, 0, 0, 1),
         "ktz": ts(2024, 6, 1, 17, 0, tzinfo=UTC), "v": "z"},
    ]  # fmt: skip
    assert deletes == [
        {
            "ki": 2,
            "kt": "b",
            "ku": str(u2),
            "kts": ts(1999, 12, 31, 23, 59, 59),
            "ktz": ts(2000, 1, 1, tzinfo=UTC),
        },
        {"ki": 3, "kt": "c", "ku": str(u2), "kts": ts(2024, 6, 1), "ktz": ts(2024, 6, 1, 17, 0, tzinfo=UTC)},
    ]


def test_partitioned_table(db: str) -> None:
    """A partitioned table's changes come under the root's name (publish_via_partition_root)."""
    sql(
        db,
        "CREATE TABLE parts (id int, r int, v text, PRIMARY KEY (id, r)) PARTITION BY RANGE (r)",
        "CREATE TABLE parts_a PARTITION OF parts FOR VALUES FROM (0) TO (10)",
        "CREATE TABLE parts_b PARTITION OF parts FOR VALUES FROM (10) TO (20)",
        "INSERT INTO parts VALUES (1, 1, 'a'), (2, 15, 'b')",
    )
    feed = make_feed(db, "parts", ["id", "r"])
    first = feed.open(None)
    sql(db, "UPDATE parts SET v = 'a2' WHERE id = 1", "DELETE FROM parts WHERE id = 2")
    assert read(feed, next_window(feed, first)) == (
        [{"id": 1, "r": 1, "v": "a2"}],
        [{"id": 2, "r": 15}],
        None,
    )


def test_key_gone_at_read_time_is_a_delete(items: tuple[str, LogicalFeed]) -> None:
    """A key updated inside the window but deleted after `end` (before the rows are read) comes back as
    a delete, never as a row; the next window carries the delete again."""
    db, feed = items
    first = feed.open(None)
    sql(db, "UPDATE items SET v = 'a2' WHERE id = 1", "UPDATE items SET v = 'b2' WHERE id = 2")
    window = next_window(feed, first)
    sql(db, "DELETE FROM items WHERE id = 1")
    assert read(feed, window) == ([{"id": 2, "v": "b2"}], [{"id": 1}], None)
    assert read(feed, next_window(feed, window)) == ([], [{"id": 1}], None)


@pytest.mark.parametrize(
    ("columns", "identity", "cut"),
    [
        ("id int PRIMARY KEY, v text", "DEFAULT", True),
        ("gone int, id int PRIMARY KEY, v text", "DEFAULT", True),  # `gone` is dropped below
        ("id int PRIMARY KEY, v text", "FULL", True),  # inserts cut; updates and deletes carry 'O' rows
        ("v text, id int PRIMARY KEY", "DEFAULT", False),  # not first: read whole, never cut
    ],
)
def test_single_key_cut_by_the_server(
    db: str, monkeypatch: pytest.MonkeyPatch, columns: str, identity: str, cut: bool
) -> None:
    """A single key the decoder sends first is cut out of each change by the server (Python parses no
    insert or plain update); an update that changes the key still deletes the old one; a key that is
    not first falls back to whole messages. Every case gives the same net changes."""
    sql(db, f"CREATE TABLE cuts ({columns})", f"ALTER TABLE cuts REPLICA IDENTITY {identity}")
    if "gone" in columns:
        sql(db, "ALTER TABLE cuts DROP COLUMN gone")
    sql(db, "INSERT INTO cuts (id, v) VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    feed = make_feed(db, "cuts", ["id"], name="cuts")
    first = feed.open(None)
    sql(
        db,
        "INSERT INTO cuts (id, v) VALUES (4, 'd')",
        "UPDATE cuts SET v = 'a2' WHERE id = 1",
        "UPDATE cuts SET id = 20 WHERE id = 2",
        "DELETE FROM cuts WHERE id = 3",
    )
    parsed: list[str] = []
    whole = pg_logical.pgoutput.parse

    def counting(data: bytes, keys: dict) -> object:
        message = whole(data, keys)
        if isinstance(message, pg_logical.pgoutput.Change):
            parsed.append(message.op)
        return message

    monkeypatch.setattr(pg_logical.pgoutput, "parse", counting)
    assert read(feed, next_window(feed, first)) == (
        [{"id": 1, "v": "a2"}, {"id": 20, "v": "b"}, {"id": 4, "v": "d"}],  # sorted as text
        [{"id": 2}, {"id": 3}],
        None,
    )
    if not cut:
        assert sorted(parsed) == ["D", "I", "U", "U"]
    elif identity == "FULL":
        assert sorted(parsed) == ["D", "U", "U"]  # every update and delete sends the whole old row
    else:
        assert parsed == ["U"]  # the update that changed the key ('K' old tuple)
