"""Convergence benchmarks: deletes found by key comparison, no-change runs, PostgreSQL logical decoding.

    python bench/convergence.py                      # 10M rows, throwaway server (wal_level=logical)
    python bench/convergence.py --rows 200000        # a quick check
    python bench/convergence.py --url URL --out DIR  # an existing server; outputs kept in DIR

Every run is a `hygge go` subprocess measured by bench/run.py's launcher (wall, peak RSS, CPU):

1. detect vs plain: two flows per store (parquet, Delta, Open Mirroring) on one copy of the table,
   keyed on id with watermark updated_at, one with `deletes: {}`; after the full load 1 % of the rows
   are deleted, 1 % updated and 0.5 % inserted, then each lands an incremental. The detect store must
   hold exactly the source's ids, the plain one the source's plus the deleted ones.
2. no change: right after the full load, an incremental with nothing changed in the source: its wall
   time, and proof nothing was written (store folder names+sizes before/after, Delta version).
3. logical decoding (`feed: {type: postgres_logical}`), every store kind: the first run (a full load
   that creates the slot), then 1 % updated, 0.5 % inserted, 0.1 % deleted (keys chosen at random)
   and an incremental; then the same among the newest ids (updates to recent rows, the usual case)
   and another incremental.

Results: a table, the targets met or not, and bench/results/<UTC stamp>-convergence.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import generate  # bench/generate.py
import polars as pl
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import run as bench_run  # bench/run.py (this script's directory is on sys.path)

STORES = ("parquet", "delta", "open_mirroring")
FEED_STORES = ("parquet", "delta", "open_mirroring")
DETECT_TABLE, FEED_TABLE = "conv_detect", "conv_feed"
DELETE_PCT, CHANGE_PCT, FEED_DELETE_PCT = 1.0, 1.0, 0.1
TARGET_DETECT_RATIO, TARGET_RSS_MB, TARGET_NO_CHANGE_S, TARGET_FEED_RATIO = 1.3, 300.0, 2.0, 0.1
JOURNAL = re.compile(r"(^|/)\.hygge_journal(/|$)")  # written by every run, data or not
Count = Callable[[bench_run.ChildRun], tuple[int, int]]


# --- the hygge project ----------------------------------------------------------------------------


def _store(kind: str, flow: str) -> str:
    extra = ", folder_deletion_wait_seconds: 0" if kind == "open_mirroring" else ""
    return f"{{type: {kind}, path: '${{BENCH_OUT}}/{flow}'{extra}}}"


def flows() -> dict[str, str]:
    """Flow name -> flow.yml text: detect_<store>, plain_<store> and feed_<store>."""
    home = "home: {type: sql, connection: src}\nrun_type: incremental\n"
    mark = "watermark: {primary_key: [id], watermark_column: updated_at}\n"
    texts = {}
    for kind in STORES:
        for mode, extra in (("detect", "deletes: {}\n"), ("plain", "")):
            flow = f"{mode}_{kind}"
            texts[flow] = f"{home}store: {_store(kind, flow)}\n{mark}{extra}entities: [{DETECT_TABLE}]\n"
    for kind in FEED_STORES:
        flow = f"feed_{kind}"
        feed = f"feed: {{type: postgres_logical, slot: {slot_name(kind)}}}\n"
        texts[flow] = (
            f"{home}store: {_store(kind, flow)}\nwatermark: {{primary_key: [id]}}\n{feed}"
            f"entities: [{FEED_TABLE}]\n"
        )
    return texts


def slot_name(kind: str) -> str:
    """The feed's slot (and publication): named, so the benchmark can drop it afterwards."""
    return f"hygge_bench_conv_{kind}"


def write_project(project: Path) -> None:
    (project / "hygge.yml").parent.mkdir(parents=True, exist_ok=True)
    (project / "hygge.yml").write_text(
        "name: convergence\nflows_dir: flows\nconnections:\n  src:\n    type: postgres\n"
        "    url: ${BENCH_PG_URL}\n"
    )
    for name, text in flows().items():
        (project / "flows" / name).mkdir(parents=True, exist_ok=True)
        (project / "flows" / name / "flow.yml").write_text(text)


# --- the source -----------------------------------------------------------------------------------


def delete_rows(url: str, table: str, pct: float, seed: int = -7) -> list[int]:
    """Delete about `pct` % of the rows, chosen by a hash of the id (never the largest id, so
    generate.apply_changes' inserts never bring a deleted id back); return the deleted ids."""
    threshold = round(pct * 10_000)  # out of 1,000,000, like generate.apply_changes
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            f"DELETE FROM {table} WHERE (hashint8extended(id, %(seed)s) & 9223372036854775807) "
            f"%% 1000000 < %(threshold)s AND id < (SELECT max(id) FROM {table}) RETURNING id",
            {"seed": seed, "threshold": threshold},
        ).fetchall()
    return [r[0] for r in rows]


def wal_level(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SHOW wal_level").fetchone()[0]


def drop_feeds(url: str) -> None:
    """Drop the feeds' slots and publications (an abandoned slot keeps WAL on the server forever)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for kind in FEED_STORES:
            name = slot_name(kind)
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                (name,),
            )
            conn.execute(f"DROP PUBLICATION IF EXISTS {name}")


# --- what landed ----------------------------------------------------------------------------------


def landed_ids(root: Path, kind: str, entity: str) -> pa.Array:
    """The ids a reader of the store sees (duplicates included): Delta's live files, the visible parquet
    files, or an Open Mirroring replay (files in sequence order, last marker per id, 2 deletes)."""
    folder = root / entity
    if kind == "delta":
        from deltalake import DeltaTable

        return (
            DeltaTable(str(folder))
            .to_pyarrow_dataset()
            .to_table(columns=["id"])
            .column("id")
            .combine_chunks()
        )
    files = sorted(f for f in folder.glob("*.parquet") if not f.name.startswith(("_", ".")))
    if kind == "parquet":
        parts = [pq.read_table(f, columns=["id"]).column("id") for f in files]
        return pa.chunked_array(parts, pa.int64()).combine_chunks() if parts else pa.array([], pa.int64())
    frames = []
    for file in files:  # 20-digit names: sorted is sequence order
        names = pq.read_schema(file).names
        frame = pl.from_arrow(pq.read_table(file, columns=[c for c in ("id", "__rowMarker__") if c in names]))
        if "__rowMarker__" not in frame.columns:  # an initial load may omit the marker
            frame = frame.with_columns(pl.lit(0, pl.Int32).alias("__rowMarker__"))
        frames.append(frame)
    if not frames:
        return pa.array([], pa.int64())
    live = pl.concat(frames, how="vertical_relaxed").unique(subset=["id"], keep="last", maintain_order=True)
    return live.filter(pl.col("__rowMarker__") != 2).get_column("id").to_arrow()


def checker(root: Path, kind: str, entity: str, gone: list[int], facts: dict) -> Count:
    """A Bench.measure count: distinct landed ids and the store's bytes; details go to `facts`."""

    def count(_child: bench_run.ChildRun) -> tuple[int, int]:
        ids = landed_ids(root, kind, entity)
        distinct = pc.count_distinct(ids).as_py()
        facts.update(landed_rows=len(ids), distinct_ids=distinct)
        if gone:
            facts["deleted_still_held"] = (
                pc.sum(pc.is_in(ids, value_set=pa.array(gone, pa.int64()))).as_py() or 0
            )
        return distinct, bench_run.dir_bytes(root)

    return count


def listing(root: Path) -> dict[str, int]:
    """Every file under a store folder (journal excluded: every run records itself) with its size."""
    return {
        rel: p.stat().st_size
        for p in sorted(root.rglob("*"))
        if p.is_file() and not JOURNAL.search(rel := p.relative_to(root).as_posix())
    }


def delta_version(root: Path, entity: str) -> int | None:
    from deltalake import DeltaTable

    return DeltaTable(str(root / entity)).version() if (root / entity / "_delta_log").exists() else None


# --- scenarios ------------------------------------------------------------------------------------


def measure(
    bench: bench_run.Bench, flow: str, phase: str, expected: int, gone: list[int], **info: object
) -> dict:
    """One `hygge go --flow flow`, then its store counted: status ok only if the distinct ids landed are
    `expected`, none twice, and of the ids in `gone` only plain stores still hold them (all of them)."""
    kind = flow.split("_", 1)[1]
    facts: dict = {}
    count = checker(
        bench.out / flow, kind, FEED_TABLE if flow.startswith("feed") else DETECT_TABLE, gone, facts
    )
    r = bench.measure(f"{flow} {phase}", bench.go(flow), expected, count, flow=flow, store=kind, **info)
    r.update(facts)
    held = len(gone) if flow.startswith("plain") else 0
    if r["status"] == "ok" and facts["landed_rows"] != facts["distinct_ids"]:
        r["status"] = f"DUPLICATES: {facts['landed_rows']:,} rows, {facts['distinct_ids']:,} ids"
    elif r["status"] == "ok" and gone and facts["deleted_still_held"] != held:
        r["status"] = f"MISMATCH: {facts['deleted_still_held']:,} deleted ids landed, expected {held:,}"
    return r


def change(url: str, table: str, delete_pct: float) -> tuple[list[int], dict]:
    """Delete `delete_pct` %, update 1 % and insert 0.5 % rows of `table`: the deleted ids, the counts."""
    gone = delete_rows(url, table, delete_pct)
    updated, inserted = generate.apply_changes(url, CHANGE_PCT, table)
    source = generate.table_row_count(url, table) or 0
    return gone, {"deleted": len(gone), "updated": updated, "inserted": inserted, "source_rows": source}


def run_detect(bench: bench_run.Bench) -> list[dict]:
    """Scenarios 1 and 2: full loads, no-change incrementals, then deletes + changes and incrementals."""
    bench_run.copy_table(bench.url, bench.table, DETECT_TABLE)
    base = generate.table_row_count(bench.url, DETECT_TABLE) or 0
    flows = [f"{mode}_{kind}" for kind in STORES for mode in ("plain", "detect")]
    results = []
    for flow in flows:
        shutil.rmtree(bench.out / flow, ignore_errors=True)
        results.append(measure(bench, flow, "full", base, []))
    for flow in flows:
        root = bench.out / flow
        before, version = listing(root), delta_version(root, DETECT_TABLE)
        r = measure(bench, flow, "no change", base, [])
        after, version_after = listing(root), delta_version(root, DETECT_TABLE)
        written = sorted(k for k in after if before.get(k) != after[k])  # new or changed files
        removed = sorted(before.keys() - after.keys())  # e.g. an earlier commit's leftover staging
        r.update(files=len(after), written_files=written[:20], written_count=len(written))
        r.update(removed_files=removed[:20], delta_version_before=version, delta_version_after=version_after)
        if r["status"] == "ok" and (written or version != version_after):
            r["status"] = (
                f"WROTE: {len(written)} file(s) new or changed, Delta version {version} -> {version_after}"
            )
        results.append(r)
    gone, counts = change(bench.url, DETECT_TABLE, DELETE_PCT)
    for flow in flows:
        expected = counts["source_rows"] + (len(gone) if flow.startswith("plain") else 0)
        results.append(measure(bench, flow, "+changes", expected, gone, **counts))
    return results


def run_feed(bench: bench_run.Bench) -> list[dict]:
    """Scenario 3: the feed's first run (a full load creating the slot), changes, an incremental."""
    drop_feeds(bench.url)
    bench_run.copy_table(bench.url, bench.table, FEED_TABLE)
    base = generate.table_row_count(bench.url, FEED_TABLE) or 0
    results = []
    for kind in FEED_STORES:
        shutil.rmtree(bench.out / f"feed_{kind}", ignore_errors=True)
        results.append(measure(bench, f"feed_{kind}", "full", base, []))
    gone, counts = change(bench.url, FEED_TABLE, FEED_DELETE_PCT)
    for kind in FEED_STORES:
        results.append(measure(bench, f"feed_{kind}", "+changes", counts["source_rows"], gone, **counts))
    recent, counts = clustered_change(bench.url, FEED_TABLE)
    gone += recent
    for kind in FEED_STORES:
        results.append(
            measure(bench, f"feed_{kind}", "+recent changes", counts["source_rows"], gone, **counts)
        )
    return results


def clustered_change(url: str, table: str) -> tuple[list[int], dict]:
    """The usual shape of a day's changes: 1 % of the rows updated and 0.1 % deleted, all among the
    newest ids (the last rows landed, so the last files), and 0.5 % inserted."""
    with psycopg.connect(url, autocommit=True) as conn:
        count, top = conn.execute(f"SELECT count(*), max(id) FROM {table}").fetchone()
        span = round(count * CHANGE_PCT / 100)
        gone = [
            r[0]
            for r in conn.execute(
                f"DELETE FROM {table} WHERE id > %(low)s AND id %% 10 = 3 AND id < %(top)s RETURNING id",
                {"low": top - span, "top": top},
            ).fetchall()
        ]
        updated = conn.execute(
            f"UPDATE {table} SET qty = qty + 1, label = 'recent' WHERE id > %(low)s",
            {"low": top - span},
        ).rowcount
        inserted = round(count * CHANGE_PCT / 200)
        generate._insert_range(conn, table, top + 1, top + inserted, "localtimestamp")
        generate._finish(conn, table)
    source = generate.table_row_count(url, table) or 0
    return gone, {"deleted": len(gone), "updated": updated, "inserted": inserted, "source_rows": source}


# --- reporting ------------------------------------------------------------------------------------


def _met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def _ratio(label: str, top: dict, bottom: dict, target: float) -> str:
    """`label: a s / b s = r x (target <= t: met); peak RSS m MB` for two measured runs."""
    ratio = top["wall_s"] / bottom["wall_s"]
    return (
        f"{label}: {top['wall_s']:.2f} s / {bottom['wall_s']:.2f} s = {ratio:.3f}x "
        f"(target <= {target}: {_met(ratio <= target)}); peak RSS {top['peak_rss_mb']:.0f} MB"
    )


def summary(results: list[dict]) -> list[str]:
    """The figures the targets are stated in, each with met / not met."""
    by = {r["scenario"]: r for r in results if r.get("status") == "ok" and "wall_s" in r}
    lines = []
    for kind in STORES:
        plain, detect = by.get(f"plain_{kind} +changes"), by.get(f"detect_{kind} +changes")
        if plain and detect:
            lines.append(
                _ratio(f"detect/plain {kind}", detect, plain, TARGET_DETECT_RATIO)
                + f" vs {plain['peak_rss_mb']:.0f} MB (target <= {TARGET_RSS_MB:.0f}: "
                f"{_met(detect['peak_rss_mb'] <= TARGET_RSS_MB)})"
            )
    for kind in STORES:
        for mode in ("plain", "detect"):
            if r := by.get(f"{mode}_{kind} no change"):
                note = "" if mode == "plain" else "; includes a key-set comparison"
                lines.append(
                    f"no change {mode}_{kind}: {r['wall_s']:.2f} s (target <= {TARGET_NO_CHANGE_S:g}: "
                    f"{_met(r['wall_s'] <= TARGET_NO_CHANGE_S)}{note}); files written {r['written_count']}, "
                    f"removed {len(r['removed_files'])}"
                )
    for kind in FEED_STORES:
        full = by.get(f"feed_{kind} full")
        for phase, what in (("+changes", "random keys"), ("+recent changes", "recent keys")):
            if full and (step := by.get(f"feed_{kind} {phase}")):
                label = f"logical decoding {kind}, {what} (incremental / full)"
                lines.append(_ratio(label, step, full, TARGET_FEED_RATIO))
    over = [
        f"{r['scenario']} {r['peak_rss_mb']:.0f}" for r in results if r.get("peak_rss_mb", 0) > TARGET_RSS_MB
    ]
    lines.append(f"peak RSS over {TARGET_RSS_MB:.0f} MB (MB): {', '.join(over) or 'none'}")
    bad = [f"{r['scenario']}: {r['status']}" for r in results if r.get("status") != "ok"]
    return lines + [f"FAILED {b}" for b in bad]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="PostgreSQL URL; omitted: start a throwaway server (wal_level=logical)")
    parser.add_argument(
        "--rows", type=int, help=f"rows in the source table (default {bench_run.DEFAULT_ROWS:,})"
    )
    parser.add_argument("--table", default="bench_rows")
    parser.add_argument("--out", type=Path, help="working/output directory (kept); default: a temp dir")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    parser.add_argument("--hygge-cmd", help="command that runs the hygge CLI")
    args = parser.parse_args(argv)
    generate._ident(args.table)

    out = args.out.resolve() if args.out else Path(tempfile.mkdtemp(prefix="hygge-conv-"))
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    notes: list[str] = []
    try:
        decoding = {"wal_level": "logical", "max_replication_slots": 20, "max_wal_senders": 20}
        with bench_run.database(args.url, args.rows, args.table, decoding) as url:
            source = bench_run.source_info(url, args.table)
            write_project(out / "project")
            bench = bench_run.Bench(
                url, args.table, out, bench_run.hygge_command(args.hygge_cmd), args.timeout
            )
            try:
                results += run_detect(bench)
                if (level := wal_level(url)) == "logical":
                    results += run_feed(bench)
                else:
                    notes.append(f"logical decoding skipped: the server runs with wal_level={level}")
            finally:
                with contextlib.suppress(psycopg.Error):
                    drop_feeds(url)
                    with psycopg.connect(url, autocommit=True) as conn:
                        conn.execute(f"DROP TABLE IF EXISTS {DETECT_TABLE}, {FEED_TABLE}")
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)

    print(f"\n{source['rows']:,} rows in {args.table} (PostgreSQL {source['server_version']})")
    print(bench_run.format_table(results))
    lines = summary(results) + notes
    print("\n" + "\n".join(lines))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    bench_run.RESULTS_DIR.mkdir(exist_ok=True)
    if not (ignore := bench_run.RESULTS_DIR / ".gitignore").exists():
        ignore.write_text("*\n!.gitignore\n")
    path = bench_run.RESULTS_DIR / f"{stamp}-convergence.json"
    report = {
        "timestamp": stamp,
        "source": source,
        "environment": bench_run.environment_info(),
        "out_dir": str(out) if args.out else None,
        "results": results,
        "summary": lines,
    }
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nresults: {path}")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
