"""Offline checks of infra/: the ACI work-pool job template against prefect-azure's worker, the
Dockerfile's key properties, the dependency lock, and the Terraform's shape.

Nothing here contacts Azure, Docker or a Prefect API. Linters (hadolint, checkov, terraform fmt)
run in .ci/infra-checks.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import tomllib
import uuid
from pathlib import Path
from unittest.mock import MagicMock

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from prefect.client.schemas.objects import FlowRun
from prefect.server.schemas.actions import WorkPoolCreate
from prefect.utilities.schema_tools import validate
from prefect_azure.workers.container_instance import (
    AzureContainerJobConfiguration,
    AzureContainerVariables,
    AzureContainerWorker,
)

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
TF = INFRA / "terraform"
TEMPLATE_PATH = INFRA / "aci-job-template.json"


@pytest.fixture(scope="module")
def template() -> dict:
    return json.loads(TEMPLATE_PATH.read_text())


def _defaults(template: dict) -> dict:
    return {k: v["default"] for k, v in template["variables"]["properties"].items() if "default" in v}


def _build_configuration(template: dict, values: dict | None = None) -> AzureContainerJobConfiguration:
    """What the worker does for a flow run: template + job variables -> configuration -> ARM template.

    A stand-in client is passed so no Prefect API (or ephemeral server) is needed; the template has
    no block or variable references for it to resolve.
    """
    client = MagicMock(name="prefect-client")
    config = asyncio.run(
        AzureContainerJobConfiguration.from_template_and_values(template, values or {}, client=client)
    )
    assert not client.method_calls, "the template should need no Prefect API look-ups"
    flow_run = FlowRun(id=uuid.uuid4(), name="calm-otter", flow_id=uuid.uuid4())
    config.prepare_for_flow_run(flow_run)
    return config


# --- the ACI work-pool base job template -------------------------------------------------------


def test_template_has_the_workers_shape(template):
    default = AzureContainerWorker.get_default_base_job_template()
    assert set(template) == {"job_configuration", "variables"}
    assert set(template["job_configuration"]) == set(default["job_configuration"])
    schema_fields = set(AzureContainerVariables.model_json_schema()["properties"])
    assert set(template["variables"]["properties"]) == schema_fields
    # Every placeholder is declared, as the Prefect server checks on `work-pool create`.
    pool = WorkPoolCreate(name="hygge-aci", type=AzureContainerWorker.type, base_job_template=template)
    assert pool.base_job_template == template
    # Same variable types as the worker's own schema (only defaults and descriptions differ).
    for name, spec in default["variables"]["properties"].items():
        ours = template["variables"]["properties"][name]
        for key in ("type", "anyOf", "format", "additionalProperties"):
            assert ours.get(key) == spec.get(key), (name, key)
    assert template["variables"]["definitions"] == default["variables"]["definitions"]


def test_template_defaults_validate_against_the_variables_schema(template):
    defaults = _defaults(template)
    validate(defaults, template["variables"], raise_on_error=True, preprocess=True)
    # ...and against the worker's own variable model.
    AzureContainerVariables.model_validate(defaults)


def test_template_hygge_defaults(template):
    d = _defaults(template)
    assert d["cpu"] == 2
    assert d["memory"] == 4
    assert d["env"] == {"HYGGE_PROJECT": "/app"}
    assert d["image"].endswith(".azurecr.io/hygge:latest")
    assert d["resource_group_name"] and d["subscription_id"]
    assert len(d["identities"]) == 1 and "/userAssignedIdentities/" in d["identities"][0]
    assert d["image_registry"] == {"registry_url": d["image"].split("/")[0], "identity": d["identities"][0]}
    assert d["entrypoint"] == ""


def test_template_builds_a_container_group(template):
    config = _build_configuration(template)
    d = _defaults(template)
    assert config.cpu == 2 and config.memory == 4
    assert config.subscription_id.get_secret_value() == d["subscription_id"]
    assert config.resource_group_name == d["resource_group_name"]

    group = config.arm_template["resources"][0]
    assert group["type"] == "Microsoft.ContainerInstance/containerGroups"
    assert group["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {d["identities"][0]: {}}}
    assert group["properties"]["imageRegistryCredentials"] == [
        {"server": d["image_registry"]["registry_url"], "identity": d["identities"][0]}
    ]
    container = group["properties"]["containers"][0]["properties"]
    assert container["image"] == d["image"]
    # No entrypoint wrapper: the hygge image runs the worker's command as is.
    assert container["command"] == ["prefect", "flow-run", "execute"]
    assert container["resources"]["requests"] == {"cpu": 2.0, "memoryInGB": 4.0}
    env = {e["name"]: e.get("value", e.get("secureValue")) for e in container["environmentVariables"]}
    assert env["HYGGE_PROJECT"] == "/app"
    assert "PREFECT__FLOW_RUN_ID" in env


def test_terraform_outputs_as_job_variables(template):
    """The `aci_job_variables` terraform output, passed as deployment job variables, is accepted."""
    sub = "11111111-2222-3333-4444-555555555555"
    ident = f"/subscriptions/{sub}/resourceGroups/rg-acme-prod/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-acme-prod-aci"
    values = {
        "image": "acracmeprod.azurecr.io/hygge:1.2.3",
        "resource_group_name": "rg-acme-prod",
        "subscription_id": sub,
        "identities": [ident],
        "image_registry": {"registry_url": "acracmeprod.azurecr.io", "identity": ident},
        "env": {"HYGGE_PROJECT": "/app", "AZURE_CLIENT_ID": "c1d2"},
    }
    assert set(values) == _terraform_job_variable_keys()
    validate(values, template["variables"], raise_on_error=True, preprocess=True, ignore_required=True)
    config = _build_configuration(template, values)
    group = config.arm_template["resources"][0]
    container = group["properties"]["containers"][0]["properties"]
    assert container["image"] == "acracmeprod.azurecr.io/hygge:1.2.3"
    assert list(group["identity"]["userAssignedIdentities"]) == [ident]
    env = {e["name"]: e.get("value") for e in container["environmentVariables"]}
    assert env["AZURE_CLIENT_ID"] == "c1d2" and env["HYGGE_PROJECT"] == "/app"


# --- Dockerfile ----------------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    text = (INFRA / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_dockerfile_base_is_pinned_slim_python_311():
    bases = [rest.split()[0] for op, rest in _dockerfile() if op == "FROM"]
    assert bases
    for base in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base


def test_dockerfile_runs_as_non_root():
    users = [rest for op, rest in _dockerfile() if op == "USER"]
    assert users, "no USER instruction"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    # USER comes after the last instruction that needs root.
    ops = [op for op, _ in _dockerfile()]
    assert max(i for i, op in enumerate(ops) if op == "RUN") < max(
        i for i, op in enumerate(ops) if op == "USER"
    )


def test_dockerfile_bakes_in_no_secrets():
    secretish = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|CONNECTION_STRING|CREDENTIAL", re.I)
    for op, rest in _dockerfile():
        if op in {"ENV", "ARG"}:
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", rest) or [rest.split()[0]]
            for name in names:
                assert not secretish.search(name), f"{op} {name} looks like a secret"
    ignored = (ROOT / ".dockerignore").read_text().split()
    for pattern in (".git", ".env", "**/*.tfstate", "**/*.tfvars", ".hygge_demo"):
        assert pattern in ignored


def test_dockerfile_project_layout_and_lock():
    instrs = _dockerfile()
    env = " ".join(rest for op, rest in instrs if op == "ENV")
    assert "HYGGE_PROJECT=/app" in env
    assert [rest for op, rest in instrs if op == "WORKDIR"][-1] == "/app"
    copies = " ".join(rest for op, rest in instrs if op == "COPY")
    assert "hygge.yml" in copies and "flows" in copies
    assert any("--constraint /opt/build/requirements.lock" in rest for op, rest in instrs if op == "RUN")
    assert not any(op == "ENTRYPOINT" for op, _ in instrs)
    # Every COPY source from the build context exists.
    for op, rest in instrs:
        if op == "COPY" and "--from=" not in rest:
            sources = [s for s in rest.split()[:-1] if not s.startswith("--")]
            for src in sources:
                assert (ROOT / src).exists(), src


def test_lock_pins_every_runtime_requirement():
    pins = {}
    for line in (INFRA / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        req = Requirement(dep)
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} missing from infra/requirements.lock (run python infra/lock.py)"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"lock pins {name}=={pins[name]}, pyproject wants {req.specifier}"
        )
    for test_only in ("pytest", "ruff", "sqlglot"):  # psycopg is a runtime dependency (logical decoding)
        assert test_only not in pins


# --- Terraform -----------------------------------------------------------------------------------


def _tf(name: str) -> str:
    return (TF / name).read_text()


def _blocks(text: str, kind: str) -> dict[str, str]:
    """name -> body of each top-level `kind "name" {...}` block (terraform fmt'ed files)."""
    return dict(re.findall(rf'^{kind} "([^"]+)" \{{\n(.*?)^\}}', text, re.M | re.S))


def _resource(text: str, kind: str, name: str) -> str:
    m = re.search(rf'^resource "{kind}" "{name}" \{{\n(.*?)^\}}', text, re.M | re.S)
    assert m, f"resource {kind}.{name} not found"
    return m.group(1)


def _terraform_job_variable_keys() -> set[str]:
    body = _blocks(_tf("outputs.tf"), "output")["aci_job_variables"]
    return set(re.findall(r"^    (\w+)\s+=", body, re.M))


def test_terraform_variables_are_described_and_validated():
    variables = _blocks(_tf("variables.tf"), "variable")
    for name, body in variables.items():
        assert re.search(r'description\s+= "\S', body), f"variable {name} has no description"
        assert "type" in body, name
    for name in ("subscription_id", "location", "name_prefix", "storage_account_id", "prefect_api_key"):
        assert "validation {" in variables[name], f"variable {name} has no validation"
    assert "sensitive   = true" in variables["prefect_api_key"]
    assert "default" not in variables["prefect_api_key"]


def test_terraform_resources_and_outputs():
    main = _tf("main.tf")
    resources = {(kind, name) for kind, name in re.findall(r'^resource "(\w+)" "(\w+)"', main, re.M)}
    kinds = {kind for kind, _ in resources}
    assert {
        "azurerm_resource_group",
        "azurerm_container_registry",
        "azurerm_user_assigned_identity",
        "azurerm_role_assignment",
        "azurerm_key_vault",
        "azurerm_key_vault_secret",
    } <= kinds
    registry = _resource(main, "azurerm_container_registry", "hygge")
    assert re.search(r"admin_enabled\s+= false", registry)
    vault = _resource(main, "azurerm_key_vault", "hygge")
    assert re.search(r"rbac_authorization_enabled\s+= true", vault)
    assert re.search(r"purge_protection_enabled\s+= true", vault)
    roles = re.findall(r'role_definition_name = "([^"]+)"', main)
    assert {"AcrPull", "Storage Blob Data Contributor"} <= set(roles)
    assert "scope                = var.storage_account_id" in main
    outputs = set(_blocks(_tf("outputs.tf"), "output"))
    assert {
        "identity_id",
        "identity_client_id",
        "registry_login_server",
        "resource_group_name",
        "subscription_id",
        "aci_job_variables",
    } <= outputs


def test_terraform_output_keys_are_template_variables(template):
    assert _terraform_job_variable_keys() <= set(template["variables"]["properties"])


def test_every_checkov_skip_is_explained():
    for path in TF.glob("*.tf"):
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                m = re.fullmatch(r"\s*#checkov:skip=CKV2?_[A-Z]+_\d+:(.+)", line)
                assert m and len(m.group(1).split()) >= 6, f"{path.name}: unexplained skip: {line.strip()}"


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform not on PATH")
def test_terraform_fmt():
    proc = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", str(TF)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_production_deployments_use_the_aci_template_variables() -> None:
    """prefect.aci.yaml deploys the same flows as prefect.yaml onto the ACI pool, and every job
    variable it sets is one the ACI base job template defines."""
    import json

    import yaml

    prod = yaml.safe_load((ROOT / "prefect.aci.yaml").read_text())
    local = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    variables = json.loads((ROOT / "infra" / "aci-job-template.json").read_text())["variables"]["properties"]
    for deployment in prod["deployments"]:
        assert set(deployment["work_pool"]["job_variables"]) <= set(variables)
        assert deployment["entrypoint"] == "flows/land.py:land"
        assert deployment["work_pool"]["job_variables"]["env"]["HYGGE_PROJECT"] == "/app"
    assert {d["name"] for d in prod["deployments"]} == {d["name"] for d in local["deployments"]}
