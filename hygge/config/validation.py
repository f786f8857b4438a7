"""Validating a YAML mapping against a config model: the first pydantic error becomes one ConfigError
that names the file (the layer that set the key), the flow, the entity and the field, with a fix or a
"did you mean" where one fits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from hygge.config.files import did_you_mean as _did_you_mean
from hygge.errors import ConfigError

PROJECT_FILE = "hygge.yml"


def validate(
    model: type[BaseModel],
    data: Any,
    file: Path,
    *,
    flow: str | None = None,
    entity: str | None = None,
    strip_prefix: bool = False,
    origins: Mapping[str, Path] | None = None,
) -> Any:
    """Validate `data`; the first error becomes a ConfigError. `origins` maps merged keys
    (`run_type`, `store.path`, ...) to the file that set them, so the error names that file."""
    try:
        return TypeAdapter(model).validate_python(data)
    except ValidationError as exc:
        error = _best_error(exc.errors())
        # Plain unions put the member's name (e.g. 'str', 'EntitySettings') into the location.
        loc = [str(p) for p in error["loc"] if not _is_union_label(str(p))]
        # Discriminated unions put the tag (e.g. 'sql') into the location; it is not a key.
        if len(loc) >= 2 and loc[0] in ("home", "store") and isinstance(data, dict):
            tag = str((data.get(loc[0]) or {}).get("type"))
            if loc[1] == tag:
                loc.pop(1)
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc.append("type")
        key = ".".join(loc)
        message, hint = _describe(error, model, data, loc)
        if entity is None and len(loc) >= 2 and loc[0] == "entities" and loc[1].isdigit():
            items = data.get("entities") if isinstance(data, dict) else None
            item = items[int(loc[1])] if isinstance(items, list) and int(loc[1]) < len(items) else None
            entity = item.get("name") if isinstance(item, dict) else item if isinstance(item, str) else None
        if origins:
            file = _origin(origins, loc) or file
        raise ConfigError(
            message, hint=hint, file=str(file), flow=flow, entity=entity, field=key or None
        ) from None


_UNION_LABELS = {"str", "EntitySettings", "AzureCredentialConfig"}


def _is_union_label(part: str) -> bool:
    # A union member with a validator is labelled like 'function-after[_complete(), AzureCredentialConfig]'.
    return part in _UNION_LABELS or part.startswith(("function-after[", "function-before[", "function-wrap["))


def _best_error(errors: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The error most worth showing: a typo (unknown key) explains a 'missing' sibling, and a
    mismatch against the `str` member of `str | EntitySettings` is noise when a mapping was given."""

    def rank(error: Mapping[str, Any]) -> int:
        if error["type"] == "extra_forbidden":
            return 0
        if "str" in [str(p) for p in error["loc"]] and error["type"] == "string_type":
            return 2
        return 1

    return min(errors, key=rank)


def _origin(origins: Mapping[str, Path], loc: list[str]) -> Path | None:
    candidates = [".".join(loc[:i]) for i in range(len(loc), 0, -1)]
    if len(loc) == 1 and loc[0] in ("home", "store"):
        candidates.insert(0, f"{loc[0]}.type")
    for candidate in candidates:
        if candidate in origins:
            return origins[candidate]
    return None


def _describe(
    error: Mapping[str, Any], model: type[BaseModel], data: Any, loc: list[str]
) -> tuple[str, str | None]:
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _known_keys(model, data, loc[:-1])
        suggestion = _did_you_mean(loc[-1], known)
        return f"unknown key '{loc[-1]}'", suggestion or (
            f"allowed keys: {', '.join(sorted(known))}" if known else None
        )
    if kind == "missing":
        return "is required but missing", f"add `{loc[-1]}:`" if loc else None
    if kind in ("union_tag_invalid", "literal_error"):
        expected = error.get("ctx", {}).get("expected_tags") or error.get("ctx", {}).get("expected")
        return f"{error['msg']}", f"use one of {expected}" if expected else None
    if kind == "union_tag_not_found":
        return "has no `type`", "set `type:` (for a home: sql or parquet; for a store: parquet or delta)"
    # Validators raise hygge.config.base.Invalid (a ValueError with a fix) where they know one.
    cause = (error.get("ctx") or {}).get("error")
    message = error["msg"].removeprefix("Value error, ")
    return message, getattr(cause, "hint", None) or _type_hint(kind, message, loc)


_TYPE_HINTS = {
    "int": "write a whole number",
    "float": "write a number",
    "bool": "write true or false",
    "string": "write text (quote it if YAML reads it as a number, date or true/false)",
    "list": "write a list, e.g. [a, b] or one `- item` per line",
    "dict": "write a mapping: one `key: value` per line",
    "model": "write a mapping: one `key: value` per line",
}


def _type_hint(kind: str, message: str, loc: list[str]) -> str | None:
    """A fix for pydantic's type and range errors, which carry none of their own."""
    what = f"`{loc[-1]}`" if loc else "the file's top level"
    for prefix, hint in _TYPE_HINTS.items():
        if kind.startswith(f"{prefix}_"):
            return f"{hint} for {what}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"give {what} a value that is {message.removeprefix('Input should be ')}"
    return None


def _known_keys(model: type[BaseModel], data: Any, loc: list[str]) -> list[str]:
    """The field names allowed at `loc` inside `model`, for did-you-mean suggestions."""
    import hygge.config.models as models

    current: Any = model
    node = data
    mapping_key = False  # the next part is a key of a dict field (e.g. a connection's name)
    for part in loc:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit():
            node = node[int(part)]
        if mapping_key:
            mapping_key = False
            continue
        if part.isdigit() or current is None:
            continue
        fld = getattr(current, "model_fields", {}).get(part)
        if fld is None:
            current = None
            continue
        if part in ("home", "store") and isinstance(node, dict):
            table = {
                ("home", "sql"): models.SqlHomeConfig,
                ("home", "parquet"): models.ParquetHomeConfig,
                ("store", "parquet"): models.ParquetStoreConfig,
                ("store", "delta"): models.DeltaStoreConfig,
            }
            current = table.get((part, str(node.get("type"))))
            continue
        mapping_key = getattr(fld.annotation, "__origin__", None) is dict
        current = _model_in(fld.annotation)
    if current is None or not hasattr(current, "model_fields"):
        return []
    return [f.alias or name for name, f in current.model_fields.items()]


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
