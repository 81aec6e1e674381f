"""Pass through or translate: which path a Responses or Messages request takes.

`gateway.apis.responses` / `.messages` in corral.yaml: `native` always passes through,
`translate` always translates, `auto` (the default) passes through when the engine serves
the API itself (data/engine_apis.yaml) and the request needs nothing its own path lacks:
tools on an engine whose own path does not enforce tool schemas, or a
`previous_response_id` this gateway retained, are translated.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml

Api = Literal["responses", "messages"]
Mode = Literal["auto", "native", "translate"]


@dataclass(frozen=True)
class EngineApis:
    responses: bool = False
    messages: bool = False
    native_tool_schemas: bool = False
    tokenizer: Literal["vllm", "llama-server"] = "vllm"  # the /tokenize body shape (tokens.py)


@cache
def engine_apis() -> dict[str, EngineApis]:
    text = resources.files("corral.gateway").joinpath("data/engine_apis.yaml").read_text()
    return {name: EngineApis(**fields) for name, fields in yaml.safe_load(text).items()}


def translates(api: Api, mode: Mode, engine: str, payload: dict[str, Any], retained: bool) -> bool:
    """Whether this request is translated to Chat Completions for this engine."""
    if mode != "auto":
        return mode == "translate"
    apis = engine_apis().get(engine, EngineApis())
    if not (apis.responses if api == "responses" else apis.messages):
        return True
    if payload.get("tools") and not apis.native_tool_schemas:
        return True
    return retained
