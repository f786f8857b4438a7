"""Storage: one location plus its credential, as every client needs it.

- `store`: an obstore store (LocalStore or AzureStore) rooted at the location — puts (atomic;
  put-if-absent with `create_only`), gets, lists, renames, streaming writers;
- `uri` + `options()`: the URL and object_store options that deltalake and polars take;
- `filesystem()`: a pyarrow filesystem over the same place for dataset scans.
Nothing else in hygge builds Azure URLs, clients or option dicts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import obstore
import pyarrow as pa
import pyarrow.fs as pafs
from obstore.exceptions import AlreadyExistsError, NotFoundError
from obstore.exceptions import BaseError as ObstoreError
from obstore.store import AzureStore, LocalStore

from hygge.config.models import AzureCredentialConfig, RemoteSettings
from hygge.errors import ConfigError, StoreError
from hygge.settings import settings
from hygge.storage.credentials import ResolvedCredential, resolve
from hygge.storage.errors import storage_error
from hygge.storage.location import Location, parse_location

__all__ = ["AlreadyExistsError", "NotFoundError", "Storage"]

_SETTINGS = settings()

_RETRY = {"max_retries": 4, "retry_timeout": dt.timedelta(seconds=60)}


@dataclass
class Storage:
    """A location (paths given to methods are relative to it, with '/') and its credential."""

    location: Location
    credential: ResolvedCredential | None = None
    _store: Any = field(default=None, repr=False)

    # --- construction --------------------------------------------------------------------------
    @classmethod
    def local(cls, path: Path | str) -> Storage:
        return cls(Location("local", str(Path(path).resolve())))

    @classmethod
    def at(
        cls,
        text: str,
        base: Path | None = None,
        settings: RemoteSettings | None = None,
        credentials: dict[str, AzureCredentialConfig] | None = None,
    ) -> Storage:
        """A configured location: a local path (absolute or relative to `base`) or an Azure URL."""
        account = settings.account if settings else None
        endpoint = settings.endpoint if settings else None
        location = parse_location(text, base, account=account, endpoint=endpoint)
        if location.is_local:
            return cls(location)
        named = settings.credential if settings else None
        if isinstance(named, str):
            if not credentials or named not in credentials:
                raise ConfigError(
                    f"unknown credential '{named}'",
                    hint="define it under `credentials:` in hygge.yml",
                    field="credential",
                )
            named = credentials[named]
        resolved = resolve(named, account=location.account, emulator=bool(endpoint))
        if location.account is None and "account_name" in resolved.options:
            location = replace(location, account=resolved.options["account_name"])
        if location.endpoint is None and "endpoint" in resolved.options:
            # A connection string's BlobEndpoint (Azurite's is http://): options() then sets allow_http.
            location = replace(location, endpoint=resolved.options["endpoint"])
        if location.account is None:
            raise ConfigError(
                f"no storage account for {text}", hint="set `account:` next to the path", field="account"
            )
        return cls(location, resolved)

    def child(self, *parts: str) -> Storage:
        return Storage(self.location.child(*parts), self.credential)

    def parent(self) -> Storage:
        return Storage(self.location.parent(), self.credential)

    # --- what clients take ---------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return self.location.is_local

    @property
    def uri(self) -> str:
        return self.location.url

    def describe(self) -> str:
        return self.location.describe()

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.credential.secrets if self.credential else ()

    def options(self) -> dict[str, str] | None:
        """object_store options for deltalake and polars (None for local folders). Holds secrets."""
        if self.is_local:
            return None
        assert self.credential is not None
        options = {"account_name": str(self.location.account), **self.credential.options}
        if self.location.endpoint:
            options["endpoint"] = self.location.endpoint
            options["allow_http"] = str(self.location.endpoint.startswith("http://")).lower()
        if self.location.kind == "onelake":
            options["use_fabric_endpoint"] = "true"
        if self.credential.tokens is not None:
            options["bearer_token"] = self.credential.tokens.token()
        return options

    @property
    def store(self) -> Any:
        if self._store is None:
            self._store = self._make_store()
        return self._store

    def _azure_client(self) -> tuple[dict[str, Any], dict[str, Any] | None, Any]:
        """obstore's config, client options and credential provider for this Azure location."""
        assert self.credential is not None
        config: dict[str, Any] = {"account_name": self.location.account, **self.credential.options}
        client: dict[str, Any] = {}
        if self.location.endpoint:
            config["endpoint"] = self.location.endpoint
            client["allow_http"] = self.location.endpoint.startswith("http://")
        if self.location.kind == "onelake":
            config["use_fabric_endpoint"] = True
        provider = None
        if self.credential.tokens is not None:
            from obstore.auth.azure import AzureCredentialProvider

            provider = AzureCredentialProvider(credential=self.credential.tokens.credential)
        return config, client or None, provider

    def _make_store(self) -> Any:
        if self.is_local:
            return LocalStore(self.location.path, mkdir=True)
        config, client, provider = self._azure_client()
        return AzureStore(
            container_name=self.location.container,
            prefix=self.location.path or None,
            config=config,
            client_options=client,
            retry_config=_RETRY,
            credential_provider=provider,
        )

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        """A pyarrow filesystem and the root path within it, for dataset scans."""
        if self.is_local:
            return pafs.LocalFileSystem(), self.location.path
        from obstore.fsspec import FsspecStore

        config, client, provider = self._azure_client()
        fs = FsspecStore("az", config=config, client_options=client, credential_provider=provider)
        root = f"{self.location.container}/{self.location.path}".rstrip("/")
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), root

    def dataset_paths(self, paths: list[str]) -> tuple[pafs.FileSystem, list[str]]:
        fs, root = self.filesystem()
        return fs, [f"{root}/{p}" for p in paths]

    # --- objects -------------------------------------------------------------------------------
    # Missing objects (NotFoundError) and lost put-if-absent races (AlreadyExistsError) reach the
    # caller as they are; every other failure becomes one StoreError naming the place and a fix.
    @contextmanager
    def _errors(self, action: str, path: str, *, missing_is_error: bool = False) -> Iterator[None]:
        try:
            yield
        except AlreadyExistsError:
            raise
        except (NotFoundError, FileNotFoundError) as exc:
            if not missing_is_error:
                raise
            raise storage_error(self, f"{action} {path} in", exc) from None
        except StoreError:
            raise
        except (ObstoreError, OSError) as exc:
            raise storage_error(self, f"{action} {path} in", exc) from None

    def put(self, path: str, data: bytes, *, create_only: bool = False) -> None:
        """Atomic put; with create_only it fails with AlreadyExistsError if the object exists."""
        with self._errors("writing", path, missing_is_error=True):
            obstore.put(self.store, path, data, mode="create" if create_only else "overwrite")

    def get(self, path: str) -> bytes:
        with self._errors("reading", path):
            return bytes(obstore.get(self.store, path).bytes())

    def exists(self, path: str) -> bool:
        try:
            with self._errors("checking", path):
                obstore.head(self.store, path)
        except (NotFoundError, FileNotFoundError):
            return False
        return True

    def size(self, path: str) -> int:
        with self._errors("checking", path, missing_is_error=True):
            return int(obstore.head(self.store, path)["size"])

    def list(self, prefix: str = "") -> list[dict[str, Any]]:
        if self.is_local and not Path(self.location.path, prefix).exists():
            return []
        found: list[dict[str, Any]] = []
        try:
            with self._errors("listing", prefix or "/"):
                for chunk in obstore.list(self.store, prefix or None):
                    found.extend(chunk)
        except (NotFoundError, FileNotFoundError):
            if not self.is_local:
                raise storage_error(self, "listing", FileNotFoundError("ContainerNotFound")) from None
            return []
        return found

    def delete(self, path: str) -> None:
        try:
            with self._errors("deleting", path):
                obstore.delete(self.store, path)
        except (NotFoundError, FileNotFoundError):
            pass

    def rename(self, src: str, dst: str, *, overwrite: bool = False) -> None:
        """Local: atomic rename. Azure Blob: copy then delete (each object appears atomically)."""
        with self._errors("renaming", src):
            obstore.rename(self.store, src, dst, overwrite=overwrite)

    def copy_in(self, filesystem: pafs.FileSystem, source: str, path: str) -> None:
        """Copy a file that `filesystem` holds to `path`: a kernel copy when both sides are local
        (shutil uses copy_file_range/sendfile), else streamed through `open_writer` in 8 MB chunks."""
        if self.is_local and isinstance(filesystem, pafs.LocalFileSystem):
            target = Path(self.location.path, path)
            with self._errors("writing", path, missing_is_error=True):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
            return
        sink = self.open_writer(path)
        try:
            with filesystem.open_input_stream(source) as stream:
                while chunk := stream.read(8 * 1024 * 1024):
                    sink.write(chunk)
        finally:
            sink.close()

    def open_writer(self, path: str) -> Any:
        """A writable file for streaming writers (pyarrow's ParquetWriter)."""
        if self.is_local:
            # Native file: pyarrow writes without crossing back into Python for every chunk.
            target = Path(self.location.path, path)
            with self._errors("writing", path, missing_is_error=True):
                target.parent.mkdir(parents=True, exist_ok=True)
                return pa.OSFile(str(target), "wb")
        return _ObjectWriter(
            # Parts of upload_part_mb, upload_concurrency of them in flight: memory is about their product.
            obstore.open_writer(
                self.store,
                path,
                buffer_size=_SETTINGS.upload_part_mb * 1024 * 1024,
                max_concurrency=_SETTINGS.upload_concurrency,
            ),
            self,
            path,
        )

    def digest(self, path: str) -> str:
        """The sha256 of an object's bytes, streamed (a local file in small reads: obstore's local
        `get` holds the whole file in memory)."""
        if self.is_local:
            with self._errors("reading", path), open(Path(self.location.path, path), "rb") as file:
                return hashlib.file_digest(file, "sha256").hexdigest()
        sha = hashlib.sha256()
        for chunk in self.iter_bytes(path):
            sha.update(chunk)
        return sha.hexdigest()

    def written_digest(self, sink: Any, path: str) -> str:
        """The sha256 of a file `open_writer` gave `sink` for, once closed: remote writers hash the
        bytes as they pass; a local file is read back (from the page cache, at disk speed)."""
        return getattr(sink, "digest", None) or self.digest(path)

    def iter_bytes(self, path: str) -> Iterator[bytes]:
        with self._errors("reading", path):
            for chunk in obstore.get(self.store, path):
                yield bytes(chunk)

    # --- folders (hygge/storage/dfs.py) ---------------------------------------------------------
    def delete_folder(self, path: str) -> None:
        """Delete the folder `path` and everything below it; a missing folder is fine.

        One atomic call on local folders and on ADLS Gen2 / OneLake (the DFS API, which refuses
        OneLake's workspace, item and Files/Tables levels); object by object on Azurite."""
        import hygge.storage.dfs as dfs

        if self.is_local:
            dfs.delete_local_folder(self, path)
        elif dfs.blob_only(self):
            dfs.delete_objects_under(self, path)
        else:
            dfs.delete_folder(self, path)

    def rename_folder(self, src: str, dst: str) -> None:
        """Move the folder `src` to `dst` (which must not exist; its parent is created).

        One atomic call on local folders and on ADLS Gen2 / OneLake; on Azurite each object is
        copied then deleted."""
        import hygge.storage.dfs as dfs

        if self.is_local:
            dfs.rename_local_folder(self, src, dst)
        elif dfs.blob_only(self):
            dfs.rename_objects_under(self, src, dst)
        else:
            dfs.rename_folder(self, src, dst)


class _ObjectWriter(io.RawIOBase):
    """obstore's writer as a file object pyarrow accepts (its `closed` is a method, not a property).

    The object becomes visible only when the writer closes (a committed block list)."""

    def __init__(self, inner: Any, storage: Storage, path: str) -> None:
        self._inner = inner
        self._storage = storage
        self._path = path
        self._closed = False
        self._written = 0
        self._sha = hashlib.sha256()  # the bytes pass here anyway: the digest costs no second read

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        with self._storage._errors("writing", self._path, missing_is_error=True):
            self._inner.write(chunk)
        self._sha.update(chunk)
        self._written += len(chunk)
        return len(chunk)

    @property
    def digest(self) -> str:
        return self._sha.hexdigest()

    def flush(self) -> None:
        with self._storage._errors("writing", self._path, missing_is_error=True):
            self._inner.flush()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with self._storage._errors("writing", self._path, missing_is_error=True):
                self._inner.close()

    @property
    def closed(self) -> bool:
        return self._closed

