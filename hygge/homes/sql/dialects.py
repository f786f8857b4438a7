"""Per-dialect SQL text: identifier quoting, catalog queries, lossless casts and watermark literals.

Identifiers are always quoted (brackets for T-SQL, double quotes for PostgreSQL and SQLite, backticks
for MySQL) with the closing quote doubled, so odd names and injection attempts stay inert.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from hygge.typemap import Mapped
from hygge.watermark import WatermarkValue


def _string_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Dialect:
    name: str
    open_quote: str
    close_quote: str
    default_schema: str | None

    def quote(self, identifier: str) -> str:
        return self.open_quote + identifier.replace(self.close_quote, self.close_quote * 2) + self.close_quote

    def table(self, schema: str | None, table: str) -> str:
        if schema:
            return f"{self.quote(schema)}.{self.quote(table)}"
        return self.quote(table)

    def string(self, text: str) -> str:
        return _string_literal(text)

    # --- catalog -------------------------------------------------------------------------------
    def catalog_query(self, schema: str | None, table: str) -> str:
        raise NotImplementedError

    def query_catalog_query(self, query: str) -> str | None:
        """Catalog rows for a `query:` entity's result, where the server can describe one (else None:
        the driver's result types are used)."""
        return None

    # --- select list ---------------------------------------------------------------------------
    def select_expression(self, column: Mapped) -> str:
        q = self.quote(column.name)
        expression = self.fetch_expression(column, q)
        return q if expression == q else f"{expression} AS {q}"

    def fetch_expression(self, column: Mapped, reference: str) -> str:
        """How `column` is read losslessly from `reference` (its quoted, possibly qualified name)."""
        if column.fetch == "text":
            return self.text_cast(reference)
        if column.fetch == "money":
            return self.money_cast(reference)
        if column.fetch == "guid":
            return f"LOWER({self.text_cast(reference)})"
        return reference

    def text_cast(self, expression: str) -> str:
        return f"CAST({expression} AS TEXT)"

    def money_cast(self, expression: str) -> str:
        return f"CAST({expression} AS DECIMAL(19,4))"

    # --- watermark literals --------------------------------------------------------------------
    def literal(self, value: WatermarkValue, kind: str) -> str:
        if kind == "int":
            return str(int(value))  # type: ignore[arg-type]
        if kind == "decimal":
            return format(Decimal(value), "f")  # type: ignore[arg-type]
        if kind == "date":
            return self.date_literal(value)  # type: ignore[arg-type]
        if kind == "datetime":
            return self.datetime_literal(value)  # type: ignore[arg-type]
        if kind == "datetime_tz":
            return self.datetime_tz_literal(value)  # type: ignore[arg-type]
        if kind == "rowversion":
            return self.rowversion_literal(value)  # type: ignore[arg-type]
        return self.string(str(value))

    def rowversion_literal(self, value: bytes) -> str:
        raise NotImplementedError(f"{self.name} has no rowversion columns")

    def rowversion_ceiling_query(self) -> str:
        """One row, column `ceiling`: the rowversion below which every row is committed."""
        raise NotImplementedError(f"{self.name} has no rowversion columns")

    def date_literal(self, value: dt.date) -> str:
        return f"DATE {_string_literal(value.isoformat())}"

    def datetime_literal(self, value: dt.datetime) -> str:
        return f"TIMESTAMP {_string_literal(value.isoformat(sep=' ', timespec='microseconds'))}"

    def datetime_tz_literal(self, value: dt.datetime) -> str:
        text = value.astimezone(dt.UTC).isoformat(sep=" ", timespec="microseconds")
        return f"TIMESTAMPTZ {_string_literal(text)}"


class Postgres(Dialect):
    def catalog_query(self, schema: str | None, table: str) -> str:
        return (
            "SELECT column_name::text AS name, data_type::text AS data_type, "
            "numeric_precision::int4 AS precision, numeric_scale::int4 AS scale, "
            "(is_nullable = 'YES') AS nullable "
            "FROM information_schema.columns "
            f"WHERE table_schema = {self.string(schema or 'public')} AND table_name = {self.string(table)} "
            "ORDER BY ordinal_position"
        )

    def money_cast(self, expression: str) -> str:
        return f"CAST({expression} AS NUMERIC(19,2))"


class SqlServer(Dialect):
    def string(self, text: str) -> str:
        return "N" + _string_literal(text)

    def catalog_query(self, schema: str | None, table: str) -> str:
        return (
            "SELECT COLUMN_NAME AS [name], DATA_TYPE AS [data_type], "
            "CAST(NUMERIC_PRECISION AS int) AS [precision], CAST(NUMERIC_SCALE AS int) AS [scale], "
            "CAST(CASE WHEN IS_NULLABLE = 'YES' THEN 1 ELSE 0 END AS bit) AS [nullable] "
            "FROM INFORMATION_SCHEMA.COLUMNS "
            f"WHERE TABLE_SCHEMA = {self.string(schema or 'dbo')} AND TABLE_NAME = {self.string(table)} "
            "ORDER BY ORDINAL_POSITION"
        )

    def query_catalog_query(self, query: str) -> str | None:
        """The server's own description of the query's result (SQL Server 2012+, Azure SQL), so a query
        is typed like a table, identically for both engines. A query it cannot describe yields a row
        whose error_message says why."""
        base_type = "LEFT(system_type_name, CHARINDEX('(', system_type_name + '(') - 1)"
        return (
            f"SELECT [name], {base_type} AS [data_type], CAST([precision] AS int) AS [precision], "
            "CAST([scale] AS int) AS [scale], CAST(is_nullable AS bit) AS [nullable], "
            "error_message AS [error_message] "
            f"FROM sys.dm_exec_describe_first_result_set({self.string(query)}, NULL, 0) "
            "WHERE is_hidden = 0 OR is_hidden IS NULL ORDER BY column_ordinal"
        )

    def text_cast(self, expression: str) -> str:
        return f"CONVERT(NVARCHAR(MAX), {expression})"

    def date_literal(self, value: dt.date) -> str:
        return f"CAST({self.string(value.isoformat())} AS DATE)"

    def datetime_literal(self, value: dt.datetime) -> str:
        return f"CAST({self.string(value.isoformat(timespec='microseconds'))} AS DATETIME2(7))"

    def datetime_tz_literal(self, value: dt.datetime) -> str:
        text = value.astimezone(dt.UTC).isoformat(timespec="microseconds")
        return f"CAST({self.string(text)} AS DATETIMEOFFSET(7))"

    def rowversion_literal(self, value: bytes) -> str:
        return "0x" + value.hex().upper()  # a binary literal: compared byte by byte, as the counter

    def rowversion_ceiling_query(self) -> str:
        # MIN_ACTIVE_ROWVERSION, not @@DBTS: values of transactions still open are at or above it.
        # Style 1 writes the binary(8) as '0x' + 16 hex digits, the journal's text form, whatever the driver.
        return "SELECT CONVERT(VARCHAR(18), MIN_ACTIVE_ROWVERSION(), 1) AS [ceiling]"


class MySql(Dialect):
    def catalog_query(self, schema: str | None, table: str) -> str:
        where_schema = self.string(schema) if schema else "DATABASE()"
        return (
            "SELECT COLUMN_NAME AS name, "
            "CONCAT(DATA_TYPE, IF(COLUMN_TYPE LIKE '%unsigned%', ' unsigned', '')) AS data_type, "
            "CAST(NUMERIC_PRECISION AS SIGNED) AS `precision`, CAST(NUMERIC_SCALE AS SIGNED) AS scale, "
            "IS_NULLABLE = 'YES' AS nullable "
            "FROM information_schema.columns "
            f"WHERE table_schema = {where_schema} AND table_name = {self.string(table)} "
            "ORDER BY ordinal_position"
        )

    def text_cast(self, expression: str) -> str:
        return f"CAST({expression} AS CHAR)"

    def datetime_tz_literal(self, value: dt.datetime) -> str:
        text = value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        return f"TIMESTAMP {_string_literal(text)}"


class Sqlite(Dialect):
    """SQLite compares dates and times as text, so literals are floored to the second.

    A stored '...10:00:00.5' sorts below '...10:00:00.500000'; a floored bound re-reads at most one
    second of rows, which the runner removes again, and never skips one.
    """

    def date_literal(self, value: dt.date) -> str:
        return _string_literal(value.isoformat())

    def datetime_literal(self, value: dt.datetime) -> str:
        return _string_literal(value.replace(microsecond=0).isoformat(sep=" "))

    def datetime_tz_literal(self, value: dt.datetime) -> str:
        return self.datetime_literal(value.astimezone(dt.UTC).replace(tzinfo=None))


DIALECTS: dict[str, Dialect] = {
    "postgres": Postgres("postgres", '"', '"', "public"),
    "mssql": SqlServer("mssql", "[", "]", "dbo"),
    "mysql": MySql("mysql", "`", "`", None),
    "sqlite": Sqlite("sqlite", '"', '"', None),
}
