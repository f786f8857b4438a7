"""The package as a user installs it: the built wheel, into a fresh virtual environment (its
dependencies from the package index, nothing from this checkout), runs `hygge --version` and the
whole demo from an empty folder. Slow: the install alone takes a minute or more."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done


def test_the_wheel_installs_into_a_fresh_venv_and_runs_the_demo_anywhere(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)], tmp_path)
    [wheel] = wheels.glob("hygge-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    python, hygge = venv / "bin" / "python", venv / "bin" / "hygge"
    _run([str(python), "-m", "pip", "install", "-q", str(wheel)], tmp_path)

    empty = tmp_path / "somewhere"
    empty.mkdir()
    where = _run([str(python), "-c", "import hygge; print(hygge.__file__)"], empty).stdout.strip()
    assert where.startswith(str(venv)), where  # the installed package, not this checkout
    assert _run([str(hygge), "--version"], empty).stdout.startswith("hygge ")
    shown = _run([str(hygge), "demo", "--customers", "300"], empty).stdout
    assert "MATCH, 0 DIFFER, 0 ERROR" in shown, shown[-2000:]
    assert (empty / ".hygge_demo" / "hygge.yml").exists()
