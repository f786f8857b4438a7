"""Helpers for the PostgreSQL logical feed tests: a feed on a table of a test database, a window's net
changes as plain rows, the runner's journal-then-acknowledge step."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from hygge.changes.feed import FeedWindow
from hygge.changes.pg_logical import LogicalFeed
from hygge.changes.pgoutput import lsn_text, lsn_value
from hygge.config.models import ConnectionConfig, ResolvedEntity
from hygge.homes.sql.home import SqlHome


@pytest.fixture
def db(pg_db: str) -> str:
    """A fresh database on a server that can decode logically (skips on an external server without)."""
    with psycopg.connect(pg_db) as conn:
        if conn.execute("SHOW wal_level").fetchone()[0] != "logical":
            pytest.skip("the server behind HYGGE_TEST_PG_URL does not run with wal_level=logical")
    return pg_db


def sql(url: str, *statements: str) -> None:
    """Run statements in one autocommitted session."""
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def one(url: str, query: str, params: tuple = ()) -> object:
    """The first value of a query's first row (None without rows)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
        return row[0] if row else None


def make_feed(
    url: str, table: str, keys: list[str], *, schema: str | None = None, name: str = "t", **feed: str
) -> LogicalFeed:
    """A LogicalFeed on `table`, built the way the runner builds it (entity config, then SqlHome)."""
    home_config: dict = {"type": "sql", "connection": "db"}
    if schema is not None:
        home_config["schema"] = schema
    entity = ResolvedEntity.model_validate(
        {
            "flow": "f",
            "name": name,
            "table": table,
            "home": home_config,
            "store": {"type": "parquet", "path": "lake"},
            "run_type": "incremental",
            "watermark": {"primary_key": keys},
            "feed": {"type": "postgres_logical", **feed},
            "file": "flows/f/flow.yml",
        }
    )
    return LogicalFeed(entity, SqlHome(entity, ConnectionConfig(type="postgres", url=url)))


def read(feed: LogicalFeed, window: FeedWindow) -> tuple[list[dict], list[dict], str | None]:
    """A window's upserts and deletes as sorted rows, and its truncate reason."""
    changes = feed.changes(window)
    upserts = changes.upserts.read_all()
    assert upserts.schema == feed.home.schema()
    key = lambda row: tuple(str(row[k]) for k in feed.keys)  # noqa: E731
    return (
        sorted(upserts.to_pylist(), key=key),
        sorted(changes.deletes.to_pylist(), key=key),
        changes.truncated,
    )


def next_window(feed: LogicalFeed, window: FeedWindow) -> FeedWindow:
    """What the runner does after a successful run: journal `end` (here: keep it), acknowledge, reopen."""
    feed.acknowledge(window)
    following = feed.open(window.end)
    assert following.start == window.end and following.expired is None
    return following


def confirmed(url: str, feed: LogicalFeed) -> str:
    """The slot's confirmed position, in the feed's fixed-width LSN text."""
    text = one(
        url, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (feed.slot,)
    )
    return lsn_text(lsn_value(str(text)))


@pytest.fixture
def items(db: str) -> Iterator[tuple[str, LogicalFeed]]:
    """Table `items` (id int primary key, v text) with rows 1..3, and a feed on it (not opened yet)."""
    sql(
        db,
        "CREATE TABLE items (id int PRIMARY KEY, v text)",
        "INSERT INTO items VALUES (1,'a'), (2,'b'), (3,'c')",
    )
    yield db, make_feed(db, "items", ["id"])


def ident(name: str) -> str:
    """A quoted PostgreSQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A PostgreSQL string literal (standard_conforming_strings on)."""
    return "'" + text.replace("'", "''") + "'"
