"""Every gateway error in the OpenAI error shape, with a field saying who produced it.

    {"error": {"message": ..., "type": ..., "param": ..., "code": ..., "source": "corral"}}

`source` is "corral" when the gateway refused or failed the request itself, and "engine"
when the engine answered with an error that the gateway passes on (re-shaped if the engine
did not use the OpenAI shape). One function maps a status to its `type`, as in llama-swap's
`internal/swaputil/httperror.go`.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from corral.errors import CorralError

Source = Literal["corral", "engine"]

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}


def error_type(status: int) -> str:
    """The OpenAI `type` for an HTTP status (client errors vs server errors by default)."""
    return _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")


def error_dict(
    status: int,
    message: str,
    *,
    source: Source = "corral",
    param: str | None = None,
    code: str | int | None = None,
    err_type: str | None = None,
) -> dict[str, Any]:
    kind = err_type or error_type(status)
    # OpenAI's schema wants a string `code` (vLLM sends the status as a number): the
    # code as a string, else the type, so strict clients can always switch on it.
    return {
        "error": {
            "message": message,
            "type": kind,
            "param": param if param is None else str(param),
            "code": kind if code is None else str(code),
            "source": source,
        }
    }


def error_bytes(status: int, message: str, **kwargs: Any) -> bytes:
    return json.dumps(error_dict(status, message, **kwargs)).encode()


class HttpError(CorralError):
    """A request the gateway answers with an error (raised inside handlers, shaped at the edge).

    `headers` carries e.g. `Retry-After` for 429 and 503; `payload`, when set, is the
    already-shaped body (an engine's error passed on).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        source: Source = "corral",
        payload: bytes | None = None,
    ) -> None:
        super().__init__(message)
        self.payload = payload
        self.status = status
        self.param = param
        self.code = code
        self.headers = headers or {}
        self.source: Source = source

    def body(self) -> bytes:
        if self.payload is not None:
            return self.payload
        return error_bytes(
            self.status, self.message, source=self.source, param=self.param, code=self.code
        )


def engine_error_body(status: int, raw: bytes) -> bytes:
    """An engine's error answer in the OpenAI shape with `source: engine`.

    vLLM answers `{"error": {...}}` in recent versions and a flat `{"object": "error",
    "message": ...}` in older ones; some engines answer plain text. All become one shape.
    """
    try:
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if isinstance(parsed, dict):
        nested = parsed.get("error")
        inner: dict[str, Any] = nested if isinstance(nested, dict) else parsed
        message = str(inner.get("message") or raw.decode("utf-8", "replace")[:2000])
        return error_bytes(
            status,
            message,
            source="engine",
            param=inner.get("param"),
            code=inner.get("code"),
            err_type=inner.get("type") if isinstance(inner.get("type"), str) else None,
        )
    text = raw.decode("utf-8", "replace").strip()[:2000] or f"engine answered HTTP {status}"
    return error_bytes(status, text, source="engine")
