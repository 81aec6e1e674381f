"""JSON on the hot path: msgspec, about five times faster than the standard library here.

Measured on the 2-core build machine for a 400-byte chat completion: `json.loads` 8 µs vs
msgspec 1.7 µs, `json.dumps` 7-10 µs vs 0.7 µs; a request is decoded and encoded twice
and every stream chunk once (docs/decisions/0001-gateway-stack.md). Decode errors are
`ValueError`s, as with `json`.
"""

from __future__ import annotations

from typing import Any

import msgspec

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def loads(data: bytes) -> Any:
    """Parse JSON bytes; raises ValueError (msgspec.DecodeError) when malformed."""
    return _decoder.decode(data)


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes."""
    return _encoder.encode(obj)


class _UsageOnly(msgspec.Struct):
    usage: dict[str, Any] | None = None


_usage_decoder = msgspec.json.Decoder(_UsageOnly)


def usage_of(data: bytes) -> dict[str, Any] | None:
    """Just the top-level `usage` of a JSON answer (the rest is skipped, not built): for
    answers relayed as they are (embeddings, scores, passed-through Responses/Messages)."""
    try:
        return _usage_decoder.decode(data).usage
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
