"""Leases: one holder at a time for a name in a storage location, with an expiry so a dead holder
never blocks anyone for longer than the lease's lifetime.

A lease is a small JSON object (`Holder`) created with put-if-absent. Its holder renews it from a
background thread every quarter of its lifetime, so a slow but alive run keeps it whatever it waits
for (and at batch boundaries if a driver call holding the GIL starved that thread), and deletes it
when done. An expired lease is taken over race-free: of the processes that saw
the same expired object, only the one that creates its takeover marker (put-if-absent, named by the
object's hash) may delete it; the others see the winner's new lease. The journal's compaction and every
entity run (`EntityLease`: `leases/<flow>/<entity>.lease` in the journal's folder) use this one mechanism.

A holder that fell behind (its process stalled, or storage was unreachable, past an eighth of the
lifetime before expiry) renews or releases only by winning that same marker, so it never overwrites a
successor. Limits: hosts' clocks must agree to well within an eighth of the lifetime, and a holder
frozen for that long between reading its lease and writing it back could still overwrite a successor;
lifetimes are minutes, such freezes are not. A run that finds its lease lost stops at the next batch
boundary (a lease cannot fence writes already under way).

A holder that is provably dead does not make anyone wait for its expiry: each lease names its
process space (`space`: the kernel's boot id and the pid namespace, on Linux), and a taker in the
same space whose `os.kill(pid, 0)` finds no such process takes the lease over at once, through the
same marker. Anywhere else (another container or host, or no /proc) the lease simply expires; a
reused pid only ever makes a taker wait.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace

import pyarrow as pa

from hygge.errors import ConcurrencyError
from hygge.settings import settings
from hygge.slots import waiting
from hygge.storage import AlreadyExistsError, NotFoundError, Storage

LEASES = "leases"
MARKERS_KEPT_SECONDS = 86_400  # a takeover marker outlives any reader of the lease it replaced

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Holder:
    """What a lease object says: who holds it (run id, host, pid) and until when (epoch seconds)."""

    owner: str
    host: str
    pid: int
    taken_at: float
    expires_at: float
    run: str = ""  # the coordinator (or Prefect flow) run that started the holder, to find it
    space: str = ""  # the process space its pid belongs to (`process_space`); "" where unknown

    def dead(self) -> bool:
        """Whether the holder's process is known to be gone: same process space, no such pid."""
        if not self.space or self.space != process_space() or self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except OSError:  # it exists, another user's
            pass
        return False

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Holder | None:
        """The holder in a lease object; None if unreadable (puts are atomic: never a live lease)."""
        try:
            data = json.loads(raw)
            if "expires" in data:  # a compaction lease of hygge before this module: honour its expiry
                return cls(str(data.get("owner")), "?", 0, 0.0, float(data["expires"]))
            return cls(**data)
        except (ValueError, TypeError, AttributeError):
            return None

    def describe(self) -> str:
        run = f" (run {self.run})" if self.run else ""
        return f"{self.owner}{run} on host {self.host}, pid {self.pid}, since {_clock(self.taken_at)}"


UNREADABLE = Holder("an unreadable lease", "?", 0, 0.0, 0.0)


@functools.cache
def process_space() -> str:
    """This kernel boot and pid namespace: processes that share it see each other's pids. Empty
    where it cannot be told (no /proc), so no holder there is ever taken for dead."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            return f"{boot.read().strip()}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def _clock(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Lease:
    """A lease at `path` in `location`: take (put-if-absent), renew in the background, release."""

    def __init__(self, location: Storage, path: str, *, owner: str, seconds: float, run: str = "") -> None:
        self.location = location
        self.path = path
        self.owner = owner
        self.run = run
        self.seconds = seconds
        self.lost: str | None = None  # why the lease was lost while held, if it was
        self._raw: bytes | None = None  # what this holder last wrote (None: not held)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> Holder | None:
        raw = self._raw
        return Holder.from_bytes(raw) if raw is not None else None

    def _late(self, holder: Holder | None) -> bool:
        """Whether `holder`'s lease may already count as expired somewhere (an eighth of margin)."""
        return holder is None or holder.expires_at - time.time() < self.seconds / 8

    def _claim(self, raw: bytes) -> bool:
        """Claim the sole right to replace or delete the (possibly expired) lease object `raw`: of
        all processes, only the one that creates its marker (put-if-absent, named by its hash) may."""
        folder = f"{self.path}.takeover"
        note = self._mine().to_bytes()
        try:
            self.location.put(f"{folder}/{hashlib.sha256(raw).hexdigest()[:16]}", note, create_only=True)
        except AlreadyExistsError:
            return False
        for old in self.location.list(folder):
            if _age(old) > MARKERS_KEPT_SECONDS:
                self.location.delete(old["path"])
        return True

    def _mine(self) -> Holder:
        now = time.time()
        return Holder(
            self.owner, socket.gethostname(), os.getpid(), now, now + self.seconds, self.run, process_space()
        )

    # --- taking ---------------------------------------------------------------------------------
    def take(self) -> Holder | None:
        """Take the lease if it is free or expired and keep it alive; else return who holds it."""
        for _ in range(3):
            mine = self._mine().to_bytes()
            try:
                self.location.put(self.path, mine, create_only=True)
            except AlreadyExistsError:
                pass
            else:
                self._raw, self.lost = mine, None
                self._keep_alive()
                return None
            try:
                raw = self.location.get(self.path)
            except (NotFoundError, FileNotFoundError):
                continue  # released meanwhile: try again
            other = Holder.from_bytes(raw)
            if other is not None and other.expires_at > time.time() and not other.dead():
                return other
            if not self._claim(raw):
                return other or UNREADABLE  # another process is taking this one over
            self.location.delete(self.path)
        return UNREADABLE

    # --- holding --------------------------------------------------------------------------------
    def renew(self) -> None:
        """Extend the lease by its lifetime; sets `lost` if another process has taken it over."""
        with self._lock:
            raw = self._raw
            if raw is None or self.lost:
                return
            held = Holder.from_bytes(raw)
            assert held is not None
            try:
                current = self.location.get(self.path)
            except (NotFoundError, FileNotFoundError):
                current = None
            if current != raw:
                self.lost = f"it expired at {_clock(held.expires_at)} and another run took it over"
                return
            # Late (this process stalled or storage was unreachable): renew only with the claim.
            if self._late(held) and not self._claim(raw):
                self.lost = f"it expired at {_clock(held.expires_at)} and another run is taking it over"
                return
            renewed = replace(held, expires_at=time.time() + self.seconds).to_bytes()
            self.location.put(self.path, renewed)
            self._raw = renewed

    def confirm(self) -> str | None:
        """Renew at once if the renewing thread fell behind (a driver holding the GIL starves it);
        returns why the lease is lost, if it is."""
        held = self.held
        if held is not None and not self.lost and held.expires_at - time.time() < self.seconds / 2:
            self._renew_or_lose()
        return self.lost

    def _renew_or_lose(self) -> None:
        try:
            self.renew()
        except Exception as exc:
            if self._late(self.held) and not self.lost:
                self.lost = f"renewing it failed until it expired: {exc}"

    def _keep_alive(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"lease:{self.path}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        """Renew every quarter lifetime; a failed renewal is retried until the lease would expire."""
        while not self._stop.wait(self.seconds / 4) and not self.lost:
            self._renew_or_lose()

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still this holder's; never raises (an
        undeleted lease just expires)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None
        with self._lock:
            raw, self._raw = self._raw, None
        if raw is None or self.lost:
            return
        try:
            if self.location.get(self.path) == raw and (
                not self._late(Holder.from_bytes(raw)) or self._claim(raw)
            ):
                self.location.delete(self.path)
        except Exception as exc:
            log.warning("could not release lease %s (it expires by itself): %s", self.path, exc)


def _age(obj: dict) -> float:
    modified = obj.get("last_modified")
    return (dt.datetime.now(dt.UTC) - modified).total_seconds() if modified else 0.0


class EntityLease:
    """The lease that keeps two runs of one flow's entity from interleaving: taken before recovery
    and reading, waited for up to HYGGE_LEASE_WAIT_SECONDS, released after the journal write."""

    def __init__(self, location: Storage, flow: str, entity: str) -> None:
        self.location = location
        self.flow = flow
        self.entity = entity
        self.lease: Lease | None = None

    @staticmethod
    def path(flow: str, entity: str) -> str:
        """The lease object's path in the journal's folder."""
        return f"{LEASES}/{flow}/{entity}.lease"

    def take(self, owner: str, run: str = "") -> None:
        """Hold the lease, waiting (with the concurrency slot handed back) while a live run holds it;
        raises ConcurrencyError naming that run if it still does after the wait."""
        config = settings()
        lease = Lease(
            self.location,
            self.path(self.flow, self.entity),
            owner=owner,
            seconds=config.lease_seconds,
            run=run,
        )
        started = time.monotonic()
        holder = lease.take()
        if holder is not None:
            poll = min(5.0, max(0.1, config.lease_seconds / 10))
            with waiting():  # only waiting: let other entities use this concurrency slot
                while holder is not None and time.monotonic() - started < config.lease_wait_seconds:
                    time.sleep(min(poll, max(0.0, config.lease_wait_seconds - (time.monotonic() - started))))
                    holder = lease.take()
        if holder is not None:
            raise self._refused(holder, time.monotonic() - started)
        self.lease = lease

    def _refused(self, holder: Holder, waited: float) -> ConcurrencyError:
        until = _clock(holder.expires_at)
        return ConcurrencyError(
            f"another run is landing this entity: entity run {holder.describe()}, holding its lease "
            f"until {until} (renewed while it runs); waited {waited:.1f} s",
            hint="run again once that run has finished (HYGGE_LEASE_WAIT_SECONDS waits longer); if "
            f"that process is dead, its lease expires at {until} and the next run takes over and "
            "recovers what it committed",
            flow=self.flow,
            entity=self.entity,
        )

    def check(self) -> None:
        """Raise ConcurrencyError if the lease is lost (renewing it first if it fell behind), so that
        nothing more is written or committed."""
        lost = self.lease.confirm() if self.lease is not None else None
        if lost:
            raise ConcurrencyError(
                f"this run lost the entity's lease: {lost}; it stopped so that two runs never write at once",
                hint="run again; if this repeats, the journal folder is unreachable or the process stalls "
                "for longer than HYGGE_LEASE_SECONDS (raise it)",
                flow=self.flow,
                entity=self.entity,
            )

    def guard(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Pass batches on, checking the lease at every batch boundary and before the store commits."""
        for batch in batches:
            self.check()
            yield batch
        self.check()

    def release(self) -> None:
        """Let the next run in (after the journal write); a lease never taken is left alone."""
        if self.lease is not None:
            self.lease.release()
            self.lease = None
