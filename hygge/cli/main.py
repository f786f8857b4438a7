"""`hygge` commands: init, go, debug, demo, verify, status, journal."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from hygge.config import load_project, parse_var
from hygge.errors import HyggeError

app = typer.Typer(
    help="Land SQL tables and files in Delta, parquet and Fabric landing zones.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)

ProjectOpt = Annotated[
    Path, typer.Option("--project", "-p", envvar="HYGGE_PROJECT", help="Project folder (holds hygge.yml)")
]


def _split(values: list[str] | None) -> list[str]:
    """Repeated options accumulate, and each may hold a comma-separated list."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def _selection(
    project: Path,
    flow: list[str] | None,
    entity: list[str] | None,
    *,
    variables: dict | None = None,
    what: str = "run",
) -> tuple[Any, list]:
    """Load the project and pick the entities named by --flow/--entity (all when none are named);
    a configuration error exits 2, an empty selection 1."""
    try:
        loaded = load_project(project, variables=variables or {})
        chosen = loaded.select(_split(flow), _split(entity))
    except HyggeError as exc:
        _fail(exc)
        raise  # unreachable: _fail exits
    if not chosen:
        err.print(f"nothing to {what}: no entities selected")
        raise typer.Exit(1)
    return loaded, chosen


def _fail(exc: HyggeError) -> None:
    err.print(f"[red]{exc.kind} error:[/red] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def go(
    project: ProjectOpt = Path("."),
    flow: Annotated[list[str] | None, typer.Option("--flow", "-f", help="Flow(s) to run; repeatable")] = None,
    entity: Annotated[
        list[str] | None, typer.Option("--entity", "-e", help="flow.entity; repeatable")
    ] = None,
    incremental: Annotated[bool, typer.Option("--incremental", help="Force incremental runs")] = False,
    full_drop: Annotated[bool, typer.Option("--full-drop", help="Force full_drop runs")] = False,
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c", min=1)] = None,
    var: Annotated[
        list[str] | None, typer.Option("--var", help="flow.<flow>.<key>=value; repeatable")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and list what would run")] = False,
    reconcile: Annotated[
        bool,
        typer.Option("--reconcile", help="Compare key sets now (entities with `deletes:`), whatever `every` says"),
    ] = False,
    allow_mass_delete: Annotated[
        bool,
        typer.Option(
            "--allow-mass-delete", help="Let this run delete more than `deletes.max_share` of the landed keys"
        ),
    ] = False,
) -> None:
    """Run flows: land every selected entity, then compact the journal if all succeeded."""
    from hygge.cli.progress import LiveProgress, print_summary
    from hygge.coordinator import check_run_type, run_entities

    try:
        run_type = check_run_type(incremental, full_drop)
        variables = dict(parse_var(v) for v in var or [])
    except HyggeError as exc:
        _fail(exc)
        return
    loaded, chosen = _selection(project, flow, entity, variables=variables)
    if dry_run:
        for e in chosen:
            console.print(
                f"{e.flow}.{e.name}: {run_type or e.run_type} {e.home.type} → {e.store.type} {e.store.path}"
            )
        return
    with LiveProgress(console) as live:
        summary = run_entities(
            loaded,
            chosen,
            run_type=run_type,
            concurrency=concurrency,
            events=live.events(),
            reconcile=reconcile,
            allow_mass_delete=allow_mass_delete,
        )
    print_summary(console, summary)
    raise typer.Exit(0 if summary.ok else 1)


@app.command()
def debug(project: ProjectOpt = Path(".")) -> None:
    """Check the project: configuration valid, connections reachable, stores writable."""
    from hygge.diagnostics import check_project

    try:
        loaded = load_project(project)
    except HyggeError as exc:
        _fail(exc)
        return
    console.print(
        f"[green]ok[/green] configuration: {len(loaded.flows)} flow(s), "
        f"{sum(len(f.entities) for f in loaded.flows.values())} entities"
    )
    failures = 0
    for check in check_project(loaded):
        colour = "green" if check.ok else "red"
        console.print(
            f"[{colour}]{'ok' if check.ok else 'FAIL'}[/{colour}] {check.name}: {check.detail}",
            highlight=False,
        )
        failures += 0 if check.ok else 1
    raise typer.Exit(1 if failures else 0)


@app.command()
def init(directory: Path) -> None:
    """Create a new project with an example flow."""
    from hygge.scaffold import write_project

    try:
        for path in write_project(directory):
            console.print(f"created {path}")
    except HyggeError as exc:
        _fail(exc)


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where the demo lives")] = Path(".hygge_demo"),
    customers: Annotated[int, typer.Option(help="Customers; orders and lines scale with it")] = 100_000,
) -> None:
    """Build a SQLite shop, land it to Delta and parquet, change it, and land only the changes."""
    from hygge.cli.progress import LiveProgress, print_summary
    from hygge.coordinator import run_entities
    from hygge.demo import DEMO_DIR_VARIABLE, build_demo, change_demo

    project_dir = build_demo(directory, customers=customers, say=console.print)
    loaded = load_project(project_dir)
    ok = True
    for title, run_type in (("first load", "full_drop"), ("incremental after changes", "incremental")):
        if run_type == "incremental":
            console.print(change_demo(project_dir))
        console.rule(title)
        with LiveProgress(console) as live:
            summary = run_entities(loaded, loaded.select(), run_type=run_type, events=live.events())
        print_summary(console, summary)
        ok = ok and summary.ok
    lake = Path(os.environ[DEMO_DIR_VARIABLE]) / "lake"
    console.print(f"\nLanded under {lake} (delta/ and parquet/), each with its journal in .hygge_journal/")
    raise typer.Exit(0 if ok else 1)


@app.command()
def verify(
    project: ProjectOpt = Path("."),
    flow: Annotated[
        list[str] | None, typer.Option("--flow", "-f", help="Flow(s) to check; repeatable")
    ] = None,
    entity: Annotated[
        list[str] | None, typer.Option("--entity", "-e", help="flow.entity; repeatable")
    ] = None,
) -> None:
    """Reconcile landed data with its source (rows and a checksum per column) and journal the result."""
    from rich.table import Table

    from hygge.journal import new_id
    from hygge.runner import RunIds
    from hygge.verify import verify_entity

    loaded, chosen = _selection(project, flow, entity, what="verify")
    coordinator_run_id = new_id()
    flow_runs = {name: new_id() for name in {e.flow for e in chosen}}
    table = Table(title="hygge verify")
    for column in ("entity", "source rows", "landed rows", "status", "differing columns"):
        table.add_column(column, justify="right" if column.endswith("rows") else "left")
    errors: list[tuple[str, HyggeError]] = []
    ok = True
    matched = 0
    for e in chosen:
        ids = RunIds(loaded.config.name, coordinator_run_id, flow_runs[e.flow])
        try:
            result = verify_entity(loaded, e, ids)
        except HyggeError as exc:
            errors.append((f"{e.flow}.{e.name}", exc))
            table.add_row(f"{e.flow}.{e.name}", "-", "-", "[red]ERROR", "")
            ok = False
            continue
        ok = ok and result.ok
        matched += result.ok
        status = "[green]MATCH" if result.ok else "[red]DIFFER"
        far = f" (Fabric's table: {result.fabric_rows:,} rows)" if result.fabric_rows is not None else ""
        differing = [*result.differing, *(f"{c} in Fabric's table" for c in result.fabric_differing)]
        table.add_row(
            result.key, f"{result.source_rows:,}", f"{result.landed_rows:,}{far}", status, ", ".join(differing)
        )
    console.print(table)
    for key, exc in errors:
        console.print(f"[red]ERROR[/red] {key}: {exc}", highlight=False, soft_wrap=True)
    console.print(
        f"{len(chosen)} entities: [green]{matched} MATCH[/green], [red]{len(chosen) - matched - len(errors)} "
        f"DIFFER[/red], [red]{len(errors)} ERROR[/red]",
        highlight=False,
    )
    raise typer.Exit(0 if ok else 1)


@app.command()
def status(
    project: ProjectOpt = Path("."),
    flow: Annotated[list[str] | None, typer.Option("--flow", "-f", help="Flow(s); repeatable")] = None,
    entity: Annotated[list[str] | None, typer.Option("--entity", "-e", help="flow.entity; repeatable")] = None,
) -> None:
    """Each Open Mirroring table's status in Fabric, beside what the journal says hygge published."""
    from hygge.cli.status import show

    loaded, chosen = _selection(project, flow, entity, what="show")
    raise typer.Exit(show(console, loaded, chosen))


journal_app = typer.Typer(help="The journal: show runs, publish it to Fabric.", no_args_is_help=True)
app.add_typer(journal_app, name="journal")


@journal_app.command("show")
def journal_show(
    project: ProjectOpt = Path("."),
    flow: Annotated[list[str] | None, typer.Option("--flow", "-f", help="Flow(s); repeatable")] = None,
    entity: Annotated[
        list[str] | None, typer.Option("--entity", "-e", help="flow.entity; repeatable")
    ] = None,
    last: Annotated[int, typer.Option("--last", "-n", min=1, help="Newest N runs per entity")] = 10,
) -> None:
    """List entity runs: when, status, rows, watermark and message."""
    from rich.table import Table

    from hygge.coordinator import journals_of

    try:
        loaded = load_project(project)
        chosen = loaded.select(_split(flow), _split(entity))
        wanted = {(e.flow, e.name) for e in chosen}
        rows = [
            entry
            for journal in journals_of(loaded, chosen)
            for entry in journal.entries()
            if (entry.flow, entry.entity) in wanted
        ]
    except HyggeError as exc:
        _fail(exc)
        return
    table = Table(title="hygge journal")
    for column in ("entity", "finished (UTC)", "run type", "status", "rows", "watermark", "message"):
        table.add_column(column, justify="right" if column == "rows" else "left", overflow="fold")
    by_entity: dict[tuple[str, str], list] = {}
    for entry in sorted(rows, key=lambda e: e.finish_time):
        by_entity.setdefault((entry.flow, entry.entity), []).append(entry)
    for (flow_name, entity_name), entries in sorted(by_entity.items()):
        for entry in entries[-last:]:
            colour = {"success": "green", "fail": "red"}.get(entry.status, "yellow")
            table.add_row(
                f"{flow_name}.{entity_name}",
                entry.finish_time.strftime("%Y-%m-%d %H:%M:%S"),
                entry.run_type,
                f"[{colour}]{entry.status}",
                f"{entry.row_count or 0:,}",
                entry.watermark or "-",
                (entry.message or "")[:120],
            )
    console.print(table)


@journal_app.command("publish")
def journal_publish(
    project: ProjectOpt = Path("."),
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Rewrite the Fabric tables from the snapshot")
    ] = False,
) -> None:
    """Publish mirrored journals to Fabric now (what is pending; everything with --rebuild)."""
    from hygge.journal_mirror import mirror_for

    try:
        loaded = load_project(project)
        mirrors = {}
        for entity in loaded.select():
            mirror = mirror_for(entity, loaded)
            if mirror is not None:
                mirrors.setdefault(mirror.journal.location.uri, mirror)
        if not mirrors:
            err.print("no journal to publish: set `journal: {mirror: true}` and use an open_mirroring store")
            raise typer.Exit(1)
        for mirror in mirrors.values():
            mirror.journal.compact()
            rows = mirror.publish(rebuild=rebuild)
            console.print(f"published {rows:,} journal row(s) to {mirror.zone.describe()}", highlight=False)
    except HyggeError as exc:
        _fail(exc)


blocks_app = typer.Typer(
    help="Prefect blocks: connections, credentials, landing zones.", no_args_is_help=True
)
app.add_typer(blocks_app, name="blocks")


@blocks_app.command("apply")
def blocks_apply(
    file: Annotated[Path, typer.Argument(help="Blocks file, e.g. blocks/dev.yml")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing")] = False,
) -> None:
    """Create or update the file's block documents in the current Prefect API (idempotent)."""
    from hygge.blocks.apply import apply_blocks

    try:
        changes = apply_blocks(file, dry_run=dry_run)
    except HyggeError as exc:
        _fail(exc)
        return
    for change in changes:
        console.print(change.describe(dry_run), highlight=False, markup=False)
    counts = {
        action: sum(c.action == action for c in changes) for action in ("create", "update", "unchanged")
    }
    console.print(
        f"{len(changes)} block(s): {counts['create']} create, {counts['update']} update, "
        f"{counts['unchanged']} unchanged" + (" (dry run: nothing written)" if dry_run else ""),
        highlight=False,
    )


if __name__ == "__main__":
    app()


feed_app = typer.Typer(help="Change feeds: what they keep in the source.", no_args_is_help=True)
app.add_typer(feed_app, name="feed")


@feed_app.command("drop")
def feed_drop(
    entity: Annotated[list[str], typer.Option("--entity", "-e", help="flow.entity; repeatable")],
    project: ProjectOpt = Path("."),
) -> None:
    """Drop the replication slot and publication of PostgreSQL feeds, before removing the entity or
    its `feed:`: a slot nobody reads makes the server keep its WAL for ever. The entity's next run
    finds no slot and reloads in full (`feed.on_expired`)."""
    from hygge.changes.pg_logical import LogicalFeed
    from hygge.homes import make_home

    loaded, chosen = _selection(project, None, entity, what="drop")
    failures = 0
    for e in chosen:
        if e.feed is None or e.feed.type != "postgres_logical":
            err.print(f"{e.flow}.{e.name}: no `feed: {{type: postgres_logical}}`, nothing to drop")
            failures += 1
            continue
        try:
            feed = LogicalFeed(e, make_home(e, loaded.config.connections, loaded.root))
            feed.drop()
        except HyggeError as exc:
            err.print(f"[red]{exc.kind} error:[/red] {exc}", highlight=False, soft_wrap=True)
            failures += 1
            continue
        console.print(f"{e.flow}.{e.name}: dropped slot {feed.slot}", highlight=False)
    raise typer.Exit(1 if failures else 0)
