"""Crash harness: run `hygge go` in a subprocess with HYGGE_FAULT set, expect a SIGKILL at the named
point, rerun normally, and check that what landed equals the source and the journal agrees with it.

A `Scenario` names the fault(s), the store kind (parquet, delta, open_mirroring), where it lives
(local folder or Azurite), the run type of the crashed round (a full_drop over an earlier load, or an
incremental round after a full load with updated and new source rows), and whether the table has a key.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import yaml

from hygge import watermark as wm
from hygge.config import load_project
from hygge.config.loader import Project
from hygge.coordinator import run_entities
from hygge.journal import Entry
from hygge.journal_mirror import mirror_for
from hygge.runner import journal_for
from hygge.stores import make_store, open_mirroring, store_root
from hygge.verify import replay_open_mirroring, verify_entity
from tests.helpers import pg_execute, pg_rows

REPO = Path(__file__).resolve().parent.parent
ROWS = 3000
BATCH = 250
FLOW, ENTITY = "f", "items"
DROP_WAIT = 1.0


@dataclass(frozen=True)
class Scenario:
    """One crash: fault spec(s) for successive killed runs, then a normal rerun."""

    faults: tuple[str, ...]
    store: str = "parquet"  # parquet | delta | open_mirroring
    where: str = "local"  # local | azurite
    mode: str = "incremental"  # full_drop | incremental: the run type of the crashed round
    keyed: bool = True
    first_load: bool = False  # crash the very first load (nothing landed yet) instead of a later round

    @property
    def id(self) -> str:
        key = "" if self.keyed else "-nokey"
        first = "-first" if self.first_load else ""
        return f"{'+'.join(self.faults)}-{self.store}-{self.where}-{self.mode}{key}{first}"

    @property
    def points(self) -> list[str]:
        return [spec.split(":")[0] for spec in self.faults]


# --- the project and its source ------------------------------------------------------------------
def create_source(pg_db: str, keyed: bool) -> None:
    key = "PRIMARY KEY" if keyed else ""
    pg_execute(
        pg_db,
        f"CREATE TABLE items (id int {key}, updated_at timestamp, amount numeric(12,2), note text)",
        "INSERT INTO items SELECT i, timestamp '2024-01-01' + (i / 7) * interval '1 minute', i * 1.25, "
        f"'n' || i FROM generate_series(1, {ROWS}) i",
    )


def change_source(pg_db: str, keyed: bool, round_no: int = 1) -> None:
    """New rows (some at the current maximum watermark) and, for keyed tables, updated and deleted rows.

    Deletes only matter to full_drop rounds (incremental runs never see them), so they are made then."""
    start = ROWS + round_no * 1000
    top = "(SELECT max(updated_at) FROM items)"
    statements: list[str] = [
        f"INSERT INTO items SELECT i, {top}, i * 1.25, 'tie' || i FROM generate_series({start}, {start + 9}) i",
        f"INSERT INTO items SELECT i, {top} + (i - {start}) * interval '1 second', i * 1.25, 'new' || i "
        f"FROM generate_series({start + 10}, {start + 400}) i",
    ]
    if keyed:
        statements.append(
            f"UPDATE items SET updated_at = {top} + interval '1 day' + id * interval '1 second', "
            f"note = 'upd{round_no}' WHERE id % 17 = {round_no}"
        )
    pg_execute(pg_db, *statements)


def store_settings(scenario: Scenario, azure: tuple[Any, str] | None) -> tuple[dict[str, Any], dict]:
    """The flow's store block and the hygge.yml credentials for it."""
    layout = {"row_group_rows": BATCH, "file_rows": 2 * BATCH}
    credentials: dict[str, Any] = {}
    if scenario.store == "open_mirroring":
        store: dict[str, Any] = {
            "type": "open_mirroring",
            "path": "zone",
            "folder_deletion_wait_seconds": DROP_WAIT,
            **layout,
        }
    else:
        store = {"type": scenario.store, "path": "lake", **layout}
    if scenario.where == "azurite":
        assert azure is not None
        info, container = azure
        credentials = {"azurite": {"type": "account_key", "account_key": info.key}}
        remote = {"account": info.account, "endpoint": info.blob_endpoint, "credential": "azurite"}
        if scenario.store == "open_mirroring":
            store.update(path=f"az://{container}/db/Files/LandingZone", **remote)
        else:
            store = {"type": "adls", "format": scenario.store, "container": container, **layout, **remote}
            store["path"] = "lake"
    return store, credentials


def write_crash_project(root: Path, pg_db: str, scenario: Scenario, azure: tuple[Any, str] | None) -> Path:
    store, credentials = store_settings(scenario, azure)
    config: dict[str, Any] = {
        "name": "crash",
        "options": {"concurrency": 1},
        "connections": {"db": {"type": "postgres", "url": pg_db}},
    }
    if credentials:
        config["credentials"] = credentials
    if scenario.store == "open_mirroring":
        config["journal"] = {"mirror": True}
    watermark: dict[str, Any] = {"watermark_column": "updated_at"}
    if scenario.keyed:
        watermark["primary_key"] = ["id"]
    flow = {
        "home": {"type": "sql", "connection": "db", "batch_size": BATCH},
        "store": store,
        "run_type": "incremental",
        "watermark": watermark,
        "entities": [ENTITY],
    }
    (root / "flows" / FLOW).mkdir(parents=True, exist_ok=True)
    (root / "hygge.yml").write_text(yaml.safe_dump(config))
    (root / "flows" / FLOW / "flow.yml").write_text(yaml.safe_dump(flow))
    return root


# --- running ---------------------------------------------------------------------------------------
def run_in_process(root: Path, run_type: str) -> float:
    """A normal run of the flow in this process (the same coordinator the CLI uses); must succeed.

    Returns the seconds Open Mirroring spent waiting for the service to notice a dropped folder."""
    project = load_project(root)
    waited = [0.0]

    def sleep(seconds: float) -> None:
        waited[0] += seconds
        time.sleep(seconds)

    clock = types.SimpleNamespace(time=time.time, sleep=sleep)
    with mock.patch.object(open_mirroring, "time", clock):
        summary = run_entities(project, project.select(), run_type=run_type)
    failures = [r.message for r in summary.results if r.status != "success"]
    assert summary.ok, f"run failed: {failures} publish: {summary.publish_error}"
    return waited[0]


def run_killed(root: Path, run_type: str, spec: str) -> str:
    """`hygge go` in a subprocess with HYGGE_FAULT=spec; asserts it was SIGKILLed at that point."""
    env = dict(os.environ)
    env["HYGGE_FAULT"] = spec
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    flag = "--full-drop" if run_type == "full_drop" else "--incremental"
    proc = subprocess.run(
        [sys.executable, "-c", "from hygge.cli.main import app; app()", "go", "--project", str(root), flag],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    point = spec.split(":")[0]
    assert proc.returncode == -signal.SIGKILL, (
        f"expected a SIGKILL at {spec}, got exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    assert f"hygge fault: {point} hit" in proc.stderr, proc.stderr[-2000:]
    return proc.stderr


def run_scenario(root: Path, pg_db: str, scenario: Scenario, azure: tuple[Any, str] | None = None) -> None:
    """Seed, crash (once per fault spec), rerun normally, then check source == landed and the journal."""
    create_source(pg_db, scenario.keyed)
    write_crash_project(root, pg_db, scenario, azure)
    if not scenario.first_load:
        run_in_process(root, "full_drop")
        change_source(pg_db, scenario.keyed)
    run_type = "full_drop" if scenario.first_load else scenario.mode
    for spec in scenario.faults:
        run_killed(root, run_type, spec)
    waited = run_in_process(root, run_type)
    if "om.folder_deleted" in scenario.points:
        # The folder was deleted just before the crash: the service may not have noticed yet.
        assert waited >= DROP_WAIT * 0.9, f"the rerun published {waited:.2f}s after the folder deletion"
    check_mirror(root)
    check_landed_equals_source(root)
    check_journal_consistent(root, pg_db)
    # One more incremental round after the recovery: nothing lost or doubled from here on either.
    change_source(pg_db, scenario.keyed, round_no=2)
    run_in_process(root, "incremental")
    check_landed_equals_source(root)
    check_journal_consistent(root, pg_db)


# --- checks ----------------------------------------------------------------------------------------
def _project(root: Path) -> tuple[Project, Any]:
    project = load_project(root)
    return project, project.select()[0]


def check_landed_equals_source(root: Path) -> None:
    project, entity = _project(root)
    result = verify_entity(project, entity)
    assert result.ok, f"{result.message}: {[(c.name, c.note) for c in result.columns if not c.equal]}"


def store_commits(project: Project, entity: Any) -> list[dict[str, Any]]:
    """Every commit the store holds: its entity run id, and the leftovers a crash must not leave."""
    store = make_store(entity, project.root)
    kind = type(store).__name__
    if kind == "DeltaStore":
        table = store._table()
        if table is None:
            return []
        history = table.history()
        named = set()  # every file any commit ever added (tests keep the whole log)
        for obj in store.location.list("_delta_log"):
            if obj["path"].endswith(".json"):
                for line in store.location.get(obj["path"]).decode().splitlines():
                    if '"add"' in line and (add := json.loads(line).get("add")):
                        named.add(add["path"])
        data = [o["path"] for o in store.location.list() if o["path"].endswith(".parquet") and "/" not in o["path"]]
        assert [f for f in data if f not in named] == [], "data files no commit names (an interrupted write's)"
        return [{"entity_run_id": h["hygge.entity_run_id"]} for h in history if h.get("hygge.entity_run_id")]
    if kind == "ParquetStore":
        assert store.root.list(store.staging) == [], "staged files left after the rerun"
        assert store.location.list("_hygge_staging") == [], "bookkeeping inside the table folder"
        return [record for _, record in store._commit_records()]
    # An applied commit's boundary rows stay staged until the next run's recovery: not data.
    leftovers = [o["path"] for o in store.work.list("staging") if not o["path"].endswith("/boundary.parquet")]
    assert leftovers == [], f"staged files left after the rerun: {leftovers}"
    files = store.data_files()
    numbers = [int(name[:20]) for name in files]
    assert numbers == list(range(1, len(numbers) + 1)), f"data files not continuous from 1: {files}"
    if files:
        assert store.table.exists("_metadata.json")
    return [record for _, record in store._records()]


def check_journal_consistent(root: Path, pg_db: str) -> None:
    """No success row without its commit in the store; no store commit without a success row; the last
    watermark is the source's maximum; every commit is applied."""
    project, entity = _project(root)
    journal = journal_for(entity, project)
    table = journal.read()
    ids = table.column("entity_run_id").to_pylist()
    assert len(ids) == len(set(ids)), "an entity run appears twice in the journal"
    entries = [Entry(**row) for row in table.to_pylist() if row["run_type"] != "verify"]
    succeeded = {e.entity_run_id for e in entries if e.status == "success"}
    commits = store_commits(project, entity)
    committed = {c["entity_run_id"] for c in commits}
    for commit in commits:
        assert commit.get("state", "applied") == "applied", f"commit left unapplied: {commit}"
    assert committed <= succeeded, f"store commits without a journal success row: {committed - succeeded}"
    for e in entries:
        if e.status == "success" and e.store_commit != "nothing new" and (e.row_count or 0) > 0:
            assert e.entity_run_id in committed, f"journal success row without data: {e}"
    last = journal.last_success(entity.flow, entity.name)
    assert last is not None
    _, rows = pg_rows(pg_db, "SELECT max(updated_at) AS m FROM items")
    assert last.watermark is not None and wm.from_text(last.watermark, "datetime") == rows[0]["m"], (
        f"watermark {last.watermark} is not the source maximum {rows[0]['m']}"
    )


def check_mirror(root: Path) -> None:
    """The Fabric journal (replayed from the LandingZone) holds every canonical journal row."""
    project, entity = _project(root)
    mirror = mirror_for(entity, project)
    if mirror is None:
        return
    canonical = mirror.journal.read()
    zone = store_root(entity, project.root)
    replay = replay_open_mirroring(zone.child("__hygge.schema", "journal"), ["entity_run_id"])
    want = sorted((r["entity_run_id"], r["status"]) for r in canonical.to_pylist())
    got = sorted((r["entity_run_id"], r["status"]) for r in replay.to_pylist())
    assert got == want
    assert not mirror.pending(), "the mirror stays pending after a successful publish"
