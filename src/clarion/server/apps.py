"""The app registry interface, the registry of apps from the settings, and the
registry that adds the apps of the app store and refreshes them."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from clarion.protocol.apps import App
from clarion.server.app_store import AppStore, AppStoreError
from clarion.server.background import cancel_and_wait

__all__ = ["AppChanges", "AppRegistry", "CachedAppRegistry", "StaticAppRegistry"]

logger = logging.getLogger(__name__)

MAX_RETRY_DELAY = 60.0
"""Seconds between attempts to read an unreachable app store, at most."""


class AppRegistry(Protocol):
    """Where the server looks apps up, by key for connections and by id for the API.

    Lookups are synchronous: a store backed by a database keeps a cache that it
    refreshes in the background, so no connection waits on a query.
    """

    def find_by_key(self, key: str) -> App | None: ...

    def find_by_id(self, app_id: str) -> App | None: ...

    def all(self) -> tuple[App, ...]:
        """Return every app served at the moment."""
        ...


class StaticAppRegistry:
    """Apps fixed at start-up, from the config file or the environment."""

    def __init__(self, apps: Iterable[App]) -> None:
        self._by_key = {app.key: app for app in apps}
        self._by_id = {app.id: app for app in self._by_key.values()}

    def find_by_key(self, key: str) -> App | None:
        return self._by_key.get(key)

    def find_by_id(self, app_id: str) -> App | None:
        return self._by_id.get(app_id)

    def all(self) -> tuple[App, ...]:
        return tuple(self._by_id.values())


@dataclass(frozen=True, slots=True)
class AppChanges:
    """The changes that one refresh made to the apps served."""

    removed: tuple[App, ...]
    """Apps no longer served, as they were before the refresh."""
    updated: tuple[App, ...]
    """Apps served before and after whose values changed, as they are now."""
    added: tuple[App, ...]


class CachedAppRegistry:
    """The apps of the config file plus those of the app store, in memory.

    ``refresh`` reads the store and replaces the cache, and after ``start`` a
    task does so every ``refresh_interval`` seconds. Rules:

    - On a conflict, the config file wins: a store app whose id or key an app
      of the config file already has is not served, and a warning names it.
    - ``dev_app`` is served only when neither the config file nor the store has
      any app, and only once the store has been read, so an unreachable store
      never brings back the public development app.
    - When the store cannot be read, the last apps read stay served and the
      next attempt waits twice as long, up to ``MAX_RETRY_DELAY``.
    """

    def __init__(
        self,
        config_apps: Iterable[App],
        store: AppStore | None,
        *,
        refresh_interval: float,
        dev_app: App | None,
        read_timeout: float = 5.0,
    ) -> None:
        self._config_apps = tuple(config_apps)
        self.store = store
        self.refresh_interval = refresh_interval
        self.read_timeout = read_timeout
        """Seconds a read of the store may take before it counts as failed."""
        self._dev_app = dev_app
        self.loaded = store is None
        """Whether the store has been read at least once."""
        self.failures = 0
        """Failed reads of the store since the last successful one."""
        self.on_change: Callable[[AppChanges], None] | None = None
        """Called after a refresh that changed any app."""
        self._store_apps: tuple[App, ...] = ()
        self._conflicts: frozenset[str] = frozenset()
        self._by_id: dict[str, App] = {}
        self._by_key: dict[str, App] = {}
        self._rebuild()
        self._task: asyncio.Task[None] | None = None

    # Lookups

    def find_by_key(self, key: str) -> App | None:
        return self._by_key.get(key)

    def find_by_id(self, app_id: str) -> App | None:
        return self._by_id.get(app_id)

    def all(self) -> tuple[App, ...]:
        return tuple(self._by_id.values())

    @property
    def store_apps(self) -> tuple[App, ...]:
        """The valid apps of the store at the last successful read."""
        return self._store_apps

    @property
    def serves_dev_app(self) -> bool:
        return (
            self._dev_app is not None
            and self._by_id.get(self._dev_app.id) is self._dev_app
        )

    # Refreshing

    async def refresh(self) -> bool:
        """Read the store once, serve what it contains, and return whether the
        read succeeded. A failure is logged and keeps the apps served."""
        if self.store is None:
            return True
        try:
            # A read that outlives the timeout is left to finish in its thread;
            # the store's own query timeout ends it soon after.
            apps = await asyncio.wait_for(
                asyncio.to_thread(self.store.load_apps), self.read_timeout
            )
        except (AppStoreError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                exc = AppStoreError(f"read timed out after {self.read_timeout:g} s")
            self.failures += 1
            logger.error(
                "Cannot read the app store (attempt %d, next in %.1f s); "
                "still serving the %d app(s) read before: %s",
                self.failures,
                self.next_delay(),
                len(self._by_id),
                exc,
            )
            return False
        if self.failures:
            logger.info(
                "App store readable again after %d failed attempt(s)", self.failures
            )
        self.failures = 0
        self.loaded = True
        self._store_apps = tuple(apps)
        changes = self._rebuild()
        if self.on_change is not None and (
            changes.removed or changes.updated or changes.added
        ):
            self.on_change(changes)
        return True

    def next_delay(self) -> float:
        """Return the seconds until the next read: the refresh interval, doubled
        after each failure up to ``MAX_RETRY_DELAY``, with 10 % jitter."""
        delay = self.refresh_interval
        if self.failures:
            delay = min(MAX_RETRY_DELAY, max(delay, 1.0) * 2 ** (self.failures - 1))
        return delay * random.uniform(0.9, 1.0)

    def start(self) -> None:
        if self.store is not None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self.store is not None:
            try:
                await asyncio.to_thread(self.store.close)
            except Exception:
                logger.exception(
                    "Closing the app store %s failed", self.store.description
                )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.next_delay())
            try:
                await self.refresh()
            except Exception:
                # A bug in applying the changes must not stop later refreshes.
                logger.exception("Refreshing the apps failed")

    # Merging

    def _rebuild(self) -> AppChanges:
        by_id = {app.id: app for app in self._config_apps}
        by_key = {app.key: app for app in self._config_apps}
        conflicts: set[str] = set()
        for app in self._store_apps:
            if app.id in by_id or app.key in by_key:
                conflicts.add(app.id)
                continue
            by_id[app.id] = app
            by_key[app.key] = app
        if not by_id and self.loaded and self._dev_app is not None:
            by_id[self._dev_app.id] = self._dev_app
            by_key[self._dev_app.key] = self._dev_app
        self._report_conflicts(frozenset(conflicts))

        previous = self._by_id
        self._by_id, self._by_key = by_id, by_key
        return AppChanges(
            removed=tuple(app for id_, app in previous.items() if id_ not in by_id),
            updated=tuple(
                app
                for id_, app in by_id.items()
                if id_ in previous and previous[id_] != app
            ),
            added=tuple(app for id_, app in by_id.items() if id_ not in previous),
        )

    def _report_conflicts(self, conflicts: frozenset[str]) -> None:
        # Logged when the set changes, not on every refresh.
        for app_id in sorted(conflicts - self._conflicts):
            logger.warning(
                "App %s of the app store is not served: an app of the config "
                "file has the same id or key, and the config file wins",
                app_id,
                extra={"app_id": app_id},
            )
        self._conflicts = conflicts
