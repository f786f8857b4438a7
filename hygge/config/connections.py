"""Connections to databases and credentials for Azure: the config that holds secrets (SecretStr)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from hygge.config.base import Invalid, Strict

Dialect = Literal["mssql", "postgres", "mysql", "sqlite"]


SqlEngine = Literal["auto", "connectorx", "mssql-python"]
SqlAuth = Literal["sql", "entra_msi", "entra_default", "entra_sp"]


class ConnectionConfig(Strict):
    """A database connection: either a full `url` or its parts. Secrets stay SecretStr.

    SQL Server may sign in with Microsoft Entra ID (`auth: entra_*`), which only the mssql-python
    engine can do; `engine: auto` picks it for Entra modes and connectorx for SQL logins.
    """

    type: Dialect
    url: SecretStr | None = None
    host: str | None = None
    port: int | None = None
    database: str | None = None
    user: str | None = None
    password: SecretStr | None = None
    path: str | None = Field(default=None, description="SQLite database file")
    encrypt: bool = True
    trust_server_certificate: bool = False
    engine: SqlEngine = Field(
        default="auto", description="mssql only: connectorx (SQL logins), mssql-python (Entra ID too)"
    )
    auth: SqlAuth = Field(
        default="sql", description="mssql only: sql login, or Entra ID: managed identity, default chain, SP"
    )
    client_id: str | None = Field(
        default=None, description="entra_msi: a user-assigned identity's client id; entra_sp: the app id"
    )
    tenant_id: str | None = Field(default=None, description="entra_sp: the service principal's tenant")
    client_secret: SecretStr | None = Field(default=None, description="entra_sp: the app's secret")

    @model_validator(mode="after")
    def _complete(self) -> ConnectionConfig:
        if self.url is None:
            if self.type == "sqlite" and not self.path:
                raise Invalid(
                    "a sqlite connection needs `path` (or `url`)", hint="add `path:` (the database file)"
                )
            if self.type != "sqlite" and not (self.host and self.database):
                raise Invalid(
                    "needs `url`, or `host` and `database`",
                    hint="add `host:` and `database:`, or a full `url:`",
                )
        self._check_engine_and_auth()
        return self

    def _check_engine_and_auth(self) -> None:
        entra = self.auth != "sql"
        if self.type != "mssql" and (entra or self.engine == "mssql-python"):
            raise Invalid(
                f"`auth: {self.auth}` / `engine: {self.engine}` apply to SQL Server connections only",
                hint="remove `auth:` and `engine:` from this connection (or set `type: mssql`)",
            )
        if entra and self.engine == "connectorx":
            raise Invalid(
                "connectorx cannot sign in with Microsoft Entra ID",
                hint="set `engine: mssql-python` or `engine: auto` (or use `auth: sql` with a SQL login)",
            )
        if self.url is not None and self.sql_engine != "connectorx":
            raise Invalid(
                "`url:` is a connectorx URL; the mssql-python engine needs `host:` and `database:`",
                hint="write host, port and database instead of url, or use `engine: connectorx`",
            )
        if entra and (self.user or self.password):
            raise Invalid(
                f"`auth: {self.auth}` signs in with Entra ID, so `user:` and `password:` are not used",
                hint="remove user and password (a user-assigned identity or app goes in `client_id:`)",
            )
        if self.auth == "entra_sp" and not (self.client_id and self.client_secret):
            raise Invalid(
                "`auth: entra_sp` needs `client_id:` (the app id) and `client_secret:`",
                hint="add both (and `tenant_id:` to take the token from a named tenant)",
            )
        if self.auth != "entra_sp" and (self.client_secret or self.tenant_id):
            raise Invalid(
                "`client_secret:` and `tenant_id:` are used only with `auth: entra_sp`",
                hint="remove them, or set `auth: entra_sp`",
            )
        if self.client_id and self.auth not in ("entra_msi", "entra_sp"):
            raise Invalid(
                "`client_id:` is used only with `auth: entra_msi` (user-assigned identity) or entra_sp",
                hint="remove it (entra_default reads AZURE_CLIENT_ID from the environment)",
            )

    @property
    def sql_engine(self) -> Literal["connectorx", "mssql-python"]:
        """The engine that reads this connection: `auto` resolves by the auth mode."""
        if self.engine != "auto":
            return self.engine
        return "mssql-python" if self.auth != "sql" else "connectorx"


class AzureCredentialConfig(Strict):
    """How hygge authenticates to Azure Storage / OneLake. Secrets stay SecretStr."""

    type: Literal[
        "default", "managed_identity", "service_principal", "cli", "account_key", "sas", "connection_string"
    ] = "default"
    client_id: str | None = Field(default=None, description="user-assigned identity, or the app (SP)")
    tenant_id: str | None = None
    client_secret: SecretStr | None = None
    account_key: SecretStr | None = None
    sas_token: SecretStr | None = None
    connection_string: SecretStr | None = None

    @model_validator(mode="after")
    def _complete(self) -> AzureCredentialConfig:
        needs = {
            "service_principal": ("tenant_id", "client_id", "client_secret"),
            "account_key": ("account_key",),
            "sas": ("sas_token",),
            "connection_string": ("connection_string",),
        }.get(self.type, ())
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise Invalid(
                f"credential type {self.type} needs {', '.join(missing)}",
                hint=f"add {', '.join(f'`{name}:`' for name in missing)} to the credential, or pick another "
                "`type:` (e.g. managed_identity or default, which need no secret)",
            )
        return self
