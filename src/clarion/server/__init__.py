"""The asyncio server: one listener for the WebSocket endpoint and the HTTP API."""
