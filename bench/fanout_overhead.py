"""Python time per subscriber on Clarion's fan-out path, without the kernel.

Every subscriber gets a stub transport whose ``write`` is a C-level no-op
(``deque(maxlen=0).append``), so the loop measures only the Python work around
the write: Clarion's ``LocalAdapter.publish`` against the plain
``transport.write`` loop of the ceiling server. On a real socket each write
also costs a ``send()`` system call, which the end-to-end runs of run.py
measure.

Usage: python bench/fanout_overhead.py [--subscribers 10000] [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from clarion.protocol.apps import App  # noqa: E402
from clarion.server.adapters import LocalAdapter  # noqa: E402
from clarion.server.apps import StaticAppRegistry  # noqa: E402
from clarion.server.config import Settings  # noqa: E402
from clarion.server.hub import Hub  # noqa: E402
from clarion.server.websocket import OutboundMessage  # noqa: E402
from clarion.server.websocket_connection import WebSocketConnection  # noqa: E402


class StubTransport:
    __slots__ = ("write", "writelines")

    def __init__(self) -> None:
        self.write = deque(maxlen=0).append
        self.writelines = deque(maxlen=0).append


async def measure(subscribers: int, rounds: int) -> tuple[float, float]:
    """Return the median ns per subscriber of Clarion's loop and of the raw loop."""
    app = App(id="1", key="key", secret="secret")
    adapter = LocalAdapter()
    hub = Hub(Settings(apps=(app,)), StaticAppRegistry([app]), adapter)
    transports = []
    for index in range(subscribers):
        transport = StubTransport()
        connection = WebSocketConnection(hub, app, f"{index}.1", transport)  # type: ignore[arg-type]
        await adapter.add_subscription(app.id, "bench", connection, None, 100)
        transports.append(transport)
    text = '{"event":"bench-event","channel":"bench","data":"' + "x" * 100 + '"}'

    clarion_times = []
    raw_times = []
    for _ in range(rounds):
        message = OutboundMessage(text)
        started = time.perf_counter_ns()
        await adapter.publish(app.id, "bench", message)
        # Connections queue frames and the hub writes them once per loop pass.
        hub.flush()
        clarion_times.append((time.perf_counter_ns() - started) / subscribers)

        frame = message.frame
        started = time.perf_counter_ns()
        for transport in transports:
            transport.write(frame)
        raw_times.append((time.perf_counter_ns() - started) / subscribers)
    return statistics.median(clarion_times), statistics.median(raw_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    clarion, raw = asyncio.run(measure(args.subscribers, args.rounds))
    print(f"Clarion LocalAdapter.publish: {clarion:.0f} ns per subscriber")
    print(f"raw transport.write loop:     {raw:.0f} ns per subscriber")
    print(f"Clarion's extra Python time:  {clarion - raw:.0f} ns per delivery")


if __name__ == "__main__":
    main()
