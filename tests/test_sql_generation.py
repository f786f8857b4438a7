"""Generated SQL, proven by parsing it back with sqlglot: odd identifiers stay one identifier,
lossy driver mappings are fixed in the SELECT list, and watermark literals are typed and escaped.
Also the SQL Server and PostgreSQL type maps. No database server is touched."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from hygge.config.models import ConnectionConfig, ResolvedEntity
from hygge.errors import SourceError
from hygge.homes.base import Bound
from hygge.homes.sql.dialects import DIALECTS
from hygge.homes.sql.home import SqlHome
from hygge.typemap import UTC_TS, Mapped, SourceColumn, map_column, map_mssql, map_postgres

ODD_NAMES = [
    "plain",
    "with space",
    "close]bracket",
    "open[bracket",
    'double"quote',
    "single'quote",
    "unicodé ünï 名前",
    "x]; DROP TABLE t;--",
    'x"; DROP TABLE t;--',
]

SQLGLOT_DIALECT = {"mssql": "tsql", "postgres": "postgres"}


def make_home(dialect: str, columns: list[Mapped], *, table: str = "orders", schema: str | None = None):
    conn = ConnectionConfig(type=dialect, host="db.invalid", database="src", user="u", password="p")
    home = {"type": "sql", "connection": "src"}
    if schema is not None:
        home["schema"] = schema
    entity = ResolvedEntity.model_validate(
        {
            "flow": "f",
            "name": table,
            "table": table,
            "home": home,
            "store": {"type": "parquet", "path": "lake"},
            "run_type": "full_drop",
            "file": "flow.yml",
        }
    )
    sql_home = SqlHome(entity, conn)
    sql_home._columns = columns  # pinned without a catalog query
    return sql_home


def parse_one_select(sql: str, dialect: str) -> exp.Select:
    """Exactly one statement, a SELECT, with no DROP/DELETE/INSERT/UPDATE anywhere in it."""
    statements = [s for s in sqlglot.parse(sql, read=SQLGLOT_DIALECT[dialect]) if s is not None]
    assert len(statements) == 1, sql
    [tree] = statements
    assert isinstance(tree, exp.Select), sql
    for bad in (exp.Drop, exp.Delete, exp.Insert, exp.Update, exp.Command):
        assert tree.find(bad) is None, sql
    return tree


def output_names(tree: exp.Select) -> list[str]:
    """The name each SELECT-list item lands as (alias when aliased, else the column)."""
    result = []
    for item in tree.expressions:
        if isinstance(item, exp.Alias):
            result.append(item.args["alias"].this)
        else:
            assert isinstance(item, exp.Column), item
            result.append(item.this.this)
    return result


def where_literal(tree: exp.Select) -> tuple[str, exp.Expression]:
    where = tree.args["where"]
    assert where is not None
    comparison = where.this
    assert isinstance(comparison, exp.GTE), comparison  # inclusive: rows sharing the max are re-read
    column = comparison.this
    assert isinstance(column, exp.Column)
    return column.this.this, comparison.expression


# --- identifiers -------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["mssql", "postgres"])
def test_odd_identifiers_stay_one_identifier(dialect: str) -> None:
    """Spaces, quotes, brackets, unicode and injection attempts each round-trip as one quoted column."""
    columns = [Mapped(name, pa.string()) for name in ODD_NAMES]
    home = make_home(dialect, columns, table="tab]le; DROP TABLE x;--", schema='sch"ema]')
    tree = parse_one_select(home.select_sql(), dialect)
    assert output_names(tree) == ODD_NAMES
    for item in tree.expressions:
        assert item.find(exp.Identifier).quoted
    table = tree.args["from_"].this if "from_" in tree.args else tree.args["from"].this
    assert isinstance(table, exp.Table)
    assert table.name == "tab]le; DROP TABLE x;--"
    assert table.db == 'sch"ema]'


@pytest.mark.parametrize("dialect", ["mssql", "postgres"])
@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_watermark_column_stays_one_identifier(dialect: str, name: str) -> None:
    """The watermark column in the WHERE clause is quoted as safely as the SELECT list."""
    home = make_home(dialect, [Mapped(name, pa.int64())])
    tree = parse_one_select(home.select_sql(Bound(name, "int", 5)), dialect)
    column, literal = where_literal(tree)
    assert column == name
    assert isinstance(literal, exp.Literal) and literal.this == "5"


def test_mssql_quotes_with_brackets_and_doubles_the_closing_one() -> None:
    """T-SQL identifiers are [bracketed] with `]` doubled, exactly."""
    assert DIALECTS["mssql"].quote("x]; DROP TABLE t;--") == "[x]]; DROP TABLE t;--]"
    assert DIALECTS["postgres"].quote('a"b') == '"a""b"'


# --- lossless fetches --------------------------------------------------------------------------


def test_mssql_decimal_38_18_is_fetched_as_text_and_money_as_decimal() -> None:
    """decimal(38,18) goes through CONVERT(NVARCHAR(MAX), ...), money through CAST(... AS DECIMAL(19,4))."""
    columns = [
        map_mssql(SourceColumn("big amount", "decimal", 38, 18)),
        map_mssql(SourceColumn("price", "money", 19, 4)),
        map_mssql(SourceColumn("small", "decimal", 18, 4)),
        map_mssql(SourceColumn("id", "int", 10, 0)),
    ]
    tree = parse_one_select(make_home("mssql", columns).select_sql(), "mssql")
    assert output_names(tree) == ["big amount", "price", "small", "id"]
    big, price, small, ident = tree.expressions

    assert isinstance(big, exp.Alias)
    convert = big.this
    assert isinstance(convert, exp.Convert), big.sql("tsql")
    assert convert.this.is_type(exp.DataType.Type.NVARCHAR)
    assert convert.this.sql("tsql").upper() == "NVARCHAR(MAX)"
    assert convert.expression.this.this == "big amount"

    assert isinstance(price, exp.Alias)
    cast = price.this
    assert isinstance(cast, exp.Cast)
    assert cast.to.is_type(exp.DataType.Type.DECIMAL)
    assert [p.this.this for p in cast.to.expressions] == ["19", "4"]
    assert cast.this.this.this == "price"

    assert isinstance(small, exp.Column) and isinstance(ident, exp.Column)  # fetched natively


def test_postgres_text_fetch_and_money_cast() -> None:
    """PostgreSQL: wide numerics via CAST(... AS TEXT), money via CAST(... AS NUMERIC(19,2))."""
    columns = [
        map_postgres(SourceColumn("n", "numeric", 38, 18)),
        map_postgres(SourceColumn("unbounded", "numeric")),
        map_postgres(SourceColumn("m", "money")),
        map_postgres(SourceColumn("span", "interval")),
    ]
    tree = parse_one_select(make_home("postgres", columns).select_sql(), "postgres")
    assert output_names(tree) == ["n", "unbounded", "m", "span"]
    n, unbounded, m, span = (item.this for item in tree.expressions)
    for text_cast in (n, unbounded, span):
        assert isinstance(text_cast, exp.Cast) and text_cast.to.is_type(exp.DataType.Type.TEXT)
    assert isinstance(m, exp.Cast) and m.to.is_type(exp.DataType.Type.DECIMAL)
    assert [p.this.this for p in m.to.expressions] == ["19", "2"]


# --- watermark literals ------------------------------------------------------------------------


def mssql_literal(kind: str, value) -> exp.Expression:
    home = make_home("mssql", [Mapped("wm", pa.string())])
    tree = parse_one_select(home.select_sql(Bound("wm", kind, value)), "mssql")
    column, literal = where_literal(tree)
    assert column == "wm"
    return literal


def test_mssql_datetime_literal_is_datetime2_7() -> None:
    """A naive watermark is compared as DATETIME2(7) with all six fractional digits."""
    literal = mssql_literal("datetime", dt.datetime(2024, 5, 6, 7, 8, 9, 123456))
    assert isinstance(literal, exp.Cast)
    assert literal.to.sql("tsql").upper() == "DATETIME2(7)"
    assert isinstance(literal.this, exp.National)
    assert literal.this.this == "2024-05-06T07:08:09.123456"


def test_mssql_datetime_literal_keeps_zero_microseconds() -> None:
    """A whole-second watermark still has a fixed-width fraction (no format drift)."""
    literal = mssql_literal("datetime", dt.datetime(2024, 5, 6, 7, 8, 9))
    assert literal.this.this == "2024-05-06T07:08:09.000000"


def test_mssql_datetimeoffset_literal_is_utc() -> None:
    """A tz-aware watermark is compared as DATETIMEOFFSET(7), written in UTC."""
    plus_two = dt.timezone(dt.timedelta(hours=2))
    literal = mssql_literal("datetime_tz", dt.datetime(2024, 5, 6, 9, 8, 9, 5, tzinfo=plus_two))
    assert isinstance(literal, exp.Cast)
    assert literal.to.sql("tsql").upper() == "DATETIMEOFFSET(7)"
    assert literal.this.this == "2024-05-06T07:08:09.000005+00:00"


def test_mssql_date_literal() -> None:
    """A date watermark is CAST(N'yyyy-mm-dd' AS DATE)."""
    literal = mssql_literal("date", dt.date(2024, 2, 29))
    assert isinstance(literal, exp.Cast) and literal.to.is_type(exp.DataType.Type.DATE)
    assert literal.this.this == "2024-02-29"


def test_mssql_int_and_decimal_literals_are_bare_numbers() -> None:
    """Integers and decimals are plain numeric literals, decimals without exponent or rounding."""
    literal = mssql_literal("int", 9_007_199_254_740_993)
    assert isinstance(literal, exp.Literal) and not literal.is_string
    assert literal.this == "9007199254740993"
    literal = mssql_literal("decimal", Decimal("12345678901234567890.123456789012345678"))
    assert isinstance(literal, exp.Literal) and not literal.is_string
    assert literal.this == "12345678901234567890.123456789012345678"
    literal = mssql_literal("decimal", Decimal("1E-7"))
    assert literal.this == "0.0000001"


@pytest.mark.parametrize("text", ["plain", "it's", "'; DROP TABLE t;--", "ünï'名前''", ""])
def test_mssql_string_literal_is_national_and_escaped(text: str) -> None:
    """A string watermark is N'...', its quotes doubled, so the value round-trips exactly."""
    literal = mssql_literal("string", text)
    assert isinstance(literal, exp.National), literal
    assert literal.this == text
    sql = make_home("mssql", [Mapped("wm", pa.string())]).select_sql(Bound("wm", "string", text))
    assert sql.endswith("N'" + text.replace("'", "''") + "'")


def postgres_literal(kind: str, value) -> exp.Expression:
    home = make_home("postgres", [Mapped("wm", pa.string())])
    tree = parse_one_select(home.select_sql(Bound("wm", kind, value)), "postgres")
    column, literal = where_literal(tree)
    assert column == "wm"
    return literal


def test_postgres_watermark_literals() -> None:
    """PostgreSQL literals: TIMESTAMP / TIMESTAMPTZ (UTC) / DATE / numbers / escaped strings."""
    literal = postgres_literal("datetime", dt.datetime(2024, 5, 6, 7, 8, 9, 120000))
    assert isinstance(literal, exp.Cast) and literal.to.is_type(exp.DataType.Type.TIMESTAMP)
    assert literal.this.this == "2024-05-06 07:08:09.120000"

    plus_two = dt.timezone(dt.timedelta(hours=2))
    literal = postgres_literal("datetime_tz", dt.datetime(2024, 5, 6, 9, 8, 9, tzinfo=plus_two))
    assert isinstance(literal, exp.Cast) and literal.to.is_type(exp.DataType.Type.TIMESTAMPTZ)
    assert literal.this.this == "2024-05-06 07:08:09.000000+00:00"

    literal = postgres_literal("date", dt.date(2024, 1, 2))
    assert isinstance(literal, exp.Cast) and literal.to.is_type(exp.DataType.Type.DATE)
    assert literal.this.this == "2024-01-02"

    literal = postgres_literal("int", -42)
    assert literal.sql("postgres") == "-42"
    literal = postgres_literal("decimal", Decimal("0.000000000000000001"))
    assert isinstance(literal, exp.Literal) and literal.this == "0.000000000000000001"

    literal = postgres_literal("string", "o'neil'; DROP TABLE t;--")
    assert isinstance(literal, exp.Literal) and literal.is_string
    assert literal.this == "o'neil'; DROP TABLE t;--"


def test_query_entity_is_wrapped_as_a_subquery() -> None:
    """A `query:` entity is selected from as an aliased subquery, the bound applied outside it."""
    home = make_home("mssql", [Mapped("a", pa.int32())])
    home.table, home.query = None, "SELECT a FROM dbo.t WHERE a > 0"
    tree = parse_one_select(home.select_sql(Bound("a", "int", 3)), "mssql")
    source = tree.args["from_"].this if "from_" in tree.args else tree.args["from"].this
    assert isinstance(source, exp.Subquery) and source.alias == "hygge_q"
    assert where_literal(tree)[0] == "a"


# --- catalog queries ---------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["mssql", "postgres"])
@pytest.mark.parametrize(("schema", "table"), [(None, "orders"), ("sales", "it's a table"), ("x'--", "t]")])
def test_catalog_query_parses_with_the_names_as_literals(dialect: str, schema, table: str) -> None:
    """The catalog query is one SELECT; schema and table are string literals that round-trip."""
    sql = DIALECTS[dialect].catalog_query(schema, table)
    tree = parse_one_select(sql, dialect)
    assert output_names(tree) == ["name", "data_type", "precision", "scale", "nullable"]
    values = {
        lit.this
        for lit in tree.args["where"].find_all(exp.Literal, exp.National)
        if lit.args.get("is_string", True)
    }
    expected_schema = schema or DIALECTS[dialect].default_schema
    assert expected_schema in values and table in values


# --- type maps ---------------------------------------------------------------------------------

MSSQL_TYPES = [
    ("tinyint", None, None, pa.int16(), "native"),
    ("smallint", None, None, pa.int16(), "native"),
    ("int", None, None, pa.int32(), "native"),
    ("bigint", None, None, pa.int64(), "native"),
    ("bit", None, None, pa.bool_(), "native"),
    ("real", None, None, pa.float32(), "native"),
    ("float", None, None, pa.float64(), "native"),
    ("date", None, None, pa.date32(), "native"),
    ("datetime", None, None, pa.timestamp("us"), "native"),
    ("datetime2", None, None, pa.timestamp("us"), "native"),
    ("smalldatetime", None, None, pa.timestamp("us"), "native"),
    ("datetimeoffset", None, None, pa.timestamp("us", tz="UTC"), "native"),
    ("uniqueidentifier", None, None, pa.string(), "guid"),  # lower-cased in the SELECT list
    ("char", None, None, pa.string(), "native"),
    ("varchar", None, None, pa.string(), "native"),
    ("nchar", None, None, pa.string(), "native"),
    ("nvarchar", None, None, pa.string(), "native"),
    ("text", None, None, pa.string(), "native"),
    ("ntext", None, None, pa.string(), "native"),
    ("binary", None, None, pa.binary(), "native"),
    ("varbinary", None, None, pa.binary(), "native"),
    ("image", None, None, pa.binary(), "native"),
    ("timestamp", None, None, pa.binary(), "native"),
    ("rowversion", None, None, pa.binary(), "native"),
    ("money", 19, 4, pa.decimal128(19, 4), "money"),
    ("smallmoney", 10, 4, pa.decimal128(10, 4), "money"),
    ("decimal", 18, 4, pa.decimal128(18, 4), "native"),
    ("numeric", 10, 0, pa.decimal128(10, 0), "native"),
    ("decimal", 28, 10, pa.decimal128(28, 10), "native"),
    ("decimal", 38, 18, pa.decimal128(38, 18), "text"),
    ("decimal", 19, 0, pa.decimal128(19, 0), "text"),  # 19 integer digits exceed the driver's 18
    ("decimal", 12, 11, pa.decimal128(12, 11), "text"),  # scale 11 exceeds the driver's 10
    ("time", None, None, pa.string(), "text"),
    ("xml", None, None, pa.string(), "text"),
    ("sql_variant", None, None, pa.string(), "text"),
    ("hierarchyid", None, None, pa.string(), "text"),
    ("DateTimeOffset", None, None, UTC_TS, "native"),  # catalog case does not matter
]


@pytest.mark.parametrize(("data_type", "precision", "scale", "arrow", "fetch"), MSSQL_TYPES)
def test_map_mssql(data_type: str, precision, scale, arrow: pa.DataType, fetch: str) -> None:
    """Every SQL Server type hygge knows maps to its exact Arrow type and fetch mode."""
    mapped = map_mssql(SourceColumn("c", data_type, precision, scale))
    assert mapped.name == "c"
    assert mapped.arrow_type == arrow
    assert mapped.fetch == fetch


@pytest.mark.parametrize("data_type", ["geography", "geometry", "cursor", "vector"])
def test_map_mssql_unsupported_type_names_the_column(data_type: str) -> None:
    """A type hygge cannot land is a SourceError naming the column and the type, with a hint."""
    with pytest.raises(SourceError) as info:
        map_column("mssql", SourceColumn("shape col", data_type))
    text = str(info.value)
    assert "shape col" in text and data_type in text
    assert info.value.context.field == "shape col"
    assert info.value.hint


def test_map_postgres_core_types() -> None:
    """PostgreSQL integers, timestamps, uuid and numerics map exactly; interval is fetched as text."""
    cases = {
        "smallint": pa.int16(),
        "integer": pa.int32(),
        "bigint": pa.int64(),
        "timestamp with time zone": UTC_TS,
        "timestamp without time zone": pa.timestamp("us"),
        "uuid": pa.string(),
        "bytea": pa.binary(),
        "jsonb": pa.string(),
    }
    for data_type, arrow in cases.items():
        assert map_postgres(SourceColumn("c", data_type)).arrow_type == arrow, data_type
    assert map_postgres(SourceColumn("c", "numeric", 38, 18)).fetch == "text"
    assert map_postgres(SourceColumn("c", "numeric", 12, 2)) == Mapped("c", pa.decimal128(12, 2))
    interval = map_postgres(SourceColumn("c", "interval"))
    assert interval.fetch == "text" and interval.arrow_type == pa.string()
    with pytest.raises(SourceError) as info:
        map_column("postgres", SourceColumn("odd", "tsrange"))
    assert "odd" in str(info.value)


@pytest.mark.parametrize(
    ("driver_text", "transient"),
    [
        (
            "timed out waiting for connection: error connecting to server: Connection refused (os error 111)",
            True,
        ),
        ("db error: FATAL: terminating connection due to administrator command", True),
        (
            'timed out waiting for connection: db error: FATAL: password authentication failed for user "u"',
            False,
        ),
        ('timed out waiting for connection: db error: FATAL: database "x" does not exist', False),
        ("Login failed for user 'sa'.", False),
    ],
)
def test_driver_failures_are_transient_only_when_retrying_can_help(driver_text: str, transient: bool) -> None:
    """connectorx reports every failed connect as a time-out; a wrong password or a missing database is
    still permanent, so retries are not spent on it (each connect attempt waits 30 s in connectorx)."""
    home = make_home("postgres", [Mapped("id", pa.int32())])
    error = home._source_error(RuntimeError(driver_text))
    assert error.transient is transient
