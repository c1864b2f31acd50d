"""nginx in front of Clarion with the files of deploy/nginx/. pusher-js
connects, subscribes and receives events that the official Python SDK
triggers, all through nginx: over plain HTTP with the proxy rules, and over
TLS with the example site. Fallback sessions stay on their node."""

from __future__ import annotations

import http.client
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
    of a fallback session reaches the node of its stream, so the reply to a
    subscribe sent with ``xhr_send`` arrives on the stream."""
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


@dataclass
class ExampleSite:
    """deploy/nginx/clarion.conf made runnable on loopback ports."""

    nginx: NginxProcess
    https_port: int
    http_port: int
    certificate: Path


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """Create a self-signed certificate for 127.0.0.1; return it and its key."""
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
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
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
    return certificate, private_key


def example_site(directory: Path, clarion_port: int) -> ExampleSite:
    """Return the example site with its include paths pointed at this
    checkout, its listeners at free loopback ports, a certificate made here,
    and every upstream node replaced by the test's node."""
    directory.mkdir(parents=True)
    certificate, private_key = make_certificate(directory)
    https_port = free_port()
    http_port = free_port()
    site = (DEPLOY_NGINX / "clarion.conf").read_text()
    live = "/etc/letsencrypt/live/realtime.example.com"
    replacements = {
        "/etc/nginx/clarion/": f"{DEPLOY_NGINX}/",
        f"{live}/fullchain.pem": str(certificate),
        f"{live}/privkey.pem": str(private_key),
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "listen [::]:80;": "",
        "listen [::]:443 ssl;": "",
    }
    for index in (11, 12, 13):
        replacements[f"10.0.0.{index}:6001"] = f"127.0.0.1:{clarion_port}"
    for old, new in replacements.items():
        assert old in site, f"{old!r} is no longer in clarion.conf"
        site = site.replace(old, new)
    # Nothing of the example may leave loopback.
    assert "10.0.0." not in site
    nginx = NginxProcess(directory, main_config(directory, site))
    return ExampleSite(nginx, https_port, http_port, certificate)


def test_nginx_example_site_serves_tls(
    tmp_path: Path,
    server: ServerProcess,
    start_nginx: Callable[[str], NginxProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The example site passes `nginx -t`, redirects HTTP to HTTPS, and
    terminates TLS for pusher-js (wss) and the Python SDK (https)."""
    site = example_site(tmp_path / "nginx-site", server.port)
    checked = site.nginx.check()
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
    start_nginx(site.nginx.config).wait_listening(site.https_port)
    # pusher-js (Node) trusts the test's certificate through this variable.
    monkeypatch.setenv("NODE_EXTRA_CA_CERTS", str(site.certificate))
    plain = http_get(site.http_port, "/apps/1/channels")
    sdk = pusher.Pusher(
        app_id=server.app_id,
        key=server.key,
        secret=server.secret,
        host="127.0.0.1",
        port=site.https_port,
        ssl=True,
    )
    # pusher 3.3 verifies against its own CA bundle, passed as requests'
    # `verify` option; point it at the test's certificate.
    sdk._pusher_client.http.options["verify"] = str(site.certificate)
    auth = AuthEndpoint(sdk)
    client = PusherJsClient(
        "through nginx with TLS",
        {
            "port": site.https_port,
            "key": server.key,
            "authEndpoint": f"{auth.base_url}/pusher/auth",
            "userAuthEndpoint": f"{auth.base_url}/pusher/user-auth",
            "authParams": {},
            "forceTLS": True,
        },
        tmp_path / "pusher-js-tls.log",
    )
    try:
        client.wait_connected()
        client.subscribe("private-tls")
        sdk.trigger("private-tls", "over-tls", {"tls": "nginx"})
        event = client.wait_event("private-tls", "over-tls")
    finally:
        client.close()
        auth.close()
        sdk._pusher_client.http.session.close()

    assert plain.status == 301
    assert plain.getheader("Location", "").startswith("https://")
    assert event["data"] == {"tls": "nginx"}
    # The config keeps its logs in the directory it was made for.
    access_log = (site.nginx.directory / "access.log").read_text()
    assert f'"GET /app/{server.key}?' in access_log, site.nginx.logs()
    assert f'"POST /apps/{server.app_id}/events?' in access_log, site.nginx.logs()


def http_get(port: int, path: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()
