"""`hygge verify`: landed data reconciled with its source (row count and an order-independent checksum
per column) for Delta, parquet and Open Mirroring stores; the result is journaled as run_type "verify"
and never becomes a watermark source."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from hygge.cli.main import app
from hygge.journal import Entry, Journal, new_id
from hygge.runner import journal_for
from hygge.storage import Storage
from hygge.verify import ColumnChecksum, verify_entity
from tests.helpers import entity_of, journal, load, pg_execute, run, sql_flow, write_project

T0 = dt.datetime(2024, 3, 1, 8, 0, 0, 654321)
COLUMNS = ["id", "amount", "note", "at", "at_tz", "blob", "updated_at"]
STORES = ["delta", "parquet", "open_mirroring"]
cli = CliRunner()


def project(root: Path, pg_db: str, store: str) -> Path:
    flow = sql_flow(store, ["mixed"], primary_key=["id"], watermark_column="updated_at", batch_size=5)
    if store == "open_mirroring":
        flow["store"] = {"type": "open_mirroring", "path": "zone", "folder_deletion_wait_seconds": 0}
    return write_project(root, connections={"db": {"type": "postgres", "url": pg_db}}, flows={"f": flow})


def create(pg_db: str, rows: int = 12) -> None:
    pg_execute(
        pg_db,
        "CREATE TABLE mixed (id int PRIMARY KEY, amount numeric(38,18), note text, at timestamp, "
        "at_tz timestamptz, blob bytea, updated_at timestamp)",
    )
    insert(pg_db, range(1, rows + 1))


def insert(pg_db: str, ids: range) -> None:
    for i in ids:
        pg_execute(
            pg_db,
            (
                "INSERT INTO mixed VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    i,
                    "12345678901234567890.000000000000000001" if i % 3 else "-0.5",
                    None if i % 4 == 0 else ("same" if i % 2 else f"note {i}"),  # NULLs and duplicates
                    T0 + dt.timedelta(days=i),
                    dt.datetime(2024, 1, i % 28 + 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2))),
                    None if i % 5 == 0 else bytes([i, 0, 255]),
                    T0 + dt.timedelta(minutes=i),
                ),
            ),
        )


def verify(root: Path):
    loaded = load(root)
    return verify_entity(loaded, entity_of(loaded, "f", "mixed"))


def last_success(root: Path) -> Entry | None:
    loaded = load(root)
    return journal_for(entity_of(loaded, "f", "mixed"), loaded).last_success("f", "mixed")


def verify_rows(root: Path) -> list[Entry]:
    return [e for e in journal(root, "f", "mixed") if e.run_type == "verify"]


# --- the checksum ---------------------------------------------------------------------------------


def digest(*chunks: list) -> str:
    checksum = ColumnChecksum()
    for chunk in chunks:
        checksum.update(pa.array(chunk, pa.int64()))
    return checksum.digest


def test_checksum_ignores_order_and_chunking_but_counts_duplicates_and_nulls() -> None:
    assert digest([1, 2, 2, None]) == digest([None, 2], [1, 2]) == digest([2], [], [None, 1, 2])
    assert digest([1, 2]) != digest([1, 2, 2])  # a duplicate counts
    assert digest([1, None]) != digest([1])  # so does a NULL
    assert digest([1, 2]) != digest([1, 3])
    strings = ColumnChecksum()
    strings.update(pa.array(["a", None, "b"], pa.large_string()))
    plain = ColumnChecksum()
    plain.update(pa.array(["b", "a", None], pa.string()))
    assert strings.digest == plain.digest


def test_last_success_ignores_verify_rows(tmp_path: Path) -> None:
    """A later successful verify row never replaces the landing run as the watermark source."""
    book = Journal(Storage.at(str(tmp_path / "journal")))

    def entry(run_type: str, minute: int, watermark: str | None) -> Entry:
        at = dt.datetime(2024, 1, 1, 0, minute, tzinfo=dt.UTC)
        return Entry(new_id(), "c", "r", "t", "f", "e", at, at, "success", run_type, 1, watermark=watermark)

    landing = entry("incremental", 1, "2024-01-01T00:00:00")
    book.record(landing)
    book.record(entry("verify", 2, None))
    last = book.last_success("f", "e")
    assert last is not None and last.entity_run_id == landing.entity_run_id


# --- against PostgreSQL ---------------------------------------------------------------------------


@pytest.mark.parametrize("store", STORES)
def test_verify_matches_then_names_the_changed_columns(tmp_path: Path, pg_db: str, store: str) -> None:
    """A landed table verifies; a source change not yet landed shows as exactly the changed columns;
    landing it makes verify pass again; verify rows are journaled and never feed the watermark."""
    create(pg_db)
    root = project(tmp_path, pg_db, store)
    landing = run(root, "f", "mixed", run_type="full_drop")
    assert landing.rows == 12

    result = verify(root)
    assert result.ok, result
    assert (result.source_rows, result.landed_rows) == (12, 12)
    assert [c.name for c in result.columns] == COLUMNS  # no __rowMarker__, source names only
    assert all(c.equal and c.source_checksum == c.landed_checksum for c in result.columns)
    assert result.message == "verify: 12 rows match; columns: all 7 equal"
    [row] = verify_rows(root)
    assert (row.status, row.row_count, row.message) == ("success", 12, result.message)
    assert row.entity_run_id == result.entity_run_id and row.watermark is None
    before = last_success(root)
    assert before is not None and before.entity_run_id == landing.entity_run_id

    pg_execute(
        pg_db, "UPDATE mixed SET note = 'changed', updated_at = updated_at + interval '1 hour' WHERE id = 3"
    )
    result = verify(root)
    assert not result.ok
    assert result.differing == ["note", "updated_at"]
    assert result.message == "verify: 12 rows each; differ: note, updated_at"
    assert [r.status for r in verify_rows(root)] == ["success", "fail"]
    assert last_success(root).entity_run_id == landing.entity_run_id  # type: ignore[union-attr]

    catch_up = run(root, "f", "mixed")  # incremental from the landing run's watermark
    assert catch_up.watermark_before == landing.watermark_after
    # The changed row only: the previous maximum is re-read (the bound is inclusive) but landed unchanged.
    assert catch_up.rows == 1
    assert verify(root).ok


@pytest.mark.parametrize(("store", "left"), [("parquet", 12), ("open_mirroring", 12)])
def test_verify_reports_row_counts_when_a_landed_file_goes_missing(
    tmp_path: Path, pg_db: str, store: str, left: int
) -> None:
    """Deleting the data file an incremental run landed (ids 13-15; id 12, re-read at the inclusive
    bound unchanged, is not landed again) leaves fewer landed rows than the source: the 12 of the
    first load."""
    create(pg_db)
    root = project(tmp_path, pg_db, store)
    run(root, "f", "mixed", run_type="full_drop")
    insert(pg_db, range(13, 16))
    assert run(root, "f", "mixed").rows == 3
    assert verify(root).ok
    folder = tmp_path / ("zone/mixed" if store == "open_mirroring" else "lake/mixed")
    [newest] = [p for p in folder.glob("*.parquet") if 15 in pq.read_table(p).column("id").to_pylist()]
    newest.unlink()

    result = verify(root)
    assert not result.ok
    assert (result.source_rows, result.landed_rows) == (15, left)
    assert result.differing == COLUMNS
    assert result.message == f"verify: source 15 rows, landed {left}; differ: {', '.join(COLUMNS)}"
    last = verify_rows(root)[-1]
    assert (last.status, last.row_count, last.message) == ("fail", left, result.message)


def test_verify_counts_a_source_row_not_yet_landed(tmp_path: Path, pg_db: str) -> None:
    create(pg_db)
    root = project(tmp_path, pg_db, "delta")
    run(root, "f", "mixed", run_type="full_drop")
    pg_execute(pg_db, "DELETE FROM mixed WHERE id = 12")
    result = verify(root)
    assert (result.ok, result.source_rows, result.landed_rows) == (False, 11, 12)
    assert result.message.startswith("verify: source 11 rows, landed 12; differ: ")


# --- the command line -----------------------------------------------------------------------------


def test_cli_exit_codes_and_table(tmp_path: Path, pg_db: str) -> None:
    create(pg_db)
    root = project(tmp_path, pg_db, "open_mirroring")

    before = cli.invoke(app, ["verify", "--project", str(root)])  # nothing landed yet
    assert before.exit_code == 1, before.output
    assert "DIFFER" in before.output

    run(root, "f", "mixed", run_type="full_drop")
    good = cli.invoke(app, ["verify", "-p", str(root), "--flow", "f"])
    assert good.exit_code == 0, good.output
    assert "f.mixed" in good.output and "1 MATCH, 0 DIFFER, 0 ERROR" in good.output and "12" in good.output

    pg_execute(pg_db, "UPDATE mixed SET amount = 1 WHERE id = 1")
    bad = cli.invoke(app, ["verify", "-p", str(root), "--entity", "f.mixed"])
    assert bad.exit_code == 1, bad.output
    assert "DIFFER" in bad.output and "amount" in bad.output

    unknown = cli.invoke(app, ["verify", "-p", str(root), "--flow", "nope"])
    assert unknown.exit_code == 2
    assert "no flow named 'nope'" in unknown.output

    pg_execute(pg_db, "DROP TABLE mixed")  # the source cannot be read: an error row, journaled, exit 1
    broken = cli.invoke(app, ["verify", "-p", str(root)])
    assert broken.exit_code == 1, broken.output
    assert "ERROR" in broken.output
    statuses = [(e.status, e.message or "") for e in verify_rows(root)]
    assert [s for s, _ in statuses] == ["fail", "success", "fail", "fail"]
    assert statuses[-1][1].startswith("verify: ")
