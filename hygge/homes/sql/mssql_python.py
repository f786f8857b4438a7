"""SQL Server through Microsoft's mssql-python driver: Entra ID sign-in and Arrow batches.

connectorx cannot sign in with Microsoft Entra ID; mssql-python can, through its bundled ODBC driver
(`Authentication=ActiveDirectoryMSI | ActiveDirectoryDefault | ActiveDirectoryServicePrincipal`), and
streams results as Arrow (`cursor.arrow_reader`). The driver is imported lazily: `import hygge` must
work without it (and without its ODBC library's system packages).

The connection string holds the secret (PWD, or the app secret for a service principal): it is built
here, handed to the driver and never logged; errors pass through `hygge.redact` with `secrets_of`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from hygge.config.models import ConnectionConfig

# The ODBC `Authentication=` keyword of each Entra mode. The driver acquires the token before it
# connects (a token is checked at sign-in only), and hygge opens a connection per read.
AUTHENTICATION = {
    "entra_msi": "ActiveDirectoryMSI",
    "entra_default": "ActiveDirectoryDefault",
    "entra_sp": "ActiveDirectoryServicePrincipal",
}
# Debian/Ubuntu packages the bundled ODBC driver (libmsodbcsql-18) links against.
APT_PACKAGES = ("libltdl7", "libkrb5-3", "libgssapi-krb5-2")
DEFAULT_LOGIN_TIMEOUT = 30


def _value(text: str) -> str:
    """Quote an ODBC connection-string value when it holds a separator or a brace."""
    if any(ch in text for ch in ";{}=") or text != text.strip():
        return "{" + text.replace("}", "}}") + "}"
    return text


def _uses_token_provider(conn: ConnectionConfig) -> bool:
    # A named tenant: hygge asks azure-identity for the token there (ClientSecretCredential) and hands
    # it to the driver. Without one, the ODBC driver signs in to the tenant the server announces.
    return conn.auth == "entra_sp" and bool(conn.tenant_id)


def connection_string(conn: ConnectionConfig) -> str:
    """The ODBC connection string for `conn` (contains the secret: never log it)."""
    server = f"tcp:{conn.host},{conn.port or 1433}"
    parts = [
        ("Server", server),
        ("Database", conn.database or ""),
        ("Encrypt", "yes" if conn.encrypt else "no"),
        ("TrustServerCertificate", "yes" if conn.trust_server_certificate else "no"),
    ]
    if conn.auth == "sql":
        parts.append(("UID", conn.user or ""))
        parts.append(("PWD", conn.password.get_secret_value() if conn.password else ""))
    elif conn.auth == "entra_sp" and not _uses_token_provider(conn):
        assert conn.client_secret is not None
        parts.append(("Authentication", AUTHENTICATION["entra_sp"]))
        parts.append(("UID", conn.client_id or ""))
        parts.append(("PWD", conn.client_secret.get_secret_value()))
    elif conn.auth in ("entra_msi", "entra_default"):
        parts.append(("Authentication", AUTHENTICATION[conn.auth]))
        if conn.auth == "entra_msi" and conn.client_id:
            parts.append(("UID", conn.client_id))  # a user-assigned identity, by client id
    return ";".join(f"{key}={_value(value)}" for key, value in parts)


def describe_auth(conn: ConnectionConfig) -> str:
    """How `conn` signs in, without any secret (for `hygge debug` and messages)."""
    if conn.auth == "sql":
        return f"sql login {conn.user or '(none)'}"
    if conn.auth == "entra_msi":
        who = f"user-assigned, client id {conn.client_id}" if conn.client_id else "system-assigned"
        return f"entra_msi ({who})"
    if conn.auth == "entra_default":
        return "entra_default (DefaultAzureCredential chain)"
    tenant = f", tenant {conn.tenant_id}" if conn.tenant_id else ""
    return f"entra_sp (app {conn.client_id}{tenant})"


def _driver() -> Any:
    import mssql_python  # lazily: the driver and its ODBC library are needed only when used

    return mssql_python


def connect(conn: ConnectionConfig, login_timeout: int | None = None) -> Any:
    """Open a driver connection (autocommit: hygge only reads); the login waits `login_timeout` s."""
    kwargs: dict[str, Any] = {"autocommit": True, "timeout": login_timeout or DEFAULT_LOGIN_TIMEOUT}
    if _uses_token_provider(conn):
        from azure.identity import ClientSecretCredential

        assert conn.client_secret is not None and conn.tenant_id and conn.client_id
        kwargs["token_provider"] = ClientSecretCredential(
            conn.tenant_id, conn.client_id, conn.client_secret.get_secret_value()
        )
    return _driver().connect(connection_string(conn), **kwargs)


def stream(conn: ConnectionConfig, sql: str, batch_size: int) -> pa.RecordBatchReader:
    """Stream `sql` as Arrow batches; the connection closes when the stream ends or is dropped."""
    connection = connect(conn)
    try:
        cursor = connection.cursor()
        cursor.execute(sql)
        reader = cursor.arrow_reader(batch_size=batch_size)
        schema = reader.schema
    except BaseException:
        connection.close()
        raise

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        finally:
            reader.close()
            connection.close()

    return pa.RecordBatchReader.from_batches(schema, batches())


def table(conn: ConnectionConfig, sql: str) -> pa.Table:
    """Read a small result (catalog queries) whole."""
    connection = connect(conn)
    try:
        cursor = connection.cursor()
        cursor.execute(sql)
        return cursor.arrow()
    finally:
        connection.close()


def result_schema(conn: ConnectionConfig, sql: str) -> pa.Schema:
    """The Arrow schema the driver gives `sql`'s result, without fetching a row."""
    connection = connect(conn)
    try:
        cursor = connection.cursor()
        cursor.execute(sql)
        return cursor.arrow_batch(0).schema
    finally:
        connection.close()


def driver_status() -> tuple[bool, str]:
    """Whether the driver imports and its ODBC library loads (no server needed)."""
    import ctypes

    try:
        driver = _driver()
        info = driver.get_native_provider_info()
    except Exception as exc:
        return False, f"mssql-python does not import: {exc}"
    path = info.get("driver_path")
    name = f"mssql-python {driver.__version__}, ODBC {info.get('id')} {info.get('version')}"
    if not path:
        return False, f"{name}: the ODBC driver library was not found"
    try:
        ctypes.CDLL(path)
    except OSError as exc:
        return False, (
            f"{name}: the ODBC library does not load ({exc}); on Debian/Ubuntu install "
            f"{' '.join(APT_PACKAGES)}"
        )
    return True, f"{name} loads"


def secrets_of(conn: ConnectionConfig) -> list[str]:
    """The values that must never appear in text: passwords and the app secret."""
    values = [conn.password, conn.client_secret]
    return [v.get_secret_value() for v in values if v is not None]
