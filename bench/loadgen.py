"""Load generator for any Pusher-compatible server, over 127.0.0.1 only.

Subscriber worker processes open raw TCP connections, upgrade them to
WebSocket at ``/app/{key}?protocol=7``, send one ``pusher:subscribe`` per
channel and wait for each ``pusher_internal:subscription_succeeded``.
Subscriptions to ``private-`` and ``presence-`` channels carry an ``auth``
token signed with the app secret, and presence subscriptions carry
``channel_data`` with a distinct user id per connection. After that the
workers read only frame headers: a delivery is counted when the last byte of
a text frame arrives, and payloads are never decoded.

The main process publishes through the signed HTTP API over keep-alive
connections: ``POST /apps/{app_id}/events``, or ``batch_events`` with
``--batch`` above 1. Events go to the channels in turn, event ``i`` to
channel ``i % --channels``. Without ``--rate`` each publisher connection
sends its next request as soon as the response to the previous one arrives. With
``--rate`` one connection sends requests on a fixed schedule, and
``--latency`` then reports the time from each request's write to each
delivery. Both processes read ``time.monotonic()``, one clock for the whole
machine.

Control and results are JSON lines on stdout. The process prints
``{"event": "subscribed", ...}`` once every subscriber is confirmed (and, on
a presence channel, every ``member_added`` has arrived). With ``--control
stdin`` it then waits for a ``publish`` or ``stop`` line, so that a caller can
sample the server in between, and prints ``{"event": "done", ...}`` at the
end. Progress goes to stderr.

Every phase has a time limit, and each process stops itself after
``--hard-timeout`` seconds (SIGALRM).

Usage:
  python bench/loadgen.py --port 6001 --app-id 1 --key app-key \
      --secret app-secret --subscribers 1000 --events 200
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import errno
import json
import math
import multiprocessing
import os
import resource
import select
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Requests and channel tokens are signed with Clarion's implementation of the
# Pusher signatures.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from clarion.protocol.auth import sign, sign_api_request  # noqa: E402

HOST = "127.0.0.1"
EVENT_NAME = "bench-event"
SUBSCRIBED_MARK = b'"pusher_internal:subscription_succeeded"'
ESTABLISHED_MARK = b'"pusher:connection_established"'
ERROR_MARKS = (b'"pusher:error"', b'"pusher:subscription_error"')
LINGER_RESET = struct.pack("ii", 1, 0)
"""SO_LINGER on with a zero timeout: close() sends RST and leaves no TIME_WAIT."""
BIND_ATTEMPTS = 200
"""Source ports tried per connection with ``--source-ports`` before giving up."""


@dataclass(frozen=True)
class Options:
    port: int
    app_id: str
    key: str
    secret: str
    channel: str
    channels: int
    subscriptions_per_connection: int
    subscribers: int
    events: int
    batch: int
    rate: float
    latency: bool
    payload_bytes: int
    workers: int
    concurrency: int
    publishers: int
    source_ports: tuple[int, int] | None
    connect_timeout: float
    deliver_timeout: float
    hard_timeout: float
    control: str

    @property
    def presence(self) -> bool:
        return self.channel.startswith("presence-")


def log(message: str) -> None:
    print(f"loadgen: {message}", file=sys.stderr, flush=True)


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def raise_file_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def install_uvloop() -> None:
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# Channel layout


def channel_name(options: Options, index: int) -> str:
    if options.channels == 1:
        return options.channel
    return f"{options.channel}-{index}"


def connection_channels(options: Options, connection: int) -> list[str]:
    """Return the channels that connection number ``connection`` subscribes to.

    Connection ``j`` takes the ``--subscriptions-per-connection`` channels that
    follow channel ``j * S``, so every channel gets the same number of
    subscribers when the connections times S is a multiple of the channels.
    """
    per_connection = options.subscriptions_per_connection
    first = connection * per_connection
    return [
        channel_name(options, (first + offset) % options.channels)
        for offset in range(per_connection)
    ]


def events_per_channel(options: Options) -> dict[str, int]:
    """Return how many of the published events go to each channel."""
    counts: dict[str, int] = {}
    for sequence in range(options.events):
        name = channel_name(options, sequence % options.channels)
        counts[name] = counts.get(name, 0) + 1
    return counts


# Client frames


def masked_text_frame(payload: bytes) -> bytes:
    """Encode one client text frame; RFC 6455 requires clients to mask."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = bytes((0x81, 0x80 | length))
    elif length < 65536:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, length)
    # XOR the payload with the repeated mask as one big integer, not byte by byte.
    key = (mask * (length // 4 + 1))[:length]
    masked = int.from_bytes(payload) ^ int.from_bytes(key)
    return header + mask + masked.to_bytes(length)


def upgrade_request(options: Options) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /app/{options.key}?protocol=7&client=clarion-bench&version=0.1"
        " HTTP/1.1\r\n"
        f"Host: {HOST}:{options.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def subscribe_frames(
    options: Options, connection: int, channels: list[str], socket_id: str
) -> bytes:
    """Encode the ``pusher:subscribe`` frames of one connection, signed where the
    channel needs authorization."""
    frames = []
    for channel in channels:
        data: dict[str, str] = {"channel": channel}
        if channel.startswith("presence-"):
            channel_data = json.dumps(
                {
                    "user_id": f"member-{connection}",
                    "user_info": {"name": f"Member {connection}"},
                }
            )
            signature = sign(options.secret, f"{socket_id}:{channel}:{channel_data}")
            data |= {"auth": f"{options.key}:{signature}", "channel_data": channel_data}
        elif channel.startswith("private-"):
            signature = sign(options.secret, f"{socket_id}:{channel}")
            data["auth"] = f"{options.key}:{signature}"
        message = json.dumps({"event": "pusher:subscribe", "data": data})
        frames.append(masked_text_frame(message.encode()))
    return b"".join(frames)


def socket_id_of(payload: bytes) -> str:
    """Return the socket id from a ``pusher:connection_established`` payload."""
    return json.loads(json.loads(payload)["data"])["socket_id"]


# Subscribers

PUBLIC_SUBSCRIBE_FRAMES: dict[tuple[str, ...], bytes] = {}
"""The subscribe frames of a public channel set, built once per worker.

Connections with the same channels then send the same mask, which no server
checks for."""


class WorkerState:
    """Delivery counters shared by the subscribers of one worker process."""

    def __init__(self) -> None:
        self.frames = 0
        """Text frames received after each connection's last confirmation."""
        self.other_frames = 0
        """Frames other than text after the subscription (close, ping)."""
        self.bytes = 0
        self.expected = -1
        """Text frames to wait for; -1 until the publish phase starts."""
        self.first_delivery = 0.0
        self.last_delivery = 0.0
        self.all_arrived: asyncio.Future[None] | None = None
        self.closed = 0
        """Subscribed connections that the server closed."""


class Subscriber(asyncio.Protocol):
    """One WebSocket connection: handshake and subscribe, then count frames."""

    __slots__ = (
        "arrivals",
        "buffer",
        "channels",
        "confirmed",
        "connection",
        "options",
        "pending",
        "request",
        "skip",
        "state",
        "transport",
        "unconfirmed",
        "upgraded",
    )

    def __init__(
        self,
        options: Options,
        state: WorkerState,
        request: bytes,
        connection: int,
        channels: list[str],
    ) -> None:
        self.options = options
        self.state = state
        self.request = request
        self.connection = connection
        """Number of this connection across all workers; presence uses it as user id."""
        self.channels = channels
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False
        self.unconfirmed = len(channels)
        self.confirmed: asyncio.Future[None] = (
            asyncio.get_running_loop().create_future()
        )
        self.skip = 0
        """Bytes still to come of the frame that a previous read started."""
        self.pending = False
        """Whether that unfinished frame is a text frame."""
        self.arrivals: list[float] | None = [] if options.latency else None
        """Monotonic arrival time of each text frame, with ``--latency``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        confirmed = self.confirmed
        if not confirmed.done():
            confirmed.set_exception(
                ConnectionError(f"closed before the subscription: {exc}")
            )
        elif is_confirmed(confirmed):
            self.state.closed += 1

    def data_received(self, data: bytes) -> None:
        if self.confirmed.done():
            self.count(data)
        else:
            self.handshake(data)

    def subscribe_frames(self, established: bytes) -> bytes:
        options = self.options
        if options.channel.startswith(("private-", "presence-")):
            socket_id = socket_id_of(established)
            return subscribe_frames(options, self.connection, self.channels, socket_id)
        # Public subscriptions are the same for every connection with these channels.
        key = tuple(self.channels)
        frames = PUBLIC_SUBSCRIBE_FRAMES.get(key)
        if frames is None:
            frames = subscribe_frames(options, self.connection, self.channels, "")
            PUBLIC_SUBSCRIBE_FRAMES[key] = frames
        return frames

    def fail(self, reason: str) -> None:
        if not self.confirmed.done():
            self.confirmed.set_exception(ConnectionError(reason))
        self.transport.close()

    def handshake(self, data: bytes) -> None:
        buffer = self.buffer + data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                status = buffer.split(b"\r\n", 1)[0].decode("latin-1")
                self.fail(f"upgrade failed: {status}")
                return
            self.upgraded = True
            buffer = buffer[end + 4 :]
        offset = 0
        while len(buffer) - offset >= 2:
            length = buffer[offset + 1] & 0x7F
            start = offset + 2
            if length == 126:
                if len(buffer) - start < 2:
                    break
                (length,) = struct.unpack_from("!H", buffer, start)
                start += 2
            elif length == 127:
                if len(buffer) - start < 8:
                    break
                (length,) = struct.unpack_from("!Q", buffer, start)
                start += 8
            if len(buffer) < start + length:
                break
            payload = buffer[start : start + length]
            offset = start + length
            if ESTABLISHED_MARK in payload:
                self.transport.write(self.subscribe_frames(payload))
            elif SUBSCRIBED_MARK in payload:
                self.unconfirmed -= 1
                if self.unconfirmed == 0:
                    self.buffer = b""
                    self.confirmed.set_result(None)
                    if offset < len(buffer):
                        self.count(buffer[offset:])
                    return
            elif any(mark in payload for mark in ERROR_MARKS):
                self.fail(payload[:300].decode(errors="replace"))
                return
            # Other frames before the last confirmation are not counted.
        self.buffer = buffer[offset:]

    def count(self, data: bytes) -> None:
        state = self.state
        size = len(data)
        state.bytes += size
        frames = 0
        position = self.skip
        if position > size:
            self.skip = position - size
            return
        if position and self.pending:
            frames += 1
        if self.buffer:
            # A frame header split across reads: parse it from the joined bytes.
            data = self.buffer + data
            size = len(data)
            self.buffer = b""
        while position < size:
            if size - position < 10 and not _header_complete(data, position, size):
                self.buffer = data[position:]
                position = size
                break
            first = data[position]
            length = data[position + 1] & 0x7F
            if length < 126:
                end = position + 2 + length
            elif length == 126:
                end = position + 4 + ((data[position + 2] << 8) | data[position + 3])
            else:
                end = position + 10 + int.from_bytes(data[position + 2 : position + 10])
            is_text = (first & 0x0F) == 0x1
            if end <= size:
                if is_text:
                    frames += 1
                else:
                    state.other_frames += 1
            else:
                self.pending = is_text
                if not is_text:
                    state.other_frames += 1
            position = end
        self.skip = position - size
        if frames:
            state.frames += frames
            now = time.monotonic()
            if self.arrivals is not None:
                self.arrivals.extend([now] * frames)
            if not state.first_delivery:
                state.first_delivery = now
            state.last_delivery = now
            if 0 <= state.expected <= state.frames and state.all_arrived is not None:
                if not state.all_arrived.done():
                    state.all_arrived.set_result(None)


def _header_complete(data: bytes, position: int, size: int) -> bool:
    available = size - position
    if available < 2:
        return False
    length = data[position + 1] & 0x7F
    if length < 126:
        return available >= 2
    if length == 126:
        return available >= 4
    return available >= 10


class SourcePorts:
    """Local ports to bind on 127.0.0.1 before connecting, in turn.

    One source address and one server port allow only as many connections as
    the kernel's ephemeral port range (often 28,232), so larger runs bind
    ports of their own.
    """

    def __init__(self, low: int, high: int, server_port: int) -> None:
        self.ports = [port for port in range(low, high + 1) if port != server_port]
        self.next = 0

    def take(self) -> int:
        if self.next >= len(self.ports):
            raise OSError(errno.EADDRNOTAVAIL, "no source port left in --source-ports")
        port = self.ports[self.next]
        self.next += 1
        return port


async def open_connection(
    options: Options, factory, ports: SourcePorts | None
) -> Subscriber:
    loop = asyncio.get_running_loop()
    if ports is None:
        _, protocol = await loop.create_connection(factory, HOST, options.port)
        return protocol
    for _ in range(BIND_ATTEMPTS):
        try:
            _, protocol = await loop.create_connection(
                factory, HOST, options.port, local_addr=(HOST, ports.take())
            )
            return protocol
        except OSError as exc:
            # Another socket on the machine uses this port: take the next one.
            if exc.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, f"{BIND_ATTEMPTS} source ports in a row were busy")


def is_confirmed(future: asyncio.Future[None]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


@dataclass
class Subscribed:
    subscribers: list[Subscriber]
    errors: list[str]
    first_attempt: float
    last_confirmation: float


async def connect_subscribers(
    options: Options,
    count: int,
    offset: int,
    ports: SourcePorts | None,
    state: WorkerState,
    worker: int,
) -> Subscribed:
    """Open and subscribe ``count`` connections, ``--concurrency`` at a time.

    Each of ``--concurrency`` tasks opens one connection after the other, so
    the worker runs few tasks however many connections it opens.
    """
    loop = asyncio.get_running_loop()
    request = upgrade_request(options)
    deadline = loop.time() + options.connect_timeout
    numbers = iter(range(offset, offset + count))
    subscribers: list[Subscriber] = []
    errors: list[str] = []
    last_confirmation = 0.0

    async def open_in_turn() -> None:
        nonlocal last_confirmation
        for connection in numbers:
            channels = connection_channels(options, connection)

            def factory(connection=connection, channels=channels) -> Subscriber:
                return Subscriber(options, state, request, connection, channels)

            try:
                async with asyncio.timeout_at(deadline):
                    protocol = await open_connection(options, factory, ports)
                    subscribers.append(protocol)
                    await protocol.confirmed
                last_confirmation = max(last_confirmation, time.monotonic())
            except TimeoutError:
                errors.append(
                    f"TimeoutError: not subscribed within {options.connect_timeout} s"
                )
            except (OSError, ConnectionError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    first_attempt = time.monotonic()
    tasks = [
        loop.create_task(open_in_turn()) for _ in range(min(options.concurrency, count))
    ]
    reporter = loop.create_task(report_connect_progress(subscribers, count, worker))
    await asyncio.gather(*tasks)
    reporter.cancel()
    confirmed = []
    for subscriber in subscribers:
        if is_confirmed(subscriber.confirmed):
            confirmed.append(subscriber)
        else:
            # Timed out or failed: it must not count frames or hold a port.
            subscriber.transport.abort()
    return Subscribed(confirmed, errors, first_attempt, last_confirmation)


async def report_connect_progress(
    subscribers: list[Subscriber], count: int, worker: int
) -> None:
    while True:
        await asyncio.sleep(2)
        done = sum(1 for s in subscribers if is_confirmed(s.confirmed))
        log(f"worker {worker}: {done}/{count} subscribed")


def run_worker(
    options: Options,
    count: int,
    offset: int,
    ports: tuple[int, int] | None,
    worker: int,
    pipe,
) -> None:
    """Run one subscriber process, which reports to the main process over ``pipe``."""
    signal.alarm(int(options.hard_timeout))
    raise_file_limit()
    install_uvloop()
    asyncio.run(worker_main(options, count, offset, ports, worker, pipe))


def counters(state: WorkerState) -> dict:
    return {
        "frames": state.frames,
        "first_delivery": state.first_delivery,
        "last_delivery": state.last_delivery,
    }


async def worker_main(
    options: Options,
    count: int,
    offset: int,
    ports: tuple[int, int] | None,
    worker: int,
    pipe,
) -> None:
    loop = asyncio.get_running_loop()
    state = WorkerState()
    source_ports = SourcePorts(*ports, options.port) if ports else None
    subscribed = await connect_subscribers(
        options, count, offset, source_ports, state, worker
    )
    subscribers = subscribed.subscribers
    pipe.send(
        {
            "subscribed": len(subscribers),
            "errors": subscribed.errors[:5],
            "error_count": len(subscribed.errors),
            "first_attempt": subscribed.first_attempt,
            "last_confirmation": subscribed.last_confirmation,
            **counters(state),
        }
    )
    commands: asyncio.Queue[dict] = asyncio.Queue()

    def read_pipe() -> None:
        while pipe.poll():
            commands.put_nowait(pipe.recv())

    loop.add_reader(pipe.fileno(), read_pipe)
    # add_reader makes the descriptor non-blocking, but a large result (latency
    # arrivals) must be sent whole.
    os.set_blocking(pipe.fileno(), True)
    try:
        while True:
            command = await asyncio.wait_for(commands.get(), options.hard_timeout)
            if command["command"] == "count":
                pipe.send(counters(state))
            elif command["command"] == "expect":
                pipe.send(
                    await await_deliveries(options, state, subscribers, command, pipe)
                )
            else:
                break
    finally:
        loop.remove_reader(pipe.fileno())
        for subscriber in subscribers:
            subscriber.transport.abort()


async def await_deliveries(
    options: Options,
    state: WorkerState,
    subscribers: list[Subscriber],
    command: dict,
    pipe,
) -> dict:
    """Report ready over ``pipe``, then wait until this worker's subscribers have
    every published event, or until the deadline in ``command``; return the
    counts."""
    per_channel = events_per_channel(options)
    expected = sum(
        per_channel.get(channel, 0)
        for subscriber in subscribers
        for channel in subscriber.channels
    )
    # Frames before this point (presence member_added) are not events.
    baseline = state.frames
    state.first_delivery = 0.0
    for subscriber in subscribers:
        if subscriber.arrivals is not None:
            subscriber.arrivals.clear()
    state.all_arrived = asyncio.get_running_loop().create_future()
    state.expected = baseline + expected
    if state.frames >= state.expected:
        state.all_arrived.set_result(None)
    pipe.send({"ready": True})

    cpu_start = time.process_time()
    try:
        await asyncio.wait_for(
            state.all_arrived, command["deadline"] - time.monotonic()
        )
    except TimeoutError:
        pass

    result = {
        "deliveries": state.frames - baseline,
        "expected": expected,
        "other_frames": state.other_frames,
        "bytes": state.bytes,
        "first_delivery": state.first_delivery,
        "last_delivery": state.last_delivery,
        "closed": state.closed,
        "cpu_seconds": time.process_time() - cpu_start,
    }
    if options.latency:
        result["arrivals"] = [subscriber.arrivals for subscriber in subscribers]
    return result


# Publisher


def event_bodies(options: Options) -> list[tuple[str, bytes]]:
    """Build the request paths and bodies: one event each, or ``--batch`` events
    per ``batch_events`` request. Each event's frame payload is
    ``--payload-bytes`` long."""

    def event(sequence: int) -> dict:
        channel = channel_name(options, sequence % options.channels)

        def build(padding: int) -> tuple[dict, int]:
            data = json.dumps({"sequence": f"{sequence:08d}", "text": "x" * padding})
            frame = json.dumps(
                {"event": EVENT_NAME, "channel": channel, "data": data},
                separators=(",", ":"),
            )
            return {"name": EVENT_NAME, "channel": channel, "data": data}, len(frame)

        _, empty_size = build(0)
        return build(max(0, options.payload_bytes - empty_size))[0]

    events = [event(sequence) for sequence in range(options.events)]
    if options.batch == 1:
        return [
            (
                f"/apps/{options.app_id}/events",
                json.dumps(item, separators=(",", ":")).encode(),
            )
            for item in events
        ]
    return [
        (
            f"/apps/{options.app_id}/batch_events",
            json.dumps(
                {"batch": events[start : start + options.batch]}, separators=(",", ":")
            ).encode(),
        )
        for start in range(0, len(events), options.batch)
    ]


def signed_request(options: Options, path: str, body: bytes) -> bytes:
    params = sign_api_request(
        key=options.key,
        secret=options.secret,
        method="POST",
        path=path,
        body=body,
        timestamp=int(time.time()),
    )
    query = "&".join(f"{name}={value}" for name, value in params.items())
    head = (
        f"POST {path}?{query} HTTP/1.1\r\nHost: {HOST}:{options.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class ApiClient(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that sends a request, then awaits its
    response before the next."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.response: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        self.response = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.response

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        status = int(head[9:12])
        body = self.buffer[end + 4 : total]
        self.buffer = self.buffer[total:]
        if self.response is not None and not self.response.done():
            self.response.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.response is not None and not self.response.done():
            self.response.set_exception(
                ConnectionError(f"HTTP API connection closed: {exc}")
            )


async def publish(options: Options, requests: list[bytes]) -> dict:
    """Send every request, each after the previous response on its connection,
    or at ``--rate`` per second."""
    loop = asyncio.get_running_loop()
    clients: list[ApiClient] = []
    connections = 1 if options.rate else min(options.publishers, len(requests))
    for _ in range(connections):
        _, client = await loop.create_connection(ApiClient, HOST, options.port)
        clients.append(client)
    failures: list[str] = []
    send_times = [0.0] * len(requests)

    async def send(client: ApiClient, index: int) -> None:
        send_times[index] = time.monotonic()
        status, body = await client.send(requests[index])
        if status != 200:
            failures.append(f"{status} {body[:200].decode(errors='replace')}")

    async def send_share(client: ApiClient, indexes: range) -> None:
        for index in indexes:
            await send(client, index)

    async def send_paced(client: ApiClient) -> None:
        start = time.monotonic()
        for index in range(len(requests)):
            delay = start + index / options.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await send(client, index)

    started = time.monotonic()
    if options.rate:
        work = send_paced(clients[0])
    else:
        count = len(clients)
        work = asyncio.gather(
            *(
                send_share(client, range(index, len(requests), count))
                for index, client in enumerate(clients)
            )
        )
    await asyncio.wait_for(work, options.deliver_timeout)
    finished = time.monotonic()
    for client in clients:
        client.transport.close()
    result = {
        "publish_started": started,
        "publish_seconds": finished - started,
        "requests": len(requests),
        "requests_per_second": len(requests) / (finished - started),
        "http_failures": len(failures),
        "http_failure_samples": failures[:3],
    }
    if options.latency:
        result["send_times"] = send_times
    return result


# Main process


def receive(pipes: list, timeout: float) -> list[dict]:
    """Receive one message from every worker pipe, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    messages: list[dict | None] = [None] * len(pipes)
    while any(message is None for message in messages):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no message from the workers within {timeout:.0f} s")
        for index, pipe in enumerate(pipes):
            if messages[index] is None and pipe.poll(min(remaining, 0.05)):
                messages[index] = pipe.recv()
    return messages  # type: ignore[return-value]


def read_command(timeout: float) -> str:
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no command on stdin within {timeout:.0f} s")
    return sys.stdin.readline().strip()


def worker_shares(options: Options) -> list[int]:
    return [
        options.subscribers // options.workers
        + (1 if index < options.subscribers % options.workers else 0)
        for index in range(options.workers)
    ]


def worker_ports(options: Options, index: int) -> tuple[int, int] | None:
    """Split ``--source-ports`` into one range per worker."""
    if options.source_ports is None:
        return None
    low, high = options.source_ports
    size = (high - low + 1) // options.workers
    return low + index * size, low + (index + 1) * size - 1


def run(options: Options) -> int:
    signal.alarm(int(options.hard_timeout))
    raise_file_limit()
    context = multiprocessing.get_context("fork")
    pipes = []
    processes = []
    offset = 0
    for index, share in enumerate(worker_shares(options)):
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=run_worker,
            args=(
                options,
                share,
                offset,
                worker_ports(options, index),
                index,
                child_end,
            ),
            daemon=True,
        )
        process.start()
        offset += share
        pipes.append(parent_end)
        processes.append(process)

    try:
        return drive(options, pipes)
    finally:
        for pipe in pipes:
            try:
                pipe.send({"command": "stop"})
            except OSError:
                pass
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()


def await_members(options: Options, pipes: list, reports: list[dict]) -> dict:
    """Wait until every presence ``member_added`` has arrived; return their count
    and the time of the last one.

    Each join is announced to the members already in the channel, so n joins
    make n (n - 1) / 2 deliveries.
    """
    subscribed = sum(report["subscribed"] for report in reports)
    expected = subscribed * (subscribed - 1) // 2
    deadline = time.monotonic() + options.connect_timeout
    while True:
        received = sum(report["frames"] for report in reports)
        if received >= expected or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
        for pipe in pipes:
            pipe.send({"command": "count"})
        reports = receive(pipes, 10)
    return {
        "members_added": received,
        "members_added_expected": expected,
        "last_member_added": max(report["last_delivery"] for report in reports),
    }


def drive(options: Options, pipes: list) -> int:
    reports = receive(pipes, options.connect_timeout + 10)
    subscribed = sum(report["subscribed"] for report in reports)
    errors = [error for report in reports for error in report["errors"]]
    first_attempt = min(report["first_attempt"] for report in reports)
    last_confirmation = max(report["last_confirmation"] for report in reports)
    seconds = max(0.0, last_confirmation - first_attempt)
    record = {
        "event": "subscribed",
        "subscribers": subscribed,
        "requested": options.subscribers,
        "connect_errors": sum(report["error_count"] for report in reports),
        "connect_error_samples": errors[:5],
        "seconds": seconds,
        "subscribed_per_second": subscribed / seconds if seconds else 0.0,
    }
    if options.presence:
        members = await_members(options, pipes, reports)
        joined = max(last_confirmation, members.pop("last_member_added"))
        record |= members
        record["join_seconds"] = joined - first_attempt
        record["joins_per_second"] = subscribed / record["join_seconds"]
    emit(record)
    log(f"{subscribed}/{options.subscribers} subscribed in {seconds:.2f} s")
    if options.control == "stdin":
        command = read_command(options.hard_timeout)
    else:
        command = "publish"
    complete = subscribed == options.subscribers and record.get(
        "members_added", 0
    ) == record.get("members_added_expected", 0)
    if command != "publish" or options.events == 0:
        emit({"event": "done", "deliveries": 0, "expected": 0})
        return 0 if complete else 1

    requests = [signed_request(options, *body) for body in event_bodies(options)]
    install_uvloop()
    deadline = time.monotonic() + options.deliver_timeout
    for pipe in pipes:
        pipe.send({"command": "expect", "deadline": deadline})
    # Publish only once every worker has set its baseline: frames that a busy
    # worker read before the command would otherwise count as earlier frames.
    receive(pipes, 30)
    try:
        published = asyncio.run(publish(options, requests))
    except (OSError, TimeoutError, ConnectionError) as exc:
        published = {"publish_error": f"{type(exc).__name__}: {exc}"}
        log(f"publishing failed: {published['publish_error']}")
    results = receive(pipes, options.deliver_timeout + 10)
    done = summarize_deliveries(results, published)
    if options.latency and "send_times" in published:
        done |= latency_percentiles(results, published["send_times"], options.batch)
    emit(done)
    log(
        f"{done['deliveries']}/{done['expected']} deliveries in "
        f"{done['seconds']:.2f} s ({done['deliveries_per_second'] / 1000:.0f}k/s)"
    )
    return 0 if complete and done["complete"] else 1


def summarize_deliveries(results: list[dict], published: dict) -> dict:
    deliveries = sum(result["deliveries"] for result in results)
    expected = sum(result["expected"] for result in results)
    total_bytes = sum(result["bytes"] for result in results)
    publish_started = published.get("publish_started", 0.0)
    last = max(result["last_delivery"] for result in results)
    window = last - publish_started if deliveries and publish_started else 0.0
    return {
        "event": "done",
        "deliveries": deliveries,
        "expected": expected,
        "complete": deliveries == expected,
        "seconds": window,
        "deliveries_per_second": deliveries / window if window > 0 else 0.0,
        "bytes": total_bytes,
        "bytes_per_delivery": total_bytes / deliveries if deliveries else 0,
        "other_frames": sum(result["other_frames"] for result in results),
        "closed_by_server": sum(result["closed"] for result in results),
        "loadgen_cpu_seconds": sum(result["cpu_seconds"] for result in results),
        **{
            key: value
            for key, value in published.items()
            if key not in ("publish_started", "send_times")
        },
    }


def percentile(ordered: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def latency_percentiles(
    results: list[dict], send_times: list[float], batch: int
) -> dict:
    """Return percentiles, in milliseconds, of the time from each request's write
    to the arrival of each of its events at each subscriber.

    A connection receives the events of its channel in publish order, so its
    k-th frame is the k-th event. This holds for one channel and one publisher
    connection, which ``--latency`` requires.
    """
    samples = []
    for result in results:
        for arrivals in result["arrivals"]:
            for index, arrived in enumerate(arrivals[: len(send_times) * batch]):
                samples.append(arrived - send_times[index // batch])
    if not samples:
        return {"latency_samples": 0}
    samples.sort()
    return {
        "latency_samples": len(samples),
        "latency_p50_ms": percentile(samples, 0.50) * 1000,
        "latency_p99_ms": percentile(samples, 0.99) * 1000,
        "latency_p999_ms": percentile(samples, 0.999) * 1000,
        "latency_max_ms": samples[-1] * 1000,
    }


def parse_port_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        ports = int(low), int(high)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid port range {text!r}: use LOW-HIGH, such as 10000-65000"
        ) from None
    if not 1024 <= ports[0] < ports[1] <= 65535:
        raise argparse.ArgumentTypeError(
            f"invalid port range {text!r}: use 1024 <= LOW < HIGH <= 65535"
        )
    return ports


def parse_options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description="Pusher protocol 7 load generator (127.0.0.1 only).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--port", type=int, required=True, help="server port on 127.0.0.1"
    )
    parser.add_argument("--app-id", required=True, help="app id for the HTTP API")
    parser.add_argument("--key", required=True, help="app key")
    parser.add_argument(
        "--secret",
        required=True,
        help="app secret, to sign API requests and channel authorization",
    )

    parser.add_argument(
        "--channel",
        default="bench",
        help="channel name, or name prefix with --channels above 1; a private- or "
        "presence- prefix makes the subscriptions signed",
    )
    parser.add_argument("--channels", type=int, default=1, help="channels to use")
    parser.add_argument(
        "--subscriptions-per-connection",
        type=int,
        default=1,
        help="channels each connection subscribes to",
    )

    parser.add_argument("--subscribers", type=int, default=1000, help="connections")
    parser.add_argument("--events", type=int, default=200, help="events to publish")

    parser.add_argument(
        "--batch",
        type=int,
        default=1,
        help="events per request; above 1 uses POST batch_events",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="requests per second over one connection; 0 sends each request as "
        "soon as the previous one on its connection is answered",
    )
    parser.add_argument(
        "--latency",
        action="store_true",
        help="report percentiles of the time from each request to each delivery",
    )

    parser.add_argument(
        "--payload-bytes",
        type=int,
        default=150,
        help="size of each delivered frame's JSON payload, in bytes",
    )

    parser.add_argument("--workers", type=int, default=1, help="subscriber processes")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=200,
        help="connection attempts in flight per worker",
    )
    parser.add_argument(
        "--publishers", type=int, default=4, help="keep-alive HTTP API connections"
    )
    parser.add_argument(
        "--source-ports",
        type=parse_port_range,
        help="bind each connection to a port from LOW-HIGH on 127.0.0.1, for more "
        "connections than the kernel's ephemeral port range allows",
    )

    parser.add_argument(
        "--connect-timeout", type=float, default=60, help="seconds to subscribe all"
    )
    parser.add_argument(
        "--deliver-timeout", type=float, default=60, help="seconds to deliver all"
    )
    parser.add_argument(
        "--hard-timeout",
        type=float,
        default=180,
        help="seconds before every process exits",
    )
    parser.add_argument(
        "--control",
        choices=["auto", "stdin"],
        default="auto",
        help="publish at once, or wait for a 'publish' or 'stop' line on stdin",
    )

    args = parser.parse_args(argv)
    if args.workers < 1 or args.subscribers < args.workers:
        parser.error("--workers must be at least 1 and at most --subscribers")
    if args.channels < 1 or not 1 <= args.subscriptions_per_connection <= args.channels:
        parser.error(
            "--channels must be at least 1, and --subscriptions-per-connection "
            "between 1 and --channels"
        )
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    if args.channel.startswith("presence-") and args.channels != 1:
        parser.error("a presence- channel needs --channels 1")
    if args.latency and (
        args.rate <= 0 or args.channels != 1 or args.channel.startswith("presence-")
    ):
        parser.error(
            "--latency needs --rate above 0, --channels 1 and no presence channel, "
            "so that each connection's k-th frame is the k-th event"
        )
    return Options(**{name: value for name, value in vars(args).items()})


def main() -> None:
    raise SystemExit(run(parse_options()))


if __name__ == "__main__":
    main()
