"""Smoke run of the benchmark harness against Clarion, about 50 connections per
scenario. It checks that every scenario runs and every delivery arrives, never
how fast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_DIR / "bench"
sys.path.insert(0, str(BENCH_DIR))
from scenarios import NAMES  # noqa: E402

SMOKE_TIMEOUT = 50
"""Seconds; the smoke run takes about 10 s on 2 cores."""


def run_smoke(output: Path) -> dict:
    completed = subprocess.run(
        [
            sys.executable,
            str(BENCH_DIR / "run.py"),
            "--smoke",
            "--servers",
            "clarion",
            "--output",
            str(output),
            "--no-charts",
        ],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT,
    )
    report = completed.stdout[-4000:] + completed.stderr[-4000:]
    assert completed.returncode == 0, report
    [path] = output.glob("*-smoke.json")
    return json.loads(path.read_text())


def test_smoke_run_delivers_everything(tmp_path: Path) -> None:
    document = run_smoke(tmp_path)

    assert sorted(document["medians"]) == sorted(NAMES)
    assert {run["scenario"] for run in document["runs"]} == set(NAMES)
    for run in document["runs"]:
        name = run["scenario"]
        parameters = run["parameters"]
        result = run["result"]
        assert "error" not in result, f"{name}: {result.get('error')}"
        assert result["subscribed"] == parameters["subscribers"], name
        assert result["connect_errors"] == 0, name
        assert result["complete"], name
        if parameters["events"]:
            assert result["expected"] > 0, name
            assert result["deliveries"] == result["expected"], name
            assert result["http_failures"] == 0, name
            assert result["closed_by_server"] == 0, name
        if parameters["kind"] == "presence":
            members = parameters["subscribers"]
            assert result["members_added"] == members * (members - 1) // 2, name
        if parameters["kind"] == "latency":
            expected_samples = parameters["subscribers"] * parameters["events"]
            assert result["latency_samples"] == expected_samples, name
