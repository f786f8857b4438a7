"""Projects that name Prefect blocks instead of spelling settings out: `{block: <type>/<name>}` for a
connection or a store, resolved through a real (in-process) Prefect API; plain YAML still works
without one."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from hygge.errors import ConfigError
from tests.helpers import landed, pg_execute, run


@pytest.fixture(scope="module")
def prefect_api(prefect_harness: None) -> None:
    """The session's temporary Prefect API (tests/conftest.py)."""


def write(root: Path) -> Path:
    (root / "flows" / "f").mkdir(parents=True)
    (root / "hygge.yml").write_text(
        yaml.safe_dump({"name": "p", "connections": {"src": {"block": "postgres-connection/src"}}})
    )
    (root / "flows" / "f" / "flow.yml").write_text(
        yaml.safe_dump(
            {
                "home": {"type": "sql", "connection": "src"},
                "store": {"block": "delta-landing-zone/lake"},
                "run_type": "full_drop",
                "entities": ["items"],
            }
        )
    )
    return root


def test_connection_and_store_come_from_blocks(prefect_api, tmp_path, pg_db) -> None:
    """A project whose connection and store are block references lands through them."""
    from hygge.blocks import DeltaLandingZone, PostgresConnection

    url = urlparse(pg_db)
    PostgresConnection(
        host=url.hostname, port=url.port, database=url.path.lstrip("/"), user=url.username
    ).save("src", overwrite=True)
    DeltaLandingZone(path=str(tmp_path / "lake")).save("lake", overwrite=True)
    pg_execute(pg_db, "CREATE TABLE items (id int, v text)", "INSERT INTO items VALUES (1, 'a'), (2, 'b')")
    root = write(tmp_path / "project")
    assert run(root, "f", "items").rows == 2
    assert landed(root, "f", "items").num_rows == 2


def test_without_a_prefect_api_a_block_reference_is_one_clear_error(tmp_path, monkeypatch) -> None:
    """No Prefect API configured: the error names the file and the field and says what to do."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from hygge.config import load_project

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    root = write(tmp_path / "project")
    with temporary_settings(restore_defaults={PREFECT_API_URL}), pytest.raises(ConfigError) as info:
        load_project(root)
    text = str(info.value)
    assert "hygge.yml" in text and "connections.src" in text and "PREFECT_API_URL" in text
