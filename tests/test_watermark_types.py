"""Every watermark kind (int, bigint, numeric, date, timestamp, timestamptz, text) against the real
PostgreSQL: rows sharing the previous maximum are picked up, nothing is doubled, with and without a key."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from tests.helpers import journal, landed, pg_execute, run, sql_flow, write_project

KINDS = {
    "int4": ("int", lambda i: i),
    "int8": ("int", lambda i: 10_000_000_000 + i),
    "numeric(20,6)": ("decimal", lambda i: Decimal(i) / Decimal(1000)),
    "date": ("date", lambda i: dt.date(2024, 1, 1) + dt.timedelta(days=i)),
    "timestamp": ("datetime", lambda i: dt.datetime(2024, 1, 1, 0, 0, 0, 1) + dt.timedelta(microseconds=i)),
    "timestamptz": (
        "datetime_tz",
        lambda i: (
            dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=2))) + dt.timedelta(microseconds=i)
        ),
    ),
    "text": ("string", lambda i: f"k{i:06d}"),
}


@pytest.mark.parametrize("with_key", [True, False], ids=["key", "no-key"])
@pytest.mark.parametrize("sql_type", list(KINDS))
def test_watermark_kind(tmp_path: Path, pg_db: str, sql_type: str, with_key: bool) -> None:
    """Full load, then a round adding a row equal to the maximum plus newer rows, then an empty round:
    the store equals the source each time and the journal's watermark has the column's kind."""
    kind, value = KINDS[sql_type]
    pg_execute(pg_db, f"CREATE TABLE w (id int {'PRIMARY KEY' if with_key else ''}, wm {sql_type}, v text)")

    def insert(ids: list[int], wm_of=None) -> None:
        for i in ids:
            pg_execute(
                pg_db,
                ("INSERT INTO w VALUES (%s, %s, %s)", (i, value(wm_of if wm_of is not None else i), f"v{i}")),
            )

    insert(list(range(1, 6)))
    root = write_project(
        tmp_path,
        connections={"db": {"type": "postgres", "url": pg_db}},
        flows={
            "f": sql_flow("parquet", ["w"], primary_key=["id"] if with_key else None, watermark_column="wm")
        },
    )
    first = run(root, "f", "w")
    assert first.rows == 5 and first.watermark_after is not None
    insert([6], wm_of=5)  # shares the previous maximum
    insert([7, 8])
    second = run(root, "f", "w")
    assert second.status == "success"
    third = run(root, "f", "w")
    assert third.watermark_after == second.watermark_after
    ids = sorted(landed(root, "f", "w").column("id").to_pylist())
    assert ids == list(range(1, 9)), f"{sql_type}: landed {ids}"
    entries = journal(root, "f", "w")
    assert {e.watermark_type for e in entries} == {kind}
    assert entries[-1].watermark == third.watermark_after
