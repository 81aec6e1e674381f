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
