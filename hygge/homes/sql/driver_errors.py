"""A driver's failure as one SourceError: its first line (secrets masked, no Rust backtrace), whether a
retry can help (a refused login or a missing table cannot; a dropped connection or a timeout can),
and the hint that fits the cause."""

from __future__ import annotations

import re

from hygge.errors import SourceError
from hygge.redact import redact


def driver_error(
    exc: BaseException, secrets: list[str], source: str, has_query: bool, decimals: list[str] | None = None,
    **where: str,
) -> SourceError:
    """`source` names what was read and from where; `decimals` the pinned decimal columns (the ones a
    driver's decimal error can be about); `where` (flow, entity) goes on the error."""
    text = redact(str(exc).split("\n\nStack backtrace")[0].strip(), secrets)
    first = text.splitlines()[0] if text else type(exc).__name__
    lowered = text.lower()
    # connectorx reports every failed connect as "timed out waiting for connection: <cause>"; the
    # cause decides: a wrong password or a missing database will not heal by retrying.
    permanent = any(
        word in lowered
        for word in (
            "does not exist",
            "authentication failed",
            "login failed",
            "permission denied",
            "access denied",
            "unknown database",
            "cannot open database",  # SQL Server: the login has no user in that database
            "failed to load the driver",  # mssql-python: the ODBC library's packages are missing
        )
    )
    transient = not permanent and any(
        word in lowered
        for word in (
            "connection refused",
            "timed out",
            "timeout",
            "connection reset",
            "broken pipe",
            "terminating connection",
            "server closed the connection",
            "could not connect",
            "unable to establish connection",  # mssql-python (ODBC): TCP connect failed
            "communication link failure",
            "login timeout expired",
        )
    )
    hint = (
        "the source could not be reached; hygge retries transient failures"
        if transient
        else "check the connection and that the table and columns exist"
    )
    if "failed to load the driver" in lowered:
        from hygge.homes.sql.mssql_python import APT_PACKAGES

        hint = f"install the ODBC driver's libraries ({' '.join(APT_PACKAGES)}); `hygge debug` checks it"
    if has_query and "syntax error" in lowered:
        hint = "check the entity's `query:`: run it in a SQL client against the same database"
    if any(w in lowered for w in _DECIMAL_ERRORS):
        # connectorx carries decimals at one scale (10) in 96 bits and says neither which column nor
        # which value: name the candidates and the pin that reads the value exactly.
        named = ", ".join(decimals or []) or "a decimal column"
        first = f"a decimal value does not fit the type it is read as ({first[:200]})"
        pin = (decimals or ["<column>"])[0]
        hint = (
            f"the column is one of: {named}. Pin it with `columns: {{{pin}: string}}` (exact text) or a "
            "decimal(p,s) whose scale holds the values"
        )
        transient = False
    mixed = re.search(r'InvalidColumnType\(\d+, "((?:[^"\\]|\\.)*)", (\w+)\)', text)
    if mixed:  # SQLite lets any value into any column; the driver rejects one of the wrong kind
        first = f"column '{mixed[1]}' holds a {mixed[2]} value that does not match its declared type"
        hint = f"fix those values, or select the column through a `query:` with CAST({mixed[1]} AS TEXT)"
    return SourceError(
        f"reading {source} failed: {first[:500]}",
        hint=hint,
        transient=transient,
        **where,
    )


_DECIMAL_ERRORS = ("decimal scale is not equal", "exceedsmaximumpossiblevalue", "decimal overflow",
                   "scale exceeds", "cannot convert to decimal")  # fmt: skip


def psycopg_transient(exc: BaseException, text: str) -> bool:
    """Whether a psycopg error may heal on retry: the connection broke (an OperationalError with no
    SQLSTATE, or class 08), the server was shutting down or restarting (57), a transaction lost a
    conflict (40) or a replication slot was busy (55006); never a refused login."""
    import psycopg

    state = getattr(exc, "sqlstate", None) or ""
    broken = isinstance(exc, psycopg.OperationalError) and not state
    signed_out = "authentication failed" in text.lower()
    return not signed_out and (broken or state[:2] in ("08", "57", "40") or state == "55006")
