"""Leases (hygge.lease): one holder at a time, race-free takeover of an expired lease, renewal that
keeps a slow run's lease, and two runs of one entity at once (PostgreSQL source; local and Azurite
stores) that never interleave: the second waits then lands nothing twice, or refuses clearly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hygge.errors import ConcurrencyError
from hygge.lease import EntityLease, Holder, Lease
from hygge.storage import Storage
from tests.helpers import entity_of, journal, landed, load, pg_execute, pg_rows, run, sql_flow, write_project

REPO = Path(__file__).resolve().parents[1]


# --- the lease itself --------------------------------------------------------------------------


def test_one_holder_at_a_time_and_release_frees_it(tmp_path: Path) -> None:
    """A live lease keeps others out and names its holder; releasing it lets the next one in."""
    place = Storage.local(tmp_path)
    first = Lease(place, "x.lease", owner="run-1", seconds=30, run="coord-1")
    second = Lease(place, "x.lease", owner="run-2", seconds=30)
    assert first.take() is None
    holder = second.take()
    assert holder is not None and (holder.owner, holder.run, holder.pid) == ("run-1", "coord-1", os.getpid())
    assert holder.expires_at > time.time() + 25
    first.release()
    assert not (tmp_path / "x.lease").exists()
    assert second.take() is None
    second.release()


def test_two_processes_taking_over_one_stale_lease_do_not_both_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When two takers see the same expired lease, only one takes it over: the slower one must not
    delete the lease the faster one just took (both would then hold it at once)."""
    place = Storage.local(tmp_path)
    dead = Holder("dead", "gone-host", 1, time.time() - 60, time.time() - 5)
    (tmp_path / "x.lease").write_bytes(dead.to_bytes())
    slow = Lease(place, "x.lease", owner="slow", seconds=30)
    fast = Lease(place, "x.lease", owner="fast", seconds=30)
    real_get = Storage.get
    outcome: dict[str, Holder | None] = {}

    def get(self: Storage, path: str) -> bytes:
        data = real_get(self, path)
        if path == "x.lease" and "fast" not in outcome:
            # The slow taker has read the stale lease; the fast one now takes it over completely.
            outcome["fast"] = None
            outcome["fast"] = fast.take()
        return data

    monkeypatch.setattr(Storage, "get", get)
    outcome["slow"] = slow.take()
    monkeypatch.undo()
    assert outcome["fast"] is None  # taken
    assert outcome["slow"] is not None  # refused
    held = Holder.from_bytes((tmp_path / "x.lease").read_bytes())
    assert held is not None and held.owner == "fast" and held.expires_at > time.time()
    fast.release()


def test_renewal_keeps_a_live_lease_and_a_dead_holders_lease_expires(tmp_path: Path) -> None:
    """A holder that stays alive keeps its lease past many lifetimes; once it stops renewing (its
    process died), the lease expires and the next taker gets it."""
    place = Storage.local(tmp_path)
    holder = Lease(place, "x.lease", owner="alive", seconds=0.6)
    other = Lease(place, "x.lease", owner="other", seconds=0.6)
    assert holder.take() is None
    time.sleep(1.5)  # 2.5 lifetimes
    seen = other.take()
    assert seen is not None and seen.owner == "alive" and holder.lost is None
    holder._stop.set()  # the holder's process "dies": nobody renews any more
    deadline = time.monotonic() + 5
    while other.take() is not None:
        assert time.monotonic() < deadline, "an expired lease was never taken over"
        time.sleep(0.1)
    assert Holder.from_bytes((tmp_path / "x.lease").read_bytes()).owner == "other"  # type: ignore[union-attr]
    other.release()


def test_a_stalled_holder_renews_only_if_nobody_took_over(tmp_path: Path) -> None:
    """A holder whose renewals stalled past expiry (a driver holding the GIL) renews when it resumes
    if nobody took over; if someone did, it learns it lost the lease and leaves the new one alone."""
    place = Storage.local(tmp_path)
    holder = Lease(place, "x.lease", owner="stalled", seconds=0.5)
    assert holder.take() is None
    holder._stop.set()  # the renewing thread is starved
    time.sleep(0.7)
    assert holder.confirm() is None  # nobody came: renewed at once
    assert Holder.from_bytes((tmp_path / "x.lease").read_bytes()).expires_at > time.time()  # type: ignore[union-attr]
    time.sleep(0.7)
    successor = Lease(place, "x.lease", owner="successor", seconds=30)
    assert successor.take() is None
    assert holder.confirm() is not None and "took it over" in str(holder.lost)
    holder.release()
    assert Holder.from_bytes((tmp_path / "x.lease").read_bytes()).owner == "successor"  # type: ignore[union-attr]
    successor.release()


def test_refusal_names_the_holder_and_when_its_lease_expires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After waiting HYGGE_LEASE_WAIT_SECONDS, a second run refuses with a transient ConcurrencyError
    naming the flow, entity, the other run and host, and when its lease expires."""
    monkeypatch.setenv("HYGGE_LEASE_WAIT_SECONDS", "0.4")
    place = Storage.local(tmp_path)
    first = EntityLease(place, "sales", "orders")
    first.take("run-one", "coord-one")
    second = EntityLease(place, "sales", "orders")
    start = time.monotonic()
    with pytest.raises(ConcurrencyError) as info:
        second.take("run-two")
    assert time.monotonic() - start >= 0.4
    text = str(info.value)
    assert "flow 'sales', entity 'orders'" in text
    assert "run-one (run coord-one)" in text and os.uname().nodename in text
    assert "expires at" in text and "Try:" in text
    assert info.value.transient  # Prefect retries it; the other run finishes or its lease expires
    first.release()
    assert not (tmp_path / "leases" / "sales" / "orders.lease").exists()


# --- two runs of one entity at once ------------------------------------------------------------


def slow_source(pg_db: str, rows: int, row_ms: int) -> None:
    """`slow_items`: a view over `items` that takes `row_ms` per row to read (pg_sleep). Rows are wide
    so batches arrive as they are read: connectorx holds the GIL while it waits for one, which starves
    the renewing thread (renewal then also happens at batch boundaries)."""
    pg_execute(
        pg_db,
        "CREATE TABLE items (id int, note text, updated_at timestamp)",
        (
            "INSERT INTO items SELECT g, repeat('n', 4000), timestamp '2024-01-01' + g * interval '1 second' "
            "FROM generate_series(1, %s) g",
            (rows,),
        ),
        "CREATE FUNCTION slow_row() RETURNS boolean AS $$ BEGIN "
        f"PERFORM pg_sleep({row_ms / 1000}); RETURN true; END $$ LANGUAGE plpgsql",
        "CREATE VIEW slow_items AS SELECT * FROM items WHERE slow_row()",
    )


def project(root: Path, pg_db: str, store: dict | None = None) -> Path:
    """Incremental, append-only (no key): a run that read everything twice would double every row."""
    flow = sql_flow("parquet", ["slow_items"], batch_size=5)
    if store is not None:
        flow["store"] = store
    return write_project(root, connections={"db": {"type": "postgres", "url": pg_db}}, flows={"f": flow})


def lease_of(root: Path) -> tuple[Storage, str]:
    """Where the entity's lease lives: the journal's folder."""
    from hygge.runner import journal_for

    loaded = load(root)
    return journal_for(entity_of(loaded, "f", "slow_items"), loaded).location, EntityLease.path(
        "f", "slow_items"
    )


def go(root: Path, **settings: str) -> subprocess.Popen[str]:
    """`hygge go` for the entity in its own process, with HYGGE_ settings."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **{f"HYGGE_{k.upper()}": v for k, v in settings.items()}}
    return subprocess.Popen(
        [sys.executable, "-m", "hygge.cli.main", "go", "-p", str(root), "--entity", "f.slow_items"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
        start_new_session=True,
    )


def wait_for_lease(place: Storage, path: str, proc: subprocess.Popen[str]) -> Holder:
    deadline = time.monotonic() + 60
    while not place.exists(path):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the first run never took its lease"
        time.sleep(0.05)
    holder = Holder.from_bytes(place.get(path))
    assert holder is not None
    return holder


def source_ids(pg_db: str) -> list[int]:
    return sorted(r["id"] for r in pg_rows(pg_db, "SELECT id FROM items")[1])


def assert_landed_once(root: Path, pg_db: str) -> None:
    assert sorted(landed(root, "f", "slow_items").column("id").to_pylist()) == source_ids(pg_db)


@pytest.mark.parametrize("where", ["local", "azurite"])
def test_second_process_waits_then_lands_nothing_twice(
    tmp_path: Path, pg_db: str, where: str, request
) -> None:
    """Two `hygge go` processes on one entity at once: the second waits for the first's lease, then
    reads from the first's watermark. The source rows land exactly once; the journal shows the first
    run's rows and the second run starting from its watermark."""
    slow_source(pg_db, rows=300, row_ms=10)  # about 3 s to read
    store = None
    if where == "azurite":
        info, container = request.getfixturevalue("azure_container")
        store = {
            "type": "adls",
            "format": "parquet",
            "account": info.account,
            "container": container,
            "path": "lake",
            "endpoint": info.blob_endpoint,
            "credential": {"type": "account_key", "account_key": info.key},
        }
    root = project(tmp_path, pg_db, store)
    place, path = lease_of(root)
    first = go(root, lease_seconds="2")
    holder = wait_for_lease(place, path, first)
    second = go(root, lease_seconds="2", lease_wait_seconds="60")
    outputs = [p.communicate(timeout=120)[0] for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    assert_landed_once(root, pg_db)
    one, two = journal(root, "f", "slow_items")
    assert one.entity_run_id == holder.owner and (one.status, one.row_count) == ("success", 300)
    assert two.status == "success" and two.row_count == 0
    assert two.start_time < one.finish_time, "the runs did not overlap: the second never waited"
    assert two.previous_watermark == one.watermark == two.watermark
    assert not place.exists(path)


def test_second_run_refuses_while_a_long_run_keeps_renewing(
    tmp_path: Path, pg_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run lasting many lease lifetimes keeps its lease (renewed); a second run that will not wait
    refuses with the clear message and journals its refusal; the first lands everything once."""
    slow_source(pg_db, rows=400, row_ms=10)  # about 4 s to read; the lease lives 1 s unrenewed
    root = project(tmp_path, pg_db)
    place, path = lease_of(root)
    first = go(root, lease_seconds="1")
    holder = wait_for_lease(place, path, first)
    while time.time() < holder.taken_at + 2.5:
        time.sleep(0.1)
    assert first.poll() is None
    monkeypatch.setenv("HYGGE_LEASE_WAIT_SECONDS", "0.3")
    with pytest.raises(ConcurrencyError) as info:
        run(root, "f", "slow_items")
    assert holder.owner in str(info.value)
    output = first.communicate(timeout=60)[0]
    assert first.returncode == 0, output
    assert_landed_once(root, pg_db)
    entries = journal(root, "f", "slow_items")
    refused = [e for e in entries if e.status == "fail"]
    [done] = [e for e in entries if e.status == "success"]
    assert done.entity_run_id == holder.owner and done.row_count == 400
    assert len(refused) == 1 and "another run is landing this entity" in (refused[0].message or "")
    assert refused[0].row_count == 0 and refused[0].watermark is None


def test_lease_of_a_killed_run_is_taken_over_at_once_on_the_same_machine(
    tmp_path: Path, pg_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run SIGKILLed while holding its lease: the next run in the same process space sees the pid
    is gone and takes over at once, long before the lease would expire; it recovers and lands every
    row once."""
    slow_source(pg_db, rows=150, row_ms=10)
    root = project(tmp_path, pg_db)
    place, path = lease_of(root)
    victim = go(root, lease_seconds="60")
    holder = wait_for_lease(place, path, victim)
    time.sleep(0.5)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=30)
    stale = Holder.from_bytes(place.get(path))
    assert stale is not None and stale.owner == holder.owner and stale.space
    monkeypatch.setenv("HYGGE_LEASE_SECONDS", "60")
    monkeypatch.setenv("HYGGE_LEASE_WAIT_SECONDS", "0")  # no waiting: taken over or refused
    result = run(root, "f", "slow_items")
    assert time.time() < stale.expires_at - 30
    assert result.status == "success" and result.rows == 150
    assert_landed_once(root, pg_db)
    assert [e.status for e in journal(root, "f", "slow_items")] == ["success"]
    assert not place.exists(path)


def test_a_dead_holder_elsewhere_blocks_until_its_lease_expires(tmp_path: Path) -> None:
    """A holder whose pid is gone but that names another process space (another container or host),
    or none (an older hygge), is not taken for dead: its lease expires first."""
    import subprocess
    import sys
    from dataclasses import asdict, replace

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    place = Storage.local(tmp_path)
    holder = Lease(place, "x.lease", owner="dead", seconds=60)
    assert holder.take() is None
    holder._stop.set()
    mine = Holder.from_bytes(place.get("x.lease"))
    assert mine is not None
    other = Lease(place, "x.lease", owner="next", seconds=60)
    for space in ("another-boot:4026531836", ""):
        place.put("x.lease", json.dumps(asdict(replace(mine, pid=gone.pid, space=space))).encode())
        seen = other.take()
        assert seen is not None and seen.owner == "dead", space
    place.put("x.lease", json.dumps(asdict(replace(mine, pid=gone.pid))).encode())
    assert other.take() is None  # same space, no such process: taken over before expiry
    other.release()
    expired = replace(mine, pid=gone.pid, space="x:1", expires_at=time.time() - 1)
    place.put("x.lease", json.dumps(asdict(expired)).encode())  # a foreign holder's expired lease goes
    assert other.take() is None
    other.release()


def test_lease_is_renewed_while_an_open_mirroring_full_drop_waits(
    tmp_path: Path, pg_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An Open Mirroring full_drop waiting for the service to notice its deleted folder (longer than
    the lease lives unrenewed) keeps its lease: a run meanwhile refuses; the full_drop succeeds."""
    monkeypatch.setenv("HYGGE_LEASE_SECONDS", "0.8")
    monkeypatch.setenv("HYGGE_LEASE_WAIT_SECONDS", "0")
    pg_execute(
        pg_db,
        "CREATE TABLE orders (id int PRIMARY KEY, updated_at timestamp)",
        "INSERT INTO orders SELECT g, now() FROM generate_series(1, 10) g",
    )
    root = write_project(
        tmp_path,
        connections={"db": {"type": "postgres", "url": pg_db}},
        flows={
            "f": {
                "home": {"type": "sql", "connection": "db"},
                "store": {"type": "open_mirroring", "path": "zone", "folder_deletion_wait_seconds": 2.5},
                "run_type": "full_drop",
                "watermark": {"primary_key": ["id"]},
                "entities": ["orders"],
            }
        },
    )
    assert run(root, "f", "orders").status == "success"  # a first load: nothing to delete, no wait
    outcome: dict[str, object] = {}

    def full_drop() -> None:
        try:
            outcome["result"] = run(root, "f", "orders")
        except Exception as exc:
            outcome["error"] = exc

    waiter = threading.Thread(target=full_drop)
    waiter.start()
    time.sleep(2.0)  # the full_drop is waiting; its lease would have expired twice unrenewed
    assert waiter.is_alive()
    with pytest.raises(ConcurrencyError):
        run(root, "f", "orders")
    waiter.join(timeout=30)
    assert "error" not in outcome, outcome
    assert outcome["result"].status == "success"  # type: ignore[attr-defined]
    statuses = [e.status for e in journal(root, "f", "orders")]
    assert sorted(statuses) == ["fail", "success", "success"]


def test_lease_object_is_plain_json_in_the_journal_folder(tmp_path: Path) -> None:
    """The lease says who holds it in a form a person can read (`cat` it to see the holder)."""
    place = Storage.local(tmp_path)
    lease = EntityLease(place, "sales", "orders")
    lease.take("run-1", "coord-1")
    body = json.loads((tmp_path / "leases" / "sales" / "orders.lease").read_text())
    assert set(body) == {"owner", "host", "pid", "taken_at", "expires_at", "run", "space"}
    lease.release()
