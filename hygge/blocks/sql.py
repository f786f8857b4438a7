"""SQL connection blocks: SQL Server, PostgreSQL, MySQL and SQLite.

Each holds what a `connections:` entry in hygge.yml holds, with the password a SecretStr (stored
encrypted by the Prefect API, shown as `********` in the UI and never printed by hygge), and turns
into hygge's `ConnectionConfig` with `to_connection_config()`.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from hygge.config.models import ConnectionConfig

# The Azure logo prefect-azure's blocks use (a 250 px square png); hygge has no logo of its own.
LOGO_URL = (
    "https://cdn.sanity.io/images/3ugk85nk/production/54e3fa7e00197a4fbd1d82ed62494cb58d08c96a-250x250.png"
)
DOCS_URL = "https://docs.prefect.io/v3/develop/blocks"


def _server_config(block: Any, dialect: str, **extra: Any) -> ConnectionConfig:
    return ConnectionConfig(
        type=dialect,  # type: ignore[arg-type]
        host=block.host,
        port=block.port,
        database=block.database,
        user=block.user,
        password=block.password,
        **extra,
    )


class SqlServerConnection(Block):
    """A SQL Server (or Azure SQL) database hygge reads from: host, port, database, and how to sign in —
    a SQL login (user and a secret password) or Microsoft Entra ID (managed identity, the default
    credential chain, or a service principal with a secret) — plus the engine and TLS settings.

    Example:
        Load a stored connection and turn it into hygge's connection settings:
        ```python
        from hygge.blocks import SqlServerConnection

        erp = SqlServerConnection.load("BLOCK_NAME")
        config = erp.to_connection_config()
        ```
    """

    _block_type_name = "SQL Server Connection"
    _block_type_slug = "sql-server-connection"
    _logo_url = LOGO_URL
    _documentation_url = DOCS_URL
    _description = "Connection settings for a SQL Server or Azure SQL database read by hygge."

    host: str = Field(description="Server host name or address.")
    port: int = Field(default=1433, description="TCP port of the server.")
    database: str = Field(description="Database to read from.")
    user: str | None = Field(default=None, description="Login name (auth: sql).")
    password: SecretStr | None = Field(default=None, description="Login password (kept secret).")
    encrypt: bool = Field(default=True, description="Encrypt the connection with TLS.")
    trust_server_certificate: bool = Field(
        default=False, description="Accept the server's certificate without validating it."
    )
    auth: Literal["sql", "entra_msi", "entra_default", "entra_sp"] = Field(
        default="sql",
        description="How to sign in: sql (login and password), entra_msi (managed identity), "
        "entra_default (DefaultAzureCredential chain) or entra_sp (service principal).",
    )
    engine: Literal["auto", "connectorx", "mssql-python"] = Field(
        default="auto",
        description="Driver: auto (mssql-python for Entra ID, connectorx for SQL logins), "
        "connectorx or mssql-python.",
    )
    client_id: str | None = Field(
        default=None,
        description="entra_msi: client id of a user-assigned identity; entra_sp: the application id.",
    )
    tenant_id: str | None = Field(default=None, description="entra_sp: the service principal's tenant.")
    client_secret: SecretStr | None = Field(
        default=None, description="entra_sp: the application's client secret (kept secret)."
    )

    def to_connection_config(self) -> ConnectionConfig:
        """hygge's settings for this connection (secrets stay SecretStr)."""
        return _server_config(
            self,
            "mssql",
            encrypt=self.encrypt,
            trust_server_certificate=self.trust_server_certificate,
            auth=self.auth,
            engine=self.engine,
            client_id=self.client_id,
            tenant_id=self.tenant_id,
            client_secret=self.client_secret,
        )


class PostgresConnection(Block):
    """A PostgreSQL database hygge reads from: host, port, database, user and a secret password.

    Example:
        Load a stored connection and turn it into hygge's connection settings:
        ```python
        from hygge.blocks import PostgresConnection

        shop = PostgresConnection.load("BLOCK_NAME")
        config = shop.to_connection_config()
        ```
    """

    _block_type_name = "PostgreSQL Connection"
    _block_type_slug = "postgres-connection"
    _logo_url = LOGO_URL
    _documentation_url = DOCS_URL
    _description = "Connection settings for a PostgreSQL database read by hygge."

    host: str = Field(description="Server host name or address.")
    port: int = Field(default=5432, description="TCP port of the server.")
    database: str = Field(description="Database to read from.")
    user: str | None = Field(default=None, description="Login name.")
    password: SecretStr | None = Field(default=None, description="Login password (kept secret).")

    def to_connection_config(self) -> ConnectionConfig:
        """hygge's settings for this connection (the password stays a SecretStr)."""
        return _server_config(self, "postgres")


class MySqlConnection(Block):
    """A MySQL or MariaDB database hygge reads from: host, port, database, user and a secret password.

    Example:
        Load a stored connection and turn it into hygge's connection settings:
        ```python
        from hygge.blocks import MySqlConnection

        crm = MySqlConnection.load("BLOCK_NAME")
        config = crm.to_connection_config()
        ```
    """

    _block_type_name = "MySQL Connection"
    _block_type_slug = "mysql-connection"
    _logo_url = LOGO_URL
    _documentation_url = DOCS_URL
    _description = "Connection settings for a MySQL or MariaDB database read by hygge."

    host: str = Field(description="Server host name or address.")
    port: int = Field(default=3306, description="TCP port of the server.")
    database: str = Field(description="Database to read from.")
    user: str | None = Field(default=None, description="Login name.")
    password: SecretStr | None = Field(default=None, description="Login password (kept secret).")

    def to_connection_config(self) -> ConnectionConfig:
        """hygge's settings for this connection (the password stays a SecretStr)."""
        return _server_config(self, "mysql")


class SqliteConnection(Block):
    """A SQLite database file hygge reads from.

    Example:
        Load a stored connection and turn it into hygge's connection settings:
        ```python
        from hygge.blocks import SqliteConnection

        shop = SqliteConnection.load("BLOCK_NAME")
        config = shop.to_connection_config()
        ```
    """

    _block_type_name = "SQLite Connection"
    _block_type_slug = "sqlite-connection"
    _logo_url = LOGO_URL
    _documentation_url = DOCS_URL
    _description = "The path of a SQLite database file read by hygge."

    path: str = Field(
        description="Path of the database file (relative paths are relative to the project folder)."
    )

    def to_connection_config(self) -> ConnectionConfig:
        """hygge's settings for this connection."""
        return ConnectionConfig(type="sqlite", path=self.path)
