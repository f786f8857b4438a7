"""`hygge demo`: write the demo project, land the shop to every local store kind with the local
replicator standing in for Fabric, change it, land the changes, then verify, show status and journal."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from hygge.cli import journal, status, verify
from hygge.cli.progress import LiveProgress, print_summary
from hygge.config import load_project
from hygge.coordinator import run_entities
from hygge.demo import MIRROR_ITEM, build_demo, change_demo, write_demo_project
from hygge.fabric.replicator import LocalReplicator
from hygge.storage import Storage


def run_demo(console: Console, directory: Path, customers: int) -> int:
    """The whole demo; 0 when every run landed, verified and was confirmed, else 1."""
    root = write_demo_project(directory)
    build_demo(root, customers=customers, say=console.print)
    loaded = load_project(root)
    chosen = loaded.select()
    ok = True
    # The local replicator (a test double of Fabric's service) applies the landing zone's files to
    # Delta tables under Tables/ and writes Files/Monitoring, which `confirm` waits on.
    with LocalReplicator(Storage.local(root / MIRROR_ITEM)).running(interval=0.2):
        for title, run_type in (("first load", "full_drop"), ("incremental after changes", "incremental")):
            if run_type == "incremental":
                console.print(change_demo(root))
            console.rule(title)
            with LiveProgress(console) as live:
                summary = run_entities(loaded, chosen, run_type=run_type, events=live.events())
            print_summary(console, summary)
            ok = ok and summary.ok
    console.rule("hygge verify: the source against every store (and Fabric's table)")
    ok = verify.show(console, loaded, chosen) == 0 and ok
    console.rule("hygge status: what the (local) Fabric replicator says")
    ok = status.show(console, loaded, chosen) == 0 and ok  # it shows the Open Mirroring entities
    console.rule("hygge journal show")
    journal.show(console, loaded, chosen, last=2)
    console.print(
        f"\nThe demo project is {root}: shop.sqlite, hygge.yml, flows/, and under lake/ the Delta and "
        f"parquet stores and the mirrored database {MIRROR_ITEM.name} (Files/LandingZone is what hygge "
        "wrote, Tables/ what the replicator made of it).\n"
        f"Next: cd {root} and run `hygge go` (nothing changed, so nothing lands), `hygge verify`, "
        "`hygge status`, `hygge journal show`.",
        highlight=False,
    )
    return 0 if ok else 1
