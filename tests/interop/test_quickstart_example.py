"""The README's quickstart: pusher-js and the Python SDK on all four channel types."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from server_process import ServerProcess, free_port, wait_for_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
NODE_MODULES = Path(__file__).resolve().parent / "node" / "node_modules"

pytestmark = pytest.mark.interop


def test_quickstart_delivers_on_every_channel(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Events published by backend.py reach subscribe.mjs on all four channels."""
    # The example's own npm install is a user step. The test runs a copy of it
    # beside the interop suite's pinned pusher-js: ES modules ignore NODE_PATH,
    # so the copy gets a node_modules link.
    example = tmp_path / "quickstart"
    example.mkdir()
    for name in ("backend.py", "subscribe.mjs", "package.json"):
        shutil.copy(EXAMPLE / name, example / name)
    (example / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)

    auth_port = free_port()
    env = {
        **os.environ,
        "QUICKSTART_CLARION_PORT": str(server.port),
        "QUICKSTART_AUTH_PORT": str(auth_port),
    }
    backend = subprocess.Popen(
        [sys.executable, str(example / "backend.py"), "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    subscriber: subprocess.Popen[str] | None = None
    try:
        wait_for_port("127.0.0.1", auth_port, backend)
        subscriber = subprocess.Popen(
            ["node", str(example / "subscribe.mjs")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines = _read_until(subscriber, "subscribed: ", count=4)
        subprocess.run(
            [sys.executable, str(example / "backend.py"), "publish"],
            env=env,
            check=True,
            timeout=30,
            capture_output=True,
        )
        output, _ = subscriber.communicate(timeout=20)
    finally:
        for process in (subscriber, backend):
            if process is not None and process.poll() is None:
                process.kill()
            if process is not None:
                process.communicate(timeout=5)
    received = "\n".join(lines) + output
    for channel in (
        "quickstart",
        "private-quickstart",
        "presence-quickstart",
        "private-encrypted-quickstart",
    ):
        expected = f'{channel}: {{"text":"hello on {channel}"}}'
        assert expected in received, received
    assert "connection: disconnected" in received, received


def _read_until(process: subprocess.Popen[str], prefix: str, count: int) -> list[str]:
    """Read lines until ``count`` of them start with ``prefix``; fail on exit."""
    assert process.stdout is not None
    lines: list[str] = []
    while sum(line.startswith(prefix) for line in lines) < count:
        line = process.stdout.readline()
        if not line:
            pytest.fail("subscribe.mjs exited early:\n" + "".join(lines))
        lines.append(line)
    return lines
