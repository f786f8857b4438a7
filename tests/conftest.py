"""Shared pytest fixtures.

PostgreSQL
    ``pg_url``  (session)  URL of a throwaway server started once per test session
                           (tests/pg_server.py), or of ``HYGGE_TEST_PG_URL`` if that is set.
    ``pg_db``   (function) URL of a fresh, empty database on that server, dropped afterwards.

Add further fixtures below, each with a short comment saying what it yields.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

# tests/ is not a package; make its helper modules importable however pytest was invoked.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pg_server import running_postgres


def _with_database(url: str, dbname: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


# --- PostgreSQL ---------------------------------------------------------------------------


# Logical decoding (tests/test_pg_logical.py) needs wal_level=logical and a slot per feed under test.
PG_SETTINGS = {"wal_level": "logical", "max_replication_slots": 50, "max_wal_senders": 50}


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One PostgreSQL server for the whole session (PG_SETTINGS); yields its ``postgres`` database URL."""
    with running_postgres(tmp_path_factory.mktemp("pg"), PG_SETTINGS) as url:
        yield url


def _drop_slots(conn: psycopg.Connection, database: str) -> None:
    """Drop the logical slots of a database (DROP DATABASE refuses while one exists), ending their
    readers first."""
    for _ in range(50):
        rows = conn.execute(
            "SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = %s", (database,)
        ).fetchall()
        if not rows:
            return
        for slot, pid in rows:
            if pid is None:
                conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = %s AND active_pid IS NULL",
                    (slot,),
                )
            else:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(0.1)


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[str]:
    """A fresh database per test (``test_<8 hex>``); dropped, slots and connections and all, afterwards."""
    name = f"test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(pg_url, name)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            _drop_slots(conn, name)
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- Azurite (Azure Blob emulator) ---------------------------------------------------------

import tempfile  # noqa: E402

from azurite import AzuriteInfo, running_azurite  # noqa: E402


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteInfo]:
    """One Azurite blob server for the whole session (tests/azurite.py); yields its AzuriteInfo.

    ``azurite.storage_options`` reaches it from obstore, deltalake and polars. Tests may
    ``azurite.stop()`` / ``azurite.start()`` it, but must leave it running.
    """
    with running_azurite(Path(tempfile.mkdtemp(prefix="hygge-azurite-"))) as info:
        yield info


@pytest.fixture
def azure_container(azurite: AzuriteInfo) -> Iterator[tuple[AzuriteInfo, str]]:
    """A fresh, empty blob container ``t<8 hex>`` on the session Azurite: yields (info, name)."""
    if not azurite.running:  # a previous test stopped it and failed before restarting
        azurite.start()
    name = f"t{uuid.uuid4().hex[:8]}"
    azurite.create_container(name)
    yield azurite, name


# --- Prefect ------------------------------------------------------------------------------------


# ``prefect_harness`` (session): one temporary Prefect API (prefect_test_harness) for every module that
# needs one; starting it costs about 20 s, once per module before. The tests using it run last and
# together (pytest_collection_modifyitems below). Under xdist (two workers, a file at a time) a worker
# may take another file after a harness one; the API settings the harness set then reach only
# in-process Prefect clients, which no test outside the harness files starts.
@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shared = [item for item in items if "prefect_harness" in getattr(item, "fixturenames", ())]
    if shared:
        chosen = set(map(id, shared))
        items[:] = [item for item in items if id(item) not in chosen] + shared
