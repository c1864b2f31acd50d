"""Channel state behind one interface: in-process now, shared through Redis later."""

from clarion.server.adapters.base import (
    Adapter,
    CachedEvent,
    CacheMiss,
    ChannelInfo,
    ClusterListener,
    Subscribed,
    Subscriber,
    Unsubscribed,
)
from clarion.server.adapters.local import LocalAdapter

__all__ = [
    "Adapter",
    "CachedEvent",
    "CacheMiss",
    "ChannelInfo",
    "ClusterListener",
    "LocalAdapter",
    "Subscribed",
    "Subscriber",
    "Unsubscribed",
]
