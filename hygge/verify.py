"""Replay a landing zone the way its reader would, and reconcile it with the source.

Open Mirroring tables are replayed by hygge.stores.replay (data files in sequence order, row markers
applied by key columns).

`verify_entity` streams the source through the entity's home and reads what landed through the
store's `scan()` (for Open Mirroring, the replay, and also the Delta table Fabric replicated into the
mirrored database's `Tables/`, where it exists), then reconciles them: the row count and, per
source column, an order-independent checksum built batch by batch. A column's checksum is its null
count plus, for each of four seeds, the sum (mod 2**64) of polars' stable 64-bit hashes of its
non-null values: duplicates count, order does not, and no side is ever held whole for the source.
Both sides are compared in the source's pinned types (for Open Mirroring: those types as Fabric data
files hold them), so a reader's large_string or a landed decimal's precision never shows as a
difference. Every verification is journaled with run_type "verify" (never a watermark source).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from hygge.changes.deletes import soft_column
from hygge.config.models import OpenMirroringStoreConfig
from hygge.errors import HyggeError
from hygge.fabric.schema import conform_for_fabric, conform_schema
from hygge.fabric.status import DEFAULT_SCHEMA
from hygge.journal import new_id
from hygge.runner import RunIds, journal_for, new_entry, open_entity, record_failure
from hygge.stores.replay import replay_open_mirroring

if TYPE_CHECKING:
    from hygge.config.loader import Project
    from hygge.config.models import ResolvedEntity

__all__ = ["Verification", "replay_open_mirroring", "verify_entity"]

# --- reconciling with the source -----------------------------------------------------------------
RUN_TYPE = "verify"
SEEDS = (0, 1, 2, 3)
_HALF = 1 << 32
_MOD = 1 << 64


class ColumnChecksum:
    """An order-independent checksum of one column's values, fed array by array."""

    def __init__(self) -> None:
        self.sums = [0] * len(SEEDS)
        self.nulls = 0
        self.rows = 0

    def update(self, values: pa.Array | pa.ChunkedArray) -> None:
        if not len(values):
            return
        series = _series(values)
        self.rows += len(series)
        self.nulls += series.null_count()
        series = series.drop_nulls()
        if not len(series):
            return
        for index, seed in enumerate(SEEDS):
            hashes = series.hash(seed=seed)
            # Halves summed apart never overflow (fewer than 2**32 values per array), so the result
            # does not rest on how polars treats an overflowing UInt64 sum.
            high = int((hashes // _HALF).sum())
            low = int((hashes % _HALF).sum())
            self.sums[index] = (self.sums[index] + (high << 32) + low) % _MOD

    @property
    def digest(self) -> str:
        return f"{self.nulls}:" + "".join(f"{s:016x}" for s in self.sums)


def _series(values: pa.Array | pa.ChunkedArray) -> pl.Series:
    try:
        return pl.from_arrow(values)  # type: ignore[return-value]
    except Exception:  # a type polars cannot take: compare its text form instead
        return pl.from_arrow(pc.cast(values, pa.string()))  # type: ignore[return-value]


@dataclass
class ColumnResult:
    name: str
    source_checksum: str
    landed_checksum: str | None  # None: the column did not land (or cannot be read as the source's type)
    equal: bool
    note: str | None = None


@dataclass
class Verification:
    flow: str
    entity: str
    source_rows: int
    landed_rows: int
    columns: list[ColumnResult] = field(default_factory=list)
    ok: bool = False
    message: str = ""
    entity_run_id: str = ""
    # Open Mirroring: the table Fabric replicated (Delta under the item's Tables/), where it exists.
    fabric_rows: int | None = None
    fabric_columns: list[ColumnResult] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.flow}.{self.entity}"

    @property
    def differing(self) -> list[str]:
        return [c.name for c in self.columns if not c.equal]

    @property
    def fabric_differing(self) -> list[str]:
        return [c.name for c in self.fabric_columns if not c.equal]


def verify_entity(project: Project, entity: ResolvedEntity, ids: RunIds | None = None) -> Verification:
    """Reconcile what the entity's store holds with its source, and journal the result.

    Returns the Verification (ok or not); raises HyggeError when either side cannot be read (that
    failure is journaled too).
    """
    start = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    ids = ids or RunIds(project.config.name, new_id(), new_id())
    entry = new_entry(entity, ids, new_id(), RUN_TYPE, start, "fail")
    where = {"file": entity.file, "flow": entity.flow, "entity": entity.name}
    journal = journal_for(entity, project)
    try:
        home, store, schema = open_entity(project, entity, entry)
        fabric = isinstance(entity.store, OpenMirroringStoreConfig)
        # Compare in the types the store holds for the source's pinned types.
        target = conform_schema(schema) if fabric else schema

        source = {name: ColumnChecksum() for name in target.names}
        source_rows = 0
        for batch in home.read():
            if fabric:
                batch = conform_for_fabric(batch)
            source_rows += batch.num_rows
            for name in target.names:
                source[name].update(batch.column(name))

        # Open Mirroring: Fabric removes the files it applied, and then its table is the only whole
        # picture left; while the zone still holds every file, both are compared (one at a time).
        replayed = not fabric or store.replayable()  # type: ignore[attr-defined]
        landed_table = store.scan() if replayed else _fabric_table(store)
        if landed_table is None:
            raise HyggeError(
                "the landing zone no longer holds every file hygge published (Fabric removes the "
                "files it has applied) and the mirrored table is not readable under the item's Tables/",
                hint="verify where the item's Tables/ folder is readable with the landing zone's credential",
            )
        soft = soft_column(entity)
        if soft and soft in landed_table.column_names:  # soft-deleted rows are gone from the source
            landed_table = landed_table.filter(pc.is_null(landed_table.column(soft)))
        landed_rows = landed_table.num_rows
        columns = [_compare(fld.name, fld.type, source[fld.name], landed_table) for fld in target]
        del landed_table
        far = _fabric_table(store) if fabric and replayed else None
        fabric_rows = far.num_rows if far is not None else None
        far_columns = [_compare(f.name, f.type, source[f.name], far) for f in target] if far is not None else []
        del far
    except BaseException as exc:
        error = (
            exc.with_context(**where)
            if isinstance(exc, HyggeError)
            else HyggeError(f"verify failed: {type(exc).__name__}: {exc}", **where)
        )
        entry.message = f"verify: {error.message}"
        entry.finish_time = dt.datetime.now(dt.UTC)
        entry.duration = time.perf_counter() - clock
        record_failure(journal, entry, error)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise error from (exc if error is not exc else None)

    ok = source_rows == landed_rows and all(c.equal for c in columns)
    message = _summary(source_rows, landed_rows, columns)
    if not replayed:  # what landed is Fabric's table itself
        message += " (Fabric's table: it removed the landing zone files it had applied)"
        fabric_rows, far_columns = landed_rows, columns
    elif fabric_rows is not None:
        ok = ok and source_rows == fabric_rows and all(c.equal for c in far_columns)
        message += "; Fabric's table: " + _summary(source_rows, fabric_rows, far_columns).removeprefix("verify: ")
    result = Verification(
        flow=entity.flow,
        entity=entity.name,
        source_rows=source_rows,
        landed_rows=landed_rows,
        columns=columns,
        ok=ok,
        message=message,
        entity_run_id=entry.entity_run_id,
        fabric_rows=fabric_rows,
        fabric_columns=far_columns,
    )
    entry.status = "success" if ok else "fail"
    entry.row_count = landed_rows
    entry.message = result.message
    entry.finish_time = dt.datetime.now(dt.UTC)
    entry.duration = time.perf_counter() - clock
    journal.record(entry)
    return result


def _fabric_table(store: object) -> pa.Table | None:
    """The Delta table Fabric keeps for an Open Mirroring table (`Tables/<schema>/<table>` in the
    mirrored database item), or None where the zone is no item's or the table is not there yet."""
    from hygge.stores.delta import DeltaStore

    watch = getattr(store, "watch", None)
    if watch is None:
        return None
    place = watch.item.child("Tables", watch.schema or DEFAULT_SCHEMA, watch.table)
    table = DeltaStore(place, "verify").scan()
    return table if table.num_columns else None


def _compare(name: str, kind: pa.DataType, source: ColumnChecksum, landed: pa.Table) -> ColumnResult:
    if name not in landed.column_names:
        if landed.num_rows == 0:  # nothing landed: an empty column of any type
            empty = ColumnChecksum().digest
            return ColumnResult(name, source.digest, empty, source.digest == empty)
        return ColumnResult(name, source.digest, None, False, "not landed")
    checksum = ColumnChecksum()
    for chunk in landed.column(name).chunks:
        try:
            chunk = chunk if chunk.type == kind else pc.cast(chunk, kind)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            note = f"landed as {chunk.type}, which does not read as {kind}: {exc}"
            return ColumnResult(name, source.digest, None, False, note)
        checksum.update(chunk)
    return ColumnResult(name, source.digest, checksum.digest, source.digest == checksum.digest)


def _summary(source_rows: int, landed_rows: int, columns: list[ColumnResult]) -> str:
    """One line for the journal: row counts, then which columns differ (if any)."""
    if source_rows == landed_rows:
        rows = f"{source_rows:,} rows " + ("match" if all(c.equal for c in columns) else "each")
    else:
        rows = f"source {source_rows:,} rows, landed {landed_rows:,}"
    differ = [c.name + (f" ({c.note})" if c.note == "not landed" else "") for c in columns if not c.equal]
    tail = f"differ: {', '.join(differ)}" if differ else f"columns: all {len(columns)} equal"
    return f"verify: {rows}; {tail}"
