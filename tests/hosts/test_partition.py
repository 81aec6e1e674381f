"""A host drops out of a two-host fleet and comes back: routing follows, nothing restarts.

Replicas of one served name run on pegasus and venus (scripted engines started over SSH,
bound to each host's loopback, reached through SSH forwards); the gateway runs here in the
root namespace. Partitioning venus makes its replica unroutable within seconds (the SSH
master's keep-alives), a stream in flight through it ends with an error event instead of
hanging, the engine keeps running there; healing routes to the same engine (same pid)
again. The times are printed (pytest -s) and bounded generously: figures belong to
scripts, this checks the behaviour.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from corral.config import GatewaySettings
from corral.fleet import DeploymentView, Policy, Replica
from corral.gateway import GatewayServer
from corral.hosts.sshhost import SshHost
from corral.hosts.watch import HostWatch
from tests.hosts.conftest import SCRIPTED, SCRIPTED_ENV, ssh_host
from tests.support import netns

pytestmark = pytest.mark.timeout(180)
NAME = "scripted"


@dataclass
class WatchedFleet:
    """Replicas whose routability follows the host watcher (what the supervisor publishes)."""

    watch: HostWatch
    placed: list[tuple[str, Replica]]

    def deployments(self) -> Sequence[DeploymentView]:
        replicas = tuple(replace(r, routable=self.watch.up(host)) for host, r in self.placed)
        return [DeploymentView(Policy(NAME), replicas)]


def start_engine(host: SshHost, tmp: Path, *args: str) -> tuple[int, int]:
    """A scripted engine on `host`'s loopback; (its wrapper pid, the local forward port)."""
    port = host.free_port()
    argv = [*SCRIPTED, "--port", str(port), *args]
    spawned = host.spawn(argv, SCRIPTED_ENV, tmp / f"run-{host.name}" / "engine.log", outlive=True)
    local = host.reach(port)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{local}/health", timeout=1).status_code == 200:
                return spawned.pid, local
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"the scripted engine on {host.name} did not come up")


async def wait_for(condition: object, limit: float) -> float:
    start = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - start < limit, "condition not met in time"
        await asyncio.sleep(0.1)
    return time.monotonic() - start


async def stream_text(client: httpx.AsyncClient, url: str) -> str:
    body = {
        "model": NAME,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "max_tokens": 400,
    }
    text = ""
    async with client.stream("POST", url, json=body) as reply:
        async for chunk in reply.aiter_text():
            text += chunk
    return text


def test_partition_and_heal(netns_fleet: netns.NetnsFleet, tmp_path: Path) -> None:
    pegasus, venus = (
        ssh_host(netns_fleet, "pegasus", tmp_path),
        ssh_host(netns_fleet, "venus", tmp_path),
    )
    started: list[tuple[SshHost, int]] = []
    try:
        asyncio.run(_scenario(netns_fleet, pegasus, venus, tmp_path, started))
    finally:
        netns_fleet.heal("venus")
        for host, pid in started:
            host.relink()
            host.signal_group(pid, signal.SIGKILL)
        pegasus.close()
        venus.close()


async def _scenario(
    fleet: netns.NetnsFleet,
    pegasus: SshHost,
    venus: SshHost,
    tmp: Path,
    started: list[tuple[SshHost, int]],
) -> None:
    slow = ("--itl", "0.05", "--tokens", "400")
    p_pid, p_port = start_engine(pegasus, tmp, *slow)
    started.append((pegasus, p_pid))
    v_pid, v_port = start_engine(venus, tmp, *slow)
    started.append((venus, v_pid))
    watch = HostWatch({"pegasus": pegasus, "venus": venus}, poll=0.2, retry=0.5)
    placed = [
        ("pegasus", Replica("p", NAME, f"http://127.0.0.1:{p_port}", routable=True, state="ready")),
        ("venus", Replica("v", NAME, f"http://127.0.0.1:{v_port}", routable=True, state="ready")),
    ]
    server = GatewayServer(WatchedFleet(watch, placed), GatewaySettings(), port=0)
    await server.start()
    watcher = asyncio.create_task(watch.run())
    url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            in_flight = [asyncio.create_task(stream_text(client, url)) for _ in range(4)]
            await asyncio.sleep(1.0)
            fleet.partition("venus")
            cut = time.monotonic()
            unroutable = await wait_for(lambda: not watch.up("venus"), 15)
            print(f"\npartition → venus unroutable: {unroutable:.1f} s")
            texts = await asyncio.wait_for(asyncio.gather(*in_flight), 60)
            assert any('"error"' in t for t in texts), (
                "a stream through venus ends with an error event"
            )
            assert time.monotonic() - cut < 30
            during = await client.post(
                url,
                json={
                    "model": NAME,
                    "messages": [{"role": "user", "content": "x"}],
                    "max_tokens": 1,
                },
            )
            assert during.status_code == 200, "pegasus alone still serves the name"
            fleet.heal("venus")
            routed = await wait_for(lambda: watch.up("venus"), 20)
            print(f"heal → venus routed again: {routed:.1f} s")
        assert venus.alive(v_pid, None), "the engine on venus kept running (same pid)"
        reply = httpx.get(f"http://127.0.0.1:{v_port}/health", timeout=5)
        assert reply.status_code == 200, "the same local port reaches it again"
        assert [c[2] for c in watch.changes if c[1] == "venus"] == ["down", "up"]
    finally:
        watcher.cancel()
        await server.stop()
