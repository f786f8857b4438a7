"""Project configuration: models, `${VAR}` expansion and the loader."""

from hygge.config.loader import Flow, Project, load_project, parse_var
from hygge.config.models import ConnectionConfig, ResolvedEntity

__all__ = ["ConnectionConfig", "Flow", "Project", "ResolvedEntity", "load_project", "parse_var"]
