"""The `land` Prefect flow under a real (in-process, temporary) Prefect API via prefect_test_harness."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

import hygge.prefect.land as land_module
from hygge.errors import SourceError
from hygge.journal import Journal
from hygge.storage import Storage


@pytest.fixture(scope="module")
def harness(prefect_harness: None) -> None:
    """The session's temporary Prefect API (tests/conftest.py)."""


def _project(root: Path, tables: int = 3) -> Path:
    db = root / "src.sqlite"
    with sqlite3.connect(db) as conn:
        for i in range(tables):
            conn.execute(f"CREATE TABLE t{i} (id INTEGER PRIMARY KEY, v TEXT, updated_at DATETIME)")
            conn.executemany(
                f"INSERT INTO t{i} VALUES (?, ?, ?)",
                [(n, f"v{n}", f"2024-01-01 00:00:{n % 60:02d}") for n in range(1, 101)],
            )
    (root / "hygge.yml").write_text("name: p\nconnections:\n  src: {type: sqlite, path: src.sqlite}\n")
    flow_dir = root / "flows" / "f"
    flow_dir.mkdir(parents=True)
    entities = "\n".join(f"  - t{i}" for i in range(tables))
    (flow_dir / "flow.yml").write_text(
        "home: {type: sql, connection: src}\nstore: {type: delta, path: lake}\nrun_type: incremental\n"
        f"watermark: {{primary_key: id, watermark_column: updated_at}}\nentities:\n{entities}\n"
    )
    return root


def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        land_module,
        "land_entity_task",
        land_module.land_entity_task.with_options(retries=2, retry_delay_seconds=0, retry_jitter_factor=None),
    )


def _artifact_rows(flow_run_id) -> list[dict]:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["hygge-land"])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
        )
    assert artifacts, "the run made no table artifact"
    import json

    data = artifacts[0].data
    return json.loads(data) if isinstance(data, str) else data


def test_land_runs_a_task_per_entity_publishes_and_reports(harness, tmp_path, monkeypatch):
    """Every entity lands as its own task; the journal is published; the artifact has a row per entity."""
    _fast_retries(monkeypatch)
    root = _project(tmp_path)
    state = land_module.land(project=str(root), return_state=True)
    assert state.is_completed()
    results = state.result()
    assert sorted(r["entity"] for r in results) == ["t0", "t1", "t2"]
    assert all(r["status"] == "success" and r["rows"] == 100 for r in results)
    # Task runs reach the API through events, a moment after the flow finished: poll briefly.
    import time

    names: set[str] = set()
    deadline = time.time() + 30
    while not {"f.t0", "f.t1", "f.t2"} <= names and time.time() < deadline:
        with get_client(sync_client=True) as client:
            names = {t.name for t in client.read_task_runs(flow_run_filter=None)}
        time.sleep(0.5)
    assert {"f.t0", "f.t1", "f.t2"} <= names
    journal = Journal(Storage.local(root / "lake" / ".hygge_journal"))
    assert (root / "lake" / ".hygge_journal" / "journal.parquet").exists(), "publish_journal did not compact"
    assert len([e for e in journal.entries() if e.status == "success"]) == 3
    rows = _artifact_rows(state.state_details.flow_run_id)
    assert sorted(r["entity"] for r in rows) == ["f.t0", "f.t1", "f.t2"]
    assert all(r["status"] == "success" and r["rows"] == 100 for r in rows)
    assert all("→" in r["watermark"] for r in rows)
    with get_client(sync_client=True) as client:  # named for what it did, not two random words
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.name == "p: all flows · as configured", run.name


def test_run_names_say_what_a_run_lands() -> None:
    from hygge.prefect.names import run_name

    assert run_name({"project": "/nowhere/shop", "flows": ["a", "b"], "run_type": "full_drop"}) == (
        "shop: a, b · full_drop"
    )
    assert run_name({"project": "/nowhere/shop", "entities": ["a.t"], "fan_out": True}) == (
        "shop: a.t · as configured · fan-out"
    )
    assert run_name({"project": "/x/p", "entities": [f"f.t{i}" for i in range(40)]}) == "p: 40 selections · as configured"


def test_transient_failure_is_retried(harness, tmp_path, monkeypatch):
    """A transient source error is retried by Prefect and the run then succeeds."""
    _fast_retries(monkeypatch)
    root = _project(tmp_path, tables=1)
    real = land_module.land_entity
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise SourceError("connection reset by peer", transient=True)
        return real(*args, **kwargs)

    monkeypatch.setattr(land_module, "land_entity", flaky)
    state = land_module.land(project=str(root), return_state=True)
    assert state.is_completed()
    assert calls["n"] == 2


def test_failed_entity_skips_publish_and_shows_the_real_error(harness, tmp_path, monkeypatch):
    """A permanent failure is not retried, publish_journal does not run, and the flow fails with hygge's
    own message (not a RetryError)."""
    _fast_retries(monkeypatch)
    root = _project(tmp_path)
    (root / "flows" / "f" / "entities").mkdir()
    (root / "flows" / "f" / "entities" / "t1.yml").write_text("table: no_such_table\n")
    state = land_module.land(project=str(root), return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception) as info:
        state.result()
    text = str(info.value)
    assert "no_such_table" in text and "f.t1" in text and "RetryError" not in text
    assert not (root / "lake" / ".hygge_journal" / "journal.parquet").exists(), "journal was published"
    rows = _artifact_rows(state.state_details.flow_run_id)
    by_entity = {r["entity"]: r for r in rows}
    assert by_entity["f.t1"]["status"] == "fail"
    assert by_entity["f.t0"]["status"] == "success"


def test_source_concurrency_limit_serialises_entities(harness, tmp_path, monkeypatch):
    """A global concurrency limit `hygge-source-<connection>` of 1 lets one entity at a time read that
    source, even with entity concurrency 3; without the limit the same entities overlap."""
    import threading
    import time

    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    _fast_retries(monkeypatch)
    root = _project(tmp_path, tables=3)
    real = land_module.land_entity
    lock = threading.Lock()
    active = {"now": 0, "peak": 0}

    def slow(*args, **kwargs):
        with lock:
            active["now"] += 1
            active["peak"] = max(active["peak"], active["now"])
        try:
            time.sleep(0.5)
            return real(*args, **kwargs)
        finally:
            with lock:
                active["now"] -= 1

    monkeypatch.setattr(land_module, "land_entity", slow)
    assert land_module.land(project=str(root), concurrency=3, return_state=True).is_completed()
    assert active["peak"] > 1, "without a limit the entities should overlap"

    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name="hygge-source-src", limit=1))
    active["peak"] = 0
    try:
        assert land_module.land(project=str(root), concurrency=3, return_state=True).is_completed()
        assert active["peak"] == 1
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name("hygge-source-src")


def test_transient_failure_that_persists_shows_the_original_error(harness, tmp_path, monkeypatch):
    """A fake land_entity raises the same transient error every time: it is tried 1 + retries times,
    then the flow fails with that error's own text, not RetryError or another wrapper."""
    _fast_retries(monkeypatch)
    root = _project(tmp_path, tables=1)
    calls = {"n": 0}

    def always(*args, **kwargs):
        calls["n"] += 1
        raise SourceError("connection reset by peer", hint="wait", transient=True, flow="f", entity="t0")

    monkeypatch.setattr(land_module, "land_entity", always)
    state = land_module.land(project=str(root), return_state=True)
    assert state.is_failed() and calls["n"] == 3
    with pytest.raises(Exception) as info:
        state.result()
    text = str(info.value)
    assert "flow 'f', entity 't0': connection reset by peer Try: wait" in text
    assert "RetryError" not in text and "Traceback" not in text
    rows = _artifact_rows(state.state_details.flow_run_id)
    assert rows[0]["message"].startswith("flow 'f', entity 't0': connection reset by peer")


def test_unexpected_error_in_a_task_is_not_retried(harness, tmp_path, monkeypatch):
    """A fake land_entity raises a non-hygge error: it is permanent (tried once) and its text shows."""
    _fast_retries(monkeypatch)
    root = _project(tmp_path, tables=1)
    calls = {"n": 0}

    def broken(*args, **kwargs):
        calls["n"] += 1
        raise RuntimeError("library broke")

    monkeypatch.setattr(land_module, "land_entity", broken)
    state = land_module.land(project=str(root), return_state=True)
    assert state.is_failed() and calls["n"] == 1
    with pytest.raises(Exception) as info:
        state.result()
    assert "library broke" in str(info.value) and "RetryError" not in str(info.value)


def test_entity_tasks_share_one_load_of_the_project(harness, tmp_path, monkeypatch):
    """Tasks of one run reuse the project the first one loaded: no per-entity parse of every flow."""
    root = _project(tmp_path, tables=6)
    calls = []
    real = land_module.load_project

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(land_module, "load_project", counting)
    assert land_module.land(project=str(root), publish=False, return_state=True).is_completed()
    assert len(calls) <= 2, calls  # the parent flow's load, and one shared by the six entity tasks


def test_without_a_source_limit_no_slot_is_acquired(harness, tmp_path, monkeypatch):
    """No `hygge-source-<connection>` limit: looked up once, and no entity asks Prefect for a slot
    (each request cost an API call and logged a warning, ~60 ms an entity under load)."""
    root = _project(tmp_path, tables=3)

    def refuse(*args, **kwargs):
        raise AssertionError("asked for a concurrency slot of a limit that does not exist")

    monkeypatch.setattr(land_module, "concurrency", refuse)
    assert land_module.land(project=str(root), publish=False, return_state=True).is_completed()


def test_a_failed_publish_after_every_entity_landed_is_its_own_final_state(harness, tmp_path, monkeypatch):
    """Entities landed and journaled, the journal's publish failed: the flow run ends Completed under the
    name "Housekeeping pending" (as `hygge go` exits 3), not Failed, and the artifact says so."""
    from hygge.errors import PublishError

    _fast_retries(monkeypatch)
    root = _project(tmp_path, tables=1)

    def refused(*args, **kwargs):
        raise PublishError("the landing zone refused the journal")

    monkeypatch.setattr(land_module, "compact_journals", refused)
    state = land_module.land(project=str(root), return_state=True)
    assert state.is_completed() and state.name == land_module.PENDING_STATE, state
    assert "housekeeping is pending" in (state.message or "")
    assert [r["status"] for r in state.result()] == ["success"]
    with get_client(sync_client=True) as client:
        [artifact] = [a for a in client.read_artifacts() if a.key == "hygge-land" and
                      a.flow_run_id == state.state_details.flow_run_id]  # fmt: skip
    assert "journal publish failed and stays pending" in (artifact.description or "")


def test_a_failed_maintenance_is_housekeeping_pending_too(harness, tmp_path, monkeypatch):
    """As `hygge go` exits 3 for it: a store's maintenance failing after the entity landed ends the flow
    run Completed as "Housekeeping pending", naming the entity."""
    from hygge import maintenance
    from hygge.errors import StoreError

    _fast_retries(monkeypatch)
    root = _project(tmp_path, tables=1)

    def broken(project, entity):
        raise StoreError("the table's storage refused the compaction")

    monkeypatch.setattr(maintenance, "maintain_if_due", broken)
    state = land_module.land(project=str(root), return_state=True)
    assert state.is_completed() and state.name == land_module.PENDING_STATE, state
    assert "maintenance failed: f.t0" in (state.message or ""), state.message
