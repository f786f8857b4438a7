"""The journal in Fabric (Open Mirroring on Azurite): `__hygge.journal` and `__hygge.schema` published
once per successful run, pending until then, never lost when a publish fails."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from hygge.coordinator import run_entities
from hygge.journal_mirror import mirror_for
from hygge.runner import journal_for
from hygge.storage import Storage
from hygge.stores import store_root
from hygge.verify import replay_open_mirroring
from tests.helpers import load, pg_execute, write_project

TABLES = ["t1", "t2", "t3", "t4", "t5"]


def project(root: Path, pg_db: str, info, container: str) -> Path:
    for name in TABLES:
        pg_execute(
            pg_db,
            f"CREATE TABLE IF NOT EXISTS {name} (id int PRIMARY KEY, amount numeric(12,2), at timestamptz, note text)",
            f"INSERT INTO {name} SELECT i, i * 1.5, now(), 'n' FROM generate_series(1, 20) i ON CONFLICT DO NOTHING",
        )
    root = write_project(
        root,
        connections={"db": {"type": "postgres", "url": pg_db}},
        flows={
            "f": {
                "home": {"type": "sql", "connection": "db"},
                "store": {
                    "type": "open_mirroring",
                    "path": f"az://{container}/db/Files/LandingZone",
                    "account": info.account,
                    "endpoint": info.blob_endpoint,
                    "credential": "azurite",
                    "folder_deletion_wait_seconds": 0,
                },
                "run_type": "full_drop",
                "watermark": {"primary_key": ["id"]},
                "entities": TABLES,
            }
        },
    )
    config = yaml.safe_load((root / "hygge.yml").read_text())
    config["credentials"] = {"azurite": {"type": "account_key", "account_key": info.key}}
    config["journal"] = {"mirror": True}
    (root / "hygge.yml").write_text(yaml.safe_dump(config))
    return root


def zone(root: Path) -> Storage:
    loaded = load(root)
    return store_root(loaded.select()[0], loaded.root)


def journal_files(root: Path) -> list[str]:
    return [o["path"] for o in zone(root).list("__hygge.schema/journal") if o["path"].endswith(".parquet")]


def mirrored_equals_canonical(root: Path) -> None:
    loaded = load(root)
    canonical = journal_for(loaded.select()[0], loaded).read()
    replay = replay_open_mirroring(zone(root).child("__hygge.schema", "journal"), ["entity_run_id"])
    want = sorted((r["entity_run_id"], r["status"], r["row_count"]) for r in canonical.to_pylist())
    got = sorted((r["entity_run_id"], r["status"], r["row_count"]) for r in replay.to_pylist())
    assert got == want


def pending(root: Path) -> bool:
    loaded = load(root)
    return mirror_for(loaded.select()[0], loaded).pending()


def test_one_publish_per_successful_run_and_the_schema_table(tmp_path, pg_db, azure_container) -> None:
    """Five entities land; the journal is published exactly once (one data file), replays to the
    canonical journal, and __hygge.schema lists every landed column with its Fabric type."""
    info, container = azure_container
    root = project(tmp_path, pg_db, info, container)
    summary = run_entities(load(root), load(root).select())
    assert summary.ok and summary.published
    assert len(journal_files(root)) == 1
    mirrored_equals_canonical(root)
    assert not pending(root)
    from hygge.coordinator import publish_journal

    assert publish_journal(load(root), load(root).select()) == 0  # nothing pending: 0 rows, not None
    schema = replay_open_mirroring(zone(root).child("__hygge.schema", "schema"), ["entity", "column"])
    rows = {(r["entity"], r["column"]): r["fabric_type"] for r in schema.to_pylist()}
    for name in TABLES:
        assert rows[(f"f.{name}", "id")] == "int"
        assert rows[(f"f.{name}", "amount")] == "decimal(12,2)"
        assert rows[(f"f.{name}", "at")] == "timestamp"
        assert rows[(f"f.{name}", "note")] == "string"


def test_publish_says_none_where_no_journal_is_mirrored(tmp_path, pg_db) -> None:
    """A project without a mirrored journal publishes None (not 0 rows), so a Delta- or parquet-only
    run never speaks of Fabric; a mirrored one reports its rows (see the test above)."""
    from hygge.coordinator import publish_journal
    from tests.helpers import sql_flow, write_project

    plain = write_project(
        tmp_path,
        connections={"db": {"type": "postgres", "url": pg_db}},
        flows={"f": sql_flow("parquet", ["plain_t"], primary_key=["id"])},
    )
    assert publish_journal(load(plain), load(plain).select()) is None


def test_failed_entity_keeps_it_pending_and_the_next_run_publishes_both(
    tmp_path, pg_db, azure_container
) -> None:
    """An entity fails: no publish, the marker stays pending; the next successful run publishes the
    rows of both runs."""
    info, container = azure_container
    root = project(tmp_path, pg_db, info, container)
    pg_execute(pg_db, "ALTER TABLE t3 RENAME TO t3_away")
    summary = run_entities(load(root), load(root).select())
    assert not summary.ok and not summary.published
    assert journal_files(root) == [] and pending(root)
    pg_execute(pg_db, "ALTER TABLE t3_away RENAME TO t3")
    summary = run_entities(load(root), load(root).select())
    assert summary.ok and summary.published
    assert len(journal_files(root)) == 1
    mirrored_equals_canonical(root)
    loaded = load(root)
    statuses = [e.status for e in journal_for(loaded.select()[0], loaded).entries()]
    assert statuses.count("fail") == 1 and statuses.count("success") == 9


def test_publish_failure_is_reported_and_a_fresh_process_publishes(
    tmp_path, pg_db, azure_container, monkeypatch
) -> None:
    """A failing publish leaves the landed entities successful, reports the failure and stays pending;
    a new process (`hygge journal publish`, as a new container would) publishes everything."""
    from hygge import journal_mirror

    info, container = azure_container
    root = project(tmp_path, pg_db, info, container)

    def broken(self, rebuild):
        raise OSError("the landing zone refused the write")

    monkeypatch.setattr(journal_mirror.JournalMirror, "_publish", broken)
    summary = run_entities(load(root), load(root).select())
    assert all(r.status == "success" for r in summary.results)
    assert summary.publish_error and "refused" in summary.publish_error and "pending" in summary.publish_error
    assert summary.exit_code == 3, "landed, housekeeping pending"
    assert pending(root) and journal_files(root) == []
    from typer.testing import CliRunner

    from hygge.cli.main import app

    go = CliRunner().invoke(app, ["go", "-p", str(root)])
    assert go.exit_code == 3 and "housekeeping is pending (exit 3)" in go.output, go.output
    monkeypatch.undo()

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-m", "hygge.cli.main", "journal", "publish", "-p", str(root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "published 10" in done.stdout  # both runs' five entities
    assert not pending(root)
    mirrored_equals_canonical(root)
    [name] = journal_files(root)
    data = pq.read_table(io.BytesIO(zone(root).get(name)))
    assert data.schema.names[-1] == "__rowMarker__"
    assert set(data.column("__rowMarker__").to_pylist()) == {4}


def test_rebuild_republishes_from_the_snapshot(tmp_path, pg_db, azure_container) -> None:
    """`hygge journal publish --rebuild` rewrites __hygge.journal from the canonical snapshot."""
    from typer.testing import CliRunner

    from hygge.cli.main import app

    info, container = azure_container
    root = project(tmp_path, pg_db, info, container)
    assert run_entities(load(root), load(root).select()).ok
    result = CliRunner().invoke(app, ["journal", "publish", "-p", str(root), "--rebuild"])
    assert result.exit_code == 0, result.output
    mirrored_equals_canonical(root)
    names = sorted(journal_files(root))
    assert names[0].endswith(f"{1:020d}.parquet"), "a rebuild starts the table afresh"


def test_azurite_stopped_during_publish(tmp_path, pg_db, azure_container, monkeypatch) -> None:
    """The emulator stops just as the journal is published, at every attempt: the entities stay
    successful, the publish is retried and then reported, the marker is still pending after a restart,
    and the next run publishes all."""
    from hygge import journal_mirror

    info, container = azure_container
    root = project(tmp_path, pg_db, info, container)
    real = journal_mirror.JournalMirror._publish
    monkeypatch.setenv("HYGGE_TASK_RETRY_DELAY_SECONDS", "0.2")
    attempts = []

    def stop_then_publish(self, rebuild):
        attempts.append(1)
        info.stop()
        return real(self, rebuild)

    monkeypatch.setattr(journal_mirror.JournalMirror, "_publish", stop_then_publish)
    try:
        summary = run_entities(load(root), load(root).select())
    finally:
        info.start()
    monkeypatch.undo()
    assert all(r.status == "success" for r in summary.results)
    assert summary.publish_error and "pending" in summary.publish_error and summary.exit_code == 3
    assert attempts, "published once; the retries then found the journal's storage away too"
    assert pending(root) and journal_files(root) == []
    summary = run_entities(load(root), load(root).select())
    assert summary.ok and summary.published and not pending(root)
    mirrored_equals_canonical(root)


def test_a_publish_that_heals_within_the_run_exits_zero(tmp_path, pg_db, azure_container, monkeypatch) -> None:
    """One transient publish failure, then storage is back: retried inside the run, published, exit 0."""
    from hygge import journal_mirror
    from hygge.errors import PublishError

    info, container = azure_container
    root = project(tmp_path, pg_db, info, container)
    real = journal_mirror.JournalMirror._publish
    monkeypatch.setenv("HYGGE_TASK_RETRY_DELAY_SECONDS", "0.2")
    failures = [PublishError("the zone was briefly away", transient=True)]

    def flaky(self, rebuild):
        if failures:
            raise failures.pop()
        return real(self, rebuild)

    monkeypatch.setattr(journal_mirror.JournalMirror, "_publish", flaky)
    summary = run_entities(load(root), load(root).select())
    assert summary.ok and summary.published and summary.exit_code == 0 and not failures
    assert not pending(root)
    mirrored_equals_canonical(root)
