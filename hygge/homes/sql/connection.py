"""Turn a ConnectionConfig into a connectorx URL (secret) and a description (safe to log)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from hygge.config.models import ConnectionConfig

_SCHEMES = {"postgres": "postgresql", "mssql": "mssql", "mysql": "mysql"}
_CONNECTORX_ONLY = {"cxprotocol"}  # connectorx URL options libpq would reject


def connectorx_url(conn: ConnectionConfig, project_root: Path | None = None) -> str:
    if conn.url is not None:
        return conn.url.get_secret_value()
    if conn.type == "sqlite":
        path = Path(conn.path or "")
        if not path.is_absolute() and project_root is not None:
            path = project_root / path
        return f"sqlite://{path.resolve()}"
    user = quote(conn.user or "", safe="")
    password = conn.password.get_secret_value() if conn.password else ""
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    port = f":{conn.port}" if conn.port else ""
    url = f"{_SCHEMES[conn.type]}://{auth}{conn.host}{port}/{quote(conn.database or '', safe='')}"
    if conn.type == "mssql":
        params = {"encrypt": str(conn.encrypt).lower()}
        if conn.trust_server_certificate:
            params["trust_server_certificate"] = "true"
        url += "?" + urlencode(params)
    return url


def libpq_url(conn: ConnectionConfig) -> str:
    """The libpq URL of a postgres connection (psycopg): the connectorx URL without connectorx's options."""
    parts = urlsplit(connectorx_url(conn))
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _CONNECTORX_ONLY]
    return urlunsplit(parts._replace(query=urlencode(query)))


def secrets_of(conn: ConnectionConfig) -> list[str]:
    """Every secret of a connection, for `hygge.redact`."""
    return [v.get_secret_value() for v in (conn.password, conn.url, conn.client_secret) if v is not None]


def sqlite_path(conn: ConnectionConfig, project_root: Path | None = None) -> Path:
    return Path(connectorx_url(conn, project_root).removeprefix("sqlite://"))


def describe(conn: ConnectionConfig) -> str:
    if conn.type == "sqlite":
        return f"sqlite {conn.path or '(url)'}"
    if conn.url is not None:
        from hygge.redact import redact

        return f"{conn.type} {redact(conn.url.get_secret_value())}"
    return f"{conn.type} {conn.host}:{conn.port or 'default'}/{conn.database}"


def describe_engine(conn: ConnectionConfig) -> str:
    """Which engine reads `conn` and how it signs in (no secrets), e.g. for `hygge debug`."""
    if conn.type != "mssql":
        return "engine connectorx"
    from hygge.homes.sql.mssql_python import describe_auth

    auth = describe_auth(conn) if conn.url is None else "sql login (url)"
    return f"engine {conn.sql_engine} ({conn.engine}), auth {auth}"
