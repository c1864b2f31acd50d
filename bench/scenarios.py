"""The benchmark scenarios, the metrics reported for each and the targets.

Every scenario exists in three sizes with the same names: the full size that
the targets refer to, a quick size for trying the harness out, and a smoke size
of about 50 connections that the test suite runs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str
    """fanout, channels, latency, idle, http, presence or scaleout."""
    subscribers: int
    """WebSocket connections."""
    events: int = 0
    """Events published; 0 measures the subscribed connections only."""
    channels: int = 1
    subscriptions_per_connection: int = 1
    batch: int = 1
    """Events per HTTP request; above 1 uses ``batch_events``."""
    rate: float = 0.0
    """Requests per second; 0 publishes as fast as the server responds."""
    publishers: int = 4
    """Keep-alive HTTP API connections."""
    channel: str = "bench"
    settle: float = 0.5
    """Seconds between the last subscription and the next sample of the server."""
    timeout: float = 60.0
    """Seconds allowed for each phase: subscribing, then delivering."""
    servers: tuple[str, ...] = ("clarion", "ceiling")
    """The servers compared, by name in servers.SERVERS."""

    @property
    def measures_connecting(self) -> bool:
        """Whether the subscribe phase is the measured work (profiled, if asked)."""
        return self.kind in ("idle", "presence")


SCALE_OUT_SERVERS = ("clarion-redis-2w", "clarion-redis-1w")
"""Two Clarion processes against one, both sharing state through Redis."""

FULL = (
    Scenario("fanout-1k", "fanout", 1000, events=200),
    Scenario("fanout-10k", "fanout", 10_000, events=50, timeout=90),
    Scenario(
        "many-channels",
        "channels",
        20,
        events=2000,
        channels=100,
        subscriptions_per_connection=100,
        batch=10,
    ),
    Scenario("latency", "latency", 1000, events=500, rate=50, publishers=1),
    Scenario("idle-10k", "idle", 10_000, settle=2.0, timeout=90),
    Scenario("idle-50k", "idle", 50_000, settle=3.0, timeout=150),
    Scenario("http-trigger", "http", 1, events=10_000, publishers=8),
    Scenario("presence-1k", "presence", 1000, channel="presence-bench", timeout=90),
    Scenario(
        "scale-out",
        "scaleout",
        10_000,
        events=50,
        timeout=90,
        servers=SCALE_OUT_SERVERS,
    ),
)

QUICK = (
    Scenario("fanout-1k", "fanout", 500, events=100, timeout=30),
    Scenario("fanout-10k", "fanout", 2000, events=25, timeout=30),
    Scenario(
        "many-channels",
        "channels",
        10,
        events=500,
        channels=50,
        subscriptions_per_connection=50,
        batch=10,
        timeout=30,
    ),
    Scenario("latency", "latency", 300, events=100, rate=50, publishers=1, timeout=30),
    Scenario("idle-10k", "idle", 2000, settle=1.0, timeout=30),
    Scenario("idle-50k", "idle", 5000, settle=1.0, timeout=30),
    Scenario("http-trigger", "http", 1, events=2000, publishers=8, timeout=30),
    Scenario("presence-1k", "presence", 300, channel="presence-bench", timeout=30),
    Scenario(
        "scale-out",
        "scaleout",
        2000,
        events=25,
        timeout=30,
        servers=SCALE_OUT_SERVERS,
    ),
)

SMOKE = (
    Scenario("fanout-1k", "fanout", 50, events=20, settle=0.1, timeout=15),
    Scenario("fanout-10k", "fanout", 100, events=5, settle=0.1, timeout=15),
    Scenario(
        "many-channels",
        "channels",
        4,
        events=40,
        channels=10,
        subscriptions_per_connection=10,
        batch=10,
        settle=0.1,
        timeout=15,
    ),
    Scenario(
        "latency",
        "latency",
        20,
        events=10,
        rate=50,
        publishers=1,
        settle=0.1,
        timeout=15,
    ),
    Scenario("idle-10k", "idle", 50, settle=0.1, timeout=15),
    Scenario("idle-50k", "idle", 100, settle=0.1, timeout=15),
    Scenario("http-trigger", "http", 1, events=100, settle=0.1, timeout=15),
    Scenario(
        "presence-1k",
        "presence",
        30,
        channel="presence-bench",
        settle=0.1,
        timeout=15,
    ),
    # Two workers exercise everything that one does, in less time than both.
    Scenario(
        "scale-out",
        "scaleout",
        100,
        events=5,
        settle=0.1,
        timeout=15,
        servers=("clarion-redis-2w",),
    ),
)

SIZES = {"full": FULL, "quick": QUICK, "smoke": SMOKE}
NAMES = tuple(scenario.name for scenario in FULL)


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    form: str
    kinds: frozenset[str]


def _metric(key: str, label: str, form: str, *kinds: str) -> Metric:
    return Metric(key, label, form, frozenset(kinds))


METRICS = (
    _metric(
        "deliveries_per_second",
        "deliveries/s",
        "{:,.0f}",
        "fanout",
        "channels",
        "scaleout",
    ),
    _metric(
        "server_us_per_delivery",
        "server CPU µs per delivery",
        "{:.2f}",
        "fanout",
        "channels",
        "latency",
        "scaleout",
    ),
    _metric("redis_cpu_seconds", "Redis CPU s", "{:.2f}", "scaleout"),
    _metric(
        "writes_per_delivery",
        "server write calls per delivery",
        "{:.3f}",
        "fanout",
        "channels",
    ),
    _metric("latency_p50_ms", "latency p50 ms", "{:.2f}", "latency"),
    _metric("latency_p99_ms", "latency p99 ms", "{:.2f}", "latency"),
    _metric("latency_p999_ms", "latency p99.9 ms", "{:.2f}", "latency"),
    _metric("requests_per_second", "HTTP trigger requests/s", "{:,.0f}", "http"),
    _metric("server_us_per_request", "server CPU µs per request", "{:.1f}", "http"),
    _metric("joins_per_second", "presence joins/s", "{:,.0f}", "presence"),
    _metric("server_us_per_join", "server CPU µs per join", "{:.1f}", "presence"),
    _metric("subscribed", "connections held", "{:,.0f}", "idle"),
    _metric(
        "kib_per_connection", "RSS KiB per subscribed connection", "{:.2f}", "idle"
    ),
    _metric("subscribed_per_second", "connect + subscribe per s", "{:,.0f}", "idle"),
    _metric(
        "server_us_per_connection",
        "server CPU µs per connect + subscribe",
        "{:.1f}",
        "idle",
    ),
    _metric(
        "loadgen_cpu_seconds",
        "load generator CPU s",
        "{:.2f}",
        "fanout",
        "channels",
        "scaleout",
    ),
    _metric(
        "other_cpu_seconds",
        "other processes' CPU s",
        "{:.2f}",
        "fanout",
        "channels",
        "scaleout",
    ),
)


@dataclass(frozen=True)
class Target:
    scenario: str
    key: str
    rule: str
    """ratio_min, ratio_max (Clarion / ceiling) or value_min, value_max (Clarion)."""
    threshold: float

    def describe(self) -> str:
        return {
            "ratio_min": f">= {self.threshold:g} x ceiling",
            "ratio_max": f"<= {self.threshold:g} x ceiling",
            "value_min": f">= {self.threshold:,.0f}",
            "value_max": f"<= {self.threshold:g}",
        }[self.rule]

    def check(self, clarion: float | None, ceiling: float | None) -> bool | None:
        """Return whether Clarion's median meets the target, or None without data."""
        if clarion is None:
            return None
        if self.rule.startswith("ratio"):
            if not ceiling:
                return None
            ratio = clarion / ceiling
            if self.rule == "ratio_min":
                return ratio >= self.threshold
            return ratio <= self.threshold
        if self.rule == "value_min":
            return clarion >= self.threshold
        return clarion <= self.threshold


TARGETS = (
    Target("fanout-1k", "deliveries_per_second", "ratio_min", 0.9),
    Target("fanout-10k", "deliveries_per_second", "ratio_min", 0.9),
    Target("many-channels", "deliveries_per_second", "ratio_min", 2.0),
    Target("latency", "latency_p99_ms", "ratio_max", 1.2),
    Target("idle-10k", "kib_per_connection", "value_max", 4.0),
    Target("idle-50k", "kib_per_connection", "value_max", 4.0),
    Target("idle-50k", "subscribed", "value_min", 50_000),
    Target("idle-10k", "subscribed_per_second", "value_min", 8000),
)
