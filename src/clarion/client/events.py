"""Callback registries with pusher-js's ``bind`` / ``unbind`` / ``bind_global`` API."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["EventEmitter", "Metadata"]

logger = logging.getLogger("clarion.client")

Callback = Callable[..., Any]

# Tasks started for coroutine callbacks; holding them keeps them from being
# garbage-collected before they finish.
_callback_tasks: set[asyncio.Task[Any]] = set()


class Metadata(dict[str, Any]):
    """Second argument of channel event callbacks, such as ``{"user_id": "42"}``."""


def _positional_arity(callback: Callback) -> int:
    """Return how many positional arguments ``callback`` takes, at most 2."""
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):
        return 1
    count = 0
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return 2
        if parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            count += 1
    return min(count, 2)


def call_callback(callback: Callback, *args: Any) -> None:
    """Call ``callback`` with as many of ``args`` as it accepts.

    So ``lambda: ...``, ``lambda data: ...`` and ``lambda data, metadata: ...``
    all work, as JavaScript callbacks ignore extra arguments. An exception is
    logged and does not reach the connection; a coroutine is run as a task.
    """
    try:
        result = callback(*args[: _positional_arity(callback)])
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            _callback_tasks.add(task)
            task.add_done_callback(_finish_callback_task)
    except Exception:
        logger.exception("Callback %r raised an exception", callback)


def _finish_callback_task(task: asyncio.Task[Any]) -> None:
    _callback_tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error(
            "Callback coroutine raised an exception", exc_info=task.exception()
        )


class EventEmitter:
    """Named callbacks plus global callbacks, called in the order they were bound.

    A callback for an event gets ``(data, metadata)``, or fewer arguments if it
    takes fewer (see :func:`call_callback`); a global callback gets
    ``(event_name, data)``.
    """

    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callback]] = {}
        self._global_callbacks: list[Callback] = []

    def bind(self, event_name: str, callback: Callback) -> EventEmitter:
        """Call ``callback`` each time ``event_name`` is emitted."""
        self._callbacks.setdefault(event_name, []).append(callback)
        return self

    def unbind(
        self, event_name: str | None = None, callback: Callback | None = None
    ) -> EventEmitter:
        """Remove callbacks: of one event, one callback everywhere, or all of them."""
        names = [event_name] if event_name is not None else list(self._callbacks)
        for name in names:
            if callback is None:
                self._callbacks.pop(name, None)
                continue
            remaining = [c for c in self._callbacks.get(name, []) if c != callback]
            if remaining:
                self._callbacks[name] = remaining
            else:
                self._callbacks.pop(name, None)
        return self

    def bind_global(self, callback: Callback) -> EventEmitter:
        """Call ``callback(event_name, data)`` for every event emitted."""
        self._global_callbacks.append(callback)
        return self

    def unbind_global(self, callback: Callback | None = None) -> EventEmitter:
        if callback is None:
            self._global_callbacks = []
        else:
            self._global_callbacks = [
                c for c in self._global_callbacks if c != callback
            ]
        return self

    def unbind_all(self) -> EventEmitter:
        self._callbacks = {}
        self._global_callbacks = []
        return self

    def emit(
        self, event_name: str, data: Any = None, metadata: Metadata | None = None
    ) -> None:
        for callback in list(self._global_callbacks):
            call_callback(callback, event_name, data)
        if metadata is None:
            metadata = Metadata()
        for callback in list(self._callbacks.get(event_name, ())):
            call_callback(callback, data, metadata)
