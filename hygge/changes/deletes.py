"""The delete policy of an entity: when key sets are compared, and how soft deletes look in the rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from hygge.errors import ConfigError

if TYPE_CHECKING:
    from hygge.config.models import ResolvedEntity
    from hygge.journal import Entry

DELETED_AT = pa.timestamp("us", tz="UTC")


def soft_column(entity: ResolvedEntity) -> str | None:
    deletes = entity.deletes
    return deletes.column if deletes is not None and deletes.mode == "soft" else None


def store_schema(entity: ResolvedEntity, schema: pa.Schema) -> pa.Schema:
    """What the store holds: the pinned schema, plus the deleted-at column where deletes are soft."""
    column = soft_column(entity)
    if column is None:
        return schema
    if column in schema.names:
        raise ConfigError(
            f"the source already has a column '{column}', the name soft deletes would set",
            hint="choose another name with `deletes.column`",
            file=entity.file,
            flow=entity.flow,
            entity=entity.name,
            field="deletes.column",
        )
    return schema.append(pa.field(column, DELETED_AT))


def with_deleted_at(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Source rows as the store holds them: a (NULL) deleted-at column appended where it has one."""
    for batch in batches:
        if batch.num_rows and len(batch.schema) < len(schema):
            missing = [pa.nulls(batch.num_rows, f.type) for f in schema if f.name not in batch.schema.names]
            batch = pa.RecordBatch.from_arrays([*batch.columns, *missing], schema=schema)
        yield batch


def reconcile_due(entity: ResolvedEntity, runs: list[Entry], asked: bool) -> bool:
    """Whether this incremental run compares key sets: on demand, or every `deletes.every`-th run."""
    deletes = entity.deletes
    if deletes is None or entity.feed is not None:
        return False
    if asked:
        return True
    if deletes.every == 0:
        return False
    since = 0
    for entry in reversed(runs):
        if entry.reconciled or entry.run_type == "full_drop":
            break
        since += 1
    return since + 1 >= deletes.every


def guard_share(entity: ResolvedEntity) -> float | None:
    """The mass-delete guard's share for an entity that deletes (`deletes:` or a change feed), else
    None: an entity that never deletes is never refused."""
    if entity.deletes is not None:
        return entity.deletes.max_share
    return 0.5 if entity.feed is not None else None


def landed_for_guard(store: Any, deleting: int, share: float) -> int:
    """The landed keys a change feed's guard weighs `deleting` against: a store's cheap floor where it
    has one (an under-count only makes the guard stricter), counted exactly only when the floor would
    refuse, so a refusal always names the true count."""
    floor = getattr(store, "live_key_floor", None)
    if floor is not None and deleting <= share * (low := floor()):
        return low
    return store.row_count()


def refuse_emptying(
    batches: Iterator[pa.RecordBatch], entity: ResolvedEntity, store: Any, allowed: bool
) -> Iterator[pa.RecordBatch]:
    """A full reload that reads far fewer rows than landed would delete the rest: the same guard as a
    reconciliation's, checked when the stream ends (before the store commits)."""
    from hygge.changes.reconcile import guard

    share = guard_share(entity)
    assert share is not None
    read = 0
    for batch in batches:
        read += batch.num_rows
        yield batch
    if allowed:
        return
    landed = store.row_count()  # from metadata, as a change feed's guard counts: no scan of every key
    guard(max(landed - read, 0), landed, share, allowed, "full reload")
