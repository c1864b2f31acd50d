"""SubscriptionCounts driven by a fake adapter: which changes send a
`pusher_internal:subscription_count`, and the throttle on busy channels."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

from clarion.protocol.apps import App
from clarion.server import counts as counts_module
from clarion.server.adapters import ChannelInfo
from clarion.server.apps import StaticAppRegistry
from clarion.server.config import Settings
from clarion.server.counts import THROTTLE_ABOVE, SubscriptionCounts
from clarion.server.webhooks import Webhooks
from clarion.server.websocket import OutboundMessage

APP = App(id="1", key="key", secret="secret", subscription_count_events=True)
APP_WITHOUT_COUNTS = App(id="2", key="key-2", secret="secret-2")
# Seconds between two counts on a busy channel in these tests, where the
# server's own interval is 5 s. Waits below are bounded by SETTLE.
INTERVAL = 0.1
SETTLE = 3 * INTERVAL


class FakeAdapter:
    """Reports the counts a test sets and records every published message."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.published: list[tuple[str, str, str, str | None]] = []
        self.publish_seen = asyncio.Event()

    async def channel_info(self, app_id: str, channel: str) -> ChannelInfo:
        return ChannelInfo(self.counts.get((app_id, channel), 0), None)

    async def publish(
        self,
        app_id: str,
        channel: str,
        message: OutboundMessage,
        except_socket_id: str | None = None,
    ) -> None:
        self.published.append((app_id, channel, message.text, except_socket_id))
        self.publish_seen.set()

    def sent_counts(self, channel: str) -> list[int]:
        """Return the subscription_count values published to `channel`."""
        values = []
        for _, published_channel, text, _ in self.published:
            if published_channel == channel:
                values.append(
                    json.loads(json.loads(text)["data"])["subscription_count"]
                )
        return values


class Harness:
    """A SubscriptionCounts over a FakeAdapter, with tasks kept until the end."""

    def __init__(self) -> None:
        self.adapter = FakeAdapter()
        self.tasks: set[asyncio.Task[None]] = set()
        # No app here has webhook URLs, so these webhooks send nothing.
        webhooks = Webhooks(Settings(), StaticAppRegistry([]))
        self.counts = SubscriptionCounts(
            self.adapter,  # type: ignore[arg-type]
            self.spawn,
            webhooks,
        )

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def change(self, channel: str, count: int, app: App = APP) -> None:
        """Set the channel's count and report the change."""
        self.adapter.counts[(app.id, channel)] = count
        await self.counts.changed(app, channel)

    async def wait_for_publish(self) -> None:
        """Wait until something is published, at most SETTLE seconds."""
        self.adapter.publish_seen.clear()
        await asyncio.wait_for(self.adapter.publish_seen.wait(), SETTLE)


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.setattr(counts_module, "THROTTLE_INTERVAL", INTERVAL)
    harness = Harness()
    yield harness
    harness.counts.close()


# Which changes send a count


async def test_counts_small_channel_every_change(harness: Harness) -> None:
    """Up to the threshold, every change sends the new count."""
    for count in (1, 2, 3, 2):
        await harness.change("room", count)
    assert harness.adapter.sent_counts("room") == [1, 2, 3, 2]


async def test_counts_exact_message_to_everyone(harness: Harness) -> None:
    """The message is the exact frame, published with no connection excluded."""
    await harness.change("room", 3)
    assert harness.adapter.published == [
        (
            "1",
            "room",
            '{"event":"pusher_internal:subscription_count","channel":"room",'
            '"data":"{\\"subscription_count\\":3}"}',
            None,
        )
    ]


async def test_counts_threshold_still_immediate(harness: Harness) -> None:
    """A count equal to the threshold is sent at once."""
    await harness.change("room", THROTTLE_ABOVE - 1)
    await harness.change("room", THROTTLE_ABOVE)
    assert harness.adapter.sent_counts("room") == [THROTTLE_ABOVE - 1, THROTTLE_ABOVE]


async def test_counts_switch_off_silent(harness: Harness) -> None:
    """An app without subscription_count_events gets no counts."""
    await harness.change("room", 1, APP_WITHOUT_COUNTS)
    assert harness.adapter.published == []


@pytest.mark.parametrize(
    "channel", ["presence-room", "presence-cache-room", "#server-to-user-7"]
)
async def test_counts_excluded_channel_kinds(harness: Harness, channel: str) -> None:
    """Presence and user channels get no counts."""
    await harness.change(channel, 1)
    assert harness.adapter.published == []


@pytest.mark.parametrize(
    "channel",
    ["room", "cache-room", "private-room", "private-cache-room", "private-encrypted-x"],
)
async def test_counts_counted_channel_kinds(harness: Harness, channel: str) -> None:
    """Public, private, encrypted and cache channels get counts."""
    await harness.change(channel, 1)
    assert harness.adapter.sent_counts(channel) == [1]


async def test_counts_empty_channel_silent(harness: Harness) -> None:
    """A change that leaves the channel empty sends nothing."""
    await harness.change("room", 1)
    await harness.change("room", 0)
    assert harness.adapter.sent_counts("room") == [1]


# Throttle above the threshold


async def test_counts_busy_channel_deferred(harness: Harness) -> None:
    """Changes right after a send are held, then one count with the latest value."""
    await harness.change("room", THROTTLE_ABOVE)
    await harness.change("room", THROTTLE_ABOVE + 1)
    await harness.change("room", THROTTLE_ABOVE + 2)
    await harness.change("room", THROTTLE_ABOVE + 3)
    assert harness.adapter.sent_counts("room") == [THROTTLE_ABOVE]

    await harness.wait_for_publish()
    await asyncio.sleep(SETTLE)
    assert harness.adapter.sent_counts("room") == [THROTTLE_ABOVE, THROTTLE_ABOVE + 3]


async def test_counts_deferred_reads_count_at_send(harness: Harness) -> None:
    """The held count is read when it is sent, not when it was held."""
    await harness.change("room", THROTTLE_ABOVE)
    await harness.change("room", THROTTLE_ABOVE + 1)
    harness.adapter.counts[("1", "room")] = THROTTLE_ABOVE + 9
    await harness.wait_for_publish()
    assert harness.adapter.sent_counts("room") == [THROTTLE_ABOVE, THROTTLE_ABOVE + 9]


async def test_counts_busy_after_quiet_immediate(harness: Harness) -> None:
    """A busy channel's change long after the last send goes out at once."""
    await harness.change("room", THROTTLE_ABOVE + 5)
    await asyncio.sleep(INTERVAL * 1.5)
    await harness.change("room", THROTTLE_ABOVE + 6)
    assert harness.adapter.sent_counts("room") == [
        THROTTLE_ABOVE + 5,
        THROTTLE_ABOVE + 6,
    ]


async def test_counts_busy_at_most_one_per_interval(harness: Harness) -> None:
    """A stream of changes on a busy channel sends about one count per interval."""
    await harness.change("room", THROTTLE_ABOVE + 1)
    loop = asyncio.get_running_loop()
    end = loop.time() + 3 * INTERVAL
    count = THROTTLE_ABOVE + 1
    while loop.time() < end:
        count += 1
        await harness.change("room", count)
        await asyncio.sleep(INTERVAL / 10)
    await asyncio.sleep(SETTLE)
    sent = harness.adapter.sent_counts("room")
    # 3 intervals of changes, plus the first send and the held one after them.
    assert len(sent) <= 5, sent
    assert sent[-1] == count


async def test_counts_drop_below_cancels_hold(harness: Harness) -> None:
    """Falling back to the threshold sends at once and drops the held count."""
    await harness.change("room", THROTTLE_ABOVE)
    await harness.change("room", THROTTLE_ABOVE + 1)
    await harness.change("room", THROTTLE_ABOVE - 1)
    await asyncio.sleep(SETTLE)
    assert harness.adapter.sent_counts("room") == [THROTTLE_ABOVE, THROTTLE_ABOVE - 1]


async def test_counts_emptied_cancels_hold(harness: Harness) -> None:
    """A channel emptied while a count is held sends nothing more."""
    await harness.change("room", THROTTLE_ABOVE)
    await harness.change("room", THROTTLE_ABOVE + 1)
    await harness.change("room", 0)
    await asyncio.sleep(SETTLE)
    assert harness.adapter.sent_counts("room") == [THROTTLE_ABOVE]


async def test_counts_close_cancels_hold(harness: Harness) -> None:
    """close() drops every held count."""
    await harness.change("room", THROTTLE_ABOVE)
    await harness.change("room", THROTTLE_ABOVE + 1)
    harness.counts.close()
    await asyncio.sleep(SETTLE)
    assert harness.adapter.sent_counts("room") == [THROTTLE_ABOVE]


async def test_counts_channels_throttled_separately(harness: Harness) -> None:
    """A held count on one busy channel does not delay another channel."""
    await harness.change("busy", THROTTLE_ABOVE)
    await harness.change("busy", THROTTLE_ABOVE + 1)
    await harness.change("quiet", 1)
    await harness.change("other-busy", THROTTLE_ABOVE + 1)
    assert harness.adapter.sent_counts("quiet") == [1]
    assert harness.adapter.sent_counts("other-busy") == [THROTTLE_ABOVE + 1]


async def test_counts_apps_throttled_separately(harness: Harness) -> None:
    """The same channel name in two apps is throttled independently."""
    other_app = App(id="3", key="key-3", secret="s", subscription_count_events=True)
    await harness.change("room", THROTTLE_ABOVE + 1)
    await harness.change("room", THROTTLE_ABOVE + 1, other_app)
    published_apps = [app_id for app_id, *_ in harness.adapter.published]
    assert published_apps == ["1", "3"]
