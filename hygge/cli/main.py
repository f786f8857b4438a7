"""`hygge` commands: init, go, debug, demo, verify, status, journal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from hygge.config import load_project, parse_var
from hygge.errors import ConfigError, HyggeError

app = typer.Typer(
    help="Land SQL tables and files in Delta, parquet and Fabric landing zones.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        typer.echo(f"hygge {version('hygge')}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", metavar="", callback=_version, is_eager=True, help="Show hygge's version and exit"),
    ] = False,
) -> None:
    """Land SQL tables and files in Delta, parquet and Fabric landing zones."""


console = Console()
err = Console(stderr=True)

ProjectOpt = Annotated[
    Path, typer.Option("--project", "-p", envvar="HYGGE_PROJECT", help="Project folder (holds hygge.yml)")
]
FlowsOpt = Annotated[list[str] | None, typer.Option("--flow", "-f", help="Flow(s); repeatable")]
EntitiesOpt = Annotated[list[str] | None, typer.Option("--entity", "-e", help="flow.entity; repeatable")]


def _split(values: list[str] | None, option: str = "--flow/--entity") -> list[str]:
    """Repeated options accumulate, and each may hold a comma-separated list. An empty value (an unset
    shell variable: `--entity "$E"`) is refused: selecting nothing would mean selecting everything."""
    parts = [part.strip() for value in values or [] for part in value.split(",")]
    if any(not part for part in parts):
        raise ConfigError(
            f"{option} was given an empty name; it would select every entity",
            hint=f"name what to select (`{option.split('/')[-1]} flow.entity`), or leave the option out",
        )
    return parts


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
        chosen = loaded.select(_split(flow, "--flow"), _split(entity, "--entity"))
    except HyggeError as exc:
        _fail(exc)
        raise  # unreachable: _fail exits
    if not chosen:
        err.print(f"nothing to {what}: no entities selected")
        raise typer.Exit(1)
    return loaded, chosen


def _say(exc: HyggeError) -> None:
    """hygge's one-line message for an error, on stderr."""
    err.print(f"[red]{exc.kind} error:[/red] {exc}", highlight=False, soft_wrap=True)


def _fail(exc: HyggeError) -> None:
    _say(exc)
    raise typer.Exit(2)


@app.command()
def go(
    project: ProjectOpt = Path("."),
    flow: Annotated[list[str] | None, typer.Option("--flow", "-f", help="Flow(s) to run; repeatable")] = None,
    entity: EntitiesOpt = None,
    incremental: Annotated[bool, typer.Option("--incremental", metavar="", help="Force incremental runs")] = False,
    full_drop: Annotated[bool, typer.Option("--full-drop", metavar="", help="Force full_drop runs")] = False,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", "-c", min=1, help="Entities landed at once (default: hygge.yml's concurrency)"
        ),
    ] = None,
    var: Annotated[
        list[str] | None, typer.Option("--var", help="flow.<flow>.<key>=value; repeatable")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", metavar="", help="Validate and list what would run")] = False,
    reconcile: Annotated[
        bool,
        typer.Option("--reconcile", metavar="", help="Compare key sets now (entities with `deletes:`), whatever `every` says"),
    ] = False,
    allow_mass_delete: Annotated[
        bool,
        typer.Option(
            "--allow-mass-delete",
            metavar="",
            help="Let this run delete more than `deletes.max_share` of the landed keys",
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
    raise typer.Exit(summary.exit_code)


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
    directory: Annotated[
        Path, typer.Argument(help="Folder for the demo project: new, empty, or an earlier demo")
    ] = Path(".hygge_demo"),
    customers: Annotated[int, typer.Option(help="Customers; orders and lines scale with it")] = 100_000,
) -> None:
    """Build a SQLite shop, land it to Delta, parquet and Open Mirroring, change it, land only the
    changes, then verify every store and show Fabric's (local) status and the journal."""
    from hygge.cli.demo import run_demo

    try:
        code = run_demo(console, directory, customers)
    except HyggeError as exc:
        _fail(exc)
        return
    raise typer.Exit(code)


@app.command()
def verify(
    project: ProjectOpt = Path("."),
    flow: Annotated[
        list[str] | None, typer.Option("--flow", "-f", help="Flow(s) to check; repeatable")
    ] = None,
    entity: EntitiesOpt = None,
) -> None:
    """Reconcile landed data with its source (rows and a checksum per column) and journal the result."""
    from hygge.cli.verify import show

    loaded, chosen = _selection(project, flow, entity, what="verify")
    raise typer.Exit(show(console, loaded, chosen))


@app.command()
def status(
    project: ProjectOpt = Path("."),
    flow: FlowsOpt = None,
    entity: Annotated[list[str] | None, typer.Option("--entity", "-e", help="flow.entity; repeatable")] = None,
) -> None:
    """Each Open Mirroring table's status in Fabric, beside what the journal says hygge published."""
    from hygge.cli.status import show

    loaded, chosen = _selection(project, flow, entity, what="show")
    raise typer.Exit(show(console, loaded, chosen))


@app.command()
def maintain(
    project: ProjectOpt = Path("."),
    flow: FlowsOpt = None,
    entity: Annotated[list[str] | None, typer.Option("--entity", "-e", help="flow.entity; repeatable")] = None,
    compact: Annotated[
        bool, typer.Option("--compact/--no-compact", metavar="", help="Rewrite small files into files of the store's file_mb")
    ] = True,
    vacuum_hours: Annotated[
        int | None,
        typer.Option(
            "--vacuum-hours", min=0, help="Also delete files no version younger than this needs (Delta's default: 168)"
        ),
    ] = None,
) -> None:
    """Compact and vacuum the Delta tables of the chosen entities, each change its own commit."""
    from hygge.maintenance import maintain_entity
    from hygge.stores import store_format

    loaded, chosen = _selection(project, flow, entity, what="maintain")
    if not flow and not entity:  # the whole project: its Delta entities (named ones must be Delta)
        chosen = [e for e in chosen if store_format(e) == "delta"]
        if not chosen:
            err.print("nothing to maintain: no entity lands in Delta")
            raise typer.Exit(1)
    failures = 0
    for e in chosen:
        try:
            done = maintain_entity(loaded, e, compact=compact, vacuum_hours=vacuum_hours)
        except HyggeError as exc:
            _say(exc)
            failures += 1
            continue
        console.print(done.describe(), highlight=False)
    raise typer.Exit(1 if failures else 0)


journal_app = typer.Typer(help="The journal: show runs, repair it, publish it to Fabric.", no_args_is_help=True)
app.add_typer(journal_app, name="journal")


@journal_app.command("show")
def journal_show(
    project: ProjectOpt = Path("."),
    flow: FlowsOpt = None,
    entity: EntitiesOpt = None,
    last: Annotated[int, typer.Option("--last", "-n", min=1, help="Newest N runs per entity")] = 10,
) -> None:
    """List entity runs: when, status, rows, watermark and message."""
    from hygge.cli.journal import show

    try:
        loaded = load_project(project)
        show(console, loaded, loaded.select(_split(flow, "--flow"), _split(entity, "--entity")), last)
    except HyggeError as exc:
        _fail(exc)


@journal_app.command("repair")
def journal_repair(
    project: ProjectOpt = Path("."),
    flow: FlowsOpt = None,
    entity: EntitiesOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", metavar="", help="Say what would be repaired; change nothing")
    ] = False,
) -> None:
    """Set a journal's damaged files aside and rebuild its snapshot from the rest."""
    from hygge.coordinator import journals_of
    from hygge.journal_repair import repair

    try:
        loaded = load_project(project)
        for journal in journals_of(loaded, loaded.select(_split(flow, "--flow"), _split(entity, "--entity"))):
            console.print(repair(journal, dry_run=dry_run).describe(), highlight=False, markup=False)
    except HyggeError as exc:
        _fail(exc)


@journal_app.command("publish")
def journal_publish(
    project: ProjectOpt = Path("."),
    rebuild: Annotated[
        bool, typer.Option("--rebuild", metavar="", help="Rewrite the Fabric tables from the snapshot")
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
    dry_run: Annotated[bool, typer.Option("--dry-run", metavar="", help="Show what would change; write nothing")] = False,
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
            _say(exc)
            failures += 1
            continue
        console.print(f"{e.flow}.{e.name}: dropped slot {feed.slot}", highlight=False)
    raise typer.Exit(1 if failures else 0)
