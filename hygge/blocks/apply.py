"""`hygge blocks apply FILE`: create or update block documents from a YAML file, idempotently.

The file lists block documents, with `${VAR}` references for secrets (expanded like hygge.yml):

    blocks:
      - type: sql-server-connection
        name: erp
        data: {host: erp.example.com, database: erp, user: hygge, password: "${ERP_PASSWORD}"}

Each block is compared with the document already in the Prefect API (loaded client-side, where
secrets are real values, so a changed secret is seen without ever being printed): `create`, `update`
(naming the fields that differ) or `unchanged`. A dry run only reports. Block types are registered
first, so a fresh API (or a changed schema) needs no separate `prefect block register`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hygge.blocks import api_url, block_class
from hygge.config.files import read_yaml as _read_yaml
from hygge.errors import ConfigError

Action = Literal["create", "update", "unchanged"]
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    name: str
    data: dict[str, Any] = Field(default_factory=dict)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    blocks: list[_Entry] = Field(default_factory=list)


@dataclass
class BlockChange:
    """What applying one block did (or, in a dry run, would do)."""

    type: str
    name: str
    action: Action
    fields: list[str] = field(default_factory=list)  # names only: never values

    @property
    def reference(self) -> str:
        return f"{self.type}/{self.name}"

    def describe(self, dry_run: bool = False) -> str:
        verb = self.action if not dry_run or self.action == "unchanged" else f"would {self.action}"
        detail = f" ({', '.join(self.fields)})" if self.action == "update" and self.fields else ""
        return f"{verb} {self.reference}{detail}"


def read_blocks(path: Path | str, env: Mapping[str, str] | None = None) -> list[tuple[str, str, Any]]:
    """Parse, expand and validate a blocks file: (type slug, name, block instance) per entry."""
    path = Path(path)
    env = os.environ if env is None else env
    expanded = _read_yaml(path, env)  # YAML and ${VAR} errors as hygge.yml reports them
    try:
        parsed = _File.model_validate(expanded)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(
            first["msg"],
            hint="the file holds `blocks:`, a list of {type, name, data}",
            file=str(path),
            field=".".join(str(p) for p in first["loc"]) or None,
        ) from None
    result: list[tuple[str, str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for index, entry in enumerate(parsed.blocks):
        where = {"file": str(path), "field": f"blocks[{index}]"}
        if not _NAME.match(entry.name):
            raise ConfigError(
                f"block name '{entry.name}' is not allowed",
                hint="use lowercase letters, digits and dashes (e.g. erp-prod)",
                **where,
            )
        if (entry.type, entry.name) in seen:
            raise ConfigError(f"block {entry.type}/{entry.name} is listed twice", **where)
        seen.add((entry.type, entry.name))
        try:
            cls = block_class(entry.type)
        except ConfigError as exc:
            raise exc.with_context(**where) from None
        try:
            block = cls.model_validate(entry.data)  # type: ignore[attr-defined]
        except ValidationError as exc:
            first = exc.errors()[0]  # message and location only: the input may be a secret
            loc = ".".join(str(p) for p in first["loc"])
            raise ConfigError(
                f"{entry.type}/{entry.name}: {first['msg']}",
                file=str(path),
                field=f"blocks[{index}].data{'.' + loc if loc else ''}",
            ) from None
        result.append((entry.type, entry.name, block))
    return result


def apply_blocks(
    path: Path | str, *, dry_run: bool = False, env: Mapping[str, str] | None = None
) -> list[BlockChange]:
    """Create or update every block of the file in the current Prefect API (dry run: report only)."""
    blocks = read_blocks(path, env)
    api_url()
    registered: set[type] = set()
    changes = []
    for slug, name, block in blocks:
        cls = type(block)
        if not dry_run and cls not in registered:
            cls.register_type_and_schema()
            registered.add(cls)
        change = _compare(slug, name, block)
        if not dry_run and change.action != "unchanged":
            block.save(name, overwrite=True)
        changes.append(change)
    return changes


def _compare(slug: str, name: str, block: Any) -> BlockChange:
    try:
        existing = type(block).load(name)
    except ValueError as exc:
        if isinstance(exc, ValidationError):  # stored with another schema
            return BlockChange(slug, name, "update", ["(schema)"])
        return BlockChange(slug, name, "create")
    new, old = _plain(block), _plain(existing)
    differing = [key for key in new if new.get(key) != old.get(key)]
    differing += [key for key in old if key not in new]
    return BlockChange(slug, name, "update" if differing else "unchanged", differing)


def _plain(block: Any) -> dict[str, Any]:
    """The block's data with secrets revealed, for comparison only (never printed)."""
    data = block.model_dump(mode="json", context={"include_secrets": True})
    return {key: _strip(value) for key, value in data.items() if key in type(block).model_fields}


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("_") and k != "block_type_slug"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value
