"""The seed's three-host fleet under `corral serve --config`, measured in one run.

    sudo .venv/bin/python scripts/bench_serve_fleet.py [--rounds 30] [--streams 3] [--tokens 48]

Needs root (tests/support/netns.py makes pegasus, stella and venus as namespace hosts with
a real sshd) and the default model in the test home (`corral models pull smollm2`). Holds
/tmp/corral-vllm.lock while the engine runs, as every real-engine run on this machine must.

The fleet file is tests/support/seed_fleet.py's (examples/fleet-pegasus.yaml pointed at
the namespace hosts, the real vLLM CPU engine placed on stella), with the engine also
bound to stella's private address and a second deployment, `smollm2-direct`, that is an
endpoint at that address. One `corral serve` then reaches the same engine three ways,
interleaved in every round:

  direct      the engine at stella's private address: no gateway, no SSH
  gw-local    corral's gateway → the engine's private address (no SSH): the gateway in
              front of an engine it reaches without SSH, the "local engine" baseline
              (stella's veth is a hop inside this kernel, as loopback is)
  gw-ssh      corral's gateway → the SSH forward → the engine on stella's loopback: how
              `corral serve` reaches every engine on another host (decision 0014)

One engine serves all three (at most one vLLM runs on this machine), so the engine's own
swings hit every path alike. Figures: 1-token request p50/p99, a stream's time to first
token and tokens/s. Then stella is partitioned (`ip link set crl-2-r down`) and healed,
with `/v1/models` polled every 50 ms: seconds to unroutable, a request's answer time
while partitioned, seconds to routed again, and whether the same engine (pid) serves.
Prints a table, the ratios, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import bench_remote_vllm as bench  # noqa: E402  (scripts/ is on sys.path: this file's folder)
from tests.support import netns, seed_fleet  # noqa: E402
from tests.support.seed_fleet import DIRECT, NAME, engine_pid, models, stop_serve  # noqa: E402

from corral.runtime.ports import free_port  # noqa: E402

DIRECT_PORT = 18471  # stella's own port space (its namespace): nothing else listens there
POLL = 0.05


def until(check: Callable[[], bool], limit: float, what: str, serve: subprocess.Popen[str],
          log: Path) -> float:  # fmt: skip
    start = time.monotonic()
    while not check():
        if serve.poll() is not None:
            raise SystemExit(f"corral serve exited:\n{log.read_text()[-3000:]}")
        if time.monotonic() - start > limit:
            raise SystemExit(f"{what} not within {limit} s:\n{log.read_text()[-3000:]}")
        time.sleep(POLL)
    return time.monotonic() - start


def routable(base: str, name: str, want: bool) -> Callable[[], bool]:
    return lambda: models(base).get(name, {}).get("routable") is want


def partition_and_heal(fleet: netns.NetnsFleet, base: str, home: Path,
                       serve: subprocess.Popen[str], log: Path) -> dict[str, Any]:  # fmt: skip
    pid = engine_pid(home)
    fleet.partition("stella")
    try:
        gone = until(routable(base, NAME, False), 30, "unroutable", serve, log)
        asked = time.monotonic()
        ask = {"model": NAME, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
        status = httpx.post(f"{base}/v1/chat/completions", json=ask, timeout=30).status_code
        answered = time.monotonic() - asked
    finally:
        fleet.heal("stella")
    back = until(routable(base, NAME, True), 60, "routed again", serve, log)
    return {"partition_to_unroutable_s": gone, "partitioned_request_status": status,
            "partitioned_request_s": answered, "heal_to_routed_s": back,
            "same_pid": engine_pid(home) == pid}  # fmt: skip


def start_serve(config: Path, port: int, log: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    argv = [sys.executable, "-m", "corral", "serve", "--config", str(config), "--port", str(port)]
    with log.open("w") as sink:
        return subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, text=True,
                                env=env, start_new_session=True)  # fmt: skip


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    fleet = seed_fleet.create(work / "fleet")
    serve = None
    config = seed_fleet.fleet_config(fleet, work, bench.model_path(), direct=DIRECT_PORT)
    log, port = work / "serve.log", free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        serve = start_serve(config, port, log)
        print(f"corral serve --config {config} (log {log}); waiting for the engine on stella")
        started = until(routable(base, NAME, True), 900, "routable", serve, log)
        until(routable(base, DIRECT, True), 60, f"{DIRECT} routable", serve, log)
        print(f"routable through serve after {started:.1f} s; measuring", flush=True)
        urls = {"direct": f"http://{fleet.hosts['stella'].address}:{DIRECT_PORT}",
                "gw-local": base, "gw-ssh": base}  # fmt: skip
        paths = asyncio.run(bench.measure(urls, args.rounds, args.streams, {"gw-local": DIRECT}))
        return {"paths": paths, "serve_to_routable_s": started,
                **partition_and_heal(fleet, base, work / "home", serve, log)}  # fmt: skip
    finally:
        if serve is not None:
            stop_serve(serve, config, {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"})
        netns.destroy_fleet(fleet)


def show(result: dict[str, Any]) -> None:
    paths = result["paths"]
    print(f"{'path':10}{'p50 ms':>10}{'p99 ms':>10}{'TTFT ms':>10}{'tok/s':>10}")
    for name, f in paths.items():
        print(f"{name:10}{f['p50_ms']:>10.1f}{f['p99_ms']:>10.1f}{f['ttft_ms']:>10.1f}"
              f"{f['tokens_per_s']:>10.1f}")  # fmt: skip
    ssh, local = paths["gw-ssh"], paths["gw-local"]
    print(f"gw-ssh / gw-local 1-token p50: {ssh['p50_ms'] / local['p50_ms']:.3f} "
          f"({ssh['p50_ms'] - local['p50_ms']:+.1f} ms); tokens/s "
          f"{ssh['tokens_per_s'] / local['tokens_per_s']:.3f}")  # fmt: skip
    print(f"gw-local / direct 1-token p50: {local['p50_ms'] / paths['direct']['p50_ms']:.3f} "
          f"({local['p50_ms'] - paths['direct']['p50_ms']:+.1f} ms)")  # fmt: skip
    print(f"partition → unroutable {result['partition_to_unroutable_s']:.1f} s; a request then: "
          f"{result['partitioned_request_status']} in {result['partitioned_request_s']:.2f} s; "
          f"heal → routed {result['heal_to_routed_s']:.1f} s; "
          f"same pid: {result['same_pid']}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--streams", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=48)
    args = parser.parse_args()
    bench.STREAM_TOKENS = args.tokens
    result = bench.run_locked(run, args, "crl-serve-")
    if result is None:
        return 2
    show(result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
