"""SQLite describes a `query:` entity's result as well as it can: through a temporary view.

`PRAGMA table_info` of a view gives each result column's declared type when the column is taken
straight from a table column (the table's declaration, so it is mapped as the table's own column
would be: the same lossless casts), and nothing for an expression, whose type SQLite decides row by
row; for those the caller takes the driver's type. The view lives in the connection's temporary
schema, so a read-only database is never written.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from hygge.errors import SourceError


def describe_query(path: Path, query: str) -> list[tuple[str, str]]:
    """(name, declared type) of each column of `query`'s result; '' where the column is an expression."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            db.execute(f"CREATE TEMP VIEW hygge_describe AS {query}")
            rows = db.execute("PRAGMA temp.table_info(hygge_describe)").fetchall()
    except sqlite3.Error as exc:
        raise SourceError(
            f"SQLite cannot describe the query's result: {exc}",
            hint="the query must be one SELECT usable as a view (no trailing semicolon, no PRAGMA)",
            field="query",
        ) from None
    return [(name, declared or "") for _, name, declared, *_ in rows]
