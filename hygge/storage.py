"""The one storage layer: a location turned into an obstore store plus the URI and options that
deltalake and polars take for the same place (they share object_store's option keys).

Only local folders are wired today; Azure locations plug in here without touching stores or journal.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import obstore
import pyarrow as pa
from obstore.exceptions import AlreadyExistsError, NotFoundError
from obstore.store import LocalStore

from hygge.errors import StoreError

__all__ = ["AlreadyExistsError", "NotFoundError", "Storage"]


@dataclass
class Storage:
    """A root location; paths given to methods are relative to it and use '/'."""

    root: str
    options: dict[str, str] = field(default_factory=dict)
    _store: Any = field(default=None, repr=False)

    @classmethod
    def local(cls, path: Path | str) -> Storage:
        return cls(str(Path(path).resolve()))

    @classmethod
    def at(cls, location: str, base: Path | None = None) -> Storage:
        """Resolve a configured location (a local path, absolute or relative to `base`)."""
        if "://" in location and not location.startswith("file://"):
            raise StoreError(
                f"location '{location}' is not a local path; remote stores are not supported yet",
                hint="use a local folder",
            )
        path = Path(location.removeprefix("file://"))
        if not path.is_absolute() and base is not None:
            path = base / path
        return cls.local(path)

    @property
    def store(self) -> Any:
        if self._store is None:
            self._store = LocalStore(self.root, mkdir=True)
        return self._store

    def child(self, *parts: str) -> Storage:
        return Storage(str(Path(self.root, *parts)), dict(self.options))

    @property
    def uri(self) -> str:
        """For deltalake and polars."""
        return self.root

    @property
    def is_local(self) -> bool:
        return True

    def local_path(self, path: str = "") -> Path:
        return Path(self.root, path) if path else Path(self.root)

    # --- objects -------------------------------------------------------------------------------
    def put(self, path: str, data: bytes, *, create_only: bool = False) -> None:
        """Atomic put; with create_only it fails with AlreadyExistsError if the object exists."""
        obstore.put(self.store, path, data, mode="create" if create_only else "overwrite")

    def get(self, path: str) -> bytes:
        return bytes(obstore.get(self.store, path).bytes())

    def exists(self, path: str) -> bool:
        try:
            obstore.head(self.store, path)
        except (NotFoundError, FileNotFoundError):
            return False
        return True

    def size(self, path: str) -> int:
        return int(obstore.head(self.store, path)["size"])

    def list(self, prefix: str = "") -> list[dict[str, Any]]:
        if not self.local_path(prefix).exists():
            return []
        found: list[dict[str, Any]] = []
        for chunk in obstore.list(self.store, prefix or None):
            found.extend(chunk)
        return found

    def delete(self, path: str) -> None:
        try:
            obstore.delete(self.store, path)
        except (NotFoundError, FileNotFoundError):
            pass

    def rename(self, src: str, dst: str, *, overwrite: bool = False) -> None:
        obstore.rename(self.store, src, dst, overwrite=overwrite)

    def open_writer(self, path: str) -> Any:
        """A writable file for streaming writers (pyarrow's ParquetWriter)."""
        if self.is_local:
            # Native file: pyarrow writes without crossing back into Python for every chunk.
            target = self.local_path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            return pa.OSFile(str(target), "wb")
        return _ObjectWriter(obstore.open_writer(self.store, path))

    def iter_bytes(self, path: str) -> Iterator[bytes]:
        for chunk in obstore.get(self.store, path):
            yield bytes(chunk)


class _ObjectWriter(io.RawIOBase):
    """obstore's writer as a file object pyarrow accepts (its `closed` is a method, not a property)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._closed = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._inner.write(bytes(data))
        return len(data)

    def flush(self) -> None:
        self._inner.flush()

    def close(self) -> None:
        if not self._closed:
            self._inner.close()
            self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed
