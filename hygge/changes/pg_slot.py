"""The server side of a PostgreSQL logical feed: checks, publication, replication slot, WAL positions.

Everything with side effects (creating a publication or a slot, advancing or dropping a slot) and the
slot peek run through psycopg in autocommit mode; plain SELECTs of table rows stay with the SQL home
(connectorx). Every driver error becomes a SourceError whose hint names the fix; no secret reaches a
message (the URL's password is redacted with the connection's secrets).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hygge.changes import pgoutput
from hygge.changes.pg_hints import check_wal_level, identity_problem, privilege_hint, slot_hint
from hygge.config.models import ConnectionConfig
from hygge.errors import SourceError
from hygge.homes.sql import connection as conns
from hygge.homes.sql.dialects import DIALECTS
from hygge.homes.sql.driver_errors import psycopg_transient
from hygge.redact import redact

# Key text comes out of the decoder in the session's formats: ISO dates and UTC offsets read back the
# same under any DateStyle; floats with every digit.
_SESSION = ("DateStyle = 'ISO'", "IntervalStyle = 'postgres'", "TimeZone = 'UTC'", "extra_float_digits = 3")
quote = DIALECTS["postgres"].quote


@dataclass(frozen=True)
class Snapshot:
    """Which transactions a new snapshot sees: every xid below xmax except those in xip (64-bit xids)."""

    xmin: int
    xmax: int
    xip: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        """From `pg_current_snapshot()` text: 'xmin:xmax:xip,xip,...'."""
        xmin, xmax, xip = text.split(":")
        return cls(int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x))

    def sees(self, xid: int) -> bool:
        """Whether a committed transaction (32-bit xid, as decoding reports it) is visible."""
        full = (self.xmax & ~0xFFFFFFFF) | xid  # the 64-bit xid nearest xmax with these low bits
        if full > self.xmax + (1 << 31):
            full -= 1 << 32
        elif full < self.xmax - (1 << 31):
            full += 1 << 32
        return full < self.xmax and full not in self.xip


@dataclass(frozen=True)
class TableInfo:
    """The catalog facts a feed relies on."""

    oid: int
    kind: str  # r: table, p: partitioned table
    identity: str  # relreplident: d(efault: primary key) n(othing) f(ull) i(ndex)
    identity_columns: tuple[str, ...]
    types: dict[str, str]  # each column's SQL type (format_type), for casting key text, in table order


@dataclass(frozen=True)
class SlotState:
    """A replication slot as pg_replication_slots shows it."""

    plugin: str
    database: str
    confirmed_flush: int | None
    wal_status: str | None  # reserved | extended | unreserved | lost
    active_pid: int | None


class Session:
    """One autocommit psycopg connection to the feed's database, for a single open/changes/ack call."""

    def __init__(self, conn: ConnectionConfig, where: dict[str, str | None]) -> None:
        self._secrets = conns.secrets_of(conn)
        self._where = where
        self._describe = conns.describe(conn)
        import psycopg

        self._psycopg = psycopg
        try:
            self.db = psycopg.connect(conns.libpq_url(conn), autocommit=True, application_name="hygge")
            for setting in _SESSION:
                self.db.execute(f"SET {setting}")
        except psycopg.Error as exc:
            raise self.error(exc, "connecting for the change feed") from None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *_: object) -> None:
        self.db.close()

    # --- errors --------------------------------------------------------------------------------
    def error(self, exc: BaseException, doing: str, hint: str | None = None) -> SourceError:
        """A driver error as a SourceError: redacted, its first line, transient when a retry can help."""
        text = redact(str(exc).strip(), self._secrets)
        first = text.splitlines()[0] if text else type(exc).__name__
        transient = psycopg_transient(exc, text)
        if hint is None:
            hint = (
                "the server could not be reached or closed the connection; hygge retries"
                if transient
                else "check the connection, the role's privileges and the server log"
            )
        return SourceError(
            f"{doing} on {self._describe} failed: {first[:500]}",
            hint=hint,
            transient=transient,
            **self._where,
        )

    def fail(self, message: str, hint: str, transient: bool = False) -> SourceError:
        """A SourceError of this feed (its flow, entity and file)."""
        return SourceError(message, hint=hint, transient=transient, **self._where)

    def query(self, sql: str, params: tuple[Any, ...] = (), doing: str = "a catalog query") -> list[tuple]:
        """All rows of a small query."""
        try:
            return self.db.execute(sql, params).fetchall()
        except self._psycopg.Error as exc:
            raise self.error(exc, doing) from None

    def value(self, sql: str, params: tuple[Any, ...] = (), doing: str = "a catalog query") -> Any:
        """The first value of a small query (None without rows)."""
        rows = self.query(sql, params, doing)
        return rows[0][0] if rows else None

    # --- server and table ----------------------------------------------------------------------
    def check_server(self) -> None:
        check_wal_level(self.value("SELECT current_setting('wal_level')"))
        encoding = self.value("SELECT current_setting('server_encoding')")
        if encoding not in ("UTF8", "SQL_ASCII"):
            raise self.fail(
                f"the database's encoding is {encoding}; the change feed reads key values as UTF-8",
                hint="use a UTF8 database, or land this table without `feed:` (a watermark or full_drop)",
            )

    def table_info(self, qualified: str, keys: list[str]) -> TableInfo:
        """The table's oid, kind and replica identity, checked to name every key column of a delete."""
        rows = self.query(
            "SELECT c.oid::int8, c.relkind::text, c.relreplident::text FROM pg_class c "
            "WHERE c.oid = to_regclass(%s)",
            (qualified,),
        )
        if not rows:
            raise self.fail(f"table {qualified} was not found", hint="check `table:` and `schema:`")
        oid, kind, identity = rows[0]
        types = dict(
            self.query(
                "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                (oid,),
            )
        )
        if identity == "f":
            columns = tuple(types)
        else:
            # d: the primary key; i: the index chosen with REPLICA IDENTITY USING INDEX.
            flag = "indisprimary" if identity == "d" else "indisreplident"
            columns = tuple(
                r[0]
                for r in self.query(
                    "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                    f"AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s AND i.{flag}",
                    (oid,),
                )
            )
        missing = [k for k in keys if k not in columns]
        if identity == "n" or not columns or missing:
            raise self.fail(
                identity_problem(qualified, identity, columns, missing),
                hint=f"give the table a primary key on the key columns (`ALTER TABLE {qualified} ADD "
                f"PRIMARY KEY (...)`), or `ALTER TABLE {qualified} REPLICA IDENTITY FULL` (logs whole old "
                f"rows), or `REPLICA IDENTITY USING INDEX <unique index on the keys>`",
            )
        return TableInfo(int(oid), kind, identity, columns, types)

    # --- publication ---------------------------------------------------------------------------
    def ensure_publication(self, name: str, qualified: str, table: TableInfo, own: bool) -> str | None:
        """Create the publication for the table when absent; check an existing one publishes every
        insert, update, delete and truncate of it (a narrower one would silently lose changes). A table
        missing from hygge's `own` publication was dropped and created again: it is added back, and the
        reason (changes in between went unrecorded) is returned."""
        row = self.query(
            "SELECT pubinsert AND pubupdate AND pubdelete AND pubtruncate FROM pg_publication "
            "WHERE pubname = %s",
            (name,),
        )
        if not row:
            options = " WITH (publish_via_partition_root = true)" if table.kind == "p" else ""
            self._publication_ddl(
                f"CREATE PUBLICATION {quote(name)} FOR TABLE {qualified}{options}", name, qualified
            )
            return None
        # PostgreSQL 15 added row filters: a filtered publication would hide changes too.
        unfiltered = " AND t.qual IS NULL" if int(self.value("SHOW server_version_num")) >= 150000 else ""
        covers = self.value(
            "SELECT count(*) FROM pg_publication p, LATERAL pg_get_publication_tables(p.pubname::text) t "
            f"WHERE p.pubname = %s AND t.relid = %s{unfiltered}",
            (name, table.oid),
        )
        if row[0][0] and covers:
            return None
        if row[0][0] and own:
            self._publication_ddl(f"ALTER PUBLICATION {quote(name)} ADD TABLE {qualified}", name, qualified)
            return (
                f"{qualified} was no longer in publication {name} (dropped and created again?): its changes "
                "until now were not recorded"
            )
        raise self.fail(
            f"publication {name} exists but does not publish every insert, update, delete and "
            f"truncate of {qualified} (without a row filter)",
            hint=f"`ALTER PUBLICATION {quote(name)} ADD TABLE {qualified}` and `ALTER PUBLICATION "
            f"{quote(name)} SET (publish = 'insert, update, delete, truncate')`, or name another "
            "publication in `feed.publication`",
        )

    def _publication_ddl(self, statement: str, name: str, qualified: str) -> None:
        try:
            self.db.execute(statement)
        except self._psycopg.Error as exc:
            raise self.error(
                exc, f"changing publication {name}", privilege_hint(exc, name, qualified)
            ) from None

    def drop_publication(self, name: str) -> None:
        try:
            self.db.execute(f"DROP PUBLICATION IF EXISTS {quote(name)}")
        except self._psycopg.Error as exc:
            raise self.error(exc, f"dropping publication {name}") from None

    # --- slot ----------------------------------------------------------------------------------
    def slot(self, name: str) -> SlotState | None:
        rows = self.query(
            "SELECT coalesce(plugin, '')::text, coalesce(database, '')::text, confirmed_flush_lsn::text, "
            "wal_status, active_pid FROM pg_replication_slots WHERE slot_name = %s",
            (name,),
        )
        if not rows:
            return None
        plugin, database, confirmed, wal_status, pid = rows[0]
        return SlotState(
            plugin, database, pgoutput.lsn_value(confirmed) if confirmed else None, wal_status, pid
        )

    def create_slot(self, name: str) -> None:
        """A logical slot with pgoutput. PostgreSQL waits for transactions running at this moment to
        finish before the slot is ready (its decoding must start from a consistent point)."""
        try:
            self.db.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (name,))
        except self._psycopg.Error as exc:
            raise self.error(exc, f"creating replication slot {name}", slot_hint(exc)) from None

    def advance(self, name: str, lsn: int) -> None:
        try:
            self.db.execute(
                "SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (name, pgoutput.lsn_text(lsn))
            )
        except self._psycopg.Error as exc:
            raise self.error(exc, f"advancing replication slot {name}", slot_hint(exc)) from None

    def drop_slot(self, name: str) -> None:
        try:
            self.db.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                (name,),
            )
        except self._psycopg.Error as exc:
            raise self.error(exc, f"dropping replication slot {name}", slot_hint(exc)) from None

    def flush_lsn(self) -> int:
        """The end of WAL flushed to disk, after flushing everything written so far: what decoding can
        read. (`pg_current_wal_lsn()` may be ahead of the flushed end when commits are asynchronous; a
        peek stops at the flushed end, so a bound past it would skip the difference.)"""
        try:
            # A transaction that writes WAL and commits synchronously (locally: no standby wait) flushes
            # all WAL before its commit record, so every commit made before this call counts. Its one
            # record is an empty logical message (prefix 'hygge'), which pgoutput does not pass on.
            with self.db.transaction():
                self.db.execute("SET LOCAL synchronous_commit = local")
                self.db.execute("SELECT pg_logical_emit_message(true, 'hygge', '')")
        except self._psycopg.Error as exc:
            raise self.error(exc, "flushing WAL") from None
        return pgoutput.lsn_value(self.value("SELECT pg_current_wal_flush_lsn()::text"))

    def insert_lsn(self) -> int:
        """Where the next WAL record goes: no valid position lies beyond it."""
        return pgoutput.lsn_value(self.value("SELECT pg_current_wal_insert_lsn()::text"))

    def snapshot(self) -> Snapshot:
        return Snapshot.parse(self.value("SELECT pg_current_snapshot()::text"))

    def wait_visible(self, xids: set[int], timeout: float = 60.0) -> None:
        """Wait until every committed transaction in `xids` is visible to new snapshots. PostgreSQL
        writes a commit record before it makes the transaction visible (a synchronous standby can make
        that gap long); the table read after the window must see every commit inside it."""
        deadline = time.monotonic() + timeout
        while xids:
            snapshot = self.snapshot()
            xids = {x for x in xids if not snapshot.sees(x)}
            if not xids:
                return
            if time.monotonic() > deadline:
                raise self.fail(
                    f"{len(xids)} committed transaction(s) (e.g. xid {min(xids)}) stayed invisible for "
                    f"{timeout:.0f}s",
                    hint="a synchronous standby may not be confirming commits; hygge retries",
                    transient=True,
                )
            time.sleep(0.05)

    def peek(
        self, slot: str, publication: str, upto: int, keys: dict[int, tuple[int, ...]], cut: int | None
    ) -> Iterator[pgoutput.Message | pgoutput.KeyCut]:
        """Messages of the transactions committed before `upto`, read in batches without consuming them
        (the slot moves only with `advance`). Changes carry only the columns `keys` lists for their
        relation (the caller may fill it as Relation messages arrive). With `cut` (a table's oid), that
        table's plain changes come as `KeyCut`s of its first column, cut out by the server."""
        messages = (
            "pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, NULL, "
            "'proto_version', '1', 'publication_names', %s)"
        )
        sql = pgoutput.key_cut(messages, cut) if cut is not None else f"SELECT NULL, NULL, data FROM {messages}"
        try:
            # Binary results: the messages come as their bytes, not as hex text to decode (a third faster).
            with self.db.transaction(), self.db.cursor(name="hygge_feed_peek", binary=True) as cursor:
                cursor.itersize = 10_000
                cursor.execute(sql, (slot, pgoutput.lsn_text(upto), quote(publication)))
                for op, key, data in cursor:
                    if data is None:
                        yield op, key
                    elif (message := pgoutput.parse(data, keys)) is not None:
                        yield message
        except self._psycopg.Error as exc:
            raise self.error(exc, f"reading replication slot {slot}", slot_hint(exc)) from None
