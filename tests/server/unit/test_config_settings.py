"""Settings from flags, CLARION_* environment variables and the TOML file."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from clarion.protocol.apps import App, Limits
from clarion.server.config import (
    DEV_APP,
    ConfigError,
    Settings,
    check_dev_app_exposure,
    load_settings,
)

OWN_APP_TOML = """
[[apps]]
id = "7"
key = "own-key"
secret = "own-secret-value"
"""


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "clarion.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def load(
    tmp_path: Path,
    toml: str | None = None,
    flags: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Load settings from an optional TOML text, flags and environment."""
    flags = dict(flags or {})
    if toml is not None:
        flags["config"] = write_config(tmp_path, toml)
    return load_settings(flags=flags, environ=environ or {})


def config_error(tmp_path: Path, toml: str | None = None, **kwargs: Any) -> str:
    """Return the message of the ConfigError that loading raises."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, toml, **kwargs)
    return str(caught.value)


# Defaults


def test_defaults_serve_dev_app() -> None:
    """With no configuration, the one app is the development app."""
    assert load_settings(flags={}, environ={}).apps == (DEV_APP,)


def test_defaults_listen_on_loopback() -> None:
    """With no configuration, the server listens on 127.0.0.1:6001."""
    settings = load_settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 6001)


def test_dev_app_credentials() -> None:
    """The development app is id 1, key app-key, secret app-secret."""
    assert (DEV_APP.id, DEV_APP.key, DEV_APP.secret) == ("1", "app-key", "app-secret")


def test_defaults_activity_timeout() -> None:
    """The announced activity timeout defaults to 120 seconds."""
    assert load_settings().activity_timeout == 120


def test_file_without_apps_keeps_dev_app(tmp_path: Path) -> None:
    """A file with only [server] settings still serves the development app."""
    settings = load(tmp_path, "[server]\nactivity_timeout = 30\n")
    assert settings.apps == (DEV_APP,)


# Apps from the file


def test_file_app_replaces_dev_app(tmp_path: Path) -> None:
    """An [[apps]] table is served instead of the development app."""
    settings = load(tmp_path, OWN_APP_TOML)
    assert settings.apps == (App(id="7", key="own-key", secret="own-secret-value"),)


def test_file_app_switches_and_limits(tmp_path: Path) -> None:
    """Switches and limit keys of an app table are applied."""
    toml = OWN_APP_TOML + (
        "enabled = false\nclient_events = true\n"
        "max_connections = 5\nclient_event_rate = 3\n"
    )
    settings = load(tmp_path, toml)
    assert settings.apps == (
        App(
            id="7",
            key="own-key",
            secret="own-secret-value",
            enabled=False,
            client_events=True,
            limits=Limits(max_connections=5, client_event_rate=3),
        ),
    )


def test_file_app_rate_limits_and_presence_above_default(tmp_path: Path) -> None:
    """The rate limits and presence limits above their defaults are read from
    an app table."""
    toml = OWN_APP_TOML + (
        "max_api_requests_per_second = 50\n"
        "max_backend_events_per_second = 200\n"
        "max_presence_members = 1000\n"
        "max_presence_user_info_bytes = 4096\n"
    )
    settings = load(tmp_path, toml)
    assert settings.apps[0].limits == Limits(
        max_api_requests_per_second=50,
        max_backend_events_per_second=200,
        max_presence_members=1000,
        max_presence_user_info_bytes=4096,
    )


def test_file_several_apps(tmp_path: Path) -> None:
    """Every [[apps]] table becomes one app, in file order."""
    toml = OWN_APP_TOML + '[[apps]]\nid = "8"\nkey = "second-key"\nsecret = "s2"\n'
    settings = load(tmp_path, toml)
    assert [app.key for app in settings.apps] == ["own-key", "second-key"]


def test_file_integer_app_id(tmp_path: Path) -> None:
    """An integer id in TOML becomes its decimal string."""
    settings = load(tmp_path, '[[apps]]\nid = 3\nkey = "k"\nsecret = "s"\n')
    assert settings.apps[0].id == "3"


def test_config_path_from_environment(tmp_path: Path) -> None:
    """CLARION_CONFIG names the file when no flag does."""
    path = write_config(tmp_path, OWN_APP_TOML)
    settings = load_settings(flags={}, environ={"CLARION_CONFIG": path})
    assert settings.apps[0].key == "own-key"


def test_config_flag_over_environment(tmp_path: Path) -> None:
    """The config flag wins over CLARION_CONFIG."""
    path = write_config(tmp_path, OWN_APP_TOML)
    environ = {"CLARION_CONFIG": str(tmp_path / "absent.toml")}
    settings = load_settings(flags={"config": path}, environ=environ)
    assert settings.apps[0].key == "own-key"


# Precedence: flags over environment over file

PRECEDENCE = [
    pytest.param(
        "host", "CLARION_HOST", '"10.0.0.1"', "10.0.0.2", "10.0.0.3", id="host"
    ),
    pytest.param("port", "CLARION_PORT", "7001", "7002", 7003, id="port"),
    pytest.param(
        "activity_timeout", "CLARION_ACTIVITY_TIMEOUT", "31", "32", 33, id="activity"
    ),
]


def server_toml(name: str, toml_value: str) -> str:
    return f"[server]\n{name} = {toml_value}\n{OWN_APP_TOML}"


@pytest.mark.parametrize(("name", "variable", "toml", "env", "flag"), PRECEDENCE)
def test_file_value_applies(
    tmp_path: Path, name: str, variable: str, toml: str, env: str, flag: Any
) -> None:
    """A [server] value in the file applies when nothing overrides it."""
    settings = load(tmp_path, server_toml(name, toml))
    assert str(getattr(settings, name)) == toml.strip('"')


@pytest.mark.parametrize(("name", "variable", "toml", "env", "flag"), PRECEDENCE)
def test_environment_over_file(
    tmp_path: Path, name: str, variable: str, toml: str, env: str, flag: Any
) -> None:
    """A CLARION_* variable wins over the file."""
    settings = load(tmp_path, server_toml(name, toml), environ={variable: env})
    assert str(getattr(settings, name)) == env


@pytest.mark.parametrize(("name", "variable", "toml", "env", "flag"), PRECEDENCE)
def test_flag_over_environment(
    tmp_path: Path, name: str, variable: str, toml: str, env: str, flag: Any
) -> None:
    """A flag wins over both the variable and the file."""
    settings = load(
        tmp_path, server_toml(name, toml), flags={name: flag}, environ={variable: env}
    )
    assert getattr(settings, name) == flag


def test_unset_flag_falls_through(tmp_path: Path) -> None:
    """A flag given as None leaves the environment value in force."""
    settings = load(tmp_path, flags={"port": None}, environ={"CLARION_PORT": "7002"})
    assert settings.port == 7002


# The app from CLARION_APP_*

APP_ENVIRON = {
    "CLARION_APP_ID": "42",
    "CLARION_APP_KEY": "env-key",
    "CLARION_APP_SECRET": "env-secret-value",
}


def test_environment_app_replaces_file_apps(tmp_path: Path) -> None:
    """CLARION_APP_ID, _KEY and _SECRET define the only app."""
    settings = load(tmp_path, OWN_APP_TOML, environ=APP_ENVIRON)
    assert settings.apps == (App(id="42", key="env-key", secret="env-secret-value"),)


def test_environment_app_client_events(tmp_path: Path) -> None:
    """CLARION_APP_CLIENT_EVENTS switches client events for that app."""
    environ = {**APP_ENVIRON, "CLARION_APP_CLIENT_EVENTS": "true"}
    assert load(tmp_path, environ=environ).apps[0].client_events is True


@pytest.mark.parametrize("missing", sorted(APP_ENVIRON))
def test_environment_app_partial(tmp_path: Path, missing: str) -> None:
    """Setting only some CLARION_APP_* variables is an error naming the missing one."""
    environ = {name: value for name, value in APP_ENVIRON.items() if name != missing}
    assert missing in config_error(tmp_path, environ=environ)


def test_environment_app_non_numeric_id(tmp_path: Path) -> None:
    """CLARION_APP_ID must be digits."""
    environ = {**APP_ENVIRON, "CLARION_APP_ID": "my-app"}
    assert "my-app" in config_error(tmp_path, environ=environ)


# Invalid configuration. Each error message must name the setting or value at fault.

INVALID_FILES = [
    pytest.param(
        '[[apps]]\nid = "abc"\nkey = "k"\nsecret = "s"\n', "abc", id="non-numeric-id"
    ),
    pytest.param(
        OWN_APP_TOML + '[[apps]]\nid = "8"\nkey = "own-key"\nsecret = "s2"\n',
        "own-key",
        id="duplicate-key",
    ),
    pytest.param(
        OWN_APP_TOML + '[[apps]]\nid = "7"\nkey = "other"\nsecret = "s2"\n',
        "'7'",
        id="duplicate-id",
    ),
    pytest.param("[server]\nprot = 6001\n", "prot", id="unknown-server-key"),
    pytest.param(
        OWN_APP_TOML + "client_event = true\n", "client_event", id="unknown-app-key"
    ),
    pytest.param(
        '[[app]]\nid = "7"\nkey = "k"\nsecret = "s"\n',
        "app",
        id="unknown-top-level-table",
    ),
    pytest.param("port = 7001\n", "port", id="unknown-top-level-key"),
    pytest.param("[server]\nport = true\n", "server.port", id="bool-for-int"),
    pytest.param('[server]\nport = "7001"\n', "server.port", id="string-for-int"),
    pytest.param(
        "[server]\nactivity_timeout = 1.5\n", "activity_timeout", id="float-for-int"
    ),
    pytest.param("[server]\nexpose_dev_app = 1\n", "expose_dev_app", id="int-for-bool"),
    pytest.param("[server]\nhost = 127\n", "server.host", id="int-for-string"),
    pytest.param(
        OWN_APP_TOML + "max_connections = true\n",
        "max_connections",
        id="bool-for-limit",
    ),
    pytest.param(
        OWN_APP_TOML + "max_connections = -1\n", "max_connections", id="negative-limit"
    ),
    pytest.param(
        OWN_APP_TOML + 'client_events = "yes"\n',
        "client_events",
        id="string-for-switch",
    ),
    pytest.param('[[apps]]\nid = "1"\nkey = "k"\n', "secret", id="app-without-secret"),
    pytest.param('[[apps]]\nid = "1"\nkey = ""\nsecret = "s"\n', "key", id="empty-key"),
    pytest.param('[[apps]]\nid = true\nkey = "k"\nsecret = "s"\n', "id", id="bool-id"),
    pytest.param('apps = "all"\n', "apps", id="apps-not-array"),
    pytest.param('server = "x"\n', "server", id="server-not-table"),
    pytest.param("[server]\nport = 70000\n", "70000", id="port-out-of-range"),
    pytest.param(
        "[server]\nactivity_timeout = 0\n", "activity_timeout", id="zero-timeout"
    ),
    pytest.param(
        '[server]\nlog_level = "verbose"\n', "verbose", id="unknown-log-level"
    ),
]


@pytest.mark.parametrize(("toml", "named"), INVALID_FILES)
def test_invalid_file_rejected(tmp_path: Path, toml: str, named: str) -> None:
    """An invalid file raises ConfigError that names the setting or value."""
    assert named in config_error(tmp_path, toml)


INVALID_ENVIRON = [
    pytest.param({"CLARION_PORT": "abc"}, "CLARION_PORT", id="port-not-integer"),
    pytest.param({"CLARION_PORT": "-1"}, "-1", id="port-negative"),
    pytest.param(
        {"CLARION_ACTIVITY_TIMEOUT": "2m"},
        "CLARION_ACTIVITY_TIMEOUT",
        id="timeout-unit",
    ),
    pytest.param(
        {"CLARION_EXPOSE_DEV_APP": "maybe"}, "CLARION_EXPOSE_DEV_APP", id="bool-word"
    ),
    pytest.param({"CLARION_LOG_LEVEL": "verbose"}, "verbose", id="unknown-log-level"),
]


@pytest.mark.parametrize(("environ", "named"), INVALID_ENVIRON)
def test_invalid_environment_rejected(
    tmp_path: Path, environ: dict[str, str], named: str
) -> None:
    """An invalid CLARION_* value raises ConfigError naming the variable or value."""
    assert named in config_error(tmp_path, environ=environ)


def test_lowercase_log_level_accepted(tmp_path: Path) -> None:
    """A log level in lowercase is a valid level name."""
    assert (
        load(tmp_path, environ={"CLARION_LOG_LEVEL": "debug"}).log_level.upper()
        == "DEBUG"
    )


def test_invalid_toml_names_file(tmp_path: Path) -> None:
    """A file that is not valid TOML raises ConfigError naming the file."""
    path = write_config(tmp_path, "[server\nport = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(flags={"config": path}, environ={})
    assert path in str(caught.value)


def test_missing_file_names_file(tmp_path: Path) -> None:
    """A config path that does not exist raises ConfigError naming it."""
    path = str(tmp_path / "absent.toml")
    with pytest.raises(ConfigError) as caught:
        load_settings(flags={"config": path}, environ={})
    assert path in str(caught.value)


# The development app beyond loopback


# Without apps in the config file, the server makes this check once it has read
# the app store, which may define apps in place of the development app.
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10"])
def test_dev_app_exposed_rejected(tmp_path: Path, host: str) -> None:
    """A public address with the development app is an error naming the host."""
    settings = load(tmp_path, flags={"host": host})
    with pytest.raises(ConfigError) as caught:
        check_dev_app_exposure(settings, True)
    assert host in str(caught.value)


def test_dev_app_exposed_by_environment(tmp_path: Path) -> None:
    """CLARION_HOST beyond loopback with the development app is also an error."""
    settings = load(tmp_path, environ={"CLARION_HOST": "0.0.0.0"})
    with pytest.raises(ConfigError):
        check_dev_app_exposure(settings, True)


def test_store_apps_on_public_address(tmp_path: Path) -> None:
    """A public address is fine when the app store replaces the development app."""
    settings = load(tmp_path, flags={"host": "0.0.0.0"})
    check_dev_app_exposure(settings, False)


def test_dev_credentials_in_file_exposed(tmp_path: Path) -> None:
    """Configuring the development credentials by hand does not bypass the check."""
    toml = '[[apps]]\nid = "1"\nkey = "app-key"\nsecret = "app-secret"\n'
    with pytest.raises(ConfigError):
        load(tmp_path, toml, flags={"host": "0.0.0.0"})


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_dev_app_on_loopback(tmp_path: Path, host: str) -> None:
    """Loopback addresses need no flag for the development app."""
    assert load(tmp_path, flags={"host": host}).host == host


EXPOSE_SWITCHES = [
    pytest.param(None, {"expose_dev_app": True}, {}, id="flag"),
    pytest.param(None, {}, {"CLARION_EXPOSE_DEV_APP": "true"}, id="environment"),
    pytest.param("[server]\nexpose_dev_app = true\n", {}, {}, id="file"),
]


@pytest.mark.parametrize(("toml", "flags", "environ"), EXPOSE_SWITCHES)
def test_dev_app_exposed_explicitly(
    tmp_path: Path, toml: str | None, flags: dict[str, Any], environ: dict[str, str]
) -> None:
    """expose_dev_app, from any source, allows a public address."""
    settings = load(tmp_path, toml, flags={"host": "0.0.0.0", **flags}, environ=environ)
    assert settings.host == "0.0.0.0"


def test_own_apps_on_public_address(tmp_path: Path) -> None:
    """Apps of one's own may listen on any address without the flag."""
    settings = load(tmp_path, OWN_APP_TOML, flags={"host": "0.0.0.0"})
    assert settings.host == "0.0.0.0"


# Secrets stay out of repr


def test_settings_repr_hides_secret(tmp_path: Path) -> None:
    """repr(Settings) never shows an app secret."""
    settings = load(tmp_path, OWN_APP_TOML)
    assert "own-secret-value" not in repr(settings)


def test_settings_apps_repr_hides_secret(tmp_path: Path) -> None:
    """repr of the apps tuple never shows an app secret."""
    settings = load(tmp_path, OWN_APP_TOML)
    assert "own-secret-value" not in repr(settings.apps)


def test_app_repr_hides_secret() -> None:
    """repr(App) shows the id and key but not the secret."""
    text = repr(App(id="7", key="own-key", secret="own-secret-value"))
    assert "own-secret-value" not in text
    assert "own-key" in text


def test_dev_app_repr_hides_secret() -> None:
    """repr of the default settings does not show the public dev secret either."""
    assert "app-secret" not in repr(load_settings())


ENVIRONMENT_APP = {
    "CLARION_APP_ID": "42",
    "CLARION_APP_KEY": "environment-key",
    "CLARION_APP_SECRET": "environment-secret-value",
}


def test_environment_app_warns_of_replaced_apps(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """CLARION_APP_* replace the file's apps with a warning naming their ids,
    and no secret."""
    with caplog.at_level(logging.WARNING, logger="clarion.server.config"):
        settings = load(tmp_path, OWN_APP_TOML, environ=ENVIRONMENT_APP)
    assert [app.id for app in settings.apps] == ["42"]
    warnings = [r for r in caplog.records if r.name == "clarion.server.config"]
    assert len(warnings) == 1
    assert warnings[0].levelname == "WARNING"
    message = warnings[0].getMessage()
    assert "app 42" in message
    assert "(ids: 7)" in message
    assert "own-secret-value" not in message
    assert "environment-secret-value" not in message


def test_environment_app_without_file_is_quiet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """CLARION_APP_* without apps in the file log no warning."""
    with caplog.at_level(logging.WARNING, logger="clarion.server.config"):
        settings = load(tmp_path, environ=ENVIRONMENT_APP)
    assert [app.id for app in settings.apps] == ["42"]
    assert not [r for r in caplog.records if r.name == "clarion.server.config"]
