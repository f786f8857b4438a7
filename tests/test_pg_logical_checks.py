"""The PostgreSQL logical feed's checks and parts: wal_level, replica identity, publications, roles and
their privileges, secrets in errors, slot names, dropping a feed, key folding, snapshots, LSN text."""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlsplit

import pytest

from hygge.changes import pg_logical
from hygge.changes.pg_hints import check_wal_level
from hygge.changes.pg_logical import LogicalFeed, NetKeys, default_name, drop_feed
from hygge.changes.pg_slot import Snapshot
from hygge.changes.pgoutput import lsn_text, lsn_value
from hygge.config.models import ConnectionConfig
from hygge.errors import SourceError
from hygge.homes.sql.connection import libpq_url
from tests.pg_feed import db, items, make_feed, next_window, one, read, sql

__all__ = ["db", "items"]  # fixtures


def test_wal_level_check() -> None:
    """Any wal_level but logical is refused, naming the setting and that it needs a restart."""
    check_wal_level("logical")
    with pytest.raises(SourceError) as caught:
        check_wal_level("replica")
    text = str(caught.value)
    assert "wal_level = logical" in text and "wal_level = replica" in text and "restart" in text


def test_table_without_primary_key(db: str) -> None:
    """No primary key (or REPLICA IDENTITY NOTHING): a clear error naming the fix, and no publication
    (one would make the application's UPDATE and DELETE on the table fail). FULL works without one."""
    sql(db, "CREATE TABLE nopk (id int NOT NULL, v text)", "INSERT INTO nopk VALUES (1, 'a'), (2, 'b')")
    feed = make_feed(db, "nopk", ["id"])
    with pytest.raises(SourceError, match="no primary key") as caught:
        feed.open(None)
    assert "REPLICA IDENTITY FULL" in str(caught.value) and "ADD PRIMARY KEY" in str(caught.value)
    assert one(db, "SELECT count(*) FROM pg_publication") == 0
    sql(db, "UPDATE nopk SET v = 'a1' WHERE id = 1")

    sql(db, "ALTER TABLE nopk ADD PRIMARY KEY (id)")
    with pytest.raises(SourceError, match="not in the replica identity"):
        make_feed(db, "nopk", ["id", "v"]).open(None)  # v would be missing from deletes
    sql(db, "ALTER TABLE nopk REPLICA IDENTITY NOTHING")
    with pytest.raises(SourceError, match="REPLICA IDENTITY NOTHING"):
        feed.open(None)

    sql(db, "ALTER TABLE nopk DROP CONSTRAINT nopk_pkey", "ALTER TABLE nopk REPLICA IDENTITY FULL")
    first = feed.open(None)
    sql(db, "DELETE FROM nopk WHERE id = 2", "UPDATE nopk SET v = 'a2' WHERE id = 1")
    assert read(feed, next_window(feed, first)) == ([{"id": 1, "v": "a2"}], [{"id": 2}], None)


def test_drop_feed(items: tuple[str, LogicalFeed]) -> None:
    """drop_feed removes the slot and hygge's own publication; a publication the user named stays."""
    db, feed = items
    feed.open(None)
    drop_feed(feed.entity, feed.home)
    assert one(db, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (feed.slot,)) == 0
    assert one(db, "SELECT count(*) FROM pg_publication") == 0

    sql(db, 'CREATE PUBLICATION "Mine" FOR TABLE items')
    named = make_feed(db, "items", ["id"], slot="my_slot", publication="Mine")
    named.open(None)
    named.drop()
    assert one(db, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'my_slot'") == 0
    assert one(db, "SELECT pubname FROM pg_publication") == "Mine"


def test_existing_publication_must_cover_the_table(items: tuple[str, LogicalFeed]) -> None:
    """A publication the user named but that lacks the table is refused (it would hide every change)."""
    db, _ = items
    sql(db, "CREATE TABLE other (id int PRIMARY KEY)", "CREATE PUBLICATION narrow FOR TABLE other")
    feed = make_feed(db, "items", ["id"], publication="narrow")
    with pytest.raises(SourceError, match="does not publish") as caught:
        feed.open(None)
    assert "ALTER PUBLICATION" in str(caught.value)


def test_default_names() -> None:
    """Deterministic, PostgreSQL-safe and apart for names that clean up or truncate alike."""
    name = default_name("Sales Flow", "Orders-2024", "db")
    assert name == default_name("Sales Flow", "Orders-2024", "db")
    assert re.fullmatch(r"hygge_sales_flow_orders_2024_[0-9a-f]{8}", name)
    assert default_name("a-b", "c", "db") != default_name("a_b", "c", "db")
    assert default_name("a", "c", "db") != default_name("a", "c", "other_db")
    long_a, long_b = default_name("f", "x" * 100 + "a", "db"), default_name("f", "x" * 100 + "b", "db")
    assert long_a != long_b and len(long_a) <= 63 and len(long_b.encode()) <= 63


def test_net_keys_fold_across_flushes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last operation per key survives folding every few changes (bounded lists, Arrow table)."""
    monkeypatch.setattr(pg_logical, "FLUSH", 3)
    net = NetKeys(2, {"flow": "f", "entity": "e"})
    for op, key in [("U", ("1", "a")), ("D", ("2", "b")), ("U", ("1", "b")), ("D", ("1", "a")),
                    ("U", ("2", "b")), ("U", ("3", "c")), ("D", ("3", "c")), ("U", ("1", "a"))]:  # fmt: skip
        net.add(op, (key[0].encode(), key[1].encode()))
    rows = sorted(net.result().to_pylist(), key=lambda r: (r["c0"], r["c1"]))
    assert rows == [
        {"c0": "1", "c1": "a", "op": "U"},
        {"c0": "1", "c1": "b", "op": "U"},
        {"c0": "2", "c1": "b", "op": "U"},
        {"c0": "3", "c1": "c", "op": "D"},
    ]


def test_snapshot_visibility_and_lsn_text() -> None:
    """32-bit xids from the decoder against 64-bit snapshots, across epochs; LSN text sorts like LSNs."""
    snap = Snapshot.parse("4294967300:4294967310:4294967305")  # epoch 1
    assert snap.sees(4) and not snap.sees(9) and not snap.sees(14)  # 2^32+4 visible, +9 running, +14 future
    assert snap.sees(0xFFFFFFF0)  # previous epoch: long committed
    edge = Snapshot.parse("4294967290:4294967295:")  # xmax just below the next epoch
    assert edge.sees(0xFFFFFFF0) and not edge.sees(3)  # xid 3 of the next epoch: not completed yet
    assert lsn_text(lsn_value("16/B374D848")) == "00000016/B374D848"
    assert lsn_text(lsn_value("A/0")) < lsn_text(lsn_value("10/0"))


def test_conninfo_and_errors_keep_the_password_out() -> None:
    """The libpq URL drops connectorx's own options; a failed connection names no password and is
    retried (transient)."""
    conn = ConnectionConfig(
        type="postgres", url="postgresql://u:s3cr%2Fet@h:5/d?cxprotocol=binary&sslmode=require"
    )
    assert libpq_url(conn) == "postgresql://u:s3cr%2Fet@h:5/d?sslmode=require"
    unreachable = "postgresql://u:Wr0ng-Secret@127.0.0.1:1/d?connect_timeout=2"
    with pytest.raises(SourceError) as caught:
        make_feed(unreachable, "t", ["id"]).open(None)
    assert "Wr0ng-Secret" not in str(caught.value) and caught.value.transient


def test_role_without_replication_gets_the_fix(db: str) -> None:
    """A role that owns the table but lacks REPLICATION: the slot is refused, the hint names the fix."""
    role = f"plain_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(db)
    sql(
        db,
        f"CREATE ROLE {role} LOGIN",
        "CREATE TABLE t (id int PRIMARY KEY)",
        f"ALTER TABLE t OWNER TO {role}",
        f"GRANT CREATE ON DATABASE {parts.path.lstrip('/')} TO {role}",
    )
    try:
        as_owner = parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}").geturl()
        with pytest.raises(SourceError, match="creating replication slot") as caught:
            make_feed(as_owner, "t", ["id"]).open(None)
        assert "WITH REPLICATION" in str(caught.value)
    finally:
        sql(db, f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def test_server_settings_are_validated() -> None:
    """running_postgres passes plain name=value settings and refuses anything that could smuggle options."""
    from pg_server import PostgresServerError, _setting_options

    assert _setting_options({"wal_level": "logical", "max_replication_slots": 50}) == (
        " -c wal_level=logical -c max_replication_slots=50"
    )
    with pytest.raises(PostgresServerError):
        _setting_options({"wal_level": "logical -c fsync=on"})
