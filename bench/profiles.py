"""Sampling profiles of a running server with py-spy, and a text summary of them.

py-spy is a measuring tool and no dependency of Clarion: install it in the
environment that runs the benchmark (``pip install py-spy``). It attaches to
the server by PID, which needs ptrace permission over that process.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

SAMPLES_PER_SECOND = 250
ATTACH_SECONDS = 0.5
"""Time py-spy needs to attach before the measured phase starts."""


def find_py_spy() -> str:
    """Return the py-spy executable next to this Python or on PATH.

    Raises:
        FileNotFoundError: py-spy is not installed.
    """
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    found = shutil.which("py-spy")
    if found is None:
        raise FileNotFoundError(
            "py-spy not found: install it with 'pip install py-spy'"
        )
    return found


def start(pid: int, output: Path) -> subprocess.Popen:
    """Start sampling process ``pid`` into ``output`` as collapsed stacks."""
    return subprocess.Popen(
        [
            find_py_spy(),
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(SAMPLES_PER_SECOND),
            "--format",
            "raw",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """Stop the py-spy process that ``start`` returned; it writes its output on
    SIGINT."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _frame_name(frame: str, with_line: bool) -> str:
    # py-spy writes "function (path/to/file.py:line)".
    name, _, location = frame.partition(" (")
    path, _, line = location.rstrip(")").rpartition(":")
    marker = "/src/"
    if marker in path:
        path = path.split(marker, 1)[1]
    else:
        path = Path(path).name
    return f"{name} ({path}:{line})" if with_line else f"{name} ({path})"


def summarize(path: Path, top: int = 12) -> dict:
    """Return the share of samples per source line on top of the stack (self
    time), and per function anywhere on the stack (total time)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[_frame_name(frames[-1], with_line=True)] += count
        for name in {_frame_name(frame, with_line=False) for frame in frames}:
            total[name] += count
    if not samples:
        return {"samples": 0, "self": [], "total": []}
    # Frames on nearly every stack (the entry point, asyncio.run) tell nothing.
    inner = Counter(
        {name: count for name, count in total.items() if count < 0.99 * samples}
    )
    return {
        "samples": samples,
        "self": [
            [name, round(100 * count / samples, 1)]
            for name, count in own.most_common(top)
        ],
        "total": [
            [name, round(100 * count / samples, 1)]
            for name, count in inner.most_common(top)
        ],
    }
