"""CPU time and memory of processes and of the machine, read from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def process_cpu_times(pid: int) -> tuple[float, float]:
    """Return the user and the system CPU seconds of one process (not its
    children)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name in brackets may contain spaces, so split after its ")".
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def process_cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU seconds of one process (not its children)."""
    user, system = process_cpu_times(pid)
    return user + system


def process_tree(pid: int) -> list[int]:
    """Return ``pid`` and its living descendants."""
    pids = [pid]
    index = 0
    while index < len(pids):
        current = pids[index]
        index += 1
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pids += [
                    int(child) for child in (task / "children").read_text().split()
                ]
        except OSError:
            continue
    return pids


def tree_cpu_seconds(pid: int) -> float:
    """Return the CPU seconds of ``pid`` and its living descendants."""
    total = 0.0
    for member in process_tree(pid):
        try:
            total += process_cpu_seconds(member)
        except (OSError, ValueError):
            continue
    return total


def write_calls(pid: int) -> int:
    """Return the write system calls of one process, ``syscw`` in /proc/PID/io.

    The kernel counts write(2) and writev(2), which uvloop uses for TCP
    transports, but not send(2) or sendmsg(2).
    """
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "syscw":
            return int(value)
    raise ValueError(f"no syscw line in /proc/{pid}/io")


def rss_bytes(pid: int) -> int:
    """Return the resident set size of one process."""
    resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return resident_pages * PAGE_BYTES


@dataclass(frozen=True)
class MachineCpu:
    """Busy and total CPU seconds of all cores since boot, from /proc/stat."""

    busy: float
    total: float


def machine_cpu() -> MachineCpu:
    line = Path("/proc/stat").read_text().split("\n", 1)[0]
    ticks = [int(value) for value in line.split()[1:]]
    # Fields: user nice system idle iowait irq softirq steal guest guest_nice.
    # Guest time is already counted in user and nice.
    idle = ticks[3] + ticks[4]
    total = sum(ticks[:8])
    return MachineCpu(busy=(total - idle) / CLOCK_TICKS, total=total / CLOCK_TICKS)


def open_files(pid: int) -> int:
    """Return the number of open file descriptors of one process."""
    return len(os.listdir(f"/proc/{pid}/fd"))
