"""Values shared by the TLS, allowed-origin and CORS tests."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from server_process import ServerProcess


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a test CA and of a certificate it issued for 127.0.0.1."""

    ca_file: Path
    cert_file: Path
    """The server certificate, then any intermediate certificates."""
    key_file: Path

    def client_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts the test CA only."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def wss_url(server: ServerProcess, key: str = "app-key") -> str:
    return f"wss://{server.host}:{server.port}/app/{key}?protocol=7&client=test"
