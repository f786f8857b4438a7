"""`hygge journal repair`: a journal with a damaged file (truncated, zero bytes, not parquet) made
readable again.

Every file of the journal is read; the ones that cannot be are moved to `quarantine/` in the journal
folder (kept, never deleted: what they held may still be recovered by hand), and the snapshot is
rewritten from everything readable, as a compaction would. What a lost snapshot held is not lost
for the landing: each store keeps its own commits, and the next run of an entity whose last commit
the journal no longer names records that commit first, with the largest landed watermark (the same
recovery as after a crash between commit and journal), so it neither skips nor doubles a row. The
run history shown by `hygge journal show` is then shorter. The compaction lease is held throughout.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pyarrow as pa

from hygge.errors import JournalError
from hygge.journal import SCHEMA, SNAPSHOT, Journal, unique_runs

QUARANTINE = "quarantine"


@dataclass
class Repair:
    """What a repair found (and, unless a dry run, did)."""

    journal: str
    damaged: list[str] = field(default_factory=list)  # files set aside (or to set aside)
    reasons: list[str] = field(default_factory=list)
    runs_folded: int = 0
    rows: int = 0  # rows of the rebuilt snapshot
    snapshot_lost: bool = False
    dry_run: bool = False

    def describe(self) -> str:
        verb = "would set aside" if self.dry_run else "set aside"
        if not self.damaged:
            return f"{self.journal}: every file reads; nothing to repair ({self.rows:,} row(s))"
        lines = [f"{self.journal}: {verb} {len(self.damaged)} damaged file(s) in {QUARANTINE}/"]
        lines += [f"  {path}: {why}" for path, why in zip(self.damaged, self.reasons, strict=True)]
        lines.append(
            f"  the snapshot {'would be' if self.dry_run else 'was'} rebuilt from {self.runs_folded} run "
            f"object(s) and what else reads: {self.rows:,} row(s)"
        )
        if self.snapshot_lost:
            lines.append(
                "  the snapshot itself was damaged: each entity's next run records its store's last "
                "commit first (watermark = the largest landed), then continues; older history is gone"
            )
        return "\n".join(lines)


def repair(journal: Journal, *, dry_run: bool = False) -> Repair:
    """Set damaged files aside and rebuild the snapshot from the rest (see the module docstring)."""
    done = Repair(journal.describe(), dry_run=dry_run)
    lease = journal.compaction_lease("repair")
    holder = None if dry_run else lease.take()
    if holder is not None:
        raise JournalError(
            f"{journal.describe()} is being compacted or repaired by {holder}",
            hint="wait for it to finish, then run the repair again",
            transient=True,
        )
    try:
        runs = journal.run_paths()
        tables: list[pa.Table] = []
        for path in [SNAPSHOT, *runs]:
            try:
                table = journal.load(path)
            except JournalError as exc:
                done.damaged.append(path)
                done.reasons.append(exc.message.split(" is damaged ", 1)[-1])
                done.snapshot_lost |= path == SNAPSHOT
                continue
            if table is not None:
                tables.append(table)
                done.runs_folded += path != SNAPSHOT
        rebuilt = unique_runs(pa.concat_tables(tables)) if tables else SCHEMA.empty_table()
        done.rows = rebuilt.num_rows
        if dry_run:
            return done
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        for path in done.damaged:  # kept as they were, out of every reader's way
            data = journal.location.get(path)
            journal.location.put(f"{QUARANTINE}/{stamp}-{path.replace('/', '_')}", data)
            journal.location.delete(path)
        journal.fold(rebuilt, [path for path in runs if path not in done.damaged])
        return done
    finally:
        if not dry_run:
            lease.release()
