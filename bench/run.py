"""Run the hygge benchmarks side by side with the floor and dlt, each run in a fresh subprocess.

    python bench/run.py                       # everything, on a throwaway PostgreSQL server
    python bench/run.py --url URL --repeat 2  # an existing server (the table is made if missing)
    python bench/run.py --groups pg,parquet   # some groups only; --scenarios names single ones

Groups (all run by default, in this order):
  pg           PostgreSQL table (--rows, default 10M) -> parquet, Delta, Open Mirroring (local) and
               Azurite (parquet, Delta), each for hygge, the floor (raw connectorx -> pyarrow /
               deltalake) and dlt (sql_database, connectorx backend, filesystem destination; in its
               own virtualenv, bench/dlt_env.py)
  parquet      parquet files -> parquet, for each of --parquet-rows (default 10M and 100M; files
               cached in bench/.cache): the floor (pyarrow reader -> writer), hygge (files already
               holding the pinned schema are copied as they are) and hygge_pq2pq_encode (the store
               sets its compression, so every row is decoded and encoded again)
  incremental  a copy of the table landed in full, then again after 1 % of rows changed and 0.5 %
               were added (bench/generate.py --changes): parquet append, parquet upsert, Delta
               merge, Open Mirroring
  many         10 entities of rows/10 each (views over the table), concurrency 4
  tiny         200 entities of 100 rows against 1 entity, through the CLI and through Prefect's
               `land` flow (ephemeral API): the difference over 199 is the overhead per entity

Each run reports rows written (counted from the output and checked against what the source holds),
wall seconds of the child process (interpreter start and imports included), rows/s, MB/s of output,
peak RSS (ru_maxrss of the measured process) and CPU seconds. The table is printed, followed by the
ratios the targets are stated in, and written as JSON to bench/results/<UTC timestamp>.json.
MB means 10^6 bytes throughout.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import dlt_env  # bench/dlt_env.py (this script's directory is on sys.path)
import generate  # bench/generate.py
import make_parquet  # bench/make_parquet.py
import psutil
import psycopg
import pyarrow.parquet as pq

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
CACHE_DIR = BENCH_DIR / ".cache"
DEFAULT_ROWS = 10_000_000
DEFAULT_PARQUET_ROWS = "10000000,100000000"
MANY_ENTITIES = 10
TINY_ENTITIES = 200
TINY_ROWS = 100
CHANGE_PCT = 1.0
MB = 1_000_000
GROUPS = ("pg", "parquet", "incremental", "many", "tiny")


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    group: str
    tool: str  # floor | hygge | dlt | prefect
    target: str  # parquet | delta | open_mirroring
    description: str
    azurite: bool = False  # land in a container on a fresh local Azurite instead of a local folder


def _pg(name: str, tool: str, target: str, description: str, azurite: bool = False) -> Scenario:
    return Scenario(name, "pg", tool, target, description, azurite)


PG_SCENARIOS = [
    _pg("floor_parquet", "floor", "parquet", "connectorx arrow_stream -> pyarrow ParquetWriter"),
    _pg("dlt_parquet", "dlt", "parquet", "dlt sql_table(connectorx) -> filesystem parquet"),
    _pg("hygge_parquet", "hygge", "parquet", "hygge go: sql home -> parquet store"),
    _pg("floor_delta", "floor", "delta", "connectorx arrow_stream -> deltalake.write_deltalake"),
    _pg("dlt_delta", "dlt", "delta", "dlt sql_table(connectorx) -> filesystem delta"),
    _pg("hygge_delta", "hygge", "delta", "hygge go: sql home -> delta store"),
    _pg("hygge_open_mirroring", "hygge", "open_mirroring", "hygge go: sql home -> Open Mirroring (local)"),
    _pg("hygge_azurite_parquet", "hygge", "parquet", "hygge go: sql home -> parquet on Azurite", True),
    _pg("hygge_azurite_delta", "hygge", "delta", "hygge go: sql home -> delta on Azurite", True),
]
INCREMENTAL = {  # scenario -> (store settings, primary key)
    "inc_parquet_append": ("{type: parquet, path: '${BENCH_OUT}/inc_parquet_append'}", None),
    "inc_parquet_upsert": ("{type: parquet, path: '${BENCH_OUT}/inc_parquet_upsert'}", "id"),
    "inc_delta_merge": ("{type: delta, path: '${BENCH_OUT}/inc_delta_merge'}", "id"),
    "inc_open_mirroring": (
        "{type: open_mirroring, path: '${BENCH_OUT}/inc_open_mirroring', folder_deletion_wait_seconds: 0}",
        "id",
    ),
}
SCENARIO_NAMES = (
    [s.name for s in PG_SCENARIOS]
    + ["floor_pq2pq", "hygge_pq2pq", "hygge_pq2pq_encode"]
    + list(INCREMENTAL)
    + ["hygge_many", "hygge_tiny_cli", "hygge_tiny_prefect"]
)


# --- measuring a child process ------------------------------------------------------------


@dataclasses.dataclass
class ChildRun:
    returncode: int
    wall_s: float | None  # None: killed before the launcher could report
    peak_rss_mb: float | None  # ru_maxrss: the command's largest process (itself or a waited-for kid)
    peak_tree_rss_mb: float  # sampled sum over the live process tree
    cpu_s: float | None
    stdout: str
    stderr: str


# ru_maxrss pitfall: when a process forks and execs, Linux carries the pre-exec memory's
# high-water mark into the new program's ru_maxrss. A child spawned straight from this
# runner (which has pyarrow, deltalake and psycopg loaded) would never report less than the
# runner's own RSS. So a tiny stdlib-only launcher (`python -S`) spawns the measured command
# and reports its wait4 rusage: the floor is then the launcher's ~10 MB, not ours.
_LAUNCHER = """
import json, os, sys, time
result_path, cmd = sys.argv[1], sys.argv[2:]
began = time.perf_counter()
pid = os.posix_spawnp(cmd[0], cmd, os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - began
with open(result_path, "w") as f:
    json.dump({"wall": wall, "maxrss_kib": usage.ru_maxrss,
               "cpu": usage.ru_utime + usage.ru_stime}, f)
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def run_measured(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float) -> ChildRun:
    """Run ``cmd`` to completion; wall time, ru_maxrss and sampled tree RSS of the command."""
    if not shutil.which(cmd[0]):
        raise FileNotFoundError(f"command not found: {cmd[0]}")
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(suffix=".json") as report,
    ):
        launcher_cmd = [sys.executable, "-S", "-c", _LAUNCHER, report.name, *cmd]
        # Own session, so a timeout can kill the whole tree (e.g. a Prefect server it spawned).
        launcher = subprocess.Popen(
            launcher_cmd, env=env, cwd=cwd, stdout=out, stderr=err, start_new_session=True
        )
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            # Sum of RSS over the launcher's descendants (the command and anything it starts).
            with contextlib.suppress(psutil.Error):
                ps = psutil.Process(launcher.pid)
                while not done.is_set():
                    total = 0
                    for child in ps.children(recursive=True):
                        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                            total += child.memory_info().rss
                    peak[0] = max(peak[0], total)
                    done.wait(0.05)

        def kill_tree() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(launcher.pid, signal.SIGKILL)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        killer = threading.Timer(timeout, kill_tree)
        killer.start()
        try:
            returncode = launcher.wait()
        finally:
            killer.cancel()
            done.set()
        sampler.join()
        # Anything the command left running in its session (it should not) is stopped here.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(launcher.pid, signal.SIGTERM)
        out.seek(0)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        try:
            measured = json.loads(Path(report.name).read_text())
        except (OSError, ValueError):  # killed by the timeout, or the launcher itself failed
            measured = {"wall": None, "maxrss_kib": None, "cpu": None}
            if returncode == -signal.SIGKILL:
                stderr = f"timed out after {timeout:.0f} s\n{stderr}"
        return ChildRun(
            returncode=returncode,
            wall_s=measured["wall"],
            # ru_maxrss is KiB on Linux
            peak_rss_mb=None if measured["maxrss_kib"] is None else measured["maxrss_kib"] * 1024 / MB,
            peak_tree_rss_mb=peak[0] / MB,
            cpu_s=measured["cpu"],
            stdout=out.read().decode(errors="replace"),
            stderr=stderr,
        )


def _error_line(stderr: str) -> str:
    """First line of stderr; for a Python traceback, its last line (the exception)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return "(no stderr)"
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]


# --- output inspection --------------------------------------------------------------------


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def count_output_rows(path: Path) -> int:
    """Rows in every Delta table and every visible parquet file outside them under ``path``.

    Directories starting with "." or "_" (journal, staging, _delta_log, dlt's state) are not data.
    """
    from deltalake import DeltaTable

    rows = 0
    delta_roots = sorted(p.parent for p in path.rglob("_delta_log"))
    for root in delta_roots:
        rows += DeltaTable(str(root)).count()
    for file in path.rglob("*.parquet"):
        rel = file.relative_to(path)
        if any(part.startswith((".", "_")) for part in rel.parts):
            continue
        if any(root == file.parent or root in file.parents for root in delta_roots):
            continue
        rows += pq.ParquetFile(file).metadata.num_rows
    return rows


def distinct_ids(path: Path) -> int:
    """Distinct `id` values over the visible parquet files under ``path`` (an Open Mirroring zone)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    files = [
        str(f)
        for f in path.rglob("*.parquet")
        if not any(p.startswith((".", "_")) for p in f.relative_to(path).parts)
    ]
    return pc.count_distinct(
        ds.dataset(files, format="parquet").to_table(columns=["id"]).column("id")
    ).as_py()


def azurite_options() -> dict[str, str]:
    return {
        "account_name": "devstoreaccount1",
        "account_key": os.environ["BENCH_AZURITE_KEY"],
        "endpoint": os.environ["BENCH_AZURITE_ENDPOINT"],
        "allow_http": "true",
    }


def count_azurite_output(prefix: str, target: str) -> tuple[int, int]:
    """Rows and bytes landed under ``prefix`` in the Azurite `bench` container (what a reader sees)."""
    import pyarrow as pa

    options = azurite_options()
    if target == "delta":
        from deltalake import DeltaTable

        delta = DeltaTable(
            f"abfss://bench@devstoreaccount1.dfs.core.windows.net/{prefix}", storage_options=options
        )
        actions = pa.table(delta.get_add_actions(flatten=True))
        return delta.to_pyarrow_dataset().count_rows(), sum(actions.column("size_bytes").to_pylist())
    import obstore
    import polars as pl
    from obstore.store import AzureStore

    store = AzureStore(container_name="bench", config=options)
    files = [
        o
        for chunk in obstore.list(store, prefix)
        for o in chunk
        if o["path"].endswith(".parquet") and "/_" not in o["path"][len(prefix) :]
    ]
    uris = [f"az://bench/{o['path']}" for o in files]
    rows = pl.scan_parquet(uris, storage_options=options).select(pl.len()).collect().item() if uris else 0
    return rows, sum(o["size"] for o in files)


# --- the hygge project ----------------------------------------------------------------------


def _store(target: str, name: str, azurite: bool) -> str:
    if azurite:
        return (
            f"store:\n  type: adls\n  format: {target}\n  account: devstoreaccount1\n"
            f"  container: bench\n  path: {name}\n  endpoint: ${{BENCH_AZURITE_ENDPOINT:-none}}\n"
            '  credential: {type: account_key, account_key: "${BENCH_AZURITE_KEY:-none}"}\n'
        )
    extra = ", folder_deletion_wait_seconds: 0" if target == "open_mirroring" else ""
    return f"store: {{type: {target}, path: '${{BENCH_OUT}}/{name}'{extra}}}\n"


def write_hygge_project(project: Path, table: str) -> None:
    """hygge.yml plus one flow per hygge scenario; URLs and paths come from the environment."""
    sql = "home: {type: sql, connection: src}\n"
    flows = {
        s.name: sql + _store(s.target, s.name, s.azurite) + f"run_type: full_drop\nentities: [{table}]\n"
        for s in PG_SCENARIOS
        if s.tool == "hygge"
    }
    for name, layout in (("hygge_pq2pq", ""), ("hygge_pq2pq_encode", ", compression: snappy")):
        # A store that sets its layout re-encodes; without one, matching files are copied as they are.
        flows[name] = (
            "home: {type: parquet, path: '${BENCH_PARQUET_DIR:-none}'}\n"
            + f"store: {{type: parquet, path: '${{BENCH_OUT}}/{name}'{layout}}}\n"
            + "run_type: full_drop\nentities: [{name: bench_rows, path: '${BENCH_PARQUET_NAME:-none}'}]\n"
        )
    for name, (store, key) in INCREMENTAL.items():
        mark = "{watermark_column: updated_at" + (f", primary_key: [{key}]" if key else "") + "}"
        flows[name] = (
            f"{sql}store: {store}\nrun_type: incremental\nwatermark: {mark}\nentities: [bench_inc]\n"
        )
    many = ", ".join(f"bench_m{i}" for i in range(MANY_ENTITIES))
    flows["hygge_many"] = (
        sql + _store("parquet", "hygge_many", False) + f"run_type: full_drop\nentities: [{many}]\n"
    )
    for count in (1, TINY_ENTITIES):
        names = ", ".join(f"bench_tiny_{i:03d}" for i in range(count))
        flows[f"hygge_tiny{count}"] = (
            sql
            + _store("parquet", f"hygge_tiny{count}", False)
            + f"run_type: full_drop\nentities: [{names}]\n"
        )
    (project / "flows").mkdir(parents=True, exist_ok=True)
    (project / "hygge.yml").write_text(
        "name: bench\nflows_dir: flows\nconnections:\n  src:\n    type: postgres\n    url: ${BENCH_PG_URL}\n"
    )
    for name, text in flows.items():
        (project / "flows" / name).mkdir(parents=True, exist_ok=True)
        (project / "flows" / name / "flow.yml").write_text(text)


def hygge_command(override: str | None) -> list[str]:
    """The hygge CLI: --hygge-cmd, else `hygge` on PATH, else the Typer app from this repo."""
    if override:
        return override.split()
    if shutil.which("hygge"):
        return ["hygge"]
    return [sys.executable, "-c", "from hygge.cli.main import app; app(prog_name='hygge')"]


_SUMMARY = re.compile(r"([\d,]+) rows in ([\d.]+) s")


def hygge_rows(stdout: str) -> int | None:
    """Rows the run moved, from the CLI's summary line."""
    found = _SUMMARY.findall(" ".join(stdout.split()))
    return int(found[-1][0].replace(",", "")) if found else None


# --- running ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Bench:
    """What every run needs: the source, the output folder and the commands."""

    url: str
    table: str
    out: Path
    hygge: list[str]
    timeout: float
    attempt: int = 1
    env: dict[str, str] = dataclasses.field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ, BENCH_PG_URL=self.url, BENCH_OUT=str(self.out), COLUMNS="200", **self.env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_DIR), env.get("PYTHONPATH")]))
        return env

    def go(self, flow: str, *extra: str) -> list[str]:
        return [*self.hygge, "go", "--project", str(self.out / "project"), "--flow", flow, *extra]

    def measure(
        self,
        name: str,
        cmd: list[str],
        expected: int,
        count: Callable[[ChildRun], tuple[int, int]],
        **info: object,
    ) -> dict:
        """Run `cmd`, then count what it landed; status ok only if that equals `expected`."""
        result: dict = {
            "scenario": name,
            "command": cmd,
            "expected_rows": expected,
            "attempt": self.attempt,
            **info,
        }
        print(f"--- {name}: {' '.join(cmd)}", file=sys.stderr, flush=True)
        try:
            child = run_measured(cmd, self.environment(), REPO_DIR, self.timeout)
        except OSError as exc:
            result["status"] = f"error: {exc}"
            return result
        for key, value, digits in [
            ("wall_s", child.wall_s, 3),
            ("peak_rss_mb", child.peak_rss_mb, 1),
            ("peak_tree_rss_mb", child.peak_tree_rss_mb, 1),
            ("cpu_s", child.cpu_s, 2),
        ]:
            if value is not None:
                result[key] = round(value, digits)
        result.update(returncode=child.returncode, stderr_tail=child.stderr[-4000:])
        moved = hygge_rows(child.stdout)
        if moved is not None:
            result["moved_rows"] = moved
        with contextlib.suppress(ValueError, IndexError):
            result["child_report"] = json.loads(child.stdout.strip().splitlines()[-1])
        if child.returncode != 0 or child.wall_s is None:
            result["status"] = f"error: {_error_line(child.stderr or child.stdout)}"
            return result
        rows, out_bytes = count(child)
        result.update(
            rows=rows,
            out_bytes=out_bytes,
            rows_per_s=round(rows / child.wall_s),
            mb_per_s=round(out_bytes / MB / child.wall_s, 1),
            status="ok" if rows == expected else f"MISMATCH: {rows:,} rows, expected {expected:,}",
        )
        return result

    def landed(self, name: str) -> Callable[[ChildRun], tuple[int, int]]:
        return lambda _child: (count_output_rows(self.out / name), dir_bytes(self.out / name))


def run_pg(bench: Bench, scenario: Scenario, source_rows: int) -> list[dict]:
    target = bench.out / scenario.name
    shutil.rmtree(target, ignore_errors=True)
    fmt = "delta" if scenario.target == "delta" else "parquet"
    if scenario.tool == "floor":
        cmd = [sys.executable, str(BENCH_DIR / "floor.py"), "--url", bench.url, "--out", str(target)]
        cmd += ["--format", fmt, "--table", bench.table]
    elif scenario.tool == "dlt":
        python = dlt_env.ensure_dlt_python(BENCH_DIR)
        cmd = [str(python), str(BENCH_DIR / "dlt_load.py"), "--url", bench.url, "--out", str(target)]
        cmd += ["--format", fmt, "--table", bench.table]
    else:
        cmd = bench.go(scenario.name)
    count = bench.landed(scenario.name)
    if scenario.azurite:
        with fresh_azurite() as env:
            bench.env = env
            try:
                return [
                    bench.measure(
                        scenario.name,
                        cmd,
                        source_rows,
                        lambda _c: count_azurite_output(f"{scenario.name}/{bench.table}", scenario.target),
                    )
                ]
            finally:
                bench.env = {}
    return [bench.measure(scenario.name, cmd, source_rows, count)]


def run_parquet(bench: Bench, rows: int, scenarios: list[str]) -> list[dict]:
    folder = CACHE_DIR / f"parquet-{rows}"
    make_parquet.ensure(folder, rows, jobs=os.cpu_count() or 1, log=True)
    label = f"{rows // 1_000_000}M" if rows >= 1_000_000 else str(rows)
    results = []
    for name in scenarios:
        target = bench.out / name
        shutil.rmtree(target, ignore_errors=True)
        if name == "floor_pq2pq":
            cmd = [
                sys.executable,
                str(BENCH_DIR / "floor.py"),
                "--parquet-in",
                str(folder),
                "--out",
                str(target),
            ]
        else:
            bench.env = {"BENCH_PARQUET_DIR": str(folder.parent), "BENCH_PARQUET_NAME": folder.name}
            cmd = bench.go(name)
        results.append(bench.measure(f"{name} {label}", cmd, rows, bench.landed(name)))
        bench.env = {}
        shutil.rmtree(target, ignore_errors=True)  # 100M rows are 12 GB
    return results


def run_incremental(bench: Bench, name: str) -> list[dict]:
    """Full load of a fresh copy of the table, then a 1 % change landed incrementally."""
    copy_table(bench.url, bench.table, "bench_inc")
    base = generate.table_row_count(bench.url, "bench_inc") or 0
    shutil.rmtree(bench.out / name, ignore_errors=True)
    count = bench.landed(name)
    full = bench.measure(f"{name} full", bench.go(name), base, count, phase="full")
    updated, inserted = generate.apply_changes(bench.url, CHANGE_PCT, "bench_inc")
    keyed = INCREMENTAL[name][1] is not None
    # Append-only stores keep every version; keyed stores one per key. Open Mirroring's files keep
    # every upsert until Fabric applies them (re-read ties included), so its distinct keys are counted.
    expected = base + inserted if keyed else base + updated + inserted
    if name == "inc_open_mirroring":
        count = lambda _c: (distinct_ids(bench.out / name), dir_bytes(bench.out / name))  # noqa: E731
    step = bench.measure(
        f"{name} +{CHANGE_PCT:g}%",
        bench.go(name),
        expected,
        count,
        phase="increment",
        changed=updated + inserted,
    )
    shutil.rmtree(bench.out / name, ignore_errors=True)
    return [full, step]


def run_many(bench: Bench, source_rows: int) -> list[dict]:
    per = source_rows // MANY_ENTITIES
    with psycopg.connect(bench.url, autocommit=True) as conn:
        for i in range(MANY_ENTITIES):
            conn.execute(
                f"CREATE OR REPLACE VIEW bench_m{i} AS SELECT * FROM {bench.table} "
                f"WHERE id > {i * per} AND id <= {(i + 1) * per}"
            )
    shutil.rmtree(bench.out / "hygge_many", ignore_errors=True)
    cmd = bench.go("hygge_many", "--concurrency", "4")
    return [bench.measure("hygge_many 10x", cmd, per * MANY_ENTITIES, bench.landed("hygge_many"))]


def run_tiny(bench: Bench, scenarios: list[str]) -> list[dict]:
    with psycopg.connect(bench.url, autocommit=True) as conn:
        for i in range(TINY_ENTITIES):
            conn.execute(f"DROP TABLE IF EXISTS bench_tiny_{i:03d}")
            conn.execute(
                f"CREATE TABLE bench_tiny_{i:03d} AS SELECT * FROM {bench.table} WHERE id <= {TINY_ROWS}"
            )
    results = []
    for name in scenarios:
        if name == "hygge_tiny_prefect":
            # One process, one temporary API for both timed runs: see bench/prefect_tiny.py.
            shutil.rmtree(bench.out / f"hygge_tiny{TINY_ENTITIES}", ignore_errors=True)
            bench.env = {"PREFECT_HOME": str(bench.out / "prefect-home"), "PREFECT_API_URL": ""}
            cmd = [sys.executable, str(BENCH_DIR / "prefect_tiny.py"), str(bench.out / "project")]
            landed = bench.landed(f"hygge_tiny{TINY_ENTITIES}")
            results.append(bench.measure(f"{name} 1+{TINY_ENTITIES}", cmd, TINY_ENTITIES * TINY_ROWS, landed))
            bench.env = {}
            continue
        for count in (1, TINY_ENTITIES):
            flow = f"hygge_tiny{count}"
            shutil.rmtree(bench.out / flow, ignore_errors=True)
            results.append(
                bench.measure(
                    f"{name} {count}", bench.go(flow), count * TINY_ROWS, bench.landed(flow), entities=count
                )
            )
    return results


def copy_table(url: str, source: str, copy: str) -> None:
    """A fresh copy of `source` with its key and watermark index, so changes never touch `source`."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {copy}")
        conn.execute(f"CREATE TABLE {copy} (LIKE {source})")
        conn.execute(f"INSERT INTO {copy} SELECT * FROM {source}")
        conn.execute(f"ALTER TABLE {copy} ADD PRIMARY KEY (id)")
        conn.execute(f"CREATE INDEX {copy}_updated_at_idx ON {copy} (updated_at)")
        conn.execute(f"VACUUM (FREEZE, ANALYZE) {copy}")


def format_table(results: list[dict]) -> str:
    header = (
        "scenario",
        "rows",
        "wall s",
        "rows/s",
        "MB/s",
        "out MB",
        "peak RSS MB",
        "tree RSS MB",
        "cpu s",
        "status",
    )
    rows = [header]
    for r in results:

        def num(key: str, fmt: str, r: dict = r) -> str:
            return format(r[key], fmt) if key in r else "-"

        out_mb = f"{r['out_bytes'] / MB:.1f}" if "out_bytes" in r else "-"
        rows.append(
            (
                r["scenario"],
                num("rows", ","),
                num("wall_s", ".2f"),
                num("rows_per_s", ","),
                num("mb_per_s", ".1f"),
                out_mb,
                num("peak_rss_mb", ".0f"),
                num("peak_tree_rss_mb", ".0f"),
                num("cpu_s", ".1f"),
                r["status"],
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header) - 1)]
    lines = []
    for row in rows:
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row[:-1], widths, strict=True))
        ]
        lines.append("  ".join([*cells, str(row[-1])]))
    return "\n".join(lines)


def ratios(results: list[dict]) -> list[str]:
    """The figures the targets are stated in, from the best (fastest) run of each scenario."""
    best: dict[str, dict] = {}
    for r in results:
        if r.get("status") != "ok" or "wall_s" not in r:
            continue
        if r["scenario"] not in best or r["wall_s"] < best[r["scenario"]]["wall_s"]:
            best[r["scenario"]] = r
    lines = []

    def speed(name: str) -> float | None:
        return best[name]["rows_per_s"] if name in best else None

    for fmt in ("parquet", "delta"):
        ours, floor, dlt = speed(f"hygge_{fmt}"), speed(f"floor_{fmt}"), speed(f"dlt_{fmt}")
        if ours and floor:
            lines.append(
                f"PostgreSQL -> {fmt}: hygge / floor throughput = {ours / floor:.2f}x (target >= 0.9)"
            )
        if ours and dlt:
            lines.append(f"PostgreSQL -> {fmt}: hygge / dlt throughput = {ours / dlt:.2f}x (target >= 1.3)")
    for name, r in best.items():
        if name.startswith(("hygge_", "inc_")) and "peak_rss_mb" in r and r.get("rows", 0) >= 1_000_000:
            flag = "ok" if r["peak_rss_mb"] <= 300 else "OVER"
            lines.append(f"peak RSS {name}: {r['peak_rss_mb']:.0f} MB ({flag}; target <= 300)")
    for name, r in best.items():
        if name.startswith("hygge_pq2pq"):
            lines.append(f"parquet -> parquet, {name}: {r['rows_per_s']:,} rows/s (target >= 3,000,000)")
    for name in INCREMENTAL:
        full, step = best.get(f"{name} full"), best.get(f"{name} +{CHANGE_PCT:g}%")
        if full and step:
            lines.append(
                f"incremental {name}: {step['wall_s']:.2f} s vs full {full['wall_s']:.2f} s = "
                f"{step['wall_s'] / full['wall_s']:.3f}x (target <= 0.1)"
            )
    one, many = best.get("hygge_tiny_cli 1"), best.get(f"hygge_tiny_cli {TINY_ENTITIES}")
    if one and many:
        per = (many["wall_s"] - one["wall_s"]) / (TINY_ENTITIES - 1) * 1000
        lines.append(f"overhead per entity, hygge go: {per:.0f} ms (target <= 50)")
    prefect = best.get(f"hygge_tiny_prefect 1+{TINY_ENTITIES}", {}).get("child_report")
    if prefect:
        lines.append(
            f"overhead per entity, Prefect land flow: {prefect['per_entity_ms']:.0f} ms (target <= 50)"
        )
    return lines


def source_info(url: str, table: str) -> dict:
    with psycopg.connect(url, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        rows, heap = conn.execute(f"SELECT count(*), pg_table_size('{table}') FROM {table}").fetchone()
        width = conn.execute(
            "SELECT sum(avg_width) FROM pg_stats WHERE schemaname = 'public' AND tablename = %s",
            (table,),
        ).fetchone()[0]
    return {
        "table": table,
        "rows": rows,
        "heap_bytes": heap,
        "avg_row_width_bytes": int(width or 0),
        "server_version": version,
    }


def environment_info() -> dict:
    versions = {}
    for module in ("connectorx", "pyarrow", "deltalake", "polars", "prefect"):
        with contextlib.suppress(Exception):
            versions[module] = __import__(module).__version__
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "versions": versions,
    }


def _load_test_module(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_DIR / "tests" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@contextlib.contextmanager
def fresh_azurite() -> Iterator[dict[str, str]]:
    """A throwaway Azurite (tests/azurite.py) with a `bench` container, one per run (the emulator
    slows down as its blob index grows, which would tax later runs for earlier ones)."""
    module = _load_test_module("azurite")
    with module.running_azurite(Path(tempfile.mkdtemp(prefix="hygge-bench-azurite-"))) as info:
        info.create_container("bench")
        env = {"BENCH_AZURITE_ENDPOINT": info.blob_endpoint, "BENCH_AZURITE_KEY": info.key}
        os.environ.update(env)  # for counting the output from this process
        yield env


@contextlib.contextmanager
def database(
    url: str | None, rows: int | None, table: str, settings: dict[str, object] | None = None
) -> Iterator[str]:
    """The given server (generating the table if asked or missing), or a throwaway one started with
    `settings` (server parameters)."""
    if url:
        if rows is not None:
            generate.ensure(url, rows, table)
        elif generate.table_row_count(url, table) is None:
            generate.generate(url, DEFAULT_ROWS, table)
        yield url
        return
    pg_server = _load_test_module("pg_server")
    with pg_server.running_postgres(Path(tempfile.mkdtemp(prefix="hygge-bench-pg-")), settings) as tmp:
        generate.generate(tmp, rows or DEFAULT_ROWS, table)
        yield tmp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="PostgreSQL URL; omitted: start a throwaway server")
    parser.add_argument("--rows", type=int, help=f"rows in the PostgreSQL table (default {DEFAULT_ROWS:,})")
    parser.add_argument("--parquet-rows", default=DEFAULT_PARQUET_ROWS, help="comma-separated sizes")
    parser.add_argument("--table", default="bench_rows")
    parser.add_argument("--out", type=Path, help="working/output directory (kept); default: a temp dir")
    parser.add_argument(
        "--groups", default=",".join(GROUPS), help=f"comma-separated, from: {', '.join(GROUPS)}"
    )
    parser.add_argument("--scenarios", help=f"comma-separated, from: {', '.join(SCENARIO_NAMES)}")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    parser.add_argument("--hygge-cmd", help="command that runs the hygge CLI")
    args = parser.parse_args(argv)

    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    if unknown := [g for g in groups if g not in GROUPS]:
        parser.error(f"unknown groups {unknown}; choose from {list(GROUPS)}")
    chosen = [s.strip() for s in args.scenarios.split(",")] if args.scenarios else list(SCENARIO_NAMES)
    if unknown := [s for s in chosen if s not in SCENARIO_NAMES]:
        parser.error(f"unknown scenarios {unknown}; choose from {SCENARIO_NAMES}")
    parquet_rows = [int(n) for n in args.parquet_rows.split(",") if n.strip()]
    generate._ident(args.table)

    out = args.out.resolve() if args.out else Path(tempfile.mkdtemp(prefix="hygge-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    try:
        with database(args.url, args.rows, args.table) as url:
            source = source_info(url, args.table)
            write_hygge_project(out / "project", args.table)
            bench = Bench(url, args.table, out, hygge_command(args.hygge_cmd), args.timeout)
            for attempt in range(1, args.repeat + 1):
                bench.attempt = attempt
                if "pg" in groups:
                    for scenario in PG_SCENARIOS:
                        if scenario.name in chosen:
                            results += run_pg(bench, scenario, source["rows"])
                if "parquet" in groups:
                    wanted = [n for n in ("floor_pq2pq", "hygge_pq2pq", "hygge_pq2pq_encode") if n in chosen]
                    for rows in parquet_rows if wanted else []:
                        results += run_parquet(bench, rows, wanted)
                if "incremental" in groups:
                    for name in INCREMENTAL:
                        if name in chosen:
                            results += run_incremental(bench, name)
                if "many" in groups and "hygge_many" in chosen:
                    results += run_many(bench, source["rows"])
                if "tiny" in groups:
                    wanted = [n for n in ("hygge_tiny_cli", "hygge_tiny_prefect") if n in chosen]
                    results += run_tiny(bench, wanted) if wanted else []
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)

    print(
        f"\n{source['rows']:,} rows in {args.table}: heap {source['heap_bytes'] / MB:,.0f} MB, "
        f"avg row width {source['avg_row_width_bytes']} bytes (PostgreSQL {source['server_version']})"
    )
    print(format_table(results))
    summary = ratios(results)
    print("\n" + "\n".join(summary))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(exist_ok=True)
    gitignore = RESULTS_DIR / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text("*\n!.gitignore\n")
    path = RESULTS_DIR / f"{stamp}.json"
    suffix = 1
    while path.exists():  # two runs within one second
        suffix += 1
        path = RESULTS_DIR / f"{stamp}-{suffix}.json"
    report = {
        "timestamp": stamp,
        "source": source,
        "environment": environment_info(),
        "out_dir": str(out) if args.out else None,
        "results": results,
        "summary": summary,
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults: {path}")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
