"""SQL Server's second engine, mssql-python (Microsoft Entra ID sign-in, Arrow batches).

No SQL Server runs here. So: connection strings are checked for every auth mode (parsed back with the
driver's own parser); the driver is really imported and its ODBC library really loaded, up to a
refused TCP connect; and the two engines' Arrow output is simulated with batches shaped like each
driver's documented output (connectorx: every int as int64, decimals as decimal128(38,10), large
strings and binaries; mssql-python, per its Arrow tests: tinyint as uint8, exact decimal(p,s),
datetimeoffset as timestamp[us, +00:00]) and both must land identically. tests/test_mssql_live.py
runs against a real server when HYGGE_TEST_MSSQL_URL is set.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import time
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import ValidationError

from hygge.config.models import ConnectionConfig, ResolvedEntity
from hygge.errors import ConfigError, SourceError
from hygge.homes.sql import connection as conns
from hygge.homes.sql import mssql_python as mp
from hygge.homes.sql.engines import Connectorx, MssqlPython, engine_for
from hygge.homes.sql.home import SqlHome
from hygge.typemap import SourceColumn, map_mssql
from tests.test_sql_generation import MSSQL_TYPES

SECRET = "s3cr;et}Pa55{=do-not-print"
CLIENT_ID = "8f6a1c3e-0000-4000-8000-00000000c1d2"


def mssql(**settings) -> ConnectionConfig:
    return ConnectionConfig(type="mssql", host="erp.database.windows.net", database="erp", **settings)


def parsed(text: str) -> dict[str, str]:
    """The connection string as the driver itself reads it (keywords validated against its allow-list)."""
    from mssql_python.connection_string_parser import _ConnectionStringParser

    return _ConnectionStringParser(validate_keywords=True)._parse(text)


# --- configuration ---------------------------------------------------------------------------------


def test_auto_engine_follows_the_auth_mode():
    assert mssql(user="u", password="p").sql_engine == "connectorx"
    for auth in ("entra_msi", "entra_default"):
        assert mssql(auth=auth).sql_engine == "mssql-python"
    assert mssql(auth="entra_sp", client_id=CLIENT_ID, client_secret=SECRET).sql_engine == "mssql-python"
    assert mssql(user="u", password="p", engine="mssql-python").sql_engine == "mssql-python"
    assert isinstance(engine_for(mssql(auth="entra_msi")), MssqlPython)
    assert isinstance(engine_for(mssql(user="u", password="p")), Connectorx)
    assert isinstance(engine_for(ConnectionConfig(type="postgres", host="h", database="d")), Connectorx)


def test_encrypt_on_and_certificate_checked_by_default():
    conn = mssql(auth="entra_msi")
    assert (conn.encrypt, conn.trust_server_certificate) == (True, False)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"auth": "entra_msi", "engine": "connectorx"}, "connectorx cannot sign in with Microsoft Entra"),
        ({"auth": "entra_sp", "client_id": CLIENT_ID}, "needs `client_id:`"),
        ({"auth": "entra_sp", "client_secret": SECRET}, "needs `client_id:`"),
        ({"auth": "entra_msi", "user": "u", "password": SECRET}, "are not used"),
        ({"auth": "entra_msi", "client_secret": SECRET}, "only with `auth: entra_sp`"),
        ({"auth": "entra_default", "client_id": CLIENT_ID}, "`client_id:` is used only"),
        ({"user": "u", "password": "p", "tenant_id": "t"}, "only with `auth: entra_sp`"),
    ],
)
def test_inconsistent_sign_in_is_one_clear_error(settings, message):
    with pytest.raises(ValidationError, match=message) as info:
        mssql(**settings)
    assert SECRET not in str(info.value)


def test_entra_and_mssql_python_are_sql_server_only():
    with pytest.raises(ValidationError, match="SQL Server connections only"):
        ConnectionConfig(type="postgres", host="h", database="d", auth="entra_msi")
    with pytest.raises(ValidationError, match="SQL Server connections only"):
        ConnectionConfig(type="mysql", host="h", database="d", engine="mssql-python")
    with pytest.raises(ValidationError, match="connectorx URL"):
        ConnectionConfig(type="mssql", url="mssql://u:p@h/d", engine="mssql-python")


def test_unknown_auth_mode_is_rejected():
    with pytest.raises(ValidationError, match="entra_msi"):
        mssql(auth="entra_password")


# --- connection strings ----------------------------------------------------------------------------


def test_sql_login_connection_string_escapes_odd_passwords():
    conn = mssql(user="loader", password=SECRET, engine="mssql-python")
    text = mp.connection_string(conn)
    assert parsed(text) == {
        "server": "tcp:erp.database.windows.net,1433",
        "database": "erp",
        "encrypt": "yes",
        "trustservercertificate": "no",
        "uid": "loader",
        "pwd": SECRET,
    }


def test_managed_identity_system_and_user_assigned():
    system = parsed(mp.connection_string(mssql(auth="entra_msi", port=14330)))
    assert system["authentication"] == "ActiveDirectoryMSI"
    assert system["server"] == "tcp:erp.database.windows.net,14330"
    assert "uid" not in system and "pwd" not in system
    user = parsed(mp.connection_string(mssql(auth="entra_msi", client_id=CLIENT_ID)))
    assert (user["authentication"], user["uid"]) == ("ActiveDirectoryMSI", CLIENT_ID)
    assert "pwd" not in user


def test_default_credential_chain():
    params = parsed(mp.connection_string(mssql(auth="entra_default")))
    assert params["authentication"] == "ActiveDirectoryDefault"
    assert "uid" not in params and "pwd" not in params


def test_service_principal_without_tenant_signs_in_natively():
    conn = mssql(auth="entra_sp", client_id=CLIENT_ID, client_secret=SECRET)
    params = parsed(mp.connection_string(conn))
    assert (params["authentication"], params["uid"], params["pwd"]) == (
        "ActiveDirectoryServicePrincipal",
        CLIENT_ID,
        SECRET,
    )


def test_service_principal_with_tenant_hands_a_token_provider(monkeypatch):
    """With a tenant the token comes from azure-identity for that tenant; the secret stays out of the
    connection string altogether."""
    from azure.identity import ClientSecretCredential

    conn = mssql(
        auth="entra_sp", client_id=CLIENT_ID, tenant_id="contoso.onmicrosoft.com", client_secret=SECRET
    )
    text = mp.connection_string(conn)
    assert SECRET not in text and "authentication" not in parsed(text) and "pwd" not in parsed(text)
    seen = {}

    class FakeDriver:
        @staticmethod
        def connect(connection_str, **kwargs):
            seen.update(kwargs, connection_str=connection_str)
            return "connection"

    monkeypatch.setattr(mp, "_driver", lambda: FakeDriver)
    assert mp.connect(conn, login_timeout=5) == "connection"
    assert isinstance(seen["token_provider"], ClientSecretCredential)
    assert (seen["timeout"], seen["autocommit"]) == (5, True)
    assert SECRET not in seen["connection_str"]


def test_tls_settings_reach_the_connection_string():
    params = parsed(
        mp.connection_string(mssql(auth="entra_msi", encrypt=False, trust_server_certificate=True))
    )
    assert (params["encrypt"], params["trustservercertificate"]) == ("no", "yes")


def test_descriptions_and_reprs_hold_no_secret():
    for conn in (
        mssql(user="u", password=SECRET),
        mssql(auth="entra_sp", client_id=CLIENT_ID, client_secret=SECRET),
        mssql(auth="entra_sp", client_id=CLIENT_ID, tenant_id="t", client_secret=SECRET),
    ):
        for text in (repr(conn), str(conn), conns.describe(conn), conns.describe_engine(conn)):
            assert SECRET not in text
        assert SECRET in conns.secrets_of(conn)
    assert conns.describe_engine(mssql(auth="entra_msi", client_id=CLIENT_ID)) == (
        f"engine mssql-python (auto), auth entra_msi (user-assigned, client id {CLIENT_ID})"
    )
    assert (
        conns.describe_engine(mssql(user="u", password="p")) == "engine connectorx (auto), auth sql login u"
    )


# --- the driver is really there ----------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: connects are refused


def test_driver_imports_and_its_odbc_library_loads():
    loads, detail = mp.driver_status()
    assert loads, detail
    assert "mssql-python" in detail and "loads" in detail


def test_a_refused_connect_is_a_connect_error_not_a_library_error():
    """The driver gets as far as TCP: the ODBC library (and its system libraries) loaded."""
    import mssql_python

    conn = ConnectionConfig(
        type="mssql", host="127.0.0.1", port=_closed_port(), database="x", user="u", password=SECRET
    )
    started = time.monotonic()
    with pytest.raises(mssql_python.OperationalError) as info:
        mp.connect(conn, login_timeout=1)
    assert time.monotonic() - started < 15
    text = str(info.value)
    assert "load the driver" not in text.lower()
    assert "unable to establish connection" in text.lower()
    assert SECRET not in text


def _entity(name: str = "orders", **home) -> ResolvedEntity:
    return ResolvedEntity.model_validate(
        {
            "flow": "erp",
            "name": name,
            "table": name,
            "home": {"type": "sql", "connection": "erp", **home},
            "store": {"type": "parquet", "path": "lake"},
            "run_type": "full_drop",
            "file": "flow.yml",
        }
    )


def test_an_unreachable_server_is_a_transient_source_error_without_secrets(caplog, monkeypatch):
    conn = ConnectionConfig(
        type="mssql", host="127.0.0.1", port=_closed_port(), database="x", user="u", password=SECRET,
        engine="mssql-python",
    )  # fmt: skip
    monkeypatch.setattr(mp, "DEFAULT_LOGIN_TIMEOUT", 1)
    home = SqlHome(_entity(), conn)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SourceError) as info:
        home.columns()
    assert info.value.transient
    assert "unable to establish connection" in str(info.value).lower()
    assert SECRET not in str(info.value) and SECRET not in caplog.text


def test_a_missing_odbc_library_is_permanent_and_says_what_to_install():
    home = SqlHome(_entity(), mssql(auth="entra_msi"))
    error = home._source_error(
        RuntimeError("Driver Error: Connection operation failed; DDBC Error: Failed to load the driver.")
    )
    assert not error.transient
    assert "libltdl7" in str(error)


def test_partition_on_needs_connectorx():
    with pytest.raises(ConfigError, match="partition_on"):
        SqlHome(_entity(partition_on="id"), mssql(auth="entra_msi"))
    SqlHome(_entity(partition_on="id"), mssql(user="u", password="p"))  # connectorx: fine


# --- both engines land the same thing ----------------------------------------------------------------

_D = dt.datetime(2026, 3, 4, 5, 6, 7, 123456)
_UTC = dt.datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=dt.UTC)

# SQL Server type -> (values landed, connectorx's Arrow type, mssql-python's Arrow type) for the SELECT
# list hygge sends (text-, money- and guid-fetched columns arrive as the server's text or decimal(19,4)).
DRIVER_OUTPUT: dict[tuple[str, int | None, int | None], tuple[list, pa.DataType, pa.DataType]] = {
    ("tinyint", None, None): ([0, 255, None], pa.int64(), pa.uint8()),
    ("smallint", None, None): ([-(2**15), 2**15 - 1, None], pa.int64(), pa.int16()),
    ("int", None, None): ([-(2**31), 2**31 - 1, None], pa.int64(), pa.int32()),
    ("bigint", None, None): ([-(2**63), 2**63 - 1, None], pa.int64(), pa.int64()),
    ("bit", None, None): ([True, False, None], pa.bool_(), pa.bool_()),
    ("real", None, None): ([1.5, -2.25, None], pa.float32(), pa.float32()),
    ("float", None, None): ([1e300, -0.1, None], pa.float64(), pa.float64()),
    ("date", None, None): ([dt.date(1, 1, 1), dt.date(9999, 12, 31), None], pa.date32(), pa.date32()),
    ("datetime", None, None): (
        [_D.replace(microsecond=123000), _D, None],
        pa.timestamp("us"),
        pa.timestamp("us"),
    ),
    ("datetime2", None, None): ([_D, dt.datetime(1, 1, 1), None], pa.timestamp("us"), pa.timestamp("us")),
    ("smalldatetime", None, None): (
        [_D.replace(second=0, microsecond=0), None],
        pa.timestamp("us"),
        pa.timestamp("us"),
    ),
    ("datetimeoffset", None, None): (
        [_UTC, None],
        pa.timestamp("us", tz="UTC"),
        pa.timestamp("us", tz="+00:00"),
    ),
    ("uniqueidentifier", None, None): (
        ["58185e0d-3a91-44d8-bc46-7107217e0a6d", None],
        pa.large_string(),
        pa.large_string(),
    ),
    ("char", None, None): (["abc", None], pa.large_string(), pa.large_string()),
    ("varchar", None, None): (["abc", "", None], pa.large_string(), pa.large_string()),
    ("nchar", None, None): (["名前", None], pa.large_string(), pa.large_string()),
    ("nvarchar", None, None): (["unicodé", None], pa.large_string(), pa.large_string()),
    ("text", None, None): (["long text", None], pa.large_string(), pa.large_string()),
    ("ntext", None, None): (["long ntext", None], pa.large_string(), pa.large_string()),
    ("binary", None, None): ([b"\x00\x01", None], pa.large_binary(), pa.large_binary()),
    ("varbinary", None, None): ([b"\xff", b"", None], pa.large_binary(), pa.large_binary()),
    ("image", None, None): ([b"\x89PNG", None], pa.large_binary(), pa.large_binary()),
    ("timestamp", None, None): ([b"\x00" * 7 + b"\x01", None], pa.large_binary(), pa.large_binary()),
    ("rowversion", None, None): ([b"\x00" * 7 + b"\x02", None], pa.large_binary(), pa.large_binary()),
    # CAST(... AS DECIMAL(19,4)) in the SELECT list: connectorx carries it at scale 10.
    ("money", 19, 4): (
        [Decimal("922337203685477.5807"), Decimal("-1.2345"), None],
        pa.decimal128(38, 10),
        pa.decimal128(19, 4),
    ),
    ("smallmoney", 10, 4): ([Decimal("214748.3647"), None], pa.decimal128(38, 10), pa.decimal128(19, 4)),
    ("decimal", 18, 4): ([Decimal("99999999999999.9999"), None], pa.decimal128(38, 10), pa.decimal128(18, 4)),
    ("numeric", 10, 0): ([Decimal("9999999999"), None], pa.decimal128(38, 10), pa.decimal128(10, 0)),
    ("decimal", 28, 10): (
        [Decimal("999999999999999999.9999999999"), None],
        pa.decimal128(38, 10),
        pa.decimal128(28, 10),
    ),
    # Fetched as text (CONVERT(NVARCHAR(MAX), ...)): both drivers see the server's text.
    ("decimal", 38, 18): (
        ["12345678901234567890.123456789012345678", None],
        pa.large_string(),
        pa.large_string(),
    ),
    ("decimal", 19, 0): (["9999999999999999999", None], pa.large_string(), pa.large_string()),
    ("decimal", 12, 11): (["1.23456789012", None], pa.large_string(), pa.large_string()),
    ("time", None, None): (["12:34:56.1234567", None], pa.large_string(), pa.large_string()),
    ("xml", None, None): (["<a>1</a>", None], pa.large_string(), pa.large_string()),
    ("sql_variant", None, None): (["42", None], pa.large_string(), pa.large_string()),
    ("hierarchyid", None, None): (["/1/2/", None], pa.large_string(), pa.large_string()),
}


def _landed_value(value, arrow: pa.DataType):
    """What a text-fetched value lands as (the pinned type's Python value)."""
    if value is None or not pa.types.is_decimal(arrow) or isinstance(value, Decimal):
        return value
    return Decimal(value)


def test_every_type_in_the_map_has_a_driver_shape():
    mapped = {(t.lower(), p, s) for t, p, s, _, _ in MSSQL_TYPES}
    assert mapped <= set(DRIVER_OUTPUT), mapped - set(DRIVER_OUTPUT)


def _read_with(conn: ConnectionConfig, pinned: list, batch: pa.RecordBatch, seen_sql: list[str]) -> pa.Table:
    home = SqlHome(_entity(), conn)
    home._columns = pinned  # pinned as the catalog would, without a server

    def stream(sql, batch_size, partition_on=None, partition_num=None):
        seen_sql.append(sql)
        return pa.RecordBatchReader.from_batches(batch.schema, [batch])

    home.engine.stream = stream  # type: ignore[method-assign]
    return home.read().read_all()


@pytest.mark.parametrize(
    "key", list(DRIVER_OUTPUT), ids=lambda k: "-".join(str(x) for x in k if x is not None)
)
def test_both_engines_land_the_same_pinned_schema_and_values(key):
    values, cx_type, mp_type = DRIVER_OUTPUT[key]
    column = map_mssql(SourceColumn("c", *key))
    pinned = pa.schema([pa.field("c", column.arrow_type)])
    seen: list[str] = []
    via_cx = _read_with(
        mssql(user="u", password="p"),
        [column],
        pa.record_batch([pa.array(values, cx_type)], names=["c"]),
        seen,
    )
    via_mp = _read_with(
        mssql(auth="entra_msi"), [column], pa.record_batch([pa.array(values, mp_type)], names=["c"]), seen
    )
    assert seen[0] == seen[1], "both engines run the same SELECT"
    assert via_cx.schema == pinned and via_mp.schema == pinned
    assert via_cx.equals(via_mp)
    assert via_mp.column("c").to_pylist() == [_landed_value(v, column.arrow_type) for v in values]


def test_a_value_the_pinned_type_cannot_hold_fails_loudly_on_either_engine():
    column = map_mssql(SourceColumn("amount", "decimal", 10, 2))
    for conn, arrow in (
        (mssql(user="u", password="p"), pa.decimal128(38, 10)),
        (mssql(auth="entra_msi"), pa.decimal128(12, 2)),
    ):
        batch = pa.record_batch([pa.array([Decimal("1234567890.12")], arrow)], names=["amount"])
        with pytest.raises(SourceError, match="amount"):
            _read_with(conn, [column], batch, [])


def test_query_columns_from_mssql_python_pin_regular_types(monkeypatch):
    from hygge.typemap import pin_driver_type

    assert pin_driver_type(pa.uint8()) == pa.int16()
    assert pin_driver_type(pa.large_string()) == pa.string()
    assert pin_driver_type(pa.large_binary()) == pa.binary()
    assert pin_driver_type(pa.timestamp("us", tz="+00:00")) == pa.timestamp("us", tz="UTC")
    assert pin_driver_type(pa.decimal128(19, 4)) == pa.decimal128(19, 4)


# --- hygge debug -------------------------------------------------------------------------------------


def test_debug_names_engine_auth_and_driver(tmp_path: Path, monkeypatch):
    from hygge.config.loader import Project
    from hygge.config.models import ProjectConfig
    from hygge.diagnostics import check_connection

    monkeypatch.setattr(mp, "DEFAULT_LOGIN_TIMEOUT", 1)
    port = _closed_port()
    config = ProjectConfig(
        name="p",
        connections={
            "erp": {"type": "mssql", "host": "127.0.0.1", "port": port, "database": "erp", "auth": "entra_msi"},
            "sql": {"type": "mssql", "host": "127.0.0.1", "port": port, "database": "erp", "user": "u", "password": SECRET,
                "engine": "mssql-python"},
        },
    )  # fmt: skip
    project = Project(root=tmp_path, config=config, flows={})
    erp = check_connection(project, "erp")
    assert not erp.ok  # no managed identity (nor server) here
    assert "engine mssql-python (auto), auth entra_msi (system-assigned)" in erp.detail
    sql = check_connection(project, "sql")
    assert not sql.ok and "engine mssql-python (mssql-python), auth sql login u" in sql.detail
    assert "unable to establish connection" in sql.detail.lower()
    assert SECRET not in erp.detail + sql.detail


# --- query entities: typed by the server, the same for both engines ----------------------------------


def _query_home(conn: ConnectionConfig, rows: list[dict]) -> tuple[SqlHome, list[str]]:
    entity = ResolvedEntity.model_validate(
        {
            "flow": "erp",
            "name": "big_orders",
            "query": "SELECT id, amount, ref FROM dbo.Orders WHERE note = 'it''s'",
            "home": {"type": "sql", "connection": "erp"},
            "store": {"type": "parquet", "path": "lake"},
            "run_type": "full_drop",
            "file": "flow.yml",
        }
    )
    home = SqlHome(entity, conn)
    asked: list[str] = []

    def table(sql: str) -> pa.Table:
        asked.append(sql)
        return pa.Table.from_pylist(rows)

    home.engine.table = table  # type: ignore[method-assign]
    return home, asked


DESCRIBED = [
    {
        "name": "id",
        "data_type": "smallint",
        "precision": 5,
        "scale": 0,
        "nullable": False,
        "error_message": None,
    },
    {
        "name": "amount",
        "data_type": "money",
        "precision": 19,
        "scale": 4,
        "nullable": True,
        "error_message": None,
    },
    {
        "name": "ref",
        "data_type": "uniqueidentifier",
        "precision": 0,
        "scale": 0,
        "nullable": True,
        "error_message": None,
    },
]


def test_a_query_is_typed_by_the_server_like_a_table_for_both_engines():
    import sqlglot

    homes = [
        _query_home(mssql(user="u", password="p"), DESCRIBED),
        _query_home(mssql(auth="entra_msi"), DESCRIBED),
    ]
    schemas = [home.schema() for home, _ in homes]
    assert (
        schemas[0]
        == schemas[1]
        # SQL Server describes `id` NOT NULL: kept, as a table's would be.
        == pa.schema(
            [pa.field("id", pa.int16(), nullable=False), ("amount", pa.decimal128(19, 4)), ("ref", pa.string())]
        )
    )
    [asked] = homes[0][1]
    [tree] = sqlglot.parse(asked, read="tsql")
    assert "dm_exec_describe_first_result_set" in asked.lower()
    strings = tree.find_all(sqlglot.exp.Literal, sqlglot.exp.National)
    literal = next(lit.this for lit in strings if "dbo.Orders" in str(lit.this))
    assert literal == "SELECT id, amount, ref FROM dbo.Orders WHERE note = 'it''s'"
    select = homes[1][0].select_sql()
    assert "CAST([amount] AS DECIMAL(19,4))" in select and "LOWER(CONVERT(NVARCHAR(MAX), [ref]))" in select


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [{**DESCRIBED[0], "name": None, "error_message": "Invalid object name 'dbo.Nope'."}],
            "Invalid object name",
        ),
        ([{**DESCRIBED[0], "name": None}], "has no name"),
        ([], "no columns"),
    ],
)
def test_a_query_the_server_cannot_describe_is_one_clear_error(rows, message):
    home, _ = _query_home(mssql(auth="entra_msi"), rows)
    with pytest.raises(SourceError, match=message):
        home.columns()


def test_several_statements_stream_one_after_another(monkeypatch):
    """mssql-python reads a list of SELECTs in turn, each on its own connection, opened only when the
    one before it is read (connectorx reads them at once)."""
    opened: list[str] = []

    def stream(conn, sql, batch_size):
        opened.append(sql)
        table = pa.table({"n": [len(opened)]})
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())

    monkeypatch.setattr(mp, "stream", stream)
    engine = MssqlPython(ConnectionConfig(type="mssql", host="h", database="d"))
    reader = engine.stream(["SELECT 1", "SELECT 2", "SELECT 3"], 10)
    assert opened == ["SELECT 1"]
    assert reader.read_all().column("n").to_pylist() == [1, 2, 3]
    assert opened == ["SELECT 1", "SELECT 2", "SELECT 3"]
