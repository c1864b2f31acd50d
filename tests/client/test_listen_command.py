"""`clarion listen` against a real server, with events from the official SDK."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pusher
from client_helpers import MASTER_KEY_BASE64

from server_process import ServerProcess

WAIT_TIMEOUT = 10.0


def listen_environment(**variables: str) -> dict[str, str]:
    """Return this process's environment without CLARION_APP_* variables, plus
    ``variables``."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("CLARION_APP_")
    }
    environment.update(variables)
    return environment


async def start_listen(
    server: ServerProcess, *args: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clarion",
        "listen",
        "--port",
        str(server.port),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=listen_environment() if env is None else env,
    )


async def read_until(stream: asyncio.StreamReader, text: str) -> list[str]:
    """Read lines until one contains ``text``; return the lines read."""
    lines: list[str] = []
    async with asyncio.timeout(WAIT_TIMEOUT):
        while True:
            line = (await stream.readline()).decode()
            assert line, f"stream ended before {text!r}; read {lines!r}"
            lines.append(line)
            if text in line:
                return lines


async def test_listen_prints_events(clarion: ServerProcess, sdk: pusher.Pusher) -> None:
    """listen prints events of public, private and encrypted channels as JSON."""
    process = await start_listen(
        clarion,
        "--secret",
        "app-secret",
        "--encryption-master-key-base64",
        MASTER_KEY_BASE64,
        "--count",
        "3",
        "news",
        "private-desk",
        "private-encrypted-safe",
    )
    try:
        assert process.stderr is not None
        assert process.stdout is not None
        await read_until(process.stderr, "subscribed: news")
        await read_until(process.stderr, "subscribed: private-encrypted-safe")
        sdk.trigger("news", "headline", {"title": "hi"})
        sdk.trigger("private-desk", "memo", "plain text")
        sdk.trigger("private-encrypted-safe", "sealed", {"pin": 7})
        async with asyncio.timeout(WAIT_TIMEOUT):
            output = await process.stdout.read()
            status = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    records = [json.loads(line) for line in output.decode().splitlines()]
    assert records == [
        {"channel": "news", "event": "headline", "data": {"title": "hi"}},
        {"channel": "private-desk", "event": "memo", "data": "plain text"},
        {"channel": "private-encrypted-safe", "event": "sealed", "data": {"pin": 7}},
    ]
    assert status == 0


async def test_listen_unknown_key_fails(clarion: ServerProcess) -> None:
    """listen exits with status 1 when the server refuses the app key."""
    process = await start_listen(clarion, "--key", "no-such-key", "news")
    async with asyncio.timeout(WAIT_TIMEOUT):
        _, errors = await process.communicate()
    assert process.returncode == 1
    assert b"4001" in errors


async def test_listen_rejects_reserved_name(clarion: ServerProcess) -> None:
    """listen exits with status 2 for a channel name starting with #."""
    process = await start_listen(clarion, "#server-to-user-1")
    async with asyncio.timeout(WAIT_TIMEOUT):
        _, errors = await process.communicate()
    assert process.returncode == 2
    assert b"Cannot create a channel" in errors


async def test_listen_subscription_error_fails(clarion: ServerProcess) -> None:
    """listen exits with status 3 when a subscription fails, here a private
    channel with neither --secret nor --auth-endpoint."""
    process = await start_listen(clarion, "news", "private-desk")
    async with asyncio.timeout(WAIT_TIMEOUT):
        _, errors = await process.communicate()
    assert process.returncode == 3
    assert b"subscription error: private-desk" in errors
    assert b"AuthError" in errors


async def test_listen_reads_app_key_variable(clarion: ServerProcess) -> None:
    """listen takes its app key from CLARION_APP_KEY, as trigger does."""
    environment = listen_environment(CLARION_APP_KEY="no-such-key")
    process = await start_listen(clarion, "news", env=environment)
    async with asyncio.timeout(WAIT_TIMEOUT):
        _, errors = await process.communicate()
    assert process.returncode == 1
    assert b"4001" in errors


async def test_listen_signs_with_secret_variable(
    clarion: ServerProcess, sdk: pusher.Pusher
) -> None:
    """listen signs private subscriptions with CLARION_APP_SECRET."""
    environment = listen_environment(
        CLARION_APP_KEY=clarion.key, CLARION_APP_SECRET=clarion.secret
    )
    process = await start_listen(
        clarion, "--count", "1", "private-desk", env=environment
    )
    try:
        assert process.stderr is not None
        await read_until(process.stderr, "subscribed: private-desk")
        sdk.trigger("private-desk", "memo", "plain text")
        async with asyncio.timeout(WAIT_TIMEOUT):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert json.loads(output) == {
        "channel": "private-desk",
        "event": "memo",
        "data": "plain text",
    }
    assert process.returncode == 0
