"""The Pusher protocol without I/O: parse, validate, sign and decide.

Nothing in this package imports asyncio, sockets, HTTP or Redis libraries, so
every rule here is tested without a network.
"""
