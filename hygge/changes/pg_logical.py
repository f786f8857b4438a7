"""PostgreSQL logical decoding as a change feed: pgoutput through a replication slot, positions as LSNs.

Why pgoutput: it is built into every PostgreSQL since 10 and offered by the managed services, so
nothing needs installing on the server (wal2json would, on each server and in CI). It needs a
PUBLICATION for the table; hygge creates one per feed. Only key columns are taken from the feed; the
current rows are read from the table with the pinned schema, so values land exactly as a table read.

A window holds the transactions whose commit record starts in [start, end): that is what
`pg_logical_slot_peek_binary_changes(slot, end, …)` returns after skipping commits before `start`, and
what `pg_replication_slot_advance(slot, end)` leaves for the next window. `end` is the flushed WAL end,
read after the slot exists; a transaction still open then commits later and falls in a later window.
The slot moves only in `acknowledge`, after the journal recorded `end`: a crash before re-reads the same
window, and its upserts and deletes apply again idempotently. docs/change-feeds-postgres.md has the
server settings and the operating notes (an abandoned slot keeps WAL forever: `drop_feed`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.compute as pc

from hygge.changes import pgoutput
from hygge.changes.feed import FeedChanges, FeedWindow, GatheredChanges
from hygge.changes.pg_slot import Session, TableInfo
from hygge.config.models import ResolvedEntity
from hygge.errors import SourceError
from hygge.homes.sql.home import SqlHome
from hygge.typemap import all_nullable

CHUNK = 50_000  # keys per SQL statement that reads their rows (a few MB of SQL for text keys)
AT_ONCE = 2  # statements read at once, each on its own connection: the server looks up keys on 2 cores
FLUSH = 100_000  # changes gathered in Python lists before they are reduced to one row a key in Arrow
_KEY = "hygge_key_"  # result columns carrying the joined keys back (never a real column name)
_GONE = "hygge_key_gone"
MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1 (bytes)


class _NotCut(Exception):
    """The table's key is not the first column the decoder sends: the window is read again, uncut."""


class NetKeys:
    """The last operation per key ('U' upsert or 'D' delete), as Arrow string columns c0…cn and op.

    Changes gather in plain lists (key text as the decoder's bytes) and are folded into the Arrow table
    every FLUSH changes, so memory is one row per distinct changed key plus one flush of raw changes,
    however many times keys change."""

    def __init__(self, width: int, where: dict[str, str]) -> None:
        self.width = width
        self._where = where
        self._table = self._empty()
        self._clear_pending()

    def _empty(self) -> pa.Table:
        names = [f"c{i}" for i in range(self.width)] + ["op"]
        return pa.table([pa.array([], pa.string()) for _ in names], names=names)

    def _clear_pending(self) -> None:
        self._columns: list[list[bytes]] = [[] for _ in range(self.width)]
        self._ops: list[str] = []

    def add(self, op: str, key: tuple[bytes, ...]) -> None:
        for column, value in zip(self._columns, key, strict=True):
            column.append(value)
        self._ops.append(op)
        if len(self._ops) >= FLUSH:
            self._fold()

    def add_cut(self, op: str, key: bytes) -> None:
        """One change of a single-column key (`add` without the tuple: it runs once a change)."""
        self._columns[0].append(key)
        self._ops.append(op)
        if len(self._ops) >= FLUSH:
            self._fold()

    def clear(self) -> None:
        self._table = self._empty()
        self._clear_pending()

    def _fold(self) -> None:
        if not self._ops:
            return
        names = self._table.column_names
        try:
            texts = [pa.array(c, pa.binary()).cast(pa.string()) for c in self._columns]
        except pa.ArrowInvalid:
            raise SourceError(
                "a changed key's text from the decoder is not UTF-8",
                hint="key columns of a logical feed must hold text the database stores as UTF-8",
                **self._where,
            ) from None
        fresh = pa.table([*texts, self._ops], names=names)
        both = pa.concat_tables([self._table, fresh])
        # use_threads=False keeps input order, which makes "last" the latest change.
        folded = both.group_by(names[:-1], use_threads=False).aggregate([("op", "last")])
        self._table = folded.rename_columns(names)
        self._clear_pending()

    def result(self) -> pa.Table:
        self._fold()
        return self._table


def _literal(text: str) -> str:
    """A string literal that reads the same whatever standard_conforming_strings says."""
    return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def default_name(flow: str, entity: str, database: str) -> str:
    """`hygge_<flow>_<entity>_<hash>`: lower case [a-z0-9_], at most 63 bytes, the same on every run.
    The hash (of flow, entity and database: slot names are server-wide) keeps names apart that clean up
    or truncate alike ('a-b' and 'a_b', long names)."""
    digest = hashlib.sha256(f"{database}\0{flow}\0{entity}".encode()).hexdigest()[:8]
    stem = re.sub(r"[^a-z0-9_]+", "_", f"hygge_{flow}_{entity}".lower()).strip("_")
    return f"{stem[: MAX_IDENTIFIER - 9].rstrip('_')}_{digest}"


def _at(lsn: int) -> str:
    return pgoutput.lsn_text(lsn)


def _database(home: SqlHome) -> str:
    if home.conn.database:
        return home.conn.database
    url = home.conn.url.get_secret_value() if home.conn.url else ""
    return unquote(urlsplit(url).path.lstrip("/"))


class LogicalFeed:
    """The ChangeFeed of one PostgreSQL table through its own publication and logical slot."""

    kind = "pg_lsn"

    def __init__(self, entity: ResolvedEntity, home: SqlHome) -> None:
        assert home.table is not None
        self.entity = entity
        self.home = home
        self.keys = entity.keys
        self.schema_name = home.db_schema or "public"
        self.qualified = home.dialect.table(self.schema_name, home.table)
        default = default_name(entity.flow, entity.name, _database(home))
        feed = entity.feed
        self.slot = (feed.slot if feed and feed.slot else None) or default
        self.publication = (feed.publication if feed and feed.publication else None) or self.slot
        self._where = {"flow": entity.flow, "entity": entity.name, "file": entity.file}

    def describe(self) -> str:
        return (
            f"PostgreSQL logical decoding (pgoutput) of {self.qualified}: slot {self.slot}, "
            f"publication {self.publication}"
        )

    def _session(self) -> Session:
        return Session(self.home.conn, self._where)

    # --- the ChangeFeed protocol ---------------------------------------------------------------
    def open(self, start: str | None) -> FeedWindow:
        """Check the server and table, create the publication and slot when absent, then fix `end`."""
        begin = pgoutput.lsn_value(start) if start is not None else None
        with self._session() as db:
            db.check_server()
            table = db.table_info(self.qualified, self.keys)
            own = not (self.entity.feed and self.entity.feed.publication)
            lost = db.ensure_publication(self.publication, self.qualified, table, own)
            expired = self._ensure_slot(db, begin) or (lost if begin is not None else None)
            end = db.flush_lsn()
            if begin is None or expired:
                # The full read that follows must see every commit before `end`.
                db.wait_visible(self._read_feed(db, table, None, end, None)[1])
        return FeedWindow(start, pgoutput.lsn_text(end), expired)

    def changes(self, window: FeedWindow) -> FeedChanges:
        """Net changes per key in the window: current rows of upserted keys, keys of deleted rows."""
        if window.expired:
            raise SourceError(
                f"the window from {window.start} expired ({window.expired})",
                hint="reload the entity in full; its changes can no longer be read",
                **self._where,
            )
        begin = pgoutput.lsn_value(window.start) if window.start is not None else None
        end = pgoutput.lsn_value(window.end)
        with self._session() as db:
            table = db.table_info(self.qualified, self.keys)
            net = NetKeys(len(self.keys), self._where)
            truncated, pending = self._read_feed(db, table, begin, end, net)
            db.wait_visible(pending)  # the table read below must see every commit in the window
        schema = self.home.schema()
        key_schema = pa.schema([schema.field(k) for k in self.keys])

        def finish(deletes: pa.Table) -> None:
            gathered.deletes = deletes

        rows = self._current(net.result(), table, key_schema, finish)
        gathered = GatheredChanges(pa.RecordBatchReader.from_batches(schema, rows), key_schema)
        gathered.truncated = truncated
        return gathered

    def acknowledge(self, window: FeedWindow) -> None:
        """Let the server forget the window (called only after the journal recorded `window.end`). A slot
        that is gone or already past `end` is left as it is: the next `open` reports what it finds."""
        end = pgoutput.lsn_value(window.end)
        with self._session() as db:
            state = db.slot(self.slot)
            if state is None or state.wal_status == "lost" or (state.confirmed_flush or 0) >= end:
                return
            db.advance(self.slot, end)

    def drop(self) -> None:
        """Drop the slot (the server stops keeping WAL for it) and, when hygge named it, the publication."""
        with self._session() as db:
            db.drop_slot(self.slot)
            if not (self.entity.feed and self.entity.feed.publication):
                db.drop_publication(self.publication)

    # --- internals -----------------------------------------------------------------------------
    def _ensure_slot(self, db: Session, begin: int | None) -> str | None:
        """Create the slot when absent; advance it to a journaled `begin`; say why `begin` expired."""
        state = db.slot(self.slot)
        if state is not None and (
            state.plugin != "pgoutput" or state.database != db.value("SELECT current_database()")
        ):
            raise db.fail(
                f"replication slot {self.slot} exists for another purpose (plugin {state.plugin or 'none'}, "
                f"database {state.database or 'none'})",
                hint="name this entity's own slot in `feed.slot`",
            )
        if state is not None and state.active_pid is not None:
            raise db.fail(
                f"replication slot {self.slot} is in use by server process {state.active_pid}",
                hint="another reader holds the slot; give each feed its own `feed.slot` (hygge retries)",
                transient=True,
            )
        reason = None
        if begin is not None and begin > (wal := db.insert_lsn()):
            reason = (
                f"the journaled position {_at(begin)} is ahead of the server's WAL ({_at(wal)}): the "
                "server was restored from a backup or replaced"
            )
        if state is not None and state.wal_status == "lost":
            db.drop_slot(self.slot)
            state = None
            reason = reason or "the server removed WAL the slot still needed (max_slot_wal_keep_size)"
        if state is None:
            db.create_slot(self.slot)
            if begin is None:
                return None
            return reason or f"replication slot {self.slot} does not exist (dropped, or lost in a failover)"
        if begin is None or reason:
            return reason
        confirmed = state.confirmed_flush or 0
        if confirmed > begin:
            return (
                f"replication slot {self.slot} starts at {pgoutput.lsn_text(confirmed)}, after the journaled "
                f"position {pgoutput.lsn_text(begin)}: the changes in between are gone"
            )
        if confirmed < begin:
            db.advance(self.slot, begin)  # the journal holds `begin`: nothing before it is needed again
        return None

    def _read_feed(
        self, db: Session, table: TableInfo, begin: int | None, end: int, net: NetKeys | None
    ) -> tuple[str | None, set[int]]:
        """Fold the window's changes of this table into `net` (when given). Returns why every landed key
        is void (TRUNCATE, table recreated) or None, and the xids of the window's transactions that
        touched the table and that a snapshot taken before the read did not yet see. A single key that
        the catalog lists first is cut out by the server; the decoder's Relation message confirms it."""
        if len(self.keys) == 1 and next(iter(table.types)) == self.keys[0]:
            try:
                return self._fold_window(db, table, begin, end, net, table.oid)
            except _NotCut:
                if net is not None:
                    net.clear()
        return self._fold_window(db, table, begin, end, net, None)

    def _fold_window(
        self, db: Session, table: TableInfo, begin: int | None, end: int, net: NetKeys | None, cut: int | None
    ) -> tuple[str | None, set[int]]:
        seen = db.snapshot()
        pending: set[int] = set()
        keys: dict[int, tuple[int, ...]] = {}  # this table's key positions, from its Relation message
        truncated: str | None = None
        skip, touched, xid, commit = True, False, 0, 0
        for message in db.peek(self.slot, self.publication, end, keys, cut):
            if type(message) is tuple:  # a KeyCut: the most common message by far, so tested first
                if not skip:
                    touched = True
                    if net is not None:
                        net.add_cut(*message)
            elif isinstance(message, pgoutput.Begin):
                skip = begin is not None and message.commit_lsn < begin
                touched, xid, commit = False, message.xid, message.commit_lsn
            elif isinstance(message, pgoutput.Commit):
                if touched and not skip and not seen.sees(xid):
                    pending.add(xid)
            elif isinstance(message, pgoutput.Relation):
                # Sent once per read, before the table's first change, even in a skipped transaction.
                if message.oid == table.oid:
                    keys[message.oid] = self._key_positions(message)
                    if cut is not None and keys[message.oid] != (0,):
                        raise _NotCut
                elif not skip and (message.namespace, message.name) == (self.schema_name, self.home.table):
                    truncated = f"{self.qualified} was dropped and created again (commit {_at(commit)})"
                    touched = True
            elif skip:
                continue
            elif isinstance(message, pgoutput.Truncate) and table.oid in message.relations:
                truncated = f"TRUNCATE of {self.qualified} (commit {_at(commit)})"
                touched = True
                if net is not None:
                    net.clear()
            elif isinstance(message, pgoutput.Change) and message.relation == table.oid:
                touched = True
                if net is not None:
                    self._fold_change(message, net)
        return truncated, pending

    def _key_positions(self, relation: pgoutput.Relation) -> tuple[int, ...]:
        names = [c.name for c in relation.columns]
        missing = [k for k in self.keys if k not in names]
        if missing:
            raise SourceError(
                f"the feed's rows of {self.qualified} have no column(s) {', '.join(missing)}",
                hint="check `watermark.primary_key` against the table's columns",
                **self._where,
            )
        return tuple(names.index(k) for k in self.keys)

    def _fold_change(self, change: pgoutput.Change, net: NetKeys) -> None:
        """Key values come in key order (the peek kept only the key columns)."""
        old = self._key(change.old) if change.old is not None else None
        if change.op == "D":
            assert old is not None
            net.add("D", old)
            return
        assert change.new is not None
        new = self._key(change.new, fallback=change.old)
        if old is not None and old != new:  # an update that changed the key: the old key is gone
            net.add("D", old)
        net.add("U", new)

    def _key(self, values: tuple[pgoutput.Value, ...], fallback: tuple | None = None) -> tuple[bytes, ...]:
        key: list[bytes] = []
        for i, value in enumerate(values):
            if value is pgoutput.UNCHANGED and fallback is not None:
                value = fallback[i]
            if not isinstance(value, bytes):
                raise SourceError(
                    f"a change of {self.qualified} carries no value for key column {self.keys[i]}",
                    hint="key columns must be NOT NULL and part of the replica identity (a primary key)",
                    **self._where,
                )
            key.append(value)
        return tuple(key)

    def _keys_sql(self, keys: pa.Table, table: TableInfo) -> str:
        """A subquery `k` of the keys cast from text to the columns' own types (PostgreSQL parses its own
        text output exactly) and their op. One array literal a column is one constant to parse: 10k
        `ARRAY[…]` elements took twice as long to plan as to run (measured)."""
        arrays = [_array(keys.column(i).to_pylist()) for i in range(len(self.keys))]
        arrays.append(_array(keys.column("op").to_pylist()))
        aliases = [f"c{i}" for i in range(len(self.keys))] + ["op"]
        q = self.home.dialect.quote
        casts = [f"CAST(u.c{i} AS {table.types[k]}) AS {q(k)}" for i, k in enumerate(self.keys)] + ["u.op"]
        # In key order, the join walks the key's index in order: a third faster than in change order.
        order = ", ".join(str(i + 1) for i in range(len(self.keys)))
        return (
            f"SELECT {', '.join(casts)} FROM unnest({', '.join(arrays)}) AS u({', '.join(aliases)}) "
            f"ORDER BY {order}"
        )

    def _current(
        self, net: pa.Table, table: TableInfo, key_schema: pa.Schema, finish: Callable[[pa.Table], None]
    ) -> Iterator[pa.RecordBatch]:
        """The current rows of the window's upserted keys, one statement per CHUNK keys, read lazily. A key
        deleted in the window, or upserted in it but gone from the table now (deleted after the window:
        the next window sees that again), comes back as a delete: all of them go to `finish` once
        every chunk was read. One join a chunk both reads the rows and finds the deletes."""
        schema = self.home.schema()
        dialect, q = self.home.dialect, self.home.dialect.quote
        alias = q("hygge_t")
        columns = {c.name: c for c in self.home.columns()}
        named = [_KEY + str(i) for i in range(len(self.keys))]
        keys_out = [
            f"{dialect.fetch_expression(columns[k], 'k.' + q(k))} AS {q(n)}"
            for k, n in zip(self.keys, named, strict=True)
        ]
        match = " AND ".join(f"{alias}.{q(k)} = k.{q(k)}" for k in self.keys)
        gone = f"(k.op = 'D' OR {alias}.{q(self.keys[0])} IS NULL) AS {q(_GONE)}"
        carried = [pa.field(n, key_schema.field(k).type) for k, n in zip(self.keys, named, strict=True)]
        # Nullable: the LEFT JOIN gives a gone key's row NULLs in NOT NULL columns (filtered out below).
        stream = pa.schema([*all_nullable(schema), *carried, pa.field(_GONE, pa.bool_())])
        deletes: list[pa.Table] = []
        for at in range(0, net.num_rows, CHUNK * AT_ONCE):
            sql = [
                f"SELECT {self.home.select_list('hygge_t')}, {', '.join(keys_out)}, {gone} "
                f"FROM ({self._keys_sql(net.slice(start, CHUNK), table)}) AS k "
                f"LEFT JOIN {self.qualified} AS {alias} ON {match}"
                for start in range(at, min(at + CHUNK * AT_ONCE, net.num_rows), CHUNK)
            ]
            for batch in self.home.read_sql(sql, stream):
                flags = batch.column(_GONE)
                if pc.any(flags).as_py():
                    gone_rows = pa.Table.from_batches([batch.filter(flags)])
                    deletes.append(gone_rows.select(named).rename_columns(self.keys))
                    batch = batch.filter(pc.invert(flags))
                if batch.num_rows:
                    yield pa.RecordBatch.from_arrays(batch.select(schema.names).columns, schema=schema)
        finish(pa.concat_tables(deletes).cast(key_schema) if deletes else key_schema.empty_table())


def _array(values: list[str]) -> str:
    """A text[] constant holding `values` exactly: each element double-quoted (so 'NULL' stays text),
    its backslashes and double quotes escaped as PostgreSQL's array input expects."""
    elements = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return _literal("{" + ",".join(elements) + "}") + "::text[]"


def drop_feed(entity: ResolvedEntity, home: SqlHome) -> None:
    """Drop an entity's slot and publication: when it stops using the feed (removed, `feed:` deleted),
    or the server would keep every WAL segment since the slot's position, forever."""
    LogicalFeed(entity, home).drop()
