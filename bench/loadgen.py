"""Load generator for any Pusher-compatible server, over 127.0.0.1 only.

Subscriber worker processes open raw TCP connections, upgrade them to
WebSocket at ``/app/{key}?protocol=7``, send ``pusher:subscribe`` and wait for
``pusher_internal:subscription_succeeded``. After that they read only frame
headers: a delivery is counted when the last byte of a text frame arrives, and
payloads are never decoded. The main process publishes through the signed HTTP
API (``POST /apps/{app_id}/events``) over keep-alive connections.

Control and results are JSON lines. The process prints
``{"event": "subscribed", ...}`` once every subscriber is confirmed. With
``--control stdin`` it then waits for a ``publish`` or ``stop`` line, so that a
caller can sample the server in between, and prints ``{"event": "done", ...}``
at the end. Progress goes to stderr.

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
import json
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

# Requests are signed with Clarion's implementation of the Pusher HTTP API signature.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from clarion.protocol.auth import sign_api_request  # noqa: E402

HOST = "127.0.0.1"
EVENT_NAME = "bench-event"
SUBSCRIBED_MARK = b'"pusher_internal:subscription_succeeded"'
ESTABLISHED_MARK = b'"pusher:connection_established"'
LINGER_RESET = struct.pack("ii", 1, 0)
"""SO_LINGER on with a zero timeout: close() sends RST and leaves no TIME_WAIT."""


@dataclass(frozen=True)
class Options:
    port: int
    app_id: str
    key: str
    secret: str
    channel: str
    subscribers: int
    events: int
    payload_bytes: int
    workers: int
    concurrency: int
    publishers: int
    connect_timeout: float
    deliver_timeout: float
    hard_timeout: float
    control: str


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


def masked_text_frame(payload: bytes) -> bytes:
    """Encode one client text frame; RFC 6455 requires clients to mask."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = bytes((0x81, 0x80 | length))
    else:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, length)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return header + mask + masked


# Subscribers


class WorkerState:
    """Delivery counters shared by the subscribers of one worker process."""

    def __init__(self) -> None:
        self.frames = 0
        self.other_frames = 0
        """Frames other than text after the subscription (close, ping)."""
        self.bytes = 0
        self.expected = -1
        """Deliveries to wait for; -1 until the publish phase starts."""
        self.first_delivery = 0.0
        self.last_delivery = 0.0
        self.all_arrived: asyncio.Future[None] | None = None
        self.closed = 0
        """Subscribed connections that the server closed."""


class Subscriber(asyncio.Protocol):
    """One WebSocket subscriber: handshake and subscribe, then count frames."""

    __slots__ = (
        "buffer",
        "confirmed",
        "pending",
        "request",
        "skip",
        "state",
        "subscribe_frame",
        "transport",
        "upgraded",
    )

    def __init__(
        self, state: WorkerState, request: bytes, subscribe_frame: bytes
    ) -> None:
        self.state = state
        self.request = request
        self.subscribe_frame = subscribe_frame
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False
        self.confirmed: asyncio.Future[None] = (
            asyncio.get_running_loop().create_future()
        )
        self.skip = 0
        """Bytes still to come of the frame that a previous read started."""
        self.pending = False
        """Whether that unfinished frame is a text frame."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.confirmed.done():
            self.state.closed += 1
        else:
            self.confirmed.set_exception(
                ConnectionError(f"closed before the subscription: {exc}")
            )

    def data_received(self, data: bytes) -> None:
        if self.confirmed.done():
            self.count(data)
        else:
            self.handshake(data)

    def handshake(self, data: bytes) -> None:
        buffer = self.buffer + data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                status = buffer.split(b"\r\n", 1)[0].decode("latin-1")
                self.confirmed.set_exception(
                    ConnectionError(f"upgrade failed: {status}")
                )
                self.transport.close()
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
                self.transport.write(self.subscribe_frame)
            elif SUBSCRIBED_MARK in payload:
                self.buffer = b""
                self.confirmed.set_result(None)
                if offset < len(buffer):
                    self.count(buffer[offset:])
                return
            else:
                error = payload[:200].decode(errors="replace")
                self.confirmed.set_exception(
                    ConnectionError(
                        f"unexpected frame before the confirmation: {error}"
                    )
                )
                self.transport.close()
                return
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


async def connect_subscribers(
    options: Options, count: int, state: WorkerState, worker: int
) -> tuple[list[Subscriber], list[str]]:
    """Open and subscribe ``count`` connections, at most ``--concurrency`` at a time."""
    loop = asyncio.get_running_loop()
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /app/{options.key}?protocol=7&client=clarion-bench&version=0.1"
        " HTTP/1.1\r\n"
        f"Host: {HOST}:{options.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    subscribe = json.dumps(
        {"event": "pusher:subscribe", "data": {"channel": options.channel}}
    ).encode()
    subscribe_frame = masked_text_frame(subscribe)
    gate = asyncio.Semaphore(options.concurrency)
    deadline = loop.time() + options.connect_timeout
    subscribers: list[Subscriber] = []
    errors: list[str] = []

    async def open_one() -> None:
        async with gate:
            remaining = deadline - loop.time()
            try:
                _, protocol = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: Subscriber(state, request, subscribe_frame),
                        HOST,
                        options.port,
                    ),
                    remaining,
                )
                subscribers.append(protocol)
                await asyncio.wait_for(
                    asyncio.shield(protocol.confirmed), deadline - loop.time()
                )
            except (OSError, ConnectionError, TimeoutError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    tasks = [loop.create_task(open_one()) for _ in range(count)]
    reporter = loop.create_task(report_connect_progress(subscribers, count, worker))
    await asyncio.gather(*tasks)
    reporter.cancel()
    confirmed = [
        subscriber
        for subscriber in subscribers
        if subscriber.confirmed.done() and subscriber.confirmed.exception() is None
    ]
    return confirmed, errors


async def report_connect_progress(
    subscribers: list[Subscriber], count: int, worker: int
) -> None:
    while True:
        await asyncio.sleep(2)
        done = sum(1 for s in subscribers if s.confirmed.done())
        log(f"worker {worker}: {done}/{count} subscribed")


def run_worker(options: Options, count: int, worker: int, pipe) -> None:
    """Run one subscriber process, which reports to the main process over ``pipe``."""
    signal.alarm(int(options.hard_timeout))
    raise_file_limit()
    install_uvloop()
    asyncio.run(worker_main(options, count, worker, pipe))


async def worker_main(options: Options, count: int, worker: int, pipe) -> None:
    loop = asyncio.get_running_loop()
    state = WorkerState()
    started = time.monotonic()
    subscribers, errors = await connect_subscribers(options, count, state, worker)
    pipe.send(
        {
            "subscribed": len(subscribers),
            "errors": errors[:5],
            "error_count": len(errors),
            "seconds": time.monotonic() - started,
        }
    )
    commands: asyncio.Queue[dict] = asyncio.Queue()

    def read_pipe() -> None:
        while pipe.poll():
            commands.put_nowait(pipe.recv())

    loop.add_reader(pipe.fileno(), read_pipe)
    try:
        command = await asyncio.wait_for(commands.get(), options.hard_timeout)
        if command["command"] == "expect":
            state.all_arrived = loop.create_future()
            state.expected = len(subscribers) * command["events"]
            if state.frames >= state.expected:
                state.all_arrived.set_result(None)
            cpu_start = time.process_time()
            try:
                await asyncio.wait_for(
                    state.all_arrived, command["deadline"] - time.monotonic()
                )
            except TimeoutError:
                pass
            pipe.send(
                {
                    "deliveries": state.frames,
                    "expected": state.expected,
                    "other_frames": state.other_frames,
                    "bytes": state.bytes,
                    "first_delivery": state.first_delivery,
                    "last_delivery": state.last_delivery,
                    "closed": state.closed,
                    "cpu_seconds": time.process_time() - cpu_start,
                }
            )
            await asyncio.wait_for(commands.get(), options.hard_timeout)
    finally:
        loop.remove_reader(pipe.fileno())
        for subscriber in subscribers:
            subscriber.transport.abort()


# Publisher


def event_bodies(options: Options) -> list[bytes]:
    """Build the events, each sized so that its frame payload is ``payload_bytes``."""

    def body(sequence: int, padding: int) -> tuple[bytes, int]:
        data = json.dumps({"sequence": f"{sequence:08d}", "text": "x" * padding})
        frame = json.dumps(
            {"event": EVENT_NAME, "channel": options.channel, "data": data},
            separators=(",", ":"),
        )
        event = {"name": EVENT_NAME, "channels": [options.channel], "data": data}
        return json.dumps(event, separators=(",", ":")).encode(), len(frame)

    _, empty_size = body(0, 0)
    padding = max(0, options.payload_bytes - empty_size)
    return [body(sequence, padding)[0] for sequence in range(options.events)]


def signed_request(options: Options, body: bytes) -> bytes:
    path = f"/apps/{options.app_id}/events"
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


async def publish(options: Options, requests: list[bytes]) -> dict:
    """Send every request over ``--publishers`` keep-alive connections, each
    waiting for its previous answer."""
    streams = [
        await asyncio.open_connection(HOST, options.port)
        for _ in range(min(options.publishers, len(requests)))
    ]
    failures: list[str] = []

    async def send_share(reader, writer, share: list[bytes]) -> None:
        for request in share:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1]
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            answer = await reader.readexactly(length)
            if status != b"200":
                failures.append(
                    f"{status.decode()} {answer[:200].decode(errors='replace')}"
                )

    started = time.monotonic()
    shares = [requests[index :: len(streams)] for index in range(len(streams))]
    await asyncio.wait_for(
        asyncio.gather(
            *(
                send_share(r, w, share)
                for (r, w), share in zip(streams, shares, strict=True)
            )
        ),
        options.deliver_timeout,
    )
    finished = time.monotonic()
    for _, writer in streams:
        writer.close()
    return {
        "publish_started": started,
        "publish_seconds": finished - started,
        "http_failures": len(failures),
        "http_failure_samples": failures[:3],
    }


# Main process


def receive(pipes: list, timeout: float) -> list[dict]:
    """Receive one message from every worker pipe, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    messages: list[dict | None] = [None] * len(pipes)
    while any(message is None for message in messages):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"workers did not answer within {timeout:.0f} s")
        for index, pipe in enumerate(pipes):
            if messages[index] is None and pipe.poll(min(remaining, 0.05)):
                messages[index] = pipe.recv()
    return messages  # type: ignore[return-value]


def read_command(timeout: float) -> str:
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no command on stdin within {timeout:.0f} s")
    return sys.stdin.readline().strip()


def run(options: Options) -> int:
    signal.alarm(int(options.hard_timeout))
    raise_file_limit()
    context = multiprocessing.get_context("fork")
    shares = [
        options.subscribers // options.workers
        + (1 if index < options.subscribers % options.workers else 0)
        for index in range(options.workers)
    ]
    pipes = []
    processes = []
    for index, share in enumerate(shares):
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=run_worker, args=(options, share, index, child_end), daemon=True
        )
        process.start()
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


def drive(options: Options, pipes: list) -> int:
    started = time.monotonic()
    reports = receive(pipes, options.connect_timeout + 10)
    subscribed = sum(report["subscribed"] for report in reports)
    errors = [error for report in reports for error in report["errors"]]
    seconds = time.monotonic() - started
    emit(
        {
            "event": "subscribed",
            "subscribers": subscribed,
            "requested": options.subscribers,
            "connect_errors": sum(report["error_count"] for report in reports),
            "connect_error_samples": errors[:5],
            "seconds": seconds,
            "subscribed_per_second": subscribed / seconds if seconds else 0.0,
        }
    )
    log(f"{subscribed}/{options.subscribers} subscribed in {seconds:.1f} s")
    if options.control == "stdin":
        command = read_command(options.hard_timeout)
    else:
        command = "publish"
    if command != "publish" or options.events == 0:
        emit({"event": "done", "deliveries": 0, "expected": 0})
        return 0 if subscribed == options.subscribers else 1

    requests = [signed_request(options, body) for body in event_bodies(options)]
    install_uvloop()
    deadline = time.monotonic() + options.deliver_timeout
    for pipe in pipes:
        pipe.send({"command": "expect", "events": options.events, "deadline": deadline})
    try:
        published = asyncio.run(publish(options, requests))
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        published = {"publish_error": f"{type(exc).__name__}: {exc}"}
        log(f"publishing failed: {published['publish_error']}")
    results = receive(pipes, options.deliver_timeout + 10)
    deliveries = sum(result["deliveries"] for result in results)
    expected = sum(result["expected"] for result in results)
    publish_started = published.get("publish_started", started)
    last = max(result["last_delivery"] for result in results)
    window = last - publish_started if deliveries else 0.0
    record = {
        "event": "done",
        "deliveries": deliveries,
        "expected": expected,
        "complete": deliveries == expected,
        "seconds": window,
        "deliveries_per_second": deliveries / window if window > 0 else 0.0,
        "bytes": sum(result["bytes"] for result in results),
        "bytes_per_delivery": (
            sum(result["bytes"] for result in results) / deliveries if deliveries else 0
        ),
        "other_frames": sum(result["other_frames"] for result in results),
        "closed_by_server": sum(result["closed"] for result in results),
        "loadgen_cpu_seconds": sum(result["cpu_seconds"] for result in results),
        **{key: value for key, value in published.items() if key != "publish_started"},
    }
    emit(record)
    log(
        f"{deliveries}/{expected} deliveries in {window:.2f} s"
        f" ({record['deliveries_per_second'] / 1000:.0f}k/s)"
    )
    return 0 if record["complete"] and subscribed == options.subscribers else 1


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
        "--secret", required=True, help="app secret, to sign API requests"
    )
    parser.add_argument("--channel", default="bench", help="public channel to use")
    parser.add_argument("--subscribers", type=int, default=1000, help="connections")
    parser.add_argument("--events", type=int, default=200, help="events to publish")
    parser.add_argument(
        "--payload-bytes",
        type=int,
        default=150,
        help="size of each delivered frame's JSON payload, in bytes",
    )
    parser.add_argument("--workers", type=int, default=1, help="subscriber processes")
    parser.add_argument(
        "--concurrency", type=int, default=200, help="connection attempts in flight"
    )
    parser.add_argument(
        "--publishers", type=int, default=4, help="keep-alive HTTP API connections"
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
    return Options(**{name: value for name, value in vars(args).items()})


def main() -> None:
    raise SystemExit(run(parse_options()))


if __name__ == "__main__":
    main()
