"""Run the hygge benchmarks, each scenario in a fresh subprocess.

    python bench/run.py [--url URL] [--rows N] [--out DIR] [--scenarios floor,hygge_parquet,...]

Without --url a throwaway PostgreSQL server is started (tests/pg_server.py), filled with --rows
rows (default 10,000,000) by bench/generate.py, used and removed. With --url the table is used
as it is, or (re)generated first if --rows is given and the row count differs.

For every scenario it reports rows written (counted from the output, and checked against the
source), wall seconds of the child process (including interpreter start and imports), rows/s,
MB/s of output, peak RSS of the child (ru_maxrss from wait4, i.e. its largest single process)
and peak RSS of the child's whole process tree (psutil, sampled every 50 ms), plus CPU seconds.
The table is printed and written as JSON to bench/results/<UTC timestamp>.json.
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
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import generate  # bench/generate.py (this script's directory is on sys.path)
import psutil
import psycopg
import pyarrow.parquet as pq

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_ROWS = 10_000_000
MB = 1_000_000


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "floor" or "hygge"
    fmt: str  # "parquet" or "delta"
    flow: str | None = None  # hygge flow name
    description: str = ""
    azurite: bool = False  # land in a container on a local Azurite instead of a local folder


SCENARIOS = {
    s.name: s
    for s in [
        Scenario(
            "floor",
            "floor",
            "parquet",
            description="connectorx arrow_stream -> pyarrow ParquetWriter (snappy)",
        ),
        Scenario(
            "floor_delta",
            "floor",
            "delta",
            description="connectorx arrow_stream -> deltalake.write_deltalake",
        ),
        Scenario(
            "hygge_parquet",
            "hygge",
            "parquet",
            flow="bench_parquet",
            description="hygge go, sql home -> parquet store, full_drop",
        ),
        Scenario(
            "hygge_delta",
            "hygge",
            "delta",
            flow="bench_delta",
            description="hygge go, sql home -> delta store, full_drop",
        ),
        Scenario(
            "hygge_azurite_parquet",
            "hygge",
            "parquet",
            flow="bench_azurite_parquet",
            description="hygge go, sql home -> parquet in an Azurite container, full_drop",
            azurite=True,
        ),
        Scenario(
            "hygge_azurite_delta",
            "hygge",
            "delta",
            flow="bench_azurite_delta",
            description="hygge go, sql home -> delta in an Azurite container, full_drop",
            azurite=True,
        ),
    ]
}


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

    Directories starting with "." or "_" (journal, staging, _delta_log) are not data.
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


# --- scenarios ----------------------------------------------------------------------------


def write_hygge_project(project: Path, table: str) -> None:
    """hygge.yml plus one flow per store type; URLs and paths come from the environment."""
    (project / "flows").mkdir(parents=True, exist_ok=True)
    (project / "hygge.yml").write_text(
        "name: bench\nflows_dir: flows\nconnections:\n  src:\n    type: postgres\n    url: ${BENCH_PG_URL}\n"
    )
    for scenario in SCENARIOS.values():
        if scenario.kind != "hygge":
            continue
        flow_dir = project / "flows" / scenario.flow
        flow_dir.mkdir(parents=True, exist_ok=True)
        if scenario.azurite:
            store = (
                f"store:\n  type: adls\n  format: {scenario.fmt}\n  account: devstoreaccount1\n"
                f"  container: bench\n  path: {scenario.name}\n  endpoint: ${{BENCH_AZURITE_ENDPOINT:-none}}\n"
                '  credential: {type: account_key, account_key: "${BENCH_AZURITE_KEY:-none}"}\n'
            )
        else:
            store = f'store:\n  type: {scenario.fmt}\n  path: "${{BENCH_OUT}}/{scenario.name}"\n'
        (flow_dir / "flow.yml").write_text(
            "home: {type: sql, connection: src}\n"
            + store
            + "run_type: full_drop\n"
            + f"entities: [{table}]\n"
        )


def hygge_command(override: str | None) -> list[str]:
    """The hygge CLI: --hygge-cmd, else `hygge` on PATH, else the Typer app from this repo."""
    if override:
        return override.split()
    if shutil.which("hygge"):
        return ["hygge"]
    return [sys.executable, "-c", "from hygge.cli.main import app; app(prog_name='hygge')"]


def scenario_command(scenario: Scenario, url: str, out: Path, table: str, hygge_cmd: list[str]) -> list[str]:
    if scenario.kind == "floor":
        return [
            sys.executable,
            str(BENCH_DIR / "floor.py"),
            "--url",
            url,
            "--out",
            str(out / scenario.name),
            "--format",
            scenario.fmt,
            "--table",
            table,
        ]
    return [*hygge_cmd, "go", "--project", str(out / "project"), "--flow", scenario.flow]


def run_scenario(
    scenario: Scenario,
    url: str,
    out: Path,
    table: str,
    source_rows: int,
    hygge_cmd: list[str],
    timeout: float,
) -> dict:
    target = out / scenario.name
    shutil.rmtree(target, ignore_errors=True)
    cmd = scenario_command(scenario, url, out, table, hygge_cmd)
    env = dict(os.environ, BENCH_PG_URL=url, BENCH_OUT=str(out))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_DIR), env.get("PYTHONPATH")]))
    result: dict = {
        "scenario": scenario.name,
        "description": scenario.description,
        "command": cmd,
        "source_rows": source_rows,
    }
    print(f"--- {scenario.name}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    try:
        child = run_measured(cmd, env, REPO_DIR, timeout)
    except OSError as exc:  # e.g. the command does not exist
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
    with contextlib.suppress(ValueError, IndexError):
        result["child_report"] = json.loads(child.stdout.strip().splitlines()[-1])
    if child.returncode != 0 or child.wall_s is None:
        result["status"] = f"error: {_error_line(child.stderr)}"
        return result

    if scenario.azurite:
        rows, out_bytes = count_azurite_output(scenario, table)
    else:
        rows = count_output_rows(target)
        out_bytes = dir_bytes(target)
    result.update(
        rows=rows,
        out_bytes=out_bytes,
        rows_per_s=round(rows / child.wall_s),
        mb_per_s=round(out_bytes / MB / child.wall_s, 1),
        status="ok" if rows == source_rows else f"MISMATCH: wrote {rows:,} of {source_rows:,}",
    )
    return result


# --- reporting ----------------------------------------------------------------------------


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
    for module in ("connectorx", "pyarrow", "deltalake", "polars"):
        with contextlib.suppress(Exception):
            versions[module] = __import__(module).__version__
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "versions": versions,
    }


# --- main ---------------------------------------------------------------------------------


def azurite_options() -> dict[str, str]:
    return {
        "account_name": "devstoreaccount1",
        "account_key": os.environ["BENCH_AZURITE_KEY"],
        "endpoint": os.environ["BENCH_AZURITE_ENDPOINT"],
        "allow_http": "true",
    }


def count_azurite_output(scenario: Scenario, table: str) -> tuple[int, int]:
    """Rows and bytes a scenario landed in the Azurite container (what a reader would see)."""
    options = azurite_options()
    prefix = f"{scenario.name}/{table}"
    if scenario.fmt == "delta":
        from deltalake import DeltaTable

        delta = DeltaTable(
            f"abfss://bench@devstoreaccount1.dfs.core.windows.net/{prefix}", storage_options=options
        )
        import pyarrow as pa

        actions = pa.table(delta.get_add_actions(flatten=True))
        return delta.to_pyarrow_dataset().count_rows(), sum(actions.column("size_bytes").to_pylist())
    import obstore
    from obstore.store import AzureStore

    store = AzureStore(container_name="bench", config=options)
    files = [
        o
        for chunk in obstore.list(store, prefix)
        for o in chunk
        if o["path"].endswith(".parquet") and "/_" not in o["path"][len(prefix) :]
    ]
    import polars as pl

    uris = [f"az://bench/{o['path']}" for o in files]
    rows = pl.scan_parquet(uris, storage_options=options).select(pl.len()).collect().item() if uris else 0
    return rows, sum(o["size"] for o in files)


@contextlib.contextmanager
def fresh_azurite() -> Iterator[None]:
    """A throwaway Azurite (tests/azurite.py) with a `bench` container, one per run: the emulator
    slows down as its blob index grows, which would tax later scenarios for earlier ones."""
    spec = importlib.util.spec_from_file_location("azurite", REPO_DIR / "tests" / "azurite.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["azurite"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    with module.running_azurite(Path(tempfile.mkdtemp(prefix="hygge-bench-azurite-"))) as info:
        info.create_container("bench")
        os.environ["BENCH_AZURITE_ENDPOINT"] = info.blob_endpoint
        os.environ["BENCH_AZURITE_KEY"] = info.key
        yield


def _load_pg_server():
    spec = importlib.util.spec_from_file_location("pg_server", REPO_DIR / "tests" / "pg_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def database(url: str | None, rows: int | None, table: str) -> Iterator[str]:
    """The given server (generating the table if asked), or a throwaway one."""
    if url:
        if rows is not None:
            generate.ensure(url, rows, table)
        elif generate.table_row_count(url, table) is None:
            raise SystemExit(f"table {table} does not exist at --url; pass --rows to generate it")
        yield url
        return
    pg_server = _load_pg_server()
    with pg_server.running_postgres(Path(tempfile.mkdtemp(prefix="hygge-bench-pg-"))) as tmp:
        generate.generate(tmp, rows or DEFAULT_ROWS, table)
        yield tmp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="PostgreSQL URL; omitted: start a throwaway server")
    parser.add_argument(
        "--rows", type=int, help=f"rows to generate (default {DEFAULT_ROWS:,} for a throwaway server)"
    )
    parser.add_argument("--table", default="bench_rows")
    parser.add_argument(
        "--out", type=Path, help="working/output directory (kept); default: a temp dir, removed"
    )
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, from: {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    parser.add_argument("--hygge-cmd", help="command that runs the hygge CLI")
    args = parser.parse_args(argv)

    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {list(SCENARIOS)}")
    generate._ident(args.table)

    out = args.out.resolve() if args.out else Path(tempfile.mkdtemp(prefix="hygge-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        with database(args.url, args.rows, args.table) as url:
            source = source_info(url, args.table)
            write_hygge_project(out / "project", args.table)
            hygge_cmd = hygge_command(args.hygge_cmd)
            results = []
            for name in chosen:
                for attempt in range(args.repeat):
                    with fresh_azurite() if SCENARIOS[name].azurite else contextlib.nullcontext():
                        result = run_scenario(
                            SCENARIOS[name], url, out, args.table, source["rows"], hygge_cmd, args.timeout
                        )
                    result["attempt"] = attempt + 1
                    results.append(result)
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)

    print(
        f"\n{source['rows']:,} rows in {args.table}: heap {source['heap_bytes'] / MB:,.0f} MB, "
        f"avg row width {source['avg_row_width_bytes']} bytes (PostgreSQL {source['server_version']})"
    )
    print(format_table(results))
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
    path.write_text(
        json.dumps(
            {
                "timestamp": stamp,
                "source": source,
                "environment": environment_info(),
                "out_dir": str(out) if args.out else None,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nresults: {path}")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
