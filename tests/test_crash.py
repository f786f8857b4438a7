"""Crash tests: `hygge go` is SIGKILLed at named fault points (hygge/faults.py) in a subprocess; a
normal rerun must leave the store equal to the source (hygge verify) and the journal consistent.

The default run reaches every fault point once; the `slow` run crosses the points with every store
kind, local and Azurite, full_drop and incremental, keyed and keyless tables.
"""

from __future__ import annotations

import errno
import itertools
import json
import re
from pathlib import Path

import pytest

from hygge import faults
from tests.crash_harness import Scenario, run_scenario

HYGGE = Path(__file__).resolve().parent.parent / "hygge"

P, D, OM = "parquet", "delta", "open_mirroring"
FULL, INC = "full_drop", "incremental"
AZ = "azurite"

# Every point once (some twice where the path differs), covering each store kind locally and on Azurite.
DEFAULT = [
    Scenario(("extract.batch:5",), D, mode=FULL),
    Scenario(("files.row_group:3",), P, mode=FULL),
    Scenario(("files.file_closed:2",), OM, mode=FULL, keyed=False),
    Scenario(("files.file_closed:1",), P, mode=FULL, first_load=True),
    Scenario(("parquet.staged",), P, mode=FULL),
    Scenario(("parquet.record_written",), P, mode=INC),
    Scenario(("parquet.renamed:2",), P, mode=INC),
    Scenario(("parquet.applied",), P, AZ, mode=FULL),
    Scenario(("parquet.record_written", "parquet.recover"), P, mode=FULL),
    Scenario(("delta.staged",), D, mode=INC, keyed=False),
    Scenario(("delta.committed",), D, mode=INC),
    Scenario(("delta.committed",), D, AZ, mode=FULL),
    Scenario(("om.staged",), OM, mode=INC),
    Scenario(("om.record_written",), OM, mode=FULL),
    Scenario(("om.folder_deleted",), OM, mode=FULL),
    Scenario(("om.drop_wait",), OM, mode=FULL),
    Scenario(("om.metadata_written",), OM, AZ, mode=FULL),
    Scenario(("om.file_published:2",), OM, mode=FULL, keyed=False),
    Scenario(("om.file_published:1",), OM, AZ, mode=INC, keyed=False),
    Scenario(("om.published",), OM, mode=INC, keyed=False),
    Scenario(("om.file_published:3", "om.recover"), OM, mode=FULL),
    Scenario(("runner.committed",), P, AZ, mode=INC),
    Scenario(("runner.committed",), OM, mode=INC, keyed=False),
    Scenario(("delta.committed", "runner.recovered"), D, mode=INC),
    Scenario(("journal.recorded",), OM, mode=INC),
    Scenario(("journal.lease_taken",), D, mode=FULL),
    Scenario(("journal.snapshot_written",), P, mode=INC),
    Scenario(("journal.run_folded",), OM, mode=FULL),
    Scenario(("mirror.journal_upserted",), OM, mode=INC),
    Scenario(("mirror.published_saved",), OM, mode=FULL),
    Scenario(("mirror.schema_upserted",), OM, mode=INC),
    Scenario(("mirror.before_clear",), OM, AZ, mode=INC),
]

COMMON = [
    "extract.batch:2",
    "files.row_group:1",
    "files.file_closed:1",
    "runner.committed",
    "journal.recorded",
    "journal.lease_taken",
    "journal.snapshot_written",
    "journal.run_folded",
]
BY_STORE = {
    P: [
        ("parquet.staged",),
        ("parquet.record_written",),
        ("parquet.renamed:1",),
        ("parquet.applied",),
        ("parquet.renamed:1", "parquet.recover"),
        ("parquet.applied", "runner.recovered"),
    ],
    D: [("delta.staged",), ("delta.committed",), ("delta.committed", "runner.recovered")],
    OM: [
        ("om.staged",),
        ("om.record_written",),
        ("om.folder_deleted",),
        ("om.drop_wait",),
        ("om.metadata_written",),
        ("om.file_published:1",),
        ("om.file_published:2",),
        ("om.published",),
        ("om.file_published:1", "om.recover"),
        ("om.published", "runner.recovered"),
        ("mirror.journal_upserted",),
        ("mirror.published_saved",),
        ("mirror.schema_upserted",),
        ("mirror.before_clear",),
    ],
}


def reachable(scenario: Scenario) -> bool:
    """Whether every fault of the scenario lies on its path (a Delta merge goes through neither hygge's
    file writer nor its staging; only a full_drop over an existing table deletes and waits)."""
    points = set(scenario.points)
    merge = scenario.store == D and scenario.mode == INC and scenario.keyed
    if merge and points & {"delta.staged", "files.row_group", "files.file_closed"}:
        return False  # delta-rs writes a merge's files itself
    drops = {"om.folder_deleted", "om.drop_wait"}
    return not (points & drops and scenario.mode != FULL)


def cross_product() -> list[Scenario]:
    found = []
    for store, where, mode, keyed in itertools.product((P, D, OM), ("local", AZ), (FULL, INC), (True, False)):
        for faults_ in [(c,) for c in COMMON] + BY_STORE[store]:
            scenario = Scenario(tuple(faults_), store, where, mode, keyed)
            if reachable(scenario):
                found.append(scenario)
    return found


@pytest.fixture(autouse=True)
def _short_leases(monkeypatch: pytest.MonkeyPatch) -> None:
    """A killed run leaves its entity lease behind: with the default 2-minute lifetime every rerun
    would wait that long for it to expire. The killed child inherits the same setting."""
    monkeypatch.setenv("HYGGE_LEASE_SECONDS", "3")


def _azure(request: pytest.FixtureRequest, scenario: Scenario):
    return request.getfixturevalue("azure_container") if scenario.where == AZ else None


@pytest.mark.parametrize("scenario", DEFAULT, ids=lambda s: s.id)
def test_crash_then_rerun_lands_exactly(tmp_path, pg_db, request, scenario: Scenario) -> None:
    """Killed at the point (SIGKILL, checked), then rerun: store == source, journal consistent."""
    run_scenario(tmp_path, pg_db, scenario, _azure(request, scenario))


@pytest.mark.slow
@pytest.mark.parametrize("scenario", cross_product(), ids=lambda s: s.id)
def test_crash_cross_product(tmp_path, pg_db, request, scenario: Scenario) -> None:
    """Every point on every store kind, local and Azurite, both run types, keyed and keyless."""
    run_scenario(tmp_path, pg_db, scenario, _azure(request, scenario))


def test_every_listed_point_is_in_the_code_and_the_default_run_reaches_each() -> None:
    """POINTS names exactly the fault() calls in hygge/, at least 20, and DEFAULT covers all of them."""
    called: set[str] = set()
    for path in HYGGE.rglob("*.py"):
        called |= set(re.findall(r"\bfault\(\"([a-z_.]+)\"\)", path.read_text()))
    assert called == set(faults.POINTS)
    assert len(called) >= 20
    covered = {point for scenario in DEFAULT for point in scenario.points}
    assert covered == set(faults.POINTS)


def test_fault_is_inert_unless_armed_and_counts_hits() -> None:
    """Unset: nothing happens. `point:n:enospc` raises on the n-th hit only (no process is killed)."""
    try:
        faults.arm(None)
        faults.fault("parquet.renamed")
        faults.arm("parquet.renamed:2:enospc")
        faults.fault("parquet.staged")
        faults.fault("parquet.renamed")
        with pytest.raises(OSError) as raised:
            faults.fault("parquet.renamed")
        assert raised.value.errno == errno.ENOSPC
        faults.fault("parquet.renamed")  # the third hit: past n, nothing
    finally:
        faults.arm(None)


def test_interrupted_copy_then_delete_rename_publishes_the_file_once(tmp_path, pg_db) -> None:
    """Azure Blob renames by copy then delete: a kill between the two leaves the file both staged and
    published. Simulated (faked) on a local zone by copying the published file back to its staged name
    after a kill at om.file_published; the rerun must not publish it a second time."""
    from tests.crash_harness import (
        change_source,
        check_journal_consistent,
        check_landed_equals_source,
        create_source,
        run_in_process,
        run_killed,
        write_crash_project,
    )

    scenario = Scenario(("om.file_published:2",), OM, mode=FULL, keyed=False)
    create_source(pg_db, keyed=False)
    write_crash_project(tmp_path, pg_db, scenario, None)
    run_in_process(tmp_path, FULL)
    change_source(pg_db, keyed=False)
    run_killed(tmp_path, FULL, "om.file_published:2")
    commits = sorted((tmp_path / "zone" / "_hygge" / "items" / "commits").glob("*.json"))
    record = json.loads(commits[-1].read_text())
    staged, name = next(
        (s, n) for s, n in record["claims"].items() if s not in record["done"]
    )  # published, not yet recorded as done
    source = tmp_path / "zone" / "items" / name
    assert source.exists()
    copy = tmp_path / "zone" / "_hygge" / "items" / staged
    copy.write_bytes(source.read_bytes())
    run_in_process(tmp_path, FULL)
    check_landed_equals_source(tmp_path)
    check_journal_consistent(tmp_path, pg_db)
