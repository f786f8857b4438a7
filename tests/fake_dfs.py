"""A small in-memory stand-in for the ADLS Gen2 / OneLake DFS REST API, for tests.

No DFS endpoint can run on this machine (Azurite serves the Blob API only), so hygge's HNS folder
operations (hygge/storage/dfs.py, which uses azure-storage-file-datalake) are tested against this.
It implements, after the ADLS Gen2 REST reference, just what that SDK sends for those operations:

- ``PUT /<account>/<fs>?resource=filesystem``                 Filesystem - Create
- ``GET /<account>/<fs>?resource=filesystem&recursive=..&directory=..&maxResults=..&continuation=..``
                                                              Filesystem - List Paths (JSON ``{"paths": [...]}``)
- ``PUT /<account>/<fs>/<path>?resource=directory|file``      Path - Create (missing parents are created)
- ``PUT /<account>/<fs>/<path>?mode=legacy`` + ``x-ms-rename-source: /<fs>/<src>[?sas]``
                                                              Path - Create as rename (a move: children follow)
- ``DELETE /<account>/<fs>/<path>?recursive=true|false[&paginated=true]``
                                                              Path - Delete (409 DirectoryNotEmpty when not recursive)
- ``HEAD /<account>/<fs>/<path>``                             Path - Get Properties (``x-ms-resource-type``);
                                                              it also carries the Blob API's headers
                                                              (``x-ms-blob-type``, ``x-ms-meta-hdi_isfolder``)
                                                              because the SDK's ``exists()`` and
                                                              ``get_*_properties()`` go through the Blob API.

Conditional headers: ``If-None-Match: *`` on create/rename fails with 409 PathAlreadyExists when the
target exists. Rename fails with 404 SourcePathNotFound (no source), 404
RenameDestinationParentPathNotFound (the destination's parent is missing: the service does not create
it), 409 PathAlreadyExists (destination is an existing directory; a simplification of the service) and
400 InvalidRenameSourcePath (destination inside the source).

Every response carries ``x-ms-request-id``, ``x-ms-version`` (echoing the request's) and ``Date``;
successful creates carry ``ETag`` and ``Last-Modified``. Errors carry the ``x-ms-error-code`` header
and, except on HEAD, the body ``{"error": {"code": ..., "message": ...}}``.

Authentication: the fake does NOT verify signatures or tokens. It requires only that a request
carries some credential (an ``Authorization`` header or a SAS ``sig=`` query parameter; otherwise
401 NoAuthenticationInformation) and records which kind (``SharedKey``, ``Bearer``, ``sas``) in
``FakeDfs.requests`` so tests can check what the client sent.

Faults: ``fake.inject(prefix, status, code, times=None)`` makes requests whose path (``<fs>/<path>``, or the
rename source) starts with ``prefix`` fail with that status and error code, e.g. 403
AuthorizationPermissionMismatch or 503 ServerBusy, ``times`` times (None: always).

Usage::

    with running_fake_dfs(account="fakeacct") as fake:      # tls=True serves HTTPS (self-signed;
        fake.create_filesystem("fs")                         # fake.ca_file is its certificate)
        fake.put_file("fs", "a/b/c.parquet", b"...")
        ...  # point a client at fake.endpoint == "http://127.0.0.1:<port>/fakeacct"
        fake.paths("fs")  # {"a": "directory", "a/b": "directory", "a/b/c.parquet": "file"}

This module imports nothing from hygge; ``cryptography`` is needed only for ``tls=True``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import ssl
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

DEFAULT_VERSION = "2025-01-05"
_MESSAGES = {
    "PathNotFound": "The specified path does not exist.",
    "FilesystemNotFound": "The specified filesystem does not exist.",
    "FilesystemAlreadyExists": "The specified filesystem already exists.",
    "PathAlreadyExists": "The specified path already exists.",
    "DirectoryNotEmpty": "The recursive query parameter value must be true to delete a non-empty directory.",
    "SourcePathNotFound": "The source path for a rename operation does not exist.",
    "RenameDestinationParentPathNotFound": "The parent directory of the destination path does not exist.",
    "InvalidRenameSourcePath": "The source directory cannot be the same as the destination directory, "
    "nor can the destination be a subdirectory of the source directory.",
    "PathConflict": "The specified path, or an element of the path, exists and its resource type is "
    "invalid for this operation.",
    "NoAuthenticationInformation": "Server failed to authenticate the request. Please refer to the "
    "information in the www-authenticate header.",
    "AuthorizationPermissionMismatch": "This request is not authorized to perform this operation using "
    "this permission.",
    "ServerBusy": "The server is currently unable to receive requests. Please retry your request.",
    "InternalError": "The server encountered an internal error. Please retry the request.",
    "UnsupportedHttpVerb": "The resource doesn't support the specified HTTP verb.",
    "InvalidQueryParameterValue": "Value for one of the query parameters specified in the request URI is invalid.",
}


@dataclass
class Node:
    is_dir: bool
    etag: str
    modified: float
    data: bytes = b""


@dataclass
class Request:
    """One request as the fake saw it (for tests and for checking what the SDK sends)."""

    method: str
    path: str  # "<fs>/<path>" with the account stripped, URL-decoded
    query: dict[str, str]
    headers: dict[str, str]  # x-ms-* and conditional headers only
    auth: str  # SharedKey | Bearer | sas | none
    status: int = 0

    def line(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in sorted(self.query.items()) if k not in ("sig", "se", "sp"))
        heads = " ".join(
            f"{k}: {v}"
            for k, v in sorted(self.headers.items())
            if k not in ("x-ms-date", "x-ms-client-request-id")
        )
        return (
            f"{self.method} /{self.path}{'?' + query if query else ''} [{self.auth}] {heads} -> {self.status}"
        )


@dataclass
class _Fault:
    prefix: str
    status: int
    code: str
    remaining: int | None


class DfsError(Exception):
    def __init__(self, status: int, code: str, message: str | None = None) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message or _MESSAGES.get(code, code)


@dataclass
class FakeDfs:
    account: str = "fakeacct"
    tls: bool = False
    filesystems: dict[str, dict[str, Node]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    faults: list[_Fault] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _etags: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _tmp: tempfile.TemporaryDirectory | None = None
    ca_file: str | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeDfs:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        if self.tls:
            self._tmp = tempfile.TemporaryDirectory(prefix="fake-dfs-")
            cert, key = _self_signed(Path(self._tmp.name))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.ca_file = str(cert)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-dfs", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @property
    def port(self) -> int:
        assert self._server is not None, "the fake is not running"
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        """Path-style account URL, as for Azurite: <scheme>://127.0.0.1:<port>/<account>."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/{self.account}"

    # --- state helpers for tests (no HTTP) --------------------------------------------------
    def create_filesystem(self, name: str) -> None:
        with self._lock:
            self.filesystems.setdefault(name, {})

    def mkdir(self, fs: str, path: str) -> None:
        with self._lock:
            self._create(fs, path, is_dir=True, data=b"")

    def put_file(self, fs: str, path: str, data: bytes = b"") -> None:
        with self._lock:
            self._create(fs, path, is_dir=False, data=data)

    def paths(self, fs: str, under: str = "") -> dict[str, str]:
        """Every path (below `under`) and its resource type: 'directory' or 'file'."""
        with self._lock:
            tree = self.filesystems[fs]
            prefix = under.strip("/") + "/" if under.strip("/") else ""
            return {
                p: "directory" if n.is_dir else "file"
                for p, n in sorted(tree.items())
                if p.startswith(prefix)
            }

    def read(self, fs: str, path: str) -> bytes:
        with self._lock:
            return self.filesystems[fs][path.strip("/")].data

    def inject(self, prefix: str, status: int, code: str, times: int | None = None) -> None:
        """Fail requests for paths under `prefix` ('<fs>/<path>') with `status`/`code`."""
        with self._lock:
            self.faults.append(_Fault(prefix.strip("/"), status, code, times))

    def log(self) -> list[str]:
        with self._lock:
            return [r.line() for r in self.requests]

    # --- the namespace -----------------------------------------------------------------------
    def _tree(self, fs: str) -> dict[str, Node]:
        if fs not in self.filesystems:
            raise DfsError(404, "FilesystemNotFound")
        return self.filesystems[fs]

    def _node(self, is_dir: bool, data: bytes = b"") -> Node:
        etag = f'"0x8DC{next(self._etags):013X}"'
        return Node(is_dir, etag, dt.datetime.now(dt.UTC).timestamp(), data)

    def _create(
        self, fs: str, path: str, *, is_dir: bool, data: bytes, if_none_match: str | None = None
    ) -> Node:
        tree = self._tree(fs)
        path = path.strip("/")
        existing = tree.get(path)
        if existing is not None and if_none_match == "*":
            raise DfsError(409, "PathAlreadyExists")
        if existing is not None and existing.is_dir != is_dir:
            raise DfsError(409, "PathConflict")
        parts = path.split("/")
        for i in range(1, len(parts)):  # the service creates missing parents
            parent = "/".join(parts[:i])
            node = tree.get(parent)
            if node is None:
                tree[parent] = self._node(True)
            elif not node.is_dir:
                raise DfsError(409, "PathConflict")
        if existing is not None and is_dir:  # an existing directory keeps its children
            existing.etag = self._node(True).etag
            existing.modified = dt.datetime.now(dt.UTC).timestamp()
            return existing
        tree[path] = self._node(is_dir, data)
        return tree[path]

    @staticmethod
    def _children(tree: dict[str, Node], path: str) -> list[str]:
        prefix = path + "/"
        return [p for p in tree if p.startswith(prefix)]

    def _delete(self, fs: str, path: str, recursive: bool) -> None:
        tree = self._tree(fs)
        node = tree.get(path)
        if node is None:
            raise DfsError(404, "PathNotFound")
        children = self._children(tree, path) if node.is_dir else []
        if children and not recursive:
            raise DfsError(409, "DirectoryNotEmpty")
        for child in children:
            del tree[child]
        del tree[path]

    def _rename(self, fs: str, dst: str, source: str, if_none_match: str | None) -> Node:
        src_fs, _, src = unquote(source.split("?", 1)[0]).strip("/").partition("/")
        src_tree = self._tree(src_fs)
        dst_tree = self._tree(fs)
        node = src_tree.get(src)
        if not src or node is None:
            raise DfsError(404, "SourcePathNotFound")
        if src_fs == fs and (dst == src or dst.startswith(src + "/")):
            raise DfsError(400, "InvalidRenameSourcePath")
        parent = dst.rpartition("/")[0]
        if parent and not (parent in dst_tree and dst_tree[parent].is_dir):
            raise DfsError(404, "RenameDestinationParentPathNotFound")
        existing = dst_tree.get(dst)
        if existing is not None and (if_none_match == "*" or existing.is_dir):
            raise DfsError(409, "PathAlreadyExists")
        if existing is not None and node.is_dir:
            raise DfsError(409, "PathConflict")
        moved = {src: node} | {c: src_tree[c] for c in self._children(src_tree, src)}
        for old in moved:
            del src_tree[old]
        for old, moved_node in moved.items():
            dst_tree[dst + old[len(src) :]] = moved_node
        return node

    def _list(self, fs: str, directory: str, recursive: bool) -> list[dict[str, Any]]:
        tree = self._tree(fs)
        directory = directory.strip("/")
        if directory and not (directory in tree and tree[directory].is_dir):
            raise DfsError(404, "PathNotFound")
        prefix = directory + "/" if directory else ""
        found = []
        for path, node in sorted(tree.items()):
            if not path.startswith(prefix):
                continue
            if not recursive and "/" in path[len(prefix) :]:
                continue
            entry = {
                "name": path,
                "lastModified": formatdate(node.modified, usegmt=True),
                "etag": node.etag.strip('"'),
                "contentLength": str(len(node.data)),
                "owner": "$superuser",
                "group": "$superuser",
                "permissions": "rwxr-x---",
            }
            if node.is_dir:
                entry["isDirectory"] = "true"
            found.append(entry)
        return found

    def _fault_for(self, *paths: str) -> _Fault | None:
        for fault in self.faults:
            if fault.remaining == 0:
                continue
            if any(p == fault.prefix or p.startswith(fault.prefix + "/") for p in paths if p):
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None


class _Handler(BaseHTTPRequestHandler):
    fake: FakeDfs
    protocol_version = "HTTP/1.1"
    server_version = "FakeDfs/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    # --- dispatch ------------------------------------------------------------------------------
    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        parts = [unquote(p) for p in url.path.split("/") if p]
        if parts and parts[0] == self.fake.account:
            parts = parts[1:]
        fs, path = (parts[0], "/".join(parts[1:])) if parts else ("", "")
        auth_header = self.headers.get("Authorization") or ""
        auth = auth_header.split(" ", 1)[0] if auth_header else ("sas" if "sig" in query else "none")
        record = Request(
            self.command,
            f"{fs}/{path}".strip("/"),
            query,
            {k.lower(): v for k, v in self.headers.items() if k.lower().startswith(("x-ms-", "if-"))},
            auth,
        )
        with self.fake._lock:
            self.fake.requests.append(record)
            try:
                if auth == "none":
                    raise DfsError(401, "NoAuthenticationInformation")
                source = self.headers.get("x-ms-rename-source")
                source_path = unquote(source.split("?", 1)[0]).strip("/") if source else ""
                fault = self.fake._fault_for(f"{fs}/{path}".strip("/"), source_path)
                if fault is not None:
                    raise DfsError(fault.status, fault.code)
                status, headers, payload = self._operation(fs, path, query, body)
            except DfsError as err:
                status, headers, payload = self._error(err)
            record.status = status
        self._respond(status, headers, payload)

    def _operation(self, fs: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        fake = self.fake
        method = self.command
        resource = query.get("resource")
        if not fs:
            raise DfsError(400, "InvalidQueryParameterValue", "Name a filesystem.")
        if not path:  # filesystem operations
            if method == "PUT" and resource == "filesystem":
                if fs in fake.filesystems:
                    raise DfsError(409, "FilesystemAlreadyExists")
                fake.filesystems[fs] = {}
                return 201, {"ETag": '"0x8DC0000000000000"', "Last-Modified": _now()}, b""
            if method == "GET" and resource == "filesystem":
                return self._list_paths(fs, query)
            if method == "HEAD":
                fake._tree(fs)
                return 200, {}, b""
            raise DfsError(400, "UnsupportedHttpVerb")
        if method == "PUT":
            if_none_match = self.headers.get("If-None-Match")
            source = self.headers.get("x-ms-rename-source")
            if source:
                node = fake._rename(fs, path, source, if_none_match)
                return 201, {"ETag": node.etag, "Last-Modified": _http_date(node.modified)}, b""
            if resource in ("directory", "file"):
                node = fake._create(
                    fs, path, is_dir=resource == "directory", data=b"", if_none_match=if_none_match
                )
                return 201, {"ETag": node.etag, "Last-Modified": _http_date(node.modified)}, b""
            raise DfsError(400, "InvalidQueryParameterValue", "resource must be directory or file.")
        if method == "DELETE":
            recursive = query.get("recursive", "").lower()
            if recursive not in ("true", "false", ""):
                raise DfsError(400, "InvalidQueryParameterValue")
            fake._delete(fs, path, recursive == "true")
            return 200, {}, b""
        if method == "HEAD":
            node = fake._tree(fs).get(path)
            if node is None:
                raise DfsError(404, "PathNotFound")
            headers = {
                "ETag": node.etag,
                "Last-Modified": _http_date(node.modified),
                "x-ms-resource-type": "directory" if node.is_dir else "file",
                "x-ms-owner": "$superuser",
                "x-ms-group": "$superuser",
                "x-ms-permissions": "rwxr-x---",
                # what the Blob API's Get Blob Properties returns for the same path
                "x-ms-blob-type": "BlockBlob",
                "x-ms-creation-time": _http_date(node.modified),
                "Content-Type": "application/octet-stream",
                "x-ms-content-length": str(len(node.data)),
            }
            if node.is_dir:
                headers["x-ms-meta-hdi_isfolder"] = "true"
            return 200, headers, b""
        if method == "GET":
            node = fake._tree(fs).get(path)
            if node is None or node.is_dir:
                raise DfsError(404, "PathNotFound")
            return 200, {"ETag": node.etag, "Content-Type": "application/octet-stream"}, node.data
        raise DfsError(400, "UnsupportedHttpVerb")

    def _list_paths(self, fs: str, query: dict[str, str]) -> tuple[int, dict, bytes]:
        recursive = query.get("recursive", "").lower()
        if recursive not in ("true", "false"):
            raise DfsError(400, "InvalidQueryParameterValue", "recursive is required.")
        found = self.fake._list(fs, query.get("directory", ""), recursive == "true")
        start = int(query.get("continuation") or 0)
        limit = min(int(query.get("maxResults") or query.get("maxresults") or 5000), 5000)
        page = found[start : start + limit]
        headers = {"Content-Type": "application/json;charset=utf-8"}
        if start + limit < len(found):
            headers["x-ms-continuation"] = str(start + limit)
        return 200, headers, json.dumps({"paths": page}).encode()

    def _error(self, err: DfsError) -> tuple[int, dict, bytes]:
        message = f"{err.message}\nRequestId:{uuid.uuid4()}\nTime:{dt.datetime.now(dt.UTC).isoformat()}"
        headers = {"x-ms-error-code": err.code, "Content-Type": "application/json;charset=utf-8"}
        return err.status, headers, json.dumps({"error": {"code": err.code, "message": message}}).encode()

    def _respond(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        self.send_header("x-ms-version", self.headers.get("x-ms-version") or DEFAULT_VERSION)
        client_id = self.headers.get("x-ms-client-request-id")
        if client_id:
            self.send_header("x-ms-client-request-id", client_id)
        for name, value in headers.items():
            self.send_header(name, value)
        if self.command == "HEAD":
            self.send_header("Content-Length", headers.get("x-ms-content-length", "0"))
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _now() -> str:
    return formatdate(usegmt=True)


def _http_date(timestamp: float) -> str:
    return formatdate(timestamp, usegmt=True)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost and its key, written to `folder`."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-dfs")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@contextlib.contextmanager
def running_fake_dfs(account: str = "fakeacct", *, tls: bool = False) -> Iterator[FakeDfs]:
    fake = FakeDfs(account=account, tls=tls).start()
    try:
        yield fake
    finally:
        fake.stop()
