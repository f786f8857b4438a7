"""Key integrity: duplicate and NULL primary keys in what was read fail the run before anything commits,
on every store and both run types, naming the entity, the key columns, how many and a few samples;
`watermark.dedupe_by` serves sources known to be dirty. Also checked at scale: the fingerprints of a
few million keys, composite keys, and fingerprint collisions that must not count as duplicates."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pyarrow as pa
import pytest

from hygge.changes.integrity import KeyCheck
from hygge.changes.keys import KeyShape
from hygge.errors import SourceError
from tests.convergence import STORES, T0, create, land, landed_rows, listing, project, source
from tests.helpers import journal, pg_execute


def dirty(pg_db: str, rows: int = 10, *, null: bool = False) -> None:
    """`items` without a key constraint, holding two rows for id 3 and two for id 8 (or a NULL id)."""
    create(pg_db, rows, key="")
    if null:
        pg_execute(pg_db, ("INSERT INTO items VALUES (NULL, 'x', 1, %s)", (T0 + dt.timedelta(hours=1),)))
    else:
        pg_execute(
            pg_db,
            ("INSERT INTO items VALUES (3, 'dup', 1, %s)", (T0 + dt.timedelta(hours=1),)),
            ("INSERT INTO items VALUES (8, 'dup', 1, %s)", (T0 + dt.timedelta(hours=2),)),
        )


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("run_type", ["full_drop", "incremental"])
def test_duplicate_keys_fail_before_anything_commits(tmp_path, pg_db, kind, run_type) -> None:
    create(pg_db, 10, key="")
    root = project(tmp_path, pg_db, kind)
    land(root, run_type="full_drop")
    before, files = landed_rows(root), listing(tmp_path, kind)
    pg_execute(
        pg_db,
        ("INSERT INTO items VALUES (3, 'dup', 1, %s)", (T0 + dt.timedelta(hours=1),)),
        ("INSERT INTO items VALUES (3, 'dup2', 1, %s)", (T0 + dt.timedelta(hours=2),)),
        ("INSERT INTO items VALUES (11, 'a', 1, %s)", (T0 + dt.timedelta(hours=1),)),
        ("INSERT INTO items VALUES (11, 'b', 1, %s)", (T0 + dt.timedelta(hours=1),)),
    )
    with pytest.raises(SourceError) as caught:
        land(root, run_type=run_type)
    error = caught.value
    assert "2 primary key value(s) (id) occur more than once" in error.message
    assert "3 (" in error.message and "11 (2 rows)" in error.message
    assert error.context.entity == "items" and error.context.flow == "f"
    assert "dedupe_by" in (error.hint or "")
    assert landed_rows(root) == before and listing(tmp_path, kind) == files  # nothing half-visible
    assert journal(root, "f", "items")[-1].status == "fail"


@pytest.mark.parametrize("kind", STORES)
def test_null_keys_fail_before_anything_commits(tmp_path, pg_db, kind) -> None:
    dirty(pg_db, null=True)
    root = project(tmp_path, pg_db, kind)
    with pytest.raises(SourceError, match=r"1 row\(s\) read have a NULL in the primary key \(id\)"):
        land(root, run_type="full_drop")
    assert landed_rows(root) == []


def test_open_mirroring_full_drop_never_publishes_two_inserts_for_one_key(tmp_path, pg_db) -> None:
    dirty(pg_db)
    root = project(tmp_path, pg_db, "open_mirroring")
    with pytest.raises(SourceError, match="occur more than once"):
        land(root, run_type="full_drop")
    # Open Mirroring data files are <20 digits>.parquet (a journal run object may also start with 0).
    assert not [f for f in (tmp_path / "zone").rglob("*.parquet") if re.fullmatch(r"\d{20}\.parquet", f.name)]


@pytest.mark.parametrize("kind", STORES)
def test_dedupe_by_keeps_the_latest_row_per_key(tmp_path, pg_db, kind) -> None:
    dirty(pg_db)
    root = project(tmp_path, pg_db, kind, watermark={"dedupe_by": "updated_at"})
    land(root, run_type="full_drop")
    rows = landed_rows(root)
    assert [r["id"] for r in rows] == list(range(1, 11))
    assert {r["id"]: r["name"] for r in rows if r["name"] == "dup"}.keys() == {3, 8}
    pg_execute(pg_db, ("INSERT INTO items VALUES (8, 'dup again', 1, %s)", (T0 + dt.timedelta(hours=3),)))
    land(root)
    assert next(r["name"] for r in landed_rows(root) if r["id"] == 8) == "dup again"


def test_composite_keys_name_the_tuple(tmp_path, pg_db) -> None:
    pg_execute(
        pg_db,
        "CREATE TABLE items (id int, name text, amount numeric(12,2), updated_at timestamp)",
        ("INSERT INTO items VALUES (1, 'a', 1, %s), (1, 'a', 2, %s), (1, 'b', 3, %s)", (T0, T0, T0)),
    )
    root = project(tmp_path, pg_db, "delta", watermark={"primary_key": ["id", "name"]})
    with pytest.raises(SourceError, match=r"1 primary key value\(s\) \(id, name\) .* \(1, 'a'\) \(2 rows\)"):
        land(root, run_type="full_drop")


def test_clean_source_lands(tmp_path, pg_db) -> None:
    create(pg_db, 30)
    root = project(tmp_path, pg_db, "parquet")
    land(root, run_type="full_drop")
    assert landed_rows(root) == source(pg_db)


# --- the check itself, at scale -------------------------------------------------------------------


def _batches(table: pa.Table, size: int = 100_000):
    return iter(table.to_batches(max_chunksize=size))


def test_millions_of_integer_keys_exact_and_lean() -> None:
    """Integer keys are their own fingerprints: 3M unique keys pass, one repeat is named exactly."""
    ids = np.random.default_rng(1).permutation(3_000_000).astype(np.int64)
    table = pa.table({"id": ids, "v": np.zeros(len(ids))})
    shape = KeyShape.of(table.schema, ["id"])
    assert sum(b.num_rows for b in KeyCheck(shape).wrap(_batches(table))) == 3_000_000
    repeated = pa.concat_tables([table, table.slice(17, 1)])
    with pytest.raises(SourceError, match=rf"1 primary key value\(s\) .* e\.g\. {ids[17]} \(2 rows\)"):
        list(KeyCheck(shape).wrap(_batches(repeated)))


def test_text_keys_spill_and_collisions_do_not_count() -> None:
    """Text keys are hashed; a forced fingerprint collision (seed-free stand-in) is told apart from a
    real duplicate by reading the spilled keys back."""
    names = pa.array([f"k{i}" for i in range(200_000)])
    table = pa.table({"name": names})
    shape = KeyShape.of(table.schema, ["name"])
    assert not shape.exact
    list(KeyCheck(shape).wrap(_batches(table)))  # unique: passes

    class Colliding(KeyShape):
        def fingerprints(self, keys: pa.Table) -> np.ndarray:  # every key the same fingerprint
            return np.zeros(keys.num_rows, np.uint64)

    colliding = Colliding(shape.names, shape.types, shape.seed)
    list(KeyCheck(colliding).wrap(_batches(table.slice(0, 1000))))  # collisions only: still passes
    doubled = pa.concat_tables([table.slice(0, 1000), table.slice(5, 1)])
    with pytest.raises(SourceError, match=r"e\.g\. 'k5' \(2 rows\)"):
        list(KeyCheck(colliding).wrap(_batches(doubled)))
