"""Ways of reaching Redis: a password, TLS (`rediss://`), and a key prefix
that lets several deployments share one Redis."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_harness import (
    Cluster,
    Peers,
    RedisServer,
    launch_node,
    node_config,
    read_json,
    send_marker,
    trigger,
    unique,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PASSWORD = "redis-password-must-never-be-logged"


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def make_tls_files(directory: Path) -> dict[str, Path]:
    """Write a test CA and a server certificate for 127.0.0.1 signed by it."""
    now = datetime.datetime.now(datetime.UTC)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cluster test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    files = {
        "ca": directory / "ca.pem",
        "cert": directory / "server.pem",
        "key": directory / "server-key.pem",
    }
    files["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(server_key, files["key"])
    return files


@pytest.fixture(params=["password", "tls"])
def guarded_redis(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[RedisServer]:
    """A redis-server that needs a password, over plain TCP or over TLS."""
    tls_files = make_tls_files(tmp_path) if request.param == "tls" else None
    server = RedisServer(tmp_path, password=PASSWORD, tls_files=tls_files)
    server.start()
    yield server
    server.stop()


async def test_guarded_redis_shares_state(
    guarded_redis: RedisServer, peers: Peers, tmp_path: Path
) -> None:
    """Nodes reach a Redis with a password (and TLS) and never log the password."""
    config = node_config(tmp_path / "data")
    nodes = [launch_node(config, tmp_path, guarded_redis.url) for _ in range(2)]
    cluster = Cluster(nodes, guarded_redis)
    try:
        channel = unique("guarded-")
        subscribers = [await peers.open(cluster.node(i), f"peer {i}") for i in range(2)]
        for peer in subscribers:
            await peer.subscribe(channel)
        await trigger(cluster.api(0), channel, "secret-news", "x")
        await send_marker(cluster.api(0), channel, subscribers)
        channel_info = await read_json(
            cluster.api(1), f"/channels/{channel}", {"info": "subscription_count"}
        )
    finally:
        cluster.stop()

    for peer in subscribers:
        assert peer.count(channel, "secret-news") == 1, peer.describe()
    assert channel_info == {"occupied": True, "subscription_count": 2}, cluster.logs()
    for node in nodes:
        assert PASSWORD not in node.log_text()


async def test_prefixes_keep_deployments_apart(
    redis_server: RedisServer, peers: Peers, tmp_path: Path
) -> None:
    """Deployments with different prefixes on one Redis see nothing of each other.

    Deployment beta has two nodes, so its marker travels through Redis like
    any leaked event from alpha would, and arrives after it.
    """
    alpha_config = node_config(tmp_path / "alpha", server={"redis_prefix": "alpha"})
    beta_config = node_config(tmp_path / "beta", server={"redis_prefix": "beta"})
    alpha = launch_node(alpha_config, tmp_path, redis_server.url)
    betas = [launch_node(beta_config, tmp_path, redis_server.url) for _ in range(2)]
    cluster = Cluster([alpha, *betas], redis_server)
    try:
        channel = unique("same-name-")
        on_alpha = await peers.open(alpha, "peer on alpha")
        on_beta = await peers.open(betas[0], "peer on beta")
        for peer in (on_alpha, on_beta):
            await peer.subscribe(channel)
        await trigger(cluster.api(0), channel, "alpha-only", "x")
        await send_marker(cluster.api(0), channel, [on_alpha])
        await send_marker(cluster.api(2), channel, [on_beta])
        counts = [
            await read_json(
                cluster.api(i), f"/channels/{channel}", {"info": "subscription_count"}
            )
            for i in range(3)
        ]
    finally:
        cluster.stop()

    assert on_alpha.count(channel, "alpha-only") == 1, on_alpha.describe()
    assert on_beta.count(channel, "alpha-only") == 0, on_beta.describe()
    assert counts == [{"occupied": True, "subscription_count": 1}] * 3
