"""The web console at the gateway's `/ui` (docs/console.md).

`console.py` serves the routes, `sessions.py` trades a key for a cookie, `views.py` builds
each page's JSON, `actions.py` is the protocol through which it acts on the fleet. The
front end is `web/console/` (Preact + htm, bundled with esbuild into `static/app.js`,
committed; docs/decisions/0007-console-stack.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from corral.gateway.ui.actions import ConsoleActions, FleetActions, NoActions
from corral.ledger.db import Ledger


@dataclass(frozen=True)
class ConsoleSources:
    """What the console reads and acts through, handed to `GatewayServer(console=...)`."""

    ledger: Ledger | None = None
    actions: ConsoleActions | None = None


__all__ = ["ConsoleActions", "ConsoleSources", "FleetActions", "NoActions"]
