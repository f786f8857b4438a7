"""Start a throwaway Azurite (Azure Blob Storage emulator) for tests and benchmarks.

Usage::

    with running_azurite(Path(tempfile.mkdtemp())) as az:
        az.create_container("landing")
        ...  # az.blob_endpoint == "http://127.0.0.1:<port>/devstoreaccount1"
        az.stop()   # the server is gone (simulate an outage mid-write) ...
        az.start()  # ... and back on the same port with the same data

Azurite serves the Blob API only (no Data Lake / dfs endpoint). The ``azurite-blob`` executable
is looked up, in order, at ``$HYGGE_AZURITE_BIN``, ``<repo>/node_modules/.bin/azurite-blob``,
``~/.cache/hygge/azurite/node_modules/.bin/azurite-blob`` and ``azurite-blob`` on PATH. If none
exists it is installed into ``~/.cache/hygge/azurite`` with npm (about 10 s, once).

The server persists to ``<base_dir>/data``; its debug log is ``<base_dir>/debug.log`` and its
console output ``<base_dir>/azurite.out``. ``base_dir`` is removed on exit.

Unlike tests/pg_server.py there is no "use an existing server" environment variable: we always
start our own, because tests stop and restart it.

This module deliberately imports nothing outside the standard library.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from urllib.parse import quote

ENV_BIN = "HYGGE_AZURITE_BIN"
REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path.home() / ".cache" / "hygge" / "azurite"
BIN_NAME = "azurite-blob"

#: Azurite's built-in development account and its well-known, public key (not a secret).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

START_TIMEOUT_S = 60.0
STOP_GRACE_S = 5.0
API_VERSION = "2021-08-06"

# Flags we would like; each is passed only if the installed version's --help lists it.
_OPTIONAL_FLAGS = ("--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry")


class AzuriteError(RuntimeError):
    """Azurite could not be found, installed, started or talked to."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_azurite() -> str | None:
    """Path of an ``azurite-blob`` executable, or None if there is none anywhere we look."""
    env = os.environ.get(ENV_BIN)
    if env:
        if not _executable(Path(env)):
            raise AzuriteError(f"{ENV_BIN}={env!r} is not an executable file")
        return env
    for candidate in (
        REPO_ROOT / "node_modules" / ".bin" / BIN_NAME,
        CACHE_DIR / "node_modules" / ".bin" / BIN_NAME,
    ):
        if _executable(candidate):
            return str(candidate)
    return shutil.which(BIN_NAME)


def install_azurite() -> str:
    """``npm install azurite`` into the cache dir (under a file lock); return the executable."""
    npm = shutil.which("npm")
    if npm is None:
        raise AzuriteError(
            "Azurite (azurite-blob) was not found and npm is not installed to fetch it. Install "
            f"Node.js + npm, or run `npm install azurite`, or set {ENV_BIN} to an azurite-blob path."
        )
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    target = CACHE_DIR / "node_modules" / ".bin" / BIN_NAME
    with open(CACHE_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test processes install only once
        if not _executable(target):
            print(f"hygge tests: installing Azurite with npm into {CACHE_DIR} (one-off) ...", flush=True)
            proc = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--prefix", str(CACHE_DIR), "azurite"],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0 or not _executable(target):
                raise AzuriteError(
                    f"npm install azurite failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}"
                    f"\n{proc.stderr[-2000:]}"
                )
    return str(target)


def _supported_flags(binary: str) -> list[str]:
    """The subset of _OPTIONAL_FLAGS that this azurite-blob's --help mentions."""
    proc = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=60)
    help_text = proc.stdout + proc.stderr
    return [flag for flag in _OPTIONAL_FLAGS if f"{flag} " in help_text or f"{flag}\n" in help_text]


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no output)"
    return "\n".join(lines[-n:]) or "(empty)"


@dataclass
class AzuriteInfo:
    """A running Azurite blob service, plus the means to stop/restart it and create containers."""

    port: int
    base_dir: Path
    binary: str
    account: str = DEV_ACCOUNT
    key: str = DEV_KEY
    _flags: list[str] = field(default_factory=list, repr=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.account}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.key};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    @property
    def storage_options(self) -> dict[str, str]:
        """object_store options that reach this server from obstore, deltalake and polars alike.

        Not ``use_emulator``: object_store then ignores ``endpoint`` and always dials
        127.0.0.1:10000 (unless the process-wide env var AZURITE_BLOB_STORAGE_URL says otherwise).
        """
        return {
            "account_name": self.account,
            "account_key": self.key,
            "endpoint": self.blob_endpoint,
            "allow_http": "true",
        }

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # --- process control ----------------------------------------------------------------

    def start(self) -> None:
        """Start the server (same port, same data directory) and wait until it answers HTTP."""
        if self.running:
            return
        data_dir = self.base_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        out_path = self.base_dir / "azurite.out"
        cmd = [
            self.binary,
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.port),
            "--location",
            str(data_dir),
            "--debug",
            str(self.base_dir / "debug.log"),
            *self._flags,
        ]
        with open(out_path, "ab") as out:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise AzuriteError(
                    f"Azurite exited with code {code} during start-up ({' '.join(cmd)}).\n"
                    f"azurite.out:\n{_tail(out_path)}\ndebug.log:\n{_tail(self.base_dir / 'debug.log')}"
                )
            if self._answers():
                return
            if time.monotonic() > deadline:
                self.stop(hard=True)
                raise AzuriteError(
                    f"Azurite did not accept connections on 127.0.0.1:{self.port} within "
                    f"{START_TIMEOUT_S:.0f} s ({' '.join(cmd)}).\nazurite.out:\n{_tail(out_path)}\n"
                    f"debug.log:\n{_tail(self.base_dir / 'debug.log')}"
                )
            time.sleep(0.1)

    def _answers(self) -> bool:
        """True once Azurite itself (not some other process on our port) answers HTTP."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/{self.account}", timeout=2) as resp:
                server = resp.headers.get("Server", "")
        except urllib.error.HTTPError as err:  # unsigned request: 4xx, but from Azurite
            server = err.headers.get("Server", "")
        except (OSError, ValueError):  # not listening yet, or not speaking HTTP
            return False
        return server.startswith("Azurite")

    def stop(self, hard: bool = False) -> None:
        """Stop the server: SIGTERM, then SIGKILL after 5 s. ``hard=True`` SIGKILLs at once (a crash).

        Careful: Azurite keeps its blob metadata in a LokiJS database that it saves to disk every
        few seconds and on SIGTERM. A hard kill therefore loses blobs (and containers) created in
        the last ~5 s although they were acknowledged -- real Azure never does that. Use the
        default (SIGTERM: measured at ~15 ms, nothing lost) to simulate an outage.
        """
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        sig = signal.SIGKILL if hard else signal.SIGTERM
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_GRACE_S)
        # Children (if any) of the session die with the group; make sure none lingers.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    # --- REST ---------------------------------------------------------------------------

    def _request(self, method: str, path: str, query: dict[str, str]) -> int:
        """One SharedKey-signed, body-less Blob REST request; returns the HTTP status."""
        headers = {
            "x-ms-date": formatdate(usegmt=True),
            "x-ms-version": API_VERSION,
        }
        # urllib adds Content-Type to any request with a body; send (and sign) an explicit one.
        content_type = "application/octet-stream" if method == "PUT" else ""
        # Path-style (emulator) URLs: the resource is /<account>/<url path>, and the url path
        # itself starts with the account name.
        url_path = f"/{self.account}/{quote(path)}"
        canon_headers = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
        canon_resource = f"/{self.account}{url_path}" + "".join(
            f"\n{k.lower()}:{v}" for k, v in sorted(query.items())
        )
        # VERB, Content-Encoding, -Language, -Length, -MD5, -Type, Date, If-Modified-Since,
        # If-Match, If-None-Match, If-Unmodified-Since, Range, then the canonical parts.
        string_to_sign = method + "\n" * 5 + content_type + "\n" * 7 + canon_headers + canon_resource
        digest = hmac.new(base64.b64decode(self.key), string_to_sign.encode(), hashlib.sha256).digest()
        headers["Authorization"] = f"SharedKey {self.account}:{base64.b64encode(digest).decode()}"
        if content_type:
            headers["Content-Type"] = content_type
        qs = "&".join(f"{k}={quote(v)}" for k, v in query.items())
        url = f"http://127.0.0.1:{self.port}{url_path}" + (f"?{qs}" if qs else "")
        req = urllib.request.Request(
            url, method=method, headers=headers, data=b"" if method == "PUT" else None
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status
        except urllib.error.HTTPError as err:
            body = err.read().decode(errors="replace")
            if err.code == 409 and "ContainerAlreadyExists" in body:
                return err.code
            raise AzuriteError(f"{method} {url} -> HTTP {err.code}: {body[:1000]}") from err

    def create_container(self, name: str) -> None:
        """Create a blob container (no error if it already exists)."""
        self._request("PUT", name, {"restype": "container"})


@contextlib.contextmanager
def running_azurite(base_dir: Path) -> Iterator[AzuriteInfo]:
    """Start Azurite under ``base_dir``; yield its AzuriteInfo; stop it and remove ``base_dir``."""
    binary = find_azurite() or install_azurite()
    base_dir = Path(base_dir)
    base_dir.mkdir(parents=True, exist_ok=True)
    info = AzuriteInfo(port=free_port(), base_dir=base_dir, binary=binary, _flags=_supported_flags(binary))
    try:
        info.start()
        yield info
    finally:
        info.stop()
        shutil.rmtree(base_dir, ignore_errors=True)
