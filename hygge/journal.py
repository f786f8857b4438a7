"""The journal: a durable record of every entity run and the only source of watermarks.

Layout under its folder (by default `<store root>/.hygge_journal/`):
- `runs/<entity_run_id>.parquet`: one object per entity run, written with put-if-absent, so any number
  of processes (or machines, once the folder is remote) append without a read-modify-write race;
- `journal.parquet`: the compacted snapshot; compaction holds a lease (`_compact.lease`, hygge.lease),
  writes the new snapshot atomically, and only then deletes the run objects it folded in;
- `leases/<flow>/<entity>.lease`: held by the one run landing that entity (hygge.lease.EntityLease).
Readers list run objects before reading the snapshot, so a concurrent compaction never hides a row.
A failed write raises JournalError: it is never swallowed.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
from dataclasses import asdict, dataclass, fields

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hygge.errors import JournalError, StoreError
from hygge.faults import fault
from hygge.lease import Lease
from hygge.settings import settings
from hygge.storage import AlreadyExistsError, NotFoundError, Storage

SNAPSHOT = "journal.parquet"
RUNS = "runs"
LEASE = "_compact.lease"
_PENDING = (
    "the landed data and its journal rows are safe; the compaction stays pending and the next "
    "successful run (or `hygge journal publish`) does it"
)

UTC = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        ("entity_run_id", pa.string()),
        ("coordinator_run_id", pa.string()),
        ("flow_run_id", pa.string()),
        ("coordinator", pa.string()),
        ("flow", pa.string()),
        ("entity", pa.string()),
        ("start_time", UTC),
        ("finish_time", UTC),
        ("status", pa.string()),
        ("run_type", pa.string()),
        ("row_count", pa.int64()),
        ("duration", pa.float64()),
        ("primary_key", pa.string()),
        ("watermark_column", pa.string()),
        ("watermark_type", pa.string()),
        ("watermark", pa.string()),
        ("message", pa.string()),
        ("schema_version", pa.string()),
        # Added by this generation (extend, never rename):
        ("previous_watermark", pa.string()),
        ("home", pa.string()),
        ("store", pa.string()),
        ("store_commit", pa.string()),
        ("deleted_count", pa.int64()),  # keys deleted (or soft-deleted) by the run
        ("reconciled", pa.bool_()),  # the run compared the source's key set with the landed one
        # Open Mirroring with `confirm:`: what Fabric reported once it had applied the run's rows.
        ("confirm_status", pa.string()),
        ("confirm_rows", pa.int64()),  # the table's processed operations then
        ("confirm_seconds", pa.float64()),  # from the start of publishing to the confirmation
    ]
)


@dataclass
class Entry:
    """One row of the journal."""

    entity_run_id: str
    coordinator_run_id: str
    flow_run_id: str
    coordinator: str
    flow: str
    entity: str
    start_time: dt.datetime
    finish_time: dt.datetime
    status: str  # success | fail | skip
    run_type: str
    row_count: int | None = None
    duration: float | None = None
    primary_key: str | None = None
    watermark_column: str | None = None
    watermark_type: str | None = None
    watermark: str | None = None
    message: str | None = None
    schema_version: str | None = None
    previous_watermark: str | None = None
    home: str | None = None
    store: str | None = None
    store_commit: str | None = None
    deleted_count: int | None = None
    reconciled: bool | None = None
    confirm_status: str | None = None
    confirm_rows: int | None = None
    confirm_seconds: float | None = None

    def to_table(self) -> pa.Table:
        return pa.Table.from_pylist([asdict(self)], schema=SCHEMA)


def new_id() -> str:
    return uuid.uuid4().hex


MIRROR_PENDING = "mirror/pending"


class Journal:
    def __init__(self, location: Storage, *, mirrored: bool = False):
        self.location = location
        self.mirrored = mirrored  # every record marks the Fabric mirror pending (hygge.journal_mirror)

    def describe(self) -> str:
        return f"journal {self.location.describe()}"

    # --- writing -------------------------------------------------------------------------------
    def record(self, entry: Entry) -> None:
        sink = io.BytesIO()
        pq.write_table(entry.to_table(), sink)
        try:
            try:
                self.location.put(f"{RUNS}/{entry.entity_run_id}.parquet", sink.getvalue(), create_only=True)
            except AlreadyExistsError:
                if entry.status != "success" or self._status_of(entry.entity_run_id) != "fail":
                    raise
                # A run that failed after its store commit, then recovered by a later run: the success
                # row supersedes the failure (readers prefer it).
                self.location.put(
                    f"{RUNS}/{entry.entity_run_id}.success.parquet", sink.getvalue(), create_only=True
                )
            fault("journal.recorded")
            if self.mirrored:
                # A fresh token each time: a publish clears the marker only if nothing was recorded since.
                self.location.put(MIRROR_PENDING, new_id().encode())
        except AlreadyExistsError:
            raise JournalError(
                f"entity run {entry.entity_run_id} is already in the journal",
                hint="entity run ids are unique; this is a bug worth reporting",
                flow=entry.flow,
                entity=entry.entity,
            ) from None
        except Exception as exc:
            raise JournalError(
                f"could not record the run in {self.describe()}: {getattr(exc, 'message', exc)}",
                hint="check that the journal folder is writable; the run's data is committed and "
                "the next run will record it from the store",
                flow=entry.flow,
                entity=entry.entity,
                transient=True,
            ) from exc

    # --- reading -------------------------------------------------------------------------------
    def run_paths(self) -> list[str]:
        return [o["path"] for o in self.location.list(RUNS) if o["path"].endswith(".parquet")]

    def read(self) -> pa.Table:
        try:
            return self._read()
        except StoreError as exc:  # the journal's location failed: say it was the journal
            raise JournalError(
                f"{self.describe()} cannot be read: {exc.message}", hint=exc.hint, transient=exc.transient
            ) from exc

    def load(self, path: str) -> pa.Table | None:
        """One journal object (`journal.parquet` or a run object) as journal rows; None when it is
        gone (a run object folded meanwhile); JournalError naming it when it cannot be read."""
        try:
            data = self.location.get(path)
        except (NotFoundError, FileNotFoundError):
            return None
        try:
            return _conform(pq.read_table(io.BytesIO(data)))
        except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
            raise JournalError(
                f"{path} in {self.describe()} is damaged ({len(data):,} bytes: {exc})",
                hint="run `hygge journal repair --dry-run` to see what it would do, then `hygge journal "
                "repair`: it sets damaged files aside and rebuilds the journal from the rest",
            ) from None

    def _read(self) -> pa.Table:
        tables = [t for t in map(self.load, self.run_paths()) if t is not None]  # before the snapshot
        snapshot = self.load(SNAPSHOT)
        if snapshot is not None:
            tables.insert(0, snapshot)
        if not tables:
            return SCHEMA.empty_table()
        return unique_runs(pa.concat_tables(tables))

    def entries(self, flow: str | None = None, entity: str | None = None) -> list[Entry]:
        table = self.read()
        if flow is not None:
            table = table.filter(pc.field("flow") == flow)
        if entity is not None:
            table = table.filter(pc.field("entity") == entity)
        table = table.sort_by([("start_time", "ascending"), ("finish_time", "ascending")])
        return [Entry(**row) for row in table.to_pylist()]

    def successes(self, flow: str, entity: str, store: str | None = None) -> list[Entry]:
        """Successful landing runs, oldest first (`hygge verify` rows land nothing). With `store`, only
        runs into that store location: a watermark belongs to (flow, entity, store), so a moved
        `store.path` starts afresh."""
        runs = [e for e in self.entries(flow, entity) if e.status == "success" and e.run_type != "verify"]
        if store is not None:
            runs = at_store(runs, store)
        return sorted(runs, key=lambda e: (e.finish_time, e.start_time))

    def last_success(self, flow: str, entity: str, store: str | None = None) -> Entry | None:
        """The latest successful landing run (into `store`, when given)."""
        runs = self.successes(flow, entity, store)
        return runs[-1] if runs else None

    def _status_of(self, entity_run_id: str) -> str | None:
        row = self.load(f"{RUNS}/{entity_run_id}.parquet")
        return row.column("status")[0].as_py() if row is not None and row.num_rows else None

    def succeeded(self, entity_run_id: str) -> bool:
        """Whether the journal holds a success row for this entity run."""
        table = self.read()
        hits = table.filter(pc.field("entity_run_id") == entity_run_id)
        return "success" in hits.column("status").to_pylist()

    # --- compaction ----------------------------------------------------------------------------
    def compaction_lease(self, purpose: str) -> Lease:
        """The lease that compaction and repair hold while they rewrite the snapshot."""
        return Lease(self.location, LEASE, owner=f"{purpose} {new_id()}", seconds=settings().lease_seconds)

    def fold(self, table: pa.Table, paths: list[str]) -> None:
        """Write `table` as the snapshot (atomically), then delete the run objects `paths` it holds.
        The caller holds the compaction lease."""
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        self.location.put(SNAPSHOT, sink.getvalue())
        fault("journal.snapshot_written")
        for path in paths:
            self.location.delete(path)
            fault("journal.run_folded")

    def compact(self) -> int:
        """Fold run objects into the snapshot; returns how many were folded (0 if another holds the lease)."""
        lease = self.compaction_lease("compaction")
        try:
            holder = lease.take()
        except Exception as exc:
            raise JournalError(
                f"compacting {self.describe()} failed: could not take its lease: {exc}",
                hint=_PENDING,
                transient=True,
            ) from exc
        if holder is not None:
            return 0
        fault("journal.lease_taken")
        try:
            paths = self.run_paths()
            if not paths:
                return 0
            self.fold(self.read(), paths)
            return len(paths)
        except Exception as exc:
            raise JournalError(f"compacting {self.describe()} failed: {exc}", hint=_PENDING, transient=True) from exc
        finally:
            lease.release()


def at_store(runs: list[Entry], store: str) -> list[Entry]:
    """The runs that landed into `store` (rows older than the `store` column count as such)."""
    return [e for e in runs if e.store in (None, store)]


def _conform(table: pa.Table) -> pa.Table:
    """Older snapshots may lack columns added since; fill them with nulls."""
    columns = []
    for field in SCHEMA:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def unique_runs(table: pa.Table) -> pa.Table:
    """One row per entity_run_id (a run object and the snapshot may both hold it for a moment); a
    success row supersedes a failure row of the same run (recovered after a crash)."""
    if table.num_rows < 2:
        return table
    ids = table.column("entity_run_id").to_pylist()
    statuses = table.column("status").to_pylist()
    chosen: dict[str, int] = {}
    for index, value in enumerate(ids):
        if value not in chosen or (statuses[index] == "success" and statuses[chosen[value]] != "success"):
            chosen[value] = index
    keep = sorted(chosen.values())
    return table.take(keep) if len(keep) != len(ids) else table


FIELD_NAMES = [f.name for f in fields(Entry)]
