"""`hygge journal show`'s table: the newest entity runs, oldest first within each entity."""

from __future__ import annotations

from rich.console import Console

from hygge.cli.tables import compact
from hygge.config.loader import Project
from hygge.config.models import ResolvedEntity
from hygge.coordinator import journals_of


def show(console: Console, loaded: Project, chosen: list[ResolvedEntity], last: int) -> None:
    """Print the newest `last` runs of each chosen entity (reading raises HyggeError)."""
    wanted = {(e.flow, e.name) for e in chosen}
    rows = [
        entry
        for journal in journals_of(loaded, chosen)
        for entry in journal.entries()
        if (entry.flow, entry.entity) in wanted
    ]
    by_entity: dict[tuple[str, str], list] = {}
    for entry in sorted(rows, key=lambda e: e.finish_time):
        by_entity.setdefault((entry.flow, entry.entity), []).append(entry)
    columns = ("finished (UTC)", "run type", "status", "rows", "watermark")
    for (flow_name, entity_name), entries in sorted(by_entity.items()):
        table = compact(f"[bold]{flow_name}.{entity_name}", columns, right=("rows",))
        notes = []
        for entry in entries[-last:]:
            colour = {"success": "green", "fail": "red"}.get(entry.status, "yellow")
            finished = entry.finish_time.strftime("%Y-%m-%d %H:%M:%S")
            table.add_row(
                finished,
                entry.run_type,
                f"[{colour}]{entry.status}",
                f"{entry.row_count or 0:,}",
                entry.watermark or "-",
            )
            if entry.message:
                notes.append(f"  {finished}  {entry.message}")
        console.print(table)
        for note in notes:
            console.print(note, highlight=False, markup=False, soft_wrap=True)
        console.print()
    if not by_entity:
        console.print("no runs journaled yet for the chosen entities")
