"""A damaged journal: every read names the file and points to `hygge journal repair`, which sets the
file aside (a dry run first changes nothing) and rebuilds the snapshot; the next run then lands
exactly the source, neither skipping nor doubling a row. A real PostgreSQL source, local stores."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hygge.cli.main import app
from tests.helpers import pg_execute, sql_flow, write_project

T0 = dt.datetime(2026, 1, 1)


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def damage(journal: Path, how: str) -> str:
    """Damage the journal as a crash or a disk might; returns the damaged file's name."""
    cut = {"snapshot cut in half": 0.5, "snapshot short of its last byte": -1, "snapshot cut to 12 bytes": 12}
    if how in cut:
        snapshot = journal / "journal.parquet"
        data = snapshot.read_bytes()
        size = cut[how]
        snapshot.write_bytes(data[: int(len(data) * size) if size == 0.5 else size])
        return "journal.parquet"
    if how == "empty snapshot":
        (journal / "journal.parquet").write_bytes(b"")
        return "journal.parquet"
    (journal / "runs").mkdir(exist_ok=True)
    (journal / "runs" / "0123456789abcdef0123456789abcdef.parquet").write_bytes(b"not parquet")
    return "runs/0123456789abcdef0123456789abcdef.parquet"


@pytest.mark.parametrize("store", ["parquet", "delta"])
@pytest.mark.parametrize(
    "how",
    ["snapshot cut in half", "snapshot short of its last byte", "snapshot cut to 12 bytes", "empty snapshot",
     "a run object that is no parquet"],
)  # fmt: skip
def test_a_damaged_journal_is_named_repaired_and_the_next_run_lands_exactly(
    tmp_path: Path, pg_db: str, store: str, how: str
) -> None:
    pg_execute(
        pg_db,
        "CREATE TABLE items (id int PRIMARY KEY, v text, updated_at timestamp)",
        ("INSERT INTO items SELECT i, 'v' || i, %s FROM generate_series(1, 50) AS i", (T0,)),
    )
    flow = sql_flow(store, ["items"], primary_key=["id"])
    root = write_project(tmp_path / "p", connections={"db": {"type": "postgres", "url": pg_db}}, flows={"f": flow})
    project = ["--project", str(root)]
    assert cli("go", *project)[0] == 0
    pg_execute(pg_db, ("UPDATE items SET v = 'changed', updated_at = %s WHERE id <= 5", (T0 + dt.timedelta(days=1),)))
    assert cli("go", *project)[0] == 0
    journal = root / "lake" / ".hygge_journal"
    name = damage(journal, how)

    code, out = cli("go", *project)
    assert code == 1 and name in out and "hygge journal repair" in out, out
    assert "Traceback" not in out and "unexpected" not in out, out
    code, out = cli("journal", "show", *project)
    assert code == 2 and name in out and "Traceback" not in out, out

    before = sorted(p.relative_to(journal) for p in journal.rglob("*") if p.is_file())
    code, out = cli("journal", "repair", *project, "--dry-run")
    assert code == 0 and "would set aside 1 damaged file" in out and name in out, out
    assert sorted(p.relative_to(journal) for p in journal.rglob("*") if p.is_file()) == before

    code, out = cli("journal", "repair", *project)
    assert code == 0 and "set aside 1 damaged file" in out, out
    assert [p.name.endswith(name.replace("/", "_")) for p in (journal / "quarantine").iterdir()] == [True]
    code, out = cli("journal", "repair", *project)
    assert code == 0 and "nothing to repair" in out, out

    # The next run continues: a lost snapshot's place is taken by the store's own last commit.
    pg_execute(
        pg_db,
        ("INSERT INTO items VALUES (51, 'new', %s)", (T0 + dt.timedelta(days=2),)),
        ("UPDATE items SET v = 'again', updated_at = %s WHERE id = 7", (T0 + dt.timedelta(days=2),)),
    )
    code, out = cli("go", *project)
    assert code == 0, out
    code, out = cli("verify", *project)
    assert code == 0 and "MATCH" in out, out
    code, out = cli("journal", "show", *project)
    assert code == 0 and "success" in out, out
