"""`clarion trigger` end to end against a real server, with and without `listen`."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from rest_subscriber import Subscriber

# Seconds a command may take; each one is a fresh interpreter.
COMMAND_TIMEOUT = 20.0

CUSTOM_APP_CONFIG = """
[[apps]]
id = "42"
key = "custom-key"
secret = "custom-secret"
"""


def command_environment(**overrides: str) -> dict[str, str]:
    """Return this process's environment without CLARION_* variables, plus overrides."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("CLARION_")
    }
    environment.update(overrides)
    return environment


async def run_clarion(
    *arguments: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run `python -m clarion` and return its exit status, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clarion",
        *arguments,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env or command_environment(),
    )
    stdout, stderr = await asyncio.wait_for(
        process.communicate(stdin), timeout=COMMAND_TIMEOUT
    )
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.fixture
async def subscriber(server: Any) -> AsyncIterator[Subscriber]:
    """A WebSocket connection subscribed to `news`."""
    opened = await Subscriber.open(server.ws_url)
    await opened.subscribe("news")
    yield opened
    await opened.close()


async def test_trigger_command_delivers_event(
    server: Any, subscriber: Subscriber
) -> None:
    """The event reaches subscribers, and the server's response is printed."""
    status, stdout, stderr = await run_clarion(
        "trigger", "news", "--event", "greeting", "--data", '{"text":"hi"}',
        "--port", str(server.port),
    )  # fmt: skip
    message = await subscriber.next_message("greeting")
    assert status == 0, stderr
    assert stdout == "{}\n"
    assert message["data"] == '{"text":"hi"}'


async def test_trigger_command_reads_stdin(server: Any, subscriber: Subscriber) -> None:
    """--data - sends standard input as the event data."""
    status, _, stderr = await run_clarion(
        "trigger", "news", "-e", "piped", "-d", "-", "--port", str(server.port),
        stdin=b"line one\nline two\n",
    )  # fmt: skip
    message = await subscriber.next_message("piped")
    assert status == 0, stderr
    assert message["data"] == "line one\nline two\n"


async def test_trigger_command_prints_info(server: Any, subscriber: Subscriber) -> None:
    """--info prints the requested channel attributes."""
    status, stdout, stderr = await run_clarion(
        "trigger", "news", "-e", "e", "--info", "subscription_count",
        "--port", str(server.port),
    )  # fmt: skip
    assert status == 0, stderr
    assert json.loads(stdout) == {"channels": {"news": {"subscription_count": 1}}}


async def test_trigger_command_reads_credentials_from_environment(
    start_server: Any,
) -> None:
    """CLARION_APP_ID, _KEY and _SECRET select the app to publish as."""
    server = start_server(CUSTOM_APP_CONFIG)
    environment = command_environment(
        CLARION_APP_ID="42",
        CLARION_APP_KEY="custom-key",
        CLARION_APP_SECRET="custom-secret",
    )
    status, stdout, stderr = await run_clarion(
        "trigger", "news", "-e", "e", "--port", str(server.port), env=environment
    )
    assert status == 0, stderr
    assert stdout == "{}\n"


async def test_trigger_command_reports_rejection(server: Any) -> None:
    """A request the server rejects exits 1 with the server's reason."""
    status, stdout, stderr = await run_clarion(
        "trigger", "news", "-e", "e", "--secret", "wrong", "--port", str(server.port)
    )
    assert status == 1
    assert stdout == ""
    assert "HTTP 401" in stderr
    assert "Invalid signature" in stderr


async def test_trigger_command_reports_unreachable_server(server: Any) -> None:
    """A server that is not listening exits 1 naming the address."""
    server.stop()
    status, _, stderr = await run_clarion(
        "trigger", "news", "-e", "e", "--port", str(server.port)
    )
    assert status == 1
    assert f"cannot connect to 127.0.0.1:{server.port}" in stderr


async def test_trigger_command_rejects_bad_master_key(server: Any) -> None:
    """An invalid encryption master key exits 2 before sending anything."""
    status, _, stderr = await run_clarion(
        "trigger", "private-encrypted-x", "-e", "e",
        "--encryption-master-key-base64", "c2hvcnQ=", "--port", str(server.port),
    )  # fmt: skip
    assert status == 2
    assert "Invalid encryption master key" in stderr


async def test_listen_prints_triggered_event(server: Any) -> None:
    """`clarion listen` prints the event that `clarion trigger` publishes."""
    listen = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clarion", "listen", "news",
        "--port", str(server.port), "--count", "1", "--timeout", str(COMMAND_TIMEOUT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=command_environment(),
    )  # fmt: skip
    assert listen.stdout is not None and listen.stderr is not None
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT):
            while b"subscribed: news" not in await listen.stderr.readline():
                pass
        status, _, stderr = await run_clarion(
            "trigger", "news", "-e", "greeting", "-d", '{"text":"hi"}',
            "--port", str(server.port),
        )  # fmt: skip
        line = await asyncio.wait_for(listen.stdout.readline(), COMMAND_TIMEOUT)
        listen_status = await asyncio.wait_for(listen.wait(), COMMAND_TIMEOUT)
    finally:
        if listen.returncode is None:
            listen.kill()
            await listen.wait()
    assert status == 0, stderr
    assert json.loads(line) == {
        "channel": "news",
        "event": "greeting",
        "data": {"text": "hi"},
    }
    assert listen_status == 0
