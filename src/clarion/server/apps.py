"""The app registry interface, and the registry of apps from the settings."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from clarion.protocol.apps import App

__all__ = ["AppRegistry", "StaticAppRegistry"]


class AppRegistry(Protocol):
    """Where the server looks apps up, by key for connections and by id for the API.

    Lookups are synchronous: a store backed by a database keeps a cache that it
    refreshes in the background, so no connection waits on a query.
    """

    def find_by_key(self, key: str) -> App | None: ...

    def find_by_id(self, app_id: str) -> App | None: ...


class StaticAppRegistry:
    """Apps fixed at start-up, from the config file or the environment."""

    def __init__(self, apps: Iterable[App]) -> None:
        self._by_key = {app.key: app for app in apps}
        self._by_id = {app.id: app for app in self._by_key.values()}

    def find_by_key(self, key: str) -> App | None:
        return self._by_key.get(key)

    def find_by_id(self, app_id: str) -> App | None:
        return self._by_id.get(app_id)
