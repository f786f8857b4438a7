"""The `land` flow: a subflow per hygge flow with one task per entity (up to `concurrency` at once),
then `publish_journal` only if every entity succeeded, and a table artifact of the run.

Tasks retry only transient failures (network, throttling); a configuration error fails at once, and
the error the user sees is hygge's own message, never a retry wrapper.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run
from prefect.states import Completed, State
from prefect.task_runners import ThreadPoolTaskRunner

from hygge.config import Project, ResolvedEntity, load_project
from hygge.coordinator import publish_journal as compact_journals
from hygge.errors import HyggeError
from hygge.journal import new_id
from hygge.maintenance import maintain_after_run
from hygge.prefect.fan_out import land_fanned_out
from hygge.prefect.names import land_run_name
from hygge.prefect.results import artifact_row, public_result
from hygge.runner import RunIds, land_entity
from hygge.settings import settings
from hygge.slots import holding


def _load(project: str, variables: dict[str, Any] | None, run: str | None = None) -> Project:
    """The project, loaded once per coordinator `run` in this process (each entity task would
    otherwise parse every flow again: 15 ms a task for a 200-entity project, measured)."""
    if run is None:
        return load_project(project, variables=variables or {})
    with _LOADING:  # tasks start together: one loads, the others wait for its result
        return _load_for_run(project, json.dumps(variables or {}, sort_keys=True, default=str), run)


_LOADING = threading.Lock()


@functools.lru_cache(maxsize=4)
def _load_for_run(project: str, variables: str, run: str) -> Project:
    return load_project(project, variables=json.loads(variables))


def _transient_only(task: Any, task_run: Any, state: State) -> bool:
    """Retry when the failure says it is transient; configuration and data errors fail at once."""
    error = state.data if isinstance(state.data, BaseException) else None
    if error is None:
        try:
            error = state.result(raise_on_failure=False)  # type: ignore[assignment]
        except Exception:
            return False
    return bool(getattr(error, "transient", False))


@task(
    name="land-entity",
    task_run_name="{flow_name}.{entity_name}",
    retries=settings().task_retries,
    retry_delay_seconds=settings().task_retry_delay_seconds,
    retry_jitter_factor=settings().task_retry_jitter,
    retry_condition_fn=_transient_only,
)
def land_entity_task(
    project: str,
    flow_name: str,
    entity_name: str,
    coordinator_run_id: str,
    run_type: str | None = None,
    variables: dict[str, Any] | None = None,
    concurrency: int = 4,
    reconcile: bool = False,
    allow_mass_delete: bool = False,
) -> dict[str, Any]:
    with holding(_slots(f"{coordinator_run_id}/{flow_name}", concurrency)):
        return _land_one(
            project,
            flow_name,
            entity_name,
            coordinator_run_id,
            run_type,
            variables,
            reconcile,
            allow_mass_delete,
        )


def _source_limit(entity: ResolvedEntity, run: str) -> list[str]:
    """The global concurrency limit that guards the entity's source (created with `prefect gcl
    create hygge-source-<connection> --limit N`; without one, nothing is limited)."""
    connection = getattr(entity.home, "connection", None)
    name = f"hygge-source-{connection}"
    return [name] if connection and _limit_exists(name, run) else []


@functools.lru_cache(maxsize=64)
def _limit_exists(name: str, run: str) -> bool:
    """Looked up once per run: acquiring a missing limit costs an API call and logs a warning for
    every entity (9 ms each, measured)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return False
    return True


_SLOT_LOCK = threading.Lock()
_SLOTS: dict[str, threading.Semaphore] = {}


def _slots(key: str, size: int) -> threading.Semaphore:
    """The slots of one hygge flow run: tasks run in threads of this process and share them."""
    with _SLOT_LOCK:
        return _SLOTS.setdefault(key, threading.Semaphore(size))


def _land_one(
    project: str,
    flow_name: str,
    entity_name: str,
    coordinator_run_id: str,
    run_type: str | None,
    variables: dict[str, Any] | None,
    reconcile: bool = False,
    allow_mass_delete: bool = False,
) -> dict[str, Any]:
    logger = get_run_logger()
    loaded = _load(project, variables, coordinator_run_id)
    entity = loaded.select(entities=[f"{flow_name}.{entity_name}"])[0]
    ids = RunIds(loaded.config.name, coordinator_run_id, str(flow_run.id or new_id()))
    logger.info("landing %s.%s (%s)", flow_name, entity_name, run_type or entity.run_type)
    limits = _source_limit(entity, coordinator_run_id)
    with concurrency(limits, occupy=1, strict=False) if limits else contextlib.nullcontext():
        result = land_entity(
            loaded, entity, ids, run_type=run_type, reconcile=reconcile, allow_mass_delete=allow_mass_delete
        )
    logger.info(
        "%s.%s: %s rows, watermark %s → %s",
        flow_name,
        entity_name,
        f"{result.rows:,}",
        result.watermark_before,
        result.watermark_after,
    )
    note, error = maintain_after_run(loaded, entity)  # what landed stays landed whatever it says
    if note:
        logger.info("maintenance: %s", note)
    if error:
        logger.warning("maintenance failed: %s", error)
    return {**public_result(result), "maintenance_error": error}


@task(
    name="publish-journal",
    retries=settings().task_retries,
    retry_delay_seconds=settings().task_retry_delay_seconds,
    retry_jitter_factor=settings().task_retry_jitter,
    retry_condition_fn=_transient_only,  # storage briefly away, a lease another compaction holds
)
def publish_journal(project: str, keys: list[str], variables: dict[str, Any] | None = None) -> int:
    """Compact the journals of the landed entities and publish mirrored ones to Fabric, once."""
    loaded = _load(project, variables)
    published = compact_journals(loaded, loaded.select(entities=keys))
    if published is None:  # no journal is mirrored: Fabric has nothing to do with this run
        get_run_logger().info("journal compacted")
        return 0
    get_run_logger().info("journal compacted; %d row(s) published to Fabric", published)
    return published


@flow(name="land-flow", flow_run_name="{flow_name}", log_prints=False)
def land_flow(
    project: str,
    flow_name: str,
    entity_names: list[str],
    coordinator_run_id: str,
    run_type: str | None = None,
    variables: dict[str, Any] | None = None,
    concurrency: int = 4,
    reconcile: bool = False,
    allow_mass_delete: bool = False,
) -> list[dict[str, Any]]:
    """One hygge flow: a task per entity, `concurrency` of them landing at once (an entity that only
    waits hands its slot to another; see hygge.slots)."""
    futures = [
        land_entity_task.submit(
            project,
            flow_name,
            name,
            coordinator_run_id,
            run_type,
            variables,
            concurrency,
            reconcile,
            allow_mass_delete,
        )
        for name in entity_names
    ]
    results = []
    for name, future in zip(entity_names, futures, strict=True):
        value = future.result(raise_on_failure=False)
        if isinstance(value, BaseException):
            results.append(
                {
                    "flow": flow_name,
                    "entity": name,
                    "status": "fail",
                    "rows": 0,
                    "duration": 0.0,
                    "watermark_before": None,
                    "watermark_after": None,
                    "message": str(value),
                }
            )
        else:
            results.append(value)
    with _SLOT_LOCK:
        _SLOTS.pop(f"{coordinator_run_id}/{flow_name}", None)
    return results


@flow(name="land", flow_run_name=land_run_name)
def land(
    project: str | None = None,
    flows: list[str] | None = None,
    entities: list[str] | None = None,
    run_type: str | None = None,
    concurrency: int | None = None,
    variables: dict[str, Any] | None = None,
    fan_out: bool = False,
    publish: bool = True,
    reconcile: bool = False,
    allow_mass_delete: bool = False,
) -> list[dict[str, Any]]:
    """Land the selected flows and entities of a hygge project (all of them by default).

    `reconcile` compares key sets now for entities with `deletes:`; `allow_mass_delete` lets this run
    delete more than their `deletes.max_share` (both as `hygge go --reconcile --allow-mass-delete`).

    `project` defaults to HYGGE_PROJECT (else the working folder). With `fan_out`, each entity runs
    as its own run of this deployment (so a large flow spreads over many containers) and this run
    waits for them, then publishes the journal once; `publish` is off for those child runs."""
    logger = get_run_logger()
    project = project or settings().project
    loaded = _load(project, variables)
    chosen = loaded.select(flows or [], entities or [])
    coordinator_run_id = str(flow_run.id or new_id())
    progress = create_progress_artifact(0.0, key="hygge-progress", description="entities landed, in %")
    if fan_out:
        extra = {"reconcile": reconcile, "allow_mass_delete": allow_mass_delete}
        results = land_fanned_out(loaded, project, chosen, run_type, variables, concurrency, progress, extra)
    else:
        by_flow: dict[str, list[str]] = {}
        for entity in chosen:
            by_flow.setdefault(entity.flow, []).append(entity.name)
        results = []
        for flow_name, names in by_flow.items():
            workers = concurrency or loaded.flows[flow_name].concurrency or loaded.config.options.concurrency
            threads = min(len(names), workers * 2)
            subflow = land_flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=threads))
            results.extend(
                subflow(
                    project,
                    flow_name,
                    names,
                    coordinator_run_id,
                    run_type,
                    variables,
                    workers,
                    reconcile,
                    allow_mass_delete,
                )
            )
            update_progress_artifact(progress, 100.0 * len(results) / max(len(chosen), 1))
    failed = [r for r in results if r["status"] != "success"]
    publish_error: HyggeError | None = None
    if not failed and publish:
        state = publish_journal(project, [f"{e.flow}.{e.name}" for e in chosen], variables, return_state=True)
        if state.is_failed():
            publish_error = _error_of(state)
            logger.error("journal not published (landed entities are unaffected): %s", publish_error)
    else:
        logger.warning(
            "journal not published: %d entit%s failed", len(failed), "y" if len(failed) == 1 else "ies"
        )
    description = (
        f"hygge run of {loaded.config.name}: {len(results) - len(failed)} succeeded, {len(failed)} failed"
    )
    maintenance = [r["maintenance_error"] for r in results if r.get("maintenance_error")]
    pending = [str(publish_error)] if publish_error is not None else []
    pending += [f"maintenance failed: {m}" for m in maintenance]
    if publish_error is not None:
        description += "; the journal publish failed and stays pending"
    if maintenance:
        description += f"; maintenance failed for {len(maintenance)} entit{'y' if len(maintenance) == 1 else 'ies'}"
    create_table_artifact(key="hygge-land", table=[artifact_row(r) for r in results], description=description)
    if failed:
        raise HyggeError(
            f"{len(failed)} of {len(results)} entities failed: "
            + "; ".join(f"{r['flow']}.{r['entity']}: {r['message']}" for r in failed)
        )
    if pending:
        # Every entity landed and was journaled: the run completed, its housekeeping did not. A state
        # of its own (as `hygge go` exits 3) that automations can match by name.
        return Completed(
            name=PENDING_STATE,
            message=f"every entity landed; housekeeping is pending: {'; '.join(pending)}",
            data=results,
        )
    return results


PENDING_STATE = "Housekeeping pending"  # the land flow's final state when only housekeeping failed


def _error_of(state: State) -> HyggeError:
    """The exception a failed task state carries, as hygge's own error."""
    try:
        value = state.result(raise_on_failure=False)
    except Exception as exc:  # the result itself could not be read
        value = exc
    if isinstance(value, HyggeError):
        return value
    return HyggeError(str(value))
