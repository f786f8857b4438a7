"""Deletes by reconciliation: the source's key set (keys only, streamed) against the landed one.

The source's keys become a sorted array of fingerprints (8 bytes a key); the landed keys then stream
past it, and every landed key whose fingerprint the source lacks is gone from the source: an exact
key, read from the store, to delete. Memory is the source's fingerprints plus one batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from hygge.changes.keys import FingerprintSet, KeyShape, keys_absent_from, null_rows
from hygge.errors import SourceError


@dataclass
class Reconciliation:
    """The keys to delete, and how many keys each side holds (for the guard and the journal)."""

    deletes: pa.Table
    source_keys: int
    landed_keys: int

    @property
    def share(self) -> float:
        return self.deletes.num_rows / self.landed_keys if self.landed_keys else 0.0


def find_deletes(
    shape: KeyShape, source: Iterator[pa.RecordBatch], landed: Iterator[pa.RecordBatch]
) -> Reconciliation:
    """Landed keys that the source no longer holds."""
    present = FingerprintSet()
    for batch in source:
        keys = shape.select(batch)
        nulls = null_rows(keys)
        if pc.any(nulls).as_py():
            keys = keys.filter(pc.invert(nulls))
        present.add(shape.fingerprints(keys))
    source_count = len(present)
    deletes, landed_count = keys_absent_from(shape, landed, present)
    return Reconciliation(deletes, source_count, landed_count)


def guard(deleting: int, landed: int, max_share: float, allowed: bool, what: str = "reconciliation") -> None:
    """Refuse to delete more than `max_share` of the landed keys unless this run allows it: a source
    query that suddenly returns nothing must never empty a landing zone."""
    if allowed or not landed or deleting <= max_share * landed:
        return
    raise SourceError(
        f"the {what} would delete {deleting:,} of {landed:,} landed keys ({deleting / landed:.0%}), more "
        f"than `deletes.max_share` ({max_share:.0%}); nothing was changed",
        hint="check the source (an empty or filtered table?); if the rows really are gone, run once with "
        "`hygge go --allow-mass-delete`, or raise `deletes.max_share`",
        field="deletes.max_share",
    )
