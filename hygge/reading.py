"""What an entity run reads: the watermark window (with a key-set reconciliation when due), or a
change feed's window; either way rows to upsert, keys to delete and where the next run starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from hygge import watermark as wm
from hygge.changes import deletes
from hygge.changes.feed import ChangeFeed, FeedWindow
from hygge.changes.keys import KeyShape
from hygge.changes.reconcile import find_deletes
from hygge.changes.reconcile import guard as mass_delete_guard
from hygge.changes.spool import spooled
from hygge.errors import SourceError
from hygge.homes import Bound
from hygge.journal import at_store

if TYPE_CHECKING:
    from hygge.config.models import ResolvedEntity
    from hygge.journal import Entry


@dataclass(frozen=True)
class RunOptions:
    """What one invocation asks of the entities it lands."""

    run_type: str | None = None
    reconcile: bool = False
    allow_mass_delete: bool = False


@dataclass
class Read:
    """What a run reads: the rows to upsert, the keys to delete, and where the next run starts."""

    reader: pa.RecordBatchReader
    run_type: str
    deletes: pa.Table | None = None
    bound: Bound | None = None
    prev_value: Any = None
    position: str | None = None  # a change feed's window end, journaled as the watermark
    window: FeedWindow | None = None
    copies: list[Any] | None = None


def read_watermark(
    entity: ResolvedEntity,
    home: Any,
    store: Any,
    runs: list[Entry],
    previous: Entry | None,
    run_type: str,
    kind: str | None,
    options: RunOptions,
    entry: Entry,
) -> Read:
    """Rows at or above the journaled watermark, and (when due) the keys gone from the source."""
    mark = entity.watermark
    bound = prev_value = None
    if previous and previous.watermark and mark and previous.watermark_column == mark.watermark_column:
        prev_value = wm.from_text(previous.watermark, kind)  # type: ignore[arg-type]
        bound = Bound(
            mark.watermark_column,  # type: ignore[arg-type]
            kind,  # type: ignore[arg-type]
            wm.lower_bound(prev_value, kind, mark.lookback),  # type: ignore[arg-type]
        )
    if run_type == "incremental" and bound is None and previous is not None and not entity.keys:
        # No watermark to start from (the column held only NULLs, or it changed): everything is read
        # again, and without a key to merge on, appending it would double every landed row.
        run_type = "full_drop"
    # Soft deletes add a column the home's files lack: those are re-encoded, not copied.
    copies = None if deletes.soft_column(entity) else _copies(home, store, run_type, bound)
    gone = None
    if run_type == "incremental" and deletes.reconcile_due(
        entity, at_store(runs, store.describe()), options.reconcile
    ):
        gone = _detect(entity, home, store, options)
        entry.reconciled = True
    # Copied files are not streamed: the store is handed an empty stream of the pinned schema.
    reader = pa.RecordBatchReader.from_batches(home.schema(), iter(())) if copies else home.read(bound)
    return Read(reader, run_type, gone, bound, prev_value, copies=copies)


def _detect(entity: ResolvedEntity, home: Any, store: Any, options: RunOptions) -> pa.Table:
    """The landed keys the source no longer holds, refused past the mass-delete guard."""
    assert entity.deletes is not None
    keys = entity.keys
    shape = KeyShape.of(home.schema(), keys)
    found = find_deletes(
        shape, iter(home.read_columns(keys)), store.landed_keys(keys, deletes.soft_column(entity))
    )
    mass_delete_guard(
        found.deletes.num_rows, found.landed_keys, entity.deletes.max_share, options.allow_mass_delete
    )
    return found.deletes


def read_feed(
    entity: ResolvedEntity,
    home: Any,
    store: Any,
    feed: ChangeFeed,
    previous: Entry | None,
    run_type: str,
    options: RunOptions,
) -> Read:
    """A change feed's window: its changes, or a full load where there is no usable position."""
    assert entity.feed is not None
    start = previous.watermark if previous and previous.watermark_type == feed.kind else None
    window = feed.open(start if run_type == "incremental" else None)
    if run_type == "incremental" and window.expired and entity.feed.on_expired == "fail":
        raise SourceError(
            f"{feed.describe()}: {window.expired}",
            hint="run this entity with --full-drop to reload it, or set `feed.on_expired: full_drop`",
            field="feed.on_expired",
        )
    if run_type == "full_drop" or window.start is None or window.expired:
        return Read(home.read(None), "full_drop", position=window.end, window=window)
    changes = feed.changes(window)
    if getattr(changes, "truncated", None):
        # A TRUNCATE names no keys: only a full reload says which rows are left.
        return Read(home.read(None), "full_drop", position=window.end, window=window)
    upserts = changes.upserts
    if not getattr(changes, "ready", True):  # deletes come only once the upserts were read
        upserts = spooled(upserts)
    share = deletes.guard_share(entity)
    if changes.deletes.num_rows and share is not None and share < 1:
        landed = deletes.landed_for_guard(store, changes.deletes.num_rows, share)
        mass_delete_guard(changes.deletes.num_rows, landed, share, options.allow_mass_delete, "change feed")
    return Read(upserts, "incremental", changes.deletes, position=window.end, window=window)


def new_watermark(entry: Entry, result: Any, plan: Read, tracker: Any, kind: str | None, home: Any) -> None:
    """The watermark the journal records: a feed's window end, a read's ceiling (rowversion), or the
    largest value read (never below the previous one)."""
    if plan.position is not None:
        entry.watermark = result.watermark_after = plan.position
        return
    ceiling = getattr(home, "watermark_ceiling", None)
    new_value = ceiling if ceiling is not None else (tracker.value if tracker else None)
    if plan.prev_value is not None and (new_value is None or new_value < plan.prev_value):
        new_value = plan.prev_value
    if new_value is not None and kind:
        entry.watermark = result.watermark_after = wm.to_text(new_value, kind)


def _copies(home: Any, store: Any, run_type: str, bound: Bound | None) -> list[Any] | None:
    """A full load from files that already hold the pinned schema, into a store that can take them."""
    if run_type != "full_drop" or bound is not None or not getattr(store, "accepts_copies", False):
        return None
    offer = getattr(home, "copyable_files", None)
    return offer() if offer is not None else None
