"""Start a throwaway PostgreSQL server for tests and benchmarks.

Usage::

    with running_postgres(Path(tempfile.mkdtemp())) as url:
        ...  # url == "postgresql://postgres@127.0.0.1:<port>/postgres"

The server runs from ``initdb`` binaries found on PATH (or in /usr/lib/postgresql/*/bin),
trusts every local connection, listens on 127.0.0.1 only, and is tuned for speed rather than
durability (fsync off). When the process runs as root the server runs as the ``postgres`` OS
user, because PostgreSQL refuses to run as root.

If the environment variable ``HYGGE_TEST_PG_URL`` is set, that server is used instead and
nothing is started or removed.

This module deliberately imports nothing outside the standard library so that both the pytest
fixtures (tests/conftest.py) and the benchmark runner (bench/run.py) can load it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

ENV_URL = "HYGGE_TEST_PG_URL"
PG_OS_USER = "postgres"


class PostgresServerError(RuntimeError):
    """The throwaway server could not be created, started or stopped."""


def find_pg_binary(name: str) -> str:
    """Absolute path of a PostgreSQL server binary (initdb, pg_ctl), newest version first."""
    found = shutil.which(name)
    if found:
        return found

    def version_key(path: str) -> tuple[int, ...]:
        version = Path(path).parent.parent.name
        return tuple(int(p) for p in version.split(".") if p.isdigit())

    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=version_key)
    if candidates:
        return candidates[-1]
    raise PostgresServerError(
        f"PostgreSQL binary {name!r} not found on PATH nor in /usr/lib/postgresql/*/bin. "
        f"Install the PostgreSQL server (e.g. apt-get install postgresql) or point "
        f"{ENV_URL} at an existing server."
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_root() -> bool:
    return os.geteuid() == 0


def _pg_command(args: list[str]) -> list[str]:
    """Prefix a command so it runs as the postgres OS user when we are root."""
    if _as_root():
        return ["runuser", "-u", PG_OS_USER, "--", *args]
    return args


def _run(args: list[str], what: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = _pg_command(args)
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=timeout)
    except subprocess.CalledProcessError as exc:
        raise PostgresServerError(
            f"{what} failed (exit {exc.returncode}): {' '.join(cmd)}\n{exc.stdout}\n{exc.stderr}".rstrip()
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise PostgresServerError(f"{what} timed out after {timeout}s: {' '.join(cmd)}") from exc


def _pg_user_can_use(directory: Path) -> bool:
    """True if the postgres OS user can reach and write ``directory`` (all parents +x)."""
    probe = subprocess.run(
        _pg_command(["test", "-x", str(directory), "-a", "-w", str(directory)]),
        capture_output=True,
    )
    return probe.returncode == 0


def _prepare_dir(base_dir: Path) -> Path:
    """Return the directory the server will live in (created if missing).

    As root, ``base_dir`` is chowned to the postgres user. If the postgres user still cannot
    reach it (pytest's /tmp/pytest-of-root is mode 0700, for example), a world-traversable
    directory from tempfile.mkdtemp is used instead.
    """
    base_dir.mkdir(parents=True, exist_ok=True)
    if not _as_root():
        return base_dir

    try:
        pg = pwd.getpwnam(PG_OS_USER)
    except KeyError as exc:
        raise PostgresServerError(
            f"running as root but there is no {PG_OS_USER!r} OS user to run the server as"
        ) from exc

    def hand_over(directory: Path) -> None:
        directory.chmod(0o755)
        os.chown(directory, pg.pw_uid, pg.pw_gid)

    hand_over(base_dir)
    if _pg_user_can_use(base_dir):
        return base_dir

    shutil.rmtree(base_dir, ignore_errors=True)
    fallback = Path(tempfile.mkdtemp(prefix="hygge-pg-"))
    hand_over(fallback)
    if not _pg_user_can_use(fallback):
        shutil.rmtree(fallback, ignore_errors=True)
        raise PostgresServerError(f"the {PG_OS_USER!r} OS user can use neither {base_dir} nor {fallback}")
    return fallback


def _postmaster_pid(data_dir: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    return None


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    with contextlib.suppress(OSError, IndexError):
        # /proc/<pid>/stat: "pid (comm) state ..."; comm may contain spaces.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


def _stop(pg_ctl: str, data_dir: Path) -> None:
    """Fast shutdown; if that fails, immediate shutdown (SIGQUIT), then SIGKILL."""
    pid = _postmaster_pid(data_dir)
    try:
        _run([pg_ctl, "-D", str(data_dir), "-m", "fast", "-w", "-t", "30", "stop"], "pg_ctl stop")
        return
    except PostgresServerError:
        if pid is None:
            return
    for sig in (signal.SIGQUIT, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.1)
        if not _pid_alive(pid):
            return


def _log_tail(log_file: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])
    return "(no server log)"


def _setting_options(settings: Mapping[str, str | int] | None) -> str:
    """Extra server settings as pg_ctl ``-o`` text (``-c name=value`` each), validated."""
    parts = []
    for name, value in (settings or {}).items():
        text = str(value)
        plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name) and re.fullmatch(r"[A-Za-z0-9_.:/+-]+", text)
        if not plain:
            raise PostgresServerError(f"server setting {name}={text!r} is not a plain name=value pair")
        parts.append(f" -c {name}={text}")
    return "".join(parts)


@contextlib.contextmanager
def running_postgres(
    base_dir: Path | None = None, settings: Mapping[str, str | int] | None = None
) -> Iterator[str]:
    """Run a throwaway PostgreSQL server in ``base_dir`` and yield its connection URL.

    ``base_dir`` (data, socket, log) is removed when the context exits; if the postgres OS
    user cannot reach it, a fresh directory from tempfile.mkdtemp is used (and removed).
    ``settings`` adds server settings (e.g. ``{"wal_level": "logical"}`` for logical decoding).
    With ``HYGGE_TEST_PG_URL`` set, yield that URL instead and do nothing else (the external
    server's own settings apply).
    """
    external = os.environ.get(ENV_URL)
    if external:
        yield external
        return

    extra = _setting_options(settings)
    initdb = find_pg_binary("initdb")
    pg_ctl = find_pg_binary("pg_ctl")
    if base_dir is None:
        base_dir = Path(tempfile.mkdtemp(prefix="hygge-pg-"))
    server_dir = _prepare_dir(Path(base_dir).resolve())
    data_dir = server_dir / "data"
    log_file = server_dir / "postgres.log"
    started = False
    try:
        _run(
            [
                initdb,
                "-D",
                str(data_dir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            "initdb",
        )
        # The port is free when chosen but could be taken before the server binds it:
        # retry a few times with a new port.
        for attempt in range(3):
            port = free_port()
            options = (
                f"-p {port} -k {server_dir} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off" + extra
            )
            try:
                _run(
                    [
                        pg_ctl,
                        "-D",
                        str(data_dir),
                        "-o",
                        options,
                        "-l",
                        str(log_file),
                        "-w",
                        "-t",
                        "60",
                        "start",
                    ],
                    "pg_ctl start",
                )
                started = True
                break
            except PostgresServerError as exc:
                # pg_ctl may leave a half-started server behind on timeout.
                _stop(pg_ctl, data_dir)
                if attempt == 2 or "in use" not in _log_tail(log_file):
                    raise PostgresServerError(
                        f"{exc}\n--- server log ({log_file}) ---\n{_log_tail(log_file)}"
                    ) from exc
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            _stop(pg_ctl, data_dir)
        shutil.rmtree(server_dir, ignore_errors=True)


if __name__ == "__main__":  # manual smoke test: python tests/pg_server.py
    with running_postgres() as url:
        print(url)
