"""corral's OpenAI-compatible gateway: the one thing that faces the network.

    from corral.gateway import GatewayServer
    server = GatewayServer(fleet, config.gateway, roles=config.roles)
    await server.start()   # PortInUseError if the port is taken
    await server.stop()

Modules, in request order: `app` (dispatch, auth, route, admit, account), `auth`,
`routing`, `limits`, `admission`, `balance` (least outstanding + circuit breaker),
`proxy` (failover, timeouts, relay), `sse` + `normalize` (stream rewriting), `metrics`,
`engine_metrics` (engines' and GPUs' metrics under /metrics), `errors` (the OpenAI error
shape), `keystore` (keys in the ledger), `server`; `ui/` is the web console at /ui.
"""

from corral.gateway.app import Gateway
from corral.gateway.server import GatewayServer, is_loopback, upstream_session

__all__ = ["Gateway", "GatewayServer", "is_loopback", "upstream_session"]
