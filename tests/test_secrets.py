"""Planted secrets: a unique value in every credential field (SQL password in parts and in a URL, Azure
account key, SAS, client secret, connection string) must reach no log line, Prefect artifact, log or
state, journal row, exception, CLI or `hygge debug` output, landed file or blob — in plain, URL-encoded
or base64 form — while flows that use them succeed and fail.

Real services throughout: PostgreSQL checks the SQL passwords (pg_hba asks these two roles for one),
Azurite refuses the planted key, SAS and connection string, and the service principal's token request
fails at once because the sandbox cannot resolve the Entra ID authority.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import obstore
import pytest
from bad_inputs import attempt, password_role, sql, write
from prefect.client.orchestration import get_client
from typer.testing import CliRunner

import hygge.prefect.land as land_module
from hygge.cli.main import app
from hygge.journal import Journal
from hygge.storage import Storage
from hygge.storage import objects as storage_objects


@pytest.fixture(scope="module")
def harness(prefect_harness: None) -> None:
    """The session's temporary Prefect API (tests/conftest.py)."""


def _secret(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(8)}"


def planted() -> dict[str, str]:
    """One fresh, unique value per credential field (the SQL password has URL-special characters)."""
    return {
        "PW": _secret("Pw@:/+") + "%x",
        "URL_PW": _secret("Url"),
        "KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "SAS_SIG": _secret("SasSig"),
        "SP": _secret("Sp~"),
        "CS_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    }


def forms(secret: str) -> set[str]:
    """The ways a secret could leak: as is, URL-encoded (both styles) and base64-encoded."""
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        base64.b64encode(secret.encode()).decode(),
    }


def leaks(text: str | bytes, values: dict[str, str]) -> list[str]:
    """The names of the secrets found in `text`, in any form."""
    data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    return [name for name, value in values.items() if any(form.encode() in data for form in forms(value))]


def leak_project(
    root: Path, pg_db: str, azurite: Any, container: str, values: dict[str, str]
) -> dict[str, str]:
    """A project whose secrets come from environment variables (so no project file holds one):
    flows that land from PostgreSQL (parts and URL connections), one whose table is missing, and
    one per Azure credential type on Azurite. Returns the environment to set."""
    template = password_role(pg_db, "hygge_secret_parts", values["PW"])
    password_role(pg_db, "hygge_secret_url", values["URL_PW"])
    database = pg_db.rsplit("/", 1)[1]
    host, port = template.split("@", 1)[1].split("/", 1)[0].split(":")
    sql(pg_db, "CREATE TABLE t (id int PRIMARY KEY, v text)", "INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    sas = f"sv=2022-11-02&ss=b&srt=co&sp=rwdl&se=2030-01-01T00:00:00Z&sig={values['SAS_SIG']}%3D"
    env = {
        "HYGGE_LEAK_PW": values["PW"],
        "HYGGE_LEAK_URL": f"postgresql://hygge_secret_url:{quote(values['URL_PW'], safe='')}@{host}:{port}/{database}",
        "HYGGE_LEAK_KEY": values["KEY"],
        "HYGGE_LEAK_SAS": sas,
        "HYGGE_LEAK_SP": values["SP"],
        "HYGGE_LEAK_CS": f"DefaultEndpointsProtocol=http;AccountName={azurite.account};"
        f"AccountKey={values['CS_KEY']};BlobEndpoint={azurite.blob_endpoint};",
    }
    write(
        root,
        "hygge.yml",
        f"""name: leak
connections:
  parts: {{type: postgres, host: '{host}', port: {port}, database: {database}, user: hygge_secret_parts,
          password: '${{HYGGE_LEAK_PW}}'}}
  url: {{type: postgres, url: '${{HYGGE_LEAK_URL}}'}}
credentials:
  key: {{type: account_key, account_key: '${{HYGGE_LEAK_KEY}}'}}
  sas: {{type: sas, sas_token: '${{HYGGE_LEAK_SAS}}'}}
  sp: {{type: service_principal, tenant_id: 00000000-0000-0000-0000-000000000000, client_id: app,
        client_secret: '${{HYGGE_LEAK_SP}}'}}
  cs: {{type: connection_string, connection_string: '${{HYGGE_LEAK_CS}}'}}
""",
    )
    write(
        root,
        "flows/parts/flow.yml",
        "home: {type: sql, connection: parts}\nstore: {type: parquet, path: lake}\nentities: [t]\n",
    )
    write(
        root,
        "flows/url/flow.yml",
        "home: {type: sql, connection: url}\nstore: {type: delta, path: lake}\nentities: [t]\n",
    )
    write(
        root,
        "flows/missing/flow.yml",
        "home: {type: sql, connection: parts}\nstore: {type: parquet, path: lake}\nentities: [nope]\n",
    )
    for name in ("key", "sas", "sp", "cs"):
        store = {
            "type": "adls",
            "format": "parquet",
            "account": azurite.account,
            "container": container,
            "path": name,
            "credential": name,
        }
        if name != "cs":  # the connection string brings its own endpoint
            store["endpoint"] = azurite.blob_endpoint
        write(
            root,
            f"flows/az_{name}/flow.yml",
            {"home": {"type": "sql", "connection": "parts"}, "store": store, "entities": ["t"]},
        )
    return env


@pytest.fixture
def project(tmp_path, pg_db, azure_container, monkeypatch) -> tuple[Path, dict[str, str], Any, str]:
    """The leak project with its secrets in the environment and short object_store retries."""
    info, container = azure_container
    values = planted()
    env = leak_project(tmp_path / "p", pg_db, info, container, values)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HYGGE_TASK_RETRY_DELAY_SECONDS", "0")  # `hygge go` retries transient failures
    monkeypatch.setattr(
        storage_objects, "_RETRY", {"max_retries": 1, "retry_timeout": dt.timedelta(seconds=5)}
    )
    return tmp_path / "p", values, info, container


EXPECTED = {
    "parts.t": "success",
    "url.t": "success",
    "missing.nope": "fail",
    "az_key.t": "fail",
    "az_sas.t": "fail",
    "az_sp.t": "fail",
    "az_cs.t": "fail",
}


class Checks:
    """Counts every place searched, and the leaks found there."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.places = 0
        self.comparisons = 0  # secret forms searched for, summed over places
        self.found: list[str] = []

    def __call__(self, where: str, text: str | bytes) -> None:
        self.places += 1
        self.comparisons += sum(len(forms(value)) for value in self.values.values())
        self.found += [f"{name} in {where}" for name in leaks(text, self.values)]


def everything_on_disk(check: Checks, root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            check(f"file {path.relative_to(root)}", path.read_bytes())
    for folder in root.rglob(".hygge_journal"):
        for entry in Journal(Storage.local(folder)).entries():
            check(f"journal row {entry.flow}.{entry.entity}", json.dumps(vars(entry), default=str))


def everything_in_azurite(check: Checks, info: Any, container: str) -> None:
    from obstore.store import AzureStore

    store = AzureStore(container_name=container, config=info.storage_options)
    for chunk in obstore.list(store):
        for item in chunk:
            check(f"blob {item['path']}", bytes(obstore.get(store, item["path"]).bytes()))


def error_chain(error: BaseException | None) -> str:
    parts = []
    while error is not None:
        parts += [str(error), repr(error)]
        error = error.__cause__ or error.__context__
    return "\n".join(parts)


def test_no_planted_secret_leaks_from_cli_runs_debug_journal_or_files(project, caplog) -> None:
    """`hygge go`, `hygge debug`, `hygge journal show`, every exception, journal row, landed file and
    blob: two flows land (parts and URL credentials), five fail (missing table, four Azure credentials)."""
    root, values, info, container = project
    caplog.set_level(logging.DEBUG)
    check = Checks(values)
    cli = CliRunner()

    go = cli.invoke(app, ["go", "--project", str(root)])
    assert go.exit_code == 1, go.output
    check("hygge go output", go.output)
    for key in EXPECTED:
        assert key in go.output
    assert "2 PASS" in go.output and "5 FAIL" in go.output, go.output

    direct = attempt(root)
    assert {f"{r.flow}.{r.entity}": r.status for r in direct.results} == EXPECTED
    for result in direct.results:
        check(f"result {result.key}", result.message + error_chain(result.error))
        assert "RetryError" not in result.message, result.message  # object_store's Debug text is cut
    assert "127.0.0.1" in direct.result("nope").message, "the error should still say where it failed"

    debug = cli.invoke(app, ["debug", "--project", str(root)])
    assert debug.exit_code == 1 and "connection parts: postgres" in debug.output, debug.output
    check("hygge debug output", debug.output)
    shown = cli.invoke(app, ["journal", "show", "--project", str(root)])
    check("hygge journal show output", shown.output)
    check("log records", caplog.text)
    everything_on_disk(check, root)
    everything_in_azurite(check, info, container)
    assert not check.found, check.found
    if os.environ.get("HYGGE_SHOW_COUNTS"):
        print(f"\nsecret checks: {check.places} places, {check.comparisons} comparisons")
    assert check.places >= 20


def _all(read: Any) -> list[Any]:
    items, offset = [], 0
    while True:
        page = read(offset)
        items += page
        if len(page) < 200:
            return items
        offset += len(page)


def test_no_planted_secret_leaks_from_prefect_logs_artifacts_or_states(
    harness, project, caplog, monkeypatch
) -> None:
    """The `land` flow over the same project: the flow's error, every log the API stored, every
    artifact, flow and task run state message, the journal and the landing zone."""
    root, values, info, container = project
    task = land_module.land_entity_task.with_options(
        retries=1, retry_delay_seconds=0, retry_jitter_factor=None
    )
    monkeypatch.setattr(land_module, "land_entity_task", task)
    caplog.set_level(logging.DEBUG)
    state = land_module.land(project=str(root), return_state=True)
    assert state.is_failed()
    check = Checks(values)
    with pytest.raises(Exception) as info_error:
        state.result()
    check("flow error", error_chain(info_error.value))
    assert "nope" in str(info_error.value)
    time.sleep(2)  # logs reach the API in batches, a moment after the run
    with get_client(sync_client=True) as client:
        logs = _all(lambda offset: client.read_logs(limit=200, offset=offset))
        artifacts = _all(lambda offset: client.read_artifacts(limit=200, offset=offset))
        flow_runs = client.read_flow_runs(limit=200)
        task_runs = client.read_task_runs(limit=200)
    assert any("landing parts.t" in log.message for log in logs), "hygge's task logs were not read"
    run_id = state.state_details.flow_run_id  # the API is shared with other modules' runs
    table = next(a for a in artifacts if a.key == "hygge-land" and a.flow_run_id == run_id)
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert {r["entity"]: r["status"] for r in rows} == EXPECTED
    check("Prefect logs", "\n".join(log.message for log in logs))
    for artifact in artifacts:
        check(f"artifact {artifact.key}", json.dumps(artifact.data, default=str) + str(artifact.description))
    for run in [*flow_runs, *task_runs]:
        check(
            f"state of {run.name}",
            f"{run.state and run.state.message} {run.parameters if hasattr(run, 'parameters') else ''}",
        )
    check("log records", caplog.text)
    everything_on_disk(check, root)
    everything_in_azurite(check, info, container)
    assert not check.found, check.found
    if os.environ.get("HYGGE_SHOW_COUNTS"):
        print(f"\nsecret checks: {check.places} places, {check.comparisons} comparisons")


@pytest.mark.slow
def test_wrong_sql_password_is_masked(tmp_path, pg_db) -> None:
    """A password PostgreSQL refuses (connectorx reports it after its 30 s connect time-out): the
    error names the place and is permanent, and the password is in no form in it or on disk."""
    password = _secret("Wrong@:/+")
    template = password_role(pg_db, "hygge_secret_parts", _secret("Right"))
    url = template.format(password=quote(password, safe=""), database=pg_db.rsplit("/", 1)[1])
    write(tmp_path, "hygge.yml", {"name": "p", "connections": {"db": {"type": "postgres", "url": url}}})
    write(
        tmp_path,
        "flows/f/flow.yml",
        "home: {type: sql, connection: db}\nstore: {type: parquet, path: lake}\nentities: [t]\n",
    )
    out = attempt(tmp_path)
    assert out.error is not None and not out.error.transient
    assert "authentication failed" in str(out.error)
    check = Checks({"PW": password})
    check("error", error_chain(out.error))
    everything_on_disk(check, tmp_path / "lake")
    assert not check.found, check.found
    if os.environ.get("HYGGE_SHOW_COUNTS"):
        print(f"\nsecret checks: {check.places} places, {check.comparisons} comparisons")
