"""Load a project from disk: read YAML, expand `${VAR}`, validate, merge layers into entities.

Layers, later winning: flow.yml (home, store, run_type, watermark) → flow `defaults` → the entity's
item in `entities:` → flows/<flow>/entities/<entity>.yml. Errors name the file, flow, entity and key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from hygge.config.files import did_you_mean as _did_you_mean
from hygge.config.files import read_yaml as _read_yaml
from hygge.config.models import (
    EntitySettings,
    FlowConfig,
    ProjectConfig,
    ResolvedEntity,
)
from hygge.config.validation import validate
from hygge.errors import ConfigError, HyggeError

PROJECT_FILE = "hygge.yml"


@dataclass
class Flow:
    name: str
    file: Path
    config: FlowConfig
    entities: list[ResolvedEntity] = field(default_factory=list)

    @property
    def concurrency(self) -> int | None:
        return self.config.concurrency


@dataclass
class Project:
    root: Path
    config: ProjectConfig
    flows: dict[str, Flow]

    def select(self, flows: Sequence[str] = (), entities: Sequence[str] = ()) -> list[ResolvedEntity]:
        """Entities chosen by flow names and `flow.entity` names (both empty: everything)."""
        for name in flows:
            if name not in self.flows:
                raise ConfigError(
                    f"no flow named '{name}'",
                    hint=_did_you_mean(name, self.flows) or f"one of: {', '.join(self.flows)}",
                    file=str(self.root / PROJECT_FILE),
                )
        wanted = set(entities)
        for item in wanted:
            flow_name, _, entity_name = item.partition(".")
            flow = self.flows.get(flow_name)
            if flow is None or entity_name not in {e.name for e in flow.entities}:
                raise ConfigError(
                    f"no entity '{item}' (write it as flow.entity)",
                    hint=_did_you_mean(
                        item, [f"{f.name}.{e.name}" for f in self.flows.values() for e in f.entities]
                    ),
                    file=str(self.root / PROJECT_FILE),
                )
        chosen: list[ResolvedEntity] = []
        for flow in self.flows.values():
            for entity in flow.entities:
                if (not flows and not wanted) or flow.name in flows or f"{flow.name}.{entity.name}" in wanted:
                    chosen.append(entity)
        return chosen


def find_project_root(start: Path) -> Path:
    for candidate in [start, *start.parents]:
        if (candidate / PROJECT_FILE).is_file():
            return candidate
    raise ConfigError(
        f"no {PROJECT_FILE} in {start} or any parent folder",
        hint="run `hygge init <dir>` or pass --project",
    )


def load_project(
    root: Path | str,
    *,
    variables: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Project:
    """Read and validate the whole project; `variables` are `flow.<f>.<key>` overrides."""
    root = Path(root).resolve()
    if not (root / PROJECT_FILE).is_file():
        root = find_project_root(root)
    env = os.environ if env is None else env
    project_file = root / PROJECT_FILE
    raw_project = _read_yaml(project_file, env)
    for section in ("connections", "credentials"):
        entries = raw_project.get(section) if isinstance(raw_project, dict) else None
        for name, value in (entries or {}).items():
            entries[name] = _from_block(value, project_file, field=f"{section}.{name}")
    project = validate(ProjectConfig, raw_project, project_file)
    inline = _named_credential(project.journal, project, "journal.credential", {"file": str(project_file)})
    if inline is not None:
        project = project.model_copy(
            update={"journal": project.journal.model_copy(update={"credential": inline})}
        )
    overrides = _flow_overrides(variables or {}, project_file)
    flows_dir = root / project.flows_dir
    flows: dict[str, Flow] = {}
    if flows_dir.is_dir():
        _refuse_unread(flows_dir)
        for flow_file in sorted(flows_dir.glob("*/flow.yml")):
            name = flow_file.parent.name
            raw = _read_yaml(flow_file, env, flow=name)
            if isinstance(raw, dict) and "store" in raw:
                raw["store"] = _from_block(raw["store"], flow_file, field="store", flow=name)
            for key, value in overrides.pop(name, {}).items():
                _set_path(raw, key, value)
            flow = Flow(name, flow_file, validate(FlowConfig, raw, flow_file, flow=name))
            flow.entities = _resolve_entities(flow, project, env)
            flows[name] = flow
    if overrides:
        unknown = next(iter(overrides))
        raise ConfigError(
            f"--var names flow '{unknown}', which does not exist",
            hint=_did_you_mean(unknown, flows) or f"one of: {', '.join(flows) or '(no flows)'}",
            file=str(project_file),
        )
    return Project(root=root, config=project, flows=flows)


def _refuse_unread(flows_dir: Path) -> None:
    """A YAML file under flows/ that hygge would not read (a misspelt `flow.yaml`, a flow folder without
    its flow.yml, a file beside flow.yml) is an error, not silently ignored. Files named with a leading
    `_` or `.` are left alone (templates, editor files); a folder with a flow.yml is a flow whatever
    its name."""
    for path in sorted([*flows_dir.rglob("*.yml"), *flows_dir.rglob("*.yaml")]):
        parts = path.relative_to(flows_dir).parts
        if path.name.startswith(("_", ".")):
            continue
        read = (len(parts) == 2 and parts[1] == "flow.yml") or (
            len(parts) == 3 and parts[1] == "entities" and (flows_dir / parts[0] / "flow.yml").is_file()
        )
        if not read:
            raise ConfigError(
                f"{'/'.join(parts)} in {flows_dir.name}/ is not a file hygge reads",
                hint="a flow is <flow>/flow.yml and its entities <flow>/entities/<entity>.yml; move or "
                "rename the file, or start its name with '_' to keep it beside them unread",
                file=str(path),
            )


def _resolve_entities(flow: Flow, project: ProjectConfig, env: Mapping[str, str]) -> list[ResolvedEntity]:
    layers: dict[str, list[tuple[Path, EntitySettings]]] = {}
    order: list[str] = []

    def add(name: str, file: Path, settings: EntitySettings) -> None:
        if name not in layers:
            layers[name] = []
            order.append(name)
        layers[name].append((file, settings))

    for index, item in enumerate(flow.config.entities):
        settings = EntitySettings(name=item) if isinstance(item, str) else item
        if not settings.name:
            raise ConfigError(
                "an entity in `entities:` has no name",
                hint="give it `name:`",
                file=str(flow.file),
                flow=flow.name,
                field=f"entities[{index}]",
            )
        add(settings.name, flow.file, settings)
    entity_dir = flow.file.parent / "entities"
    if entity_dir.is_dir():
        for entity_file in sorted([*entity_dir.glob("*.yml"), *entity_dir.glob("*.yaml")]):
            raw = _read_yaml(entity_file, env, flow=flow.name, entity=entity_file.stem) or {}
            settings = validate(EntitySettings, raw, entity_file, flow=flow.name, entity=entity_file.stem)
            add(settings.name or entity_file.stem, entity_file, settings)

    resolved = []
    for name in order:
        file, merged, origins = _merge(flow, name, layers[name])
        if not merged.pop("enabled", True):
            continue
        watermark = merged["watermark"] or {}
        if (
            merged["run_type"] == "incremental"
            and not merged.get("feed")
            and not watermark.get("watermark_column")
        ):
            raise ConfigError(
                "run_type incremental needs a watermark column",
                hint="set watermark.watermark_column (e.g. `watermark: {watermark_column: updated_at}`), "
                "or use run_type: full_drop",
                file=str(origins.get("run_type", file)),
                flow=flow.name,
                entity=name,
                field="watermark.watermark_column",
            )
        if merged["home"].get("type") == "sql" and "connection" in merged["home"]:
            connection = merged["home"]["connection"]
            if connection not in project.connections:
                raise ConfigError(
                    f"unknown connection '{connection}'",
                    hint=_did_you_mean(connection, project.connections)
                    or "define it under `connections:` in hygge.yml",
                    file=str(origins.get("home.connection", file)),
                    flow=flow.name,
                    entity=name,
                    field="home.connection",
                )
        entity = validate(
            ResolvedEntity,
            merged,
            file,
            flow=flow.name,
            entity=name,
            strip_prefix=True,
            origins=origins,
        )
        updates = {}
        for part in ("home", "store"):
            settings = getattr(entity, part)
            where = {"file": str(origins.get(f"{part}.credential", file)), "flow": flow.name, "entity": name}
            inline = _named_credential(settings, project, f"{part}.credential", where)
            if inline is not None:
                updates[part] = settings.model_copy(update={"credential": inline})
        resolved.append(entity.model_copy(update=updates) if updates else entity)
    return resolved


def _named_credential(settings: Any, project: ProjectConfig, field: str, where: dict[str, str]) -> Any:
    """Replace a credential given by name with the settings it names (None: nothing to replace)."""
    name = getattr(settings, "credential", None)
    if not isinstance(name, str):
        return None
    if name not in project.credentials:
        raise ConfigError(
            f"unknown credential '{name}'",
            hint=_did_you_mean(name, project.credentials) or "define it under `credentials:` in hygge.yml",
            field=field,
            **where,
        )
    return project.credentials[name]


def _merge(
    flow: Flow, name: str, layers: list[tuple[Path, EntitySettings]]
) -> tuple[Path, dict, dict[str, Path]]:
    """Merge the layers; also returns which file set each key (`run_type`, `store.path`, ...)."""
    cfg = flow.config
    merged: dict[str, Any] = {
        "flow": flow.name,
        "name": name,
        "home": dict(cfg.home),
        "store": dict(cfg.store),
        "run_type": cfg.run_type,
        "on_drift": cfg.on_drift,
        "watermark": cfg.watermark.model_dump() if cfg.watermark else None,
        "deletes": cfg.deletes.model_dump() if cfg.deletes else None,
        "feed": cfg.feed.model_dump() if cfg.feed else None,
        "columns": {},
        "enabled": True,
    }
    origins: dict[str, Path] = {
        key: flow.file for key in ("home", "store", "run_type", "watermark", "deletes", "feed")
    }
    for key in ("home", "store", "watermark", "deletes", "feed"):
        for sub in merged[key] or {}:
            origins[f"{key}.{sub}"] = flow.file
    last_file = flow.file
    for file, settings in [(flow.file, cfg.defaults), *layers]:
        data = settings.model_dump(exclude_unset=True, by_alias=True)
        data.pop("name", None)
        for key, value in data.items():
            # Mappings merge key by key, so an entity can change one home setting or add a
            # primary key to the flow's watermark column without repeating the rest.
            if key in ("home", "store", "columns", "watermark", "deletes", "feed") and value is not None:
                merged[key] = {**(merged[key] or {}), **value}
                for sub in value:
                    origins[f"{key}.{sub}"] = file
            else:
                merged[key] = value
            origins[key] = file
    for file, _ in layers:
        last_file = file
    merged["file"] = str(last_file)
    return last_file, merged, origins


def _from_block(value: Any, file: Path, *, field: str, flow: str | None = None) -> Any:
    """`{block: <type>/<name>}` → the settings that Prefect block holds (needs a Prefect API); any
    other value is returned as it is, so plain YAML with environment variables keeps working."""
    if not (isinstance(value, dict) and set(value) == {"block"}):
        return value
    from hygge.blocks import resolve  # Prefect is needed only when a project names a block

    try:
        resolved = resolve(str(value["block"]))
    except HyggeError as exc:
        raise exc.with_context(file=str(file), flow=flow, field=field) from None
    if isinstance(resolved, BaseModel):
        return resolved.model_dump(by_alias=True, exclude_none=True)
    return resolved


def _flow_overrides(variables: Mapping[str, Any], project_file: Path) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for key, value in variables.items():
        parts = key.split(".", 2)
        if len(parts) != 3 or parts[0] != "flow":
            raise ConfigError(
                f"--var '{key}' must look like flow.<flow>.<key>=value",
                hint="e.g. --var flow.sales.run_type=incremental",
                file=str(project_file),
            )
        result.setdefault(parts[1], {})[parts[2]] = value
    return result


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def parse_var(text: str) -> tuple[str, Any]:
    """`flow.f.key=value` → (key, value); the value keeps its YAML type (1 → int, true → bool)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"--var '{text}' must look like flow.<flow>.<key>=value")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value
