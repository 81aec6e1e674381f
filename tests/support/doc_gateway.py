"""A gateway in front of a running engine, recorded in a ledger as `corral serve` records
its own: what the runnable docs blocks talk to (tests/cli/test_docs_runnable.py).

    python -m tests.support.doc_gateway ENGINE_URL PORT HOME

It routes the engine as the default deployment (`smollm2-135m-instruct`, alias `default`),
reads keys from HOME's ledger, prints `ready URL` once listening, and runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from corral.config import GatewaySettings, default_deployment
from corral.fleet import Policy, Replica, StaticFleet
from corral.gateway import GatewayServer
from corral.gateway.keystore import KeyStore
from corral.ledger import gateways
from corral.ledger.db import open_ledger
from corral.paths import ledger_path


async def main(engine_url: str, port: int, home: Path) -> None:
    dep = default_deployment()
    policy = Policy(served_name=dep.name, aliases=tuple(dep.aliases), capabilities=dep.capabilities)
    replica = Replica(
        id="doc-0", served_name=dep.name, base_url=engine_url, routable=True, state="ready"
    )
    with open_ledger(ledger_path(home)) as ledger:
        server = GatewayServer(
            StaticFleet.of([(policy, replica)]),
            GatewaySettings(port=port),
            key_store=KeyStore(ledger),
        )
        await server.start()
        row = gateways.opened(ledger, server.url, [dep.name])
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print(f"ready {server.url}", flush=True)
        try:
            await stop.wait()
        finally:
            await server.stop()
            gateways.closed(ledger, row)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])))
