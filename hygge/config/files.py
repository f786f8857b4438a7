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
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"not UTF-8 text: byte 0x{exc.object[exc.start]:02x} at offset {exc.start} (line {line}) "
            "cannot be decoded",
            hint="save the file as UTF-8 (editors call it 'UTF-8' or 'UTF-8 without BOM')",
            file=str(path),
            flow=flow,
            entity=entity,
        ) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except DuplicateKey as exc:
        raise ConfigError(
            f"key '{exc.key}' is given twice in one mapping (lines {exc.first} and {exc.again}); YAML "
            "would silently keep the last",
            hint="keep one of them",
            file=str(path),
            flow=flow,
            entity=entity,
            field=str(exc.key),
        ) from None
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


class DuplicateKey(Exception):
    def __init__(self, key: object, first: int, again: int) -> None:
        super().__init__(key)
        self.key, self.first, self.again = key, first, again


class _StrictLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` may be overridden by the keys beside it
            key = self.construct_object(key_node)  # type: ignore[no-untyped-call]
            line = key_node.start_mark.line + 1
            if key in seen:
                raise DuplicateKey(key, seen[key], line)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def did_you_mean(word: str, choices: Any) -> str | None:
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None
