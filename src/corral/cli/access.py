"""How a client reaches corral, as the CLI tells it: the gateway's URL, whether keys are on
(or every key is revoked: locked), and a curl line that works as printed.

`corral serve`'s banner calls `curl_line`, `corral status` calls `gateway_lines`, and
`corral keys list` calls `keys_note`; all three read the same facts (the ledger's
`gateways` and `api_keys` tables, and corral.yaml's gateway keys).
"""

from __future__ import annotations

from corral.config import CorralConfig
from corral.gateway.auth import config_records
from corral.gateway.keystore import KeyStore
from corral.ledger.db import Ledger
from corral.ledger.gateways import live_gateway

# What the banner's curl line sends when keys are on: a shell variable, never the key.
KEY_PLACEHOLDER = "$CORRAL_API_KEY"


def keys_state(config: CorralConfig, ledger: Ledger) -> str:
    """`open` (no key anywhere), `keys` (at least one valid key), or `locked` (every key
    revoked: the gateway answers 401 to everyone)."""
    if config_records(config.gateway.api_keys):
        return "keys"
    active, revoked = KeyStore(ledger).counts()
    if active:
        return "keys"
    return "locked" if revoked else "open"


def curl_line(url: str, model: str, *, keys_on: bool) -> str:
    """A curl command for the chat endpoint; with keys on, the key comes from a variable."""
    auth = f'-H "Authorization: Bearer {KEY_PLACEHOLDER}" ' if keys_on else ""
    body = (
        f'{{"model": "{model}", "messages": [{{"role": "user", "content": "Say hello."}}], '
        '"max_tokens": 32}'
    )
    return f"curl {url}/v1/chat/completions {auth}-H 'Content-Type: application/json' -d '{body}'"


def keys_hint(state: str) -> str | None:
    """A line for the banner about keys, or None when the gateway is open."""
    if state == "keys":
        return "keys are on: export CORRAL_API_KEY=<a key from `corral keys create`> first"
    if state == "locked":
        return "locked: every key revoked; every request gets 401 until `corral keys create`"
    return None


def gateway_lines(config: CorralConfig, ledger: Ledger) -> list[str]:
    """`corral status`'s gateway section: where clients connect, and the key state."""
    gateway = live_gateway(ledger)
    state = keys_state(config, ledger)
    where = f"gateway {gateway.base_url}/v1" if gateway else "gateway not running"
    if state == "locked":
        return [f"{where}  locked: every key revoked (create one: corral keys create --name NAME)"]
    return [f"{where}  keys: {'on' if state == 'keys' else 'off (loopback only)'}"]


def keys_note(active: int, revoked: int, *, shown_revoked: bool) -> str | None:
    """What `corral keys list` adds under the table (why the gateway answers 401)."""
    if active == 0 and revoked:
        more = "" if shown_revoked else "; `corral keys list --all` shows them"
        return f"locked: every key revoked ({revoked}); the gateway answers 401 to all{more}"
    if active == 0:
        return "no keys: the gateway needs none on loopback (`corral keys create --name NAME`)"
    if revoked and not shown_revoked:
        return f"{revoked} revoked key(s) not shown: `corral keys list --all`"
    return None
