"""SQL Server Change Tracking as a change feed: the net change of every key between two CT versions.

`open(start)` reads, in one statement, CHANGE_TRACKING_CURRENT_VERSION() (the window's end, read
before any change), the table's CHANGE_TRACKING_MIN_VALID_VERSION (NULL: not tracked), the database's
isolation options and the table's primary key. `changes(window)` is ONE statement:

    SELECT c.SYS_CHANGE_OPERATION, <c's keys>, <t's pinned select list>
    FROM CHANGETABLE(CHANGES <table>, start) AS c LEFT JOIN <table> AS t ON <every key equal>
    WHERE c.SYS_CHANGE_VERSION <= end

CHANGETABLE already nets the changes per key (one row, the latest version). A 'D', or an I/U whose
row is gone from the join (deleted after the change table was read, possible without a snapshot),
becomes a delete; the rest are upserts. A key changed again after `end` has SYS_CHANGE_VERSION > end:
it is left for the next window, which re-applies its current values. A row of the window may still
join with values written after `end`; the next window carries that change again, so applying it
twice is harmless (upserts and deletes by key are idempotent).

One stream, split as it is read: the upserts stream through (memory bounded) and the deletes, keys
only, are gathered beside them. So `FeedChanges.deletes` is ready once `upserts` has been read to
its end; reading it earlier raises. Callers read the upserts first, then the deletes. One statement
rather than two (deletes, then upserts) keeps both halves in one snapshot and reads CHANGETABLE once.

Consistency per engine: mssql-python sends the statement as a batch after
`SET TRANSACTION ISOLATION LEVEL SNAPSHOT` when the database allows snapshot isolation. connectorx
runs a single statement per read (no SET); it gets the database default: statement-level row
versioning under READ_COMMITTED_SNAPSHOT (Azure SQL Database's default), which is as consistent for
this one statement, else locking read committed (the join may see later rows: handled as above).
Whatever the engine, the minimum valid version is read again when the stream ends: cleanup that
overtook the window fails the run before the store commits, and the next run reloads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from hygge.changes.feed import FeedChanges, FeedWindow, GatheredChanges
from hygge.errors import ConfigError, SourceError
from hygge.typemap import all_nullable

if TYPE_CHECKING:
    from hygge.config.models import ResolvedEntity
    from hygge.homes.sql.home import SqlHome

SNAPSHOT_PREFIX = "SET NOCOUNT ON; SET TRANSACTION ISOLATION LEVEL SNAPSHOT; "


@dataclass(frozen=True)
class Position:
    """What `open` reads from the server in one statement."""

    current: int | None  # CHANGE_TRACKING_CURRENT_VERSION(): NULL when the database does not track
    min_valid: int | None  # CHANGE_TRACKING_MIN_VALID_VERSION(table): NULL when the table does not
    snapshot_allowed: bool  # ALLOW_SNAPSHOT_ISOLATION ON
    read_committed_snapshot: bool  # READ_COMMITTED_SNAPSHOT ON
    key_columns: int  # columns of the table's primary key (0 when the login cannot see the catalog)
    key_matches: int  # how many of them are the entity's keys


class ChangeTrackingFeed:
    """A `ChangeFeed` over SQL Server Change Tracking; positions are CT versions as decimal text."""

    kind = "ct_version"

    def __init__(self, entity: ResolvedEntity, home: SqlHome) -> None:
        assert home.table, "Change Tracking reads a table"
        self.entity = entity
        self.home = home
        self.keys = entity.keys
        self.position: Position | None = None  # known after open()
        names = {c.name for c in home.columns()}
        self._op = _free_name("hygge_op", names)
        self._key_aliases = [_free_name(f"hygge_key_{i}", names) for i in range(len(self.keys))]

    # --- SQL -----------------------------------------------------------------------------------
    def table_sql(self) -> str:
        assert self.home.table is not None
        return self.home.dialect.table(self.home.db_schema, self.home.table)

    def position_sql(self) -> str:
        """Current version, the table's min valid version, isolation options, primary key: one SELECT."""
        d = self.home.dialect
        object_id = f"OBJECT_ID({d.string(self.table_sql())})"
        key_names = ", ".join(d.string(k) for k in self.keys)
        primary_key = (
            "FROM sys.indexes AS i JOIN sys.index_columns AS ic "
            "ON ic.object_id = i.object_id AND ic.index_id = i.index_id "
            "JOIN sys.columns AS col ON col.object_id = ic.object_id AND col.column_id = ic.column_id "
            f"WHERE i.object_id = {object_id} AND i.is_primary_key = 1"
        )
        database = "FROM sys.databases AS db WHERE db.database_id = DB_ID()"
        return (
            "SELECT CAST(CHANGE_TRACKING_CURRENT_VERSION() AS BIGINT) AS [current_version], "
            f"CHANGE_TRACKING_MIN_VALID_VERSION({object_id}) AS [min_valid_version], "
            f"(SELECT CAST(db.snapshot_isolation_state AS INT) {database}) AS [snapshot_isolation], "
            f"(SELECT CAST(db.is_read_committed_snapshot_on AS INT) {database}) AS [read_committed_snapshot], "
            f"(SELECT COUNT(*) {primary_key}) AS [key_columns], "
            f"(SELECT COUNT(*) {primary_key} AND col.name IN ({key_names})) AS [key_matches]"
        )

    def changes_sql(self, window: FeedWindow) -> str:
        """The one statement of `changes`: net changes after `start`, up to and including `end`."""
        d = self.home.dialect
        start, end = _version(window.start, self.entity), _version(window.end, self.entity)
        c, t = d.quote("c"), d.quote("t")
        mapped = {m.name: m for m in self.home.columns()}
        keys = ", ".join(
            f"{d.fetch_expression(mapped[k], f'{c}.{d.quote(k)}')} AS {d.quote(alias)}"
            for k, alias in zip(self.keys, self._key_aliases, strict=True)
        )
        on = " AND ".join(f"{t}.{d.quote(k)} = {c}.{d.quote(k)}" for k in self.keys)
        table = self.table_sql()
        sql = (
            f"SELECT {c}.{d.quote('SYS_CHANGE_OPERATION')} AS {d.quote(self._op)}, {keys}, "
            f"{self.home.select_list('t')} "
            f"FROM CHANGETABLE(CHANGES {table}, {start}) AS {c} "
            f"LEFT JOIN {table} AS {t} ON {on} "
            f"WHERE {c}.{d.quote('SYS_CHANGE_VERSION')} <= {end}"
        )
        return SNAPSHOT_PREFIX + sql if self.snapshot else sql

    # --- the ChangeFeed protocol ---------------------------------------------------------------
    @property
    def snapshot(self) -> bool:
        """Whether `changes` runs under snapshot isolation (mssql-python, and the database allows it)."""
        position = self.position
        return self.home.engine.name == "mssql-python" and position is not None and position.snapshot_allowed

    def open(self, start: str | None) -> FeedWindow:
        position = self.position = self._read_position()
        self._check_keys(position)
        assert position.current is not None and position.min_valid is not None
        end = str(position.current)
        if start is None:
            return FeedWindow(None, end)
        begin = _version(start, self.entity)
        if begin < position.min_valid:
            return FeedWindow(
                start,
                end,
                expired=f"the journaled Change Tracking version {begin} is older than {self.table_sql()}'s "
                f"minimum valid version {position.min_valid}: the changes since then were cleaned up "
                "(retention period) or the table was truncated",
            )
        if begin > position.current:
            return FeedWindow(
                start,
                end,
                expired=f"the journaled Change Tracking version {begin} is ahead of the database's "
                f"current version {position.current}: the database was restored or replaced",
            )
        return FeedWindow(start, end)

    def changes(self, window: FeedWindow) -> FeedChanges:
        if window.start is None or window.expired:
            raise SourceError(
                f"Change Tracking has no changes to read for this window ({window.expired or 'first run'})",
                hint="a first run or an expired window is a full load of the table, not a change read",
                flow=self.entity.flow,
                entity=self.entity.name,
            )
        if self.position is None:
            self.position = self._read_position()
        schema = self.home.schema()
        key_schema = pa.schema([schema.field(k) for k in self.keys])
        stream_schema = pa.schema(
            [pa.field(self._op, pa.string())]
            + [
                pa.field(a, key_schema.field(k).type)
                for k, a in zip(self.keys, self._key_aliases, strict=True)
            ]
            + list(all_nullable(schema))  # a deleted row's columns come NULL from the join
        )
        stream = self.home.read_sql(self.changes_sql(window), stream_schema)

        def finish(deletes: pa.Table) -> None:
            gathered.deletes = deletes

        upserts = self._split(stream, schema, key_schema, window, finish)  # runs as the caller reads
        gathered = GatheredChanges(pa.RecordBatchReader.from_batches(schema, upserts), key_schema)
        return gathered

    def acknowledge(self, window: FeedWindow) -> None:
        """Nothing to release: the journal holds the version, and the server keeps changes for its
        retention period whatever the readers do."""

    def describe(self) -> str:
        position = self.position
        if position is None:
            isolation = "isolation known after open"
        elif self.snapshot:
            isolation = "snapshot isolation"
        elif position.read_committed_snapshot:
            isolation = "read committed snapshot"
        else:
            isolation = "locking read committed"
        return (
            f"SQL Server Change Tracking on {self.home.describe()} (keys {', '.join(self.keys)}; {isolation})"
        )

    # --- internals -----------------------------------------------------------------------------
    def _split(
        self,
        stream: pa.RecordBatchReader,
        schema: pa.Schema,
        key_schema: pa.Schema,
        window: FeedWindow,
        finish: Callable[[pa.Table], None],
    ) -> Iterator[pa.RecordBatch]:
        """Yield the upserts of the stream; gather its deletes, handed over when the stream ends."""
        deleted: list[pa.RecordBatch] = []
        for batch in stream:
            operation = batch.column(self._op)
            joined = batch.column(self.keys[0])  # a key of `t`: NULL when the row is gone
            delete = pc.fill_null(pc.or_(pc.equal(operation, "D"), pc.is_null(joined)), True)
            if pc.any(delete).as_py():
                keys = batch.filter(delete).select(self._key_aliases).rename_columns(self.keys)
                deleted.append(pa.RecordBatch.from_arrays(keys.columns, schema=key_schema))
            upserts = batch.filter(pc.invert(delete)).select(schema.names)
            if upserts.num_rows:
                yield pa.RecordBatch.from_arrays(upserts.columns, schema=schema)
        self._check_still_valid(window)
        finish(pa.Table.from_batches(deleted, schema=key_schema))

    def _read_position(self) -> Position:
        rows = self.home.run_sql(self.position_sql()).to_pylist()
        row = rows[0] if rows else {}

        def number(name: str) -> int | None:
            value = row.get(name)
            return None if value is None else int(value)

        position = Position(
            current=number("current_version"),
            min_valid=number("min_valid_version"),
            snapshot_allowed=number("snapshot_isolation") == 1,
            read_committed_snapshot=number("read_committed_snapshot") == 1,
            key_columns=number("key_columns") or 0,
            key_matches=number("key_matches") or 0,
        )
        if position.current is None or position.min_valid is None:
            raise self._not_enabled(database=position.current is None)
        return position

    def _not_enabled(self, *, database: bool) -> SourceError:
        table = self.table_sql()
        where = "the database" if database else f"table {table}"
        function = "CHANGE_TRACKING_CURRENT_VERSION()" if database else "CHANGE_TRACKING_MIN_VALID_VERSION"
        return SourceError(
            f"Change Tracking is not enabled for {where} in {self.home.describe()} ({function} is NULL)",
            hint="enable it (as the database owner): ALTER DATABASE CURRENT SET CHANGE_TRACKING = ON "
            "(CHANGE_RETENTION = 7 DAYS, AUTO_CLEANUP = ON); "
            f"ALTER TABLE {table} ENABLE CHANGE_TRACKING; "
            f"and let hygge's database user read it: GRANT SELECT, VIEW CHANGE TRACKING ON {table} TO <user> "
            "(without that permission the server also answers NULL)",
            flow=self.entity.flow,
            entity=self.entity.name,
            field="feed.type",
        )

    def _check_keys(self, position: Position) -> None:
        """CHANGETABLE names rows by the table's primary key: the entity's keys must be exactly it."""
        if position.key_columns == 0:
            return  # the catalog is not visible to this login: the changes query will say so if wrong
        if position.key_columns != len(self.keys) or position.key_matches != len(self.keys):
            raise ConfigError(
                f"Change Tracking reports changes by the primary key of {self.table_sql()} "
                f"({position.key_columns} columns), which is not primary_key [{', '.join(self.keys)}]",
                hint="set watermark.primary_key to the table's primary key columns",
                file=self.entity.file,
                flow=self.entity.flow,
                entity=self.entity.name,
                field="watermark.primary_key",
            )

    def _check_still_valid(self, window: FeedWindow) -> None:
        """Cleanup may have removed changes of the window while it was read: fail before the commit."""
        min_valid = self._read_position().min_valid
        assert min_valid is not None and window.start is not None
        if int(window.start) < min_valid:
            raise SourceError(
                f"Change Tracking cleanup removed changes after version {window.start} while they were "
                f"read (minimum valid version is now {min_valid})",
                hint="run again: the next run finds the version expired and follows `feed.on_expired`; "
                "a longer CHANGE_RETENTION or more frequent runs avoid it",
                transient=True,
                flow=self.entity.flow,
                entity=self.entity.name,
            )


def _free_name(base: str, taken: set[str]) -> str:
    """`base`, prefixed with underscores until no table column has that name."""
    name = base
    while name in taken:
        name = "_" + name
    return name


def _version(text: str | None, entity: ResolvedEntity) -> int:
    """A CT version from its journal text (decimal digits); anything else is refused, never quoted."""
    if text is None or not (text.isascii() and text.isdigit()):
        raise SourceError(
            f"the journaled Change Tracking version {text!r} is not a version number",
            hint="run the entity once with --full-drop to journal a fresh version",
            flow=entity.flow,
            entity=entity.name,
        )
    return int(text)
