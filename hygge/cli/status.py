"""`hygge status`: a table of what Fabric says about each Open Mirroring entity."""

from __future__ import annotations

from rich.console import Console

from hygge.cli.tables import ago, compact
from hygge.config.loader import Project
from hygge.config.models import ResolvedEntity
from hygge.errors import HyggeError
from hygge.mirror_status import report


def show(console: Console, project: Project, chosen: list[ResolvedEntity]) -> int:
    """Print the table; 0 when every table is healthy and agrees with the journal, else 1."""
    columns = ("entity", "status", "last sync", "applied", "files", "journal")
    table = compact("hygge status (Fabric Open Mirroring)", columns, right=("applied", "files"))
    problems: list[str] = []
    shown, healthy = 0, True
    for entity in chosen:
        key = f"{entity.flow}.{entity.name}"
        try:
            found = report(project, entity)
        except HyggeError as exc:
            problems.append(f"[red]ERROR[/red] {key}: {exc}")
            continue
        if found is None:
            continue
        shown += 1
        healthy = healthy and found.agreement == "agree" and found.status != "Failed"
        colour = "red" if found.status == "Failed" else "green" if found.agreement == "agree" else "yellow"
        applied = f"{found.processed:,}" if found.processed is not None else "-"
        differs = found.agreement not in ("agree", "unknown")
        table.add_row(
            found.key, f"[{colour}]{found.status}", ago(found.last_sync), applied, str(found.files),
            "differ" if differs else found.agreement,
        )  # fmt: skip
        if differs:
            problems.append(
                f"[yellow]differ[/yellow] {key} ({found.table} in Fabric): {found.agreement} "
                f"(hygge published {found.published:,} operations since the last rebuild, "
                f"Fabric applied {applied})"
            )
        if found.error:
            problems.append(f"[red]{found.status}[/red] {key} ({found.table} in Fabric): {found.error}")
    if not shown and not problems:
        console.print("no Open Mirroring entities selected")
        return 1
    console.print(table)
    for line in problems:
        console.print(line, highlight=False, soft_wrap=True)
    return 0 if healthy and not problems else 1
