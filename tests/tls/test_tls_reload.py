"""SIGHUP reloads the certificate: new handshakes get the renewed one without a
restart, and bad files leave the previous one in use."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import trustme

from server_process import ServerProcess

WAIT = 10.0


def write_certificate(authority: trustme.CA, cert_file: Path, key_file: Path) -> bytes:
    """Issue a certificate for 127.0.0.1, write it and its key, and return it
    in DER form, as a client sees it."""
    issued = authority.issue_cert("127.0.0.1", "localhost")
    cert_file.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    key_file.write_bytes(issued.private_key_pem.bytes())
    return ssl.PEM_cert_to_DER_cert(issued.cert_chain_pems[0].bytes().decode())


def served_certificate(server: ServerProcess, authority: trustme.CA) -> bytes:
    """Open a TLS connection and return the certificate the server presents."""
    context = ssl.create_default_context()
    authority.configure_trust(context)
    with socket.create_connection((server.host, server.port), timeout=WAIT) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as wrapped:
            certificate = wrapped.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate


def wait_for_certificate(
    server: ServerProcess, authority: trustme.CA, expected: bytes
) -> bytes:
    """Return the served certificate once it is ``expected``, or the last one
    seen after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while True:
        seen = served_certificate(server, authority)
        if seen == expected or time.monotonic() >= deadline:
            return seen
        time.sleep(0.1)


def test_sighup_serves_renewed_certificate(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    authority = trustme.CA()
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    first = write_certificate(authority, cert_file, key_file)
    server = start_server(
        args=("--tls-cert-file", str(cert_file), "--tls-key-file", str(key_file))
    )
    assert served_certificate(server, authority) == first

    renewed = write_certificate(authority, cert_file, key_file)
    os.kill(server.process.pid, signal.SIGHUP)

    assert wait_for_certificate(server, authority, renewed) == renewed
    assert server.is_running()
    assert "reloaded the TLS certificate" in server.log_text()


def test_sighup_with_bad_files_keeps_certificate(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    authority = trustme.CA()
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    first = write_certificate(authority, cert_file, key_file)
    server = start_server(
        args=("--tls-cert-file", str(cert_file), "--tls-key-file", str(key_file))
    )

    key_file.write_text("not a key\n")
    os.kill(server.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + WAIT
    while "still serving the previous" not in server.log_text():
        assert time.monotonic() < deadline, server.log_text()
        time.sleep(0.1)

    assert server.is_running()
    assert served_certificate(server, authority) == first


def test_sighup_without_tls_keeps_serving(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server()
    os.kill(server.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + WAIT
    while "nothing to reload" not in server.log_text():
        assert time.monotonic() < deadline, server.log_text()
        time.sleep(0.1)
    with socket.create_connection((server.host, server.port), timeout=WAIT):
        pass
    assert server.is_running()
