"""Settings of TLS, allowed origins and CORS: parsing and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from clarion.server.config import ConfigError, Settings, load_settings

APP = """
[[apps]]
id = "7"
key = "own-key"
secret = "own-secret-value"
"""


def load_toml(
    tmp_path: Path, text: str, environ: dict[str, str] | None = None
) -> Settings:
    path = tmp_path / "clarion.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(flags={"config": str(path)}, environ=environ or {})


def test_tls_and_cors_defaults() -> None:
    settings = load_settings(flags={}, environ={})
    assert settings.tls_cert_file == ""
    assert settings.tls_key_file == ""
    assert settings.cors_origins == ("*",)
    assert settings.apps[0].allowed_origins == ()


def test_allowed_origins_from_toml(tmp_path: Path) -> None:
    settings = load_toml(
        tmp_path, APP + 'allowed_origins = ["https://a.test", "*.b.test"]\n'
    )
    assert settings.apps[0].allowed_origins == ("https://a.test", "*.b.test")


def test_invalid_allowed_origin_names_app(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_toml(tmp_path, APP + 'allowed_origins = ["https://a.test/path"]\n')
    assert "apps[0].allowed_origins" in str(raised.value)
    assert "https://a.test/path" in str(raised.value)


def test_allowed_origins_must_be_array(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_toml(tmp_path, APP + 'allowed_origins = "https://a.test"\n')
    assert "apps[0].allowed_origins" in str(raised.value)
    assert "array of strings" in str(raised.value)


def test_allowed_origins_from_environment() -> None:
    settings = load_settings(
        environ={
            "CLARION_APP_ID": "9",
            "CLARION_APP_KEY": "env-key",
            "CLARION_APP_SECRET": "env-secret",
            "CLARION_APP_ALLOWED_ORIGINS": "https://a.test, https://*.b.test",
        }
    )
    assert settings.apps[0].allowed_origins == ("https://a.test", "https://*.b.test")


def test_cors_origins_from_toml_and_environment(tmp_path: Path) -> None:
    toml = '[server]\ncors_origins = ["https://dash.test"]\n' + APP
    assert load_toml(tmp_path, toml).cors_origins == ("https://dash.test",)
    overridden = load_toml(tmp_path, toml, {"CLARION_CORS_ORIGINS": ""})
    assert overridden.cors_origins == ()
    listed = load_toml(tmp_path, toml, {"CLARION_CORS_ORIGINS": "a.test,b.test"})
    assert listed.cors_origins == ("a.test", "b.test")


def test_invalid_cors_origin_is_rejected() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={"CLARION_CORS_ORIGINS": "https://a.test/x"})
    assert "cors_origins" in str(raised.value)


def test_tls_files_from_environment() -> None:
    settings = load_settings(
        environ={
            "CLARION_TLS_CERT_FILE": "/etc/clarion/cert.pem",
            "CLARION_TLS_KEY_FILE": "/etc/clarion/key.pem",
        }
    )
    assert settings.tls_cert_file == "/etc/clarion/cert.pem"
    assert settings.tls_key_file == "/etc/clarion/key.pem"


def test_tls_key_without_cert_is_rejected() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={"CLARION_TLS_KEY_FILE": "/etc/clarion/key.pem"})
    assert "CLARION_TLS_CERT_FILE" in str(raised.value)
