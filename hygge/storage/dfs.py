"""Folder operations that only a hierarchical namespace (ADLS Gen2, OneLake) can do atomically.

Deleting a folder with everything below it, and renaming (moving) a folder, are single DFS REST calls
on an HNS account or OneLake; the Blob API (and so obstore) can only do them one object at a time.
They go through the DFS SDK (azure-storage-file-datalake), built from the same Location and
ResolvedCredential as every other client. Callers use `Storage.delete_folder` / `Storage.rename_folder`,
which send local folders and Azurite (Blob API only) elsewhere.

What the SDK sends (checked against tests/fake_dfs.py):
- delete: ``DELETE /<fs>/<path>?recursive=true`` (token credentials add ``paginated=true`` and
  repeat the call while the service returns ``x-ms-continuation``; the delete itself stays atomic);
- rename: ``PUT /<fs>/<dst>?mode=legacy`` with ``x-ms-rename-source: /<fs>/<src>`` and
  ``If-None-Match: *``; when the service answers 404 RenameDestinationParentPathNotFound, the
  destination's parent is created (``PUT /<fs>/<parent>?resource=directory``, ``If-None-Match: *``) and
  the rename retried; on 404 SourcePathNotFound, a ``HEAD`` on the destination (the SDK's
  ``exists()``, which goes through the Blob API) tells a rename that the SDK's own retry had already
  completed (destination present: done) from a missing source (StoreError).

Guardrails: OneLake's workspace, item and Files/Tables levels are managed by Fabric and are never
deleted, renamed or created here (ConfigError); nor is an Azure container's root.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any, Protocol

from hygge.errors import ConfigError, StoreError
from hygge.redact import redact
from hygge.storage.credentials import ResolvedCredential
from hygge.storage.errors import storage_error
from hygge.storage.location import ONELAKE_DFS, ONELAKE_FOLDERS, Location


class Storage(Protocol):
    """What the folder operations use of a `hygge.storage.objects.Storage`, named here so that this
    module, which Storage calls, does not import it back."""

    location: Location
    credential: ResolvedCredential | None

    @property
    def secrets(self) -> tuple[str, ...]: ...

    def describe(self) -> str: ...

    def list(self, prefix: str = "") -> list[dict[str, Any]]: ...

    def exists(self, path: str) -> bool: ...

    def delete(self, path: str) -> None: ...

    def rename(self, src: str, dst: str, *, overwrite: bool = False) -> None: ...


__all__ = [
    "account_url",
    "blob_only",
    "delete_folder",
    "delete_local_folder",
    "delete_objects_under",
    "fs_path",
    "rename_folder",
    "rename_local_folder",
    "rename_objects_under",
]

# Keyword arguments for every DataLakeServiceClient: the SDK's ExponentialRetry (retries 5xx,
# 408, timeouts and connection errors) with shorter waits than its 15 s default. Tests shorten it.
CLIENT_OPTIONS: dict[str, Any] = {"retry_total": 3, "initial_backoff": 2, "increment_base": 3}

# A SAS signature in a URL the SDK or requests quotes (any SAS, not only the configured one).
_SAS_SIGNATURE = re.compile(r"(\bsig=)[^&\s'\"]+")

# Segments below the workspace a OneLake path needs before hygge may touch it: <item>/<Files|Tables>/<x>.
_ONELAKE_MIN_DEPTH = 3


def delete_folder(storage: Storage, path: str) -> None:
    """Delete the folder `path` (relative to the storage's location) and everything below it.

    One atomic service call. A missing folder is not an error. A file at `path` is deleted too (the
    service does not distinguish them and a check would cost a round trip)."""
    full = fs_path(storage, path, "delete")
    from azure.core.exceptions import ResourceNotFoundError

    with _service(storage) as service:
        try:
            service.get_directory_client(storage.location.container, full).delete_directory()
        except ResourceNotFoundError as exc:
            if _code(exc) == "PathNotFound":
                return
            raise _error(storage, f"deleting folder '{full}' in", exc) from None
        except Exception as exc:
            raise _error(storage, f"deleting folder '{full}' in", exc) from None


def rename_folder(storage: Storage, src: str, dst: str) -> None:
    """Move the folder `src` to `dst` (both relative to the storage's location), children and all.

    One atomic service call. `dst` must not exist; its parent is created when missing (below the
    OneLake guardrail only). A missing `src` is a StoreError."""
    source = fs_path(storage, src, "rename")
    target = fs_path(storage, dst, "rename to")
    _check_not_inside(storage, source, target, "/")
    from azure.core import MatchConditions
    from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

    container = storage.location.container
    action = f"renaming folder '{source}' to '{target}' in"
    with _service(storage) as service:
        directory = service.get_directory_client(container, source)
        for attempt in (1, 2):
            try:
                directory.rename_directory(f"{container}/{target}", match_condition=MatchConditions.IfMissing)
                return
            except ResourceNotFoundError as exc:
                code = _code(exc)
                if code == "RenameDestinationParentPathNotFound" and attempt == 1:
                    _create_parent(storage, service, target)
                    continue
                if code == "SourcePathNotFound":
                    if _exists(storage, service, target):
                        return  # a retried rename whose first attempt went through
                    raise StoreError(
                        f"{action} {storage.describe()} failed: the folder '{source}' does not exist",
                        hint="check the folder name; nothing was renamed",
                    ) from None
                raise _error(storage, action, exc) from None
            except (ResourceExistsError, HttpResponseError) as exc:
                if _code(exc) in ("PathAlreadyExists", "ConditionNotMet"):
                    raise StoreError(
                        f"{action} {storage.describe()} failed: '{target}' already exists",
                        hint="delete the destination first (Storage.delete_folder) or choose another name",
                    ) from None
                raise _error(storage, action, exc) from None
            except Exception as exc:
                raise _error(storage, action, exc) from None


# --- the same operations where there is no DFS endpoint ---------------------------------------------
def blob_only(storage: Storage) -> bool:
    """True for Azurite (the emulator serves the Blob API only: DFS calls fail with HTTP 400)."""
    from hygge.storage.credentials import AZURITE_ACCOUNT

    location = storage.location
    kind = storage.credential.kind if storage.credential else None
    return bool(location.endpoint) and (location.account == AZURITE_ACCOUNT or kind == "emulator")


def delete_local_folder(storage: Storage, path: str) -> None:
    """Local folders: shutil.rmtree (a file at `path` is deleted too; a missing one is fine)."""
    target = _local_path(storage, path)
    try:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    except FileNotFoundError:
        pass  # removed meanwhile
    except OSError as exc:
        raise _local_error(storage, f"deleting folder '{path}' in", exc) from None


def rename_local_folder(storage: Storage, src: str, dst: str) -> None:
    """Local folders: one atomic os.rename; the destination's parent is created, the destination
    itself must not exist."""
    source, target = _local_path(storage, src), _local_path(storage, dst)
    _check_not_inside(storage, str(source), str(target), os.sep)
    action = f"renaming folder '{src}' to '{dst}' in"
    if not source.exists():
        raise StoreError(f"{action} {storage.describe()} failed: the folder '{src}' does not exist")
    if target.exists() or target.is_symlink():
        raise StoreError(
            f"{action} {storage.describe()} failed: '{dst}' already exists",
            hint="delete the destination first (Storage.delete_folder) or choose another name",
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, target)
    except OSError as exc:
        raise _local_error(storage, action, exc) from None


def delete_objects_under(storage: Storage, path: str) -> None:
    """Blob API only (Azurite): delete every object below `path` (and an object at `path`), one by one.
    Not atomic: a failure part-way leaves the rest; running it again finishes the job."""
    prefix = _object_path(path)
    for item in storage.list(prefix):
        storage.delete(item["path"])
    if prefix:
        storage.delete(prefix)


def rename_objects_under(storage: Storage, src: str, dst: str) -> None:
    """Blob API only (Azurite): move every object below `src` to the same place below `dst`, each by
    copy then delete. Not atomic: a failure part-way leaves objects in both folders."""
    source, target = _object_path(src), _object_path(dst)
    _check_not_inside(storage, source, target, "/")
    action = f"renaming folder '{source}' to '{target}' in"
    objects = [item["path"] for item in storage.list(source)] if source else []
    if not objects:
        raise StoreError(f"{action} {storage.describe()} failed: the folder '{source}' does not exist")
    if storage.list(target) or storage.exists(target):
        raise StoreError(
            f"{action} {storage.describe()} failed: '{target}' already exists",
            hint="delete the destination first (Storage.delete_folder) or choose another name",
        )
    for name in objects:
        storage.rename(name, target + name[len(source) :])


def _object_path(path: str) -> str:
    parts = [p for p in path.split("/") if p and p != "."]
    if ".." in parts:
        raise ConfigError(f"the path '{path}' must not contain '..'", field="path")
    return "/".join(parts)


def _local_path(storage: Storage, path: str) -> Path:
    return Path(storage.location.path, _object_path(path))


def _check_not_inside(storage: Storage, source: str, target: str, sep: str) -> None:
    if target == source or target.startswith(source + sep):
        raise ConfigError(
            f"cannot rename '{source}' to '{target}' in {storage.describe()}: "
            "the destination is the folder itself or inside it",
            field="path",
        )


def _local_error(storage: Storage, action: str, exc: OSError) -> StoreError:
    return storage_error(storage, action, exc)


# --- paths and guardrails ------------------------------------------------------------------------
def fs_path(storage: Storage, path: str, action: str = "change") -> str:
    """The path inside the file system (container / OneLake workspace) for `path` relative to the
    storage's location, after the guardrails: never the container root, never OneLake's managed levels."""
    location = storage.location
    if location.kind not in ("azure", "onelake"):
        raise ConfigError(f"{location.describe()} is not on ADLS Gen2 or OneLake", field="path")
    parts = [p for p in f"{location.path}/{path}".split("/") if p and p != "."]
    if ".." in parts:
        raise ConfigError(f"the path '{path}' must not contain '..'", field="path")
    full = "/".join(parts)
    if location.kind == "onelake" and (len(parts) < _ONELAKE_MIN_DEPTH or parts[1] not in ONELAKE_FOLDERS):
        raise ConfigError(
            f"refusing to {action} '{_name(storage, full)}' on OneLake: the workspace, item and "
            "Files/Tables levels belong to Fabric",
            hint="name a folder below <item>/Files/ or <item>/Tables/",
            field="path",
        )
    if not parts:
        raise ConfigError(
            f"refusing to {action} the root of container '{location.container}'",
            hint="name a folder inside the container",
            field="path",
        )
    return full


def _name(storage: Storage, full: str) -> str:
    return f"{storage.location.container}/{full}".rstrip("/")


# --- clients -------------------------------------------------------------------------------------
def account_url(storage: Storage) -> str:
    """The DFS endpoint: a custom endpoint as given (a blob host becomes its dfs twin), OneLake's,
    or https://<account>.dfs.core.windows.net."""
    location = storage.location
    if location.endpoint:
        return location.endpoint.rstrip("/").replace(".blob.", ".dfs.", 1)
    if location.kind == "onelake":
        return f"https://{ONELAKE_DFS}"
    return f"https://{location.account}.dfs.core.windows.net"


def _credential(storage: Storage) -> Any:
    resolved = storage.credential
    if resolved is None:
        raise ConfigError(f"no credential for {storage.describe()}", field="credential")
    options = resolved.options
    if resolved.tokens is not None:  # default / cli: the azure-identity credential already held
        return resolved.tokens.credential
    if "account_key" in options:  # account_key, emulator, connection strings with a key
        return {"account_name": str(storage.location.account), "account_key": options["account_key"]}
    if "sas_key" in options:
        return options["sas_key"]
    if resolved.kind == "service_principal":
        from azure.identity import ClientSecretCredential

        return ClientSecretCredential(options["tenant_id"], options["client_id"], options["client_secret"])
    if resolved.kind == "managed_identity":
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=options.get("client_id"))
    raise ConfigError(
        f"credential type '{resolved.kind}' cannot reach the DFS endpoint of {storage.describe()}",
        field="credential.type",
    )


def _service(storage: Storage) -> Any:
    from azure.storage.filedatalake import DataLakeServiceClient

    try:
        return DataLakeServiceClient(account_url(storage), credential=_credential(storage), **CLIENT_OPTIONS)
    except ValueError as exc:  # e.g. a token credential over plain http
        raise ConfigError(
            f"cannot reach the DFS endpoint of {storage.describe()}: {redact(str(exc), storage.secrets)}",
            field="endpoint",
        ) from None


def _create_parent(storage: Storage, service: Any, target: str) -> None:
    """Create the missing parent of a rename's destination (the service does not), never at or above
    OneLake's Files/Tables level."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceExistsError

    parent = target.rpartition("/")[0]
    if not parent or (storage.location.kind == "onelake" and parent.count("/") + 1 < _ONELAKE_MIN_DEPTH):
        return  # nothing hygge may create; the retried rename reports the failure
    try:
        service.get_directory_client(storage.location.container, parent).create_directory(
            match_condition=MatchConditions.IfMissing
        )
    except ResourceExistsError:
        pass  # created meanwhile
    except Exception as exc:
        raise _error(storage, f"creating folder '{parent}' in", exc) from None


def _exists(storage: Storage, service: Any, path: str) -> bool:
    try:
        return bool(service.get_directory_client(storage.location.container, path).exists())
    except Exception as exc:
        raise _error(storage, f"checking '{path}' in", exc) from None


# --- errors --------------------------------------------------------------------------------------
def _code(exc: BaseException) -> str | None:
    code = getattr(exc, "error_code", None)  # a StorageErrorCode (str enum) or the header's text
    return None if code is None else str(getattr(code, "value", code))


def _error(storage: Storage, action: str, exc: BaseException) -> StoreError:
    """An SDK failure as one StoreError naming the place (secrets masked); transient for 5xx,
    408/429, timeouts and connection failures."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

    if isinstance(exc, StoreError | ConfigError):
        return exc  # type: ignore[return-value]
    status = getattr(exc, "status_code", None)
    code = _code(exc)
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if code and first.startswith(f"({code}) "):  # the SDK's "(Code) message" form
        first = first[len(code) + 3 :]
    detail = " ".join(str(p) for p in (f"HTTP {status}" if status else None, code) if p)
    text = _SAS_SIGNATURE.sub(
        r"\1********", redact(f"{detail}: {first}" if detail else first, storage.secrets)
    )
    transient = isinstance(exc, ServiceRequestError | TimeoutError | ConnectionError) or (
        isinstance(exc, HttpResponseError) and status is not None and (status >= 500 or status in (408, 429))
    )
    hint = "check that the location is reachable and the credential may write there"
    if status in (401, 403) or (isinstance(exc, ClientAuthenticationError) and status is None):
        transient = False
        hint = (
            "the credential was refused: check the account key, SAS or role assignment "
            "(Storage Blob Data Contributor on ADLS; Contributor on the Fabric workspace for OneLake)"
        )
    elif code == "FilesystemNotFound":
        hint = "create the container first (hygge never creates containers or OneLake items)"
    elif transient:
        hint = "the service is busy or unreachable; the run can be retried"
    return StoreError(f"{action} {storage.describe()} failed: {text[:400]}", hint=hint, transient=transient)
