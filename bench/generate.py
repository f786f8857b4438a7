"""Generate the benchmark table in PostgreSQL, entirely server-side.

    python bench/generate.py --url URL --rows 10000000 [--table bench_rows]
    python bench/generate.py --url URL --changes 1 [--table bench_rows]

Full mode drops and recreates the table with ``--rows`` rows. Every value is a pure function
of the row id (PostgreSQL's stable ``hashint8extended`` and ``md5``), so two generations with
the same row count hold identical data. The columns are the types connectorx streams without
panicking (no interval, no numeric with scale > 10), with a few NULLs in nullable columns.

Changes mode (for incremental benchmarks) sets ``updated_at = localtimestamp`` and changes some
values in about PCT % of the rows, and inserts PCT/2 % new rows (ids after the current maximum),
also stamped ``localtimestamp``.

The table is VACUUMed (FREEZE) and ANALYZEd afterwards so that the first benchmark read does
not pay for setting hint bits.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

import psycopg

# One SELECT producing full rows for ids %(start)s..%(stop)s. h(k) is a deterministic
# non-negative 63-bit hash of the id with seed k, so columns are independent of each other.
# ("%%" is a literal "%" for psycopg, i.e. SQL's modulo operator.)
_H = "(hashint8extended(g, {k}) & 9223372036854775807)"

_ROW_SELECT = """
SELECT
    g                                                                     AS id,
    ({h1} %% 1000000)::int4                                               AS qty,
    ({h2} %% 32000)::int2                                                 AS code,
    (({h3} %% 100000000000) / 10000.0)::numeric(18,4)                     AS amount,
    CASE WHEN {h4} %% 20 = 0 THEN NULL
         ELSE ({h4} %% 10000000)::float8 / 1000 END                       AS score,
    {h5} %% 3 <> 0                                                        AS active,
    left('item ' || g::text || ' ' || repeat(md5(g::text), 2), 20 + ({h6} %% 41)::int)
                                                                          AS note,
    CASE WHEN {h7} %% 10 = 0 THEN NULL
         ELSE 'region-' || lpad(({h7} %% 250)::text, 3, '0') END          AS label,
    date '2015-01-01' + ({h8} %% 3650)::int                               AS created_on,
    timestamp '2015-01-01' + ({h9} %% 315360000000000) * interval '1 microsecond'
                                                                          AS created_at,
    CASE WHEN {h10} %% 25 = 0 THEN NULL
         ELSE timestamptz '2015-01-01 00:00:00+00'
              + ({h10} %% 315360000000000) * interval '1 microsecond' END AS event_at,
    md5('ref' || g::text)::uuid                                           AS ref,
    {updated_at}                                                          AS updated_at
FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS g
"""
_INITIAL_UPDATED_AT = "timestamp '2024-01-01' + ({h11} %% 31536000000000) * interval '1 microsecond'"


def row_select(updated_at: str | None = None) -> str:
    """The generating SELECT; ``updated_at`` overrides that column's SQL expression."""
    hashes = {f"h{k}": _H.format(k=k) for k in range(1, 12)}
    updated_at = updated_at or _INITIAL_UPDATED_AT.format(**hashes)
    return _ROW_SELECT.format(updated_at=updated_at, **hashes)


COLUMNS_DDL = """
    id          bigint       NOT NULL,
    qty         int4         NOT NULL,
    code        int2         NOT NULL,
    amount      numeric(18,4) NOT NULL,
    score       float8,
    active      boolean      NOT NULL,
    note        text         NOT NULL,
    label       varchar(20),
    created_on  date         NOT NULL,
    created_at  timestamp    NOT NULL,
    event_at    timestamptz,
    ref         uuid         NOT NULL,
    updated_at  timestamp    NOT NULL
"""

CHUNK_ROWS = 1_000_000


def _ident(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise SystemExit(f"table name must be a plain identifier, got {name!r}")
    return name


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _connect(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SET synchronous_commit = off")
    conn.execute("SET maintenance_work_mem = '512MB'")
    return conn


def _insert_range(
    conn: psycopg.Connection, table: str, start: int, stop: int, updated_at: str | None = None
) -> None:
    """Insert ids start..stop (inclusive) in chunks, one transaction per chunk."""
    select = row_select(updated_at)
    began = time.perf_counter()
    for chunk_start in range(start, stop + 1, CHUNK_ROWS):
        chunk_stop = min(chunk_start + CHUNK_ROWS - 1, stop)
        conn.execute(f"INSERT INTO {table} {select}", {"start": chunk_start, "stop": chunk_stop})
        done = chunk_stop - start + 1
        _log(f"  {done:>12,} / {stop - start + 1:,} rows  {time.perf_counter() - began:6.1f} s")


def _finish(conn: psycopg.Connection, table: str) -> None:
    _log(f"VACUUM (FREEZE, ANALYZE) {table}")
    conn.execute(f"VACUUM (FREEZE, ANALYZE) {table}")


def table_row_count(url: str, table: str) -> int | None:
    """Exact row count, or None if the table does not exist."""
    table = _ident(table)
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]
        if not exists:
            return None
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def generate(url: str, rows: int, table: str = "bench_rows") -> None:
    """Drop and recreate ``table`` with ids 1..rows."""
    table = _ident(table)
    began = time.perf_counter()
    with _connect(url) as conn:
        _log(f"creating {table} with {rows:,} rows")
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} ({COLUMNS_DDL})")
        _insert_range(conn, table, 1, rows)
        _log("building primary key and updated_at index")
        conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id)")
        conn.execute(f"CREATE INDEX {table}_updated_at_idx ON {table} (updated_at)")
        _finish(conn, table)
        size = conn.execute("SELECT pg_table_size(%s)", (table,)).fetchone()[0]
    _log(
        f"done in {time.perf_counter() - began:.1f} s; heap {size / 1e6:,.0f} MB "
        f"({size / max(rows, 1):.0f} bytes/row)"
    )


def ensure(url: str, rows: int, table: str = "bench_rows") -> None:
    """Generate ``table`` unless it already holds exactly ``rows`` rows."""
    if table_row_count(url, table) == rows:
        _log(f"{table} already has {rows:,} rows; not regenerating")
        return
    generate(url, rows, table)


def apply_changes(url: str, pct: float, table: str = "bench_rows") -> tuple[int, int]:
    """Touch about ``pct`` % of rows and insert ``pct / 2`` % new ones; return both counts."""
    table = _ident(table)
    if not 0 < pct <= 100:
        raise SystemExit("--changes must be in (0, 100]")
    with _connect(url) as conn:
        count, max_id = conn.execute(f"SELECT count(*), coalesce(max(id), 0) FROM {table}").fetchone()
        # Seeding with max(id) picks different rows each time changes are applied.
        threshold = round(pct * 10_000)  # out of 1,000,000
        updated = conn.execute(
            f"""
            UPDATE {table}
               SET updated_at = localtimestamp,
                   qty = qty + 1,
                   amount = amount + 1,
                   label = 'changed'
             WHERE (hashint8extended(id, %(seed)s) & 9223372036854775807) %% 1000000
                   < %(threshold)s
            """,
            {"seed": max_id, "threshold": threshold},
        ).rowcount
        inserts = round(count * pct / 200)
        if inserts:
            _insert_range(conn, table, max_id + 1, max_id + inserts, "localtimestamp")
        _finish(conn, table)
    _log(f"updated {updated:,} rows, inserted {inserts:,} rows")
    return updated, inserts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="PostgreSQL URL")
    parser.add_argument("--table", default="bench_rows")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--rows", type=int, help="drop, recreate and fill the table")
    mode.add_argument(
        "--changes",
        type=float,
        metavar="PCT",
        help="update ~PCT%% of rows (updated_at=now) and insert PCT/2%% new rows",
    )
    args = parser.parse_args(argv)
    if args.rows is not None:
        generate(args.url, args.rows, args.table)
    else:
        apply_changes(args.url, args.changes, args.table)


if __name__ == "__main__":
    main()
