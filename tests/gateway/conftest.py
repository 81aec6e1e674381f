"""Fixtures for gateway tests: scripted engines as real subprocesses, gateways on free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from corral.config import Capabilities, GatewaySettings, Limits, Role, Timeouts
from corral.fleet import Policy, Replica, StaticFleet
from corral.gateway import GatewayServer
from tests.support.scripted import RunningEngine, start_scripted

StartEngine = Callable[..., RunningEngine]
Served = tuple[Policy, Replica]


@pytest.fixture
def engines() -> Iterator[StartEngine]:
    """Start scripted engines (args as for the CLI); all are stopped after the test."""
    started: list[RunningEngine] = []

    def start(*args: str, model: str = "scripted") -> RunningEngine:
        engine = start_scripted(*args, model=model)
        started.append(engine)
        return engine

    yield start
    for engine in started:
        engine.stop()


def replica(
    engine: RunningEngine | str,
    *,
    rid: str | None = None,
    name: str = "scripted",
    aliases: tuple[str, ...] = (),
    roles: tuple[str, ...] = (),
    routable: bool = True,
    limits: Limits | None = None,
    timeouts: Timeouts | None = None,
    capabilities: Capabilities | None = None,
) -> Served:
    """A routable replica for an engine (or a base URL, e.g. one nothing listens on), with
    its deployment's policy."""
    base_url = engine if isinstance(engine, str) else engine.base_url
    policy = Policy(
        name, aliases=aliases, roles=roles, capabilities=capabilities or Capabilities(),
        limits=limits or Limits(), timeouts=timeouts,
    )  # fmt: skip
    state = "ready" if routable else "starting"
    return policy, Replica(rid or base_url, name, base_url, routable=routable, state=state)


class Gateways:
    """Starts GatewayServers on free loopback ports and stops them all at the end."""

    def __init__(self) -> None:
        self.servers: list[GatewayServer] = []

    async def start(
        self,
        replicas: list[Served],
        *,
        roles: dict[str, Role] | None = None,
        key_store: Any = None,
        **settings: Any,
    ) -> GatewayServer:
        server = GatewayServer(
            StaticFleet.of(replicas),
            GatewaySettings(**settings),
            roles=roles,
            key_store=key_store,
            port=0,
        )
        await server.start()
        self.servers.append(server)
        return server


@pytest.fixture
async def gateways() -> AsyncIterator[Gateways]:
    running = Gateways()
    yield running
    for server in running.servers:
        await server.stop()
