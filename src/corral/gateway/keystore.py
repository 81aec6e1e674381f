"""API keys kept in the ledger (table `api_keys`, migration 0004): hashed, shown once.

    store = KeyStore(open_ledger(ledger_path(home)))
    created = store.create("ci", models=["default"])   # created.key is shown once, never stored
    store.active_keys()                                # what the gateway checks against
    store.rotate("ci", overlap=3600)                   # a new key; the old one works 1 h more
    store.revoke("ci")

Keys may carry limits (KeyLimits: requests/tokens per minute, tokens per day, concurrent)
and an expiry; an expired key stops working within a second, like a revoked one. Rotation
(migration 0011) marks the old key superseded and gives it `expires_at = now + overlap`,
so clients can switch over without a gap.

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
from dataclasses import dataclass, field

from corral.config import KeyLimits
from corral.errors import ConfigError
from corral.gateway.auth import KeyRecord, hash_key
from corral.gateway.ratelimit import limited
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
    limits: KeyLimits = field(default_factory=KeyLimits)
    expires_at: float | None = None
    superseded_at: float | None = None


@dataclass(frozen=True)
class CreatedKey:
    """The result of `create`: the only time the plain key exists outside the caller."""

    name: str
    key: str
    models: tuple[str, ...]
    limits: KeyLimits = field(default_factory=KeyLimits)
    expires_at: float | None = None


class KeyStore:
    """Repository functions over `api_keys`."""

    def __init__(self, ledger: Ledger, clock: Callable[[], float] = time.time) -> None:
        self.ledger = ledger
        self.clock = clock

    def create(
        self,
        name: str,
        models: Sequence[str] = (),
        *,
        limits: KeyLimits | None = None,
        expires_in: float | None = None,
    ) -> CreatedKey:
        """A new key named `name`, scoped to `models` (empty: all). ConfigError if taken."""
        if not name.strip():
            raise ConfigError("a key needs a name: corral keys create --name NAME")
        with self.ledger.transaction() as conn:
            return self._insert(conn, name, models, limits or KeyLimits(), expires_in)

    def _insert(
        self,
        conn: sqlite3.Connection,
        name: str,
        models: Sequence[str],
        limits: KeyLimits,
        expires_in: float | None,
    ) -> CreatedKey:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        expires_at = None if expires_in is None else now + expires_in
        try:
            conn.execute(
                "INSERT INTO api_keys (name, sha256, prefix, models_json, created_at, "
                "limits_json, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    hash_key(key),
                    key[:SHOWN_PREFIX_CHARS],
                    json.dumps(list(models)),
                    now,
                    limits.model_dump_json(exclude_none=True),
                    expires_at,
                ),
            )
        except sqlite3.IntegrityError:
            raise ConfigError(
                f"an active key named {name!r} already exists",
                hint=f"pick another name, `corral keys rotate {name}`, or "
                f"`corral keys revoke {name}` first",
            ) from None
        return CreatedKey(name, key, tuple(models), limits, expires_at)

    def rotate(self, name: str, overlap: float) -> CreatedKey:
        """A new key for `name` with the same scope and limits; the old one works `overlap` s."""
        now = self.clock()
        with self.ledger.transaction() as conn:
            row = conn.execute(
                "SELECT id, models_json, limits_json, expires_at FROM api_keys "
                "WHERE name = ? AND revoked_at IS NULL AND superseded_at IS NULL",
                (name,),
            ).fetchone()
            if row is None:
                raise self._no_key(name)
            ends = (
                now + overlap
                if row["expires_at"] is None
                else min(row["expires_at"], now + overlap)
            )
            conn.execute(
                "UPDATE api_keys SET superseded_at = ?, expires_at = ? WHERE id = ?",
                (now, ends, row["id"]),
            )
            limits = KeyLimits.model_validate_json(row["limits_json"])
            return self._insert(conn, name, json.loads(row["models_json"]), limits, None)

    def revoke(self, name: str) -> None:
        """Revoke the active key called `name`; ConfigError naming the active keys if none."""
        with self.ledger.transaction() as conn:
            cursor = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                (self.clock(), name),
            )
        if cursor.rowcount == 0:
            raise self._no_key(name)

    def _no_key(self, name: str) -> ConfigError:
        active = ", ".join(k.name for k in self.listed() if k.revoked_at is None) or "none"
        return ConfigError(f"no active key named {name!r} (active keys: {active})")

    def listed(self, *, include_revoked: bool = False) -> list[StoredKey]:
        sql = (
            "SELECT name, prefix, models_json, created_at, revoked_at, limits_json, expires_at, "
            "superseded_at FROM api_keys"
        )
        if not include_revoked:
            sql += " WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)"
        args = () if include_revoked else (self.clock(),)
        rows = self.ledger.conn.execute(sql + " ORDER BY created_at", args).fetchall()
        return [
            StoredKey(
                r["name"],
                r["prefix"],
                tuple(json.loads(r["models_json"])),
                r["created_at"],
                r["revoked_at"],
                KeyLimits.model_validate_json(r["limits_json"]),
                r["expires_at"],
                r["superseded_at"],
            )
            for r in rows
        ]

    def active_keys(self) -> list[KeyRecord]:
        """What the gateway checks presented keys against (KeySource protocol)."""
        rows = self.ledger.conn.execute(
            "SELECT name, sha256, models_json, limits_json FROM api_keys "
            "WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
            (self.clock(),),
        ).fetchall()
        return [
            KeyRecord(
                r["name"],
                r["sha256"],
                tuple(json.loads(r["models_json"])),
                limited(KeyLimits.model_validate_json(r["limits_json"])),
            )
            for r in rows
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
