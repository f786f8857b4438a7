"""Building blocks of the bad-input catalogue (tests/test_bad_inputs.py): project writers, an attempt
that does what `hygge go` does, and what "nothing became visible" means for a landing folder."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml

from hygge.config import load_project, parse_var
from hygge.coordinator import check_run_type, run_entities
from hygge.errors import HyggeError
from hygge.journal import Journal
from hygge.storage import Storage

# Folders under a landing root that readers never see: hygge's own bookkeeping.
HIDDEN = (".hygge_journal", "_hygge", "_hygge_staging", "_hygge_commits")


@dataclass
class Outcome:
    """What an attempt produced: the first error (raised or recorded), and the per-entity results."""

    error: HyggeError | None
    results: list[Any] = field(default_factory=list)

    def result(self, entity: str) -> Any:
        return next(r for r in self.results if r.entity == entity)


def attempt(
    root: Path,
    *,
    flows: Sequence[str] = (),
    entities: Sequence[str] = (),
    incremental: bool = False,
    full_drop: bool = False,
    variables: Sequence[str] = (),
) -> Outcome:
    """What `hygge go` does, minus the console: check flags, load, select, land; never raises."""
    try:
        run_type = check_run_type(incremental, full_drop)
        parsed = dict(parse_var(v) for v in variables)
        project = load_project(root, variables=parsed)
        chosen = project.select(list(flows), list(entities))
    except HyggeError as exc:
        return Outcome(exc)
    summary = run_entities(project, chosen, run_type=run_type, concurrency=1)
    failed = [r for r in summary.results if r.error is not None]
    return Outcome(failed[0].error if failed else None, summary.results)


def write(root: Path, relative: str, body: str | Mapping[str, Any]) -> Path:
    """Write one project file (text as given, a mapping as YAML)."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body if isinstance(body, str) else yaml.safe_dump(dict(body), allow_unicode=True))
    return path


def pg_project(
    root: Path,
    url: str,
    flow: Mapping[str, Any] | None = None,
    *,
    entities: Sequence[Any] = ("t",),
    store: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """hygge.yml with connection `db` (the PostgreSQL at `url`) and flows/f/flow.yml."""
    write(
        root,
        "hygge.yml",
        {"name": "p", "connections": {"db": {"type": "postgres", "url": url}}, **(extra or {})},
    )
    body: dict[str, Any] = {
        "home": {"type": "sql", "connection": "db"},
        "store": dict(store or {"type": "delta", "path": "lake"}),
        "entities": list(entities),
    }
    body.update(flow or {})
    write(root, "flows/f/flow.yml", body)
    return root


def plain_project(root: Path, flow_text: str = "", hygge_text: str = "") -> Path:
    """A project on a SQLite file (no server): for cases that fail before any source is read."""
    write(root, "hygge.yml", hygge_text or "name: p\nconnections:\n  db: {type: sqlite, path: src.sqlite}\n")
    write(
        root,
        "flows/f/flow.yml",
        flow_text or "home: {type: sql, connection: db}\nstore: {type: delta, path: lake}\nentities: [t]\n",
    )
    return root


def sql(url: str, *statements: str | tuple[str, Sequence[Any]]) -> None:
    """Run statements on the PostgreSQL at `url` (autocommit)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            if isinstance(statement, tuple):
                conn.cursor().executemany(statement[0], statement[1])
            else:
                conn.execute(statement)


def pg_tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema='public'")
        return {r[0] for r in rows}


def visible_files(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file a reader of the landing folder could see, with its size and mtime."""
    if not folder.exists():
        return {}
    seen = {}
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part in HIDDEN or part.startswith("_hygge") for part in relative.parts):
            stat = path.stat()
            seen[str(relative)] = (stat.st_size, stat.st_mtime_ns)
    return seen


def journal_successes(root: Path) -> int:
    """Success rows in every local journal under the project."""
    count = 0
    for folder in root.rglob(".hygge_journal"):
        count += sum(e.status == "success" for e in Journal(Storage.local(folder)).entries())
    return count


Setup = Callable[[Path, str], dict[str, Any]]


def password_role(server_url: str, role: str, password: str) -> str:
    """Create `role` with `password` on the test server and make the server check it (the server
    trusts everyone else); returns a URL template with `{password}` and `{database}` to fill in.

    Skips the test when the server's pg_hba.conf cannot be edited (an external HYGGE_TEST_PG_URL)."""
    import pytest
    from psycopg import sql as q

    with psycopg.connect(server_url, autocommit=True) as conn:
        hba = Path(conn.execute("SHOW hba_file").fetchone()[0])
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        statement = (
            "ALTER ROLE {} LOGIN SUPERUSER PASSWORD {}"
            if exists
            else "CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}"
        )
        conn.execute(q.SQL(statement).format(q.Identifier(role), q.Literal(password)))
        try:
            text = hba.read_text()
            line = f"host all {role} 127.0.0.1/32 scram-sha-256\n"
            if line not in text:
                hba.write_text(line + text)
                conn.execute("SELECT pg_reload_conf()")
        except OSError:
            pytest.skip("the test server's pg_hba.conf cannot be edited")
    from urllib.parse import urlsplit

    parts = urlsplit(server_url)
    return f"postgresql://{role}:{{password}}@{parts.hostname}:{parts.port}/{{database}}"
