"""The dead-letter store: deliveries still failing after webhook_retry_window,
listed and replayed with `clarion webhooks failed` and `replay` while the
server runs."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

import pusher
from webhook_harness import APP, run_cli, wait_for_log, webhook_config

from clarion.protocol.webhooks import encode_body
from clarion.server.webhooks import SQLiteOutbox

DEAD_LINE = "dead-letter"


def start_failing(start_server, data_dir, receiver, tmp_path):
    """Start a server whose two URLs respond 500 and whose retries stop after
    2 s. Return the server and its config file."""
    receiver.fail_next(1_000_000, status=500)
    webhooks = [
        {"url": receiver.url("/first"), "event_types": ["channel_occupied"]},
        {"url": receiver.url("/second"), "event_types": ["channel_occupied"]},
    ]
    app = replace(APP, webhooks=webhooks)
    config = webhook_config(data_dir, [app], retry_window=2)
    config_path = tmp_path / "webhooks.toml"
    config_path.write_text(config, encoding="utf-8")
    return start_server(config), config_path


def list_failed(data_dir):
    """Return the records of `clarion webhooks failed --json`."""
    listing = run_cli("webhooks", "failed", "--data-dir", str(data_dir), "--json")
    assert listing.returncode == 0, listing.stderr
    return [json.loads(line) for line in listing.stdout.splitlines()]


def test_failed_lists_dead_letters(
    start_server, data_dir, receiver, raw_client, tmp_path
):
    """`webhooks failed` lists dead deliveries as text and JSON with the body."""
    server, config_path = start_failing(start_server, data_dir, receiver, tmp_path)
    raw_client(server).subscribe("doomed")
    wait_for_log(server, DEAD_LINE, count=2)

    text = run_cli("webhooks", "failed", "--config", str(config_path))
    records = list_failed(data_dir)

    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == 2
    assert "2 failed webhook(s)" in text.stderr
    assert len(records) == 2
    by_url = {record["url"]: record for record in records}
    assert sorted(by_url) == [receiver.url("/first"), receiver.url("/second")]
    sent_bodies = {request.body.decode() for request in receiver.requests}
    for record in records:
        assert str(record["id"]) in " ".join(lines)
        assert record["app_id"] == APP.id
        assert record["attempts"] >= 1
        assert "500" in record["last_error"]
        assert record["body"] in sent_bodies
        assert json.loads(record["body"])["events"] == [
            {"name": "channel_occupied", "channel": "doomed"}
        ]
    assert APP.secret not in text.stdout


def test_replay_by_id_then_all(start_server, data_dir, receiver, raw_client, tmp_path):
    """`webhooks replay ID` sends one dead delivery again and `--all` the rest."""
    server, _ = start_failing(start_server, data_dir, receiver, tmp_path)
    raw_client(server).subscribe("revived")
    wait_for_log(server, DEAD_LINE, count=2)
    records = list_failed(data_dir)
    first = next(r for r in records if r["url"] == receiver.url("/first"))
    receiver.fail_next(0)

    replay_one = run_cli(
        "webhooks", "replay", "--data-dir", str(data_dir), str(first["id"])
    )
    receiver.wait_for_request(
        "the replayed body on /first",
        lambda r: r.path == "/first" and r.delivered,
    )
    remaining = list_failed(data_dir)
    replay_all = run_cli("webhooks", "replay", "--data-dir", str(data_dir), "--all")
    receiver.wait_for_request(
        "the replayed body on /second",
        lambda r: r.path == "/second" and r.delivered,
    )

    assert replay_one.returncode == 0, replay_one.stderr
    assert "1 webhook(s) moved back" in replay_one.stdout
    assert [r["url"] for r in remaining] == [receiver.url("/second")]
    assert replay_all.returncode == 0, replay_all.stderr
    assert "1 webhook(s) moved back" in replay_all.stdout
    for request in receiver.delivered():
        dead = json.loads(
            next(r for r in records if r["url"].endswith(request.path))["body"]
        )
        replayed = json.loads(request.body)
        # A replay is sent as a new webhook: same events, the replay's time_ms.
        assert replayed["events"] == dead["events"]
        assert replayed["time_ms"] > dead["time_ms"]
    assert receiver.events() == [
        {"name": "channel_occupied", "channel": "revived"},
        {"name": "channel_occupied", "channel": "revived"},
    ]
    receiver.wait_until(
        "the dead-letter store is empty", lambda: not list_failed(data_dir)
    )


def test_replay_unknown_id_fails(
    start_server, data_dir, receiver, raw_client, tmp_path
):
    """Replaying an id that is not in the dead-letter store exits with 1."""
    server, _ = start_failing(start_server, data_dir, receiver, tmp_path)
    raw_client(server).subscribe("anything")
    receiver.wait_until("a request arrives", lambda: receiver.requests)

    outcome = run_cli("webhooks", "replay", "--data-dir", str(data_dir), "999999")

    assert outcome.returncode == 1
    assert "0 webhook(s) moved back" in outcome.stdout


def test_failed_without_outbox_exits_2(tmp_path):
    """`webhooks failed` on a data directory without an outbox exits with 2."""
    outcome = run_cli("webhooks", "failed", "--data-dir", str(tmp_path / "empty"))

    assert outcome.returncode == 2
    assert "no webhook outbox" in outcome.stderr


def queue_old_delivery(data_dir, url, age):
    """Add a delivery created `age` seconds ago to the outbox, as a server that
    was stopped for that long would have left it."""
    created = time.time() - age
    events = [{"name": "channel_occupied", "channel": "long-ago"}]
    body = encode_body(int(created * 1000), events)

    async def add():
        outbox = SQLiteOutbox(data_dir / "webhooks.sqlite3")
        try:
            await outbox.add(APP.id, url, body, {}, created)
        finally:
            await outbox.close()

    asyncio.run(add())


def test_replayed_old_webhook_passes_sdk_check(
    start_server, data_dir, receiver, raw_client, tmp_path
):
    """A replayed webhook created 10 minutes ago passes validate_webhook."""
    server, _ = start_failing(start_server, data_dir, receiver, tmp_path)
    queue_old_delivery(data_dir, receiver.url("/first"), age=600)
    wait_for_log(server, DEAD_LINE)
    receiver.fail_next(0)

    outcome = run_cli("webhooks", "replay", "--data-dir", str(data_dir), "--all")
    request = receiver.wait_for_request("the replayed webhook", lambda r: r.delivered)
    sdk = pusher.Pusher(app_id=APP.id, key=APP.key, secret=APP.secret)
    signature = request.headers["x-pusher-signature"]

    assert outcome.returncode == 0, outcome.stderr
    assert request.events == [{"name": "channel_occupied", "channel": "long-ago"}]
    # pusher-http-python 3.3 rejects a time_ms more than 300 s from its clock.
    assert sdk.validate_webhook(APP.key, signature, request.body) is not None, (
        f"the Python SDK rejects the replayed body {request.body!r}"
    )
