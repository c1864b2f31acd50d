"""`clarion listen --tls` and `clarion trigger --tls` against a server whose
certificate a private CA issued: trusted through SSL_CERT_FILE or --ca-file,
and a hint when it is not trusted or when --tls is missing."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable

from tls_helpers import TlsFiles

from server_process import ServerProcess

WAIT_TIMEOUT = 10.0


def cli_environment(ssl_cert_file: str | None = None) -> dict[str, str]:
    """Return this process's environment without TLS trust or app variables,
    plus SSL_CERT_FILE when given."""
    removed = ("SSL_CERT_FILE", "SSL_CERT_DIR", "CLARION_APP_KEY", "CLARION_APP_SECRET")
    environment = {
        name: value for name, value in os.environ.items() if name not in removed
    }
    if ssl_cert_file is not None:
        environment["SSL_CERT_FILE"] = ssl_cert_file
    return environment


async def start_cli(
    server: ServerProcess, *args: str, env: dict[str, str]
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clarion",
        *args,
        "--port",
        str(server.port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def run_cli(
    server: ServerProcess, *args: str, env: dict[str, str]
) -> tuple[int, str, str]:
    """Run a clarion command to its end; return its status, stdout and stderr."""
    process = await start_cli(server, *args, env=env)
    async with asyncio.timeout(WAIT_TIMEOUT):
        output, errors = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode(), errors.decode()


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


async def listen_for_one_event(
    server: ServerProcess, listen_env: dict[str, str], trigger_env: dict[str, str]
) -> tuple[int, list[dict[str, object]]]:
    """Run ``listen --tls --count 1 news``, publish one event with
    ``trigger --tls``, and return listen's status and printed records."""
    listen_args = ["listen", "--tls", "--count", "1", "news"]
    if "SSL_CERT_FILE" not in listen_env:
        listen_args += ["--ca-file", trigger_env["SSL_CERT_FILE"]]
    listener = await start_cli(server, *listen_args, env=listen_env)
    try:
        assert listener.stderr is not None
        await read_until(listener.stderr, "subscribed: news")
        trigger_args = ["trigger", "--tls", "-e", "headline", "-d", '{"n":1}', "news"]
        if "SSL_CERT_FILE" not in trigger_env:
            trigger_args += ["--ca-file", listen_env["SSL_CERT_FILE"]]
        status, output, errors = await run_cli(server, *trigger_args, env=trigger_env)
        assert status == 0, errors
        assert json.loads(output) == {}
        async with asyncio.timeout(WAIT_TIMEOUT):
            printed, _ = await listener.communicate()
    finally:
        if listener.returncode is None:
            listener.kill()
            await listener.wait()
    records = [json.loads(line) for line in printed.decode().splitlines()]
    return listener.returncode, records


async def test_listen_tls_trusts_ssl_cert_file(
    start_tls_server: Callable[..., ServerProcess], tls_files: TlsFiles
) -> None:
    """listen --tls trusts the CA in SSL_CERT_FILE; trigger trusts --ca-file."""
    server = start_tls_server()
    status, records = await listen_for_one_event(
        server,
        listen_env=cli_environment(str(tls_files.ca_file)),
        trigger_env=cli_environment(),
    )
    assert records == [{"channel": "news", "event": "headline", "data": {"n": 1}}]
    assert status == 0


async def test_listen_tls_trusts_ca_file(
    start_tls_server: Callable[..., ServerProcess], tls_files: TlsFiles
) -> None:
    """listen --tls trusts --ca-file; trigger trusts the CA in SSL_CERT_FILE."""
    server = start_tls_server()
    status, records = await listen_for_one_event(
        server,
        listen_env=cli_environment(),
        trigger_env=cli_environment(str(tls_files.ca_file)),
    )
    assert records == [{"channel": "news", "event": "headline", "data": {"n": 1}}]
    assert status == 0


async def test_trigger_untrusted_certificate_hint(
    start_tls_server: Callable[..., ServerProcess],
) -> None:
    """trigger --tls without the private CA fails and suggests --ca-file."""
    server = start_tls_server()
    status, _, errors = await run_cli(
        server, "trigger", "--tls", "-e", "headline", "news", env=cli_environment()
    )
    assert status == 1
    assert "CERTIFICATE_VERIFY_FAILED" in errors
    assert "--ca-file" in errors


async def test_listen_untrusted_certificate_hint(
    start_tls_server: Callable[..., ServerProcess],
) -> None:
    """listen --tls without the private CA exits 1 at --timeout and suggests
    --ca-file."""
    server = start_tls_server()
    status, _, errors = await run_cli(
        server, "listen", "--tls", "--timeout", "1", "news", env=cli_environment()
    )
    assert status == 1
    assert "CERTIFICATE_VERIFY_FAILED" in errors
    assert "--ca-file" in errors


async def test_listen_plain_against_tls_hint(
    start_tls_server: Callable[..., ServerProcess],
) -> None:
    """listen without --tls on a TLS port exits 1 at --timeout and suggests --tls."""
    server = start_tls_server()
    status, _, errors = await run_cli(
        server, "listen", "--timeout", "1", "news", env=cli_environment()
    )
    assert status == 1
    assert "not connected" in errors
    assert "add --tls" in errors
