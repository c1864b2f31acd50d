"""A Pusher Channels client whose connection behaves like pusher-js 8.

asyncio first::

    from clarion.client import Client

    client = Client("app-key", host="127.0.0.1", port=6001,
                    channel_authorizer="http://127.0.0.1:8000/pusher/auth")
    client.connection.bind("state_change", lambda change: print(change.previous,
                                                                 change.current))
    client.connect()                      # from a running event loop
    channel = client.subscribe("my-channel")
    channel.bind("my-event", lambda data: print(data))
    async for event in channel:           # or iterate instead of binding
        print(event.event, event.data)

``BlockingClient`` takes the same arguments and runs the event loop on a
background thread, for code without asyncio; callbacks then run on that thread.

The names follow pusher-js in Python spelling:

- ``Client(key, *, host, port, tls, path, activity_timeout, pong_timeout,
  unavailable_timeout, attempt_timeout, max_attempt_timeout, retry_delay,
  jitter, channel_authorizer, user_authenticator, auth_params, auth_headers,
  auth_timeout, ssl_context)``. Times are in seconds, with pusher-js's defaults
  (120, 30, 10, 15, 60 and 1). ``jitter`` (0 to 1, default 0) stretches
  reconnect delays and attempt timeouts at random. An authorizer is an
  endpoint URL (form POST, as pusher-js) or a callable taking a
  ``ChannelAuthorizationRequest(socket_id, channel_name)`` or
  ``UserAuthenticationRequest(socket_id)`` and returning the auth JSON object
  (``auth``, plus ``channel_data``, ``shared_secret`` or ``user_data``), or an
  awaitable of it. ``ssl_context`` checks the server certificate of a
  ``wss://`` connection; without it, ``ssl.create_default_context()`` trusts
  the system's CAs, or those in the ``SSL_CERT_FILE`` file.
- ``connect()``, ``disconnect()``, ``aclose()`` (disconnect and wait), and
  ``async with Client(...)``.
- ``client.connection.state``: ``initialized``, ``connecting``, ``connected``,
  ``unavailable``, ``failed`` or ``disconnected``; ``client.connection.socket_id``;
  ``client.connection.last_error``, the exception of the latest failed attempt.
- ``client.connection.bind(event, callback)`` binds to ``state_change``, which
  carries a ``StateChange`` with ``previous`` and ``current``. It also binds to
  each state's name (``connected`` gets ``{"socket_id": ...}``), to
  ``connecting_in`` (whole seconds), ``error`` and ``message``. Errors are
  pusher-js's dicts, such as ``{"type": "PusherError", "data": {"code": 4001,
  "message": ...}}``, and ``message`` carries every frame as a
  ``ServerMessage``. ``unbind``, ``bind_global``, ``unbind_global`` and
  ``unbind_all`` work as in pusher-js.
- ``client.subscribe(name)`` returns a ``Channel``, ``PrivateChannel``,
  ``EncryptedChannel`` or ``PresenceChannel`` with ``bind``, ``bind_global``,
  ``unbind``, ``trigger(event, data)`` for ``client-`` events, async iteration
  (``ChannelEvent(event, data, user_id)``) and, on presence channels,
  ``members`` (``me``, ``count``, iteration over ``Member(id, info)``, ``get``)
  with ``pusher:member_added`` / ``pusher:member_removed`` events.
  ``client.unsubscribe(name)``, ``client.channel(name)``.
- ``client.signin()``, ``client.user.bind(event, callback)``,
  ``client.user.watchlist.bind("online" | "offline", callback)``.
- ``client.bind(event, callback)`` and ``client.bind_global(callback)`` receive
  events from every channel.

A callback receives ``(data, metadata)``, or only as many arguments as it
takes, so ``lambda data: ...`` and ``lambda: ...`` both work; a coroutine
function is run as a task. Only the WebSocket transport exists, so the client
behaves like pusher-js with ``enabledTransports: ["ws"]`` (or ``["wss"]`` with
``tls=True``).
"""

from __future__ import annotations

from clarion.client.auth import (
    ChannelAuthorizationRequest,
    EndpointAuthorizer,
    UserAuthenticationRequest,
)
from clarion.client.blocking import BlockingChannel, BlockingClient
from clarion.client.channels import (
    Channel,
    ChannelEvent,
    EncryptedChannel,
    Member,
    Members,
    PresenceChannel,
    PrivateChannel,
)
from clarion.client.client import Client
from clarion.client.connection import Connection
from clarion.client.errors import (
    AuthError,
    BadChannelName,
    BadEventName,
    ClientError,
    UnsupportedFeature,
)
from clarion.client.events import Metadata
from clarion.client.user import User, Watchlist
from clarion.protocol.client_state import ServerMessage, StateChange

__all__ = [
    "AuthError",
    "BadChannelName",
    "BadEventName",
    "BlockingChannel",
    "BlockingClient",
    "Channel",
    "ChannelAuthorizationRequest",
    "ChannelEvent",
    "Client",
    "ClientError",
    "Connection",
    "EncryptedChannel",
    "EndpointAuthorizer",
    "Member",
    "Members",
    "Metadata",
    "PresenceChannel",
    "PrivateChannel",
    "ServerMessage",
    "StateChange",
    "UnsupportedFeature",
    "User",
    "UserAuthenticationRequest",
    "Watchlist",
]
