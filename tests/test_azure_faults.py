"""Azure faults on a real Azurite: the emulator is stopped in the middle of an upload (parquet, Delta,
Open Mirroring), for good (a clear transient error, nothing half-visible) or briefly (retried)."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest

from hygge.coordinator import Events, run_entities
from hygge.errors import HyggeError, StoreError
from hygge.verify import verify_entity
from tests.helpers import entity_of, journal, landed, load, pg_execute, run, write_project
from tests.test_azure_landing import azure_project


@pytest.fixture(autouse=True)
def _short_leases(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run cut off by the fault cannot always release its entity lease (the store is gone); the
    rerun then waits for it to expire, two minutes by default. Tests use 3 s."""
    monkeypatch.setenv("HYGGE_LEASE_SECONDS", "3")


def test_azurite_stopped_mid_write_then_rerun_lands_exactly(tmp_path, pg_db, azure_container) -> None:
    """Stopping Azurite while a parquet file streams fails the run with a storage error that names the
    location; no data file becomes visible and the journal has no success row. After a restart, the
    rerun lands exactly the source rows."""
    info, container = azure_container
    pg_execute(
        pg_db,
        "CREATE TABLE big (id int PRIMARY KEY, updated_at timestamp, note text)",
        "INSERT INTO big SELECT i, timestamp '2024-01-01' + i * interval '1 second', repeat(md5(i::text), 8) "
        "FROM generate_series(1, 60000) i",
    )
    root = azure_project(tmp_path, pg_db, info, container, "parquet", ["big"], primary_key=["id"])
    flow = root / "flows" / "f" / "flow.yml"
    flow.write_text(flow.read_text().replace("batch_size: 3", "batch_size: 2000"))

    from hygge.runner import RunIds, land_entity

    project = load(root)
    entity = entity_of(project, "f", "big")
    seen = {"rows": 0}

    def stop_half_way(rows: int) -> None:
        seen["rows"] += rows
        if seen["rows"] >= 30000 and info.running:
            info.stop()

    try:
        with pytest.raises(HyggeError) as failure:
            land_entity(project, entity, RunIds("t", "c", "f"), run_type="full_drop", on_rows=stop_half_way)
    finally:
        if not info.running:
            info.start()
    text = str(failure.value)
    assert container in text and "writing" in text and "failed" in text, text
    assert failure.value.transient, "an unreachable endpoint is worth retrying"
    assert info.key not in text
    visible = [n for n in landed(root, "f", "big").column_names] if landed(root, "f", "big").num_rows else []
    assert visible == []
    assert [e for e in journal(root, "f", "big") if e.status == "success"] == []

    result = run(root, "f", "big", run_type="full_drop")
    assert result.rows == 60000
    table = landed(root, "f", "big")
    assert table.num_rows == 60000
    assert sorted(table.column("id").to_pylist()) == list(range(1, 60001))
    assert table.schema.field("updated_at").type.unit == "us"
    assert max(table.column("updated_at").to_pylist()) == dt.datetime(2024, 1, 1) + dt.timedelta(
        seconds=60000
    )


@pytest.fixture
def short_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """object_store gives up after one retry, so an outage surfaces in seconds rather than a minute."""
    from hygge.storage import objects

    monkeypatch.setattr(objects, "_RETRY", {"max_retries": 1, "retry_timeout": dt.timedelta(seconds=5)})


def open_mirroring_project(tmp_path, pg_db: str, info, container: str) -> Path:
    """PostgreSQL → an Open Mirroring LandingZone in an Azurite container (no drop wait)."""
    root = write_project(
        tmp_path,
        connections={"db": {"type": "postgres", "url": pg_db}},
        flows={
            "f": {
                "home": {"type": "sql", "connection": "db", "batch_size": 2000},
                "store": {
                    "type": "open_mirroring",
                    "path": f"az://{container}/db/Files/LandingZone",
                    "account": info.account,
                    "endpoint": info.blob_endpoint,
                    "credential": {"type": "account_key", "account_key": info.key},
                    "folder_deletion_wait_seconds": 0,
                },
                "run_type": "full_drop",
                "watermark": {"primary_key": ["id"], "watermark_column": "updated_at"},
                "entities": ["big"],
            }
        },
    )
    return root


def big_source(pg_db: str) -> None:
    pg_execute(
        pg_db,
        "CREATE TABLE big (id int PRIMARY KEY, updated_at timestamp, note text)",
        "INSERT INTO big SELECT i, timestamp '2024-01-01' + i * interval '1 second', repeat(md5(i::text), 8) "
        "FROM generate_series(1, 60000) i",
    )


def store_project(tmp_path, pg_db: str, info, container: str, fmt: str) -> Path:
    if fmt == "open_mirroring":
        return open_mirroring_project(tmp_path, pg_db, info, container)
    root = azure_project(tmp_path, pg_db, info, container, fmt, ["big"], primary_key=["id"])
    flow = root / "flows" / "f" / "flow.yml"
    flow.write_text(flow.read_text().replace("batch_size: 3", "batch_size: 2000"))
    return root


@pytest.mark.parametrize("fmt", ["delta", "open_mirroring"])
def test_azurite_stopped_mid_upload_leaves_nothing_half_visible(
    tmp_path, pg_db, azure_container, short_retries, fmt: str
) -> None:
    """Delta and Open Mirroring as the parquet test above: a transient StoreError naming the location,
    flow and entity; no row visible and no success row; after the restart a rerun lands exactly."""
    info, container = azure_container
    big_source(pg_db)
    root = store_project(tmp_path, pg_db, info, container, fmt)
    project = load(root)
    seen = {"rows": 0}

    def stop_half_way(rows: int) -> None:
        seen["rows"] += rows
        if seen["rows"] >= 30000 and info.running:
            info.stop()

    from hygge.runner import RunIds, land_entity

    try:
        with pytest.raises(HyggeError) as failure:
            land_entity(project, entity_of(project, "f", "big"), RunIds("t", "c", "f"), on_rows=stop_half_way)
    finally:
        if not info.running:
            info.start()
    text = str(failure.value)
    assert isinstance(failure.value, StoreError), repr(failure.value)
    assert container in text and "flow 'f'" in text and "entity 'big'" in text, text
    assert failure.value.transient, text
    assert info.key not in text
    assert landed(root, "f", "big").num_rows == 0
    assert [e for e in journal(root, "f", "big") if e.status == "success"] == []
    assert run(root, "f", "big", run_type="full_drop").rows == 60000
    verified = verify_entity(load(root), entity_of(load(root), "f", "big"))
    assert verified.ok, verified.message


@pytest.mark.parametrize("fmt", ["parquet", "delta", "open_mirroring"])
def test_short_azurite_outage_mid_upload_is_retried(
    tmp_path, pg_db, azure_container, short_retries, monkeypatch, fmt: str
) -> None:
    """Azurite goes away mid-upload and is back a moment later: `hygge go`'s coordinator retries the
    transient failure and the run succeeds with exactly the source rows."""
    monkeypatch.setenv("HYGGE_TASK_RETRY_DELAY_SECONDS", "3")
    monkeypatch.setenv("HYGGE_TASK_RETRY_JITTER", "0")
    info, container = azure_container
    big_source(pg_db)
    root = store_project(tmp_path, pg_db, info, container, fmt)
    project = load(root)
    seen = {"rows": 0, "stopped": False}
    restarts: list[threading.Thread] = []
    attempts: list[str] = []
    from hygge import coordinator

    def counted(*args, **kwargs):
        attempts.append("attempt")
        return real_land(*args, **kwargs)

    real_land = coordinator.land_entity
    monkeypatch.setattr(coordinator, "land_entity", counted)

    def outage(entity, rows: int) -> None:
        seen["rows"] += rows
        if seen["rows"] >= 30000 and not seen["stopped"]:
            seen["stopped"] = True
            info.stop()
            restart = threading.Timer(1.0, info.start)
            restart.start()
            restarts.append(restart)

    try:
        summary = run_entities(project, project.select(), events=Events(rows=outage))
    finally:
        for restart in restarts:
            restart.join()
        if not info.running:
            info.start()
    assert seen["stopped"]
    assert summary.ok, [r.message for r in summary.results]
    assert len(attempts) == 2, "the outage failed the first attempt and the coordinator retried it"
    verified = verify_entity(load(root), entity_of(load(root), "f", "big"))
    assert verified.ok, verified.message


@pytest.mark.parametrize("fmt", ["parquet", "delta"])
def test_storage_away_while_an_upsert_reads_its_landed_files_is_retried(
    tmp_path, pg_db, azure_container, short_retries, monkeypatch, fmt: str
) -> None:
    """A keyed incremental rewrites the landed files holding changed keys; Azurite goes away as it starts
    reading them and is back 4 s later (past object_store's own retries): the failure is transient, the coordinator retries it, and
    the store equals the source (it failed at once as a permanent error before)."""
    monkeypatch.setenv("HYGGE_TASK_RETRY_DELAY_SECONDS", "3")
    monkeypatch.setenv("HYGGE_TASK_RETRY_JITTER", "0")
    info, container = azure_container
    big_source(pg_db)
    root = store_project(tmp_path, pg_db, info, container, fmt)
    assert run(root, "f", "big", run_type="full_drop").rows == 60000
    pg_execute(pg_db, "UPDATE big SET note = 'changed', updated_at = timestamp '2030-01-01' WHERE id % 1000 = 0")
    from hygge import coordinator
    from hygge.stores import rewrite

    attempts: list[str] = []
    restarts: list[threading.Thread] = []
    real_land, real_files = coordinator.land_entity, rewrite.changed_files

    def counted(*args, **kwargs):
        attempts.append("attempt")
        return real_land(*args, **kwargs)

    def away_while_reading(*args, **kwargs):
        if not restarts:
            info.stop()
            restart = threading.Timer(4.0, info.start)
            restart.start()
            restarts.append(restart)
        return real_files(*args, **kwargs)

    monkeypatch.setattr(coordinator, "land_entity", counted)
    monkeypatch.setattr(f"hygge.stores.{fmt}.changed_files", away_while_reading)
    project = load(root)
    try:
        summary = run_entities(project, project.select())
    finally:
        for restart in restarts:
            restart.join()
        if not info.running:
            info.start()
    assert restarts, "the rewrite never read landed files"
    assert summary.ok, [r.message for r in summary.results]
    # Retried until Azurite was back (a second retry when its restart outlasts the 3 s pause).
    assert len(attempts) >= 2, "the outage failed the first attempt and the coordinator retried it"
    verified = verify_entity(load(root), entity_of(load(root), "f", "big"))
    assert verified.ok, verified.message
