"""The real vLLM CPU engine on another host (a namespace host over SSH), three ways to reach it.

    sudo .venv/bin/python scripts/bench_remote_vllm.py [--rounds 60] [--streams 6]

Needs root (tests/support/netns.py makes the host, with a real sshd) and the default model
in the test home (`corral models pull smollm2`). Holds /tmp/corral-vllm.lock while the
engine runs, as every real-engine run on this machine must.

The engine is spawned on `stella` through `SshHost` (the wrapper, the env file, the run's
log), its startup followed over SSH and read by corral's vLLM parser as it happens (the
phases are printed live, with their times), then reached by the same client three ways,
interleaved in every round:

  direct    the engine at stella's private address (bound 0.0.0.0 inside the namespace for
            this measurement only): no SSH, no gateway — the "local engine" baseline
  forward   through the SSH forward to stella's loopback, no gateway
  gateway   corral's gateway (its own process, here) → the SSH forward → the engine

Figures: non-streamed 1-token latency p50/p99, and a 48-token stream's time to first
token and tokens/s (median). "Gateway overhead through the SSH path" = gateway − direct.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.support import netns  # noqa: E402

from corral.engines import engine_for  # noqa: E402
from corral.engines.base import Phase  # noqa: E402
from corral.hosts.ssh import SshClient, SshTarget  # noqa: E402
from corral.hosts.sshhost import SshHost  # noqa: E402
from corral.store import default_model  # noqa: E402

NAME = "smollm2-135m-instruct"
STREAM_TOKENS = 48
CHAT = "/v1/chat/completions"
GATEWAY = """
import asyncio, sys
from corral.config import GatewaySettings
from corral.fleet import Policy, Replica, StaticFleet
from corral.gateway import GatewayServer
async def main():
    replica = Replica(id="r", served_name=sys.argv[1], base_url=sys.argv[2], routable=True)
    fleet = StaticFleet.of([(Policy(sys.argv[1]), replica)])
    server = GatewayServer(fleet, GatewaySettings(), port=0)
    await server.start()
    print(f"READY port={server.port}", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def model_path() -> Path:
    home = Path(os.environ.get("CORRAL_TEST_HOME", ROOT / ".corral" / "test-home"))
    found = default_model.existing_snapshot(default_model.SMOLLM2, home / "models")
    if found is None:
        raise SystemExit("the default model is not in the test home: corral models pull smollm2")
    return found


def engine_argv(model: Path, port: int) -> list[str]:
    return [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
        "--served-model-name", NAME, "--host", "0.0.0.0", "--port", str(port),
        "--max-model-len", "2048", "--enforce-eager",
    ]  # fmt: skip


ENGINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
}


def follow_startup(host: SshHost, log: Path, pid: int, url: str, timeout: float) -> float:
    """Print the engine's phases live (corral's vLLM parser over the SSH-followed log)."""
    parser = engine_for("vllm").parser()
    started = time.monotonic()
    deadline = started + timeout

    def keep_going() -> bool:
        if time.monotonic() > deadline or not host.alive(pid, None):
            return False
        return not _healthy(url)

    for line in host.follow(log, keep_going):
        for event in parser.feed(line):
            if isinstance(event, Phase):
                print(f"  {time.monotonic() - started:6.1f} s  phase {event.name}")
    if not _healthy(url):
        raise SystemExit(
            f"the engine did not become healthy:\n{Path(host.remote_path(log)).read_text()[-2000:]}"
        )
    return time.monotonic() - started


def _healthy(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def body(tokens: int, stream: bool, model: str = NAME) -> bytes:
    messages = [{"role": "user", "content": "Write a story about a lighthouse."}]
    data = {"model": model, "messages": messages, "max_tokens": tokens, "stream": stream}
    data |= {"temperature": 0, "ignore_eos": True}
    return json.dumps(data).encode()


HEADERS = {"Content-Type": "application/json"}


async def one(session: aiohttp.ClientSession, url: str, model: str = NAME) -> float:
    start = time.perf_counter()
    async with session.post(url + CHAT, data=body(1, False, model), headers=HEADERS) as response:
        await response.read()
        assert response.status == 200, await response.text()
    return time.perf_counter() - start


async def one_stream(
    session: aiohttp.ClientSession, url: str, model: str = NAME
) -> tuple[float, float]:
    """(time to first token, tokens/s after it) of a STREAM_TOKENS-token stream."""
    start = time.perf_counter()
    first, tokens = 0.0, 0
    async with session.post(
        url + CHAT, data=body(STREAM_TOKENS, True, model), headers=HEADERS
    ) as response:
        async for line in response.content:
            if line.startswith(b"data: {") and b'"content":"' in line:
                tokens += 1
                first = first or time.perf_counter() - start
    total = time.perf_counter() - start
    return first, (tokens - 1) / (total - first) if total > first else 0.0


async def measure(
    urls: dict[str, str], rounds: int, streams: int, models: dict[str, str] | None = None
) -> dict[str, Any]:
    """Each path's figures, the paths interleaved in every round (rotating who goes
    first); `models`: the model name to ask on a path (default NAME)."""
    model = {name: (models or {}).get(name, NAME) for name in urls}
    async with aiohttp.ClientSession() as session:
        for name, url in urls.items():
            await one(session, url, model[name])
        latency: dict[str, list[float]] = {name: [] for name in urls}
        stream: dict[str, list[tuple[float, float]]] = {name: [] for name in urls}
        for index in range(rounds):
            order = list(urls.items())
            order = order[index % len(order) :] + order[: index % len(order)]
            for name, url in order:
                latency[name].append(await one(session, url, model[name]))
        for name, values in latency.items():
            print(f"  {name:8} 1-token p50 {np.percentile(values, 50) * 1000:.2f} ms", flush=True)
        for _ in range(streams):
            for name, url in urls.items():
                stream[name].append(await one_stream(session, url, model[name]))
    return {
        name: {
            "p50_ms": float(np.percentile(np.array(latency[name]) * 1000, 50)),
            "p99_ms": float(np.percentile(np.array(latency[name]) * 1000, 99)),
            "ttft_ms": float(np.median([s[0] for s in stream[name]]) * 1000),
            "tokens_per_s": float(np.median([s[1] for s in stream[name]])),
        }
        for name in urls
    }


def start_gateway(upstream: str) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", GATEWAY, NAME, upstream], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        raise SystemExit(f"gateway did not start: {line!r}")
    return proc, int(line.split("=")[1])


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    fleet = netns.create_fleet(["stella"], work)
    gateway = None
    host = None
    spawned = None
    try:
        stella = fleet.hosts["stella"]
        target = SshTarget(
            "stella",
            stella.address,
            user="root",
            key=fleet.client_key,
            known_hosts=fleet.known_hosts,
        )
        host = SshHost(SshClient(target, work / "cm"), run_dir=str(work / "runs"))
        port = host.free_port()
        log = work / "run-1" / "engine.log"
        spawned = host.spawn(engine_argv(model_path(), port), ENGINE_ENV, log, outlive=True)
        direct = f"http://{stella.address}:{port}"
        print(f"vLLM spawned on stella (pid {spawned.pid}); following its log over SSH:")
        startup = follow_startup(host, log, spawned.pid, direct, 300)
        forward = f"http://127.0.0.1:{host.reach(port)}"
        gateway, gw_port = start_gateway(forward)
        urls = {"direct": direct, "forward": forward, "gateway": f"http://127.0.0.1:{gw_port}"}
        result = asyncio.run(measure(urls, args.rounds, args.streams))
        result["startup_s"] = startup
        return result
    finally:
        if gateway is not None:
            gateway.kill()
            gateway.wait()
        if host is not None and spawned is not None:
            host.signal_group(spawned.pid, signal.SIGTERM)
            time.sleep(3)
            host.signal_group(spawned.pid, signal.SIGKILL)
            host.close()
        netns.destroy_fleet(fleet)


def run_locked(
    work: Callable[[argparse.Namespace, Path], dict[str, Any]],
    args: argparse.Namespace,
    prefix: str,
) -> dict[str, Any] | None:
    """`work(args, folder)` under /tmp/corral-vllm.lock (one vLLM on this machine at a
    time), a SIGTERM ending it like Ctrl-C (so the engine and the hosts are removed); None
    when namespace hosts can't be made here."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    reason = netns.available()
    if reason:
        print(f"cannot run: {reason}")
        return None
    with open("/tmp/corral-vllm.lock", "w") as lock:
        print("waiting for /tmp/corral-vllm.lock ...", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
        return work(args, Path(tempfile.mkdtemp(prefix=prefix)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--streams", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=48)
    args = parser.parse_args()
    global STREAM_TOKENS  # noqa: PLW0603  (a command-line setting for the stream phase)
    STREAM_TOKENS = args.tokens
    result = run_locked(run, args, "crl-vllm-")
    if result is None:
        return 2
    print(f"startup to healthy, followed over SSH: {result.pop('startup_s'):.1f} s")
    print(f"{'path':10}{'p50 ms':>10}{'p99 ms':>10}{'TTFT ms':>10}{'tok/s':>10}")
    for name, f in result.items():
        print(
            f"{name:10}{f['p50_ms']:>10.2f}{f['p99_ms']:>10.2f}{f['ttft_ms']:>10.1f}{f['tokens_per_s']:>10.1f}"
        )
    added = result["gateway"]["p50_ms"] - result["direct"]["p50_ms"]
    print(f"gateway over the SSH path adds {added:.2f} ms p50 to a 1-token request vs direct")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
