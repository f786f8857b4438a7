"""Land one entity: pin the schema, read from the watermark, write through the store, journal it.

Order is what makes reruns exact: the store commits first (tagged with the entity run id), then the
journal records the run and its new watermark. If a crash falls between the two, the next run finds
the store's last commit missing from the journal and records it (watermark = max landed) before
reading on, so nothing is read twice into an append-only store and nothing is skipped.
"""

from __future__ import annotations

import datetime as dt
import errno
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hygge import watermark as wm
from hygge.config.loader import Project
from hygge.config.models import OpenMirroringStoreConfig, ResolvedEntity, SqlHomeConfig
from hygge.errors import ConfigError, HyggeError, JournalError, StoreError
from hygge.faults import fault
from hygge.homes import Bound, make_home
from hygge.journal import Entry, Journal, new_id
from hygge.lease import EntityLease
from hygge.storage import Storage
from hygge.stores import WriteRequest, make_store, store_root
from hygge.typemap import schema_fingerprint

RowsCallback = Callable[[int], None]


@dataclass(frozen=True)
class RunIds:
    """Who started this entity run: the coordinator (project) run and the flow run."""

    coordinator: str
    coordinator_run_id: str
    flow_run_id: str


@dataclass
class EntityResult:
    flow: str
    entity: str
    status: str
    run_type: str
    rows: int = 0
    duration: float = 0.0
    watermark_before: str | None = None
    watermark_after: str | None = None
    message: str = ""
    entity_run_id: str = ""
    error: HyggeError | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        return f"{self.flow}.{self.entity}"


def journal_for(entity: ResolvedEntity, project: Project) -> Journal:
    """The journal an entity's runs go to: the project's `journal.path`, else beside its store."""
    mirrored = project.config.journal.mirror and isinstance(entity.store, OpenMirroringStoreConfig)
    if project.config.journal.path:
        location = Storage.at(project.config.journal.path, project.root, project.config.journal)
        return Journal(location, mirrored=mirrored)
    root = store_root(entity, project.root)
    if isinstance(entity.store, OpenMirroringStoreConfig):
        # A LandingZone holds tables and '_' names only: the journal sits in hygge's own folder there.
        return Journal(root.child("_hygge", ".hygge_journal"), mirrored=mirrored)
    return Journal(root.child(".hygge_journal"))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Guard:
    """Remembers an error raised while a store consumes the stream (drivers may wrap it)."""

    def __init__(self) -> None:
        self.error: BaseException | None = None

    def wrap(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        try:
            yield from batches
        except BaseException as exc:
            self.error = exc
            raise


def land_entity(
    project: Project,
    entity: ResolvedEntity,
    ids: RunIds,
    *,
    run_type: str | None = None,
    on_rows: RowsCallback | None = None,
) -> EntityResult:
    """Land one entity and journal the outcome; raises HyggeError on failure (after journaling it).

    The entity's lease (hygge.lease) is held from before recovery until after the journal write, so
    two runs of one entity never interleave: the second waits, then refuses with ConcurrencyError."""
    lease = EntityLease(journal_for(entity, project).location, entity.flow, entity.name)
    try:
        return _land_entity(project, entity, ids, lease, run_type, on_rows)
    finally:
        lease.release()


def _land_entity(
    project: Project,
    entity: ResolvedEntity,
    ids: RunIds,
    lease: EntityLease,
    run_type: str | None,
    on_rows: RowsCallback | None,
) -> EntityResult:
    entity_run_id = new_id()
    start = _now()
    clock = time.perf_counter()
    run_type = run_type or entity.run_type
    journal = journal_for(entity, project)
    where = {"file": entity.file, "flow": entity.flow, "entity": entity.name}
    mark = entity.watermark
    entry = new_entry(entity, ids, entity_run_id, run_type, start, "fail")
    result = EntityResult(entity.flow, entity.name, "fail", run_type, entity_run_id=entity_run_id)
    guard = _Guard()
    observer = _Observer(None, on_rows)
    try:
        lease.take(entity_run_id, ids.coordinator_run_id)
        home, store, schema = open_entity(project, entity, entry)
        kind = _check_entity(entity, schema, run_type)
        entry.watermark_type = kind
        check_schema = getattr(store, "check_schema", None)
        if check_schema is not None:
            run_type = entry.run_type = result.run_type = check_schema(schema, run_type)
        recovered = _recover(store, journal, entity, ids, kind, run_type)
        if recovered is not None:
            fault("runner.recovered")
        if recovered is not None and recovered.run_type == "full_drop" and run_type == "full_drop":
            # The interrupted run was a full_drop that committed (or was rolled forward) from its
            # staged files: that is this run's work, so it is not extracted a second time.
            result.status, result.rows = "success", recovered.row_count or 0
            result.entity_run_id = recovered.entity_run_id
            result.watermark_after = recovered.watermark
            result.message = recovered.message or ""
            result.duration = time.perf_counter() - clock
            return result

        previous = journal.last_success(entity.flow, entity.name) if run_type == "incremental" else None
        bound = None
        prev_value = None
        if previous and previous.watermark and mark and previous.watermark_column == mark.watermark_column:
            entry.previous_watermark = result.watermark_before = previous.watermark
            prev_value = wm.from_text(previous.watermark, kind)  # type: ignore[arg-type]
            bound = Bound(
                mark.watermark_column,  # type: ignore[arg-type]
                kind,  # type: ignore[arg-type]
                wm.lower_bound(prev_value, kind, mark.lookback),  # type: ignore[arg-type]
            )

        tracker = wm.MaxTracker(mark.watermark_column, kind) if mark and kind else None
        observer.tracker = tracker
        copies = _copies(home, store, run_type, bound)
        if copies:
            # The home's files already hold the pinned schema: land their bytes, no decode or encode.
            _observe_copies(observer, copies, mark.watermark_column if tracker else None)
            lease.check()
            commit = store.write(
                pa.RecordBatchReader.from_batches(schema, iter(())),
                WriteRequest(
                    run_type=run_type,
                    entity_run_id=entity_run_id,
                    version=time.time_ns() // 1000,
                    copies=tuple(copies),
                ),
            )
            commit_detail = commit.detail
        else:
            reader = home.read(bound)
            batches: Iterator[pa.RecordBatch] = lease.guard(iter(reader))
            if bound is not None and not (mark and mark.primary_key):
                landed = store.rows_between(bound.column, bound.value, prev_value)
                batches = _drop_already_landed(batches, landed, bound.column, bound.value, prev_value)
            counted = observer.wrap(batches)
            first = next(counted, None)
            write_type = run_type
            if (
                run_type == "incremental"
                and bound is None
                and previous is not None
                and not (mark and mark.primary_key)
            ):
                # No watermark to start from (the column held only NULLs, or it changed): everything is
                # read again, and without a key to merge on, appending it would double every landed row.
                write_type = "full_drop"
            if first is None and run_type == "incremental":
                commit_detail = "nothing new"
            else:
                stream = pa.RecordBatchReader.from_batches(schema, guard.wrap(_prepend(first, counted)))
                commit = store.write(
                    stream,
                    WriteRequest(
                        run_type=write_type,
                        entity_run_id=entity_run_id,
                        version=time.time_ns() // 1000,
                        primary_key=list(mark.primary_key) if mark else [],
                        watermark_column=mark.watermark_column if mark else None,
                        lookback=mark.lookback if mark else None,
                    ),
                )
                commit_detail = commit.detail
        result.rows = observer.rows
        new_value = tracker.value if tracker else None
        if prev_value is not None and (new_value is None or new_value < prev_value):
            new_value = prev_value
        if new_value is not None and kind:
            entry.watermark = result.watermark_after = wm.to_text(new_value, kind)
        entry.store_commit = commit_detail
        entry.status = result.status = "success"
        entry.row_count = result.rows
    except BaseException as exc:
        error = _as_hygge_error(guard.error or exc, where, entry.store)
        result.error = error
        result.message = entry.message = str(error)
        entry.row_count = observer.rows
        entry.finish_time = _now()
        entry.duration = result.duration = time.perf_counter() - clock
        record_failure(journal, entry, error)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise error from (exc if error is not exc else None)
    entry.finish_time = _now()
    entry.duration = result.duration = time.perf_counter() - clock
    fault("runner.committed")
    lease.check()
    journal.record(entry)
    return result


def record_failure(journal: Journal, entry: Entry, error: HyggeError) -> None:
    """Journal a failed run; if even that fails, the error the user sees says so."""
    try:
        journal.record(entry)
    except HyggeError as journal_error:
        error.details.message += f" (and the failure could not be journaled: {journal_error.message})"


def open_entity(project: Project, entity: ResolvedEntity, entry: Entry) -> tuple[Any, Any, pa.Schema]:
    """The entity's home, store and pinned schema, noted on its journal row as they are known."""
    home = make_home(entity, project.config.connections, project.root)
    store = make_store(entity, project.root)
    entry.home, entry.store = home.describe(), store.describe()
    schema = home.schema()
    entry.schema_version = schema_fingerprint(schema)
    return home, store, schema


def _check_entity(entity: ResolvedEntity, schema: pa.Schema, run_type: str) -> str | None:
    """Validate watermark and key columns against the pinned schema; return the watermark kind."""
    mark = entity.watermark
    where = {"file": entity.file, "flow": entity.flow, "entity": entity.name}
    if run_type == "incremental" and not (mark and mark.watermark_column):
        raise ConfigError(
            "an incremental run needs watermark.watermark_column", hint="set it, or use --full-drop", **where
        )
    for key in mark.primary_key if mark else []:
        if schema.get_field_index(key) < 0:
            raise ConfigError(
                f"primary key column '{key}' is not in the source",
                hint=f"use one of: {', '.join(schema.names)}",
                field="watermark.primary_key",
                **{k: v for k, v in where.items()},
            )
    if mark and mark.watermark_column:
        try:
            return wm.check_column(schema, mark.watermark_column)
        except HyggeError as exc:
            raise exc.with_context(**where) from None
    return None


def _recover(
    store: Any, journal: Journal, entity: ResolvedEntity, ids: RunIds, kind: str | None, run_type: str
) -> Entry | None:
    """Journal a commit that an interrupted run made but could not record; return that entry."""
    commit = store.recover()
    if commit is None or journal.succeeded(commit.entity_run_id):
        return None
    mark = entity.watermark
    value = store.max_value(mark.watermark_column) if mark and mark.watermark_column and kind else None
    entry = new_entry(entity, ids, commit.entity_run_id, commit.run_type or run_type, _now(), "success")
    entry.row_count = commit.rows
    entry.duration = 0.0
    entry.watermark_type = kind
    entry.watermark = wm.to_text(value, kind) if value is not None and kind else None
    entry.message = "recovered: the store committed this run but the journal did not record it"
    entry.store = store.describe()
    entry.store_commit = commit.detail
    journal.record(entry)
    return entry


def new_entry(
    entity: ResolvedEntity, ids: RunIds, run_id: str, run_type: str, start: dt.datetime, status: str
) -> Entry:
    """A journal row with what is known before anything is read."""
    mark = entity.watermark
    return Entry(
        entity_run_id=run_id,
        coordinator_run_id=ids.coordinator_run_id,
        flow_run_id=ids.flow_run_id,
        coordinator=ids.coordinator,
        flow=entity.flow,
        entity=entity.name,
        start_time=start,
        finish_time=start,
        status=status,
        run_type=run_type,
        primary_key=",".join(mark.primary_key) if mark and mark.primary_key else None,
        watermark_column=mark.watermark_column if mark else None,
    )


class _Observer:
    """Counts rows, tracks the watermark maximum and reports progress as batches pass."""

    def __init__(self, tracker: wm.MaxTracker | None, on_rows: RowsCallback | None) -> None:
        self.tracker = tracker
        self.on_rows = on_rows
        self.rows = 0

    def wrap(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if self.tracker is not None:
                self.tracker.update(batch)
            self.count(batch.num_rows)
            fault("extract.batch")
            yield batch

    def count(self, rows: int) -> None:
        self.rows += rows
        if self.on_rows is not None:
            self.on_rows(rows)


def _copies(home: Any, store: Any, run_type: str, bound: Bound | None) -> list[Any] | None:
    """A full load from files that already hold the pinned schema, into a store that can take them."""
    if run_type != "full_drop" or bound is not None or not getattr(store, "accepts_copies", False):
        return None
    offer = getattr(home, "copyable_files", None)
    return offer() if offer is not None else None


def _observe_copies(observer: _Observer, copies: list[Any], column: str | None) -> None:
    """Count the copied rows, and track the watermark from that one column (never the whole file)."""
    import pyarrow.parquet as pq

    for source in copies:
        if column is not None and observer.tracker is not None:
            with source.filesystem.open_input_file(source.path) as handle:
                for batch in pq.ParquetFile(handle).iter_batches(columns=[column]):
                    observer.tracker.update(batch)
        observer.count(source.metadata.num_rows)


def _prepend(first: pa.RecordBatch | None, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    if first is not None:
        yield first
    yield from rest


def _drop_already_landed(
    batches: Iterator[pa.RecordBatch], landed: pa.Table, column: str, low: Any, high: Any
) -> Iterator[pa.RecordBatch]:
    """Without a primary key, rows re-read in [low, high] are matched against landed rows as a multiset.

    Only the (small) re-read window is compared row by row; every other row passes untouched.
    """
    remaining = Counter(tuple(row.values()) for row in landed.to_pylist()) if landed.num_rows else Counter()
    for batch in batches:
        values = batch.column(batch.schema.get_field_index(column))
        in_window = pc.and_(pc.greater_equal(values, low), pc.less_equal(values, high))
        in_window = pc.fill_null(in_window, False)
        if not remaining or not pc.any(in_window).as_py():
            yield batch
            continue
        keep = [True] * batch.num_rows
        window_rows = pc.indices_nonzero(in_window).to_pylist()
        for index, row in zip(window_rows, batch.take(window_rows).to_pylist(), strict=True):
            key = tuple(row.values())
            if remaining[key] > 0:
                remaining[key] -= 1
                keep[index] = False
        yield batch.filter(pa.array(keep))


_DISK_FULL_HINT = (
    "the disk holding the store is full: free space there, then rerun (nothing of this run is visible)"
)


def _as_hygge_error(exc: BaseException, where: dict[str, str], store: str | None = None) -> HyggeError:
    if isinstance(exc, HyggeError):
        if exc.hint is None and "no space left on device" in exc.message.lower():
            exc.details.hint = _DISK_FULL_HINT
        return exc.with_context(**where)
    if isinstance(exc, OSError):
        full = exc.errno == errno.ENOSPC
        # A network error can heal by retrying; a full disk or a missing folder cannot.
        transient = isinstance(exc, ConnectionError | TimeoutError)
        return StoreError(
            f"writing {store or 'the store'} failed: {type(exc).__name__}: {exc}",
            hint=_DISK_FULL_HINT if full else "check the path and free space",
            transient=transient,
            **where,
        )
    if isinstance(exc, KeyboardInterrupt):
        return HyggeError(
            "interrupted", hint="run it again: the next run picks up where this stopped", **where
        )
    return HyggeError(
        f"unexpected {type(exc).__name__}: {exc}",
        hint="run it again; if it repeats, report it with this message (the original error is chained)",
        **where,
    )


__all__ = ["EntityResult", "JournalError", "RunIds", "SqlHomeConfig", "journal_for", "land_entity"]
