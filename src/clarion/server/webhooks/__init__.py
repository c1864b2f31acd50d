"""Webhooks: events collected from the hub, batched per app, kept in a
persistent outbox and delivered at least once."""

from clarion.server.webhooks.dispatcher import Webhooks, open_outbox
from clarion.server.webhooks.outbox import Delivery, Outbox, SQLiteOutbox

__all__ = ["Delivery", "Outbox", "SQLiteOutbox", "Webhooks", "open_outbox"]
