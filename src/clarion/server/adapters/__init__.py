"""Channel state behind one interface: in-process now, shared through Redis later."""

from clarion.server.adapters.base import (
    Adapter,
    ChannelInfo,
    Subscribed,
    Subscriber,
    Unsubscribed,
)
from clarion.server.adapters.local import LocalAdapter

__all__ = [
    "Adapter",
    "ChannelInfo",
    "LocalAdapter",
    "Subscribed",
    "Subscriber",
    "Unsubscribed",
]
