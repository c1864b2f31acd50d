"""Routing, refusals, CORS and `xhr_send` errors of the fallback endpoints."""

from __future__ import annotations

import json

import pytest
from fallback_wire import (
    CACHE_CONTROL,
    FRAME_CONTENT_TYPE,
    RECEIVE_QUERY,
    Session,
    decode_array,
    request,
    unique_query,
)

from server_process import ServerProcess

ORIGIN = "http://127.0.0.1:8080"


@pytest.mark.parametrize("kind", ["xhr", "xhr_streaming"])
async def test_unknown_key_closes_with_4001(server: ServerProcess, kind: str) -> None:
    """An unknown app key gets 200 with `o`, `pusher:error` 4001 and `c[4001,...]`."""
    session = Session(server.port, key="no-such-key")
    reply = await request(server.port, "POST", session.target(kind))
    assert reply.status == 200
    assert reply.headers["content-type"] == FRAME_CONTENT_TYPE
    lines = [line for line in reply.lines if not line.startswith("h")]
    assert lines[0] == "o"
    (error,) = decode_array(lines[1])
    assert error["event"] == "pusher:error"
    assert error["data"]["code"] == 4001
    message = error["data"]["message"]
    assert lines[2] == "c" + json.dumps([4001, message], separators=(",", ":"))
    assert len(lines) == 3


@pytest.mark.parametrize(
    ("query", "code"),
    [("client=js&version=8.6.0", 4008), ("protocol=3&client=js", 4007)],
    ids=["missing", "unsupported"],
)
async def test_bad_protocol_closes_with_code(
    server: ServerProcess, query: str, code: int
) -> None:
    """A first poll without a supported `protocol` is refused inside a 200 reply."""
    session = Session(server.port)
    reply = await request(server.port, "POST", session.target("xhr", query))
    assert reply.status == 200
    assert reply.lines[0] == "o"
    assert decode_array(reply.lines[1])[0]["data"]["code"] == code
    assert reply.lines[2].startswith(f"c[{code},")


@pytest.mark.parametrize(
    "path",
    [
        "/pusher",
        "/pusher/app/app-key",
        "/pusher/app/app-key/1/abcdefgh",
        "/pusher/app/app-key/1/abcdefgh/websocket",
        "/pusher/app/app-key/1.5/abcdefgh/xhr",
        "/pusher/app/app-key/1/abcd.efgh/xhr_send",
        "/pusher/app/app-key/1/abcdefgh/xhr/extra",
        "/pusher/info",
    ],
)
async def test_unmatched_path_gets_404(server: ServerProcess, path: str) -> None:
    """A path under /pusher that names no fallback endpoint gets 404."""
    reply = await request(server.port, "POST", f"{path}?{RECEIVE_QUERY}")
    assert reply.status == 404


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_wrong_method_gets_405(server: ServerProcess, method: str) -> None:
    """A method other than POST or OPTIONS gets 405 with `Allow: OPTIONS, POST`."""
    session = Session(server.port)
    reply = await request(server.port, method, session.target("xhr"))
    assert reply.status == 405
    assert reply.headers["allow"] == "OPTIONS, POST"


@pytest.mark.parametrize("kind", ["xhr", "xhr_streaming", "xhr_send"])
async def test_preflight_echoes_origin_and_headers(
    server: ServerProcess, kind: str
) -> None:
    """OPTIONS gets 204 with the CORS headers a browser needs before each POST."""
    session = Session(server.port)
    reply = await request(
        server.port,
        "OPTIONS",
        session.target(kind),
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert reply.status == 204
    assert reply.headers["access-control-allow-origin"] == ORIGIN
    assert reply.headers["access-control-allow-credentials"] == "true"
    assert reply.headers["vary"] == "Origin"
    assert reply.headers["access-control-allow-methods"] == "OPTIONS, POST"
    assert reply.headers["access-control-allow-headers"] == "content-type"
    assert reply.headers["access-control-max-age"] == "31536000"


async def test_preflight_without_origin_allows_any(server: ServerProcess) -> None:
    """A preflight without `Origin` gets `Access-Control-Allow-Origin: *`."""
    reply = await request(server.port, "OPTIONS", Session(server.port).target("xhr"))
    assert reply.status == 204
    assert reply.headers["access-control-allow-origin"] == "*"


async def test_post_replies_echo_origin(server: ServerProcess) -> None:
    """Poll, send and error replies to a cross-origin POST all allow that origin."""
    cors = {"Origin": ORIGIN}
    session = Session(server.port)
    opened = await session.poll(headers=cors)
    sent = await session.send_body(b"[]", headers=cors)
    broken = await session.send_body(b"{", headers=cors)
    missing = await Session(server.port).send_body(b"[]", headers=cors)
    for reply in (opened, sent, broken, missing):
        assert reply.headers["access-control-allow-origin"] == ORIGIN, reply
        assert reply.headers["access-control-allow-credentials"] == "true", reply
        assert reply.headers["vary"] == "Origin", reply


async def test_stream_reply_echoes_origin(server: ServerProcess) -> None:
    """A cross-origin streaming reply allows that origin."""
    stream = await Session(server.port).open_stream(headers={"Origin": ORIGIN})
    stream.close()
    assert stream.headers["access-control-allow-origin"] == ORIGIN
    assert stream.headers["access-control-allow-credentials"] == "true"
    assert stream.headers["vary"] == "Origin"


async def test_send_to_unknown_session_404(server: ServerProcess) -> None:
    """`xhr_send` for a session the server does not have gets 404."""
    reply = await Session(server.port).send_body(b"[]")
    assert reply.status == 404


async def test_send_empty_body_500(server: ServerProcess) -> None:
    """An empty `xhr_send` body gets 500 `Payload expected.`."""
    session = Session(server.port)
    await session.open_polling()
    reply = await session.send_body(b"")
    assert reply.status == 500
    assert reply.body == b"Payload expected."


@pytest.mark.parametrize(
    "body",
    [b"[", b"not json", b'{"event":"pusher:ping"}', b'"[]"', b"42"],
    ids=["truncated", "text", "object", "string", "number"],
)
async def test_send_broken_json_500(server: ServerProcess, body: bytes) -> None:
    """A body that is not a JSON array gets 500 `Broken JSON encoding.`."""
    session = Session(server.port)
    await session.open_polling()
    reply = await session.send_body(body)
    assert reply.status == 500
    assert reply.body == b"Broken JSON encoding."


async def test_send_accepts_any_content_type(server: ServerProcess) -> None:
    """`xhr_send` reads the body whatever its Content-Type."""
    session = Session(server.port)
    await session.open_polling()
    reply = await session.send_body(b"[]", headers={"Content-Type": "text/plain"})
    assert reply.status == 204


async def test_send_element_not_string_gets_error(server: ServerProcess) -> None:
    """An element that is no string is handled like a WebSocket frame that is no
    JSON object: the session gets `pusher:error` and stays open."""
    session = Session(server.port)
    await session.open_polling()
    sent = await session.send_body(b'[{"event":"pusher:ping","data":{}}]')
    reply = await session.poll()
    assert sent.status == 204
    (message,) = decode_array(reply.lines[0])
    assert message["event"] == "pusher:error"
    ping = await session.send(dict(event="pusher:ping", data={}))
    pong = await session.poll()
    assert ping.status == 204
    assert decode_array(pong.lines[0])[0]["event"] == "pusher:pong"


async def test_polls_of_two_sessions_stay_apart(server: ServerProcess) -> None:
    """Two sessions that share the session id but not the server number are
    two connections."""
    first = Session(server.port)
    second = Session(server.port)
    second.id = first.id
    second.server = str((int(first.server) + 1) % 1000)
    await first.open_polling()
    await second.open_polling()
    assert first.socket_id != second.socket_id


async def test_receive_query_may_carry_unknown_parameters(
    server: ServerProcess,
) -> None:
    """Unknown query parameters such as `t` and `n` are ignored."""
    session = Session(server.port)
    query = f"{RECEIVE_QUERY}&{unique_query()}&extra=1"
    reply = await request(server.port, "POST", session.target("xhr", query))
    assert reply.status == 200
    assert reply.lines[0] == "o"
    assert reply.headers["cache-control"] == CACHE_CONTROL
