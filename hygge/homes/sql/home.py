"""SQL home: pins the schema from the catalog, then streams Arrow batches through its engine.

The engine is connectorx (`arrow_stream`) or, for SQL Server with Entra ID, mssql-python
(`hygge/homes/sql/engines.py`); every batch is cast to the pinned schema either way.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from hygge.config.models import ConnectionConfig, ResolvedEntity, SqlHomeConfig
from hygge.errors import ConfigError, SourceError
from hygge.homes.base import Bound
from hygge.homes.sql import connection as conns
from hygge.homes.sql.dialects import DIALECTS, Dialect
from hygge.homes.sql.driver_errors import driver_error
from hygge.homes.sql.engines import Engine, engine_for
from hygge.pipeline import prefetch
from hygge.typemap import Mapped, SourceColumn, cast_batch, map_column, parse_arrow_type, pin_driver_type
from hygge.watermark import rowversion_from_text

# Kinds whose Arrow order is the source's order (strings follow the source's collation: left alone).
_ORDERED_KINDS = ("int", "decimal", "date", "datetime", "datetime_tz")


def _at_or_above(batches: Iterator[pa.RecordBatch], bound: Bound) -> Iterator[pa.RecordBatch]:
    """Keep only rows at or above `bound`, as the Home contract says.

    A dialect may compare more loosely than the bound (SQLite compares date/time text, so its literal is
    floored to the second); the rows below the bound were landed by an earlier run, and without a
    primary key nothing else would remove them again.
    """
    if bound.kind not in _ORDERED_KINDS:
        yield from batches
        return
    for batch in batches:
        values = batch.column(batch.schema.get_field_index(bound.column))
        try:
            low = pa.scalar(bound.value, type=values.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # e.g. a lookback with more decimal places
            low = pa.scalar(bound.value)
        keep = pc.fill_null(pc.greater_equal(values, low), False)
        if pc.all(keep).as_py():
            yield batch
        else:
            kept = batch.filter(keep)
            if kept.num_rows:
                yield kept


class SqlHome:
    def __init__(self, entity: ResolvedEntity, conn: ConnectionConfig, project_root: Path | None = None):
        assert isinstance(entity.home, SqlHomeConfig)
        self.entity = entity
        self.config: SqlHomeConfig = entity.home
        self.conn = conn
        self.dialect: Dialect = DIALECTS[conn.type]
        self.engine: Engine = engine_for(conn, project_root)
        self._secrets = conns.secrets_of(conn)
        if self.config.partition_on and self.engine.name != "connectorx":
            raise ConfigError(
                f"`partition_on` needs the connectorx engine; connection '{self.config.connection}' "
                f"reads with {self.engine.name}",
                hint="remove `partition_on` (mssql-python reads one stream), or use a SQL login with "
                "`engine: connectorx`",
                flow=entity.flow,
                entity=entity.name,
                field="home.partition_on",
            )
        self._project_root = project_root
        self.query = entity.query
        self.db_schema, self.table = self._split_table(
            entity.table or (None if entity.query else entity.name)
        )
        self._columns: list[Mapped] | None = None
        # Set by read() when the watermark column is a rowversion: the MIN_ACTIVE_ROWVERSION() read first,
        # which bounded the read above (exclusive). The runner journals it instead of the maximum seen.
        self.watermark_ceiling: bytes | None = None

    def _split_table(self, table: str | None) -> tuple[str | None, str | None]:
        if table is None:
            return self.config.db_schema, None
        if self.config.db_schema is None and "." in table:
            schema, _, name = table.partition(".")
            return schema, name
        return self.config.db_schema, table

    # --- public --------------------------------------------------------------------------------
    def describe(self) -> str:
        what = f"query of {len(self.query)} characters" if self.query else self.source_name()
        return f"{conns.describe(self.conn)} {what}"

    def source_name(self) -> str:
        if self.query:
            return "(query)"
        return f"{self.db_schema}.{self.table}" if self.db_schema else str(self.table)

    def columns(self) -> list[Mapped]:
        if self._columns is None:
            mapped = self._catalog_columns() if self.table else self._query_columns()
            self._columns = self._apply_overrides(mapped)
        return self._columns

    def schema(self) -> pa.Schema:
        """The pinned schema: NOT NULL where the catalog (or a query's description) says so. A key the
        catalog lets be NULL stays nullable: hygge.changes.integrity refuses a NULL key, naming it."""
        return pa.schema([pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.columns()])

    def rowversion_columns(self) -> frozenset[str]:
        """The SQL Server rowversion columns: the only binary columns `watermark.check_column` accepts."""
        return frozenset(c.name for c in self.columns() if c.rowversion)

    def select_sql(self, bound: Bound | None = None, ceiling: bytes | None = None) -> str:
        """The SELECT for a read: rows at or above `bound`, and below `ceiling` (a rowversion's)."""
        columns = self.columns()
        select = ", ".join(self.dialect.select_expression(c) for c in columns)
        if self.table:
            source = self.dialect.table(self.db_schema, self.table)
        else:
            source = f"({self.query}) AS {self.dialect.quote('hygge_q')}"
        sql = f"SELECT {select} FROM {source}"
        conditions = []
        if bound is not None:
            literal = self.dialect.literal(bound.value, bound.kind)
            conditions.append(f"{self.dialect.quote(bound.column)} >= {literal}")
        column = self._rowversion_watermark()
        if ceiling is not None and column is not None:
            conditions.append(f"{self.dialect.quote(column)} < {self.dialect.rowversion_literal(ceiling)}")
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        return self._deduplicated(sql, columns)

    def _deduplicated(self, sql: str, columns: list[Mapped]) -> str:
        """With `watermark.dedupe_by`, one row per key: the server numbers each key's rows by that
        column (largest first) and only the first is read, so the stream stays a stream."""
        mark = self.entity.watermark
        if not (mark and mark.dedupe_by):
            return sql
        q = self.dialect.quote
        names = {c.name for c in columns}
        for name in [*mark.primary_key, mark.dedupe_by]:
            if name not in names:
                raise self._unknown_column(
                    ConfigError, "`watermark.dedupe_by` and `primary_key` name", name, names, "watermark.dedupe_by"
                )
        keys = ", ".join(q(k) for k in mark.primary_key)
        outer = ", ".join(q(c.name) for c in columns)
        numbered = (
            f"SELECT {outer}, ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY {q(mark.dedupe_by)} DESC) "
            f"AS {q('hygge_rn')} FROM ({sql}) AS {q('hygge_d')}"
        )
        return f"SELECT {outer} FROM ({numbered}) AS {q('hygge_n')} WHERE {q('hygge_rn')} = 1"

    def read(self, bound: Bound | None = None) -> pa.RecordBatchReader:
        schema = self.schema()
        # A rowversion watermark: the ceiling is read before any row, in its own query, so every row below
        # it is committed; rows at or above it (open transactions, later writes) are the next run's.
        ceiling = self._rowversion_ceiling() if self._rowversion_watermark() else None
        self.watermark_ceiling = ceiling
        sql = self.select_sql(bound, ceiling)
        raw = self._run(
            lambda: self.engine.stream(
                sql, self.config.batch_size, self._partition_column(), self.config.partition_num
            )
        )
        batches = self._cast(raw, schema)
        if bound is not None:
            batches = _at_or_above(batches, bound)
        # The drivers hold the GIL while they wait for the next batch: fetching on a thread of its
        # own lets the store encode the previous batches meanwhile.
        return pa.RecordBatchReader.from_batches(schema, prefetch(batches))

    def _partition_column(self) -> str | None:
        on = self.config.partition_on
        return self.dialect.quote(on) if on else None

    def select_list(self, alias: str | None = None) -> str:
        """The pinned columns with their lossless casts, optionally qualified by a table alias (for
        change feeds that join the table to the source's change records)."""
        prefix = f"{self.dialect.quote(alias)}." if alias else ""
        parts = []
        for column in self.columns():
            expression = self.dialect.select_expression(column)
            if prefix:
                quoted = self.dialect.quote(column.name)
                expression = expression.replace(quoted, prefix + quoted, 1)
            parts.append(expression)
        return ", ".join(parts)

    def read_sql(
        self, sql: str | list[str], schema: pa.Schema | None = None, partition_on: str | None = None
    ) -> pa.RecordBatchReader:
        """Stream any SELECT through the engine, each batch cast to `schema` (default the pinned one);
        driver failures become SourceError like a table read's. Several SELECTs of one shape, or ranges
        of the quoted column `partition_on`, are read on as many connections at once."""
        schema = schema or self.schema()
        parts = (self.config.partition_num or 2) if partition_on else None
        raw = self._run(lambda: self.engine.stream(sql, self.config.batch_size, partition_on, parts))
        return pa.RecordBatchReader.from_batches(schema, prefetch(self._cast(raw, schema)))

    def read_columns(self, names: list[str]) -> pa.RecordBatchReader:
        """Only these columns of every row (a key set for reconciliation), in their pinned types."""
        wanted = [c for c in self.columns() if c.name in names]
        select = ", ".join(self.dialect.select_expression(c) for c in wanted)
        if self.table:
            source = self.dialect.table(self.db_schema, self.table)
        else:
            source = f"({self.query}) AS {self.dialect.quote('hygge_q')}"
        schema = pa.schema([pa.field(c.name, c.arrow_type) for c in wanted])
        # A single integer key is read in ranges on two connections: the server scans and sends both
        # halves at once (10M PostgreSQL keys in 3.0 s instead of 4.4 s, measured). Engines that read
        # one stream only (mssql-python) ignore the ranges.
        ranged = len(wanted) == 1 and pa.types.is_integer(wanted[0].arrow_type)
        partition = self.dialect.quote(wanted[0].name) if ranged else None
        return self.read_sql(f"SELECT {select} FROM {source}", schema, partition)

    def run_sql(self, sql: str) -> pa.Table:
        """A small result read whole (positions, probes), with driver failures as SourceError."""
        return self._run(lambda: self.engine.table(sql))

    # --- internals -----------------------------------------------------------------------------
    def _rowversion_watermark(self) -> str | None:
        mark = self.entity.watermark
        column = mark.watermark_column if mark else None
        return column if column is not None and column in self.rowversion_columns() else None

    def _rowversion_ceiling(self) -> bytes:
        rows = self.run_sql(self.dialect.rowversion_ceiling_query()).to_pylist()
        value = rows[0].get("ceiling") if rows else None
        try:
            return rowversion_from_text(str(value))
        except ValueError as exc:
            raise SourceError(
                f"MIN_ACTIVE_ROWVERSION() from {conns.describe(self.conn)} gave no usable value: {exc}",
                hint="the watermark column must be a SQL Server rowversion (timestamp) column",
                flow=self.entity.flow,
                entity=self.entity.name,
            ) from None

    def _cast(self, reader: pa.RecordBatchReader, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        batches = iter(reader)
        while True:
            batch = self._run(lambda: next(batches, None))
            if batch is None:
                return
            if batch.num_rows:
                yield cast_batch(batch, schema)

    def _run(self, call):
        """Run a driver call, turning driver failures (including Rust panics) into SourceError."""
        try:
            return call()
        except SourceError:
            raise
        except BaseException as exc:  # connectorx panics raise PanicException, a BaseException
            if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
                raise
            raise self._source_error(exc) from None

    def _source_error(self, exc: BaseException) -> SourceError:
        decimals = [c.name for c in self._columns or () if pa.types.is_decimal(c.arrow_type)]
        return driver_error(
            exc, self._secrets, f"{self.source_name()} from {conns.describe(self.conn)}", bool(self.query),
            decimals=decimals, flow=self.entity.flow, entity=self.entity.name,
        )  # fmt: skip

    def _catalog_columns(self) -> list[Mapped]:
        assert self.table is not None
        if self.conn.type == "sqlite":
            rows = self._sqlite_catalog()
        else:
            sql = self.dialect.catalog_query(self.db_schema, self.table)
            table = self._run(lambda: self.engine.table(sql))
            rows = [
                SourceColumn(r["name"], r["data_type"], r["precision"], r["scale"], bool(r["nullable"]))
                for r in table.to_pylist()
            ]
        if not rows:
            raise SourceError(
                f"table {self.source_name()} was not found in {conns.describe(self.conn)}",
                hint="check `table:` and `schema:` (names are matched exactly, case included)",
                flow=self.entity.flow,
                entity=self.entity.name,
                field="table",
            )
        return [self._map(col) for col in rows]

    def _sqlite_catalog(self) -> list[SourceColumn]:
        # connectorx cannot type SQLite's pragma output (NULL defaults), so the stdlib reads the catalog.
        path = conns.sqlite_path(self.conn, self._project_root)
        if not path.is_file():
            raise SourceError(
                f"SQLite database {path} does not exist",
                hint="check the connection's `path`",
                flow=self.entity.flow,
                entity=self.entity.name,
                field="home.connection",
            )
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            schema = self.db_schema or "main"
            rows = db.execute(
                f'SELECT name, type, "notnull" FROM {self.dialect.quote(schema)}.pragma_table_info(?)',
                (self.table,),
            ).fetchall()
        return [SourceColumn(name, declared or "", nullable=not notnull) for name, declared, notnull in rows]

    def _map(self, col: SourceColumn) -> Mapped:
        try:
            return dataclasses.replace(map_column(self.conn.type, col), nullable=col.nullable)
        except SourceError as exc:
            raise exc.with_context(flow=self.entity.flow, entity=self.entity.name) from None

    def _query_columns(self) -> list[Mapped]:
        """A query has no catalog entry: SQL Server and PostgreSQL describe its result (typed like a
        table, with the same lossless casts); SQLite its columns taken from tables; elsewhere the
        driver's result types are taken. `columns:` refines all of them."""
        assert self.query is not None
        described = self.dialect.query_catalog_query(self.query)
        if described is not None:
            rows = self._run(lambda: self.engine.table(described)).to_pylist()
            errors = [r["error_message"] for r in rows if r.get("error_message")]
            if not errors and any(not r["name"] for r in rows):
                errors = ["a column has no name (name every expression with AS)"]
            if errors or not rows:
                raise SourceError(
                    f"SQL Server cannot describe the query's result: {errors[0] if errors else 'no columns'}",
                    hint="the query must be one SELECT usable as a subquery (no temp tables or dynamic SQL)",
                    flow=self.entity.flow,
                    entity=self.entity.name,
                    field="query",
                )
            return [
                self._map(
                    SourceColumn(r["name"], r["data_type"], r["precision"], r["scale"], bool(r["nullable"]))
                )
                for r in rows
            ]
        if self.conn.type == "postgres":
            from hygge.homes.sql.pg_describe import describe_query

            try:
                described_columns = describe_query(conns.libpq_url(self.conn), self.query, conns.secrets_of(self.conn))
            except SourceError as exc:
                raise exc.with_context(flow=self.entity.flow, entity=self.entity.name) from None
            return [self._map(c) for c in described_columns]
        sql = f"SELECT * FROM ({self.query}) AS {self.dialect.quote('hygge_q')} WHERE 1 = 0"
        schema = self._run(lambda: self.engine.result_schema(sql))
        driver = [Mapped(fld.name, pin_driver_type(fld.type)) for fld in schema]
        if self.conn.type != "sqlite":
            return driver
        from hygge.homes.sql.sqlite_describe import describe_query as describe_sqlite

        try:
            declared = describe_sqlite(conns.sqlite_path(self.conn, self._project_root), self.query)
        except SourceError as exc:
            raise exc.with_context(flow=self.entity.flow, entity=self.entity.name) from None
        if [name for name, _ in declared] != [m.name for m in driver]:
            return driver  # duplicate names: connectorx and the view disagree; the driver's types
        # A column taken from a table is typed by its declaration, as the table's own column is.
        return [
            self._map(SourceColumn(name, kind)) if kind else m
            for (name, kind), m in zip(declared, driver, strict=True)
        ]

    def _unknown_column(
        self, kind: type[ConfigError] | type[SourceError], what: str, name: str, names: set[str], field: str
    ) -> ConfigError | SourceError:
        """The error for a setting that names a column the source does not have."""
        return kind(
            f"{what} '{name}', which the source does not have",
            hint=f"use one of: {', '.join(sorted(names))}",
            flow=self.entity.flow,
            entity=self.entity.name,
            field=field,
        )

    def _apply_overrides(self, mapped: list[Mapped]) -> list[Mapped]:
        if not self.entity.columns:
            return mapped
        names = {m.name for m in mapped}
        for name in self.entity.columns:
            if name not in names:
                raise self._unknown_column(SourceError, "`columns:` names", name, names, f"columns.{name}")
        result = []
        for m in mapped:
            text = self.entity.columns.get(m.name)
            if text is None:
                result.append(m)
                continue
            try:
                arrow = parse_arrow_type(text)
            except ValueError as exc:
                raise SourceError(
                    str(exc), flow=self.entity.flow, entity=self.entity.name, field=f"columns.{m.name}"
                ) from None
            fetch = "text" if pa.types.is_decimal(arrow) else m.fetch
            result.append(Mapped(m.name, arrow, fetch, nullable=m.nullable))
        return result
