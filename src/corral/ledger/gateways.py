"""Where `corral serve`'s gateway listens (table `gateways`, migration 0015).

    gateway_id = opened(ledger, "http://127.0.0.1:8000", ["smollm2-135m-instruct"])
    live_gateway(ledger, "smollm2-135m-instruct")   # -> LiveGateway(base_url=...) or None
    closed(ledger, gateway_id)

A row is live while `ended_at` is unset AND its pid is still the process that wrote it
(same start time): a `corral serve` killed with SIGKILL leaves its row open, and must not
send `corral verify NAME` to a port nobody listens on.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from corral.ledger.db import Ledger
from corral.runtime.detached import alive, started_at


@dataclass(frozen=True)
class LiveGateway:
    id: int
    base_url: str
    served: tuple[str, ...]


def opened(ledger: Ledger, base_url: str, served: list[str], *, pid: int | None = None) -> int:
    """Record a gateway that now listens at `base_url`; its id (for `closed`)."""
    pid = os.getpid() if pid is None else pid
    with ledger.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO gateways (base_url, pid, pid_started_at, served_json, started_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (base_url, pid, started_at(pid), json.dumps(served), time.time()),
        )
    return int(cur.lastrowid or 0)


def closed(ledger: Ledger, gateway_id: int) -> None:
    with ledger.transaction() as conn:
        conn.execute("UPDATE gateways SET ended_at = ? WHERE id = ?", (time.time(), gateway_id))


def live_gateway(ledger: Ledger, served_name: str | None = None) -> LiveGateway | None:
    """The newest gateway still listening (routing `served_name`, when given)."""
    rows = ledger.conn.execute(
        "SELECT id, base_url, pid, pid_started_at, served_json FROM gateways "
        "WHERE ended_at IS NULL ORDER BY started_at DESC"
    ).fetchall()
    for row in rows:
        served = tuple(json.loads(row["served_json"]))
        if served_name is not None and served_name not in served:
            continue
        if alive(int(row["pid"]), row["pid_started_at"]):
            return LiveGateway(int(row["id"]), str(row["base_url"]), served)
    return None
