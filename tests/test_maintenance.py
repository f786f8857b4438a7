"""Delta maintenance (`hygge maintain`): compaction and vacuum are commits of their own that readers,
the drift checks and the next incremental run take in their stride; a real PostgreSQL source."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from deltalake import DeltaTable
from typer.testing import CliRunner

from hygge.cli.main import app
from tests.helpers import pg_execute, pg_rows, run, sql_flow, write_project

T0 = dt.datetime(2026, 1, 1)


def project(tmp_path: Path, pg_db: str) -> Path:
    plain = {**sql_flow("parquet", ["orders"], run_type="full_drop"), "store": {"type": "parquet", "path": "plake"}}
    return write_project(
        tmp_path,
        connections={"db": {"type": "postgres", "url": pg_db}},
        flows={"f": sql_flow("delta", ["orders"], primary_key=["id"]), "p": plain},
    )


def maintain(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["maintain", "--project", str(root), *args])
    return result.exit_code, result.output


def test_compact_and_vacuum_keep_the_table_and_the_next_run_whole(tmp_path: Path, pg_db: str) -> None:
    pg_execute(
        pg_db,
        "CREATE TABLE orders (id int PRIMARY KEY, v text, updated_at timestamp)",
        ("INSERT INTO orders SELECT i, 'v' || i, %s FROM generate_series(1, 20) AS i", (T0,)),
    )
    root = project(tmp_path, pg_db)
    assert run(root, "f", "orders", run_type="full_drop").status == "success"
    for n in range(1, 6):  # five small keyed changes: a file each, and one rewritten each
        at = T0 + dt.timedelta(days=n)
        pg_execute(pg_db, (f"UPDATE orders SET v = 'r{n}', updated_at = %s WHERE id = {n}", (at,)),
                   (f"INSERT INTO orders VALUES ({100 + n}, 'new', %s)", (at,)))
        assert run(root, "f", "orders").status == "success"
    table = tmp_path / "lake" / "orders"
    before = len(DeltaTable(str(table)).file_uris())
    assert before > 2

    code, out = maintain(root, "--vacuum-hours", "0")
    assert code == 0, out
    assert f"f.orders: {before} -> 1 file(s)" in out and "p.orders" not in out  # Delta entities only
    live = DeltaTable(str(table))
    assert len(live.file_uris()) == 1
    on_disk = [p for p in table.glob("*.parquet")]
    assert len(on_disk) == 1  # the vacuum removed every file no version needs now
    expected = sorted(pg_rows(pg_db, "SELECT id, v FROM orders")[1], key=lambda r: r["id"])
    assert sorted(live.to_pyarrow_table(columns=["id", "v"]).to_pylist(), key=lambda r: r["id"]) == expected

    # The next incremental continues from the journal: maintenance commits are no drift.
    pg_execute(pg_db, ("UPDATE orders SET v = 'after', updated_at = %s WHERE id = 7", (T0 + dt.timedelta(days=9),)))
    result = run(root, "f", "orders")
    assert result.status == "success" and result.rows == 1
    code, out = CliRunner().invoke(app, ["verify", "--project", str(root), "-f", "f"]).exit_code, ""
    assert code == 0

    code, out = maintain(root, "-e", "p.orders")
    assert code == 1 and "maintenance compacts and vacuums Delta tables" in out and "Traceback" not in out


def test_opt_in_maintenance_compacts_after_every_nth_commit(tmp_path: Path, pg_db: str) -> None:
    """`maintenance: {every: 3, vacuum_hours: 0}` on the store: `hygge go` compacts (and vacuums)
    once the table has three commits since its last compaction, reports it, and the rows stay whole."""
    pg_execute(
        pg_db,
        "CREATE TABLE orders (id int PRIMARY KEY, v text, updated_at timestamp)",
        ("INSERT INTO orders SELECT i, 'v' || i, %s FROM generate_series(1, 20) AS i", (T0,)),
    )
    flow = sql_flow("delta", ["orders"], primary_key=["id"])
    flow["store"]["maintenance"] = {"every": 3, "vacuum_hours": 0}
    root = write_project(tmp_path, connections={"db": {"type": "postgres", "url": pg_db}}, flows={"f": flow})
    table = tmp_path / "lake" / "orders"
    notes = []
    for n in range(0, 4):
        if n:
            at = T0 + dt.timedelta(days=n)
            pg_execute(pg_db, (f"INSERT INTO orders VALUES ({100 + n}, 'new', %s)", (at,)))
        result = CliRunner().invoke(app, ["go", "--project", str(root)])
        assert result.exit_code == 0, result.output
        notes.append("maintenance: f.orders" in result.output)
        operations = [c["operation"] for c in DeltaTable(str(table)).history()]
    assert notes == [False, False, True, False], notes  # the third commit makes it due, then it is not
    assert operations.count("OPTIMIZE") == 1
    live = DeltaTable(str(table))
    assert len(live.file_uris()) == 2  # one compacted file, and the run after it
    assert len(list(table.glob("*.parquet"))) == 2, "vacuumed"
    assert live.to_pyarrow_table().num_rows == 23


def test_maintenance_setting_on_a_parquet_store_is_refused(tmp_path: Path, pg_db: str) -> None:
    flow = sql_flow("parquet", ["orders"], primary_key=["id"])
    flow["store"] = {"type": "adls", "format": "parquet", "account": "a", "container": "c",
                     "maintenance": {"every": 3}}  # fmt: skip
    root = write_project(tmp_path, connections={"db": {"type": "postgres", "url": pg_db}}, flows={"f": flow})
    result = CliRunner().invoke(app, ["go", "--project", str(root)])
    assert result.exit_code == 2, result.output
    assert "`maintenance:` compacts and vacuums Delta tables" in result.output and "Traceback" not in result.output


def test_a_failed_maintenance_leaves_the_run_landed_and_exits_3(tmp_path: Path, pg_db: str, monkeypatch) -> None:
    """Maintenance that fails after the entity landed: reported, the entity succeeds, `hygge go` exits 3."""
    from hygge import maintenance
    from hygge.errors import StoreError

    pg_execute(
        pg_db,
        "CREATE TABLE orders (id int PRIMARY KEY, v text, updated_at timestamp)",
        ("INSERT INTO orders SELECT i, 'v' || i, %s FROM generate_series(1, 5) AS i", (T0,)),
    )
    flow = sql_flow("delta", ["orders"], primary_key=["id"])
    flow["store"]["maintenance"] = {"every": 1}
    root = write_project(tmp_path, connections={"db": {"type": "postgres", "url": pg_db}}, flows={"f": flow})

    def broken(project, entity):
        raise StoreError("the table's storage refused the compaction")

    monkeypatch.setattr(maintenance, "maintain_if_due", broken)
    result = CliRunner().invoke(app, ["go", "--project", str(root)])
    assert result.exit_code == 3, result.output
    assert "maintenance failed: f.orders" in result.output and "1 PASS" in result.output, result.output
    assert DeltaTable(str(tmp_path / "lake" / "orders")).to_pyarrow_table().num_rows == 5
