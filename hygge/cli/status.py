"""`hygge status`: a table of what Fabric says about each Open Mirroring entity."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from hygge.config.loader import Project
from hygge.config.models import ResolvedEntity
from hygge.errors import HyggeError
from hygge.mirror_status import report


def show(console: Console, project: Project, chosen: list[ResolvedEntity]) -> int:
    """Print the table; 0 when every table is healthy and agrees with the journal, else 1."""
    table = Table(title="hygge status (Fabric Open Mirroring)")
    for column in (
        "entity",
        "table",
        "status",
        "last sync (UTC)",
        "applied",
        "published",
        "files",
        "journal vs Fabric",
    ):
        table.add_column(column, justify="right" if column in ("applied", "published", "files") else "left")
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
        synced = found.last_sync.strftime("%Y-%m-%d %H:%M:%S") if found.last_sync else "-"
        applied = f"{found.processed:,}" if found.processed is not None else "-"
        table.add_row(
            found.key, found.table, f"[{colour}]{found.status}", synced, applied, f"{found.published:,}",
            str(found.files), found.agreement,
        )  # fmt: skip
        if found.error:
            problems.append(f"[red]{found.status}[/red] {key}: {found.error}")
    if not shown and not problems:
        console.print("no Open Mirroring entities selected")
        return 1
    console.print(table)
    for line in problems:
        console.print(line, highlight=False, soft_wrap=True)
    return 0 if healthy and not problems else 1
