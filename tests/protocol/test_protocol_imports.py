"""The protocol package stays free of I/O: no event loop, socket or HTTP modules."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Runs in a fresh interpreter, so modules loaded by pytest or by other tests do
# not hide an import made by the protocol package.
CHILD_SCRIPT = """
import importlib, json, pkgutil, sys
import clarion.protocol as package
names = [f"clarion.protocol.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": names, "loaded": sorted(sys.modules)}))
"""

EXPECTED_MODULES = {
    "api",
    "apps",
    "auth",
    "backend",
    "channels",
    "client_state",
    "errors",
    "handshake",
    "messages",
    "origins",
    "presence",
    "subscriptions",
    "users",
    "webhooks",
}


@pytest.fixture(scope="module")
def child_modules() -> dict[str, list[str]]:
    """Import every clarion.protocol module in a child and list what got loaded."""
    completed = subprocess.run(
        [sys.executable, "-c", CHILD_SCRIPT],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(completed.stdout)


def test_protocol_imports_every_module(child_modules: dict[str, list[str]]) -> None:
    """The child imported each protocol module, so the check below covers them."""
    imported = {name.rsplit(".", 1)[1] for name in child_modules["imported"]}
    assert EXPECTED_MODULES <= imported


@pytest.mark.parametrize("module", ["asyncio", "socket", "httptools", "uvloop", "ssl"])
def test_protocol_avoids_io_module(
    child_modules: dict[str, list[str]], module: str
) -> None:
    """Importing the protocol package loads no I/O module."""
    assert module not in child_modules["loaded"]
