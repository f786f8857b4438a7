"""`fan_out`: every entity of a land run as its own run of the same deployment (on ACI, its own
container); the parent waits for all and reads each outcome back from the journal."""

from __future__ import annotations

from typing import Any

from prefect.artifacts import update_progress_artifact
from prefect.runtime import flow_run

from hygge.config import Project, ResolvedEntity
from hygge.errors import HyggeError


def land_fanned_out(
    loaded: Project,
    project: str,
    chosen: list[ResolvedEntity],
    run_type: str | None,
    variables: dict[str, Any] | None,
    concurrency: int | None,
    progress: Any,
    extra: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run every entity as its own run of this deployment; wait for all; read their outcome back
    from the journal (child runs may run in other containers)."""
    from concurrent.futures import ThreadPoolExecutor

    from prefect.deployments import run_deployment
    from prefect.runtime import deployment

    if not deployment.name:
        raise HyggeError(
            "fan_out needs the flow to run from a deployment", hint="run it with `prefect deployment run`"
        )
    name = f"{flow_run.flow_name}/{deployment.name}"
    workers = concurrency or loaded.config.options.concurrency
    done: list[dict[str, Any]] = []

    def child(entity: ResolvedEntity) -> dict[str, Any]:
        key = f"{entity.flow}.{entity.name}"
        run = run_deployment(
            name,
            parameters={
                "project": project,
                "flows": [],  # only this entity, whatever flows the deployment names
                "entities": [key],
                "run_type": run_type,
                "variables": variables,
                "fan_out": False,
                "publish": False,
                **(extra or {}),
            },
            flow_run_name=f"{key}",
            as_subflow=False,
            timeout=None,
        )
        outcome = outcome_from_journal(loaded, entity, str(run.id))
        if run.state is None or not run.state.is_completed():
            outcome.update(
                status="fail", message=outcome.get("message") or f"child run {run.name}: {run.state}"
            )
        done.append(outcome)
        update_progress_artifact(progress, 100.0 * len(done) / max(len(chosen), 1))
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, min(len(chosen), workers * 4))) as pool:
        return list(pool.map(child, chosen))


def outcome_from_journal(loaded: Project, entity: ResolvedEntity, child_run_id: str) -> dict[str, Any]:
    from hygge.runner import journal_for

    entries = [
        e
        for e in journal_for(entity, loaded).entries(entity.flow, entity.name)
        if e.coordinator_run_id == child_run_id and e.run_type != "verify"
    ]
    outcome: dict[str, Any] = {
        "flow": entity.flow,
        "entity": entity.name,
        "status": "fail",
        "rows": 0,
        "duration": 0.0,
        "watermark_before": None,
        "watermark_after": None,
        "message": "",
    }
    if entries:
        last = entries[-1]
        outcome.update(
            status=last.status,
            rows=last.row_count or 0,
            duration=round(last.duration or 0.0, 3),
            watermark_before=last.previous_watermark,
            watermark_after=last.watermark,
            message=last.message or "",
        )
    else:
        outcome["message"] = "the child run recorded nothing in the journal"
    return outcome
