"""nginx in front of Clarion with the proxy rules of deploy/nginx/: pusher-js
connects, subscribes and receives an event that the official Python SDK
triggers, all through nginx; and the example site passes `nginx -t`."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pusher
import pytest
from clarion_e2e import poll_until
from drain_helpers import WAIT_TIMEOUT, FallbackSession
from interop_harness import AuthEndpoint, PusherJsClient
from nginx_process import DEPLOY_NGINX, NginxProcess, main_config

from server_process import ServerProcess, free_port

pytestmark = pytest.mark.interop

FALLBACK_SESSIONS = 24
"""Fallback sessions opened through nginx in front of two nodes. The hash on
the session id puts each on either node, so all of them land on one node with
a chance of about 2 in 2**24, and one that ignored the session id would put
them all on one."""


def proxy_block(clarion_ports: list[int], nginx_port: int) -> str:
    """Return the http block of the deployment page, with the test's nodes as
    upstreams and a plain-HTTP listener on 127.0.0.1."""
    nodes = "\n".join(f"        server 127.0.0.1:{port};" for port in clarion_ports)
    return f"""    include {DEPLOY_NGINX / "clarion-maps.conf"};
    upstream clarion {{
        least_conn;
{nodes}
        keepalive 8;
    }}
    upstream clarion_fallback {{
        hash $clarion_session consistent;
{nodes}
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{nginx_port};
        include {DEPLOY_NGINX / "clarion-locations.conf"};
    }}"""


@pytest.fixture
def proxied(
    tmp_path: Path,
    server: ServerProcess,
    start_nginx: Callable[[str], NginxProcess],
) -> tuple[NginxProcess, int]:
    """nginx on a free port of 127.0.0.1 in front of the test's server."""
    nginx_port = free_port()
    directory = tmp_path / "nginx-0"
    config = main_config(directory, proxy_block([server.port], nginx_port))
    nginx = start_nginx(config)
    nginx.wait_listening(nginx_port)
    return nginx, nginx_port


@pytest.fixture
def sdk(
    server: ServerProcess, proxied: tuple[NginxProcess, int]
) -> Iterator[pusher.Pusher]:
    """The official Python SDK, aimed at nginx."""
    client = pusher.Pusher(
        app_id=server.app_id,
        key=server.key,
        secret=server.secret,
        host="127.0.0.1",
        port=proxied[1],
        ssl=False,
    )
    yield client
    client._pusher_client.http.session.close()


def test_nginx_proxies_pusher_js_and_sdk(
    tmp_path: Path,
    server: ServerProcess,
    proxied: tuple[NginxProcess, int],
    sdk: pusher.Pusher,
) -> None:
    """pusher-js subscribes to a public and a private channel through nginx and
    receives events that the SDK triggers through nginx."""
    nginx, nginx_port = proxied
    auth = AuthEndpoint(sdk)
    client = PusherJsClient(
        "through nginx",
        {
            "port": nginx_port,
            "key": server.key,
            "authEndpoint": f"{auth.base_url}/pusher/auth",
            "userAuthEndpoint": f"{auth.base_url}/pusher/user-auth",
            "authParams": {},
        },
        tmp_path / "pusher-js.log",
    )
    try:
        client.wait_connected()
        client.subscribe("deploy-news")
        client.subscribe("private-deploy")
        sdk.trigger("deploy-news", "hello", {"via": "nginx"})
        sdk.trigger("private-deploy", "secret-hello", {"via": "nginx"})
        public = client.wait_event("deploy-news", "hello")
        private = client.wait_event("private-deploy", "secret-hello")
        occupied = sdk.channel_info("deploy-news")
    finally:
        client.close()
        auth.close()

    assert public["data"] == {"via": "nginx"}
    assert private["data"] == {"via": "nginx"}
    assert occupied["occupied"] is True
    access_log = (nginx.directory / "access.log").read_text()
    assert f'"GET /app/{server.key}?' in access_log, nginx.logs()
    assert '" 101 ' in access_log, nginx.logs()
    assert f'"POST /apps/{server.app_id}/events?' in access_log, nginx.logs()


async def test_nginx_keeps_fallback_session_on_node(
    tmp_path: Path,
    start_server: Callable[..., ServerProcess],
    start_nginx: Callable[[str], NginxProcess],
) -> None:
    """Through nginx in front of two nodes that share nothing, every request
    of a fallback session reaches the node of its stream, so a subscribe sent
    with ``xhr_send`` is answered on the stream."""
    nodes = [start_server(), start_server()]
    nginx_port = free_port()
    directory = tmp_path / "nginx-0"
    block = proxy_block([node.port for node in nodes], nginx_port)
    nginx = start_nginx(main_config(directory, block))
    nginx.wait_listening(nginx_port)

    statuses = []
    for index in range(FALLBACK_SESSIONS):
        session = FallbackSession(nginx_port, f"nginxsession{index}")
        await session.open()
        try:
            await session.read_until(b"pusher:connection_established")
            subscribe = {
                "event": "pusher:subscribe",
                "data": {"channel": f"fallback-{index}"},
            }
            statuses.append(await session.send(subscribe))
            await session.read_until(b"pusher_internal:subscription_succeeded")
        finally:
            session.close()

    assert statuses == [204] * FALLBACK_SESSIONS, nginx.logs()
    # The log line of a subscription may follow its reply by a moment.
    served = await poll_until(
        lambda: [node.log_text().count(" subscribed to fallback-") for node in nodes],
        lambda counts: sum(counts) == FALLBACK_SESSIONS,
        WAIT_TIMEOUT,
    )
    assert sum(served) == FALLBACK_SESSIONS, served
    assert min(served) > 0, served


def test_nginx_example_site_is_valid(tmp_path: Path) -> None:
    """deploy/nginx/clarion.conf passes `nginx -t` once its paths point at
    this checkout and its listeners at loopback ports."""
    directory = tmp_path / "nginx-site"
    directory.mkdir()
    certificate = directory / "fullchain.pem"
    private_key = directory / "privkey.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=realtime.example.com",
            "-days",
            "1",
            "-keyout",
            str(private_key),
            "-out",
            str(certificate),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    site = (DEPLOY_NGINX / "clarion.conf").read_text()
    live = "/etc/letsencrypt/live/realtime.example.com"
    replacements = {
        "/etc/nginx/clarion/": f"{DEPLOY_NGINX}/",
        f"{live}/fullchain.pem": str(certificate),
        f"{live}/privkey.pem": str(private_key),
        "listen 80;": f"listen 127.0.0.1:{free_port()};",
        "listen 443 ssl;": f"listen 127.0.0.1:{free_port()} ssl;",
        "listen [::]:80;": "",
        "listen [::]:443 ssl;": "",
    }
    for old, new in replacements.items():
        assert old in site, f"{old!r} is no longer in clarion.conf"
        site = site.replace(old, new)
    nginx = NginxProcess(directory, main_config(directory, site))

    result = nginx.check()

    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
