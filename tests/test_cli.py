"""The `hygge` command line: option handling, exit codes, the summary, `debug` and the demo."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hygge.cli.main import app

runner = CliRunner()


def _project(root: Path) -> Path:
    with sqlite3.connect(root / "src.sqlite") as db:
        for name in ("a", "b"):
            db.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, v TEXT, updated_at DATETIME)")
            db.executemany(
                f"INSERT INTO {name} VALUES (?, ?, ?)",
                [(i, f"v{i}", f"2024-01-01 00:00:{i:02d}") for i in range(1, 11)],
            )
    (root / "hygge.yml").write_text("name: p\nconnections:\n  src: {type: sqlite, path: src.sqlite}\n")
    for flow, store in (("one", "delta"), ("two", "parquet")):
        folder = root / "flows" / flow
        folder.mkdir(parents=True)
        (folder / "flow.yml").write_text(
            f"home: {{type: sql, connection: src}}\nstore: {{type: {store}, path: lake/{flow}}}\n"
            "run_type: incremental\nwatermark: {primary_key: id, watermark_column: updated_at}\n"
            "entities: [a, b]\n"
        )
    return root


def test_go_lands_everything_and_prints_a_summary(tmp_path: Path) -> None:
    """`hygge go` runs every flow, prints the per-entity table and the totals, and exits 0."""
    root = _project(tmp_path)
    result = runner.invoke(app, ["go", "--project", str(root)])
    assert result.exit_code == 0, result.output
    assert "4 entities, 40 rows" in result.output
    assert "4 PASS" in result.output and "0 FAIL" in result.output
    assert "one.a" in result.output and "two.b" in result.output


def test_repeated_flags_accumulate_and_commas_split(tmp_path: Path) -> None:
    """--flow and --entity may repeat and hold comma lists; every value counts (not only the last)."""
    root = _project(tmp_path)
    result = runner.invoke(
        app, ["go", "-p", str(root), "--entity", "one.a", "--entity", "two.a,two.b", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert [line.split(":")[0] for line in result.output.splitlines()] == ["one.a", "two.a", "two.b"]
    result = runner.invoke(app, ["go", "-p", str(root), "--flow", "one", "--flow", "two", "--dry-run"])
    assert len(result.output.splitlines()) == 4


def test_var_keeps_its_type(tmp_path: Path) -> None:
    """--var flow.one.home.batch_size=1 is the integer 1 (the earlier generation turned it into True)."""
    root = _project(tmp_path)
    result = runner.invoke(
        app, ["go", "-p", str(root), "--flow", "one", "--var", "flow.one.home.batch_size=1"]
    )
    assert result.exit_code == 0, result.output
    from hygge.config import load_project, parse_var

    key, value = parse_var("flow.one.home.batch_size=1")
    assert value == 1 and type(value) is int
    entity = load_project(root, variables={key: value}).select(["one"])[0]
    assert entity.home.batch_size == 1


def test_contradicting_run_types_and_bad_config_exit_2(tmp_path: Path) -> None:
    """Conflicting flags and configuration errors give one message and exit code 2, landing nothing."""
    root = _project(tmp_path)
    result = runner.invoke(app, ["go", "-p", str(root), "--incremental", "--full-drop"])
    assert result.exit_code == 2 and "contradict" in result.output
    (root / "flows" / "one" / "flow.yml").write_text("home: {type: sql, connection: src}\nstroe: {}\n")
    result = runner.invoke(app, ["go", "-p", str(root)])
    assert result.exit_code == 2
    assert "stroe" in result.output and "store" in result.output
    assert not (root / "lake").exists()


def test_failed_entity_exits_1_and_names_it(tmp_path: Path) -> None:
    """An entity failure is reported as FAIL with its message; the exit code is 1."""
    root = _project(tmp_path)
    (root / "flows" / "two" / "entities").mkdir()
    (root / "flows" / "two" / "entities" / "b.yml").write_text("table: missing\n")
    result = runner.invoke(app, ["go", "-p", str(root)])
    assert result.exit_code == 1
    assert "FAIL two.b" in result.output and "missing" in result.output
    assert "3 PASS" in result.output and "1 FAIL" in result.output


def test_debug_reports_connections_and_stores(tmp_path: Path) -> None:
    """`hygge debug` checks the connection answers and each store folder is writable."""
    root = _project(tmp_path)
    result = runner.invoke(app, ["debug", "-p", str(root)])
    assert result.exit_code == 0, result.output
    assert "connection src" in result.output and "writable" in result.output
    (root / "src.sqlite").unlink()
    result = runner.invoke(app, ["debug", "-p", str(root)])
    assert result.exit_code == 1 and "FAIL" in result.output


def test_init_writes_a_valid_project(tmp_path: Path) -> None:
    """`hygge init` writes a project that loads, and refuses to overwrite one."""
    from hygge.config import load_project

    assert runner.invoke(app, ["init", str(tmp_path / "new")]).exit_code == 0
    project = load_project(tmp_path / "new", env={})
    assert [e.name for e in project.select()] == ["customers", "orders"]
    assert runner.invoke(app, ["init", str(tmp_path / "new")]).exit_code == 2


@pytest.mark.timeout(300)
def test_demo_lands_every_store_then_moves_only_the_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hygge demo` (small) from an empty folder, far from any project: writes its project into
    ./.hygge_demo, lands the shop to Delta, parquet and Open Mirroring (the local replicator confirms
    each mirrored run), lands only the changes, and verifies every store, Fabric's tables included."""
    import re

    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["demo", "--customers", "2000"], terminal_width=80)
    assert result.exit_code == 0, result.output
    first, second = result.output.split("incremental after changes")
    assert "8 entities, 54,000 rows" in first.replace("\n", " ")  # 22,000 twice, 10,000 mirrored
    assert "8 PASS" in first and "8 PASS" in second
    moved = int(re.search(r"8 entities, ([\d,]+) rows", second.replace("\n", " ")).group(1).replace(",", ""))
    assert 0 < moved < 10_000
    for entity in ("customers", "orders"):
        assert re.search(rf"fabric shop_mirror\.{entity}: Replicating in [\d.]+ s", second), second
    assert "8 entities: 8 MATCH, 0 DIFFER, 0 ERROR" in second
    status = second.split("hygge status", 1)[1].split("hygge journal show", 1)[0]
    assert status.count("agree") == 2, status
    assert "Next: cd " in second
    rows = [line for line in result.output.splitlines() if re.search(r"T\d\d:\d\d|MATCH|agree", line)]
    assert rows and all(len(line) <= 80 for line in rows), "a table wider than 80 columns"
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", first), "watermarks shown exactly"
    root = tmp_path / ".hygge_demo"
    assert (root / "hygge.yml").is_file() and (root / "lake" / "delta" / "orders" / "_delta_log").is_dir()
    assert (root / "lake" / "Shop.MountedRelationalDatabase" / "Tables" / "dbo" / "orders" / "_delta_log").is_dir()


def test_demo_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    """The demo never writes into a folder holding something else: one line, exit 2, nothing changed."""
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["demo", str(other), "--customers", "10"])
    assert result.exit_code == 2 and "not empty" in result.output and "Traceback" not in result.output
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    (other / "notes.txt").unlink()
    (other / "hygge.yml").write_text("name: mine\n")
    result = runner.invoke(app, ["demo", str(other), "--customers", "10"])
    assert result.exit_code == 2 and "another project" in result.output
    assert (other / "hygge.yml").read_text() == "name: mine\n"


def test_journal_show_lists_runs(tmp_path: Path) -> None:
    """`hygge journal show` lists each entity's newest runs with status, rows and watermark."""
    root = _project(tmp_path)
    assert runner.invoke(app, ["go", "-p", str(root)]).exit_code == 0
    assert runner.invoke(app, ["go", "-p", str(root), "--flow", "one"]).exit_code == 0
    result = runner.invoke(
        app, ["journal", "show", "-p", str(root), "--entity", "one.a", "--last", "1"], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert "one.a" in result.output and "two.b" not in result.output
    runs = [line for line in result.output.split("one.a", 1)[1].splitlines() if "success" in line]
    assert len(runs) == 1 and "2024-01-01T0" in runs[0]
