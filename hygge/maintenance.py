"""Delta table maintenance: small files compacted and old ones vacuumed, each its own commit.

deltalake does the work (`optimize.compact`, `vacuum`). hygge holds the entity's lease and checks the
table's owner first, exactly as a landing run does, so maintenance never interleaves with a run of
the entity; the drift checks take OPTIMIZE and VACUUM commits for maintenance, so the journal's last
commit stays the one an incremental run continues from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from hygge.drift import check_owner, owner_of
from hygge.errors import ConfigError, HyggeError, StoreError
from hygge.journal import new_id
from hygge.lease import EntityLease
from hygge.runner import journal_for
from hygge.stores import make_store, store_format
from hygge.stores.delta_stats import PROPERTY, property_for
from hygge.stores.files import layout_of

if TYPE_CHECKING:
    from hygge.config.loader import Project
    from hygge.config.models import ResolvedEntity

# The commits maintenance itself makes: the runs counted towards the next one are the commits after them.
_OWN_OPERATIONS = ("OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES")


@dataclass
class Maintenance:
    """What one entity's maintenance did."""

    flow: str
    entity: str
    files_before: int = 0
    files_after: int = 0
    compacted: int = 0  # files compaction replaced
    vacuumed: int = 0  # files vacuum deleted
    bounds: bool = False  # the table now names its bounded columns (hygge.stores.delta_stats)

    @property
    def key(self) -> str:
        return f"{self.flow}.{self.entity}"

    def describe(self) -> str:
        return (
            f"{self.key}: {self.files_before} -> {self.files_after} file(s); compacted {self.compacted}, "
            f"vacuumed {self.vacuumed}"
        )


def maintain_entity(
    project: Project, entity: ResolvedEntity, *, compact: bool = True, vacuum_hours: int | None = None
) -> Maintenance:
    """Compact the entity's Delta table (files towards the store's `file_mb`) and, with `vacuum_hours`,
    delete the files no version younger than that needs. Raises HyggeError naming the entity."""
    where = {"file": entity.file, "flow": entity.flow, "entity": entity.name}
    if store_format(entity) != "delta":
        raise ConfigError(
            f"the store is {store_format(entity)}: maintenance compacts and vacuums Delta tables",
            hint="choose Delta entities with --flow/--entity",
            field="store.type",
            **where,
        )
    done = Maintenance(entity.flow, entity.name)
    lease = EntityLease(journal_for(entity, project).location, entity.flow, entity.name)
    try:
        lease.take(new_id(), "maintain")
        store: Any = make_store(entity, project.root)
        check_owner(store.recover(), owner_of(project.config.name, entity), store)
        store.remove_orphans()
        table = store._table()
        if table is None:
            return done
        done.files_before = len(table.file_uris())
        if compact:
            if PROPERTY not in table.metadata().configuration:
                # A table from before hygge wrote bounds: named first, so the compacted files get them.
                table.alter.set_table_properties(property_for(pa.schema(table.schema().to_arrow())))
                done.bounds = True
            metrics = table.optimize.compact(target_size=layout_of(entity.store).file_bytes)
            done.compacted = int(metrics.get("numFilesRemoved", 0))
        if vacuum_hours is not None:  # whole hours, as deltalake takes them
            done.vacuumed = len(
                table.vacuum(retention_hours=vacuum_hours, dry_run=False, enforce_retention_duration=False)
            )
        table.update_incremental()
        done.files_after = len(table.file_uris())
    except HyggeError as exc:
        raise exc.with_context(**where) from None
    except Exception as exc:  # deltalake's own errors
        raise StoreError(
            f"maintaining {entity.flow}.{entity.name} failed: {type(exc).__name__}: {exc}",
            hint="run it again; the table is unchanged unless a commit was made",
            **where,
        ) from None
    finally:
        lease.release()
    return done


def maintain_if_due(project: Project, entity: ResolvedEntity) -> Maintenance | None:
    """The store's opt-in `maintenance:` after a successful run: maintain_entity once the table has
    `every` commits since its last compaction (its own log says, no journal needed); None when not due
    or not asked for. A failure raises HyggeError: what landed stays landed and journaled."""
    settings = getattr(entity.store, "maintenance", None)
    if settings is None or store_format(entity) != "delta":
        return None
    table = make_store(entity, project.root)._table()  # type: ignore[attr-defined]
    if table is None:
        return None
    runs = 0
    for commit in table.history(settings.every + len(_OWN_OPERATIONS)):  # newest first
        if commit.get("operation") in _OWN_OPERATIONS:
            break
        runs += 1
    if runs < settings.every:
        return None
    return maintain_entity(project, entity, compact=settings.compact, vacuum_hours=settings.vacuum_hours)


def maintain_after_run(project: Project, entity: ResolvedEntity) -> tuple[str | None, str | None]:
    """What the store's opt-in maintenance did after a successful run, or why it failed: (note,
    error), each None when there is nothing to say. Never raises: the run landed whatever happens."""
    try:
        done = maintain_if_due(project, entity)
    except HyggeError as exc:
        return None, f"{entity.flow}.{entity.name}: {exc}"
    return (done.describe() if done is not None else None), None
