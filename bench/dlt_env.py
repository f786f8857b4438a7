"""The separate virtualenv the dlt comparison runs in (bench/.venv-dlt).

    python bench/dlt_env.py          # build it if needed, print its python

dlt is not a hygge dependency, and installing it next to hygge would let its dependency tree
(fsspec, s3fs, botocore, pendulum, ...) change what hygge itself runs with. So the dlt scenarios
run ``bench/dlt_load.py`` with their own interpreter: a ``python -m venv`` made with the same
interpreter that calls this module, holding exactly ``bench/dlt-requirements.txt``.

The venv is built once and reused while a stamp file inside it matches the requirements file
and the interpreter version; otherwise it is removed and rebuilt. A lock file next to it keeps
two concurrent callers from building it at the same time. Packages come from the same place as
every other ``pip install`` here (pip's own configuration; the machine's global constraint
file only caps torch, which this environment does not use, so it is left in force).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

VENV_NAME = ".venv-dlt"
REQUIREMENTS_NAME = "dlt-requirements.txt"
STAMP_NAME = ".requirements-stamp"


def _log(message: str) -> None:
    print(f"dlt_env: {message}", file=sys.stderr, flush=True)


def venv_python(venv: Path) -> Path:
    """The venv's interpreter. Not resolved: the symlink target is the base interpreter."""
    return venv / "bin" / "python"


def requirements_stamp(requirements: Path) -> str:
    """What the venv was built from: the requirements file's bytes and this Python's version."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    return (
        f"sha256={digest} python={sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}\n"
    )


def _is_current(venv: Path, stamp: str) -> bool:
    stamp_file = venv / STAMP_NAME
    try:
        return stamp_file.read_text() == stamp and venv_python(venv).exists()
    except OSError:
        return False


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        tail = "\n".join(output[-30:])
        raise RuntimeError(f"{what} failed (exit {result.returncode}): {' '.join(cmd)}\n{tail}")


def _build(venv: Path, requirements: Path, stamp: str) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    _log(f"creating {venv} with {sys.executable} (Python {sys.version.split()[0]})")
    _run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
    python = str(venv_python(venv))
    _log(f"installing {requirements.name} (a minute or two)")
    _run(
        [python, "-m", "pip", "install", "--disable-pip-version-check", "-r", str(requirements)],
        "pip install",
    )
    _run([python, "-m", "pip", "check"], "pip check")
    _run([python, "-c", "import dlt, connectorx, deltalake, pyarrow, sqlalchemy, psycopg"], "import check")
    # Written last: an interrupted or failed build leaves no stamp and is rebuilt next time.
    (venv / STAMP_NAME).write_text(stamp)
    _log("ready")


def ensure_dlt_python(bench_dir: Path) -> Path:
    """Path of the python in ``bench_dir/.venv-dlt``, building the venv first if it is missing
    or was built from another ``dlt-requirements.txt`` or Python version."""
    bench_dir = Path(bench_dir).resolve()
    venv = bench_dir / VENV_NAME
    requirements = bench_dir / REQUIREMENTS_NAME
    stamp = requirements_stamp(requirements)
    if _is_current(venv, stamp):
        return venv_python(venv)
    lock_path = bench_dir / f"{VENV_NAME}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if not _is_current(venv, stamp):  # someone else may have built it while we waited
            try:
                _build(venv, requirements, stamp)
            except BaseException:
                shutil.rmtree(venv, ignore_errors=True)
                raise
    return venv_python(venv)


def main() -> int:
    bench_dir = Path(__file__).resolve().parent
    try:
        python = ensure_dlt_python(bench_dir)
    except (RuntimeError, OSError) as exc:
        print(f"dlt_env: {exc}", file=sys.stderr)
        return 1
    print(os.fspath(python))
    return 0


if __name__ == "__main__":
    sys.exit(main())
