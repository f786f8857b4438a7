"""A storage failure as one StoreError: object_store's nested error chains flattened to one line,
secrets masked, and transient only where retrying can help. Used by Storage and the folder operations
alike (its own module, so neither imports the other for it)."""

from __future__ import annotations

import re
from typing import Protocol

from hygge.errors import StoreError
from hygge.redact import redact


class Described(Protocol):
    """What an error message needs of a Storage."""

    @property
    def secrets(self) -> tuple[str, ...]: ...

    def describe(self) -> str: ...


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_XML_CODE = re.compile(r"<Code>([^<]+)</Code>")


def flat_error(text: str) -> str:
    """One line from object_store's nested, coloured error chains; an XML error body becomes its code."""
    code = _XML_CODE.search(text)
    # object_store appends its Rust Debug form ("Debug source: Generic { ... RetryError(...") after the
    # readable text: it repeats the cause and reads like a retry wrapper, so it is cut.
    text = _ANSI.sub("", text).split("<?xml", 1)[0].split("Debug source:", 1)[0]
    text = " ".join(text.replace("↳", ":").split()).rstrip(": ")
    return f"{text} ({code.group(1)})" if code else text


# The causes that heal by retrying, whoever raised them (the storage layer, or pyarrow and deltalake
# reading landed files through it): the one table every storage failure is classified by.
_TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)
_TRANSIENT_WORDS = ("timed out", "timeout", "error sending request", "connection reset", "connection refused",
                    "broken pipe", "throttl", "server busy", "temporarily unavailable")  # fmt: skip


DISK_FULL_HINT = (
    "the disk holding the store is full: free space there, then rerun (nothing of this run is visible)"
)


def _status(lowered: str) -> int | None:
    # Match HTTP statuses as statuses: a bare "403" or "500" also occurs in timings and ports.
    status = re.search(r"(?:status code|http status[^:]*?|error)[: ]+\(?(\d{3})\b", lowered)
    return int(status.group(1)) if status else None


def transient_cause(text: str) -> bool:
    """Whether a storage failure's text names a cause that retrying can heal."""
    lowered = flat_error(text).lower()
    return _status(lowered) in _TRANSIENT_STATUS or any(w in lowered for w in _TRANSIENT_WORDS)


def storage_error(storage: Described, action: str, exc: BaseException) -> StoreError:
    """A storage failure as one clear message (secrets masked), transient when retrying can help."""
    flat = flat_error(str(exc)) or type(exc).__name__
    text = redact(flat, storage.secrets)
    lowered = flat.lower()
    code = _status(lowered)
    transient = transient_cause(lowered)
    hint = "check that the location is reachable and the credential may write there"
    if "no space left on device" in lowered:
        hint, transient = DISK_FULL_HINT, False
    elif "containernotfound" in lowered or "filesystemnotfound" in lowered:
        hint = "create the container first (hygge never creates containers or OneLake items)"
        transient = False
    elif code == 403 or any(
        word in lowered
        for word in ("authenticationfailed", "authorizationfailure", "authorizationpermissionmismatch")
    ):
        hint = "the credential was refused: check the account key, SAS or role assignment (Storage Blob Data Contributor)"
        transient = False
    return StoreError(f"{action} {storage.describe()} failed: {text[:400]}", hint=hint, transient=transient)
