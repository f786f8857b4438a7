"""`hygge verify`'s table: each entity's source and landed rows, MATCH or DIFFER, and the errors."""

from __future__ import annotations

from rich.console import Console

from hygge.cli.tables import compact
from hygge.config.loader import Project
from hygge.config.models import ResolvedEntity
from hygge.errors import HyggeError
from hygge.journal import new_id
from hygge.runner import RunIds
from hygge.verify import verify_entity


def show(console: Console, loaded: Project, chosen: list[ResolvedEntity]) -> int:
    """Verify each entity (journaling the result) and print the table; 0 when every one matches."""
    coordinator_run_id = new_id()
    flow_runs = {name: new_id() for name in {e.flow for e in chosen}}
    results = []
    errors: list[tuple[str, HyggeError]] = []
    for e in chosen:
        ids = RunIds(loaded.config.name, coordinator_run_id, flow_runs[e.flow])
        try:
            results.append(verify_entity(loaded, e, ids))
        except HyggeError as exc:
            errors.append((f"{e.flow}.{e.name}", exc))
    fabric = any(r.fabric_rows is not None for r in results)  # the column only where Fabric's table was read
    columns = ["entity", "source rows", "landed rows", *(["Fabric rows"] if fabric else []), "status"]
    table = compact("hygge verify", columns, right=columns[1:-1])
    for r in results:
        far = [f"{r.fabric_rows:,}" if r.fabric_rows is not None else "-"] if fabric else []
        status = "[green]MATCH" if r.ok else "[red]DIFFER"
        table.add_row(r.key, f"{r.source_rows:,}", f"{r.landed_rows:,}", *far, status)
    for key, _ in errors:
        table.add_row(key, "-", "-", *(["-"] if fabric else []), "[red]ERROR")
    console.print(table)
    for r in results:
        differing = [*r.differing, *(f"{c} in Fabric's table" for c in r.fabric_differing)]
        if differing:
            console.print(f"[red]DIFFER[/red] {r.key}: {', '.join(differing)}", highlight=False, soft_wrap=True)
    for key, exc in errors:
        console.print(f"[red]ERROR[/red] {key}: {exc}", highlight=False, soft_wrap=True)
    matched = sum(r.ok for r in results)
    ok = matched == len(chosen)
    console.print(
        f"{len(chosen)} entities: [green]{matched} MATCH[/green], [red]{len(chosen) - matched - len(errors)} "
        f"DIFFER[/red], [red]{len(errors)} ERROR[/red]",
        highlight=False,
    )
    return 0 if ok else 1
