"""`${VAR}` and `${VAR:-default}` expansion of configuration values (`$${` escapes a literal `${`)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

_PATTERN = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class UnsetVariable(Exception):
    """An expansion referred to a variable that is not set and has no default."""

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path
        super().__init__(name)


def expand_text(text: str, env: Mapping[str, str], path: str = "") -> str:
    def repl(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise UnsetVariable(name, path)
            return default
        return value

    return _PATTERN.sub(repl, text)


def expand(value: Any, env: Mapping[str, str] | None = None, path: str = "") -> Any:
    """Expand every string inside a parsed YAML document; `path` names the key for error messages."""
    env = os.environ if env is None else env
    if isinstance(value, str):
        return expand_text(value, env, path)
    if isinstance(value, dict):
        return {k: expand(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    return value
