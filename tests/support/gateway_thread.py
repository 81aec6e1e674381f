"""A real GatewayServer on its own thread and event loop, for synchronous clients.

The official SDKs' sync clients (openai, anthropic, LangChain, LiteLLM) block the calling
thread, so the gateway they talk to cannot share the test's event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from corral.config import GatewaySettings
from corral.fleet import Policy, Replica, StaticFleet
from corral.gateway import GatewayServer


@contextmanager
def gateway_thread(
    replicas: list[tuple[Policy, Replica]], settings: GatewaySettings, **kwargs: Any
) -> Iterator[GatewayServer]:
    loop = asyncio.new_event_loop()
    server = GatewayServer(StaticFleet.of(replicas), settings, port=0, **kwargs)
    thread = threading.Thread(target=loop.run_forever, name="gateway", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
