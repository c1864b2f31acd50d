"""The app backend of the quickstart: channel authorization and publishing.

Run it next to `clarion serve` (development app on 127.0.0.1:6001):

    python backend.py serve      # auth endpoint on http://127.0.0.1:8001
    python backend.py publish    # one event on each of the four channels

It uses the official Pusher server SDK (`pip install pusher`), which is all an
app needs to talk to Clarion instead of Pusher. QUICKSTART_CLARION_PORT and
QUICKSTART_AUTH_PORT change the two ports.
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pusher

# Development credentials only: Clarion's built-in app and a fixed master key
# for end-to-end encrypted channels (32 bytes, base64). Use your own secrets.
ENCRYPTION_MASTER_KEY = "cXVpY2tzdGFydC1tYXN0ZXIta2V5LTMyLWJ5dGVzISE="
CHANNELS = (
    "quickstart",
    "private-quickstart",
    "presence-quickstart",
    "private-encrypted-quickstart",
)

client = pusher.Pusher(
    app_id="1",
    key="app-key",
    secret="app-secret",
    host="127.0.0.1",
    port=int(os.environ.get("QUICKSTART_CLARION_PORT", "6001")),
    ssl=False,
    encryption_master_key_base64=ENCRYPTION_MASTER_KEY,
)


class AuthHandler(BaseHTTPRequestHandler):
    """Authorizes every subscription; a real app checks its own session first."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if self.path != "/pusher/auth" or "socket_id" not in form:
            self.send_error(404)
            return
        channel, socket_id = form["channel_name"], form["socket_id"]
        member = None
        if channel.startswith("presence-"):
            member = {"user_id": form.get("user_id", "guest"), "user_info": {}}
        auth = client.authenticate(channel, socket_id, member)
        if isinstance(auth.get("shared_secret"), bytes):
            auth["shared_secret"] = auth["shared_secret"].decode()
        body = json.dumps(auth).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    if command == "publish":
        for channel in CHANNELS:
            client.trigger(channel, "greeting", {"text": f"hello on {channel}"})
            print(f"published greeting on {channel}")
    elif command == "serve":
        port = int(os.environ.get("QUICKSTART_AUTH_PORT", "8001"))
        server = ThreadingHTTPServer(("127.0.0.1", port), AuthHandler)
        print(f"auth endpoint on http://127.0.0.1:{port}/pusher/auth", flush=True)
        server.serve_forever()
    else:
        raise SystemExit(f"unknown command {command!r}: use serve or publish")


if __name__ == "__main__":
    main()
