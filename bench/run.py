"""Benchmark Clarion against the reference ceiling server on 127.0.0.1.

For every repeat, scenario and server, this script starts a fresh server
process, drives it with bench/loadgen.py, samples the server's CPU time, RSS
and write system calls from /proc between phases, and stops it by PID. It
prints progress and a table of medians with the targets, writes every run to
bench/results/ as JSON and, for a full run, draws the charts with matplotlib.

Server CPU time per delivery is the figure to compare. The load generator runs
on the same cores, so deliveries per second depend on the machine as a whole.

Usage:
  python bench/run.py            # 3 repeats of the full scenarios, about 15 minutes
  python bench/run.py --quick    # 1 repeat of small scenarios, about 2 minutes
  python bench/run.py --smoke    # about 50 connections per scenario, for the tests
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import procstat
import profiles
from scenarios import METRICS, NAMES, SIZES, TARGETS, Scenario
from servers import (
    SERVERS,
    START_TIMEOUT,
    Sample,
    Server,
    free_port,
    start_redis,
    stop_process,
    wait_listening,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
APP_ID = "7001"
APP_KEY = "bench-key"
APP_SECRET = "bench-secret"
QUIET_CORES = 0.25
"""Busy cores, averaged over one second, below which the machine counts as quiet."""
FILE_DESCRIPTOR_RESERVE = 200
"""Descriptors a server keeps for its listener, logs and API connections."""
SOURCE_PORTS = "10000-65000"
"""Source ports the load generator binds when the ephemeral range is too small."""
LATENCY_KEYS = (
    "latency_samples",
    "latency_p50_ms",
    "latency_p99_ms",
    "latency_p999_ms",
    "latency_max_ms",
)

CLARION_CONFIG = f"""
[[apps]]
id = "{APP_ID}"
key = "{APP_KEY}"
secret = "{APP_SECRET}"
# The default of 100 members is below the 1,000 that presence-1k joins.
max_presence_members = 1000
"""


class LineReader:
    """Read lines from a pipe with a timeout, without Python's buffered reader."""

    def __init__(self, stream) -> None:
        self.fd = stream.fileno()
        self.buffer = b""

    def read_json(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"timed out after {timeout:.0f} s waiting for the load generator"
                )
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    raise RuntimeError("the load generator exited without a result")
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


def raise_file_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def file_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def ephemeral_ports() -> int:
    """Return the size of the kernel's ephemeral port range."""
    path = Path("/proc/sys/net/ipv4/ip_local_port_range")
    low, high = (int(value) for value in path.read_text().split())
    return high - low + 1


def load_average() -> float:
    """Return the 1-minute load average from /proc/loadavg."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def wait_for_quiet(max_wait: float) -> float | None:
    """Wait up to ``max_wait`` seconds for other processes to leave the CPUs idle.

    Returns the busy cores measured last, so each run records how loaded the
    machine was when it started, or None when ``max_wait`` is 0.
    """
    if max_wait <= 0:
        return None
    deadline = time.monotonic() + max_wait
    interval = min(1.0, max_wait)
    while True:
        before = procstat.machine_cpu()
        time.sleep(interval)
        after = procstat.machine_cpu()
        elapsed = (after.total - before.total) / (os.cpu_count() or 1)
        busy_cores = (after.busy - before.busy) / elapsed if elapsed > 0 else 0.0
        if busy_cores < QUIET_CORES or time.monotonic() >= deadline:
            return busy_cores


def fit_to_file_limit(scenario: Scenario) -> tuple[Scenario, str | None]:
    """Shrink ``scenario`` to the connections that one server process can hold
    under RLIMIT_NOFILE; return it and the reason when it was shrunk."""
    limit = file_limit()
    capacity = (limit - FILE_DESCRIPTOR_RESERVE) // 1000 * 1000
    if scenario.subscribers <= capacity:
        return scenario, None
    reason = (
        f"the hard RLIMIT_NOFILE of {limit:,} file descriptors lets one process "
        f"hold about {capacity:,} connections, so {capacity:,} were opened instead "
        f"of {scenario.subscribers:,}"
    )
    return dataclasses.replace(scenario, subscribers=capacity), reason


def loadgen_command(port: int, scenario: Scenario, workers: int) -> list[str]:
    # One load generator process can hold as many connections as its file limit.
    per_process = file_limit() - FILE_DESCRIPTOR_RESERVE
    workers = max(workers, math.ceil(scenario.subscribers / per_process))
    command = [
        sys.executable,
        str(BENCH_DIR / "loadgen.py"),
        "--port",
        str(port),
        "--app-id",
        APP_ID,
        "--key",
        APP_KEY,
        "--secret",
        APP_SECRET,
        "--channel",
        scenario.channel,
        "--channels",
        str(scenario.channels),
        "--subscriptions-per-connection",
        str(scenario.subscriptions_per_connection),
        "--subscribers",
        str(scenario.subscribers),
        "--events",
        str(scenario.events),
        "--batch",
        str(scenario.batch),
        "--rate",
        str(scenario.rate),
        "--publishers",
        str(scenario.publishers),
        "--workers",
        str(min(workers, scenario.subscribers)),
        "--connect-timeout",
        str(scenario.timeout),
        "--deliver-timeout",
        str(scenario.timeout),
        "--hard-timeout",
        str(3 * scenario.timeout + 30),
        "--control",
        "stdin",
    ]
    if scenario.kind == "latency":
        command.append("--latency")
    if scenario.subscribers > ephemeral_ports() - 1000:
        command += ["--source-ports", SOURCE_PORTS]
    return command


@dataclass(frozen=True)
class RunSettings:
    workers: int
    startup_settle: float
    work_dir: Path
    profile_dir: Path | None


def run_once(server: Server, scenario: Scenario, settings: RunSettings) -> dict:
    """Start ``server``, run ``scenario`` against it once and return the figures."""
    port = free_port()
    work_dir = settings.work_dir
    log_path = work_dir / f"{server.name}-{scenario.name}-{port}.log"
    redis = None
    process = None
    loadgen = None
    profiler = None
    profile_path = None
    # py-spy follows one process, so supervised workers are not profiled.
    if settings.profile_dir is not None and server.workers == 1:
        profile_path = settings.profile_dir / f"{server.name}-{scenario.name}.txt"
    try:
        redis_url = None
        if server.redis:
            redis, redis_url = start_redis(work_dir)
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                server.command(port, work_dir / "clarion.toml", redis_url),
                cwd=REPO_DIR,
                env=server.environment(),
                stdout=log,
                stderr=log,
                preexec_fn=raise_file_limit,
            )
        wait_listening(port, process, server.workers, START_TIMEOUT)
        time.sleep(settings.startup_settle)
        pid = process.pid
        redis_pid = redis.pid if redis is not None else None
        if profile_path is not None and scenario.measures_connecting:
            profiler = profiles.start(pid, profile_path)
            time.sleep(profiles.ATTACH_SECONDS)
        start = Sample.take(pid, redis_pid)
        loadgen = subprocess.Popen(
            loadgen_command(port, scenario, settings.workers),
            cwd=REPO_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        lines = LineReader(loadgen.stdout)
        subscribed = lines.read_json(scenario.timeout + 15)
        connected = Sample.take(pid, redis_pid)
        loadgen_connect_cpu = procstat.tree_cpu_seconds(loadgen.pid)
        # Shows how SO_REUSEPORT spread the connections over the workers.
        open_files = [
            procstat.open_files(member) for member in procstat.process_tree(pid)
        ]
        if profiler is not None:
            profiles.stop(profiler)
            profiler = None
        time.sleep(scenario.settle)
        if profile_path is not None and not scenario.measures_connecting:
            profiler = profiles.start(pid, profile_path)
            time.sleep(profiles.ATTACH_SECONDS)
        before = Sample.take(pid, redis_pid)
        loadgen_before = procstat.tree_cpu_seconds(loadgen.pid)

        command = "publish" if scenario.events else "stop"
        loadgen.stdin.write(f"{command}\n".encode())
        loadgen.stdin.flush()
        done = lines.read_json(scenario.timeout + 15)

        after = Sample.take(pid, redis_pid)
        loadgen_after = procstat.tree_cpu_seconds(loadgen.pid)
        loadgen.wait(30)
    except (OSError, RuntimeError, TimeoutError, subprocess.TimeoutExpired) as exc:
        tail = ""
        if log_path.exists():
            tail = log_path.read_text(errors="replace")[-1000:]
        return {"error": f"{type(exc).__name__}: {exc}", "server_log_tail": tail}
    finally:
        if profiler is not None:
            profiles.stop(profiler)
        if loadgen is not None:
            stop_process(loadgen, 5)
        if process is not None:
            stop_process(process)
        if redis is not None:
            stop_process(redis)

    result = connect_figures(scenario, subscribed, start, connected, before)
    result["loadgen_connect_cpu_seconds"] = loadgen_connect_cpu
    result["server_open_files"] = open_files
    if scenario.events:
        result |= publish_figures(done, before, after, loadgen_after - loadgen_before)
    if profile_path is not None and profile_path.exists():
        result["profile"] = str(profile_path)
        result["profile_summary"] = profiles.summarize(profile_path)
    return result


def connect_figures(
    scenario: Scenario,
    subscribed: dict,
    start: Sample,
    connected: Sample,
    settled: Sample,
) -> dict:
    """Return the figures of the subscribe phase, and RSS after it."""
    connections = subscribed["subscribers"]
    connect_cpu = connected.cpu - start.cpu
    result = {
        "subscribed": connections,
        "complete": connections == scenario.subscribers,
        "connect_errors": subscribed["connect_errors"],
        "connect_error_samples": subscribed["connect_error_samples"],
        "connect_seconds": subscribed["seconds"],
        "subscribed_per_second": subscribed["subscribed_per_second"],
        "server_connect_cpu_seconds": connect_cpu,
        "server_connect_system_seconds": connected.system - start.system,
        "server_us_per_connection": (
            connect_cpu / connections * 1e6 if connections else None
        ),
        "rss_start_bytes": start.rss,
        "rss_subscribed_bytes": settled.rss,
        "kib_per_connection": (
            (settled.rss - start.rss) / connections / 1024 if connections else None
        ),
    }
    if scenario.kind == "presence":
        result |= {
            "complete": result["complete"]
            and subscribed["members_added"] == subscribed["members_added_expected"],
            "members_added": subscribed["members_added"],
            "members_added_expected": subscribed["members_added_expected"],
            "join_seconds": subscribed["join_seconds"],
            "joins_per_second": subscribed["joins_per_second"],
            "server_us_per_join": connect_cpu / connections * 1e6
            if connections
            else None,
        }
    return result


def publish_figures(
    done: dict, before: Sample, after: Sample, loadgen_cpu: float
) -> dict:
    """Return the figures of the publish phase."""
    deliveries = done["deliveries"]
    server_cpu = after.cpu - before.cpu
    writes = after.writes - before.writes
    machine_busy = after.machine_busy - before.machine_busy
    requests = done.get("requests") or 0
    result = {
        "complete": done["complete"] and not done.get("http_failures"),
        "deliveries": deliveries,
        "expected": done["expected"],
        "seconds": done["seconds"],
        "deliveries_per_second": done["deliveries_per_second"],
        "bytes_per_delivery": done["bytes_per_delivery"],
        "other_frames": done["other_frames"],
        "closed_by_server": done["closed_by_server"],
        "requests": requests,
        "requests_per_second": done.get("requests_per_second"),
        "http_failures": done.get("http_failures"),
        "http_failure_samples": done.get("http_failure_samples"),
        "publish_error": done.get("publish_error"),
        "server_cpu_seconds": server_cpu,
        "server_system_seconds": after.system - before.system,
        "redis_cpu_seconds": after.redis_cpu - before.redis_cpu,
        "server_us_per_delivery": server_cpu / deliveries * 1e6 if deliveries else None,
        "server_us_per_request": server_cpu / requests * 1e6 if requests else None,
        "server_write_calls": writes,
        "writes_per_delivery": writes / deliveries if deliveries else None,
        "loadgen_cpu_seconds": loadgen_cpu,
        "other_cpu_seconds": max(0.0, machine_busy - server_cpu - loadgen_cpu),
    }
    for key in LATENCY_KEYS:
        if key in done:
            result[key] = done[key]
    return result


def describe(result: dict, scenario: Scenario) -> str:
    """Return one line of a run's figures for the progress output."""
    if "error" in result:
        return f"FAILED: {result['error']}"

    def show(key: str, form: str) -> str:
        value = result.get(key)
        return "n/a" if value is None else form.format(value)

    text = (
        f"{result['subscribed']:,}/{scenario.subscribers:,} subscribed "
        f"({show('subscribed_per_second', '{:,.0f}')}/s, server "
        f"{show('server_us_per_connection', '{:.0f}')} µs each)"
    )
    if result["connect_errors"]:
        text += (
            f", {result['connect_errors']:,} connect errors such as "
            f"{result['connect_error_samples'][:2]}"
        )
    if scenario.kind == "presence":
        text += (
            f", {result['members_added']:,}/{result['members_added_expected']:,} "
            f"member_added, {show('joins_per_second', '{:,.0f}')} joins/s"
        )
    if scenario.events and "deliveries" in result:
        text += (
            f", {result['deliveries']:,}/{result['expected']:,} deliveries in "
            f"{show('seconds', '{:.2f}')} s "
            f"({show('deliveries_per_second', '{:,.0f}')}/s), "
            f"server {show('server_us_per_delivery', '{:.2f}')} µs and "
            f"{show('writes_per_delivery', '{:.2f}')} writes per delivery, "
            f"load generator {show('loadgen_cpu_seconds', '{:.2f}')} s CPU, "
            f"other processes {show('other_cpu_seconds', '{:.2f}')} s CPU"
        )
    if scenario.kind == "http":
        text += f", {show('requests_per_second', '{:,.0f}')} requests/s"
    if scenario.kind == "latency":
        text += (
            f", latency p50 {show('latency_p50_ms', '{:.2f}')} ms, "
            f"p99 {show('latency_p99_ms', '{:.2f}')} ms, "
            f"p99.9 {show('latency_p999_ms', '{:.2f}')} ms"
        )
    if scenario.kind == "idle":
        text += f", {show('kib_per_connection', '{:.2f}')} KiB RSS per connection"
    if not result.get("complete"):
        text += " [INCOMPLETE]"
    return text


def median_of(results: list[dict], key: str) -> float | None:
    """Return the median of ``key`` over the complete runs; a failed or
    incomplete run counts in ``failed`` instead."""
    values = [
        result[key]
        for result in results
        if result.get(key) is not None
        and "error" not in result
        and result.get("complete") is not False
    ]
    return statistics.median(values) if values else None


def collect_medians(scenarios, runs, args: argparse.Namespace) -> dict:
    """Return the median of every metric per scenario and server, for the
    servers that ran each scenario."""
    medians: dict[str, dict[str, dict]] = {}
    for scenario in scenarios:
        medians[scenario.name] = {}
        for name in [server.name for server in scenario_servers(scenario, args)]:
            selected = [
                run["result"]
                for run in runs
                if run["scenario"] == scenario.name and run["server"] == name
            ]
            if not selected:
                continue
            figures = {
                metric.key: median_of(selected, metric.key)
                for metric in METRICS
                if scenario.kind in metric.kinds
            }
            figures["runs"] = len(selected)
            figures["failed"] = sum(
                1
                for result in selected
                if "error" in result or result.get("complete") is False
            )
            medians[scenario.name][name] = figures
    return medians


def target_checks(medians: dict) -> list[dict]:
    """Return each target with Clarion's median, the ceiling's and whether it is met."""
    checks = []
    for target in TARGETS:
        figures = medians.get(target.scenario)
        if figures is None:
            continue
        clarion = figures.get("clarion", {}).get(target.key)
        ceiling = figures.get("ceiling", {}).get(target.key)
        checks.append(
            {
                "scenario": target.scenario,
                "metric": target.key,
                "target": target.describe(),
                "clarion": clarion,
                "ceiling": ceiling,
                "met": target.check(clarion, ceiling),
            }
        )
    return checks


def tables(scenarios, medians: dict, checks: list[dict] | None) -> str:
    """Return Markdown tables of the medians, one per set of compared servers,
    with the targets when given."""
    groups: dict[tuple[str, ...], list[Scenario]] = {}
    for scenario in scenarios:
        names = tuple(medians[scenario.name])
        if names:
            groups.setdefault(names, []).append(scenario)
    return "\n\n".join(
        table(names, group, medians, checks) for names, group in groups.items()
    )


def table(names, scenarios, medians: dict, checks: list[dict] | None) -> str:
    ratio_name = f"{names[0]} / {names[-1]}" if len(names) == 2 else "ratio"
    header = "| scenario | metric | " + " | ".join(names) + f" | {ratio_name} |"
    rule = "|---|---|" + "---|" * (len(names) + 1)
    if checks is not None:
        header += " target | met |"
        rule += "---|---|"
    rows = [header, rule]
    for scenario in scenarios:
        for metric in METRICS:
            if scenario.kind not in metric.kinds:
                continue
            values = [medians[scenario.name][name][metric.key] for name in names]
            cells = [metric.form.format(v) if v is not None else "n/a" for v in values]
            ratio = "n/a"
            # Other processes' CPU time can be a rounding residue near 0: no ratio.
            if len(values) == 2 and values[0] and values[1] and values[1] >= 0.005:
                ratio = f"{values[0] / values[1]:.2f}"
            row = f"| {scenario.name} | {metric.label} | " + " | ".join(cells)
            row += f" | {ratio} |"
            if checks is not None:
                row += target_cells(checks, scenario.name, metric.key)
            rows.append(row)
    return "\n".join(rows)


def target_cells(checks: list[dict], scenario: str, key: str) -> str:
    for check in checks:
        if check["scenario"] == scenario and check["metric"] == key:
            met = {True: "yes", False: "NO", None: "n/a"}[check["met"]]
            return f" {check['target']} | {met} |"
    return " | |"


def source_version() -> dict:
    """Return the git commit of the checkout and whether src/ differs from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "src"],
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "src_modified": None}
    return {"commit": commit or None, "src_modified": bool(changes)}


def machine_facts() -> dict:
    cpu_model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    versions = {}
    for module in ("uvloop", "httptools"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = None
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        **source_version(),
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "file_limit": file_limit(),
        "ephemeral_ports": ephemeral_ports(),
        **versions,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark Clarion against the reference ceiling server."
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="1 repeat of small scenarios"
    )
    size.add_argument(
        "--smoke",
        action="store_true",
        help="1 repeat with about 50 connections per scenario, to test the harness",
    )

    parser.add_argument(
        "--repeats", type=int, help="runs per scenario and server (default 3, or 1)"
    )
    parser.add_argument(
        "--servers",
        default="clarion,ceiling",
        help="comma-separated servers to run: clarion (every Clarion setup), or "
        "names from " + ", ".join(sorted(SERVERS)),
    )
    parser.add_argument(
        "--scenarios",
        help=f"comma-separated scenarios to run (default all): {', '.join(NAMES)}",
    )

    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="subscriber processes of the load generator (more when the file "
        "limit needs them)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help="maximum seconds to wait before each run for other processes to go "
        "idle (default 30 for full runs, else 0)",
    )

    parser.add_argument(
        "--profile",
        action="store_true",
        help="record a py-spy profile of each Clarion run's measured phase",
    )

    parser.add_argument(
        "--output",
        type=Path,
        default=BENCH_DIR / "results",
        help="directory for JSON results and profiles",
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="another Clarion checkout's src directory, run as clarion-baseline in "
        "place of the ceiling to measure a change",
    )
    parser.add_argument(
        "--charts",
        type=Path,
        help="directory for PNG charts (default docs/benchmarks for full runs; "
        "needs matplotlib from the bench extra)",
    )
    parser.add_argument(
        "--no-charts", action="store_true", help="draw no charts, even for full runs"
    )
    return parser.parse_args()


def select_scenarios(args: argparse.Namespace) -> tuple[str, tuple[Scenario, ...]]:
    size = "full"
    if args.quick:
        size = "quick"
    elif args.smoke:
        size = "smoke"
    scenarios = SIZES[size]
    if args.scenarios:
        requested = args.scenarios.split(",")
        unknown = sorted(set(requested) - set(NAMES))
        if unknown:
            raise SystemExit(
                f"Unknown scenario(s) {', '.join(unknown)}: use {', '.join(NAMES)}"
            )
        scenarios = tuple(s for s in scenarios if s.name in requested)
    return size, scenarios


def scenario_servers(scenario: Scenario, args: argparse.Namespace) -> list[Server]:
    """Return the servers of ``scenario`` that ``--servers`` names, by name or
    by program, with the baseline in place of the ceiling when one is given."""
    servers = [SERVERS[name] for name in scenario.servers]
    if args.baseline_src is not None:
        baseline = Server("clarion-baseline", "clarion", source=args.baseline_src)
        servers = [baseline if s.name == "ceiling" else s for s in servers]
    requested = args.servers
    return [
        s
        for s in servers
        if s.name in requested or s.program in requested or s.name == "clarion-baseline"
    ]


def run_all(args, size, scenarios, work_dir, profile_dir) -> list[dict]:
    repeats = args.repeats or (3 if size == "full" else 1)
    settings = RunSettings(
        workers=args.workers,
        startup_settle=0.1 if size == "smoke" else 0.5,
        work_dir=work_dir,
        profile_dir=profile_dir,
    )
    runs: list[dict] = []
    total = repeats * sum(
        len(scenario_servers(scenario, args)) for scenario in scenarios
    )
    for repeat in range(1, repeats + 1):
        for planned in scenarios:
            scenario, shrunk = fit_to_file_limit(planned)
            servers = scenario_servers(scenario, args)
            # Alternate the server order so that neither always runs first.
            order = servers if repeat % 2 else list(reversed(servers))
            for server in order:
                busy_cores = wait_for_quiet(args.quiet_wait)
                load = load_average()
                busy = "" if busy_cores is None else f"{busy_cores:.2f} cores busy, "
                print(
                    f"[{len(runs) + 1}/{total}] {server.name} {scenario.name}, "
                    f"run {repeat} of {repeats} ({busy}load average {load:.2f})",
                    flush=True,
                )
                started = time.monotonic()
                result = run_once(server, scenario, settings)
                result["run_seconds"] = round(time.monotonic() - started, 2)
                if busy_cores is not None:
                    result["busy_cores_before"] = round(busy_cores, 2)
                result["load_average_before"] = load
                if shrunk is not None:
                    result["requested_subscribers"] = planned.subscribers
                    result["limited_by"] = shrunk
                print(f"  {describe(result, scenario)}", flush=True)
                runs.append(
                    {
                        "server": server.name,
                        "scenario": scenario.name,
                        "repeat": repeat,
                        "parameters": asdict(scenario),
                        "result": result,
                    }
                )
    return runs


def main() -> int:
    args = parse_args()
    raise_file_limit()
    size, scenarios = select_scenarios(args)
    if args.quiet_wait is None:
        args.quiet_wait = 30.0 if size == "full" else 0.0
    args.servers = args.servers.split(",")
    known = set(SERVERS) | {server.program for server in SERVERS.values()}
    unknown = sorted(set(args.servers) - known)
    if unknown:
        print(
            f"Unknown server(s) {', '.join(unknown)}: use {', '.join(sorted(known))}",
            file=sys.stderr,
        )
        return 2
    if args.profile:
        profiles.find_py_spy()
    if args.baseline_src is not None:
        args.baseline_src = args.baseline_src.resolve()
        if not (args.baseline_src / "clarion" / "__main__.py").exists():
            print(
                f"--baseline-src {args.baseline_src}: no clarion/__main__.py there; "
                "give the src directory of a Clarion checkout",
                file=sys.stderr,
            )
            return 2

    facts = machine_facts()
    print(
        f"{facts['cpu_model']}, {facts['nproc']} CPUs, Python {facts['python']}, "
        f"uvloop {facts['uvloop']}, httptools {facts['httptools']}, "
        f"file limit {facts['file_limit']:,}, load {load_average():.2f}",
        flush=True,
    )
    for scenario in scenarios:
        _, shrunk = fit_to_file_limit(scenario)
        if shrunk:
            print(f"{scenario.name}: {shrunk}", flush=True)
    started = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
    suffix = "" if size == "full" else f"-{size}"
    args.output.mkdir(parents=True, exist_ok=True)
    profile_dir = None
    if args.profile:
        profile_dir = args.output / f"{stamp}{suffix}-profiles"
        profile_dir.mkdir()
    load_start = load_average()
    with tempfile.TemporaryDirectory(prefix="clarion-bench-") as directory:
        work_dir = Path(directory)
        (work_dir / "clarion.toml").write_text(CLARION_CONFIG)
        runs = run_all(args, size, scenarios, work_dir, profile_dir)

    medians = collect_medians(scenarios, runs, args)
    # The targets compare Clarion with the ceiling, at full size.
    compared = size == "full" and args.baseline_src is None
    checks = target_checks(medians) if compared else None
    repeats = max(run["repeat"] for run in runs)
    print(f"\nMedians of {repeats} run(s)")
    print(tables(scenarios, medians, checks))
    path = args.output / f"{stamp}{suffix}.json"
    document = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "size": size,
        "machine": facts,
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "repeats": repeats,
        "workers": args.workers,
        "baseline_src": str(args.baseline_src) if args.baseline_src else None,
        "scenarios": {scenario.name: asdict(scenario) for scenario in scenarios},
        "medians": medians,
        "targets": checks,
        "runs": runs,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    display_path = path
    if path.is_relative_to(REPO_DIR):
        display_path = path.relative_to(REPO_DIR)
    print(f"\nWrote {display_path}")
    draw_charts(args, size, path)
    failed = sum(
        1
        for run in runs
        if "error" in run["result"] or run["result"].get("complete") is False
    )
    if failed:
        print(f"{failed} run(s) failed or were incomplete; see the JSON file.")
    return 1 if failed else 0


def draw_charts(args: argparse.Namespace, size: str, results: Path) -> None:
    directory = args.charts
    if (
        directory is None
        and size == "full"
        and args.baseline_src is None
        and not args.no_charts
    ):
        directory = REPO_DIR / "docs" / "benchmarks"
    if directory is None or args.no_charts:
        return
    try:
        import charts
    except ImportError as exc:
        print(
            f"No charts drawn: {exc}. Install the bench extra "
            "(pip install -e '.[bench]') and run python bench/charts.py "
            f"{results}",
            file=sys.stderr,
        )
        return
    for written in charts.write_charts(json.loads(results.read_text()), directory):
        print(f"Wrote {written}")


if __name__ == "__main__":
    raise SystemExit(main())
