"""End-to-end landing against a real PostgreSQL (and SQLite) through `land_entity`, into Delta and parquet.

Every test builds a project on disk (hygge.yml + flows/<flow>/flow.yml), sets up source data with
psycopg (or sqlite3), lands it with `hygge.runner.land_entity`, and compares what the store shows with
the source, value by value and Arrow type by Arrow type, plus what the journal recorded.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from helpers import (
    STORE_TYPES,
    journal,
    landed,
    pg_execute,
    pg_rows,
    row_sort_key,
    run,
    sql_flow,
    statuses,
    write_project,
)

import hygge.journal
from hygge.errors import ConfigError, HyggeError, SourceError

UTC = dt.UTC
T0 = dt.datetime(2024, 1, 1, 8, 0, 0, 250000)

# --- the all-types table ----------------------------------------------------------------------

TYPED_COLUMNS = """
    c_int2 int2, c_int4 int4, c_int8 int8,
    c_num18 numeric(18,4), c_num38 numeric(38,18),
    c_text text, c_varchar varchar(40), c_bool boolean, c_date date,
    c_ts timestamp, c_tstz timestamptz, c_uuid uuid, c_bytea bytea, c_jsonb jsonb,
    updated_at timestamp
"""

EXPECTED_TYPES = {
    "id": pa.int64(),
    "c_int2": pa.int16(),
    "c_int4": pa.int32(),
    "c_int8": pa.int64(),
    "c_num18": pa.decimal128(18, 4),
    "c_num38": pa.decimal128(38, 18),
    "c_text": pa.string(),
    "c_varchar": pa.string(),
    "c_bool": pa.bool_(),
    "c_date": pa.date32(),
    "c_ts": pa.timestamp("us"),
    "c_tstz": pa.timestamp("us", tz="UTC"),
    "c_uuid": pa.string(),
    "c_bytea": pa.binary(),
    "c_jsonb": pa.string(),
    "updated_at": pa.timestamp("us"),
}

INSERT_TYPED = (
    "INSERT INTO {table} (id, c_int2, c_int4, c_int8, c_num18, c_num38, c_text, c_varchar, c_bool, "
    "c_date, c_ts, c_tstz, c_uuid, c_bytea, c_jsonb, updated_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)"
)


def typed_row(i: int, updated_at: dt.datetime | None, *, variant: int = 0) -> tuple[Any, ...]:
    """Row `i` of the all-types table; `variant` changes every non-key value (for updates)."""
    v = i + 1000 * variant
    sign = -1 if i % 2 else 1
    return (
        i,
        sign * (32767 - v % 100),
        sign * (2_147_483_647 - v),
        sign * (9_223_372_036_854_775_807 - v),
        Decimal(sign * (99_999_999_999_999 - v)) + Decimal("0.9999") * sign,
        # 38 significant digits: 20 before the point, 18 after.
        Decimal(f"{sign * (12345678901234567890 + v)}.123456789012345678"),
        f"row {v}: æøå \"quoted\" 'single' \\ back\nnewline",
        f"v{v}",
        bool(v % 2),
        dt.date(1900 + v % 200, 2, 28),
        dt.datetime(2024, 2, 29, 23, 59, 59, 999999) - dt.timedelta(days=v),
        dt.datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
        + dt.timedelta(minutes=v),
        uuid.UUID(int=v * 7919 + 1),
        bytes([0, 255, v % 256, 10, 13]),
        # A number no float can hold, and a trailing zero: the landed text must keep both.
        f'{{"n": {v}, "big": 12345678901234567890123.1234567890{v}, "f": 1.10, "s": "x"}}',
        updated_at,
    )


def all_null_row(i: int) -> tuple[Any, ...]:
    return (i, *([None] * 15))


def create_typed_table(url: str, table: str, *, primary_key: bool) -> None:
    key = "id int8 PRIMARY KEY" if primary_key else "id int8 NOT NULL"
    pg_execute(url, f"CREATE TABLE {table} ({key}, {TYPED_COLUMNS})")


def insert_typed(url: str, table: str, rows: list[tuple[Any, ...]]) -> None:
    pg_execute(url, *[(INSERT_TYPED.format(table=table), row) for row in rows])


def source_rows(url: str, table: str) -> tuple[list[str], list[dict[str, Any]]]:
    """The source table read with psycopg, normalised to what hygge lands for uuid and jsonb.

    jsonb is compared as PostgreSQL's own text of the value (read alongside as `c_jsonb::text`), so
    any re-serialisation that changes a number would show.
    """
    names, rows = pg_rows(url, f"SELECT *, c_jsonb::text AS jsonb_text FROM {table}")
    result = []
    for row in rows:
        text = row.pop("jsonb_text")
        row["c_uuid"] = str(row["c_uuid"]) if row["c_uuid"] is not None else None
        row["c_jsonb"] = text
        result.append(row)
    names.remove("jsonb_text")
    return names, sorted(result, key=lambda r: (r["id"], row_sort_key(r)))


def assert_landed_equals_source(root: Path, flow: str, entity: str, url: str, table: str) -> list[dict]:
    """Landed rows == source rows (as a multiset, ordered by id), with the exact Arrow types."""
    names, expected = source_rows(url, table)
    got = landed(root, flow, entity)
    assert got.column_names == names
    for name in names:
        assert got.schema.field(name).type == EXPECTED_TYPES[name], name
    rows = sorted(got.to_pylist(), key=lambda r: (r["id"], row_sort_key(r)))
    assert len(rows) == len(expected)
    for got_row, want_row in zip(rows, expected, strict=True):
        assert got_row == want_row, f"row id {want_row['id']}"
    return rows


def typed_project(tmp_path: Path, pg_db: str, store_type: str, table: str, *, primary_key: bool) -> Path:
    return write_project(
        tmp_path / "project",
        connections={"db": {"type": "postgres", "url": pg_db}},
        flows={
            "f": sql_flow(
                store_type,
                [table],
                primary_key=["id"] if primary_key else None,
                batch_size=3,
            )
        },
    )


def successes(root: Path, flow: str, entity: str) -> list[hygge.journal.Entry]:
    return [e for e in journal(root, flow, entity) if e.status == "success"]


# --- 1. all types, primary key, full + three incremental rounds -------------------------------


@pytest.mark.parametrize("store_type", STORE_TYPES)
def test_all_types_full_then_incremental_with_primary_key(
    tmp_path: Path, pg_db: str, store_type: str
) -> None:
    """Every PostgreSQL type lands with its exact value and Arrow type (NULLs included), and three
    incremental rounds (inserts; updates bumping updated_at; a row tying the previous maximum) leave the
    store equal to the source: updated rows merged, not duplicated, and the tie row picked up."""
    create_typed_table(pg_db, "items", primary_key=True)
    insert_typed(
        pg_db,
        "items",
        [typed_row(i, T0 + dt.timedelta(minutes=i)) for i in range(1, 6)] + [all_null_row(6)],
    )
    root = typed_project(tmp_path, pg_db, store_type, "items", primary_key=True)

    result = run(root, "f", "items", run_type="full_drop")
    assert result.status == "success" and result.rows == 6
    assert_landed_equals_source(root, "f", "items", pg_db, "items")
    assert successes(root, "f", "items")[-1].watermark == (T0 + dt.timedelta(minutes=5)).isoformat(
        timespec="microseconds"
    )

    # Round 1: new rows.
    insert_typed(pg_db, "items", [typed_row(i, T0 + dt.timedelta(hours=1, minutes=i)) for i in (7, 8)])
    run(root, "f", "items")
    assert_landed_equals_source(root, "f", "items", pg_db, "items")

    # Round 2: updates bumping updated_at (one old row, one row from round 1), every value changed.
    for i in (2, 7):
        row = typed_row(i, T0 + dt.timedelta(hours=2, minutes=i), variant=1)
        pg_execute(pg_db, ("DELETE FROM items WHERE id = %s", (i,)))
        insert_typed(pg_db, "items", [row])
    pg_execute(
        pg_db,
        (
            "UPDATE items SET c_text = 'updated', updated_at = %s WHERE id = 3",
            (T0 + dt.timedelta(hours=2, minutes=30),),
        ),
    )
    run(root, "f", "items")
    rows = assert_landed_equals_source(root, "f", "items", pg_db, "items")
    previous_max = T0 + dt.timedelta(hours=2, minutes=30)
    assert successes(root, "f", "items")[-1].watermark == previous_max.isoformat(timespec="microseconds")

    # Round 3: a new row whose updated_at equals the previous maximum exactly.
    insert_typed(pg_db, "items", [typed_row(9, previous_max, variant=2)])
    result = run(root, "f", "items")
    rows = assert_landed_equals_source(root, "f", "items", pg_db, "items")
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert rows[8]["updated_at"] == previous_max
    assert result.watermark_before == previous_max.isoformat(timespec="microseconds")
    assert statuses(journal(root, "f", "items")) == ["success"] * 4


# --- 2. no primary key: append-only, ties at the previous maximum -----------------------------


@pytest.mark.parametrize("store_type", STORE_TYPES)
def test_append_only_without_primary_key_keeps_ties_and_never_doubles(
    tmp_path: Path, pg_db: str, store_type: str
) -> None:
    """Without a primary key, insert-only rounds (new rows, rows equal to the previous maximum
    updated_at, and an exact copy of a row already landed at that maximum) land every source row exactly
    once: the inclusive re-read of the maximum is removed again as a multiset."""
    create_typed_table(pg_db, "events", primary_key=False)
    insert_typed(
        pg_db,
        "events",
        [typed_row(i, T0 + dt.timedelta(minutes=min(i, 4))) for i in range(1, 6)] + [all_null_row(6)],
    )
    root = typed_project(tmp_path, pg_db, store_type, "events", primary_key=False)

    run(root, "f", "events", run_type="full_drop")
    assert_landed_equals_source(root, "f", "events", pg_db, "events")
    max1 = T0 + dt.timedelta(minutes=4)  # rows 4 and 5 share it

    # Round 1: one row tying the maximum, one later row.
    insert_typed(pg_db, "events", [typed_row(7, max1, variant=1), typed_row(8, max1 + dt.timedelta(hours=1))])
    result = run(root, "f", "events")
    assert result.rows == 2
    assert_landed_equals_source(root, "f", "events", pg_db, "events")
    max2 = max1 + dt.timedelta(hours=1)

    # Round 2: nothing new at all.
    result = run(root, "f", "events")
    assert result.rows == 0
    assert_landed_equals_source(root, "f", "events", pg_db, "events")

    # Round 3: an exact duplicate of the row already landed at the maximum, plus two more tie rows.
    insert_typed(
        pg_db,
        "events",
        [typed_row(8, max2), typed_row(9, max2, variant=3), typed_row(10, max2, variant=4)],
    )
    result = run(root, "f", "events")
    assert result.rows == 3
    rows = assert_landed_equals_source(root, "f", "events", pg_db, "events")
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 10]
    assert statuses(journal(root, "f", "events")) == ["success"] * 4


# --- 3. SQLite through the same SQL home ------------------------------------------------------


@pytest.mark.parametrize("store_type", STORE_TYPES)
def test_sqlite_full_and_incremental(tmp_path: Path, store_type: str) -> None:
    """A SQLite file lands through the same SQL home with declared types honoured, and an incremental
    run picks up inserts, updates and a row tying the previous maximum without duplicates."""
    db = tmp_path / "src.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price NUMERIC(10,2), "
            "score REAL, flag BOOLEAN, day DATE, payload BLOB, updated_at DATETIME)"
        )
        conn.executemany(
            "INSERT INTO things VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (1, "one", 10, "12.50", 1.5, 1, "2024-01-01", b"\x00\x01", "2024-01-01 10:00:00"),
                (2, "twø", -3, "99999999.99", -0.25, 0, "1999-12-31", b"\xff", "2024-01-01 11:00:00"),
                (3, None, None, None, None, None, None, None, None),
            ],
        )
    root = write_project(
        tmp_path / "project",
        connections={"lite": {"type": "sqlite", "path": str(db)}},
        flows={"f": sql_flow(store_type, ["things"], connection="lite", primary_key=["id"], batch_size=2)},
    )

    def expected() -> list[dict[str, Any]]:
        with sqlite3.connect(db) as conn:
            raw = conn.execute(
                "SELECT id, name, qty, CAST(price AS TEXT), score, flag, day, payload, updated_at "
                "FROM things ORDER BY id"
            ).fetchall()
        return [
            {
                "id": r[0],
                "name": r[1],
                "qty": r[2],
                "price": None if r[3] is None else Decimal(r[3]),
                "score": r[4],
                "flag": None if r[5] is None else bool(r[5]),
                "day": None if r[6] is None else dt.date.fromisoformat(r[6]),
                "payload": r[7],
                "updated_at": None if r[8] is None else dt.datetime.fromisoformat(r[8]),
            }
            for r in raw
        ]

    types = {
        "id": pa.int64(),
        "name": pa.string(),
        "qty": pa.int64(),
        "price": pa.decimal128(10, 2),
        "score": pa.float64(),
        "flag": pa.bool_(),
        "day": pa.date32(),
        "payload": pa.binary(),
        "updated_at": pa.timestamp("us"),
    }

    def check() -> None:
        got = landed(root, "f", "things")
        assert {f.name: f.type for f in got.schema} == types
        assert sorted(got.to_pylist(), key=lambda r: r["id"]) == expected()

    result = run(root, "f", "things", run_type="full_drop")
    assert result.rows == 3
    check()

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE things SET qty = 11, updated_at = '2024-01-02 09:00:00' WHERE id = 1")
        conn.execute(
            "INSERT INTO things VALUES (4, 'four', 4, '0.01', 4.0, 1, '2024-02-02', x'0a', "
            "'2024-01-02 08:00:00')"
        )
    run(root, "f", "things")
    check()

    with sqlite3.connect(db) as conn:  # ties the previous maximum exactly
        conn.execute(
            "INSERT INTO things VALUES (5, 'five', 5, '5.55', 5.5, 0, '2024-03-03', x'0b', "
            "'2024-01-02 09:00:00')"
        )
    result = run(root, "f", "things")
    assert result.watermark_before == "2024-01-02T09:00:00.000000"
    check()
    assert [r["id"] for r in landed(root, "f", "things").to_pylist()].count(1) == 1
    assert statuses(journal(root, "f", "things")) == ["success"] * 3


@pytest.mark.parametrize("store_type", STORE_TYPES)
def test_sqlite_append_only_with_subsecond_watermarks(tmp_path: Path, store_type: str) -> None:
    """SQLite compares date/time text, so hygge reads from the previous maximum floored to the second;
    without a primary key, the rows re-read from that second (below the maximum, and at it) must not land
    twice, while a new row tying the maximum still lands."""
    db = tmp_path / "src.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE log (id INTEGER, note TEXT, updated_at DATETIME)")
        conn.executemany(
            "INSERT INTO log VALUES (?, ?, ?)",
            [
                (1, "a", "2024-01-02 09:29:59.900000"),
                (2, "b", "2024-01-02 09:30:00.100000"),
                (3, "c", "2024-01-02 09:30:00.500000"),
            ],
        )
    root = write_project(
        tmp_path / "project",
        connections={"lite": {"type": "sqlite", "path": str(db)}},
        flows={"f": sql_flow(store_type, ["log"], connection="lite", batch_size=2)},
    )

    def check() -> None:
        with sqlite3.connect(db) as conn:
            raw = conn.execute("SELECT id, note, updated_at FROM log").fetchall()
        want = sorted((i, n, dt.datetime.fromisoformat(u)) for i, n, u in raw)
        got = sorted((r["id"], r["note"], r["updated_at"]) for r in landed(root, "f", "log").to_pylist())
        assert got == want

    run(root, "f", "log", run_type="full_drop")
    check()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO log VALUES (4, 'tie', '2024-01-02 09:30:00.500000')")
        conn.execute("INSERT INTO log VALUES (5, 'later', '2024-01-02 09:30:00.700000')")
    assert run(root, "f", "log").rows == 2
    check()
    assert run(root, "f", "log").rows == 0
    check()


# --- 4. a failure in the middle of the stream -------------------------------------------------


@pytest.mark.parametrize("store_type", STORE_TYPES)
def test_failure_mid_stream_leaves_store_unchanged(tmp_path: Path, pg_db: str, store_type: str) -> None:
    """A value that cannot be cast to the pinned type in the second batch (after the first batch has
    streamed into the store) fails the run loudly, naming the column: the store shows nothing new (empty
    on a first load, the previous rows on an incremental run), the journal gets a `fail` row and no new
    `success`; once the data is fixed the next run lands it cleanly."""
    pg_execute(
        pg_db,
        "CREATE TABLE amounts (id int4 PRIMARY KEY, amount numeric(18,4), updated_at timestamp)",
        (
            # Row 3 does not fit decimal(10,2). Inserted in id order, so batches of 2 are [1, 2], [3, 4], [5].
            "INSERT INTO amounts SELECT g, CASE WHEN g = 3 THEN 123456789.5 ELSE g * 1.25 END, "
            "%s + g * interval '1 minute' FROM generate_series(1, 5) g",
            (T0,),
        ),
    )
    root = write_project(
        tmp_path / "project",
        connections={"db": {"type": "postgres", "url": pg_db}},
        flows={
            "f": sql_flow(
                store_type,
                [{"name": "amounts", "columns": {"amount": "decimal(10,2)"}}],
                primary_key=["id"],
                batch_size=2,
            )
        },
    )

    def source() -> list[dict[str, Any]]:
        return sorted(pg_rows(pg_db, "SELECT * FROM amounts")[1], key=lambda r: r["id"])

    # First load: batch [1, 2] streams, batch [3, 4] fails.
    with pytest.raises(SourceError) as info:
        run(root, "f", "amounts")
    assert "entity 'amounts'" in str(info.value) and "field 'amount'" in str(info.value)
    assert landed(root, "f", "amounts").num_rows == 0
    assert statuses(journal(root, "f", "amounts")) == ["fail"]
    assert journal(root, "f", "amounts")[0].row_count == 2  # the first batch had passed through

    pg_execute(pg_db, "UPDATE amounts SET amount = 3.75 WHERE id = 3")
    assert run(root, "f", "amounts").rows == 5
    got = landed(root, "f", "amounts")
    assert got.schema.field("amount").type == pa.decimal128(10, 2)
    assert sorted(got.to_pylist(), key=lambda r: r["id"]) == source()
    assert statuses(journal(root, "f", "amounts")) == ["fail", "success"]

    # Incremental: batch [5 (ties the maximum), 6] streams, batch [7, 8] fails (row 1's update comes last).
    pg_execute(
        pg_db,
        (
            "INSERT INTO amounts SELECT g, CASE WHEN g = 8 THEN 99999999999.0 ELSE g END, "
            "%s + g * interval '1 minute' FROM generate_series(6, 9) g",
            (T0,),
        ),
        ("UPDATE amounts SET amount = 0.5, updated_at = %s WHERE id = 1", (T0 + dt.timedelta(minutes=7),)),
    )
    before = sorted(landed(root, "f", "amounts").to_pylist(), key=lambda r: r["id"])
    with pytest.raises(SourceError):
        run(root, "f", "amounts")
    assert sorted(landed(root, "f", "amounts").to_pylist(), key=lambda r: r["id"]) == before
    assert statuses(journal(root, "f", "amounts")) == ["fail", "success", "fail"]
    # The first batch had passed through: row 6 (row 5, re-read at the boundary unchanged, is dropped).
    assert journal(root, "f", "amounts")[-1].row_count == 1

    pg_execute(pg_db, "UPDATE amounts SET amount = 8 WHERE id = 8")
    run(root, "f", "amounts")
    got = landed(root, "f", "amounts")
    assert sorted(got.to_pylist(), key=lambda r: r["id"]) == source()
    assert statuses(journal(root, "f", "amounts")) == ["fail", "success", "fail", "success"]


# --- 5. a crash between the store commit and the journal write --------------------------------


@pytest.mark.parametrize("store_type", STORE_TYPES)
def test_crash_between_commit_and_journal_is_recovered_without_duplicates(
    tmp_path: Path, pg_db: str, store_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the process dies after the store committed but before the journal recorded the run, the next
    incremental run (no primary key, so nothing would merge duplicates away) records the commit from the
    store ("recovered ...") and reads on from what landed: every source row is in the store exactly once."""
    pg_execute(
        pg_db,
        "CREATE TABLE log (id int4, note text, updated_at timestamp)",
        (
            "INSERT INTO log SELECT g, 'n' || g, %s + g * interval '1 minute' FROM generate_series(1, 4) g",
            (T0,),
        ),
    )
    root = write_project(
        tmp_path / "project",
        connections={"db": {"type": "postgres", "url": pg_db}},
        flows={"f": sql_flow(store_type, ["log"], batch_size=2)},
    )

    def check() -> None:
        want = sorted(pg_rows(pg_db, "SELECT * FROM log")[1], key=lambda r: (r["id"], r["note"]))
        got = sorted(landed(root, "f", "log").to_pylist(), key=lambda r: (r["id"], r["note"]))
        assert got == want

    run(root, "f", "log", run_type="full_drop")
    check()

    pg_execute(
        pg_db,
        (
            "INSERT INTO log VALUES (5, 'tie', %s), (6, 'later', %s), (7, 'later', %s)",
            (T0 + dt.timedelta(minutes=4), T0 + dt.timedelta(minutes=10), T0 + dt.timedelta(minutes=10)),
        ),
    )
    original = hygge.journal.Journal.record
    crashed: list[str] = []

    def crash_once(self: hygge.journal.Journal, entry: hygge.journal.Entry) -> None:
        if entry.status == "success" and not crashed:
            crashed.append(entry.entity_run_id)
            raise RuntimeError("simulated crash before the journal write")
        original(self, entry)

    monkeypatch.setattr(hygge.journal.Journal, "record", crash_once)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(root, "f", "log")
    monkeypatch.setattr(hygge.journal.Journal, "record", original)
    check()  # the store did commit
    assert statuses(journal(root, "f", "log")) == ["success"]

    # Rerun with nothing new at the source: nothing is read twice.
    run(root, "f", "log")
    check()
    entries = journal(root, "f", "log")
    recovered = [e for e in entries if e.entity_run_id == crashed[0]]
    assert len(recovered) == 1
    assert recovered[0].status == "success"
    assert recovered[0].message.startswith("recovered")
    assert recovered[0].watermark == (T0 + dt.timedelta(minutes=10)).isoformat(timespec="microseconds")

    # And the run after that reads on from there, ties included.
    pg_execute(
        pg_db,
        ("INSERT INTO log VALUES (8, 'tie again', %s)", (T0 + dt.timedelta(minutes=10),)),
    )
    assert run(root, "f", "log").rows == 1
    check()
    assert len(landed(root, "f", "log")) == 8


# --- 6. bad input ------------------------------------------------------------------------------

BAD_INPUTS = {
    # case: (entity item in flow.yml, flow watermark settings, error type, field named)
    "missing table": ({"name": "ghost"}, {"watermark_column": "updated_at"}, SourceError, "table"),
    "missing watermark column": (
        {"name": "good"},
        {"watermark_column": "changed_on"},
        ConfigError,
        "watermark.watermark_column",
    ),
    "boolean watermark column": (
        {"name": "good"},
        {"watermark_column": "flag"},
        ConfigError,
        "watermark.watermark_column",
    ),
    "missing primary key column": (
        {"name": "good"},
        {"primary_key": ["code"], "watermark_column": "updated_at"},
        ConfigError,
        "watermark.primary_key",
    ),
}


@pytest.mark.parametrize("store_type", STORE_TYPES)
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_names_flow_entity_and_field(
    tmp_path: Path, pg_db: str, store_type: str, case: str
) -> None:
    """A missing table, a missing or unusable watermark column, or a primary key the source lacks each
    raise one specific HyggeError subclass whose message names the flow, the entity and the field, and
    nothing lands (the journal records the failure, no success)."""
    item, watermark, error_type, field = BAD_INPUTS[case]
    pg_execute(
        pg_db,
        "CREATE TABLE good (id int4 PRIMARY KEY, flag boolean, updated_at timestamp)",
        ("INSERT INTO good VALUES (1, true, %s), (2, false, %s)", (T0, T0)),
    )
    flow = sql_flow(store_type, [item])
    flow["watermark"] = watermark
    root = write_project(
        tmp_path / "project",
        connections={"db": {"type": "postgres", "url": pg_db}},
        flows={"sales": flow},
    )
    entity = item["name"]
    with pytest.raises(HyggeError) as info:
        run(root, "sales", entity)
    error = info.value
    assert type(error) is error_type
    text = str(error)
    assert "flow 'sales'" in text
    assert f"entity '{entity}'" in text
    assert f"field '{field}'" in text
    assert landed(root, "sales", entity).num_rows == 0
    assert statuses(journal(root, "sales", entity)) == ["fail"]
