"""PostgreSQL describes a `query:` entity's result before anything is read, as SQL Server does.

The server's row description carries each column's type with its modifier (numeric precision and
scale). Its columns are all nullable: for a column taken straight from a table the catalog holds that
column's NOT NULL, but an outer join can still give it NULLs, and the description does not say. The types are spelled as information_schema spells them, so a query goes through the same
`map_postgres` (and the same lossless casts) as a table: a query over a table lands what the table
would. connectorx cannot describe a result (it types numerics as decimal(38,10)), so psycopg, which
the change feeds already use, asks the server.
"""

from __future__ import annotations

from hygge.errors import SourceError
from hygge.homes.sql.driver_errors import psycopg_transient
from hygge.redact import redact
from hygge.typemap import SourceColumn

# Type names as information_schema.columns.data_type gives them: arrays, enums and composite types
# by their category, domains by their base type, the rest by format_type without modifier.
_TYPES = """
SELECT d.i,
       CASE WHEN t.typcategory = 'A' THEN 'ARRAY'
            WHEN t.typtype IN ('e', 'c', 'r', 'm') THEN 'USER-DEFINED'
            WHEN t.typtype = 'd' THEN format_type(t.typbasetype, NULL)
            ELSE format_type(t.oid, NULL) END AS data_type,
       CASE WHEN d.typmod >= 0 THEN d.typmod ELSE t.typtypmod END AS typmod
FROM unnest(%s::int[], %s::oid[], %s::int[]) AS d(i, oid, typmod)
JOIN pg_type t ON t.oid = d.oid
ORDER BY d.i
"""


def _numeric(typmod: int) -> tuple[int | None, int | None]:
    """numeric(p, s) from its type modifier; (None, None) for an unconstrained numeric."""
    if typmod < 4:
        return None, None
    bits = typmod - 4
    scale = bits & 0x7FF
    return (bits >> 16) & 0xFFFF, scale - 0x800 if scale & 0x400 else scale  # scale is 11-bit signed


def describe_query(conninfo: str, query: str, secrets: list[str]) -> list[SourceColumn]:
    """The columns of `query`'s result, typed by the server; a query the server refuses raises
    SourceError with its message (redacted)."""
    import psycopg

    try:
        with (
            psycopg.connect(conninfo, autocommit=True, connect_timeout=30, application_name="hygge") as db,
            db.cursor() as cur,
        ):
            cur.execute(f'SELECT * FROM ({query}) AS "hygge_q" LIMIT 0')  # type: ignore[arg-type]
            result = cur.pgresult
            assert result is not None and cur.description is not None
            names = [c.name for c in cur.description]
            fields = range(result.nfields)
            cur.execute(
                _TYPES,  # type: ignore[arg-type]
                (
                    list(fields),
                    [result.ftype(i) for i in fields],
                    [result.fmod(i) for i in fields],
                ),
            )
            rows = cur.fetchall()
    except psycopg.Error as exc:
        text = redact(str(exc).strip(), secrets)
        first = text.splitlines()[0] if text else type(exc).__name__
        if psycopg_transient(exc, text):
            raise SourceError(
                f"describing the query's result: {first}",
                hint="the server could not be reached or closed the connection; hygge retries",
                transient=True,
            ) from None
        raise SourceError(
            f"PostgreSQL cannot describe the query's result: {first}",
            hint="the entity's `query:` must be one SELECT usable as a subquery; check that it runs in psql",
            field="query",
        ) from None
    columns = []
    for (_, data_type, typmod), name in zip(rows, names, strict=True):
        precision, scale = _numeric(typmod) if data_type == "numeric" else (None, None)
        # Nullable whatever the table column says: an outer join gives a NOT NULL column NULLs, and
        # the row description does not tell (SQL Server's description does, and is taken there).
        columns.append(SourceColumn(name, data_type, precision, scale, nullable=True))
    return columns
