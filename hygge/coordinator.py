"""Run many entities: up to `concurrency` at once, then compact the journals only if all succeeded.

This is the core that both the CLI and (per entity, as tasks) the Prefect flow build on.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TypeVar

from hygge.config.loader import Project
from hygge.config.models import ResolvedEntity
from hygge.errors import ConfigError, HyggeError
from hygge.journal import Journal, new_id
from hygge.journal_mirror import JournalMirror, mirror_for
from hygge.maintenance import maintain_after_run
from hygge.runner import EntityResult, RunIds, journal_for, land_entity
from hygge.settings import settings
from hygge.slots import holding, waiting


@dataclass
class Events:
    """Callbacks for progress displays; all optional."""

    started: Callable[[ResolvedEntity], None] = lambda entity: None
    rows: Callable[[ResolvedEntity, int], None] = lambda entity, n: None
    finished: Callable[[EntityResult], None] = lambda result: None


# `hygge go`'s exit codes (a configuration error exits EXIT_CONFIG before anything runs).
EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_PENDING = 0, 1, 2, 3


@dataclass
class RunSummary:
    coordinator_run_id: str
    results: list[EntityResult] = field(default_factory=list)
    duration: float = 0.0
    published: bool = False
    publish_error: str | None = None
    maintenance: list[str] = field(default_factory=list)  # what the stores' `maintenance:` did
    maintenance_errors: list[str] = field(default_factory=list)  # a store's maintenance that failed

    @property
    def ok(self) -> bool:
        return all(r.status == "success" for r in self.results) and self.publish_error is None

    @property
    def exit_code(self) -> int:
        """EXIT_OK; EXIT_FAILED when an entity failed; EXIT_PENDING when every entity landed and was
        journaled but housekeeping (the journal's compaction or Fabric publish, a store's
        maintenance) failed after its retries and waits for the next run."""
        if any(r.status != "success" for r in self.results):
            return EXIT_FAILED
        if self.publish_error is not None or self.maintenance_errors:
            return EXIT_PENDING
        return EXIT_OK

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.results)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


def check_run_type(incremental: bool, full_drop: bool) -> str | None:
    if incremental and full_drop:
        raise ConfigError(
            "--incremental and --full-drop contradict each other", hint="choose one", field="run type flags"
        )
    return "incremental" if incremental else "full_drop" if full_drop else None


def journals_of(project: Project, entities: Sequence[ResolvedEntity]) -> list[Journal]:
    unique: dict[str, Journal] = {}
    for entity in entities:
        journal = journal_for(entity, project)
        unique.setdefault(journal.location.uri, journal)
    return list(unique.values())


def publish_journal(project: Project, entities: Sequence[ResolvedEntity]) -> int | None:
    """Fold every entity run into the journals' snapshots, then publish mirrored journals to Fabric
    (once each). Returns the journal rows published, None when no journal is mirrored; raises
    PublishError if a publish failed."""
    for journal in journals_of(project, entities):
        journal.compact()
    published = 0
    mirrors: dict[str, JournalMirror] = {}
    for entity in entities:
        mirror = mirror_for(entity, project)
        if mirror is not None:
            mirrors.setdefault(mirror.journal.location.uri, mirror)
    for mirror in mirrors.values():
        published += mirror.publish()
    return published if mirrors else None


def run_entities(
    project: Project,
    entities: Sequence[ResolvedEntity],
    *,
    run_type: str | None = None,
    concurrency: int | None = None,
    continue_on_error: bool | None = None,
    events: Events | None = None,
    reconcile: bool = False,
    allow_mass_delete: bool = False,
) -> RunSummary:
    """Land `entities` (at most `concurrency` at once), then publish the journal if all succeeded.
    `reconcile` and `allow_mass_delete` apply to every entity with a `deletes:` policy."""
    events = events or Events()
    summary = RunSummary(coordinator_run_id=new_id())
    workers = concurrency or project.config.options.concurrency
    keep_going = project.config.options.continue_on_error if continue_on_error is None else continue_on_error
    flow_runs = {name: new_id() for name in {e.flow for e in entities}}
    clock = time.perf_counter()

    slots = threading.Semaphore(workers)

    def one(entity: ResolvedEntity) -> EntityResult:
        with holding(slots):
            events.started(entity)
            ids = RunIds(project.config.name, summary.coordinator_run_id, flow_runs[entity.flow])
            try:
                result = _land_retrying(
                    project,
                    entity,
                    ids,
                    run_type,
                    lambda n: events.rows(entity, n),
                    reconcile=reconcile,
                    allow_mass_delete=allow_mass_delete,
                )
            except HyggeError as exc:
                result = _failed(entity, run_type, exc)
            if result.status == "success":
                _maintain(project, entity, summary)
        events.finished(result)
        return result

    pending = list(entities)
    running: dict[Future[EntityResult], ResolvedEntity] = {}
    stop = False
    # Threads beyond `workers` only ever wait for a slot; they let a slot given up by a waiting
    # entity (see hygge.slots) be used at once.
    threads = min(len(entities), workers * 2) or 1
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hygge") as pool:
        while pending or running:
            while pending and not stop and len(running) < threads:
                entity = pending.pop(0)
                running[pool.submit(one, entity)] = entity
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                running.pop(future)
                result = future.result()
                summary.results.append(result)
                if result.status != "success" and not keep_going:
                    stop = True
        for entity in pending:
            skipped = EntityResult(
                entity.flow,
                entity.name,
                "skip",
                run_type or entity.run_type,
                message="skipped: an earlier entity failed and continue_on_error is off",
            )
            summary.results.append(skipped)
            events.finished(skipped)
    if all(r.status == "success" for r in summary.results):
        try:
            publish_retrying(project, entities)
            summary.published = True
        except HyggeError as exc:
            summary.publish_error = str(exc)
    summary.duration = time.perf_counter() - clock
    return summary


def publish_retrying(project: Project, entities: Sequence[ResolvedEntity]) -> int | None:
    """publish_journal, tried again while the failure is transient (storage briefly away, a lease
    another compaction holds): landed data is never at stake, but a pending journal should not wait
    for the next run when a few seconds would do."""
    return _retrying(lambda: publish_journal(project, entities))


T = TypeVar("T")


def _retrying(call: Callable[[], T]) -> T:
    """`call`, tried again while it fails transiently: the Prefect tasks' policy (HYGGE_TASK_RETRIES,
    HYGGE_TASK_RETRY_DELAY_SECONDS, its jitter). The pause hands a held concurrency slot back."""
    config = settings()
    attempt = 0
    while True:
        try:
            return call()
        except HyggeError as exc:
            if not exc.transient or attempt >= config.task_retries:
                raise
            attempt += 1
            delay = config.task_retry_delay_seconds * (1 + config.task_retry_jitter * random.random())
            with waiting():
                time.sleep(delay)


def _maintain(project: Project, entity: ResolvedEntity, summary: RunSummary) -> None:
    """The store's opt-in maintenance when due; a failure is reported, never the entity's failure."""
    note, error = maintain_after_run(project, entity)
    summary.maintenance += [note] if note else []
    summary.maintenance_errors += [error] if error else []


def _land_retrying(
    project: Project,
    entity: ResolvedEntity,
    ids: RunIds,
    run_type: str | None,
    on_rows: Callable[[int], None],
    *,
    reconcile: bool = False,
    allow_mass_delete: bool = False,
) -> EntityResult:
    """land_entity, tried again when the failure is transient (a dropped connection, a server that is
    briefly away). Each attempt is a fresh entity run."""
    return _retrying(
        lambda: land_entity(
            project,
            entity,
            ids,
            run_type=run_type,
            on_rows=on_rows,
            reconcile=reconcile,
            allow_mass_delete=allow_mass_delete,
        )
    )


def _failed(entity: ResolvedEntity, run_type: str | None, exc: HyggeError) -> EntityResult:
    return EntityResult(
        entity.flow, entity.name, "fail", run_type or entity.run_type, message=str(exc), error=exc
    )
