"""PostgreSQL → Azure landing zones on a real Azurite (Blob API): both formats, both run types,
incremental rounds, the journal beside the store, and two processes writing at once."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import journal, landed, run, write_project
from tests.test_landing_postgres import (
    T0,
    all_null_row,
    assert_landed_equals_source,
    create_typed_table,
    insert_typed,
    typed_row,
)

FORMATS = ["delta", "parquet"]


def azure_store(info, container: str, fmt: str, path: str = "lake") -> dict:
    return {
        "type": "adls",
        "format": fmt,
        "account": info.account,
        "container": container,
        "path": path,
        "endpoint": info.blob_endpoint,
        "credential": "azurite",
    }


def azure_project(
    root: Path, pg_db: str, info, container: str, fmt: str, entities: list, **watermark
) -> Path:
    root = write_project(
        root,
        connections={"db": {"type": "postgres", "url": pg_db}},
        flows={
            "f": {
                "home": {"type": "sql", "connection": "db", "batch_size": 3},
                "store": azure_store(info, container, fmt),
                "run_type": "incremental",
                "watermark": {"watermark_column": "updated_at", **watermark},
                "entities": entities,
            }
        },
    )
    project = yaml.safe_load((root / "hygge.yml").read_text())
    project["credentials"] = {"azurite": {"type": "account_key", "account_key": info.key}}
    (root / "hygge.yml").write_text(yaml.safe_dump(project))
    return root


@pytest.mark.parametrize("fmt", FORMATS)
def test_full_then_three_incremental_rounds_land_exactly(tmp_path, pg_db, azure_container, fmt) -> None:
    """Full load and three incremental rounds (inserts, updates, a tie at the previous maximum) into
    Azurite equal the source in values and types; the journal lives beside the store in the container."""
    info, container = azure_container
    create_typed_table(pg_db, "items", primary_key=True)
    insert_typed(
        pg_db, "items", [typed_row(i, T0 + dt.timedelta(minutes=i)) for i in range(1, 6)] + [all_null_row(6)]
    )
    root = azure_project(tmp_path, pg_db, info, container, fmt, ["items"], primary_key=["id"])

    assert run(root, "f", "items", run_type="full_drop").rows == 6
    assert_landed_equals_source(root, "f", "items", pg_db, "items")
    top = T0 + dt.timedelta(minutes=5)
    rounds = [
        [typed_row(7, top + dt.timedelta(minutes=1)), typed_row(8, top + dt.timedelta(minutes=2))],
        [
            typed_row(2, top + dt.timedelta(minutes=3), variant=1),
            typed_row(3, top + dt.timedelta(minutes=3), variant=1),
        ],
        [typed_row(9, top + dt.timedelta(minutes=3))],  # ties the previous maximum
    ]
    from tests.helpers import pg_execute

    for number, rows in enumerate(rounds):
        if number == 1:
            pg_execute(pg_db, "DELETE FROM items WHERE id IN (2, 3)")
        insert_typed(pg_db, "items", rows)
        result = run(root, "f", "items")
        assert result.status == "success"
        assert_landed_equals_source(root, "f", "items", pg_db, "items")
    entries = journal(root, "f", "items")
    assert [e.status for e in entries] == ["success"] * 4
    assert entries[0].store.startswith(f"{fmt} {info.blob_endpoint}/{container}/lake/items")


@pytest.mark.parametrize("fmt", FORMATS)
def test_full_drop_replaces_on_azure(tmp_path, pg_db, azure_container, fmt) -> None:
    """Repeated full_drops into Azurite leave exactly the source rows (never doubled)."""
    info, container = azure_container
    create_typed_table(pg_db, "items", primary_key=False)
    insert_typed(pg_db, "items", [typed_row(i, T0) for i in range(1, 4)])
    root = azure_project(tmp_path, pg_db, info, container, fmt, ["items"])
    for _ in range(3):
        run(root, "f", "items", run_type="full_drop")
    assert landed(root, "f", "items").num_rows == 3


def test_two_processes_share_one_account_and_journal(tmp_path, pg_db, azure_container) -> None:
    """Two `hygge go` processes landing different entities into one container and one journal at once:
    both succeed, both journal rows are there, and no file of one overwrote the other's."""
    info, container = azure_container
    for table in ("left_t", "right_t"):
        create_typed_table(pg_db, table, primary_key=True)
        insert_typed(pg_db, table, [typed_row(i, T0 + dt.timedelta(seconds=i)) for i in range(1, 40)])
    root = azure_project(
        tmp_path, pg_db, info, container, "parquet", ["left_t", "right_t"], primary_key=["id"]
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "hygge.cli.main", "go", "-p", str(root), "--entity", f"f.{name}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
        )
        for name in ("left_t", "right_t")
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    for name in ("left_t", "right_t"):
        assert landed(root, "f", name).num_rows == 39
        assert [e.status for e in journal(root, "f", name)] == ["success"]


def test_explicit_journal_location_overrides(tmp_path, pg_db, azure_container) -> None:
    """`journal:` in hygge.yml puts the journal in a container of its own choosing, whatever the store."""
    info, container = azure_container
    create_typed_table(pg_db, "items", primary_key=True)
    insert_typed(pg_db, "items", [typed_row(i, T0) for i in range(1, 4)])
    root = azure_project(tmp_path, pg_db, info, container, "delta", ["items"], primary_key=["id"])
    project = yaml.safe_load((root / "hygge.yml").read_text())
    project["journal"] = {
        "path": f"az://{container}/ops/journal",
        "account": info.account,
        "endpoint": info.blob_endpoint,
        "credential": "azurite",
    }
    (root / "hygge.yml").write_text(yaml.safe_dump(project))
    assert run(root, "f", "items", run_type="full_drop").status == "success"

    from hygge.config import load_project
    from hygge.runner import journal_for

    loaded = load_project(root)
    journal_ = journal_for(loaded.select()[0], loaded)
    assert journal_.describe().endswith(f"{container}/ops/journal")
    assert [e.status for e in journal_.entries()] == ["success"]
    from hygge.stores import store_root

    beside_store = store_root(loaded.select()[0], loaded.root).child(".hygge_journal")
    assert beside_store.list() == []
