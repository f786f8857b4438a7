"""Drift and ownership checks before every run: the store must still hold what the journal says it does.

A store location has one owner (project/flow/entity), recorded with each of its commits; another
writer is refused. An incremental run continues from the journal's last success only while the
store's latest commit is that success's commit: a store that is missing, emptied, rolled back or
rewritten by someone else fails the run (or, with `on_drift: full_drop`, is reloaded in full).
A moved `store.path` holds none of the journal's commits: it starts afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hygge.errors import StoreError

if TYPE_CHECKING:
    from hygge.config.models import ResolvedEntity
    from hygge.journal import Entry
    from hygge.stores.base import Commit

NOTHING_NEW = "nothing new"


def owner_of(project_name: str, entity: ResolvedEntity) -> str:
    return f"{project_name}/{entity.flow}/{entity.name}"


def check_owner(commit: Commit | None, owner: str, store: Any) -> None:
    """Refuse to write a store location whose commits another project, flow or entity made."""
    if commit is None or not commit.owner or commit.owner == owner:
        return
    raise StoreError(
        f"{store.describe()} belongs to {commit.owner} (its last commit, run {commit.entity_run_id}); "
        f"{owner} would overwrite it",
        hint="give each entity its own store location (a different store `path` or entity name); "
        "if the old owner is gone for good, delete the location and land it again",
        field="store.path",
    )


def _committed(entry: Entry) -> bool:
    return bool(entry.store_commit) and entry.store_commit != NOTHING_NEW


@dataclass
class Start:
    """Where an incremental run starts: the journal row it continues from (None: from scratch), and
    the run type (a drifted store under `on_drift: full_drop` is reloaded)."""

    previous: Entry | None
    run_type: str
    note: str = ""


def starting_point(
    entity: ResolvedEntity, runs: list[Entry], store: Any, commit: Commit | None, run_type: str
) -> Start:
    """The journal row the run continues from, after checking the store still holds its commit;
    `runs` are the entity's successful landing runs, oldest first (`Journal.successes`)."""
    if run_type != "incremental":
        return Start(None, run_type)
    here = store.describe()
    committed = [e for e in runs if _committed(e)]
    if commit is None:
        lost = [e for e in committed if e.store == here]
        if not lost:
            return Start(None, run_type)  # nothing landed here yet (or store.path moved): from scratch
        last = lost[-1]
        return _drifted(
            entity,
            store,
            f"holds no hygge commit, but the journal's last success (run {last.entity_run_id}, "
            f"{last.store_commit}) landed there: it was deleted, emptied or replaced",
        )
    if commit.foreign:
        return _drifted(entity, store, f"changed since hygge's last commit ({commit.detail}): {commit.foreign}")
    matched = next((e for e in reversed(committed) if e.entity_run_id == commit.entity_run_id), None)
    if matched is None:
        return _drifted(
            entity,
            store,
            f"holds commit {commit.detail} of run {commit.entity_run_id}, which this journal never recorded",
        )
    later = [
        e
        for e in committed
        if e.store == here
        and (e.finish_time, e.start_time)
        > (
            matched.finish_time,
            matched.start_time,
        )
    ]
    if later:
        return _drifted(
            entity,
            store,
            f"holds commit {commit.detail} of run {commit.entity_run_id}, but the journal's last success "
            f"there is run {later[-1].entity_run_id} ({later[-1].store_commit}): it was rolled back or "
            "rewritten",
        )
    after = [e for e in runs if (e.finish_time, e.start_time) >= (matched.finish_time, matched.start_time)]
    return Start(after[-1] if after else matched, run_type)


def _drifted(entity: ResolvedEntity, store: Any, what: str) -> Start:
    message = f"{store.describe()} {what}"
    if entity.on_drift == "full_drop":
        return Start(None, "full_drop", note=f"reloaded in full (on_drift: full_drop): {message}")
    raise StoreError(
        message + "; an incremental run would land only the newest rows",
        hint="run this entity once with --full-drop to reload it, or set `on_drift: full_drop` to reload "
        "automatically",
        field="on_drift",
    )
