"""Peak memory of subprocess trees, sampled while they run (for the stress tests).

A thread reads every process of each tree every 50 ms: the RSS summed over the tree (the
figure bench/run.py reports as tree RSS) and each process's ``VmHWM`` from /proc, the kernel's
own high-water mark of that process's RSS. VmHWM only grows, so its last sample before a
process exits catches a spike that fell between two RSS samples (bar the last 50 ms). A
process's VmHWM starts afresh at exec, so, unlike ``ru_maxrss`` of a child spawned from this
(large) pytest process, it is not floored at the parent's memory.

MB means 10^6 bytes, as in bench/.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

MB = 1_000_000
INTERVAL_S = 0.05


@dataclass
class TreePeak:
    """What was seen of one process tree."""

    peak_rss: int = 0  # largest sampled sum of RSS over the tree, bytes
    peak_hwm: int = 0  # largest VmHWM of any single process in the tree, bytes
    samples: int = 0

    @property
    def peak_mb(self) -> float:
        """The tree's peak in MB: the larger of the sampled tree RSS and any process's VmHWM."""
        return max(self.peak_rss, self.peak_hwm) / MB


@dataclass
class Measured:
    """One finished command: exit code, wall time, peak memory and its output."""

    name: str
    returncode: int
    wall_s: float
    peak: TreePeak
    stdout: str
    stderr: str
    over_limit: bool = False  # killed because some tree passed run_all's limit_mb

    @property
    def peak_mb(self) -> float:
        """Peak memory of the command's process tree in MB (see TreePeak.peak_mb)."""
        return self.peak.peak_mb


@dataclass
class RunSet:
    """Several commands run at once, and the largest sum of their trees' RSS at one instant."""

    runs: dict[str, Measured] = field(default_factory=dict)
    peak_total_rss: int = 0

    @property
    def peak_total_mb(self) -> float:
        """Largest sampled total RSS over all the trees together, in MB."""
        return self.peak_total_rss / MB


def _status(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) of a process in bytes, or None if it is gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024  # reported in kB
    if "VmRSS" not in values:  # a zombie has no memory lines
        return None
    return values["VmRSS"], values.get("VmHWM", values["VmRSS"])


class TreeSampler:
    """Samples the process trees rooted at the given pids in a background thread until stopped."""

    def __init__(self, roots: Mapping[str, int], interval: float = INTERVAL_S) -> None:
        """Trees named by their root pids, sampled every `interval` seconds once started."""
        self.roots = dict(roots)
        self.interval = interval
        self.peaks = {name: TreePeak() for name in self.roots}
        self.peak_total_rss = 0
        self._hwm: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._handles: dict[str, psutil.Process | None] = {}
        for name, pid in self.roots.items():
            try:
                self._handles[name] = psutil.Process(pid)
            except psutil.NoSuchProcess:
                self._handles[name] = None

    def _tree(self, name: str) -> list[int]:
        """Pids of a root and all its descendants (empty once the root is gone)."""
        root = self._handles[name]
        if root is None:
            return []
        try:
            return [root.pid] + [child.pid for child in root.children(recursive=True)]
        except psutil.Error:
            return []

    def sample(self) -> None:
        """Take one sample of every tree."""
        total = 0
        for name in self.roots:
            tree_rss = 0
            peak = self.peaks[name]
            for pid in self._tree(name):
                status = _status(pid)
                if status is None:
                    continue
                rss, hwm = status
                tree_rss += rss
                peak.peak_hwm = max(peak.peak_hwm, hwm)
            peak.peak_rss = max(peak.peak_rss, tree_rss)
            peak.samples += 1
            total += tree_rss
        self.peak_total_rss = max(self.peak_total_rss, total)

    def _run(self) -> None:
        """The sampling loop of the background thread."""
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def start(self) -> TreeSampler:
        """Start sampling in the background."""
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop.set()
        self._thread.join()


def _kill_group(process: subprocess.Popen) -> None:
    """Kill a process started in its own session, with everything it started."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run_all(
    commands: Mapping[str, Sequence[str]],
    *,
    env: Mapping[str, str],
    cwd: Path,
    timeout: float,
    interval: float = INTERVAL_S,
    limit_mb: float | None = None,
) -> RunSet:
    """Start every command at once, sample their trees until all exit; kill all on timeout.

    With `limit_mb`, a tree whose peak passes it is killed at once (protecting a shared machine; its
    peak is then known to be at least the limit) and its Measured says over_limit.
    """
    with contextlib.ExitStack() as stack:
        processes: dict[str, subprocess.Popen] = {}
        outputs: dict[str, tuple] = {}
        began: dict[str, float] = {}
        ended: dict[str, float] = {}
        over: set[str] = set()
        try:
            for name, cmd in commands.items():
                out = stack.enter_context(tempfile.TemporaryFile())
                err = stack.enter_context(tempfile.TemporaryFile())
                outputs[name] = (out, err)
                began[name] = time.perf_counter()
                # Own session: a timeout kills the whole tree, whatever it started.
                processes[name] = subprocess.Popen(
                    list(cmd), env=dict(env), cwd=cwd, stdout=out, stderr=err, start_new_session=True
                )
            sampler = TreeSampler({name: p.pid for name, p in processes.items()}, interval).start()
            deadline = time.perf_counter() + timeout
            try:
                while len(ended) < len(processes):
                    for name, process in processes.items():
                        if name in ended:
                            continue
                        if limit_mb is not None and sampler.peaks[name].peak_mb > limit_mb:
                            over.add(name)
                            _kill_group(process)
                        if process.poll() is not None:
                            ended[name] = time.perf_counter()
                    if time.perf_counter() > deadline:
                        raise TimeoutError(
                            f"still running after {timeout:.0f} s: "
                            + ", ".join(sorted(set(processes) - set(ended)))
                        )
                    time.sleep(0.02)
            finally:
                sampler.stop()
        finally:
            for process in processes.values():
                if process.poll() is None:
                    _kill_group(process)
        result = RunSet(peak_total_rss=sampler.peak_total_rss)
        for name, process in processes.items():
            out, err = outputs[name]
            out.seek(0)
            err.seek(0)
            result.runs[name] = Measured(
                name=name,
                returncode=process.returncode,
                wall_s=ended[name] - began[name],
                peak=sampler.peaks[name],
                stdout=out.read().decode(errors="replace"),
                stderr=err.read().decode(errors="replace"),
                over_limit=name in over,
            )
        return result


def run_one(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    timeout: float,
    interval: float = INTERVAL_S,
    limit_mb: float | None = None,
) -> Measured:
    """Run one command to completion, sampling its process tree's memory."""
    runs = run_all({"run": cmd}, env=env, cwd=cwd, timeout=timeout, interval=interval, limit_mb=limit_mb)
    return runs.runs["run"]
