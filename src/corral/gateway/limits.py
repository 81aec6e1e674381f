"""Check and rewrite a request body before it goes to an engine.

Steps, each a small function: parse (400 on bad JSON), check `n` and the token caps of
the deployment (400 naming the limit), drop engine-only fields the deployment does not
allow (data/engine_only_fields.yaml), then rewrite `model` to the served name and, for
streams, ask the engine for usage so the gateway can count tokens.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from corral.config import Capabilities, Limits
from corral.gateway import codec
from corral.gateway.errors import HttpError

TOKEN_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


@cache
def engine_only_fields() -> frozenset[str]:
    """Fields dropped unless allowed, from the packaged data file."""
    text = resources.files("corral.gateway").joinpath("data/engine_only_fields.yaml").read_text()
    return frozenset(yaml.safe_load(text)["fields"])


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object in a request body; HttpError 400 otherwise."""
    try:
        payload = codec.loads(raw)
    except ValueError as exc:
        message = f"request body is not valid JSON: {exc}"
        raise HttpError(400, message, code="invalid_json") from None
    if not isinstance(payload, dict):
        raise HttpError(400, "request body must be a JSON object", code="invalid_json")
    return payload


def requested_model(payload: dict[str, Any]) -> str:
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise HttpError(400, "`model` is required: name a model from GET /v1/models", param="model")
    return model


def check_caps(payload: dict[str, Any], limits: Limits, caps: Capabilities) -> None:
    """`n` within `limits.max_n`; token caps within `limits.max_tokens` and the context."""
    n = payload.get("n", 1)
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise HttpError(400, "`n` must be a positive integer", param="n")
    if isinstance(n, int) and n > limits.max_n:
        message = f"`n` is {n}; this deployment allows at most {limits.max_n}"
        raise HttpError(400, message, param="n")
    for name in TOKEN_FIELDS:
        _check_tokens(name, payload.get(name), limits, caps)


def _check_tokens(name: str, value: Any, limits: Limits, caps: Capabilities) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise HttpError(400, f"`{name}` must be a positive integer", param=name)
    if limits.max_tokens is not None and value > limits.max_tokens:
        raise HttpError(
            400,
            f"`{name}` is {value}; this deployment allows at most {limits.max_tokens}",
            param=name,
        )
    if value > caps.context_length:
        raise HttpError(
            400,
            f"`{name}` is {value}, more than the model's context of {caps.context_length} tokens",
            param=name,
        )


def drop_engine_fields(payload: dict[str, Any], allowed: list[str]) -> list[str]:
    """Remove engine-only fields not in `allowed`; returns the names removed."""
    blocked = engine_only_fields()
    dropped = [k for k in payload if k in blocked and k not in allowed]
    for key in dropped:
        del payload[key]
    return dropped


def wants_usage(payload: dict[str, Any]) -> bool:
    """Whether the client asked for the final usage chunk of a stream."""
    options = payload.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def upstream_body(payload: dict[str, Any], served_name: str, *, stream: bool) -> bytes:
    """The body for the engine: its own model name, and stream usage switched on."""
    payload["model"] = served_name
    if stream:
        options = payload.get("stream_options")
        options = dict(options) if isinstance(options, dict) else {}
        options["include_usage"] = True
        payload["stream_options"] = options
    return codec.dumps(payload)
