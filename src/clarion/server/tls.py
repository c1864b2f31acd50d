"""The TLS context of the main port, from the certificate and key files."""

from __future__ import annotations

import ssl
from pathlib import Path

from clarion.server.config import ConfigError, Settings

__all__ = ["load_tls_context", "reload_tls_context"]

_CERTIFICATE_HEADER = "-----BEGIN CERTIFICATE-----"
_ENCRYPTED_KEY_MARKERS = (
    "-----BEGIN ENCRYPTED PRIVATE KEY-----",
    "Proc-Type: 4,ENCRYPTED",
)


def load_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """Build the server's TLS context, or return None when ``tls_cert_file`` is
    not set.

    The files are read here at start, and again by ``reload_tls_context`` on
    SIGHUP.

    Raises:
        ConfigError: a file is missing, unreadable or invalid, the key is
        encrypted, or the key does not belong to the certificate. The message
        names the setting and its environment variable.
    """
    if not settings.tls_cert_file:
        return None
    cert_text = _read("tls_cert_file", settings.tls_cert_file)
    if _CERTIFICATE_HEADER not in cert_text:
        raise ConfigError(
            f"Invalid tls_cert_file (CLARION_TLS_CERT_FILE) "
            f"{settings.tls_cert_file}: it contains no PEM certificate "
            f"({_CERTIFICATE_HEADER})"
        )
    try:
        # Parse the certificates on their own first, so that an error names
        # the file at fault.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=cert_text)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(
            f"Invalid tls_cert_file (CLARION_TLS_CERT_FILE) "
            f"{settings.tls_cert_file}: a certificate in it cannot be parsed "
            f"({getattr(exc, 'reason', None) or exc})"
        ) from exc
    key_setting = "tls_key_file" if settings.tls_key_file else "tls_cert_file"
    key_path = settings.tls_key_file or settings.tls_cert_file
    key_text = _read(key_setting, key_path) if settings.tls_key_file else cert_text
    if any(marker in key_text for marker in _ENCRYPTED_KEY_MARKERS):
        raise ConfigError(
            f"Invalid {key_setting} ({_variable(key_setting)}) {key_path}: the "
            "private key is encrypted. Clarion reads only unencrypted keys; "
            "decrypt it with `openssl pkey -in KEY -out PLAIN-KEY` and keep the "
            "file readable by the server's user only."
        )

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # The listener speaks HTTP/1.1 only, WebSocket upgrades included.
    context.set_alpn_protocols(["http/1.1"])
    try:
        # An empty password makes an encrypted key fail at once instead of
        # prompting on the terminal.
        context.load_cert_chain(
            settings.tls_cert_file, settings.tls_key_file or None, password=b""
        )
    except ssl.SSLError as exc:
        raise ConfigError(_load_error(settings, key_setting, key_path, exc)) from exc
    return context


def reload_tls_context(context: ssl.SSLContext, settings: Settings) -> None:
    """Read the certificate and key files again into ``context``. Handshakes
    after this use the new certificate; open connections keep theirs.

    Raises:
        ConfigError: as ``load_tls_context``; ``context`` is then unchanged.
    """
    # Checked in a fresh context first, so that bad files leave the one in
    # use as it was.
    load_tls_context(settings)
    context.load_cert_chain(
        settings.tls_cert_file, settings.tls_key_file or None, password=b""
    )


def _read(setting: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            f"Cannot read {setting} ({_variable(setting)}) {path}: {reason}"
        ) from exc


def _variable(setting: str) -> str:
    return f"CLARION_{setting.upper()}"


def _load_error(
    settings: Settings, key_setting: str, key_path: str, exc: ssl.SSLError
) -> str:
    reason = exc.reason or str(exc)
    if reason == "KEY_VALUES_MISMATCH":
        return (
            f"Invalid {key_setting} ({_variable(key_setting)}) {key_path}: the "
            f"private key does not belong to the certificate in tls_cert_file "
            f"{settings.tls_cert_file}"
        )
    if not settings.tls_key_file:
        return (
            f"Invalid tls_cert_file (CLARION_TLS_CERT_FILE) "
            f"{settings.tls_cert_file}: cannot load a certificate and a private "
            f"key from it ({reason}); put the key in its own file and set "
            "tls_key_file (CLARION_TLS_KEY_FILE)"
        )
    return (
        f"Invalid tls_key_file (CLARION_TLS_KEY_FILE) {key_path}: cannot load "
        f"it as an unencrypted PEM private key ({reason})"
    )
