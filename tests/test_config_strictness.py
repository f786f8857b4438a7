"""Configuration is never silently taken or silently ignored: a key given twice, a file that is not
UTF-8, a YAML file under flows/ that hygge would not read, an empty --flow/--entity. Each is one message
naming the file (and line or option), exit 2, no traceback; nothing runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hygge.cli.main import app

FLOW = "home: {type: sql, connection: db}\nstore: {type: parquet, path: lake}\nrun_type: full_drop\nentities: [t]\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(tmp_path / "src.db")) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.execute("INSERT INTO t VALUES (1, 'a')")
        db.commit()
    (tmp_path / "hygge.yml").write_text("name: p\nconnections:\n  db: {type: sqlite, path: src.db}\n")
    (tmp_path / "flows" / "f").mkdir(parents=True)
    (tmp_path / "flows" / "f" / "flow.yml").write_text(FLOW)
    return tmp_path


def go(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["go", "--project", str(root), *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def refused(root: Path, *args: str) -> str:
    code, out = go(root, *args)
    assert code == 2 and "Traceback" not in out, out
    assert not (root / "lake").exists(), "nothing may run"
    return out


def test_a_clean_project_runs(root: Path) -> None:
    assert go(root)[0] == 0


def test_a_key_given_twice_is_refused_naming_it_and_both_lines(root: Path) -> None:
    (root / "flows" / "f" / "flow.yml").write_text(FLOW + "run_type: incremental\n")
    out = refused(root)
    assert "flow.yml" in out and "key 'run_type' is given twice" in out and "lines 3 and 5" in out, out


def test_yaml_merge_keys_may_still_be_overridden(root: Path) -> None:
    (root / "flows" / "f" / "flow.yml").write_text(
        "x-base: &base {type: parquet, path: elsewhere}\n"
        "home: {type: sql, connection: db}\nstore:\n  <<: *base\n  path: lake\nrun_type: full_drop\nentities: [t]\n"
    )
    code, out = go(root)
    assert code in (0, 2), out
    assert "given twice" not in out


def test_a_file_that_is_not_utf8_is_refused(root: Path) -> None:
    (root / "flows" / "f" / "flow.yml").write_bytes(FLOW.encode() + b"# caf\xe9 latin-1\n")
    out = refused(root)
    assert "not UTF-8" in out and "line 5" in out and "flow.yml" in out, out


@pytest.mark.parametrize("stray", ["f/flow.yaml", "g/flow.yaml", "f/notes.yml", "top.yml", "f/entities/x/t.yml"])
def test_a_yaml_file_under_flows_that_hygge_would_not_read_is_refused(root: Path, stray: str) -> None:
    path = root / "flows" / stray
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(FLOW)
    out = refused(root)
    assert stray in out and "not a file hygge reads" in out, out


def test_files_named_with_an_underscore_or_dot_are_left_alone(root: Path) -> None:
    for stray in ("_notes.yml", "f/_old.yml", "f/.flow.yml.swp.yml"):
        path = root / "flows" / stray
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not: [valid")
    assert go(root)[0] == 0


@pytest.mark.parametrize("option", ["--entity", "--flow"])
def test_an_empty_selector_is_refused_not_taken_as_everything(root: Path, option: str) -> None:
    out = refused(root, option, "")
    assert f"{option} was given an empty name" in out, out
    out = refused(root, option, "f,")
    assert "empty name" in out, out
