"""Endpoints for operators: ``/up``, ``/ready`` and ``/metrics``."""

from __future__ import annotations

from clarion.protocol import messages
from clarion.server.http import Request, RequestHandler, Response, error_response
from clarion.server.hub import Hub
from clarion.server.metrics import CONTENT_TYPE, Metrics

__all__ = ["OpsEndpoints"]

HEALTH_PATHS = frozenset({"/", "/up", "/ready"})
METRICS_PATH = "/metrics"


class OpsEndpoints(RequestHandler):
    """Liveness, readiness and, when ``metrics`` is given, the metrics.

    ``/up`` (and ``/``) returns 200 while the process serves HTTP. ``/ready``
    returns 200 when this process should get traffic, else 503 with the
    reasons: Redis unreachable (when configured), stopping, or over the memory
    limit.
    """

    def __init__(self, hub: Hub, metrics: Metrics | None) -> None:
        self.hub = hub
        self.metrics = metrics
        self.paths = HEALTH_PATHS
        if metrics is not None:
            self.paths = HEALTH_PATHS | {METRICS_PATH}

    def matches(self, path: str) -> bool:
        return path in self.paths

    async def handle(self, request: Request) -> Response:
        if request.path not in self.paths:
            return error_response(404, f"Not found: {request.path[:100]}")
        if request.method not in ("GET", "HEAD"):
            response = error_response(
                405, f"Method {request.method} not allowed here; use GET, HEAD"
            )
            response.headers = (("Allow", "GET, HEAD"),)
            return response
        if request.path == "/ready":
            return self._ready()
        if request.path == METRICS_PATH and self.metrics is not None:
            return Response(200, self.metrics.render(), content_type=CONTENT_TYPE)
        return Response(200, b"OK", content_type="text/plain")

    def _ready(self) -> Response:
        hub = self.hub
        redis_reachable = hub.adapter.healthy if hub.settings.redis_url else None
        problems = hub.health.readiness_problems(redis_reachable)
        if problems:
            body = {"ready": False, "reasons": problems}
            return Response(503, messages.dumps(body).encode())
        return Response(200, messages.dumps({"ready": True}).encode())
