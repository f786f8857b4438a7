"""SQL Server `rowversion` as a watermark kind, without a SQL Server.

The text form and its order, which columns qualify, and the reads: the generated T-SQL is parsed with
sqlglot (bounds as binary literals, MIN_ACTIVE_ROWVERSION read first in its own query, never @@DBTS),
and a FAKE engine (tests/fake_mssql.py: rowversions of open transactions, as documented) shows that the
ceiling, journaled instead of the maximum seen, loses no row of a transaction that was open at read time.
"""

from __future__ import annotations

import random

import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from hygge import watermark as wm
from hygge.config.models import ConnectionConfig, ResolvedEntity
from hygge.errors import ConfigError
from hygge.homes.base import Bound
from hygge.homes.sql.dialects import DIALECTS
from hygge.homes.sql.home import SqlHome
from hygge.typemap import Mapped, SourceColumn, map_mssql
from tests.fake_mssql import FakeRowversion, conditions


def rv(number: int) -> bytes:
    return number.to_bytes(8, "big")


def make_home(column: str = "rv", watermark: str | None = None) -> tuple[SqlHome, FakeRowversion]:
    conn = ConnectionConfig(type="mssql", host="erp.invalid", database="erp", user="u", password="p")
    entity = ResolvedEntity.model_validate(
        {
            "flow": "f",
            "name": "orders",
            "table": "orders",
            "home": {"type": "sql", "connection": "erp", "schema": "dbo"},
            "store": {"type": "parquet", "path": "lake"},
            "run_type": "incremental",
            "watermark": {"primary_key": ["id"], "watermark_column": watermark or column},
            "file": "flow.yml",
        }
    )
    home = SqlHome(entity, conn)
    fake = FakeRowversion(column)
    home.engine = fake
    home._columns = [Mapped("id", pa.int32()), map_mssql(SourceColumn(column, "timestamp", nullable=False))]
    return home, fake


# --- the kind ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [0, 1, 0x7D3, 2**32, 2**63, 2**64 - 1])
def test_text_round_trip(number: int) -> None:
    text = wm.to_text(rv(number), "rowversion")
    assert text == f"0x{number:016X}" and len(text) == 18
    assert wm.from_text(text, "rowversion") == rv(number)
    assert wm.from_text(text.lower(), "rowversion") == rv(number)


def test_order_is_the_unsigned_big_endian_counter() -> None:
    rng = random.Random(7)
    numbers = [*(rng.getrandbits(64) for _ in range(200)), 0, 255, 256, 2**63 - 1, 2**63, 2**64 - 1]
    values = [rv(n) for n in numbers]
    assert sorted(values) == [rv(n) for n in sorted(numbers)]  # bytes compare as the counter
    texts = [wm.to_text(v, "rowversion") for v in values]
    assert sorted(texts) == [wm.to_text(rv(n), "rowversion") for n in sorted(numbers)]
    tracker = wm.MaxTracker("rv", "rowversion")
    tracker.update(pa.record_batch({"rv": pa.array(values, pa.binary())}))
    assert tracker.value == rv(max(numbers))


@pytest.mark.parametrize(
    "text", ["", "0x", "0x123", "00000000000007D3", "0x00000000000007G3", "0x" + "0" * 18]
)
def test_malformed_text_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="0x and 16 hex digits"):
        wm.from_text(text, "rowversion")


def test_only_rowversion_columns_qualify() -> None:
    assert map_mssql(SourceColumn("rv", "timestamp")).rowversion
    assert map_mssql(SourceColumn("rv", "rowversion")).rowversion
    assert not map_mssql(SourceColumn("b", "binary")).rowversion
    schema = pa.schema([("rv", pa.binary()), ("b", pa.binary()), ("n", pa.int64())])
    assert wm.check_column(schema, "rv", rowversion={"rv"}) == "rowversion"
    with pytest.raises(ConfigError, match="rowversion/timestamp column"):
        wm.check_column(schema, "b", rowversion={"rv"})
    with pytest.raises(ConfigError, match="cannot be a watermark"):
        wm.check_column(schema, "rv")  # other homes: unchanged, binary is no watermark
    assert wm.check_column(schema, "n", rowversion={"rv"}) == "int"
    assert wm.kind_of(pa.binary()) is None
    home, _ = make_home()
    assert home.rowversion_columns() == {"rv"}
    assert wm.check_column(home.schema(), "rv", home.rowversion_columns()) == "rowversion"


def test_lookback_does_not_move_a_rowversion_bound() -> None:
    assert wm.lower_bound(rv(100), "rowversion", 50) == rv(100)


# --- the statements ----------------------------------------------------------------------------------


def where_of(sql: str) -> list[exp.Expression]:
    tree = sqlglot.parse_one(sql, read="tsql")
    assert isinstance(tree, exp.Select)
    return conditions(tree.args["where"])


@pytest.mark.parametrize("column", ["rv", "row version]", "versión 名"])
def test_read_bounds_with_binary_literals(column: str) -> None:
    home, _ = make_home(column)
    ceiling = rv(0x7E9)
    low, high = where_of(home.select_sql(Bound(column, "rowversion", rv(0x7E3)), ceiling))
    assert isinstance(low, exp.GTE) and low.this.name == column
    assert isinstance(low.expression, exp.HexString) and int(low.expression.this, 16) == 0x7E3
    assert isinstance(high, exp.LT) and high.this.name == column  # exclusive: the ceiling is journaled
    assert isinstance(high.expression, exp.HexString) and int(high.expression.this, 16) == 0x7E9
    [first_run] = where_of(home.select_sql(None, ceiling))  # a first run is bounded by the ceiling too
    assert isinstance(first_run, exp.LT) and int(first_run.expression.this, 16) == 0x7E9


def test_ceiling_is_min_active_rowversion_never_dbts() -> None:
    sql = DIALECTS["mssql"].rowversion_ceiling_query()
    tree = sqlglot.parse_one(sql, read="tsql")
    [item] = tree.expressions
    assert item.alias == "ceiling"
    convert = item.this
    assert isinstance(convert, exp.Convert) and convert.args["style"].this == "1"
    assert convert.expression.name.upper() == "MIN_ACTIVE_ROWVERSION"
    assert "DBTS" not in sql.upper()
    assert DIALECTS["mssql"].literal(rv(0x7E3), "rowversion") == "0x00000000000007E3"
    with pytest.raises(NotImplementedError):
        DIALECTS["postgres"].literal(rv(1), "rowversion")


# --- reads against the fake --------------------------------------------------------------------------


def test_ceiling_is_read_first_and_becomes_the_journaled_value() -> None:
    home, fake = make_home()
    for i in range(1, 4):
        fake.write(i)  # 0x7D1..0x7D3, committed
    held = fake.write(4, open=True)  # 0x7D4: written by a transaction still open
    fake.write(5)  # 0x7D5: committed after it, and visible now

    journal: list[str] = []
    first = home.read().read_all()  # a first run: no bound, yet bounded by the ceiling
    ceiling_sql, read_sql = fake.statements
    assert "MIN_ACTIVE_ROWVERSION" in ceiling_sql and "FROM" not in ceiling_sql.upper()
    assert "MIN_ACTIVE_ROWVERSION" not in read_sql
    assert home.watermark_ceiling == rv(held)
    assert sorted(first.column("id").to_pylist()) == [1, 2, 3]  # id 5 waits with the open transaction
    assert first.schema == home.schema()  # large_binary from the driver, pinned binary
    journal.append(wm.to_text(home.watermark_ceiling, "rowversion"))
    assert journal[-1] == "0x00000000000007D4"
    seen = wm.MaxTracker("rv", "rowversion")
    seen.update(first.to_batches()[0])

    fake.commit()
    fake.write(2)  # an update: a new rowversion
    bound = Bound("rv", "rowversion", wm.from_text(journal[-1], "rowversion"))
    second = home.read(bound).read_all()
    assert sorted(second.column("id").to_pylist()) == [2, 4, 5]  # the open transaction's row is not lost
    assert home.watermark_ceiling == rv(fake.dbts + 1)  # nothing open: @@DBTS + 1
    journal.append(wm.to_text(home.watermark_ceiling, "rowversion"))
    assert journal == ["0x00000000000007D4", "0x00000000000007D7"]

    third = home.read(Bound("rv", "rowversion", wm.from_text(journal[-1], "rowversion"))).read_all()
    assert third.num_rows == 0  # windows do not overlap: nothing is read twice


def test_journaling_the_maximum_seen_would_lose_the_open_transactions_row() -> None:
    """The defect the ceiling prevents: without it a read sees 0x7D5 and journals it, while 0x7D4,
    held by an open transaction, commits later below that watermark and is never read."""
    home, fake = make_home()
    fake.write(1)
    fake.write(2, open=True)
    fake.write(3)
    unbounded = fake.stream(home.select_sql(None), 100).read_all()  # no ceiling: what @@DBTS-style reads do
    seen = wm.MaxTracker("rv", "rowversion")
    seen.update(unbounded.to_batches()[0])
    fake.commit()
    later = fake.stream(home.select_sql(Bound("rv", "rowversion", seen.value)), 100).read_all()
    assert 2 not in unbounded.column("id").to_pylist() + later.column("id").to_pylist()  # lost
    landed = home.read().read_all().column("id").to_pylist()  # with the ceiling (nothing open now)
    assert sorted(landed) == [1, 2, 3]


def test_other_watermarks_read_no_ceiling() -> None:
    home, fake = make_home(watermark="id")
    fake.write(1)
    assert home.read(Bound("id", "int", 0)).read_all().num_rows == 1
    assert home.watermark_ceiling is None
    assert not any("MIN_ACTIVE_ROWVERSION" in s for s in fake.statements)
