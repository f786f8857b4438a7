"""The error tree: one base, a class per area, `transient` deciding retries, and unexpected library
errors wrapped at the entity boundary with their context while the original stays visible."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from helpers import run
from typer.testing import CliRunner

import hygge.homes.sql.home as sql_home
from hygge.cli.main import app
from hygge.coordinator import run_entities
from hygge.errors import (
    ConfigError,
    HyggeError,
    JournalError,
    PublishError,
    SourceError,
    StoreError,
)
from hygge.journal import Journal
from hygge.storage import Storage


def test_one_tree_with_a_kind_per_area() -> None:
    """Every area's error is a HyggeError with its own kind; permanent unless it says otherwise."""
    classes = [ConfigError, SourceError, StoreError, JournalError, PublishError]
    assert all(issubclass(cls, HyggeError) for cls in classes)
    assert len({cls.kind for cls in classes}) == len(classes)
    assert not any(cls("x").transient for cls in classes)
    assert SourceError("x", transient=True).transient


def test_context_is_filled_in_once_and_rendered_with_the_fix() -> None:
    """Inner code knows the field, outer code adds flow and entity; what is known is never replaced."""
    error = SourceError("gone", hint="look", field="table", flow="inner")
    error.with_context(file="f.yml", flow="outer", entity="e")
    assert str(error) == "f.yml: flow 'inner', entity 'e', field 'table': gone Try: look"


def _project(root: Path) -> Path:
    with sqlite3.connect(root / "src.sqlite") as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.execute("INSERT INTO t VALUES (1, 'a')")
    (root / "hygge.yml").write_text("name: p\nconnections:\n  src: {type: sqlite, path: src.sqlite}\n")
    (root / "flows" / "f").mkdir(parents=True)
    (root / "flows" / "f" / "flow.yml").write_text(
        "home: {type: sql, connection: src}\nstore: {type: parquet, path: lake}\nentities: [t]\n"
    )
    return root


@pytest.mark.parametrize(
    ("raised", "cls", "transient"),
    [
        (ValueError("boom-original"), HyggeError, False),
        (ConnectionResetError("boom-original"), StoreError, True),
        (PermissionError("boom-original"), StoreError, False),
    ],
    ids=["value-error", "connection-reset", "permission"],
)
def test_unexpected_library_error_is_wrapped_with_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raised: BaseException, cls: type, transient: bool
) -> None:
    """A fake home raises a non-hygge exception mid-read: the run fails with a HyggeError naming flow,
    entity, the original type and text and a fix, chains the original, and journals the failure."""

    def broken(self, bound=None):
        raise raised

    monkeypatch.setattr(sql_home.SqlHome, "read", broken)
    root = _project(tmp_path)
    with pytest.raises(HyggeError) as info:
        run(root, "f", "t")
    error = info.value
    assert type(error) is cls and error.transient is transient
    text = str(error)
    assert "flow 'f'" in text and "entity 't'" in text and "boom-original" in text
    assert type(raised).__name__ in text and "Try: " in text
    assert error.__cause__ is raised
    entries = Journal(Storage.local(root / "lake" / ".hygge_journal")).entries()
    assert [e.status for e in entries] == ["fail"] and "boom-original" in (entries[0].message or "")


def test_coordinator_reports_the_original_error_not_a_wrapper(tmp_path: Path, monkeypatch) -> None:
    """The CLI's coordinator keeps the HyggeError itself on the result (class, context and cause)."""
    from hygge.config import load_project

    monkeypatch.setattr(
        sql_home.SqlHome, "read", lambda self, bound=None: (_ for _ in ()).throw(OSError("disk"))
    )
    project = load_project(_project(tmp_path))
    summary = run_entities(project, project.select())
    [result] = summary.results
    assert isinstance(result.error, StoreError) and "disk" in result.message
    assert isinstance(result.error.__cause__, OSError)


def test_cli_prints_the_message_and_no_traceback(tmp_path: Path) -> None:
    """`hygge go` with a missing table prints hygge's one-line message and exits 1, no traceback."""
    root = _project(tmp_path)
    (root / "flows" / "f" / "entities").mkdir()
    (root / "flows" / "f" / "entities" / "t.yml").write_text("table: nope\n")
    result = CliRunner().invoke(app, ["go", "--project", str(root)])
    assert result.exit_code == 1
    assert "table nope was not found" in result.output
    assert "Traceback" not in result.output and "RetryError" not in result.output


def test_cli_config_error_exits_2_naming_the_file(tmp_path: Path) -> None:
    """A configuration error exits 2 with `config error:` and the file, before anything is written."""
    root = _project(tmp_path)
    (root / "flows" / "f" / "flow.yml").write_text(
        "home: {type: sql, connection: src}\nstore: {type: parquet}\nentities: [t]\n"
    )
    result = CliRunner().invoke(app, ["go", "--project", str(root)])
    assert result.exit_code == 2
    assert "config error:" in result.output and "flow.yml" in result.output
    assert not (root / "lake").exists()
