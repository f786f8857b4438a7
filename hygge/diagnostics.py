"""`hygge debug`: is the configuration usable? Connections answer, stores and journals are writable."""

from __future__ import annotations

from dataclasses import dataclass

from hygge.config.loader import Project
from hygge.config.models import SqlHomeConfig
from hygge.errors import HyggeError
from hygge.journal import new_id
from hygge.redact import redact
from hygge.storage import Storage
from hygge.stores import store_root


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def check_connection(project: Project, name: str) -> Check:
    """Which engine and sign-in a connection uses, whether its driver loads, and whether it answers."""
    from hygge.homes.sql import connection as conns
    from hygge.homes.sql.engines import engine_for

    conn = project.config.connections[name]
    label = f"connection {name}"
    how = conns.describe_engine(conn)
    try:
        if conn.type == "sqlite":
            path = conns.sqlite_path(conn, project.root)
            if not path.is_file():
                return Check(label, False, f"{path} does not exist")
        engine = engine_for(conn, project.root)
        driver = ""
        if engine.name == "mssql-python":
            from hygge.homes.sql.mssql_python import driver_status

            loads, driver = driver_status()
            if not loads:
                return Check(label, False, f"{conns.describe(conn)}; {how}; {driver}")
            driver = f"; {driver}"
        engine.table("SELECT 1 AS ok")
        return Check(label, True, f"{conns.describe(conn)} answers; {how}{driver}")
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        text = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, conns.secrets_of(conn))
        return Check(label, False, f"{conns.describe(conn)}; {how}: {text}")


def check_writable(name: str, location: Storage) -> Check:
    probe = f"_hygge_probe_{new_id()}"
    try:
        location.put(probe, b"probe", create_only=True)
        location.list()
        location.delete(probe)
        return Check(
            name, True, f"{location.describe()} is writable (list, write, delete){_credential(location)}"
        )
    except Exception as exc:
        from hygge.redact import redact

        return Check(
            name, False, f"{location.describe()}{_credential(location)}: {redact(str(exc), location.secrets)}"
        )


def _credential(location: Storage) -> str:
    return f"; credential: {location.credential.kind}" if location.credential else ""


def check_project(project: Project) -> list[Check]:
    checks = []
    used = sorted(
        {
            e.home.connection
            for f in project.flows.values()
            for e in f.entities
            if isinstance(e.home, SqlHomeConfig)
        }
    )
    checks.extend(check_connection(project, name) for name in used)
    roots: dict[str, Storage] = {}
    for flow in project.flows.values():
        for entity in flow.entities:
            try:
                root = store_root(entity, project.root)
            except HyggeError as exc:
                checks.append(Check(f"store of {entity.flow}.{entity.name}", False, str(exc)))
                continue
            roots.setdefault(root.describe(), root)
    checks.extend(check_writable(f"store {uri}", root) for uri, root in roots.items())
    return checks
