"""The servers under test, as child processes on 127.0.0.1 that are stopped by
PID, and samples of their counters from /proc."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import procstat

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
HOST = "127.0.0.1"
START_TIMEOUT = 15.0
"""Seconds a server (or Redis) has to listen after it starts."""
STOP_TIMEOUT = 10.0
TCP_LISTEN_STATE = "0A"
"""The LISTEN state in /proc/net/tcp."""


@dataclass(frozen=True)
class Server:
    name: str
    program: str
    """clarion or ceiling."""
    workers: int = 1
    redis: bool = False
    """Share state through a redis-server that the run starts."""
    source: Path | None = None
    """A Clarion ``src`` directory to run instead of the installed package."""

    def environment(self) -> dict[str, str] | None:
        """Return the environment for the server process, or None to inherit."""
        if self.source is None:
            return None
        # PYTHONPATH comes before the editable install's path entry.
        return {**os.environ, "PYTHONPATH": str(self.source)}

    def command(self, port: int, config: Path, redis_url: str | None) -> list[str]:
        if self.program == "ceiling":
            return [sys.executable, str(BENCH_DIR / "ceiling.py"), "--port", str(port)]
        command = [
            sys.executable,
            "-m",
            "clarion",
            "serve",
            "--port",
            str(port),
            "--config",
            str(config),
            "--log-level",
            "WARNING",
        ]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        if redis_url is not None:
            command += ["--redis-url", redis_url]
        return command


SERVERS = {
    server.name: server
    for server in (
        Server("clarion", "clarion"),
        Server("ceiling", "ceiling"),
        Server("clarion-redis-1w", "clarion", workers=1, redis=True),
        Server("clarion-redis-2w", "clarion", workers=2, redis=True),
    )
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def listening_sockets(port: int) -> int:
    """Return how many sockets listen on ``port`` of 127.0.0.1, from
    /proc/net/tcp; SO_REUSEPORT lets several processes listen on one port."""
    local = f"0100007F:{port:04X}"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == TCP_LISTEN_STATE:
            count += 1
    return count


def wait_listening(
    port: int, process: subprocess.Popen, sockets: int, timeout: float
) -> None:
    """Wait until ``sockets`` sockets listen on ``port`` and one accepts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode}")
        if listening_sockets(port) >= sockets:
            try:
                with socket.create_connection((HOST, port), timeout=0.5):
                    return
            except OSError:
                pass
        time.sleep(0.05)
    raise TimeoutError(
        f"{sockets} socket(s) did not listen on port {port} within {timeout:.0f} s"
    )


def stop_process(process: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> None:
    """Stop one process that this script started: SIGTERM, then SIGKILL."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def start_redis(work_dir: Path) -> tuple[subprocess.Popen, str]:
    """Start an empty redis-server on a free port of 127.0.0.1, without
    persistence; return it and its URL.

    Raises:
        FileNotFoundError: redis-server is not on PATH.
    """
    executable = shutil.which("redis-server")
    if executable is None:
        raise FileNotFoundError(
            "redis-server not found on PATH: install the redis-server package"
        )
    port = free_port()
    log_path = work_dir / f"redis-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                executable,
                "--bind",
                HOST,
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(work_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_listening(port, process, 1, START_TIMEOUT)
    except (RuntimeError, TimeoutError):
        stop_process(process)
        raise
    return process, f"redis://{HOST}:{port}/0"


@dataclass
class Sample:
    """The counters of a server's processes and the machine's CPU time at one
    moment. A server is its process and that process's children (the workers
    under a supervisor), plus Redis when it has one."""

    user: float
    system: float
    writes: int
    rss: int
    redis_cpu: float
    machine_busy: float

    @property
    def cpu(self) -> float:
        """CPU seconds of the server's processes and of its Redis."""
        return self.user + self.system + self.redis_cpu

    @classmethod
    def take(cls, pid: int, redis_pid: int | None = None) -> Sample:
        user = system = 0.0
        writes = rss = 0
        for member in procstat.process_tree(pid):
            try:
                member_user, member_system = procstat.process_cpu_times(member)
                writes += procstat.write_calls(member)
                rss += procstat.rss_bytes(member)
            except (OSError, ValueError):
                # A worker can exit between the listing and the read.
                continue
            user += member_user
            system += member_system
        redis_cpu = 0.0
        if redis_pid is not None:
            redis_cpu = procstat.process_cpu_seconds(redis_pid)
        return cls(
            user=user,
            system=system,
            writes=writes,
            rss=rss,
            redis_cpu=redis_cpu,
            machine_busy=procstat.machine_cpu().busy,
        )
