"""Reference ceiling server: the least work a Pusher fan-out can cost in Python.

One uvloop process with one asyncio ``Protocol`` per TCP connection. It accepts
a WebSocket at ``/app/{key}``, confirms ``pusher:subscribe`` with
``pusher_internal:subscription_succeeded`` and keeps each channel's subscribers
in a dict. ``POST /apps/{app_id}/events`` and ``batch_events`` encode each
event once and pass the same bytes to ``transport.write`` for every subscriber.
Each frame is one ``transport.write`` call: the ceiling does not coalesce the
frames that one connection gets in one event-loop pass.

On a ``presence-`` channel it keeps the roster from each subscription's
``channel_data``, sends it in the confirmation and announces each new member
to the others with ``pusher_internal:member_added``.

It checks no signature, key or channel name, and ignores every other message.
The frames it sends are byte for byte the ones Clarion sends, so byte and
delivery counts of the two servers compare directly.

Usage: python bench/ceiling.py --port 6002
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import resource
import secrets
import signal
import struct

ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ACTIVITY_TIMEOUT = 120
"""Seconds announced in ``pusher:connection_established``, as Clarion's default."""
MAX_REQUEST_BYTES = 1024 * 1024


def dumps(value: object) -> str:
    # The same JSON form as Clarion's messages.dumps, so frames match byte for byte.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def encode_text_frame(text: str) -> bytes:
    payload = text.encode()
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", 0x81, 126, length) + payload
    return struct.pack("!BBQ", 0x81, 127, length) + payload


class Hub:
    """Channel name to its subscribers, as socket id to transport."""

    def __init__(self) -> None:
        self.channels: dict[str, dict[str, asyncio.Transport]] = {}
        self.members: dict[str, dict[str, object]] = {}
        """Presence channel name to user id to ``user_info``."""

    def publish(self, channel: str, frame: bytes) -> int:
        subscribers = self.channels.get(channel)
        if not subscribers:
            return 0
        for transport in subscribers.values():
            transport.write(frame)
        return len(subscribers)

    def publish_except(self, channel: str, frame: bytes, socket_id: str) -> None:
        for subscriber, transport in self.channels[channel].items():
            if subscriber != socket_id:
                transport.write(frame)


class CeilingProtocol(asyncio.Protocol):
    """One TCP connection: HTTP requests until an upgrade, then WebSocket frames."""

    __slots__ = ("buffer", "hub", "socket_id", "subscriptions", "transport", "users")

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.socket_id: str | None = None
        """Set once the connection is a WebSocket."""
        self.subscriptions: list[str] = []
        self.users: dict[str, str] = {}
        """Presence channel name to this connection's user id there."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        for channel in self.subscriptions:
            subscribers = self.hub.channels.get(channel)
            if subscribers is not None:
                subscribers.pop(self.socket_id, None)
                if not subscribers:
                    del self.hub.channels[channel]
        # The load generator gives each connection its own user id, so a leaving
        # connection always removes its member.
        for channel, user_id in self.users.items():
            members = self.hub.members.get(channel)
            if members is None:
                continue
            members.pop(user_id, None)
            if channel not in self.hub.channels:
                del self.hub.members[channel]
                continue
            removed = dumps(
                {
                    "event": "pusher_internal:member_removed",
                    "channel": channel,
                    "data": dumps({"user_id": user_id}),
                }
            )
            self.hub.publish(channel, encode_text_frame(removed))

    def data_received(self, data: bytes) -> None:
        self.buffer = self.buffer + data if self.buffer else data
        if self.socket_id is None:
            self.read_http()
        else:
            self.read_frames()

    # HTTP

    def read_http(self) -> None:
        while self.socket_id is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_REQUEST_BYTES:
                    self.transport.close()
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ", 2)
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body_start = end + 4
            body_end = body_start + int(headers.get("content-length", "0"))
            if body_end > MAX_REQUEST_BYTES:
                self.transport.close()
                return
            if len(self.buffer) < body_end:
                return
            body = self.buffer[body_start:body_end]
            self.buffer = self.buffer[body_end:]
            path = target.split("?", 1)[0]
            if headers.get("upgrade", "").lower() == "websocket":
                self.upgrade(headers.get("sec-websocket-key", ""))
            else:
                self.answer(method, path, body)

    def answer(self, method: str, path: str, body: bytes) -> None:
        parts = path.split("/")
        if method == "POST" and len(parts) == 4 and parts[1] == "apps":
            if parts[3] == "events":
                self.trigger(json.loads(body))
                self.respond(b"200 OK", b"{}")
                return
            if parts[3] == "batch_events":
                for event in json.loads(body)["batch"]:
                    self.trigger(event)
                self.respond(b"200 OK", b"{}")
                return
        self.respond(b"404 Not Found", b'{"error":"not found"}')

    def trigger(self, event: dict) -> None:
        channels = event.get("channels") or [event["channel"]]
        for channel in channels:
            text = dumps(
                {"event": event["name"], "channel": channel, "data": event["data"]}
            )
            self.hub.publish(channel, encode_text_frame(text))

    def respond(self, status: bytes, body: bytes) -> None:
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            b"Connection: keep-alive\r\n\r\n" + body
        )

    # WebSocket

    def upgrade(self, key: str) -> None:
        accept = base64.b64encode(hashlib.sha1(key.encode() + ACCEPT_GUID).digest())
        self.socket_id = f"{secrets.randbelow(10**10)}.{secrets.randbelow(10**10)}"
        established = dumps(
            {
                "event": "pusher:connection_established",
                "data": dumps(
                    {"socket_id": self.socket_id, "activity_timeout": ACTIVITY_TIMEOUT}
                ),
            }
        )
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
            + accept
            + b"\r\n\r\n"
            + encode_text_frame(established)
        )
        if self.buffer:
            self.read_frames()

    def read_frames(self) -> None:
        buffer = self.buffer
        offset = 0
        while len(buffer) - offset >= 6:
            opcode = buffer[offset] & 0x0F
            length = buffer[offset + 1] & 0x7F
            position = offset + 2
            if length == 126:
                (length,) = struct.unpack_from("!H", buffer, position)
                position += 2
            elif length == 127:
                (length,) = struct.unpack_from("!Q", buffer, position)
                position += 8
            if len(buffer) < position + 4 + length:
                break
            mask = buffer[position : position + 4]
            position += 4
            payload = bytes(
                byte ^ mask[index % 4]
                for index, byte in enumerate(buffer[position : position + length])
            )
            offset = position + length
            if opcode == 0x8:
                self.transport.close()
                return
            if opcode == 0x1:
                self.receive_text(payload)
        self.buffer = buffer[offset:]

    def receive_text(self, payload: bytes) -> None:
        message = json.loads(payload)
        event = message.get("event")
        if event == "pusher:subscribe":
            channel = message["data"]["channel"]
            self.hub.channels.setdefault(channel, {})[self.socket_id] = self.transport
            self.subscriptions.append(channel)
            if channel.startswith("presence-"):
                self.join(channel, json.loads(message["data"]["channel_data"]))
                return
            confirmation = dumps(
                {
                    "event": "pusher_internal:subscription_succeeded",
                    "channel": channel,
                    "data": "{}",
                }
            )
            self.transport.write(encode_text_frame(confirmation))
        elif event == "pusher:ping":
            self.transport.write(encode_text_frame('{"event":"pusher:pong","data":{}}'))

    def join(self, channel: str, member: dict) -> None:
        """Confirm a presence subscription with the roster, then announce the new
        member to the others."""
        user_id = str(member["user_id"])
        user_info = member.get("user_info")
        members = self.hub.members.setdefault(channel, {})
        is_new = user_id not in members
        members.setdefault(user_id, user_info)
        self.users[channel] = user_id
        roster = {"ids": list(members), "hash": dict(members), "count": len(members)}
        confirmation = dumps(
            {
                "event": "pusher_internal:subscription_succeeded",
                "channel": channel,
                "data": dumps({"presence": roster}),
            }
        )
        self.transport.write(encode_text_frame(confirmation))
        if is_new:
            added = dumps(
                {
                    "event": "pusher_internal:member_added",
                    "channel": channel,
                    "data": dumps({"user_id": user_id, "user_info": user_info}),
                }
            )
            self.hub.publish_except(channel, encode_text_frame(added), self.socket_id)


async def serve(host: str, port: int) -> None:
    hub = Hub()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: CeilingProtocol(hub), host, port, backlog=4096
    )
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"ceiling: listening on {host}:{port} (pid {os.getpid()})", flush=True)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=6002, help="TCP port to listen on")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
