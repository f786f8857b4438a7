"""Flow run names that say what a run does: the project, what it lands and how, instead of Prefect's
random two words. A Prefect `flow_run_name` callable, so it reads the run's own parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hygge.settings import settings


def project_name(project: str | None) -> str:
    """hygge.yml's `name` (read alone: naming a run must not fail on the rest of the file), else the
    project folder's name."""
    folder = Path(project or settings().project)
    try:
        data = yaml.safe_load((folder / "hygge.yml").read_text(encoding="utf-8"))
        name = data.get("name") if isinstance(data, dict) else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        name = None
    return str(name) if name else folder.resolve().name


def run_name(parameters: dict[str, Any]) -> str:
    """e.g. `shop: shop_delta, shop_parquet · full_drop`, `shop: all flows · as configured`,
    `shop: shop_delta.orders · incremental · fan-out`."""
    chosen = [*(parameters.get("flows") or []), *(parameters.get("entities") or [])]
    what = ", ".join(chosen) if chosen else "all flows"
    if len(what) > 60:
        what = f"{len(chosen)} selections"
    parts = [f"{project_name(parameters.get('project'))}: {what}", parameters.get("run_type") or "as configured"]
    if parameters.get("fan_out"):
        parts.append("fan-out")
    return " · ".join(parts)


def land_run_name() -> str:
    """The `land` flow's run name, from the running flow's parameters."""
    from prefect.runtime import flow_run

    return run_name(dict(flow_run.parameters))
