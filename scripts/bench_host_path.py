"""How a remote engine is reached: SSH local forward vs private address, side by side.

    sudo .venv/bin/python scripts/bench_host_path.py [--rounds 400] [--streams 20]

Needs root (it makes a network namespace host with a real sshd, tests/support/netns.py).
One scripted engine runs inside the namespace host, bound to 0.0.0.0 there (its loopback
and its private address 10.77.0.11); a second one runs here on loopback as the baseline.
The same client (aiohttp) reaches:

  local    the engine on this machine's loopback (no network between)
  private  the namespace engine at its private address, over the veth (what "a private
           address with a per-engine API key" costs: the key is one header, checked by the
           engine; the scripted engine does not check it, so this is the transport alone)
  forward  the namespace engine's loopback through `ssh -L` on the multiplexed master

Requests alternate between the paths within each round, so machine noise hits all alike.
Figures: non-streamed latency p50/p99 (1 token), time to first chunk and chunks/s of a
1,000-token stream with no pacing (the engine writes as fast as it can: the path is the
bottleneck), and requests/s at concurrency 16. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.support import netns  # noqa: E402
from tests.support.scripted import start_scripted  # noqa: E402

from corral.hosts.ssh import SshClient, SshTarget  # noqa: E402
from corral.runtime.ports import free_port  # noqa: E402

REMOTE_PORT = 18000
CHAT = "/v1/chat/completions"


def start_remote_engine(host: netns.NetnsHost, *args: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "tests.support.scripted_engine", "--host", "0.0.0.0"]
    proc = subprocess.Popen(
        host.exec_argv([*argv, "--port", str(REMOTE_PORT), *args]),
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'src'}", "PATH": "/usr/bin:/bin"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        raise RuntimeError(f"remote scripted engine did not start: {line!r}")
    return proc


def body(tokens: int, stream: bool) -> bytes:
    messages = [{"role": "user", "content": "hi"}]
    data = {"model": "scripted", "messages": messages, "max_tokens": tokens, "stream": stream}
    return json.dumps(data).encode()


async def one(session: aiohttp.ClientSession, url: str) -> float:
    start = time.perf_counter()
    async with session.post(url + CHAT, data=body(1, False), headers=HEADERS) as response:
        await response.read()
        assert response.status == 200, response.status
    return time.perf_counter() - start


async def one_stream(session: aiohttp.ClientSession, url: str) -> tuple[float, float]:
    """(time to first chunk, chunks per second) of one unpaced 1,000-token stream."""
    start = time.perf_counter()
    first, chunks = 0.0, 0
    async with session.post(url + CHAT, data=body(1000, True), headers=HEADERS) as response:
        async for line in response.content:
            if line.startswith(b"data: {"):
                chunks += 1
                first = first or time.perf_counter() - start
    return first, chunks / (time.perf_counter() - start)


async def concurrent(session: aiohttp.ClientSession, url: str, n: int, width: int) -> float:
    start = time.perf_counter()
    for _ in range(n // width):
        await asyncio.gather(*(one(session, url) for _ in range(width)))
    return n / (time.perf_counter() - start)


HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-engine-key"}


async def measure(urls: dict[str, str], rounds: int, streams: int) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        for url in urls.values():  # warm every path's connections
            await concurrent(session, url, 32, 16)
        latency: dict[str, list[float]] = {name: [] for name in urls}
        for index in range(rounds):
            order = list(urls.items())
            order = order[index % len(order) :] + order[: index % len(order)]
            for name, url in order:
                latency[name].append(await one(session, url))
        stream: dict[str, list[tuple[float, float]]] = {name: [] for name in urls}
        for _ in range(streams):
            for name, url in urls.items():
                stream[name].append(await one_stream(session, url))
        rate = {name: await concurrent(session, url, 320, 16) for name, url in urls.items()}
    figures = {name: _figures(latency[name], stream[name], rate[name]) for name in urls}
    return dict(figures)


def _figures(
    latency: list[float], stream: list[tuple[float, float]], rate: float
) -> dict[str, float]:
    ms = np.array(latency) * 1000
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "stream_ttfc_ms": float(np.median([s[0] for s in stream]) * 1000),
        "stream_chunks_per_s": float(np.median([s[1] for s in stream])),
        "c16_requests_per_s": rate,
    }


def ssh_commands(ssh: SshClient, n: int = 30) -> dict[str, float]:
    """Median ms of `true` over the master vs with a fresh connection (ControlPath=none)."""
    fresh = [*ssh.argv(["true"])]
    fresh[fresh.index(f"ControlPath={ssh.control_path}")] = "ControlPath=none"
    timings: dict[str, list[float]] = {"direct_ms": [], "multiplexed_ms": []}
    for _ in range(n):
        for name, argv in (("direct_ms", fresh), ("multiplexed_ms", ssh.argv(["true"]))):
            start = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True)
            timings[name].append((time.perf_counter() - start) * 1000)
    return {name: float(np.median(values)) for name, values in timings.items()}


def print_table(result: dict[str, Any]) -> None:
    """One row per path; the ssh master's CPU seconds over the whole forward run below."""
    keys = ["p50_ms", "p99_ms", "stream_ttfc_ms", "stream_chunks_per_s", "c16_requests_per_s"]
    print(f"{'path':10}" + "".join(f"{k:>22}" for k in keys))
    for name in ("local", "private", "forward"):
        figures = result[name]
        print(f"{name:10}" + "".join(f"{figures[k]:>22.2f}" for k in keys))
    cpu = result["forward"]["ssh_master_cpu_s"]
    print(f"ssh master CPU over the forward path's requests: {cpu:.2f} s")
    commands = result["ssh_commands"]
    print(
        f"ssh command `true`: {commands['direct_ms']:.1f} ms with a new connection each, "
        f"{commands['multiplexed_ms']:.1f} ms over the master (medians)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--streams", type=int, default=20)
    args = parser.parse_args()
    reason = netns.available()
    if reason:
        print(f"cannot run: {reason}")
        return 2
    work = Path(tempfile.mkdtemp(prefix="crl-bench-"))
    fleet = netns.create_fleet(["pegasus"], work)
    local = start_scripted("--tokens", "1000")
    remote = None
    ssh = None
    try:
        host = fleet.hosts["pegasus"]
        remote = start_remote_engine(host, "--tokens", "1000")
        target = SshTarget(
            "pegasus",
            host.address,
            user="root",
            key=fleet.client_key,
            known_hosts=fleet.known_hosts,
        )
        ssh = SshClient(target, work / "cm")
        port = free_port()
        ssh.forward(port, REMOTE_PORT)
        urls = {
            "local": local.base_url,
            "private": f"http://{host.address}:{REMOTE_PORT}",
            "forward": f"http://127.0.0.1:{port}",
        }
        master = psutil.Process(ssh.master_pid() or 0)
        cpu_before = sum(master.cpu_times()[:2])
        result = asyncio.run(measure(urls, args.rounds, args.streams))
        result["forward"]["ssh_master_cpu_s"] = sum(master.cpu_times()[:2]) - cpu_before
        result["ssh_commands"] = ssh_commands(ssh)
    finally:
        if ssh is not None:
            ssh.close()
        if remote is not None:
            remote.kill()
            remote.wait()
        local.stop()
        netns.destroy_fleet(fleet)
    print_table(result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
