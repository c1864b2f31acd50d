"""Fixtures for the TLS, allowed-origin and CORS tests: a certificate authority
and a server certificate made for each test session with trustme, and servers
that serve them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from tls_helpers import TlsFiles

from server_process import ServerProcess

# pusher-js drivers live with the interop tests, the Redis runner with the
# operations tests.
TESTS = Path(__file__).resolve().parent.parent
for folder in ("interop", "ops"):
    if str(TESTS / folder) not in sys.path:
        sys.path.insert(0, str(TESTS / folder))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    directory = tmp_path_factory.mktemp("tls")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(
        directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    )
    authority.cert_pem.write_to_path(str(files.ca_file))
    certificate.cert_chain_pems[0].write_to_path(str(files.cert_file))
    for extra in certificate.cert_chain_pems[1:]:
        extra.write_to_path(str(files.cert_file), append=True)
    certificate.private_key_pem.write_to_path(str(files.key_file))
    return files


@pytest.fixture
def start_tls_server(
    start_server: Callable[..., ServerProcess], tls_files: TlsFiles
) -> Callable[..., ServerProcess]:
    """Return a factory like ``start_server`` whose servers serve TLS on their
    port, with the test certificate."""

    def start(config: str | None = None, **options: object) -> ServerProcess:
        args = (
            "--tls-cert-file",
            str(tls_files.cert_file),
            "--tls-key-file",
            str(tls_files.key_file),
        )
        if config is None:
            return start_server(args=args, **options)
        return start_server(config, args=args, **options)

    return start
