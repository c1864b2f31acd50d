"""Benchmark Clarion against the reference ceiling server on 127.0.0.1.

For every repeat, scenario and server, this script starts a fresh server
process, drives it with bench/loadgen.py, samples the server's CPU time and
RSS from /proc between phases, and stops it by PID. It prints a table of
medians and writes every run to bench/results/ as JSON.

Server CPU time per delivery is the figure to compare. The load generator runs
on the same cores, so deliveries per second depend on the machine as a whole.

Usage:
  python bench/run.py            # 3 repeats of the full scenarios, a few minutes
  python bench/run.py --quick    # 1 repeat of small scenarios, under a minute
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import procstat

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
HOST = "127.0.0.1"
APP_ID = "7001"
APP_KEY = "bench-key"
APP_SECRET = "bench-secret"
SERVER_START_TIMEOUT = 15.0
SERVER_STOP_TIMEOUT = 10.0
STARTUP_SETTLE = 0.5
"""Seconds between the server accepting connections and the baseline sample."""
QUIET_CORES = 0.25
"""Busy cores, averaged over one second, below which the machine counts as quiet."""


@dataclass(frozen=True)
class Scenario:
    name: str
    subscribers: int
    events: int
    """Events published to the one channel; 0 measures idle memory only."""
    settle: float
    """Seconds between the last subscription and the sample before publishing."""
    timeout: float
    """Seconds allowed for each phase: subscribing, then delivering."""


FULL_SCENARIOS = (
    Scenario("fanout-1k", subscribers=1000, events=200, settle=0.5, timeout=60),
    Scenario("fanout-10k", subscribers=10_000, events=50, settle=0.5, timeout=90),
    Scenario("idle-10k", subscribers=10_000, events=0, settle=2.0, timeout=90),
)
QUICK_SCENARIOS = (
    Scenario("fanout-500", subscribers=500, events=100, settle=0.5, timeout=20),
    Scenario("fanout-2k", subscribers=2000, events=25, settle=0.5, timeout=20),
    Scenario("idle-2k", subscribers=2000, events=0, settle=2.0, timeout=20),
)


@dataclass(frozen=True)
class Server:
    name: str

    def command(self, port: int, config: Path) -> list[str]:
        if self.name == "clarion":
            return [
                sys.executable,
                "-m",
                "clarion",
                "serve",
                "--port",
                str(port),
                "--config",
                str(config),
                "--log-level",
                "WARNING",
            ]
        return [sys.executable, str(BENCH_DIR / "ceiling.py"), "--port", str(port)]


SERVERS = {"clarion": Server("clarion"), "ceiling": Server("ceiling")}

CLARION_CONFIG = f"""
[[apps]]
id = "{APP_ID}"
key = "{APP_KEY}"
secret = "{APP_SECRET}"
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
            import select

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"server did not listen on port {port} within {timeout:.0f} s")


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """Stop one process that this script started: SIGTERM, then SIGKILL."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def wait_for_quiet(max_wait: float) -> float:
    """Wait up to ``max_wait`` seconds for other processes to leave the CPUs idle.

    Returns the busy cores measured last, so each run records how loaded the
    machine was when it started.
    """
    deadline = time.monotonic() + max_wait
    while True:
        before = procstat.machine_cpu()
        time.sleep(1.0)
        after = procstat.machine_cpu()
        elapsed = (after.total - before.total) / (os.cpu_count() or 1)
        busy_cores = (after.busy - before.busy) / elapsed if elapsed > 0 else 0.0
        if busy_cores < QUIET_CORES or time.monotonic() >= deadline:
            return busy_cores


def loadgen_command(port: int, scenario: Scenario, workers: int) -> list[str]:
    return [
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
        "--subscribers",
        str(scenario.subscribers),
        "--events",
        str(scenario.events),
        "--workers",
        str(workers),
        "--connect-timeout",
        str(scenario.timeout),
        "--deliver-timeout",
        str(scenario.timeout),
        "--hard-timeout",
        str(3 * scenario.timeout + 30),
        "--control",
        "stdin",
    ]


def run_once(server: Server, scenario: Scenario, workers: int, work_dir: Path) -> dict:
    """Start ``server``, run ``scenario`` against it once and return the figures."""
    port = free_port()
    config = work_dir / "clarion.toml"
    log_path = work_dir / f"{server.name}-{scenario.name}-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            server.command(port, config),
            cwd=REPO_DIR,
            stdout=log,
            stderr=log,
            preexec_fn=raise_file_limit,
        )
    loadgen = None
    try:
        wait_listening(port, process, SERVER_START_TIMEOUT)
        time.sleep(STARTUP_SETTLE)
        pid = process.pid
        rss_start = procstat.rss_bytes(pid)
        with (work_dir / "loadgen.log").open("ab") as loadgen_log:
            loadgen = subprocess.Popen(
                loadgen_command(port, scenario, workers),
                cwd=REPO_DIR,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=loadgen_log,
            )
        lines = LineReader(loadgen.stdout)
        subscribed = lines.read_json(scenario.timeout + 15)
        time.sleep(scenario.settle)
        rss_subscribed = procstat.rss_bytes(pid)
        cpu_before = procstat.process_cpu_seconds(pid)
        loadgen_before = procstat.tree_cpu_seconds(loadgen.pid)
        machine_before = procstat.machine_cpu()

        command = "publish" if scenario.events else "stop"
        loadgen.stdin.write(f"{command}\n".encode())
        loadgen.stdin.flush()
        done = lines.read_json(scenario.timeout + 15)

        cpu_after = procstat.process_cpu_seconds(pid)
        loadgen_after = procstat.tree_cpu_seconds(loadgen.pid)
        machine_after = procstat.machine_cpu()
        rss_end = procstat.rss_bytes(pid)
        loadgen.wait(30)
    except (OSError, RuntimeError, TimeoutError, subprocess.TimeoutExpired) as exc:
        tail = log_path.read_text(errors="replace")[-1000:]
        return {"error": f"{type(exc).__name__}: {exc}", "server_log_tail": tail}
    finally:
        if loadgen is not None:
            stop_process(loadgen, 5)
        stop_process(process, SERVER_STOP_TIMEOUT)

    connections = subscribed["subscribers"]
    server_cpu = cpu_after - cpu_before
    loadgen_cpu = loadgen_after - loadgen_before
    machine_busy = machine_after.busy - machine_before.busy
    result = {
        "subscribed": connections,
        "connect_errors": subscribed["connect_errors"],
        "connect_error_samples": subscribed["connect_error_samples"],
        "subscribed_per_second": subscribed["subscribed_per_second"],
        "rss_start_bytes": rss_start,
        "rss_subscribed_bytes": rss_subscribed,
        "rss_end_bytes": rss_end,
        "kib_per_connection": (
            (rss_subscribed - rss_start) / connections / 1024 if connections else None
        ),
    }
    if scenario.events:
        deliveries = done["deliveries"]
        result |= {
            "deliveries": deliveries,
            "expected": done["expected"],
            "complete": done["complete"],
            "seconds": done["seconds"],
            "deliveries_per_second": done["deliveries_per_second"],
            "bytes_per_delivery": done["bytes_per_delivery"],
            "other_frames": done["other_frames"],
            "closed_by_server": done["closed_by_server"],
            "http_failures": done.get("http_failures"),
            "http_failure_samples": done.get("http_failure_samples"),
            "publish_error": done.get("publish_error"),
            "server_cpu_seconds": server_cpu,
            "server_us_per_delivery": server_cpu / deliveries * 1e6
            if deliveries
            else None,
            "loadgen_cpu_seconds": loadgen_cpu,
            "other_cpu_seconds": max(0.0, machine_busy - server_cpu - loadgen_cpu),
        }
    return result


def describe(result: dict, scenario: Scenario) -> str:
    if "error" in result:
        return f"FAILED: {result['error']}"
    text = (
        f"{result['subscribed']}/{scenario.subscribers} subscribed "
        f"({result['subscribed_per_second']:.0f}/s)"
    )
    if scenario.events:
        text += (
            f", {result['deliveries']}/{result['expected']} deliveries in "
            f"{result['seconds']:.2f} s "
            f"({result['deliveries_per_second'] / 1000:.0f}k/s), "
            f"server {result['server_us_per_delivery']:.2f} µs/delivery, "
            f"load generator {result['loadgen_cpu_seconds']:.2f} s CPU, "
            f"other processes {result['other_cpu_seconds']:.2f} s CPU"
        )
    else:
        text += f", {result['kib_per_connection']:.2f} KiB RSS per connection"
    return text


def median_of(runs: list[dict], key: str) -> float | None:
    values = [
        run[key] for run in runs if run.get(key) is not None and "error" not in run
    ]
    return statistics.median(values) if values else None


METRICS = (
    # (result key, label, format, scenario kinds it applies to)
    ("deliveries_per_second", "deliveries/s", "{:,.0f}", "fanout"),
    ("server_us_per_delivery", "server CPU µs per delivery", "{:.2f}", "fanout"),
    ("loadgen_cpu_seconds", "load generator CPU s", "{:.2f}", "fanout"),
    ("other_cpu_seconds", "other processes' CPU s", "{:.2f}", "fanout"),
    ("subscribed_per_second", "connect + subscribe per s", "{:,.0f}", "all"),
    ("kib_per_connection", "RSS KiB per subscribed connection", "{:.2f}", "all"),
)


def summarize(scenarios, servers, runs) -> tuple[dict, str]:
    """Return the medians per scenario and server, and a Markdown table of them."""
    medians: dict[str, dict[str, dict]] = {}
    names = [server.name for server in servers]
    rows = ["| scenario | metric | " + " | ".join(names) + " | ratio |"]
    rows.append("|---|---|" + "---|" * (len(names) + 1))
    for scenario in scenarios:
        kind = "fanout" if scenario.events else "idle"
        medians[scenario.name] = {}
        for name in names:
            selected = [
                run["result"]
                for run in runs
                if run["scenario"] == scenario.name and run["server"] == name
            ]
            medians[scenario.name][name] = {
                key: median_of(selected, key) for key, *_ in METRICS
            }
            medians[scenario.name][name]["runs"] = len(selected)
            medians[scenario.name][name]["failed"] = sum(
                1
                for result in selected
                if "error" in result or result.get("complete") is False
            )
        for key, label, form, applies in METRICS:
            if applies != "all" and applies != kind:
                continue
            values = [medians[scenario.name][name][key] for name in names]
            cells = [form.format(v) if v is not None else "n/a" for v in values]
            ratio = "n/a"
            # Other processes' CPU time can be a rounding residue near 0: no ratio then.
            if len(values) == 2 and values[0] and values[1] and values[1] >= 0.005:
                ratio = f"{values[0] / values[1]:.2f}"
            rows.append(
                f"| {scenario.name} | {label} | " + " | ".join(cells) + f" | {ratio} |"
            )
    return medians, "\n".join(rows)


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
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        **versions,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark Clarion against the reference ceiling server."
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 repeat of small scenarios (smoke test)"
    )
    parser.add_argument(
        "--repeats", type=int, help="runs per scenario and server (default 3)"
    )
    parser.add_argument(
        "--servers",
        default="clarion,ceiling",
        help="comma-separated servers to run: clarion, ceiling",
    )
    parser.add_argument(
        "--scenarios", help="comma-separated scenario names to run (default all)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="subscriber processes of the load generator",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help="max seconds to wait before each run for other processes to go idle "
        "(default 30, or 0 with --quick)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=BENCH_DIR / "results",
        help="directory for JSON results",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    raise_file_limit()
    scenarios = QUICK_SCENARIOS if args.quick else FULL_SCENARIOS
    if args.scenarios:
        wanted = args.scenarios.split(",")
        scenarios = tuple(s for s in scenarios if s.name in wanted)
        if not scenarios:
            names = ", ".join(s.name for s in FULL_SCENARIOS + QUICK_SCENARIOS)
            print(f"Unknown scenario {args.scenarios!r}: use {names}", file=sys.stderr)
            return 2
    repeats = args.repeats or (1 if args.quick else 3)
    if args.quiet_wait is None:
        args.quiet_wait = 0.0 if args.quick else 30.0
    try:
        servers = [SERVERS[name] for name in args.servers.split(",")]
    except KeyError as exc:
        print(f"Unknown server {exc}: use clarion or ceiling", file=sys.stderr)
        return 2

    facts = machine_facts()
    print(
        f"{facts['cpu_model']}, {facts['nproc']} CPUs, Python {facts['python']}, "
        f"uvloop {facts['uvloop']}, httptools {facts['httptools']}",
        flush=True,
    )
    started = time.time()
    runs = []
    total = repeats * len(scenarios) * len(servers)
    with tempfile.TemporaryDirectory(prefix="clarion-bench-") as directory:
        work_dir = Path(directory)
        (work_dir / "clarion.toml").write_text(CLARION_CONFIG)
        for repeat in range(1, repeats + 1):
            for scenario in scenarios:
                # Alternate the server order so that neither always runs first.
                order = servers if repeat % 2 else list(reversed(servers))
                for server in order:
                    busy_cores = wait_for_quiet(args.quiet_wait)
                    print(
                        f"[{len(runs) + 1}/{total}] {server.name} {scenario.name} "
                        f"run {repeat}: ",
                        end="",
                        flush=True,
                    )
                    result = run_once(server, scenario, args.workers, work_dir)
                    result["busy_cores_before"] = round(busy_cores, 2)
                    print(
                        f"{describe(result, scenario)} "
                        f"[{busy_cores:.2f} cores busy before]",
                        flush=True,
                    )
                    runs.append(
                        {
                            "server": server.name,
                            "scenario": scenario.name,
                            "repeat": repeat,
                            "result": result,
                        }
                    )

    medians, table = summarize(scenarios, servers, runs)
    print()
    print(
        f"Medians of {repeats} run(s); ratio = {servers[0].name} / {servers[-1].name}"
    )
    print(table)
    args.output.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
    path = args.output / f"{stamp}{'-quick' if args.quick else ''}.json"
    document = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": facts,
        "repeats": repeats,
        "workers": args.workers,
        "scenarios": [asdict(scenario) for scenario in scenarios],
        "medians": medians,
        "runs": runs,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    shown = path.relative_to(REPO_DIR) if path.is_relative_to(REPO_DIR) else path
    print(f"\nWrote {shown}")
    failed = sum(
        1
        for run in runs
        if "error" in run["result"] or run["result"].get("complete") is False
    )
    if failed:
        print(f"{failed} run(s) failed or were incomplete; see the JSON file.")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
