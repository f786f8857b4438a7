"""The command line as a newcomer meets it: `hygge --version`; help that shows flags as flags (no
`<bool>` value to type); and every command's error path for a broken project is hygge's one message
and exit code, never a traceback."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hygge.cli.main import app

BROKEN = "name: [unclosed\n"  # hygge.yml that is not YAML
# Every command that reads a project, as a user would call it on one.
COMMANDS = [
    ["go"],
    ["go", "--dry-run"],
    ["debug"],
    ["verify"],
    ["status"],
    ["maintain"],
    ["journal", "show"],
    ["journal", "repair"],
    ["journal", "publish"],
    ["feed", "drop", "--entity", "f.t"],
]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "80"})


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"hygge {version('hygge')}"


def _commands(group=app, prefix=()) -> list[tuple[str, ...]]:
    found = [(*prefix, c.name or c.callback.__name__) for c in group.registered_commands]
    for sub in group.registered_groups:
        found += _commands(sub.typer_instance, (*prefix, sub.name))
    return found


@pytest.mark.parametrize("command", _commands(), ids=" ".join)
def test_help_shows_flags_as_flags(command: tuple[str, ...]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "<bool>" in line and "--help" not in line]
    assert lines == []


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_broken_project_is_one_message_on_every_command(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "hygge.yml").write_text(BROKEN)
    result = invoke(*command, "--project", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and "hygge.yml" in result.output
