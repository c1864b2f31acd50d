"""The README's quickstart: pusher-js and the Python SDK on all four channel types."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from server_process import ServerProcess, free_port, wait_for_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
NODE_MODULES = Path(__file__).resolve().parent / "node" / "node_modules"

pytestmark = pytest.mark.interop


def test_quickstart_delivers_on_every_channel(server: ServerProcess) -> None:
    """Events published by backend.py reach subscribe.mjs on all four channels."""
    auth_port = free_port()
    env = {
        **os.environ,
        "QUICKSTART_CLARION_PORT": str(server.port),
        "QUICKSTART_AUTH_PORT": str(auth_port),
        # The example's own npm install is a user step; the test reuses the
        # pinned pusher-js of the interop suite.
        "NODE_PATH": str(NODE_MODULES),
    }
    backend = subprocess.Popen(
        [sys.executable, str(EXAMPLE / "backend.py"), "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", auth_port, backend)
        subscriber = subprocess.Popen(
            ["node", str(EXAMPLE / "subscribe.mjs")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines = _read_until(subscriber, "subscribed: ", count=4)
        subprocess.run(
            [sys.executable, str(EXAMPLE / "backend.py"), "publish"],
            env=env,
            check=True,
            timeout=30,
            capture_output=True,
        )
        output, _ = subscriber.communicate(timeout=20)
    finally:
        backend.kill()
        backend.wait(timeout=5)
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
