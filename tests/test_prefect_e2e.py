"""End to end through a real Prefect server and process worker: `prefect deploy --all` from
prefect.yaml, `prefect deployment run ... --watch`, the demo shop lands and the run's artifact exists."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the process group (the worker may need a second one), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def prefect_env(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A real `prefect server start` (SQLite, free port) in its own PREFECT_HOME; stopped afterwards."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
    }
    log = open(home / "server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline or server.poll() is not None:
                raise RuntimeError(
                    f"prefect server did not start: {(home / 'server.log').read_text()[-2000:]}"
                )
            time.sleep(0.5)
        yield env
    finally:
        _stop(server)
        log.close()


def _prefect(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (
        f"prefect {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done


@pytest.fixture(scope="module")
def deployed(prefect_env, tmp_path_factory) -> Iterator[dict[str, str]]:
    """A process work pool, `prefect deploy --all` from prefect.yaml, and a running worker (stopped
    afterwards, with a second SIGTERM if it needs one). HYGGE_DEMO_DIR points at a fresh demo shop."""
    from hygge.demo import build_demo

    demo = tmp_path_factory.mktemp("demo")
    env = {
        **prefect_env,
        "HYGGE_DEMO_DIR": str(demo),
        "HYGGE_WORK_POOL": "hygge-test",
        "HYGGE_PROJECT_DIR": str(REPO),
        # The worker looks for scheduled runs every second (default 10 s): a run starts when it is due.
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    build_demo(demo, customers=500, say=lambda _: None)
    _prefect(env, "work-pool", "create", "hygge-test", "--type", "process")
    deployed = _prefect(env, "deploy", "--all", "--no-prompt")
    assert (
        "shop-delta" in deployed.stdout + deployed.stderr
        and "shop-parquet" in deployed.stdout + deployed.stderr
    )
    log = open(demo.parent / "worker.log", "w")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", "hygge-test", "--type", "process"],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield env
    finally:
        _stop(worker)
        log.close()


def _artifact_keys(env: dict[str, str]) -> list[str]:
    import json

    listed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from prefect.client.orchestration import get_client\n"
            "with get_client(sync_client=True) as c:\n"
            "    print(json.dumps([a.key for a in c.read_artifacts()]))",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(listed.stdout.strip().splitlines()[-1])


def test_deploy_all_and_run_through_a_process_worker(deployed) -> None:
    """A process worker runs the demo deployment to completion; the landing zone holds the shop and
    the run has its hygge-land table artifact and hygge-progress artifact."""
    ran = _prefect(
        deployed, "deployment", "run", "land/shop-delta", "--watch",
        "--watch-interval",
        "1", "--watch-timeout", "240", timeout=300
    )
    assert "Completed" in ran.stdout + ran.stderr, ran.stdout
    from deltalake import DeltaTable

    demo = Path(deployed["HYGGE_DEMO_DIR"])
    assert DeltaTable(str(demo / "lake" / "delta" / "orders")).to_pyarrow_table().num_rows == 2000
    keys = _artifact_keys(deployed)
    assert "hygge-land" in keys and "hygge-progress" in keys


def test_fan_out_runs_each_entity_as_its_own_deployment_run(deployed) -> None:
    """With fan_out, every entity is a run of its own; the parent waits, reports them all and
    publishes the journal once."""
    ran = _prefect(
        deployed,
        "deployment",
        "run",
        "land/shop-parquet",
        "--param",
        "fan_out=true",
        "--watch",
        "--watch-interval",
        "1",
        "--watch-timeout",
        "280",
        timeout=320,
    )
    assert "Completed" in ran.stdout + ran.stderr, ran.stdout
    from hygge.journal import Journal
    from hygge.storage import Storage

    demo = Path(deployed["HYGGE_DEMO_DIR"])
    journal = Journal(Storage.local(demo / "lake" / "parquet" / ".hygge_journal"))
    entries = journal.entries()
    assert sorted(e.entity for e in entries) == ["customers", "order_lines", "orders"]
    assert len({e.coordinator_run_id for e in entries}) == 3, "each entity ran in a run of its own"
    assert (demo / "lake" / "parquet" / ".hygge_journal" / "journal.parquet").exists()


def _verify(env: dict[str, str]) -> subprocess.CompletedProcess:
    """`hygge verify` in a process of its own (its Prefect client must not outlive this server)."""
    done = subprocess.run(
        [sys.executable, "-m", "hygge.cli.main", "verify", "-p", "examples/azure"],
        env={**env, "COLUMNS": "200"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _azure_blocks(deployed: dict[str, str], pg_db: str, azure_container) -> dict[str, str]:
    """A 500-row source table, and `hygge blocks apply blocks/dev.yml` pointing its blocks at this
    PostgreSQL and a fresh Azurite container; returns the environment `land/shop-azure` runs with."""
    from urllib.parse import urlparse

    from tests.helpers import pg_execute

    info, container = azure_container
    url = urlparse(pg_db)
    pg_execute(
        pg_db,
        "CREATE TABLE items (id int PRIMARY KEY, amount numeric(38,18), note text, updated_at timestamptz)",
        "INSERT INTO items SELECT i, i / 7.0, md5(i::text), now() FROM generate_series(1, 500) i",
    )
    env = {
        **deployed,
        "PG_HOST": url.hostname or "",
        "PG_PORT": str(url.port),
        "PG_DATABASE": url.path.lstrip("/"),
        "PG_USER": url.username or "postgres",
        "AZURITE_ACCOUNT_KEY": info.key,
        "AZURITE_CONTAINER": container,
        "AZURITE_BLOB_ENDPOINT": info.blob_endpoint,
    }
    applied = subprocess.run(
        [sys.executable, "-m", "hygge.cli.main", "blocks", "apply", "blocks/dev.yml"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert info.key not in applied.stdout + applied.stderr
    return env


def _run_azure(env: dict[str, str], *params: str) -> None:
    ran = _prefect(
        env, "deployment", "run", "land/shop-azure", *params,
        "--watch", "--watch-interval", "1", "--watch-timeout", "240", timeout=300,
    )
    assert "Completed" in ran.stdout + ran.stderr, ran.stdout


def test_blocks_apply_then_postgres_to_azurite_through_a_deployment(deployed, pg_db, azure_container) -> None:
    """`hygge blocks apply blocks/dev.yml` (PostgreSQL + Azurite), then `land/shop-azure` runs through
    the worker: the landing zone verifies against the source, the journal and the artifact exist."""
    env = _azure_blocks(deployed, pg_db, azure_container)
    _run_azure(env)
    verified = _verify(env)
    assert "500" in verified.stdout and "MATCH" in verified.stdout, verified.stdout
    assert "hygge-land" in _artifact_keys(deployed)


# Fan-out itself is in the default run (test_fan_out_...); fanned out onto Azure it is slow only.
@pytest.mark.slow
def test_the_azure_deployment_fanned_out(deployed, pg_db, azure_container) -> None:
    """The same deployment with fan_out: the entity lands as a deployment run of its own, into Azurite,
    and then an incremental change fanned out too; both verify against the source."""
    from tests.helpers import pg_execute

    env = _azure_blocks(deployed, pg_db, azure_container)
    _run_azure(env, "--param", "fan_out=true")
    assert "MATCH" in _verify(env).stdout
    pg_execute(pg_db, "UPDATE items SET note = 'changed', updated_at = now() WHERE id <= 10")
    _run_azure(env, "--param", "fan_out=true")
    assert "MATCH" in _verify(env).stdout
