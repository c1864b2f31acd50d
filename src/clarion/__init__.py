"""Clarion: a self-hosted realtime messaging server for the Pusher Channels protocol."""

__version__ = "0.1.0"
