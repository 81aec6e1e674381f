"""API keys: who is calling, and which models they may use.

Keys come from two places: the config (`gateway.api_keys`, each the key itself or its
sha256) and the key store (`corral keys create`, only the sha256 is kept). A request
presents its key as `Authorization: Bearer <key>` or `x-api-key: <key>` (Anthropic
clients). The presented key is hashed once and compared with every known hash using
`hmac.compare_digest`, without stopping at a match, so timing does not tell how far a
guess got. Auth is on as soon as one key exists in either place, and stays on: revoking the last key
locks the gateway rather than opening it. `required=True` (a gateway bound beyond loopback)
turns it on even with no key at all.

Keys never reach logs: config keys are SecretStr and are hashed at construction; the
plain key of a request lives only in this module's locals.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from corral.config import ApiKey, KeyLimits
from corral.gateway.errors import HttpError
from corral.gateway.ratelimit import limited


@dataclass(frozen=True)
class KeyRecord:
    """A key as the gateway holds it: a name, the sha256 hex digest, and its scope."""

    name: str
    sha256: str
    models: tuple[str, ...] = ()
    limits: KeyLimits | None = None


@dataclass(frozen=True)
class Principal:
    """The caller. `scopes` empty means every model; `name` is "" when auth is off.

    `limits` is None for a key without limits (ratelimit.limited), so the hot path tests
    one attribute."""

    name: str
    scopes: frozenset[str] = frozenset()
    limits: KeyLimits | None = None

    def may_use(self, *names: str) -> bool:
        return not self.scopes or any(n in self.scopes for n in names)


ANONYMOUS = Principal("")


class KeySource(Protocol):
    """Where stored keys come from (the SQLite key store, or a list in tests)."""

    def active_keys(self) -> Sequence[KeyRecord]: ...


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def config_records(keys: Sequence[ApiKey]) -> list[KeyRecord]:
    """Config keys as records: the secret is hashed here and not kept."""
    records = []
    for entry in keys:
        if entry.key is not None:
            digest = hash_key(entry.key.get_secret_value())
        elif entry.sha256:
            digest = entry.sha256.lower()
        else:
            continue
        records.append(KeyRecord(entry.name, digest, tuple(entry.models), limited(entry.limits)))
    return records


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key from `Authorization: Bearer` or `x-api-key`, if any."""
    auth = headers.get("Authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return headers.get("x-api-key") or None


class Authenticator:
    """Checks keys against config and store; re-reads the store at most every `refresh` s."""

    def __init__(
        self,
        config_keys: Sequence[ApiKey],
        store: KeySource | None,
        *,
        clock: Callable[[], float],
        refresh: float = 1.0,
        required: bool = False,
    ) -> None:
        self._config = config_records(config_keys)
        self._store = store
        self._clock = clock
        self._refresh = refresh
        self._loaded_at = float("-inf")
        self._records: list[KeyRecord] = list(self._config)
        self._required = required or bool(self._config) or ever_keyed(store)

    def records(self) -> list[KeyRecord]:
        """Config keys plus the store's active keys (revocations show within `refresh`)."""
        if self._store is not None and self._clock() - self._loaded_at >= self._refresh:
            self._records = [*self._config, *self._store.active_keys()]
            self._loaded_at = self._clock()
        return self._records

    def enabled(self) -> bool:
        """Auth is on once any key was seen (revoking the last key locks, never opens)."""
        if not self._required and self.records():
            self._required = True
        return self._required

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The caller's principal; HttpError 401 for a missing or unknown key."""
        if not self.enabled():
            return ANONYMOUS
        records = self.records()
        if not records:
            raise HttpError(401, LOCKED, code="gateway_locked")
        key = presented_key(headers)
        if key is None:
            raise HttpError(
                401,
                "an API key is required: send `Authorization: Bearer <key>` or `x-api-key`",
                code="missing_api_key",
            )
        match = _find(hash_key(key), records)
        if match is None:
            raise HttpError(401, "the API key is not valid", code="invalid_api_key")
        return Principal(match.name, frozenset(match.models), match.limits)


LOCKED = (
    "locked: every key revoked, so no key can be valid; create one with "
    "`corral keys create --name NAME` (`corral keys list --all` shows the revoked ones)"
)


def ever_keyed(store: KeySource | None) -> bool:
    """True when the store has held a key (revoked ones count): revoking every key and
    restarting must leave the gateway locked, not open. Sources without `ever_keyed` (lists
    in tests) count as never keyed."""
    check = getattr(store, "ever_keyed", None)
    return bool(check()) if callable(check) else False


def _find(digest: str, records: Sequence[KeyRecord]) -> KeyRecord | None:
    """Constant-time over all records: no early exit on a match."""
    found: KeyRecord | None = None
    presented = digest.encode()
    for record in records:
        if hmac.compare_digest(presented, record.sha256.encode()):
            found = record
    return found
