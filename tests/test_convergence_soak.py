"""Convergence soak (the acceptance test of deletes): a PostgreSQL table under random inserts,
updates, deletes, re-inserted deleted keys, keys updated twice between runs and late-committing rows
is landed incrementally round after round into every store kind (parquet, Delta, Open Mirroring;
local and Azurite), with hard deletes (watermark + detect), soft ones (watermark + soft), or through
PostgreSQL logical decoding (every change from a replication slot, no key scan). After
every round what a reader of the store sees must equal the source exactly; where deletes are soft,
the deleted-at column must be set for exactly the keys that ever landed and are gone from the source.
Some rounds land through a real `hygge go` that is SIGKILLed (at a fault point, or after a random
delay) and then rerun.

Every test draws from its own seeded generator: the seed is in each assertion message, and
`HYGGE_SOAK_SEED=<seed> pytest tests/test_convergence_soak.py::<test>` replays that run. The default
run is short: 6 rounds per combination, one of them killed (on Azurite in two combinations only, as
each kill costs a subprocess and the wait for the dead run's lease), and an emptied source that the
mass-delete guard must refuse (locally). The `slow` run: 32 rounds with 5 kills and the emptied
source, in every combination.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hygge import faults
from hygge.errors import SourceError
from hygge.stores import store_root
from tests import convergence
from tests.convergence import STORES, project, verified
from tests.helpers import entity_of, landed, load

REPO = Path(__file__).resolve().parent.parent
SOFT = "deleted_at"
# How each mode is configured: watermark + deletes detected, watermark + soft deletes, and PostgreSQL
# logical decoding (a change feed: every change, no key scan, hard deletes).
MODES: dict[str, dict[str, Any]] = {
    "detect": {"deletes": {}},
    "soft": {"deletes": {"mode": "soft", "column": SOFT}},
    "logical": {"entity": {"feed": {"type": "postgres_logical"}}},
}
PLACES = ["local", "azurite"]
LOOKBACK = 60  # seconds; late rows land 1-30 s below the maximum, well within it
COLUMNS = ["id", "name", "note", "amount", "qty", "ok", "day", "updated_at"]
START = dt.datetime(2024, 3, 1, 12, 0, 0, 1)
FIRST_ROWS = 24

# Text that must survive every store byte for byte: empty (not NULL), accents, combining marks, CJK,
# right-to-left, emoji sequences, quotes, control characters, a long value.
TEXTS = [
    "",
    "plain",
    "ñandú café",
    "e\u0301 combining",
    "日本語のテキスト",
    "שלום עולם",
    "🦆🏳️‍🌈👩‍👩‍👧",
    'it\'s "quoted" \\ back',
    "tab\tnew\nline\r",
    "\U0001d518\U0001d52b astral ﷺ",  # outside the BMP: surrogate pairs in UTF-16
    "x" * 300,
]
DATES = [dt.date(1, 1, 1), dt.date(1970, 1, 1), dt.date(2000, 2, 29), dt.date(9999, 12, 31)]

# Fault points an incremental, keyed run with deletes passes (hygge.faults.POINTS; tests/test_crash.py
# shows which lie on which path). A Delta merge writes its files through delta-rs, not hygge's file
# writer. A second spec kills the following run in its recovery of the first one's commit.
COMMON = [
    ("extract.batch:1",),
    ("extract.batch:3",),
    ("runner.committed",),
    ("runner.committed", "runner.recovered"),
    ("journal.recorded",),
    ("journal.lease_taken",),
    ("journal.snapshot_written",),
    ("journal.run_folded",),
]
WRITER = [("files.row_group:1",), ("files.file_closed:1",)]
BY_STORE: dict[str, list[tuple[str, ...]]] = {
    "parquet": [
        *WRITER,
        ("parquet.staged",),
        ("parquet.record_written",),
        ("parquet.renamed:1",),
        ("parquet.applied",),
        ("parquet.record_written", "parquet.recover"),
    ],
    "delta": [("delta.committed",), ("delta.committed", "runner.recovered")],
    "open_mirroring": [
        *WRITER,
        ("om.staged",),
        ("om.record_written",),
        ("om.metadata_written",),
        ("om.file_published:1",),
        ("om.published",),
        ("om.record_written", "om.recover"),
    ],
}
TIMED = ("timed",)  # SIGKILL after a random delay instead of at a named point


@pytest.fixture(autouse=True)
def _short_leases(monkeypatch: pytest.MonkeyPatch) -> None:
    """A killed run leaves its entity lease behind; with the default lifetime every rerun would wait
    two minutes for it. The killed `hygge go` inherits the same setting."""
    monkeypatch.setenv("HYGGE_LEASE_SECONDS", "3")


# --- the source and its random changes ------------------------------------------------------------
@dataclass
class Soak:
    """One soak: the project, the generator, and what the test knows of the source and the store."""

    root: Path
    kind: str
    mode: str
    seed: int
    rng: random.Random
    conn: psycopg.Connection  # autocommit: each statement commits on its own, as separate transactions
    clock: dt.datetime = START
    next_id: int = 1
    stamps: dict[int, dt.datetime] = field(default_factory=dict)  # live key -> its updated_at
    gone: set[int] = field(default_factory=set)  # keys deleted in an earlier round, not back yet
    last_landed: dict[int, dict[str, Any]] = field(default_factory=dict)  # every key that ever landed
    marks: dict[int, dt.datetime] = field(default_factory=dict)  # soft: deleted-at last seen per key
    log: list[str] = field(default_factory=list)  # the current round's changes, for messages

    def execute(self, sql: str, params: Any = None) -> None:
        self.conn.execute(sql, params)

    @property
    def soft(self) -> str | None:
        return SOFT if self.mode == "soft" else None

    def tick(self) -> dt.datetime:
        """The next updated_at: 1 µs to 4 s after the last one, or (one time in ten) equal to it, as
        rows a transaction changes together share its timestamp."""
        if self.rng.random() >= 0.1:
            self.clock += dt.timedelta(microseconds=self.rng.randint(1, 4_000_000))
        return self.clock

    def where(self, round_no: int | str) -> str:
        return (
            f"[seed {self.seed} (HYGGE_SOAK_SEED={self.seed}), {self.kind}/{self.mode}, round {round_no}; "
            f"changes: {'; '.join(self.log)}]"
        )


def values(rng: random.Random) -> dict[str, Any]:
    """Random non-key values; every nullable column is NULL now and then."""

    def maybe(value: Any, share: float = 0.25) -> Any:
        return None if rng.random() < share else value

    digits = rng.choice([4, 8, 18])
    amount = Decimal(rng.randint(-(10**digits) + 1, 10**digits - 1)).scaleb(-4)
    day = (
        rng.choice(DATES) if rng.random() < 0.2 else dt.date(1990, 1, 1) + dt.timedelta(rng.randint(0, 20000))
    )
    return {
        "name": rng.choice(TEXTS) + (str(rng.randint(0, 999)) if rng.random() < 0.5 else ""),
        "note": maybe(rng.choice(TEXTS), 0.4),
        "amount": maybe(amount),
        "qty": maybe(rng.randint(-(2**31), 2**31 - 1)),
        "ok": maybe(rng.random() < 0.5),
        "day": maybe(day),
    }


def create_source(soak: Soak) -> None:
    """The table (int key, typed nullable columns, timestamp watermark) with its first rows."""
    soak.execute(
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, note text, amount numeric(18,4), "
        "qty int, ok boolean, day date, updated_at timestamp NOT NULL)",
    )
    for _ in range(FIRST_ROWS):
        insert(soak, soak.next_id, soak.tick())
        soak.next_id += 1


def insert(soak: Soak, key: int, stamp: dt.datetime, row: dict[str, Any] | None = None) -> None:
    """Insert `key` (with random values, or exactly `row`) at `stamp`."""
    row = row or {"id": key, **values(soak.rng), "updated_at": stamp}
    soak.execute(
        f"INSERT INTO items ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * 8)})", list(row.values())
    )
    soak.stamps[key] = stamp
    soak.gone.discard(key)


def update(soak: Soak, key: int, stamp: dt.datetime) -> None:
    """Some columns get new values; updated_at always moves to `stamp`."""
    new = values(soak.rng)
    chosen = soak.rng.sample(sorted(new), soak.rng.randint(1, len(new)))
    sets = ", ".join(f"{name} = %s" for name in chosen)
    soak.execute(
        f"UPDATE items SET {sets}, updated_at = %s WHERE id = %s", [*(new[c] for c in chosen), stamp, key]
    )
    soak.stamps[key] = stamp


def delete(soak: Soak, key: int) -> None:
    soak.execute("DELETE FROM items WHERE id = %s", (key,))
    del soak.stamps[key]
    if key in soak.last_landed:
        soak.gone.add(key)


def change_round(soak: Soak) -> None:
    """One round of random changes, in random order, with at least one of each: insert, update,
    delete, a deleted key inserted again, a key updated twice, and a late row (updated_at 1-30 s below
    the maximum the last run saw, as a transaction that committed after that run would leave). Two of:
    a late update, a key inserted and deleted again before any run saw it, a key deleted and inserted
    again between two runs, a deleted row restored exactly as it last landed (within the lookback)."""
    rng = soak.rng
    top = soak.clock  # no run has seen anything above it
    soak.log = []
    ops = ["insert"] * rng.randint(1, 3) + ["update"] * rng.randint(1, 4) + ["delete"] * rng.randint(1, 3)
    extras = ["late_update", "insert_delete", "delete_reinsert", "restore"]
    ops += ["reinsert", "twice", "late", *rng.sample(extras, 2)]
    rng.shuffle(ops)
    pending: set[int] = set()  # keys with a change still to come (second update, delete): kept till then
    earlier = set(soak.gone)  # deleted in an earlier round: the store saw them go

    def live() -> list[int]:
        return sorted(k for k in soak.stamps if k not in pending)

    index = 0
    while index < len(ops):
        op = ops[index]
        index += 1
        if op == "insert" or op == "insert_delete":
            key, soak.next_id = soak.next_id, soak.next_id + 1
            insert(soak, key, soak.tick())
            soak.log.append(f"insert {key}")
            if op == "insert_delete":  # never landed: no store must ever show it
                pending.add(key)
                ops.insert(rng.randint(index, len(ops)), f"delete:{key}")
        elif op == "update":
            key = rng.choice(live())
            update(soak, key, soak.tick())
            soak.log.append(f"update {key}")
        elif op == "twice":
            key = rng.choice(live())
            update(soak, key, soak.tick())
            pending.add(key)
            ops.insert(rng.randint(index, len(ops)), f"again:{key}")
            soak.log.append(f"update {key} (1 of 2)")
        elif op.startswith("again:"):
            key = int(op.split(":")[1])
            update(soak, key, soak.stamps[key] if rng.random() < 0.3 else soak.tick())
            pending.discard(key)
            soak.log.append(f"update {key} (2 of 2)")
        elif op == "delete" or op.startswith("delete:"):
            key = int(op.split(":")[1]) if ":" in op else rng.choice(live())
            pending.discard(key)
            delete(soak, key)
            soak.log.append(f"delete {key}")
        elif op == "reinsert":
            if earlier & soak.gone:
                key = rng.choice(sorted(earlier & soak.gone))
            else:  # nothing deleted in an earlier round yet: delete one now and bring it back
                key = rng.choice(live())
                delete(soak, key)
                soak.log.append(f"delete {key}")
            insert(soak, key, soak.tick())
            soak.log.append(f"re-insert {key}")
        elif op == "delete_reinsert":  # gone and back between two runs: an update to the store
            key = rng.choice(live())
            delete(soak, key)
            insert(soak, key, soak.tick())
            soak.log.append(f"delete+re-insert {key}")
        elif op == "late":
            stamp = top - dt.timedelta(microseconds=rng.randint(1_000_000, 30_000_000))
            key = rng.choice(sorted(soak.gone)) if soak.gone and rng.random() < 0.3 else None
            if key is None:
                key, soak.next_id = soak.next_id, soak.next_id + 1
            insert(soak, key, stamp)
            soak.log.append(f"late insert {key} at max-{(top - stamp).total_seconds():.1f}s")
        elif op == "restore":  # a backup put back: same values, same updated_at
            window = top - dt.timedelta(seconds=LOOKBACK * 3 / 4)
            restorable = sorted(k for k in earlier & soak.gone if soak.last_landed[k]["updated_at"] >= window)
            if restorable:
                key = rng.choice(restorable)
                row = soak.last_landed[key]
                insert(soak, key, row["updated_at"], dict(row))
                soak.log.append(f"restore {key} as it last landed")
        elif op == "late_update":
            stamp = top - dt.timedelta(microseconds=rng.randint(1_000_000, 30_000_000))
            key = rng.choice(live())  # its updated_at may move backwards: the late commit wins
            update(soak, key, stamp)
            soak.log.append(f"late update {key} at max-{(top - stamp).total_seconds():.1f}s")


def source_rows(soak: Soak) -> list[dict[str, Any]]:
    with soak.conn.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM items ORDER BY id")
        return [dict(zip(COLUMNS, row, strict=True)) for row in cursor.fetchall()]


# --- landing, killed or not -----------------------------------------------------------------------
def killed_go(root: Path, specs: tuple[str, ...], delay: float, where: str) -> list[str]:
    """`hygge go --incremental` in subprocesses, one per spec: HYGGE_FAULT=<spec>:kill, or (TIMED)
    SIGKILLed after `delay` seconds. A point this run does not pass lets it finish: accepted. Returns
    what happened to each, for messages."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    command = [
        sys.executable,
        "-c",
        "from hygge.cli.main import app; app()",
        "go",
        "--project",
        str(root),
        "--incremental",
    ]
    outcomes = []
    for spec in specs:
        if spec == "timed":
            env.pop("HYGGE_FAULT", None)
            proc = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            try:
                out, err = proc.communicate(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            code = proc.returncode
        else:
            env["HYGGE_FAULT"] = f"{spec}:kill"
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
            code, out, err = done.returncode, done.stdout, done.stderr
        point = spec.split(":")[0]
        if code == -signal.SIGKILL:
            assert spec == "timed" or f"hygge fault: {point} hit" in err, (
                f"{spec}: killed elsewhere {where}\n{err[-2000:]}"
            )
            outcomes.append(f"{spec}{f' {delay:.2f}s' if spec == 'timed' else ''}: killed")
        else:
            assert code == 0, f"`hygge go` ({spec}) exited {code} {where}\n{out[-2000:]}\n{err[-3000:]}"
            outcomes.append(f"{spec}: {'finished first' if spec == 'timed' else 'not reached'}")
    return outcomes


def land(soak: Soak, **options: Any) -> None:
    """One normal incremental run in this process (the one that follows a kill is the rerun)."""
    convergence.land(soak.root, **options)


# --- checks ---------------------------------------------------------------------------------------
def stored(root: Path) -> list[dict[str, Any]]:
    """Every row a reader of the store sees (soft-deleted ones too), by key, in comparable values."""
    rows = landed(root, "f", "items").to_pylist()
    for row in rows:
        if isinstance(row["updated_at"], dt.datetime):
            row["updated_at"] = row["updated_at"].replace(tzinfo=None)
    return sorted(rows, key=lambda r: r["id"])


def files(root: Path) -> list[tuple[str, int, Any]]:
    """The table's files its reader reads (name, size, modified time), local or on Azurite: Delta's
    log and Open Mirroring's _metadata.json count; hygge's own `_hygge_*` bookkeeping, which parquet
    readers skip and a run's recovery trims, does not."""
    loaded = load(root)
    folder = store_root(entity_of(loaded, "f", "items"), loaded.root)
    return sorted(
        (o["path"], o["size"], o.get("last_modified"))
        for o in folder.list("items/")
        if not any(part.startswith("_hygge") for part in o["path"].split("/"))
    )


def check(
    soak: Soak, round_no: int | str, *, verify: bool = False, started: dt.datetime | None = None
) -> None:
    """The store as its reader replays it equals the source; where deletes are soft, the deleted-at
    column is set for exactly the keys that ever landed and are gone, on their last landed values,
    and a deletion time once set stays until the key comes back."""
    where = soak.where(round_no)
    source = source_rows(soak)
    rows = stored(soak.root)
    keys = [r["id"] for r in rows]
    assert len(keys) == len(set(keys)), f"a key is in the store twice {where}"
    if soak.soft:
        live = [{c: r[c] for c in COLUMNS} for r in rows if r[SOFT] is None]
        assert live == source, f"live rows differ from the source {where}\n{diff(live, source)}"
        marks = {r["id"]: r[SOFT] for r in rows if r[SOFT] is not None}
        expected = set(soak.last_landed) - {r["id"] for r in source}
        assert set(marks) == expected, (
            f"deleted-at set for {sorted(set(marks) - expected)} (wrongly), missing for "
            f"{sorted(expected - set(marks))} {where}"
        )
        kept = [{c: r[c] for c in COLUMNS} for r in rows if r[SOFT] is not None]
        last = [soak.last_landed[k] for k in sorted(marks)]
        assert kept == last, f"soft-deleted rows changed {where}\n{diff(kept, last)}"
        for key, mark in marks.items():
            assert mark.tzinfo is not None and mark.utcoffset() == dt.timedelta(0), f"{key}: {mark!r} {where}"
            if key in soak.marks:
                assert mark == soak.marks[key], f"deletion time of {key} moved {where}"
            elif started is not None:
                now = dt.datetime.now(dt.UTC)
                assert started - dt.timedelta(seconds=5) <= mark <= now, f"{key}: deleted at {mark} {where}"
        soak.marks = marks
    else:
        assert rows == source, f"the store differs from the source {where}\n{diff(rows, source)}"
    if verify:
        assert verified(soak.root), f"hygge verify disagrees {where}"
    soak.last_landed.update({r["id"]: r for r in source})


def diff(got: list[dict], want: list[dict]) -> str:
    """The keys whose rows differ, with both sides (at most five)."""
    have, need = {r["id"]: r for r in got}, {r["id"]: r for r in want}
    lines = [
        f"  {k}: store {have.get(k)} / source {need.get(k)}"
        for k in sorted(set(have) | set(need))
        if have.get(k) != need.get(k)
    ]
    return "\n".join(lines[:5]) + (f"\n  ... {len(lines) - 5} more" if len(lines) > 5 else "")


# --- the soak -------------------------------------------------------------------------------------
def seed_for(request: pytest.FixtureRequest) -> int:
    """HYGGE_SOAK_SEED if set (to replay a failure), else a fixed seed per test id."""
    text = os.environ.get("HYGGE_SOAK_SEED")
    return int(text) if text else zlib.crc32(request.node.nodeid.split("::")[-1].encode())


@pytest.fixture
def soak(
    request: pytest.FixtureRequest, tmp_path: Path, pg_db: str, kind: str, place: str, mode: str
) -> Iterator[Soak]:
    """A project landing `items` from a fresh database into the test's store kind and place with its
    delete mode, lookback LOOKBACK; the generator seeded for this test; one source connection."""
    seed = seed_for(request)
    azure = request.getfixturevalue("azure_container") if place == "azurite" else None
    root = project(tmp_path, pg_db, kind, azure=azure, watermark={"lookback": LOOKBACK}, **MODES[mode])
    with psycopg.connect(pg_db, autocommit=True) as conn:
        yield Soak(root, kind, mode, seed, random.Random(seed), conn)


def kill_specs(rng: random.Random, kind: str, chained: bool) -> tuple[str, ...]:
    """How a round's run dies: after a random delay, at a point of the store's commit, or at a point
    every run passes (reading, journaling), a third of the time each; a chained spec kills the
    rerun too, in its recovery of the first run's commit."""
    pool = [spec for spec in rng.choice([[TIMED], BY_STORE[kind], COMMON]) if chained or len(spec) == 1]
    return rng.choice(pool)


def soak_rounds(soak: Soak, rounds: int, kills: int, verifies: int, chained: bool = True) -> None:
    """A full load, then `rounds` rounds of random changes each followed by one incremental land
    (`kills` of them through a SIGKILLed `hygge go` and a rerun) and the exact comparison; `verifies`
    of the rounds (the last one among them) also run hygge verify."""
    rng = soak.rng
    create_source(soak)
    convergence.land(soak.root, run_type="full_drop")
    check(soak, 0, verify=True)
    killed = set(rng.sample(range(1, rounds + 1), kills))
    checked = set(rng.sample(range(1, rounds), max(verifies - 1, 0))) | {rounds}
    for round_no in range(1, rounds + 1):
        change_round(soak)
        started = dt.datetime.now(dt.UTC)
        if round_no in killed:
            specs, delay = kill_specs(rng, soak.kind, chained), rng.uniform(0.3, 3.0)
            soak.log.append("kills: " + ", ".join(killed_go(soak.root, specs, delay, soak.where(round_no))))
        land(soak)
        check(soak, round_no, verify=round_no in checked, started=started)


def emptied_source_is_refused_then_confirmed(soak: Soak) -> None:
    """The source emptied: the guard refuses and the store is untouched; confirmed, the store follows
    (every landed key deleted, or soft-deleted); keys inserted again afterwards come back live."""
    soak.log = ["DELETE FROM items (all)"]
    where = soak.where("emptied")
    before_rows, before_files = stored(soak.root), files(soak.root)
    landed_keys = len([r for r in before_rows if not soak.soft or r[SOFT] is None])
    for key in sorted(soak.stamps):
        delete(soak, key)
    with pytest.raises(SourceError) as refused:
        land(soak)
    share = f"would delete {landed_keys} of {landed_keys} landed keys (100%)"
    assert share in refused.value.message, f"{refused.value.message} {where}"
    assert stored(soak.root) == before_rows, f"a refused run changed the rows {where}"
    assert files(soak.root) == before_files, f"a refused run changed the files {where}"
    started = dt.datetime.now(dt.UTC)
    land(soak, allow_mass_delete=True)
    check(soak, "emptied", verify=True, started=started)

    soak.log = []
    for key in soak.rng.sample(sorted(soak.gone), 3):
        insert(soak, key, soak.tick())
        soak.log.append(f"re-insert {key}")
    land(soak)
    check(soak, "refilled", verify=True)


COMBINATIONS = [(k, p, m) for k in STORES for p in PLACES for m in MODES]
# The default run kills one round of every local combination but only of some Azurite ones (each kill
# costs a subprocess and the wait for the dead run's lease), and empties the source locally only.
AZURITE_KILLS = {("parquet", "detect"), ("open_mirroring", "soft"), ("delta", "logical")}


@pytest.mark.parametrize(("kind", "place", "mode"), COMBINATIONS, ids=lambda v: v)
def test_soak(soak: Soak, place: str) -> None:
    """Six random rounds (one SIGKILLed and rerun where that is affordable), then, locally, the
    emptied-source guard round."""
    local = place == "local"
    kills = 1 if local or (soak.kind, soak.mode) in AZURITE_KILLS else 0
    soak_rounds(soak, rounds=6, kills=kills, verifies=2, chained=False)
    if local:
        emptied_source_is_refused_then_confirmed(soak)


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "place", "mode"), COMBINATIONS, ids=lambda v: v)
def test_soak_long(soak: Soak) -> None:
    """32 random rounds (5 SIGKILLed and rerun, chained kills included), then the emptied-source
    guard round."""
    soak_rounds(soak, rounds=32, kills=5, verifies=8)
    emptied_source_is_refused_then_confirmed(soak)


def test_fault_points_exist() -> None:
    """Every fault point the soak may pick is one hygge exposes (a renamed point fails here)."""
    every = [*COMMON, *(specs for per_store in BY_STORE.values() for specs in per_store)]
    listed = {spec.split(":")[0] for specs in every for spec in specs}
    assert listed <= set(faults.POINTS), sorted(listed - set(faults.POINTS))
