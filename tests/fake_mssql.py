"""FAKE SQL Server engines for the change-capture tests: no SQL Server runs on this machine.

Each fake has the `Engine` protocol of hygge/homes/sql/engines.py (`name`, `table`, `stream`,
`result_schema`), reads every statement hygge sends with sqlglot (so a statement the fakes cannot
parse fails the test) and answers as SQL Server's documentation says the server does. Results are
typed the way connectorx streams them (every integer as int64), so the home's cast to the pinned
schema is exercised. tests/test_change_tracking_live.py runs the same code against a real server.

`TSQL_CT` is sqlglot's T-SQL dialect taught the two constructs its grammar lacks (sqlglot 30):
`CHANGETABLE(CHANGES <table>, <version>)` and `SET TRANSACTION ISOLATION LEVEL SNAPSHOT`.
Everything else is parsed by the stock tsql parser.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.dialects.tsql import TSQL
from sqlglot.tokens import TokenType


class TsqlCt(TSQL):
    """Stock T-SQL plus CHANGETABLE(CHANGES t, v) and the SNAPSHOT isolation level."""

    class Parser(TSQL.Parser):
        TRANSACTION_CHARACTERISTICS = {
            **TSQL.Parser.TRANSACTION_CHARACTERISTICS,
            "ISOLATION": (*TSQL.Parser.TRANSACTION_CHARACTERISTICS["ISOLATION"], ("LEVEL", "SNAPSHOT")),
        }
        FUNCTION_PARSERS = {
            **TSQL.Parser.FUNCTION_PARSERS,
            "CHANGETABLE": lambda self: self._parse_changetable(),
        }

        def _parse_changetable(self) -> exp.Expression:
            if not self._match_text_seq("CHANGES"):
                self.raise_error("CHANGETABLE needs CHANGES here")
            table = self._parse_table_parts()
            self._match(TokenType.COMMA)
            version = self._parse_bitwise()
            return self.expression(
                exp.Anonymous(this="CHANGETABLE", expressions=[exp.var("CHANGES"), table, version])
            )


TSQL_CT = TsqlCt


def parse_tsql(sql: str) -> list[exp.Expression]:
    """Every statement of a batch, parsed; no DDL or DML anywhere in it."""
    statements = [s for s in sqlglot.parse(sql, read=TSQL_CT) if s is not None]
    for statement in statements:
        for bad in (exp.Drop, exp.Delete, exp.Insert, exp.Update, exp.Command, exp.Create, exp.Alter):
            assert statement.find(bad) is None, sql
    return statements


def table_name(table: exp.Table) -> tuple[str | None, str]:
    return (table.db or None), table.name


def named_table(text: str) -> tuple[str | None, str]:
    """The (schema, table) a quoted two-part name names, as OBJECT_ID reads its string."""
    tree = sqlglot.parse_one(f"SELECT 1 FROM {text}", read=TSQL_CT)
    found = tree.find(exp.Table)
    assert found is not None, text
    return table_name(found)


def conditions(where: exp.Where | None) -> list[exp.Expression]:
    """The ANDed conditions of a WHERE clause."""
    if where is None:
        return []
    return list(where.this.flatten()) if isinstance(where.this, exp.And) else [where.this]


def output_name(item: exp.Expression) -> str:
    if isinstance(item, exp.Alias):
        return item.alias
    assert isinstance(item, exp.Column), item
    return item.name


class FakeChangeTracking:
    """A FAKE SQL Server (no server runs here) holding one change-tracked table.

    Documented behaviour it models (Microsoft Learn: CHANGE_TRACKING_CURRENT_VERSION,
    CHANGE_TRACKING_MIN_VALID_VERSION, CHANGETABLE, "Work with change tracking"):
    - CHANGE_TRACKING_CURRENT_VERSION() is the version of the last committed transaction, and NULL
      when the database does not track changes.
    - CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID(name)) is NULL when the database or the table does
      not track changes, or the name is not the table; enabling the table, cleanup after the retention
      period (`cleanup`) and TRUNCATE (`truncate`) raise it.
    - CHANGETABLE(CHANGES t, v) gives one row per key changed after v: the primary key columns,
      SYS_CHANGE_VERSION of the key's last change and SYS_CHANGE_OPERATION relative to v (an insert
      and later updates: I; a delete and a re-insert of the key: U; an insert then a delete: D).
    - The LEFT JOIN to the table finds its current row; keys in `hidden` model a row deleted after
      the change table was read (locking read committed: the join reads later than the change rows).
    - connectorx runs one statement per read; a batch (SET ...; SELECT) only through mssql-python.
    """

    def __init__(
        self,
        *,
        engine: str = "connectorx",
        schema: str | None = "dbo",
        table: str = "orders",
        keys: tuple[str, ...] = ("id",),
        driver_types: dict[str, pa.DataType] | None = None,
    ) -> None:
        self.name = engine
        self.table_name = (schema, table)
        self.primary_key = list(keys)
        self.driver_types = {"SYS_CHANGE_OPERATION": pa.string(), **(driver_types or {})}
        self.version = 0
        self.database_tracks = True
        self.table_tracks = True
        self.min_valid = 0
        self.snapshot_allowed = True
        self.read_committed_snapshot = False
        self.catalog_visible = True
        self.rows: dict[tuple, dict[str, Any]] = {}
        self.history: dict[tuple, list[tuple[int, str]]] = {}
        self.hidden: set[tuple] = set()
        self.statements: list[str] = []
        self.on_changes: Callable[[], None] | None = None  # runs once the changes statement is served

    # --- writes, each its own committed transaction ---------------------------------------------
    def _key(self, row: dict[str, Any]) -> tuple:
        return tuple(row[k] for k in self.primary_key)

    def _commit(self, key: tuple, op: str) -> None:
        self.version += 1
        self.history.setdefault(key, []).append((self.version, op))

    def insert(self, **row: Any) -> None:
        key = self._key(row)
        assert key not in self.rows
        self.rows[key] = dict(row)
        self._commit(key, "I")

    def update(self, key: tuple, **values: Any) -> None:
        self.rows[key].update(values)
        self._commit(key, "U")

    def delete(self, key: tuple) -> None:
        del self.rows[key]
        self._commit(key, "D")

    def cleanup(self, up_to: int) -> None:
        """Retention cleanup: change records up to `up_to` are gone, so older positions are invalid."""
        self.min_valid = max(self.min_valid, up_to)

    def truncate(self) -> None:
        self.rows.clear()
        self.history.clear()
        self.min_valid = self.version

    # --- the Engine protocol -------------------------------------------------------------------
    def table(self, sql: str) -> pa.Table:
        self.statements.append(sql)
        [select] = parse_tsql(sql)
        assert isinstance(select, exp.Select), sql
        assert "CHANGE_TRACKING_CURRENT_VERSION" in sql, f"the fake serves no such small query: {sql}"
        return self._position(select)

    def stream(
        self, sql: str, batch_size: int, partition_on: str | None = None, partition_num: int | None = None
    ) -> pa.RecordBatchReader:
        self.statements.append(sql)
        statements = parse_tsql(sql)
        if len(statements) > 1 and self.name != "mssql-python":
            raise RuntimeError("connectorx runs one statement per read")
        *settings, select = statements
        assert all(isinstance(s, exp.Set) for s in settings), sql
        result = self._changes(select)
        if self.on_changes is not None:
            self.on_changes()
        return pa.RecordBatchReader.from_batches(result.schema, result.to_batches(max_chunksize=batch_size))

    def result_schema(self, sql: str) -> pa.Schema:
        raise AssertionError("a change feed never asks for a result schema")

    # --- answers -------------------------------------------------------------------------------
    def _is_our_table(self, expression: exp.Expression) -> bool:
        text = expression.this.this if isinstance(expression.this, exp.National) else expression.this.name
        return named_table(text) == self.table_name

    def _position(self, select: exp.Select) -> pa.Table:
        object_ids = list(select.find_all(exp.ObjectId))
        assert object_ids, "the table is named through OBJECT_ID"
        known = all(self._is_our_table(o) for o in object_ids)
        tracked = self.database_tracks and self.table_tracks and known
        wanted = {lit.this for node in select.find_all(exp.In) for lit in node.expressions}
        answers: dict[str, Any] = {
            "current_version": self.version if self.database_tracks else None,
            "min_valid_version": self.min_valid if tracked else None,
            "snapshot_isolation": int(self.snapshot_allowed),
            "read_committed_snapshot": int(self.read_committed_snapshot),
            "key_columns": len(self.primary_key) if self.catalog_visible and known else 0,
            "key_matches": len(wanted & set(self.primary_key)) if self.catalog_visible and known else 0,
        }
        names = [output_name(item) for item in select.expressions]
        assert set(names) == set(answers), names
        return pa.table({n: pa.array([answers[n]], pa.int64()) for n in names})

    def _net_changes(self, start: int) -> list[tuple[tuple, int, str]]:
        """CHANGETABLE(CHANGES t, start): per key, the last version after `start` and the net operation."""
        assert start >= self.min_valid, "the feed must not read from a version that is no longer valid"
        result = []
        for key, events in self.history.items():
            later = [v for v, _ in events if v > start]
            if not later:
                continue
            before = [op for v, op in events if v <= start]
            existed = bool(before) and before[-1] != "D"
            operation = "D" if key not in self.rows else "U" if existed else "I"
            result.append((key, later[-1], operation))
        return result

    def _changes(self, select: exp.Select) -> pa.Table:
        source = select.args["from_"].this
        changetable = source.this
        assert isinstance(changetable, exp.Anonymous) and changetable.name.upper() == "CHANGETABLE"
        _, table, start = changetable.expressions
        assert table_name(table) == self.table_name, "CHANGETABLE reads the entity's table"
        c_alias = source.alias
        [join] = select.args["joins"]
        assert join.side == "LEFT" and table_name(join.this) == self.table_name
        t_alias = join.this.alias
        pairs = set()
        for eq in join.args["on"].find_all(exp.EQ):
            left, right = eq.this, eq.expression
            pairs.add(((left.table, left.name), (right.table, right.name)))
        assert pairs == {((t_alias, k), (c_alias, k)) for k in self.primary_key}, pairs
        where = select.args["where"].this
        assert isinstance(where, exp.LTE) and where.this.name == "SYS_CHANGE_VERSION"
        end = int(where.expression.this)
        columns: dict[str, list[Any]] = {output_name(item): [] for item in select.expressions}
        for key, version, op in self._net_changes(int(start.this)):
            if version > end:
                continue
            change = {"SYS_CHANGE_OPERATION": op, **dict(zip(self.primary_key, key, strict=True))}
            row = None if key in self.hidden else self.rows.get(key)
            for item in select.expressions:
                column = item.find(exp.Column)
                assert column is not None and item.find(exp.Func) is None, "the fake models plain columns"
                value = change.get(column.name) if column.table == c_alias else (row or {}).get(column.name)
                columns[output_name(item)].append(value)
        types = {
            output_name(item): self.driver_types[item.find(exp.Column).name] for item in select.expressions
        }
        return pa.table({n: pa.array(v, types[n]) for n, v in columns.items()})


class FakeRowversion:
    """A FAKE SQL Server (no server runs here) holding one table with a rowversion column `rv`.

    Documented behaviour it models (Microsoft Learn: rowversion, MIN_ACTIVE_ROWVERSION): every insert
    or update takes the next database-wide rowversion (@@DBTS + 1) at the time it is written, also
    inside a transaction that has not committed; readers see committed rows only. MIN_ACTIVE_ROWVERSION()
    is the lowest rowversion of a still-open transaction, or @@DBTS + 1 when none is open, and
    CONVERT(VARCHAR(18), x, 1) writes it as '0x' + 16 hex digits. A rowversion column comes back as
    binary (large_binary, as connectorx streams it).
    """

    name = "connectorx"

    def __init__(self, column: str = "rv") -> None:
        self.column = column
        self.dbts = 0x7D0
        self.rows: list[dict[str, Any]] = []  # each with "rv" (int) and "open" (uncommitted)
        self.statements: list[str] = []

    def write(self, id: int, *, open: bool = False) -> int:
        self.dbts += 1
        self.rows = [r for r in self.rows if r["id"] != id]
        self.rows.append({"id": id, self.column: self.dbts, "open": open})
        return self.dbts

    def commit(self) -> None:
        for row in self.rows:
            row["open"] = False

    def min_active(self) -> int:
        return min((r[self.column] for r in self.rows if r["open"]), default=self.dbts + 1)

    def table(self, sql: str) -> pa.Table:
        self.statements.append(sql)
        [select] = parse_tsql(sql)
        [item] = select.expressions
        convert = item.find(exp.Convert)
        assert convert is not None and convert.expression.name.upper() == "MIN_ACTIVE_ROWVERSION"
        assert convert.args["style"].this == "1"
        return pa.table({output_name(item): [f"0x{self.min_active():016X}"]})

    def stream(
        self, sql: str, batch_size: int, partition_on: str | None = None, partition_num: int | None = None
    ) -> pa.RecordBatchReader:
        self.statements.append(sql)
        [select] = parse_tsql(sql)
        tests = []
        where = select.args.get("where")
        for node in conditions(where):
            assert isinstance(node, exp.GTE | exp.LT), node
            literal = node.expression
            bound = int(literal.this, 16) if isinstance(literal, exp.HexString) else int(literal.this)
            tests.append((node.this.name, bound, isinstance(node, exp.GTE)))
        rows = [
            r
            for r in self.rows
            if not r["open"] and all((r[c] >= b) if ge else (r[c] < b) for c, b, ge in tests)
        ]
        table = pa.table(
            {
                "id": pa.array([r["id"] for r in rows], pa.int64()),
                self.column: pa.array([r[self.column].to_bytes(8, "big") for r in rows], pa.large_binary()),
            }
        )
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=batch_size))

    def result_schema(self, sql: str) -> pa.Schema:
        raise AssertionError("a table read never asks for a result schema")
