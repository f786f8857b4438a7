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
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa

from hygge import watermark as wm
from hygge.changes import deletes
from hygge.changes.feed_for import feed_for
from hygge.changes.integrity import KeyCheck
from hygge.changes.keys import KeyShape
from hygge.config.loader import Project
from hygge.config.models import OpenMirroringStoreConfig, ResolvedEntity, SqlHomeConfig
from hygge.drift import NOTHING_NEW, check_owner, owner_of, starting_point
from hygge.errors import ConfigError, HyggeError, JournalError, StoreError
from hygge.faults import fault
from hygge.homes import make_home
from hygge.journal import Entry, Journal, new_id
from hygge.lease import EntityLease
from hygge.reading import RunOptions, new_watermark, read_feed, read_watermark
from hygge.storage import Storage
from hygge.storage.errors import DISK_FULL_HINT, flat_error, transient_cause
from hygge.stores import WriteRequest, make_store, store_root
from hygge.stores.base import Commit, Confirmation
from hygge.streams import (
    Guard,
    Observer,
    RowsCallback,
    copy_keys,
    drop_already_landed,
    observe_copies,
    prepend,
)
from hygge.typemap import schema_fingerprint


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
    deleted: int = 0  # keys deleted (or soft-deleted) in the store
    duration: float = 0.0
    watermark_before: str | None = None
    watermark_after: str | None = None
    message: str = ""
    entity_run_id: str = ""
    confirmation: Confirmation | None = None  # Fabric applied the run's rows (Open Mirroring `confirm:`)
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


def land_entity(
    project: Project,
    entity: ResolvedEntity,
    ids: RunIds,
    *,
    run_type: str | None = None,
    on_rows: RowsCallback | None = None,
    reconcile: bool = False,
    allow_mass_delete: bool = False,
) -> EntityResult:
    """Land one entity and journal the outcome; raises HyggeError on failure (after journaling it).

    `reconcile` compares key sets this run whatever `deletes.every` says; `allow_mass_delete` lets
    this run delete more than `deletes.max_share` of the landed keys.

    The entity's lease (hygge.lease) is held from before recovery until after the journal write, so
    two runs of one entity never interleave: the second waits, then refuses with ConcurrencyError."""
    lease = EntityLease(journal_for(entity, project).location, entity.flow, entity.name)
    options = RunOptions(run_type, reconcile, allow_mass_delete)
    try:
        return _land_entity(project, entity, ids, lease, options, on_rows)
    finally:
        lease.release()


def _land_entity(
    project: Project,
    entity: ResolvedEntity,
    ids: RunIds,
    lease: EntityLease,
    options: RunOptions,
    on_rows: RowsCallback | None,
) -> EntityResult:
    entity_run_id = new_id()
    start = _now()
    clock = time.perf_counter()
    run_type = options.run_type or entity.run_type
    journal = journal_for(entity, project)
    where = {"file": entity.file, "flow": entity.flow, "entity": entity.name}
    mark = entity.watermark
    owner = owner_of(project.config.name, entity)
    entry = new_entry(entity, ids, entity_run_id, run_type, start, "fail")
    result = EntityResult(entity.flow, entity.name, "fail", run_type, entity_run_id=entity_run_id)
    guard = Guard()
    observer = Observer(None, on_rows)
    feed = None
    try:
        lease.take(entity_run_id, ids.coordinator_run_id)
        home, store, schema = open_entity(project, entity, entry)
        feed = feed_for(entity, home) if entity.feed is not None else None
        rowversion = getattr(home, "rowversion_columns", frozenset)()
        kind = feed.kind if feed is not None else _check_entity(entity, schema, run_type, rowversion)
        _check_keys(entity, schema)
        if mark and mark.dedupe_by and not hasattr(home, "select_sql"):
            raise ConfigError(
                "`watermark.dedupe_by` is done by the SQL server, and this entity's home is not SQL",
                hint="remove `dedupe_by` and fix the repeated keys in the files",
                field="watermark.dedupe_by",
                **where,
            )
        entry.watermark_type = kind
        stored = deletes.store_schema(entity, schema)
        check_schema = getattr(store, "check_schema", None)
        schema_note = None
        if check_schema is not None:
            run_type, schema_note = check_schema(stored, run_type)
            entry.run_type = result.run_type = run_type
        recovered, commit = _recover(store, journal, entity, ids, kind, run_type, owner)
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
        # The journal is read once: the drift check and the reconciliation schedule share its runs.
        runs = journal.successes(entity.flow, entity.name) if run_type == "incremental" else []
        begin = starting_point(entity, runs, store, commit, run_type)
        run_type = entry.run_type = result.run_type = begin.run_type
        entry.message = result.message = "; ".join(n for n in (schema_note, begin.note) if n) or begin.note
        written: Commit | None = None  # None: nothing new, nothing written

        if feed is not None:
            plan = read_feed(entity, home, store, feed, begin.previous, run_type, options)
        else:
            plan = read_watermark(entity, home, store, runs, begin.previous, run_type, kind, options, entry)
        run_type = entry.run_type = result.run_type = plan.run_type
        if begin.previous is not None and plan.run_type == "incremental":
            entry.previous_watermark = result.watermark_before = begin.previous.watermark
        tracker = wm.MaxTracker(mark.watermark_column, kind) if feed is None and mark and kind else None
        observer.tracker = tracker
        soft = deletes.soft_column(entity)
        keys = entity.keys
        request = WriteRequest(
            run_type=plan.run_type,
            entity_run_id=entity_run_id,
            version=time.time_ns() // 1000,
            primary_key=keys,
            watermark_column=mark.watermark_column if mark else None,
            lookback=mark.lookback if mark else None,
            deletes=plan.deletes,
            soft_column=soft,
            deleted_at=start,
            owner=owner,
            position=plan.position,
        )
        if plan.copies:
            # The home's files already hold the pinned schema: land their bytes, no decode or encode.
            if keys:
                KeyCheck(KeyShape.of(schema, keys)).check_tables(copy_keys(plan.copies, keys))
            observe_copies(observer, plan.copies, mark.watermark_column if tracker else None)
            lease.check()
            written = store.write(plan.reader, replace(request, copies=tuple(plan.copies)))
        else:
            batches: Iterator[pa.RecordBatch] = lease.guard(iter(plan.reader))
            if plan.bound is not None:
                landed = store.rows_between(plan.bound.column, plan.bound.value, plan.prev_value)
                batches = drop_already_landed(
                    batches, landed, plan.bound.column, plan.bound.value, plan.prev_value
                )
            if plan.run_type == "full_drop" and deletes.guard_share(entity) is not None and commit is not None:
                batches = deletes.refuse_emptying(batches, entity, store, options.allow_mass_delete)
            if soft:
                batches = deletes.with_deleted_at(batches, stored)
            if keys:
                batches = KeyCheck(KeyShape.of(schema, keys)).wrap(batches)
            counted = observer.wrap(batches)
            first = next(counted, None)
            if first is not None or plan.run_type != "incremental" or request.delete_count:
                stream = pa.RecordBatchReader.from_batches(stored, guard.wrap(prepend(first, counted)))
                written = store.write(stream, request)
        result.rows = observer.rows
        new_watermark(entry, result, plan, tracker, kind, home)
        entry.deleted_count = result.deleted = request.delete_count
        if request.delete_count:
            what = "soft-deleted" if soft else "deleted"
            note = f"{what} {request.delete_count:,} key(s) gone from the source"
            entry.message = result.message = "; ".join(p for p in (result.message, note) if p)
        entry.store_commit = written.detail if written is not None else NOTHING_NEW
        if written is not None and (confirmation := written.confirmation) is not None:
            result.confirmation = confirmation
            entry.confirm_status, entry.confirm_rows = confirmation.status, confirmation.processed_rows
            entry.confirm_seconds = confirmation.seconds
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
    if feed is not None and plan.window is not None:
        feed.acknowledge(plan.window)  # only now may the source forget what this run read
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


def _check_keys(entity: ResolvedEntity, schema: pa.Schema) -> None:
    """Every primary key column must be in the pinned schema."""
    for key in entity.keys:
        if schema.get_field_index(key) < 0:
            raise ConfigError(
                f"primary key column '{key}' is not in the source",
                hint=f"use one of: {', '.join(schema.names)}",
                field="watermark.primary_key",
                file=entity.file,
                flow=entity.flow,
                entity=entity.name,
            )


def _check_entity(
    entity: ResolvedEntity, schema: pa.Schema, run_type: str, rowversion: frozenset[str] = frozenset()
) -> str | None:
    """Validate the watermark column against the pinned schema; return the watermark kind."""
    mark = entity.watermark
    where = {"file": entity.file, "flow": entity.flow, "entity": entity.name}
    if run_type == "incremental" and not (mark and mark.watermark_column):
        raise ConfigError(
            "an incremental run needs watermark.watermark_column", hint="set it, or use --full-drop", **where
        )
    if mark and mark.watermark_column:
        try:
            return wm.check_column(schema, mark.watermark_column, rowversion)
        except HyggeError as exc:
            raise exc.with_context(**where) from None
    return None


def _recover(
    store: Any,
    journal: Journal,
    entity: ResolvedEntity,
    ids: RunIds,
    kind: str | None,
    run_type: str,
    owner: str,
) -> tuple[Entry | None, Commit | None]:
    """Journal a commit that an interrupted run made but could not record; return that entry (if
    any) and the store's last commit. A commit another owner made is refused, never journaled."""
    commit = store.recover()
    check_owner(commit, owner, store)
    if sweep := getattr(store, "remove_orphans", None):  # Delta: files of an interrupted write
        sweep()
    if commit is None or journal.succeeded(commit.entity_run_id):
        return None, commit
    mark = entity.watermark
    if commit.position is not None:
        text = commit.position
    else:
        column = mark.watermark_column if mark else None
        value = store.max_value(column) if column and kind else None
        text = wm.to_text(value, kind) if value is not None and kind else None
    entry = new_entry(entity, ids, commit.entity_run_id, commit.run_type or run_type, _now(), "success")
    entry.row_count = commit.rows
    entry.duration = 0.0
    entry.watermark_type = kind
    entry.watermark = text
    entry.message = "recovered: the store committed this run but the journal did not record it"
    entry.store = store.describe()
    entry.store_commit = commit.detail
    journal.record(entry)
    return entry, commit


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




def _as_hygge_error(exc: BaseException, where: dict[str, str], store: str | None = None) -> HyggeError:
    if isinstance(exc, HyggeError):
        if exc.hint is None and "no space left on device" in exc.message.lower():
            exc.details.hint = DISK_FULL_HINT
        return exc.with_context(**where)
    if isinstance(exc, OSError):
        full = exc.errno == errno.ENOSPC
        # A network error can heal by retrying (also when pyarrow or deltalake, reading landed files,
        # says so only in its text); a full disk or a missing folder cannot.
        transient = not full and (isinstance(exc, ConnectionError | TimeoutError) or transient_cause(str(exc)))
        return StoreError(
            f"writing {store or 'the store'} failed: {type(exc).__name__}: {exc}",
            hint=DISK_FULL_HINT if full else (
                "the storage was briefly unreachable; hygge retries transient failures" if transient
                else "check the path and free space"
            ),
            transient=transient,
            **where,
        )
    if isinstance(exc, KeyboardInterrupt):
        return HyggeError(
            "interrupted", hint="run it again: the next run picks up where this stopped", **where
        )
    if transient_cause(str(exc)):  # a storage client's own error type (obstore), naming a network cause
        return StoreError(
            f"writing {store or 'the store'} failed: {type(exc).__name__}: {flat_error(str(exc))}",
            hint="the storage was briefly unreachable; hygge retries transient failures",
            transient=True,
            **where,
        )
    return HyggeError(
        f"unexpected {type(exc).__name__}: {exc}",
        hint="run it again; if it repeats, report it with this message (the original error is chained)",
        **where,
    )


__all__ = ["EntityResult", "JournalError", "RunIds", "SqlHomeConfig", "journal_for", "land_entity"]
