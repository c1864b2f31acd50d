"""An nginx child process with its own prefix, pid file and logs in a test
directory, listening only on 127.0.0.1, stopped by its PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
DEPLOY_NGINX = REPO / "deploy" / "nginx"
WAIT_TIMEOUT = 10.0


def nginx_executable() -> str:
    """Return the nginx binary, or raise with the setup step that is missing."""
    executable = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if executable is None:
        raise RuntimeError(
            "nginx not found: install Debian's nginx package (scripts/test.sh does)"
        )
    return executable


def main_config(directory: Path, http_block: str) -> str:
    """Return an nginx.conf that runs in the foreground and keeps its pid file,
    logs and temporary files in ``directory``, around ``http_block``."""
    temp_paths = "\n".join(
        f"    {name}_temp_path {directory / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""daemon off;
worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} info;
events {{
    worker_connections 256;
}}
http {{
    access_log {directory / "access.log"};
{temp_paths}
{http_block}
}}
"""


class NginxProcess:
    """nginx with ``config`` (a whole nginx.conf) in the prefix ``directory``."""

    def __init__(self, directory: Path, config: str) -> None:
        self.directory = directory
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.directory / "nginx.conf"

    def command(self, *extra: str) -> list[str]:
        return [
            nginx_executable(),
            "-p",
            str(self.directory),
            "-c",
            str(self.config_path),
            "-e",
            str(self.directory / "error.log"),
            *extra,
        ]

    def write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config, encoding="utf-8")

    def check(self) -> subprocess.CompletedProcess[str]:
        """Run ``nginx -t`` on the config and return the result."""
        self.write_config()
        return subprocess.run(
            self.command("-t"), capture_output=True, text=True, timeout=30, check=False
        )

    def start(self) -> None:
        self.write_config()
        with (self.directory / "stderr.log").open("wb") as stderr:
            self.process = subprocess.Popen(
                self.command(), stdout=subprocess.DEVNULL, stderr=stderr
            )

    def wait_listening(self, port: int) -> None:
        assert self.process is not None
        deadline = time.monotonic() + WAIT_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"nginx exited with code {self.process.returncode}\n{self.logs()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen on port {port}\n{self.logs()}")

    def logs(self) -> str:
        texts = []
        for name in ("stderr.log", "error.log", "access.log"):
            path = self.directory / name
            if path.exists():
                texts.append(f"--- {name} ---\n{path.read_text(errors='replace')}")
        return "\n".join(texts)

    def stop(self) -> None:
        """Stop nginx by its PID: SIGQUIT (graceful), then SIGKILL after 5 s."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGQUIT)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
