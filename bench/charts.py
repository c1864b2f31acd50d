"""PNG charts of one benchmark result file, drawn with matplotlib.

Each bar is the median over the complete runs, and its whisker spans the lowest
to the highest of them. The label above the first server's bar (Clarion's, in
most charts) gives its ratio to the last server (the ceiling).

Usage: python bench/charts.py bench/results/RESULT.json [--output docs/benchmarks]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"clarion": "#2a6fb0", "ceiling": "#9a9a9a"}
PALETTE = ("#2a6fb0", "#e08a2c", "#9a9a9a")


def values(document: dict, scenario: str, server: str, key: str) -> list[float]:
    return [
        run["result"][key]
        for run in document["runs"]
        if run["scenario"] == scenario
        and run["server"] == server
        and run["result"].get(key) is not None
        and "error" not in run["result"]
        and run["result"].get("complete") is not False
    ]


def median(numbers: list[float]) -> float:
    ordered = sorted(numbers)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def bars(ax, document: dict, groups: list[tuple[str, str, str]], unit: str) -> None:
    """Draw the servers of a scenario side by side for each (scenario, key,
    label), and label the first server's bars with its ratio to the last."""
    servers = list(document["medians"].get(groups[0][0], {}))
    width = 0.8 / max(1, len(servers))
    for offset, server in enumerate(servers):
        medians, lows, highs = [], [], []
        for scenario, key, _ in groups:
            numbers = values(document, scenario, server, key)
            middle = median(numbers) if numbers else 0.0
            medians.append(middle)
            lows.append(middle - min(numbers) if numbers else 0.0)
            highs.append(max(numbers) - middle if numbers else 0.0)
        positions = [
            index + (offset - (len(servers) - 1) / 2) * width
            for index in range(len(groups))
        ]
        ax.bar(
            positions,
            medians,
            width,
            yerr=[lows, highs],
            capsize=3,
            label=server,
            color=COLORS.get(server, PALETTE[offset % len(PALETTE)]),
        )
        if offset == 0 and len(servers) > 1:
            for position, (scenario, key, _), middle in zip(
                positions, groups, medians, strict=True
            ):
                reference = values(document, scenario, servers[-1], key)
                if reference and median(reference):
                    ax.annotate(
                        f"{middle / median(reference):.2f}x",
                        (position, middle),
                        textcoords="offset points",
                        xytext=(0, 4),
                        ha="center",
                        fontsize=8,
                    )
    ax.set_xticks(range(len(groups)), [label for _, _, label in groups])
    ax.set_ylabel(unit)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def subscribers(document: dict, scenario: str) -> int:
    for run in document["runs"]:
        if run["scenario"] == scenario and "error" not in run["result"]:
            return run["result"]["subscribed"]
    return document["scenarios"][scenario]["subscribers"]


def figure(title: str, panels: int):
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.8), squeeze=False)
    fig.suptitle(title, fontsize=11)
    return fig, axes[0]


def chart_fanout(document: dict):
    fig, (rate, cpu) = figure("Fan-out: one channel, 150-byte events", 2)
    groups = []
    for name in ("fanout-1k", "fanout-10k"):
        events = document["scenarios"][name]["events"]
        label = f"{subscribers(document, name):,} subscribers\n{events} events"
        groups.append((name, "deliveries_per_second", label))
    bars(rate, document, groups, "deliveries per second")
    bars(
        cpu,
        document,
        [(scenario, "server_us_per_delivery", label) for scenario, _, label in groups],
        "server CPU µs per delivery",
    )
    return fig


def chart_many_channels(document: dict):
    scenario = document["scenarios"]["many-channels"]
    per_channel = (
        scenario["subscribers"]
        * scenario["subscriptions_per_connection"]
        // scenario["channels"]
    )
    fig, (rate, writes) = figure(
        f"Many channels: {scenario['channels']} channels x {per_channel} "
        f"subscribers, {scenario['events']:,} events in batches of "
        f"{scenario['batch']}",
        2,
    )
    bars(
        rate,
        document,
        [("many-channels", "deliveries_per_second", "deliveries/s")],
        "deliveries per second",
    )
    bars(
        writes,
        document,
        [("many-channels", "writes_per_delivery", "write calls per delivery")],
        "server write system calls per delivery",
    )
    return fig


def chart_latency(document: dict):
    scenario = document["scenarios"]["latency"]
    fig, (ax,) = figure(
        f"Latency: {scenario['subscribers']:,} subscribers, {scenario['rate']:g} "
        f"events per second for {scenario['events'] / scenario['rate']:g} s",
        1,
    )
    bars(
        ax,
        document,
        [
            ("latency", "latency_p50_ms", "p50"),
            ("latency", "latency_p99_ms", "p99"),
            ("latency", "latency_p999_ms", "p99.9"),
        ],
        "ms from the HTTP request to the delivery",
    )
    return fig


def chart_memory(document: dict):
    fig, (ax,) = figure("Idle memory: RSS growth per subscribed connection", 1)
    bars(
        ax,
        document,
        [
            (name, "kib_per_connection", f"{subscribers(document, name):,} connections")
            for name in ("idle-10k", "idle-50k")
        ],
        "KiB per connection",
    )
    ax.axhline(4.0, color="#c0392b", linestyle="--", linewidth=1)
    ax.annotate(
        "target: 4 KB",
        (0, 4.0),
        xytext=(0, 3),
        textcoords="offset points",
        color="#c0392b",
        fontsize=8,
    )
    return fig


def chart_connect(document: dict):
    fig, (wall, cpu) = figure(
        f"Connect and subscribe: {subscribers(document, 'idle-10k'):,} connections",
        2,
    )
    bars(
        wall,
        document,
        [("idle-10k", "subscribed_per_second", "measured")],
        "connections per second",
    )
    wall.axhline(8000, color="#c0392b", linestyle="--", linewidth=1)
    wall.annotate(
        "target: 8,000/s",
        (0, 8000),
        xytext=(0, 3),
        textcoords="offset points",
        color="#c0392b",
        fontsize=8,
    )
    bars(
        cpu,
        document,
        [("idle-10k", "server_us_per_connection", "server CPU")],
        "server CPU µs per connect + subscribe",
    )
    cpu.axhline(125, color="#c0392b", linestyle="--", linewidth=1)
    cpu.annotate(
        "125 µs = 8,000/s on one core",
        (0, 125),
        xytext=(0, 3),
        textcoords="offset points",
        color="#c0392b",
        fontsize=8,
    )
    return fig


def chart_http(document: dict):
    events = document["scenarios"]["http-trigger"]["events"]
    fig, (rate, cpu) = figure(f"HTTP trigger: {events:,} signed POST /events", 2)
    bars(
        rate,
        document,
        [("http-trigger", "requests_per_second", "requests/s")],
        "requests per second",
    )
    bars(
        cpu,
        document,
        [("http-trigger", "server_us_per_request", "server CPU")],
        "server CPU µs per request",
    )
    return fig


def chart_presence(document: dict):
    members = subscribers(document, "presence-1k")
    fig, (rate, cpu) = figure(f"Presence: {members:,} members join one channel", 2)
    bars(
        rate,
        document,
        [("presence-1k", "joins_per_second", "joins/s")],
        "joins per second, until every member_added arrived",
    )
    bars(
        cpu,
        document,
        [("presence-1k", "server_us_per_join", "server CPU")],
        "server CPU µs per join",
    )
    return fig


def chart_scale_out(document: dict):
    fig, (rate, cpu) = figure(
        f"Scale-out: {subscribers(document, 'scale-out'):,} subscribers, "
        "1 against 2 Clarion processes sharing Redis",
        2,
    )
    bars(
        rate,
        document,
        [("scale-out", "deliveries_per_second", "deliveries/s")],
        "deliveries per second",
    )
    bars(
        cpu,
        document,
        [("scale-out", "server_us_per_delivery", "server and Redis CPU")],
        "CPU µs per delivery, all processes",
    )
    return fig


CHARTS = {
    "fanout.png": (chart_fanout, ("fanout-1k", "fanout-10k")),
    "many-channels.png": (chart_many_channels, ("many-channels",)),
    "latency.png": (chart_latency, ("latency",)),
    "idle-memory.png": (chart_memory, ("idle-10k", "idle-50k")),
    "connect.png": (chart_connect, ("idle-10k",)),
    "http-trigger.png": (chart_http, ("http-trigger",)),
    "presence.png": (chart_presence, ("presence-1k",)),
    "scale-out.png": (chart_scale_out, ("scale-out",)),
}


def write_charts(document: dict, directory: Path) -> list[Path]:
    """Draw every chart whose scenarios are in ``document``; return the files."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (draw, needed) in CHARTS.items():
        if not all(scenario in document["medians"] for scenario in needed):
            continue
        fig = draw(document)
        fig.tight_layout()
        path = directory / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a JSON file from bench/run.py")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "docs" / "benchmarks",
        help="directory for the PNG files",
    )
    args = parser.parse_args()
    document = json.loads(args.results.read_text())
    for path in write_charts(document, args.output):
        print(f"Wrote {path}")


if __name__ == "__main__":
    main()
