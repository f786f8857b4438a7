"""Change feeds: keys and operations since a journaled position, read up to an upper bound fixed first.

A feed never scans keys: the source says what changed. Current row values are read from the table
with the pinned schema (the SQL home's select list), so type fidelity is the same as a table read.
The runner drives every feed the same way:

1. `open(start)` fixes the window: it reads the upper bound before any change, checks that `start`
   (the journal's last position, None on a first run) is still available, and creates what the feed
   needs in the source (a replication slot) when absent. A position too old comes back as
   `FeedWindow.expired` with the reason; the runner then reloads in full or fails (`on_expired`).
2. `changes(window)` streams the rows to upsert and the keys to delete within the window.
3. The store commits, the journal records `window.end` as the entity's watermark (watermark_type
   `kind`), and only then `acknowledge(window)` lets the source forget what was read. A crash before
   that re-reads the same window: upserts and deletes apply idempotently, nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from hygge.errors import SourceError


@dataclass(frozen=True)
class FeedWindow:
    """What one run reads: changes after `start` up to and including `end` (journaled on success)."""

    start: str | None
    end: str
    expired: str | None = None  # why `start` can no longer be read from (a full reload is needed)


@dataclass
class FeedChanges:
    """Net changes per key within a window: the current rows of inserted or updated keys (pinned
    schema) and the keys (key columns only, pinned types) that were deleted."""

    upserts: pa.RecordBatchReader
    deletes: pa.Table
    truncated: str | None = None  # the table was emptied within the window (why): reload it in full


class GatheredChanges(FeedChanges):
    """FeedChanges split from one stream (Change Tracking's changes joined to the table, logical decoding's
    keys joined to it): `deletes` is ready only once `upserts` was read to its end."""

    def __init__(self, upserts: pa.RecordBatchReader, key_schema: pa.Schema) -> None:
        self._deletes: pa.Table | None = None
        self.key_schema = key_schema
        super().__init__(upserts, None)  # type: ignore[arg-type]

    @property  # type: ignore[override]
    def deletes(self) -> pa.Table:
        if self._deletes is None:
            raise SourceError(
                "the deleted keys of this change window are gathered while its upserts are read",
                hint="read FeedChanges.upserts to its end before FeedChanges.deletes",
            )
        return self._deletes

    @deletes.setter
    def deletes(self, value: pa.Table | None) -> None:
        self._deletes = value

    @property
    def ready(self) -> bool:
        """Whether the upserts were read to their end (and `deletes` can be read)."""
        return self._deletes is not None

    def __repr__(self) -> str:
        deletes = f"{self._deletes.num_rows} rows" if self._deletes is not None else "(after the upserts)"
        return f"GatheredChanges(upserts={self.upserts.schema.names}, deletes={deletes})"


class ChangeFeed(Protocol):
    kind: str  # journal watermark_type: "ct_version" (Change Tracking) or "pg_lsn" (logical decoding)

    def open(self, start: str | None) -> FeedWindow: ...

    def changes(self, window: FeedWindow) -> FeedChanges: ...

    def acknowledge(self, window: FeedWindow) -> None: ...

    def describe(self) -> str: ...
