"""Progress bars and the closing summary for `hygge go` and `hygge demo`."""

from __future__ import annotations

import threading

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from hygge.cli.tables import compact
from hygge.config.models import ResolvedEntity
from hygge.coordinator import EXIT_PENDING, Events, RunSummary
from hygge.runner import EntityResult


class LiveProgress:
    """One line per entity: rows so far, rate, elapsed; ends with its status."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[name]}"),
            TextColumn("{task.completed:>12,.0f} rows"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _task(self, key: str) -> TaskID:
        with self.lock:
            if key not in self.tasks:
                self.tasks[key] = self.progress.add_task("", total=None, name=key, rate="", status="")
            return self.tasks[key]

    def events(self) -> Events:
        def started(entity: ResolvedEntity) -> None:
            self._task(f"{entity.flow}.{entity.name}")

        def rows(entity: ResolvedEntity, n: int) -> None:
            task_id = self._task(f"{entity.flow}.{entity.name}")
            self.progress.advance(task_id, n)
            task = self.progress.tasks[task_id]
            if task.elapsed:
                self.progress.update(task_id, rate=f"{task.completed / task.elapsed:>10,.0f} rows/s")

        def finished(result: EntityResult) -> None:
            task_id = self._task(result.key)
            colour = {"success": "green", "fail": "red"}.get(result.status, "yellow")
            self.progress.update(task_id, status=f"[{colour}]{result.status.upper()}", total=result.rows or 1)
            self.progress.update(task_id, completed=result.rows)
            self.progress.stop_task(task_id)

        return Events(started=started, rows=rows, finished=finished)


def print_summary(console: Console, summary: RunSummary) -> None:
    deletes = any(r.deleted for r in summary.results)  # the column only where a run deleted keys
    columns = ["entity", "status", "rows", *(["deleted"] if deletes else []), "s", "watermark"]
    table = compact("hygge run", columns, right=("rows", "deleted", "s"))
    for r in sorted(summary.results, key=lambda r: r.key):
        colour = {"success": "green", "fail": "red"}.get(r.status, "yellow")
        mark = (r.watermark_after or "-") if r.status == "success" else ""
        counts = [f"{r.rows:,}", *([f"{r.deleted:,}"] if deletes else [])]
        table.add_row(r.key, f"[{colour}]{r.status.upper()}", *counts, f"{r.duration:.2f}", mark)
    console.print(table)
    for r in sorted(summary.results, key=lambda r: r.key):
        if r.status == "fail":
            console.print(f"[red]FAIL[/red] {r.key}: {r.message}", highlight=False, soft_wrap=True)
            continue
        if r.status == "success" and r.message:  # a reload on drift, the deletes it applied
            console.print(f"note {r.key}: {r.message}", highlight=False, soft_wrap=True)
        if r.confirmation is not None:
            console.print(f"fabric {r.key}: {_confirmed(r)}", highlight=False, soft_wrap=True)
    flows = len({r.flow for r in summary.results})
    rate = summary.rows / summary.duration if summary.duration else 0.0
    console.print(
        f"{flows} flow(s), {len(summary.results)} entities, {summary.rows:,} rows in {summary.duration:.1f} s "
        f"({rate:,.0f} rows/s): [green]{summary.count('success')} PASS[/green], "
        f"[red]{summary.count('fail')} FAIL[/red], {summary.count('skip')} skipped",
        highlight=False,
    )
    for note in summary.maintenance:
        console.print(f"maintenance: {note}", highlight=False)
    for note in summary.maintenance_errors:
        console.print(f"[red]maintenance failed:[/red] {note}", highlight=False)
    if summary.publish_error:
        console.print(f"[red]journal not published:[/red] {summary.publish_error}", highlight=False)
    if summary.exit_code == EXIT_PENDING:
        console.print(
            f"every entity landed; housekeeping is pending (exit {EXIT_PENDING}): the next run, or "
            "`hygge journal publish`, finishes it",
            highlight=False,
        )


def _confirmed(result: EntityResult) -> str:
    """`Replicating in 3.1 s`: Fabric's status once it applied the run's rows (seconds from publish)."""
    found = result.confirmation
    return f"{found.status} in {found.seconds:.1f} s" if found is not None else ""
