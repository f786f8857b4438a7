"""The two ways a SQL home reads: connectorx (every dialect) and mssql-python (SQL Server, Entra ID).

Both take the same SQL text (the dialect's SELECT list with its lossless casts) and return Arrow;
the home casts every batch to the schema pinned from the catalog, so the engine never changes what
lands. Drivers are imported lazily, so `import hygge` needs neither.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from hygge.config.models import ConnectionConfig
from hygge.homes.sql import connection as conns


class Engine(Protocol):
    """What a SQL home needs from a driver."""

    name: str

    def table(self, sql: str) -> pa.Table:
        """A small result read whole (catalog queries, probes)."""
        ...

    def stream(
        self,
        sql: str | list[str],
        batch_size: int,
        partition_on: str | None = None,
        partition_num: int | None = None,
    ) -> pa.RecordBatchReader:
        """The result as a stream of Arrow batches (of every SELECT in a list, in any order)."""
        ...

    def result_schema(self, sql: str) -> pa.Schema:
        """The Arrow types the driver gives a query's columns, reading no rows."""
        ...


class Connectorx:
    """connectorx `read_sql`: SQL logins only; the fastest, with `partition_on` range reads."""

    name = "connectorx"

    def __init__(self, url: str) -> None:
        self._url = url

    @staticmethod
    def _cx():
        import connectorx

        return connectorx

    def table(self, sql: str) -> pa.Table:
        return self._cx().read_sql(self._url, sql, return_type="arrow")

    def stream(
        self,
        sql: str | list[str],
        batch_size: int,
        partition_on: str | None = None,
        partition_num: int | None = None,
    ) -> pa.RecordBatchReader:
        if partition_on and isinstance(sql, str):
            sql = self._ranges(sql, partition_on, partition_num or 2)
        queries = sql[0] if isinstance(sql, list) and len(sql) == 1 else sql
        return self._cx().read_sql(self._url, queries, return_type="arrow_stream", batch_size=batch_size)

    def _ranges(self, sql: str, column: str, parts: int) -> str | list[str]:
        """`sql` split into `parts` ranges of `column` (a quoted name; read on as many connections at
        once), then its
        NULLs. Written here rather than connectorx's own `partition_on`, which returns no rows at all
        when the column holds its type's largest value (its range end overflows) and leaves out rows
        where it is NULL (both seen with connectorx 0.4.6): bounds here are Python numbers, the last
        range has no upper end, and NULLs get a range of their own."""
        bounds = self.table(f"SELECT MIN({column}) AS lo, MAX({column}) AS hi FROM ({sql}) AS hygge_r")
        low, high = bounds.column(0)[0].as_py(), bounds.column(1)[0].as_py()
        if low is None or low == high:
            return sql
        if isinstance(low, bool) or not isinstance(low, int | float | Decimal):
            raise ValueError(f"partition_on column {column} is not numeric (its smallest value is {low!r})")
        divide = operator.floordiv if isinstance(low, int) else operator.truediv  # ints stay exact
        cuts = sorted({low + divide((high - low) * i, parts) for i in range(1, parts)} - {low})
        wrapped = f"SELECT * FROM ({sql}) AS hygge_p WHERE "
        queries = []
        for start, end in itertools.pairwise([None, *cuts, None]):
            tests = [f"{column} >= {start}"] if start is not None else []
            tests += [f"{column} < {end}"] if end is not None else []
            queries.append(wrapped + (" AND ".join(tests) or f"{column} IS NOT NULL"))
        return [*queries, wrapped + f"{column} IS NULL"]

    def result_schema(self, sql: str) -> pa.Schema:
        return self._cx().read_sql(self._url, sql, return_type="arrow_stream").schema


class MssqlPython:
    """Microsoft's mssql-python driver: SQL logins and Microsoft Entra ID; no partitioned reads."""

    name = "mssql-python"

    def __init__(self, conn: ConnectionConfig) -> None:
        self._conn = conn

    def table(self, sql: str) -> pa.Table:
        from hygge.homes.sql import mssql_python

        return mssql_python.table(self._conn, sql)

    def stream(
        self,
        sql: str | list[str],
        batch_size: int,
        partition_on: str | None = None,
        partition_num: int | None = None,
    ) -> pa.RecordBatchReader:
        from hygge.homes.sql import mssql_python

        queries = [sql] if isinstance(sql, str) else sql
        first = mssql_python.stream(self._conn, queries[0], batch_size)
        if len(queries) == 1:
            return first

        def batches() -> Iterator[pa.RecordBatch]:  # one statement after another, one connection each
            yield from first
            for one in queries[1:]:
                yield from mssql_python.stream(self._conn, one, batch_size)

        return pa.RecordBatchReader.from_batches(first.schema, batches())

    def result_schema(self, sql: str) -> pa.Schema:
        from hygge.homes.sql import mssql_python

        return mssql_python.result_schema(self._conn, sql)


def engine_for(conn: ConnectionConfig, project_root: Path | None = None) -> Engine:
    """The engine `conn` resolves to (`engine: auto` → mssql-python for Entra ID, else connectorx)."""
    if conn.type == "mssql" and conn.sql_engine == "mssql-python":
        return MssqlPython(conn)
    return Connectorx(conns.connectorx_url(conn, project_root))
