"""Measure `corral serve` start-up: time to a ready gateway, and the engine's own phases.

    .venv/bin/python scripts/measure_serve.py [--config FILE] [--home DIR]

Starts `corral serve` as a subprocess (holding /tmp/corral-vllm.lock like the tests, so it
never runs beside another real engine), waits until the gateway lists a model, stops it
with SIGINT, then prints: seconds from process start to a ready gateway, the engine's
launch-to-ready seconds and its phases as recorded in the ledger.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml


def wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float = 600.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"corral serve exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("not ready in time")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path)
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("CORRAL_HOME", "")))
    args = parser.parse_args()
    port = 8000
    if args.config:
        port = (yaml.safe_load(args.config.read_text()).get("gateway") or {}).get("port", 8000)
    argv = [sys.executable, "-m", "corral", "serve"]
    if args.config:
        argv += ["--config", str(args.config)]
    env = dict(os.environ)
    if str(args.home):
        env["CORRAL_HOME"] = str(args.home)
    with open("/tmp/corral-vllm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        began = time.monotonic()
        proc = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
        seconds = wait_ready(proc, f"http://127.0.0.1:{port}/v1/models")
        print(f"corral serve → gateway ready: {seconds:.1f} s (process start included)")
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        print(f"stopped after {time.monotonic() - began:.1f} s, exit code {proc.returncode}")
    status = subprocess.run(
        [sys.executable, "-m", "corral", "status", "--json"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    for row in json.loads(status.stdout):
        engine_s = (row["ready_at"] or 0) - row["started_at"]
        print(f"{row['deployment']}: engine launch → ready {engine_s:.1f} s")
        for phase in row["phases"]:
            print(f"  {phase['name']:<12} {phase['seconds'] or 0:6.1f} s")


if __name__ == "__main__":
    main()
