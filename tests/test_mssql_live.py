"""Against a real SQL Server / Azure SQL: every type in the map lands with its pinned type, the same
through both engines. Skipped unless HYGGE_TEST_MSSQL_URL is set (no SQL Server runs in CI here).

    HYGGE_TEST_MSSQL_URL    mssql://[user:password@]host[:port]/database[?trust_server_certificate=true]
    HYGGE_TEST_MSSQL_AUTH   sql (default) | entra_msi | entra_default | entra_sp
    HYGGE_TEST_MSSQL_CLIENT_ID / _TENANT_ID / _CLIENT_SECRET   for entra_msi (user-assigned) and entra_sp

With `sql` both engines are compared; with an Entra mode only mssql-python can sign in. The test
creates and drops its own table in `dbo`, so the login needs CREATE TABLE there.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from decimal import Decimal
from urllib.parse import parse_qs, unquote, urlparse

import pyarrow as pa
import pytest

from hygge.config.models import ConnectionConfig, ResolvedEntity
from hygge.homes.sql import mssql_python as mp
from hygge.homes.sql.home import SqlHome
from hygge.typemap import SourceColumn, map_mssql

URL = os.environ.get("HYGGE_TEST_MSSQL_URL")
pytestmark = pytest.mark.skipif(not URL, reason="HYGGE_TEST_MSSQL_URL is not set (no SQL Server here)")

# name -> (declared type, a literal for the first row)
COLUMNS = {
    "c_tinyint": ("tinyint", "255"),
    "c_smallint": ("smallint", "-32768"),
    "c_int": ("int", "2147483647"),
    "c_bigint": ("bigint", "-9223372036854775808"),
    "c_bit": ("bit", "1"),
    "c_real": ("real", "1.5"),
    "c_float": ("float", "-0.1"),
    "c_date": ("date", "'0001-01-01'"),
    "c_datetime": ("datetime", "'2026-03-04 05:06:07.123'"),
    "c_datetime2": ("datetime2(7)", "'2026-03-04 05:06:07.1234560'"),
    "c_smalldatetime": ("smalldatetime", "'2026-03-04 05:06:00'"),
    "c_datetimeoffset": ("datetimeoffset(7)", "'2026-03-04 07:06:07.123456 +02:00'"),
    "c_uniqueidentifier": ("uniqueidentifier", "'58185E0D-3A91-44D8-BC46-7107217E0A6D'"),
    "c_char": ("char(3)", "'abc'"),
    "c_varchar": ("varchar(10)", "'abc'"),
    "c_nchar": ("nchar(2)", "N'名前'"),
    "c_nvarchar": ("nvarchar(max)", "N'unicodé'"),
    "c_text": ("text", "'long text'"),
    "c_ntext": ("ntext", "N'long ntext'"),
    "c_binary": ("binary(2)", "0x0001"),
    "c_varbinary": ("varbinary(max)", "0xFF"),
    "c_image": ("image", "0x89504E47"),
    "c_money": ("money", "922337203685477.5807"),
    "c_smallmoney": ("smallmoney", "214748.3647"),
    "c_decimal_18_4": ("decimal(18,4)", "99999999999999.9999"),
    "c_numeric_10_0": ("numeric(10,0)", "9999999999"),
    "c_decimal_28_10": ("decimal(28,10)", "999999999999999999.9999999999"),
    "c_decimal_38_18": ("decimal(38,18)", "12345678901234567890.123456789012345678"),
    "c_decimal_19_0": ("decimal(19,0)", "9999999999999999999"),
    "c_decimal_12_11": ("decimal(12,11)", "1.23456789012"),
    "c_time": ("time(7)", "'12:34:56.1234567'"),
    "c_xml": ("xml", "'<a>1</a>'"),
    "c_sql_variant": ("sql_variant", "CAST(42 AS int)"),
    "c_hierarchyid": ("hierarchyid", "'/1/2/'"),
    "c_rowversion": ("rowversion", None),  # set by the server
}


def _connection(engine: str) -> ConnectionConfig:
    assert URL
    url = urlparse(URL)
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    auth = os.environ.get("HYGGE_TEST_MSSQL_AUTH", "sql")
    settings: dict = {
        "type": "mssql",
        "host": url.hostname,
        "port": url.port or 1433,
        "database": url.path.lstrip("/"),
        "auth": auth,
        "engine": engine,
        "encrypt": query.get("encrypt", "true").lower() == "true",
        "trust_server_certificate": query.get("trust_server_certificate", "false").lower() == "true",
    }
    if auth == "sql":
        settings["user"] = unquote(url.username or "")
        settings["password"] = unquote(url.password or "")
    for name in ("client_id", "tenant_id", "client_secret"):
        value = os.environ.get(f"HYGGE_TEST_MSSQL_{name.upper()}")
        if value:
            settings[name] = value
    return ConnectionConfig(**settings)


def _engines() -> list[str]:
    return (
        ["connectorx", "mssql-python"]
        if os.environ.get("HYGGE_TEST_MSSQL_AUTH", "sql") == "sql"
        else ["mssql-python"]
    )


@pytest.fixture(scope="module")
def live_table():
    name = f"hygge_live_{uuid.uuid4().hex[:12]}"
    conn = mp.connect(_connection("mssql-python"))
    cursor = conn.cursor()
    columns = ", ".join(f"[{c}] {t}" for c, (t, _) in COLUMNS.items())
    cursor.execute(f"CREATE TABLE dbo.[{name}] (id int NOT NULL, {columns})")
    first = [c for c, (_, v) in COLUMNS.items() if v is not None]
    values = ", ".join(COLUMNS[c][1] for c in first)  # type: ignore[misc]
    cursor.execute(
        f"INSERT INTO dbo.[{name}] (id, {', '.join(f'[{c}]' for c in first)}) VALUES (1, {values})"
    )
    cursor.execute(f"INSERT INTO dbo.[{name}] (id) VALUES (2)")  # all NULL but the rowversion
    try:
        yield name
    finally:
        cursor.execute(f"DROP TABLE dbo.[{name}]")
        conn.close()


def _entity(table: str | None = None, query: str | None = None) -> ResolvedEntity:
    return ResolvedEntity.model_validate(
        {
            "flow": "live",
            "name": table or "q",
            **({"table": table} if table else {"query": query}),
            "home": {"type": "sql", "connection": "live", "batch_size": 1},
            "store": {"type": "parquet", "path": "lake"},
            "run_type": "full_drop",
            "file": "live",
        }
    )


def _read(engine: str, entity: ResolvedEntity) -> pa.Table:
    return SqlHome(entity, _connection(engine)).read().read_all().sort_by("id")


def test_every_type_lands_pinned_and_the_same_through_each_engine(live_table):
    expected = pa.schema(
        [pa.field("id", pa.int32())]
        + [pa.field(c, map_mssql(SourceColumn(c, *_parts(t))).arrow_type) for c, (t, _) in COLUMNS.items()]
    )
    tables = {engine: _read(engine, _entity(live_table)) for engine in _engines()}
    for engine, table in tables.items():
        assert table.schema == expected, engine
        assert table.num_rows == 2
    first = tables["mssql-python"].slice(0, 1).to_pylist()[0]
    assert first["c_tinyint"] == 255
    assert first["c_uniqueidentifier"] == "58185e0d-3a91-44d8-bc46-7107217e0a6d"
    assert first["c_decimal_38_18"] == Decimal("12345678901234567890.123456789012345678")
    assert first["c_money"] == Decimal("922337203685477.5807")
    assert first["c_datetimeoffset"] == dt.datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=dt.UTC)
    assert first["c_datetime2"] == dt.datetime(2026, 3, 4, 5, 6, 7, 123456)
    if "connectorx" in tables:
        assert tables["connectorx"].equals(tables["mssql-python"])


def test_a_query_entity_is_typed_by_the_server_the_same_for_each_engine(live_table):
    query = f"SELECT id, c_tinyint, c_money, c_uniqueidentifier, c_nvarchar FROM dbo.[{live_table}]"
    tables = {engine: _read(engine, _entity(query=query)) for engine in _engines()}
    for table in tables.values():
        assert table.schema == pa.schema(
            [
                ("id", pa.int32()),
                ("c_tinyint", pa.int16()),
                ("c_money", pa.decimal128(19, 4)),
                ("c_uniqueidentifier", pa.string()),
                ("c_nvarchar", pa.string()),
            ]
        )
        assert table.column("c_nvarchar").to_pylist() == ["unicodé", None]
    if "connectorx" in tables:
        assert tables["connectorx"].equals(tables["mssql-python"])


def _parts(declared: str) -> tuple[str, int | None, int | None]:
    """'decimal(18,4)' -> ('decimal', 18, 4); other lengths and precisions do not change the map."""
    word, _, rest = declared.partition("(")
    if word in ("decimal", "numeric"):
        precision, _, scale = rest.rstrip(")").partition(",")
        return word, int(precision), int(scale or 0)
    if word == "money":
        return word, 19, 4
    if word == "smallmoney":
        return word, 10, 4
    return word, None, None
