"""Reading a project's YAML files: parsed, `${VAR}`-expanded, every failure a ConfigError naming the
file; and the "did you mean" suggestion every config message uses. Shared by the loader and the
block documents (hygge.blocks.apply), so neither imports the other for it."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hygge.config.expand import UnsetVariable, expand
from hygge.errors import ConfigError


def read_yaml(
    path: Path, env: Mapping[str, str], *, flow: str | None = None, entity: str | None = None
) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path), flow=flow, entity=entity) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"invalid YAML{where}: {problem}",
            hint="check indentation and quoting",
            file=str(path),
            flow=flow,
            entity=entity,
        ) from None
    try:
        return expand(data if data is not None else {}, env)
    except UnsetVariable as exc:
        raise ConfigError(
            f"environment variable {exc.name} is not set",
            hint=f"export {exc.name}=..., or write ${{{exc.name}:-default}}",
            file=str(path),
            flow=flow,
            entity=entity,
            field=exc.path or None,
        ) from None


def did_you_mean(word: str, choices: Any) -> str | None:
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None
