"""What Fabric says about each Open Mirroring entity, beside what the journal says hygge published:
the table's status, last sync and processed operations, the files still in its folder, and whether
the two agree (`hygge status`).

Agreement compares operations: hygge publishes one per row upserted or deleted, and the service counts
the operations it applied (`processedRows`), both since the table was last rebuilt. Fewer applied than
published means Fabric is behind; more means something else writes the table, or it was rebuilt
without hygge.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from hygge.config.loader import Project
from hygge.config.models import OpenMirroringStoreConfig, ResolvedEntity
from hygge.fabric.status import DEFAULT_SCHEMA
from hygge.journal import at_store
from hygge.runner import journal_for
from hygge.stores import make_store


@dataclass(frozen=True)
class TableReport:
    key: str  # flow.entity
    table: str  # schema.table as Fabric names it
    status: str  # Fabric's, or "not mirrored" / "no status readable"
    last_sync: dt.datetime | None
    processed: int | None  # operations Fabric applied
    published: int  # operations hygge published since the last rebuild (journal)
    files: int  # data files still in the table folder (the service keeps the last one it processed)
    agreement: str
    error: str | None = None


def report(project: Project, entity: ResolvedEntity) -> TableReport | None:
    """The entity's report, or None when its store is not Open Mirroring."""
    if not isinstance(entity.store, OpenMirroringStoreConfig):
        return None
    store = make_store(entity, project.root)
    journal = journal_for(entity, project)
    runs = at_store(journal.successes(entity.flow, entity.name), store.describe())
    since = max((i for i, run in enumerate(runs) if run.run_type == "full_drop"), default=0)
    published = sum((run.row_count or 0) + (run.deleted_count or 0) for run in runs[since:])
    files = len(store.data_files())  # type: ignore[attr-defined]
    name = f"{entity.store.db_schema or DEFAULT_SCHEMA}.{entity.name}"
    watch = store.watch  # type: ignore[attr-defined]
    found, table = watch.read() if watch is not None else (None, None)
    if found is None:
        return TableReport(
            f"{entity.flow}.{entity.name}", name, "no status readable", None, None, published, files, "unknown",
            None if watch is not None else "the landing zone is not a mirrored database's Files/LandingZone",
        )  # fmt: skip
    if table is None:
        return TableReport(
            f"{entity.flow}.{entity.name}", name, "not mirrored", None, None, published, files, "unknown"
        )
    processed = table.processed_rows or 0
    if processed == published:
        agreement = "agree"
    elif processed < published:
        agreement = f"Fabric behind by {published - processed:,}"
    else:
        agreement = f"Fabric has {processed - published:,} more than hygge published"
    error = f"{table.error_code}: {table.error_message}" if table.failed else None
    return TableReport(
        f"{entity.flow}.{entity.name}",
        name,
        table.status,
        table.last_sync,
        table.processed_rows,
        published,
        files,
        agreement,
        error,
    )
