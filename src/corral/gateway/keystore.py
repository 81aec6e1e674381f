"""API keys kept in the ledger (table `api_keys`, migration 0004): hashed, shown once.

    store = KeyStore(open_ledger(ledger_path(home)))
    created = store.create("ci", models=["default"])   # created.key is shown once, never stored
    store.active_keys()                                # what the gateway checks against
    store.revoke("ci")

A key is `crl-` followed by 43 URL-safe characters (256 random bits). Only its sha256 and
its first 8 characters (to tell keys apart in `corral keys list`) are stored. A running
gateway re-reads active keys at most once a second, so a revocation takes effect within
about a second without a restart.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from corral.errors import ConfigError
from corral.gateway.auth import KeyRecord, hash_key
from corral.ledger.db import Ledger

KEY_PREFIX = "crl-"
SHOWN_PREFIX_CHARS = 8


@dataclass(frozen=True)
class StoredKey:
    """A key as `corral keys list` shows it (never the key itself)."""

    name: str
    prefix: str
    models: tuple[str, ...]
    created_at: float
    revoked_at: float | None


@dataclass(frozen=True)
class CreatedKey:
    """The result of `create`: the only time the plain key exists outside the caller."""

    name: str
    key: str
    models: tuple[str, ...]


class KeyStore:
    """Repository functions over `api_keys`."""

    def __init__(self, ledger: Ledger, clock: Callable[[], float] = time.time) -> None:
        self.ledger = ledger
        self.clock = clock

    def create(self, name: str, models: Sequence[str] = ()) -> CreatedKey:
        """A new key named `name`, scoped to `models` (empty: all). ConfigError if taken."""
        if not name.strip():
            raise ConfigError("a key needs a name: corral keys create --name NAME")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        try:
            with self.ledger.transaction() as conn:
                conn.execute(
                    "INSERT INTO api_keys (name, sha256, prefix, models_json, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (name, hash_key(key), key[:SHOWN_PREFIX_CHARS], json.dumps(list(models)),
                     self.clock()),
                )  # fmt: skip
        except sqlite3.IntegrityError:
            raise ConfigError(
                f"an active key named {name!r} already exists",
                hint=f"pick another name, or `corral keys revoke {name}` first",
            ) from None
        return CreatedKey(name, key, tuple(models))

    def revoke(self, name: str) -> None:
        """Revoke the active key called `name`; ConfigError naming the active keys if none."""
        with self.ledger.transaction() as conn:
            cursor = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                (self.clock(), name),
            )
        if cursor.rowcount == 0:
            active = ", ".join(k.name for k in self.listed() if k.revoked_at is None) or "none"
            raise ConfigError(f"no active key named {name!r} (active keys: {active})")

    def listed(self, *, include_revoked: bool = False) -> list[StoredKey]:
        sql = "SELECT name, prefix, models_json, created_at, revoked_at FROM api_keys"
        if not include_revoked:
            sql += " WHERE revoked_at IS NULL"
        rows = self.ledger.conn.execute(sql + " ORDER BY created_at").fetchall()
        return [
            StoredKey(r["name"], r["prefix"], tuple(json.loads(r["models_json"])),
                      r["created_at"], r["revoked_at"])
            for r in rows
        ]  # fmt: skip

    def active_keys(self) -> list[KeyRecord]:
        """What the gateway checks presented keys against (KeySource protocol)."""
        rows = self.ledger.conn.execute(
            "SELECT name, sha256, models_json FROM api_keys WHERE revoked_at IS NULL"
        ).fetchall()
        return [
            KeyRecord(r["name"], r["sha256"], tuple(json.loads(r["models_json"]))) for r in rows
        ]

    def ever_keyed(self) -> bool:
        """Whether any key, revoked or not, was ever created (a locked gateway stays locked)."""
        return self.ledger.conn.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None

    def counts(self) -> tuple[int, int]:
        """(active, revoked) keys, for `corral status`."""
        row = self.ledger.conn.execute(
            "SELECT COUNT(*) - COUNT(revoked_at) AS active, COUNT(revoked_at) AS revoked "
            "FROM api_keys"
        ).fetchone()
        return int(row["active"]), int(row["revoked"])
