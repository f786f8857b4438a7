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


class ChangeFeed(Protocol):
    kind: str  # journal watermark_type: "ct_version" (Change Tracking) or "pg_lsn" (logical decoding)

    def open(self, start: str | None) -> FeedWindow: ...

    def changes(self, window: FeedWindow) -> FeedChanges: ...

    def acknowledge(self, window: FeedWindow) -> None: ...

    def describe(self) -> str: ...
