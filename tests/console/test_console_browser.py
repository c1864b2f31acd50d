"""The console in headless Chromium and Firefox, with pusher-js clients and
the Python SDK.

The tests of this module share one server, in both browsers, so each uses its
own channels and event names, and counts log rows only through a filter that
matches them; tests that count rows put the browser's name in their channel.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pusher
from console_harness import Browser
from interop_harness import PusherJsClient

LOG_ROWS = "#log-rows tr"


def test_console_login_lists_apps(
    browser: Browser, screenshot: Callable[[str], Path]
) -> None:
    """Logging in with the admin token leads to the list of apps."""
    assert browser.goto("/console/") == 200
    browser.wait_text("h1", "Clarion console")
    screenshot("login")

    status = browser.login()

    assert status == 200
    browser.wait_text("table tbody td", "app-key")
    screenshot("apps")


def test_console_wrong_token_rejected(browser: Browser) -> None:
    """A wrong admin token gets 401 and the login form again."""
    status = browser.login("not-the-console-token")

    assert status == 401
    browser.wait_text(".error", "Invalid admin token")
    assert browser.goto("/console/apps/1") == 200
    browser.wait_text("h1", "Clarion console")
    assert browser.count("#token") == 1


def test_console_login_without_csrf_rejected(browser: Browser) -> None:
    """A login form without its CSRF field gets 403, even with the right token."""
    browser.goto("/console/login")
    browser.call("remove", selector="input[name=csrf_token]")
    browser.call("fill", selector="#token", value="console-test-token-0123456789")

    status = browser.call("submit", selector="form button[type=submit]")["status"]

    assert status == 403
    browser.wait_text(".error", "CSRF")


def test_console_log_shows_client_subscribing(
    browser: Browser, connect_client: Callable[..., PusherJsClient]
) -> None:
    """A pusher-js client's connection and subscription appear live."""
    browser.login()
    browser.goto("/console/apps/1")
    browser.wait_text("#log-status", "Live")

    client = connect_client()
    client.subscribe("subscribing")

    browser.wait_text(f"{LOG_ROWS}.connection_opened", str(client.socket_id))
    browser.wait_text(f"{LOG_ROWS}.subscribed", "subscribing")
    browser.wait_text("#channel-rows tr", "subscribing")
    cell = "#channel-rows tr[data-channel=subscribing] td:nth-child(2)"
    assert browser.text(cell) == "1"


def test_console_log_filters_triggered_event(
    browser: Browser,
    browser_name: str,
    connect_client: Callable[..., PusherJsClient],
    python_sdk: pusher.Pusher,
) -> None:
    """An API-triggered event appears, and the filters show only what matches."""
    channel = f"{browser_name}-filtering"
    client = connect_client()
    client.subscribe(channel)
    browser.login()
    browser.goto("/console/apps/1")
    browser.wait_text("#log-status", "Live")

    python_sdk.trigger(channel, "order-placed", {"id": 7})
    browser.wait_text(f"{LOG_ROWS}.api_event", "order-placed")

    browser.call("fill", selector="#filter-channel", value=channel)
    assert browser.count(LOG_ROWS) == 2
    browser.call("fill", selector="#filter-event", value="order-placed")
    assert browser.count(LOG_ROWS) == 1
    browser.call("fill", selector="#filter-event", value="")
    browser.call("select", selector="#filter-kind", value="subscribed")
    assert browser.count(LOG_ROWS) == 1
    browser.call("select", selector="#filter-kind", value="api_event")
    assert browser.count(f"{LOG_ROWS}.api_event") == 1
    browser.call("fill", selector="#filter-channel", value="no-such-channel")
    assert browser.count(LOG_ROWS) == 0


def test_console_pause_holds_new_rows(
    browser: Browser, browser_name: str, python_sdk: pusher.Pusher
) -> None:
    """While paused the log keeps its rows; resuming adds what arrived."""
    channel = f"{browser_name}-pausing"
    browser.login()
    browser.goto("/console/apps/1")
    browser.wait_text("#log-status", "Live")
    browser.call("fill", selector="#filter-channel", value=channel)
    browser.call("click", selector="#pause")

    python_sdk.trigger(channel, "while-paused", {})
    browser.wait_text("#log-status", "1 new event")
    assert browser.count(LOG_ROWS) == 0

    browser.call("click", selector="#pause")
    browser.wait_text(LOG_ROWS, "while-paused")


def test_console_form_event_reaches_client(
    browser: Browser,
    connect_client: Callable[..., PusherJsClient],
    screenshot: Callable[[str], Path],
) -> None:
    """An event sent from the trigger form reaches a subscribed pusher-js client."""
    client = connect_client()
    client.subscribe("orders", bind=("from-console",))
    browser.login()
    browser.goto("/console/apps/1")
    browser.wait_text("#channel-rows tr", "orders")

    browser.call("fill", selector="#trigger-channel", value="orders")
    browser.call("fill", selector="#trigger-event", value="from-console")
    browser.call("fill", selector="#trigger-data", value='{"hello": "browser"}')
    browser.call("click", selector="#trigger-form button[type=submit]")

    browser.wait_text("#trigger-status", "Published from-console to orders")
    record = client.wait_event("orders", "from-console")
    assert record["data"] == {"hello": "browser"}
    browser.wait_text(f"{LOG_ROWS}.api_event", "from-console")
    screenshot("app")


def test_console_form_without_csrf_rejected(
    browser: Browser, browser_name: str, python_sdk: pusher.Pusher
) -> None:
    """The trigger form without its CSRF field is rejected with 403."""
    browser.login()
    browser.goto("/console/apps/1")
    browser.wait_text("#log-status", "Live")
    browser.call("remove", selector="#trigger-form input[name=csrf_token]")
    browser.call("fill", selector="#trigger-channel", value="forging")
    browser.call("fill", selector="#trigger-event", value="forged")
    browser.call("click", selector="#trigger-form button[type=submit]")

    browser.wait_text("#trigger-status", "Missing or invalid CSRF token")
    marker = f"{browser_name}-marker"
    python_sdk.trigger("forging", marker, {})
    browser.wait_text(LOG_ROWS, marker)
    assert browser.count(f"{LOG_ROWS}[data-event=forged]") == 0


def test_console_shows_presence_members(
    browser: Browser,
    connect_client: Callable[..., PusherJsClient],
    screenshot: Callable[[str], Path],
) -> None:
    """Presence members are listed with their user_info."""
    alice = connect_client("alice")
    bob = connect_client("bob")
    alice.subscribe("presence-room")
    bob.subscribe("presence-room")
    browser.login()
    browser.goto("/console/apps/1")

    browser.wait_text("#channel-rows tr[data-channel=presence-room]", "2 members")
    browser.call(
        "click", selector="#channel-rows tr[data-channel=presence-room] button"
    )

    browser.wait_text("#members-title", "Members of presence-room (2)")
    browser.wait_text("#member-list li", "alice")
    browser.wait_text("#member-list li", '"name": "Bob"')
    screenshot("presence")


def test_console_logout_returns_to_login(browser: Browser) -> None:
    """The Log out button ends the session: the app page then asks for login."""
    browser.login()
    browser.goto("/console/apps/1")
    browser.wait_text("#log-status", "Live")

    status = browser.call("submit", selector="header form button[type=submit]")

    assert status["url"].endswith("/console/login")
    browser.goto("/console/apps/1")
    browser.wait_text("h1", "Clarion console")
    assert browser.count("#token") == 1
