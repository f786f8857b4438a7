"""Keep secrets out of text that may reach logs, artifacts, the journal or exception messages."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

MASK = "********"
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Mask each known secret (and its URL-encoded form) and any password inside a URL."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, MASK)
            encoded = quote(secret, safe="")
            if encoded != secret:
                text = text.replace(encoded, MASK)
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
