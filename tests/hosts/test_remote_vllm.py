"""The real vLLM CPU engine as a process deployment on a namespace host, over SSH.

Started on stella through `SshHost` (its own session there, env in a mode-600 file), its
startup followed over SSH and read by corral's vLLM parser as it happens, bound to stella's
loopback and reached through the SSH forward, served by the gateway in the root namespace
and asked by the official `openai` SDK. Then stella is partitioned: the replica leaves
rotation, a client gets an answer at once (503, no hang), the engine keeps running; after
the heal it is routed again, the same process. Holds /tmp/corral-vllm.lock like every
real-engine test.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import openai
import pytest

from corral.config import GatewaySettings
from corral.engines import engine_for
from corral.engines.base import Phase
from corral.fleet import DeploymentView, Policy, Replica
from corral.gateway import GatewayServer
from corral.hosts.sshhost import SshHost
from corral.hosts.watch import HostWatch
from tests.hosts.conftest import ssh_host
from tests.support import netns

pytestmark = pytest.mark.timeout(2400)  # waiting for /tmp/corral-vllm.lock counts too
NAME = "smollm2-135m-instruct"
ENV = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}


class OneReplica:
    def __init__(self, watch: HostWatch, replica: Replica) -> None:
        self.watch, self.replica = watch, replica

    def deployments(self) -> list[DeploymentView]:
        replica = replace(self.replica, routable=self.watch.up("stella"))
        return [DeploymentView(Policy(NAME), (replica,))]


def start_vllm(host: SshHost, model: Path, log: Path) -> tuple[int, list[str], int]:
    """vLLM on the host's loopback; (its pid, the phases seen live, the local forward port)."""
    port = host.free_port()
    argv = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
        "--served-model-name", NAME, "--host", "127.0.0.1", "--port", str(port),
        "--max-model-len", "2048", "--enforce-eager",
    ]  # fmt: skip
    spawned = host.spawn(argv, ENV, log, outlive=True)
    local = host.reach(port)
    parser, phases = engine_for("vllm").parser(), []
    deadline = time.monotonic() + 400

    def starting() -> bool:
        return time.monotonic() < deadline and host.alive(spawned.pid, None) and not _healthy(local)

    for line in host.follow(log, starting):
        phases += [e.name for e in parser.feed(line) if isinstance(e, Phase)]
    assert _healthy(local), Path(host.remote_path(log)).read_text()[-3000:]
    return spawned.pid, phases, local


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_vllm_on_another_host_through_the_gateway_survives_a_partition(
    vllm_lock: None, default_model_path: Path, netns_fleet: netns.NetnsFleet, tmp_path: Path
) -> None:
    host = ssh_host(netns_fleet, "stella", tmp_path)
    pid = None
    try:
        pid, phases, local = start_vllm(host, default_model_path, tmp_path / "run-1" / "engine.log")
        assert {"load_weights", "kv_cache", "api_server"} <= set(phases), phases
        assert host.group(pid), "the engine's group lives on stella"
        asyncio.run(_serve_and_partition(netns_fleet, host, pid, local))
    finally:
        netns_fleet.heal("stella")
        if pid is not None:
            host.relink()
            host.signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while host.group(pid) and time.monotonic() < deadline:
                time.sleep(0.5)
            host.signal_group(pid, signal.SIGKILL)
        host.close()


async def _serve_and_partition(
    fleet: netns.NetnsFleet, host: SshHost, pid: int, local: int
) -> None:
    watch = HostWatch({"stella": host}, poll=0.2, retry=0.5)
    replica = Replica("stella", NAME, f"http://127.0.0.1:{local}", routable=True, state="ready")
    server = GatewayServer(OneReplica(watch, replica), GatewaySettings(), port=0)
    await server.start()
    watcher = asyncio.create_task(watch.run())
    sdk = openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{server.port}/v1", api_key="unused", max_retries=0, timeout=60
    )
    ask = {"model": NAME, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8}
    try:
        answer = await sdk.chat.completions.create(**ask)  # type: ignore[call-overload]
        assert answer.choices[0].message.content
        fleet.partition("stella")
        cut = time.monotonic()
        while watch.up("stella"):
            assert time.monotonic() - cut < 15, "stella should leave rotation within seconds"
            await asyncio.sleep(0.1)
        print(f"\npartition → unroutable: {time.monotonic() - cut:.1f} s")
        asked = time.monotonic()
        with pytest.raises(openai.APIStatusError) as caught:
            await sdk.chat.completions.create(**ask)  # type: ignore[call-overload]
        assert caught.value.status_code == 503
        assert time.monotonic() - asked < 5, "no client hangs on a partitioned host"
        fleet.heal("stella")
        healed = time.monotonic()
        while not watch.up("stella"):
            assert time.monotonic() - healed < 30
            await asyncio.sleep(0.1)
        print(f"heal → routed: {time.monotonic() - healed:.1f} s")
        again = await sdk.chat.completions.create(**ask)  # type: ignore[call-overload]
        assert again.choices[0].message.content
        assert host.alive(pid, None), "the same engine process answers after the heal"
    finally:
        watcher.cancel()
        await sdk.close()
        await server.stop()
