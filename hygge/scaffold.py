"""`hygge init`: write a small, valid project to start from."""

from __future__ import annotations

from pathlib import Path

from hygge.errors import ConfigError

FILES = {
    "hygge.yml": """\
name: {name}
flows_dir: flows
options:
  concurrency: 4
  continue_on_error: true
connections:
  source:
    type: postgres          # mssql | postgres | mysql | sqlite
    host: ${{SOURCE_HOST:-localhost}}
    port: 5432
    database: ${{SOURCE_DB:-postgres}}
    user: ${{SOURCE_USER:-postgres}}
    password: ${{SOURCE_PASSWORD:-}}
""",
    "flows/example/flow.yml": """\
home:
  type: sql
  connection: source
  schema: public
store:
  type: delta               # delta | parquet
  path: lake/example
run_type: incremental
watermark:
  primary_key: [id]
  watermark_column: updated_at
entities:
  - customers
""",
    "flows/example/entities/orders.yml": """\
# One file per entity overrides the flow's settings for that entity.
table: orders
watermark:
  primary_key: [id]
  watermark_column: updated_at
  lookback: 300             # re-read 5 minutes below the last maximum for late commits
""",
}


def write_project(directory: Path) -> list[Path]:
    written = []
    for relative in FILES:
        path = directory / relative
        if path.exists():
            raise ConfigError(f"{path} already exists", hint="choose an empty folder", file=str(path))
    for relative, text in FILES.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(name=directory.resolve().name), encoding="utf-8")
        written.append(path)
    return written
