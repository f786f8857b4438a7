"""Dependency faults: the PostgreSQL backend is terminated mid-stream, and the local store's disk fills.

Each fault must give one clear HyggeError with the flow and entity, be retried when retrying can help,
leave nothing half-visible (no data file, no success row), and a rerun must land exactly the source.
(Azurite stopped mid-upload is in tests/test_azure_faults.py.)
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hygge import faults
from hygge.coordinator import Events, run_entities
from hygge.errors import HyggeError, SourceError, StoreError
from hygge.runner import RunIds, land_entity
from hygge.verify import verify_entity
from tests.helpers import entity_of, journal, landed, load, pg_execute, sql_flow, write_project

ROWS = 200_000


@pytest.fixture(autouse=True)
def _short_leases(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run cut off by the fault cannot always release its entity lease (the store is gone); the
    rerun then waits for it to expire, two minutes by default. Tests use 3 s."""
    monkeypatch.setenv("HYGGE_LEASE_SECONDS", "3")


def big_table(pg_db: str, rows: int = ROWS, paced: bool = False) -> None:
    """A table whose stream outlasts connectorx's read-ahead: hex text does not compress. `paced`: `big`
    is a view over the rows that pauses 0.1 s every 20,000 rows, so the server is still sending when
    the first batch lands however busy the machine is (a fault test must find a backend to end)."""
    name = "big_rows" if paced else "big"
    pg_execute(
        pg_db,
        f"CREATE TABLE {name} (id int PRIMARY KEY, updated_at timestamp, note text)",
        f"INSERT INTO {name} SELECT i, timestamp '2024-01-01' + i * interval '1 second', "
        f"md5(i::text) || md5((-i)::text) FROM generate_series(1, {rows}) i",
    )
    if paced:
        pg_execute(
            pg_db,
            "CREATE VIEW big AS SELECT id, updated_at, note FROM big_rows "
            "WHERE CASE WHEN id % 20000 = 0 THEN pg_sleep(0.1) IS NOT NULL ELSE true END",
        )


def project(root: Path, pg_db: str, store_type: str = "parquet", batch_size: int = 2000) -> Path:
    return write_project(
        root,
        connections={"db": {"type": "postgres", "url": pg_db}},
        flows={"f": sql_flow(store_type, ["big"], primary_key=["id"], batch_size=batch_size)},
    )


def terminate_readers(pg_db: str) -> int:
    """pg_terminate_backend every other session on the database (the one streaming the table)."""
    import psycopg

    with psycopg.connect(pg_db, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


def assert_nothing_visible(root: Path, flow: str = "f", entity: str = "big") -> None:
    assert landed(root, flow, entity).num_rows == 0, "a failed first load left rows visible"
    assert [e for e in journal(root, flow, entity) if e.status == "success"] == []


def assert_equals_source(root: Path, flow: str = "f", entity: str = "big") -> None:
    project_ = load(root)
    result = verify_entity(project_, entity_of(project_, flow, entity))
    assert result.ok, result.message


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Coordinator retries after 0.2 s instead of 10 s (HYGGE_TASK_RETRY_DELAY_SECONDS)."""
    monkeypatch.setenv("HYGGE_TASK_RETRY_DELAY_SECONDS", "0.2")
    monkeypatch.setenv("HYGGE_TASK_RETRY_JITTER", "0")


def test_postgres_backend_terminated_mid_stream(tmp_path, pg_db, quick_retries) -> None:
    """pg_terminate_backend while the table streams: a transient SourceError naming flow and entity,
    nothing landed, no success row; run by the coordinator, the retry lands exactly the source."""
    big_table(pg_db, paced=True)
    root = project(tmp_path, pg_db)
    project_ = load(root)
    seen = {"rows": 0, "terminated": 0}

    def kill_backend(rows: int) -> None:
        seen["rows"] += rows
        if seen["rows"] and not seen["terminated"]:
            seen["terminated"] = terminate_readers(pg_db)

    with pytest.raises(HyggeError) as failure:
        land_entity(project_, entity_of(project_, "f", "big"), RunIds("t", "c", "f"), on_rows=kill_backend)
    error = failure.value
    assert seen["terminated"] >= 1
    assert isinstance(error, SourceError), repr(error)
    text = str(error)
    assert "flow 'f'" in text and "entity 'big'" in text and "reading big from postgres" in text, text
    assert any(w in error.message.lower() for w in ("connection reset", "terminating connection")), text
    assert error.transient, text
    assert_nothing_visible(root)
    [failed] = journal(root, "f", "big")
    assert failed.status == "fail" and error.message in (failed.message or "")

    # The same fault under the coordinator (what `hygge go` runs): retried, then exact.
    seen.update(rows=0, terminated=0)
    summary = run_entities(project_, project_.select(), events=Events(rows=lambda entity, n: kill_backend(n)))
    assert seen["terminated"] >= 1
    assert summary.ok, [r.message for r in summary.results]
    assert [e.status for e in journal(root, "f", "big")] == ["fail", "fail", "success"]
    assert_equals_source(root)


@contextlib.contextmanager
def small_disk(folder: Path, size: str) -> Iterator[bool]:
    """A tmpfs of `size` mounted on `folder` (yields True), or nothing when mounting is not allowed
    (yields False: the caller simulates ENOSPC instead)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = (
        os.geteuid() == 0
        and subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def grow(folder: Path, size: str, mounted: bool) -> None:
    if mounted:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)
    else:
        faults.arm(None)


@pytest.mark.parametrize("store_type", ["parquet", "delta", "open_mirroring"])
def test_disk_full_on_the_local_store(tmp_path, pg_db, store_type: str) -> None:
    """The store's disk fills mid-write (a 3 MB tmpfs; without mount rights, a simulated ENOSPC at
    the write call, marked as such): a clear StoreError, nothing of the run visible, the earlier
    landing intact; once there is room, a rerun lands exactly the source."""
    big_table(pg_db, rows=2000)
    root = project(tmp_path, pg_db, store_type)
    if store_type == "open_mirroring":
        flow = root / "flows" / "f" / "flow.yml"
        flow.write_text(
            flow.read_text().replace("path: lake", "path: lake\n  folder_deletion_wait_seconds: 0")
        )
    lake = root / "lake"
    with small_disk(lake, "3m") as mounted:
        try:
            from tests.helpers import run

            run(root, "f", "big", run_type="full_drop")
            before = landed(root, "f", "big").num_rows
            pg_execute(
                pg_db,
                "INSERT INTO big SELECT i, timestamp '2025-01-01' + i * interval '1 second', "
                f"md5(i::text) || md5((-i)::text) FROM generate_series(2001, {ROWS}) i",
            )
            if not mounted:
                if store_type == "delta":
                    pytest.skip("a Delta merge writes inside delta-rs: no write call to simulate ENOSPC at")
                faults.arm("files.row_group:3:enospc")  # simulated: no rights to mount a small disk
            with pytest.raises(HyggeError) as failure:
                run(root, "f", "big", run_type="incremental")
            error = failure.value
            text = str(error)
            assert isinstance(error, StoreError), repr(error)
            assert "flow 'f'" in text and "entity 'big'" in text, text
            assert "no space left on device" in text.lower() and "lake/big" in text, text
            assert error.hint and "disk holding the store is full" in error.hint, text
            assert not error.transient, text
            assert landed(root, "f", "big").num_rows == before == 2000
            successes = [e for e in journal(root, "f", "big") if e.status == "success"]
            assert len(successes) == 1  # the first load only
            grow(lake, "256m", mounted)
            result = run(root, "f", "big", run_type="incremental")
            assert result.status == "success"
            assert_equals_source(root)
        finally:
            faults.arm(None)


def test_hygge_go_survives_a_backend_terminated_while_it_streams(tmp_path, pg_db) -> None:
    """End to end through the CLI: `hygge go` pauses mid-stream (HYGGE_FAULT=extract.batch:3:sleep), the
    test terminates its PostgreSQL backend meanwhile; the command retries the entity and exits 0 with
    exactly the source rows landed, and the journal shows the failed attempt then the success."""
    import sys
    import time

    from tests.crash_harness import REPO

    big_table(pg_db)
    root = project(tmp_path, pg_db)
    env = dict(os.environ)
    env.update(
        HYGGE_FAULT="extract.batch:3:sleep",
        HYGGE_FAULT_SLEEP="3",
        HYGGE_TASK_RETRY_DELAY_SECONDS="0.2",
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    command = [sys.executable, "-c", "from hygge.cli.main import app; app()", "go", "-p", str(root)]
    log = tmp_path / "stderr.txt"
    terminated = 0
    with (
        open(log, "w") as err,
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err) as proc,
    ):
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                if "hygge fault: extract.batch hit 3" in log.read_text():
                    terminated = terminate_readers(pg_db)  # while it sleeps, mid-stream
                    break
                time.sleep(0.1)
            proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
    output = log.read_text()[-3000:]
    assert terminated >= 1
    assert proc.returncode == 0, output
    assert [e.status for e in journal(root, "f", "big")] == ["fail", "success"]
    assert_equals_source(root)
