"""Stress tests: a 100M-row parquet → parquet run and a 12-flow concurrent run, each asserting exact
row counts and a peak memory bound sampled while `hygge go` runs (tests/rss.py).

Marked `slow`, so the default run leaves them out. Run them with

    python -m pytest -m slow tests/test_stress.py                 # all (the 100M variant takes a while)
    python -m pytest -m slow tests/test_stress.py -k "10M or concurrent"

The generated parquet sources are cached under ``$HYGGE_STRESS_DIR`` when it is set (reused when
their manifest matches; 100M rows take ~12 GB), else written under the test's tmp_path and removed.
Landed data always goes under tmp_path and is removed after the test. Each test prints its figures
(rows, wall seconds, rows/s, peak memory) to the terminal. MB means 10^6 bytes.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow.parquet as pq
import pytest
import rss
from helpers import journal, write_project

REPO = Path(__file__).resolve().parents[1]
RSS_BOUND_MB = 300  # the target for one hygge process, at 10M and at 100M rows
SEED = 0
STRESS_DIR_ENV = "HYGGE_STRESS_DIR"
# A run whose memory passes this is killed at once, to spare a shared machine (it fails the bound anyway).
GUARD_MB = float(os.environ.get("HYGGE_STRESS_GUARD_MB", "6000"))

pytestmark = pytest.mark.slow


def _bench_module(name: str) -> ModuleType:
    """Import bench/<name>.py (bench/ is scripts, not a package) under the name bench_<name>."""
    module_name = f"bench_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, REPO / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


make_parquet = _bench_module("make_parquet")
pg_generate = _bench_module("generate")


def hygge(*args: str) -> list[str]:
    """The hygge CLI of this checkout, in a fresh interpreter."""
    return [sys.executable, "-c", "from hygge.cli.main import app; app(prog_name='hygge')", *args]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for hygge subprocesses: this checkout first on PYTHONPATH, no colour."""
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["NO_COLOR"] = "1"
    env.setdefault("COLUMNS", "160")
    return env


@pytest.fixture
def source_cache(tmp_path: Path) -> Iterator[Path]:
    """Where generated parquet sources live: $HYGGE_STRESS_DIR/parquet (kept) or tmp_path (removed)."""
    cached = os.environ.get(STRESS_DIR_ENV)
    folder = Path(cached) / "parquet" if cached else tmp_path / "parquet"
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    if not cached:
        shutil.rmtree(folder, ignore_errors=True)


def visible_parquet_rows(folder: Path) -> tuple[int, int]:
    """(rows, files) of the parquet files a reader sees in an entity folder (names not '_' or '.')."""
    files = [p for p in folder.glob("*.parquet") if not p.name.startswith(("_", "."))]
    return sum(pq.read_metadata(p).num_rows for p in files), len(files)


def landed_rows(store_type: str, folder: Path) -> int:
    """Rows a reader sees in a landed entity: a Delta table's count, or its visible parquet files."""
    if store_type == "delta":
        from deltalake import DeltaTable

        return DeltaTable(str(folder)).count()
    return visible_parquet_rows(folder)[0]


def staged_leftovers(folder: Path) -> list[str]:
    """Files left in the parquet store's staging area (none after a successful run)."""
    staging = folder.parent / "_hygge" / folder.name / "staging"
    return (
        sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
        if staging.exists()
        else []
    )


def journal_success_rows(project: Path, flow: str, entity: str) -> list[int | None]:
    """Row counts of the entity's successful journal rows."""
    return [e.row_count for e in journal(project, flow, entity) if e.status == "success"]


def say(capsys: pytest.CaptureFixture[str], *lines: str) -> None:
    """Print figures to the terminal even though pytest captures output."""
    with capsys.disabled():
        print()
        for line in lines:
            print(f"[stress] {line}")


def tail(text: str, chars: int = 3000) -> str:
    """The end of a command's output, for assertion messages."""
    return text[-chars:]


# --- 1. one big parquet → parquet run ---------------------------------------------------------


@pytest.mark.timeout(7200)
@pytest.mark.parametrize("rows", [pytest.param(10_000_000, id="10M"), pytest.param(100_000_000, id="100M")])
@pytest.mark.parametrize("path", ["reencode", "copy"])
def test_parquet_to_parquet_lands_every_row_within_the_memory_bound(
    rows: int, path: str, tmp_path: Path, source_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`hygge go` lands an N-row parquet file set into a parquet store (full_drop): exactly N rows in
    the store and in the journal, with the hygge process's peak memory within RSS_BOUND_MB. `copy`
    lands the files as they are; `reencode` sets the store's compression, so every row goes through
    the streaming reader and writer."""
    store: dict = {"type": "parquet", "path": str(tmp_path / "lake")}
    if path == "reencode":
        store["compression"] = "snappy"
    source = source_cache / f"rows_{rows}_seed_{SEED}"
    files = make_parquet.ensure(source, rows, SEED, jobs=2)
    lake = tmp_path / "lake"
    project = write_project(
        tmp_path / "project",
        name="stress",
        connections={},
        flows={
            "big": {
                "home": {"type": "parquet", "path": str(source_cache)},
                "store": store,
                "run_type": "full_drop",
                "entities": [{"name": "bench_rows", "path": source.name}],
            }
        },
    )
    try:
        run = rss.run_one(
            hygge("go", "--project", str(project), "--flow", "big"),
            env=child_env(),
            cwd=tmp_path,
            timeout=6600,
            limit_mb=GUARD_MB,
        )
        assert not run.over_limit, f"killed: peak memory passed {GUARD_MB:.0f} MB (bound {RSS_BOUND_MB} MB)"
        assert run.returncode == 0, (
            f"hygge go exited {run.returncode}:\n{tail(run.stderr)}\n{tail(run.stdout)}"
        )
        landed, landed_files = visible_parquet_rows(lake / "bench_rows")
        source_bytes = sum(p.stat().st_size for p in files)
        say(
            capsys,
            f"parquet → parquet ({path}) {rows:,} rows ({len(files)} source files, {source_bytes / 1e9:.1f} GB): "
            f"landed {landed:,} rows in {landed_files} files",
            f"wall {run.wall_s:.1f} s, {rows / run.wall_s:,.0f} rows/s; peak {run.peak_mb:.0f} MB "
            f"(sampled tree RSS {run.peak.peak_rss / rss.MB:.0f} MB, VmHWM {run.peak.peak_hwm / rss.MB:.0f} MB, "
            f"{run.peak.samples} samples); bound {RSS_BOUND_MB} MB",
        )
        assert landed == rows
        assert staged_leftovers(lake / "bench_rows") == []
        assert journal_success_rows(project, "big", "bench_rows") == [rows]
        assert run.peak_mb <= RSS_BOUND_MB, (
            f"peak {run.peak_mb:.0f} MB > {RSS_BOUND_MB} MB for {rows:,} rows "
            f"(tree RSS {run.peak.peak_rss / rss.MB:.0f} MB, VmHWM {run.peak.peak_hwm / rss.MB:.0f} MB)"
        )
    finally:
        shutil.rmtree(lake, ignore_errors=True)


# --- 2. twelve flows at once -------------------------------------------------------------------

CONCURRENT_ROWS = 500_000
# (flow, entity, home, store): 8 PostgreSQL tables and 4 parquet file sets, into parquet and Delta.
CONCURRENT_FLOWS: list[tuple[str, str, str, str]] = [
    *[(f"f{i:02d}", f"t{i:02d}", "sql", "parquet" if i % 2 else "delta") for i in range(1, 9)],
    *[(f"f{i:02d}", f"p{i:02d}", "parquet", "parquet" if i % 2 else "delta") for i in range(9, 13)],
]
# One `hygge go --concurrency 12` holds twelve streams in one process: each further stream in flight
# cost ~100 MB (PostgreSQL flows: 1 at once 246 MB, 4 at once 553 MB, 8 at once 971 MB) and ~130 MB
# (parquet homes), and all twelve peaked at 1,410-1,450 MB (2026-11-27, after 34f7a5c): bound with margin.
ONE_PROCESS_BOUND_MB = 1600


def _concurrent_project(root: Path, lake: Path, parquet_source: Path) -> Path:
    """A project of twelve one-entity flows, all landing under `lake` (so sharing one journal)."""
    flows: dict[str, dict[str, Any]] = {}
    for flow, entity, home, store in CONCURRENT_FLOWS:
        if home == "sql":
            home_config: dict[str, Any] = {"type": "sql", "connection": "src"}
            entities: list[Any] = [entity]
        else:
            home_config = {"type": "parquet", "path": str(parquet_source)}
            entities = [{"name": entity, "path": _parquet_folder(entity)}]
        flows[flow] = {
            "home": home_config,
            "store": {"type": store, "path": str(lake)},
            "run_type": "full_drop",
            "entities": entities,
        }
    return write_project(
        root,
        name="stress",
        connections={"src": {"type": "postgres", "url": "${STRESS_PG_URL}"}},
        flows=flows,
    )


def _parquet_folder(entity: str) -> str:
    """The cached source folder of a parquet entity of the concurrent run (seed from its number)."""
    return f"rows_{CONCURRENT_ROWS}_seed_{int(entity[1:])}"


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("mode", ["processes", "one_process"])
def test_twelve_concurrent_flows_land_exactly_within_the_memory_bound(
    mode: str,
    pg_db: str,
    tmp_path: Path,
    source_cache: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Twelve flows (8 PostgreSQL tables, 4 parquet file sets; parquet and Delta stores) run at once,
    as twelve `hygge go --flow X` processes or as one `hygge go --concurrency 12`: every entity lands
    exactly its source rows with a success row in the shared journal, within the memory bound."""
    for _, entity, home, _ in CONCURRENT_FLOWS:
        if home == "sql":
            pg_generate.generate(pg_db, CONCURRENT_ROWS, entity)
        else:
            make_parquet.ensure(source_cache / _parquet_folder(entity), CONCURRENT_ROWS, int(entity[1:]))
    monkeypatch.setenv("STRESS_PG_URL", pg_db)  # for loading the project's journal in this process
    lake = tmp_path / "lake"
    project = _concurrent_project(tmp_path / "project", lake, source_cache)
    env = child_env(STRESS_PG_URL=pg_db)
    if mode == "processes":
        commands = {
            flow: hygge("go", "--project", str(project), "--flow", flow) for flow, *_ in CONCURRENT_FLOWS
        }
        bound = RSS_BOUND_MB
    else:
        commands = {
            "all": hygge("go", "--project", str(project), "--concurrency", str(len(CONCURRENT_FLOWS)))
        }
        bound = ONE_PROCESS_BOUND_MB
    try:
        runs = rss.run_all(commands, env=env, cwd=tmp_path, timeout=3000, limit_mb=GUARD_MB)
        killed = sorted(name for name, run in runs.runs.items() if run.over_limit)
        assert not killed, f"killed: peak memory passed {GUARD_MB:.0f} MB: {killed}"
        failed = {name: run for name, run in runs.runs.items() if run.returncode != 0}
        assert not failed, "\n".join(
            f"{name} exited {run.returncode}:\n{tail(run.stderr)}\n{tail(run.stdout)}"
            for name, run in failed.items()
        )
        landed = {entity: landed_rows(store, lake / entity) for _, entity, _, store in CONCURRENT_FLOWS}
        journaled = {
            entity: journal_success_rows(project, flow, entity) for flow, entity, _, _ in CONCURRENT_FLOWS
        }
        total_rows = CONCURRENT_ROWS * len(CONCURRENT_FLOWS)
        wall = max(run.wall_s for run in runs.runs.values())
        peaks = {name: run.peak_mb for name, run in runs.runs.items()}
        say(
            capsys,
            f"{len(CONCURRENT_FLOWS)} concurrent flows ({mode}), {CONCURRENT_ROWS:,} rows each, "
            f"{total_rows:,} in all: landed {sum(landed.values()):,}",
            f"wall {wall:.1f} s, {total_rows / wall:,.0f} rows/s in all",
            "peak per process MB: " + ", ".join(f"{name} {mb:.0f}" for name, mb in peaks.items()),
            f"largest {max(peaks.values()):.0f} MB (bound {bound} MB); "
            f"peak total RSS of all processes at once {runs.peak_total_mb:.0f} MB",
        )
        assert landed == {entity: CONCURRENT_ROWS for _, entity, _, _ in CONCURRENT_FLOWS}
        assert journaled == {entity: [CONCURRENT_ROWS] for _, entity, _, _ in CONCURRENT_FLOWS}
        for _, entity, _, store in CONCURRENT_FLOWS:
            if store == "parquet":
                assert staged_leftovers(lake / entity) == [], entity
        over = {name: round(mb) for name, mb in peaks.items() if mb > bound}
        assert not over, f"peak memory over {bound} MB: {over}"
    finally:
        shutil.rmtree(lake, ignore_errors=True)
