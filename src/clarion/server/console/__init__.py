"""The web debug console: live connections, channels and events per app."""

from clarion.server.console.handler import Console

__all__ = ["Console"]
