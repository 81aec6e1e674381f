"""How checks talk to the endpoint: the official openai SDK (the client of record) for every
request, each answer re-validated against the SDK's types, plus a raw httpx stream for SSE.

The SDK builds its response objects without validation (`construct`), so a missing field
or an unknown finish_reason would pass unnoticed; `Reply` validates the raw JSON with
`ChatCompletion.model_validate` as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import ValidationError

from corral.verify.model import CheckFailed, Target
from corral.verify.sse import StreamTrace, assemble, parse_sse

_T = TypeVar("_T", ChatCompletion, ChatCompletionChunk)


@dataclass
class Reply:
    """One non-streamed answer: the raw JSON and the SDK's validated object."""

    raw: dict[str, Any]
    completion: ChatCompletion

    @property
    def message(self) -> dict[str, Any]:
        """The first choice's message as sent (extra fields like `reasoning` included)."""
        message: dict[str, Any] = self.raw["choices"][0]["message"]
        return message

    @property
    def finish_reason(self) -> str:
        return self.completion.choices[0].finish_reason


class Probe:
    """One target's clients. Use as `async with Probe(target) as probe:`."""

    def __init__(self, target: Target) -> None:
        self.target = target
        # No key: no header at all (a placeholder key reads as a wrong one to a gateway).
        headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
        self.http = httpx.AsyncClient(headers=headers, timeout=target.timeout)
        self.sdk = openai.AsyncOpenAI(
            base_url=target.v1_url,
            # The SDK insists on a key; without one, the model lookup (`naming.served_models`)
            # already proved the endpoint needs none, so a placeholder is ignored there.
            api_key=target.api_key or "none",
            timeout=target.timeout,
            max_retries=0,  # a retry would hide exactly the failures verify looks for
        )

    async def __aenter__(self) -> Probe:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.sdk.close()
        await self.http.aclose()

    def body(self, **fields: Any) -> dict[str, Any]:
        """A request body for the target's model with greedy decoding (repeatable answers)."""
        return {"model": self.target.model, "temperature": 0, **fields}

    async def chat(self, **fields: Any) -> Reply:
        """POST /v1/chat/completions through the SDK; validate the raw JSON too."""
        raw = await self.sdk.chat.completions.with_raw_response.create(**self.body(**fields))
        data = raw.http_response.json()
        return Reply(data, validated(ChatCompletion, data))

    async def sdk_stream(self, **fields: Any) -> list[ChatCompletionChunk]:
        """Stream through the SDK and collect its chunks (the SDK raises on error events)."""
        stream = await self.sdk.chat.completions.create(**self.body(stream=True, **fields))
        return [chunk async for chunk in stream]

    async def raw_stream(self, **fields: Any) -> StreamTrace:
        """Stream over plain httpx and parse the event stream strictly (see `sse`)."""
        body = self.body(stream=True, **fields)
        url = self.target.v1_url + "/chat/completions"
        async with self.http.stream("POST", url, json=body) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode(errors="replace")
                raise CheckFailed(f"stream answered HTTP {response.status_code}: {text[:200]}")
            kind = response.headers.get("content-type", "")
            lines = [line async for line in response.aiter_lines()]
        trace = assemble(parse_sse(lines))
        if not kind.startswith("text/event-stream"):
            trace.problems.insert(0, f"content-type is {kind!r}, not text/event-stream")
        return trace

    async def tokenize(self, messages: list[dict[str, Any]]) -> int | None:
        """Token count of a chat prompt by the server's own /tokenize, or None if it has none."""
        url = self.target.root_url + "/tokenize"
        try:
            response = await self.http.post(
                url, json={"model": self.target.model, "messages": messages}
            )
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        count = response.json().get("count")
        return int(count) if isinstance(count, int) else None


def describe(exc: BaseException) -> str:
    """One line for an endpoint error: the SDK's status and message, or the exception."""
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code} ({type(exc).__name__}): {exc.message}"[:300]
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


def validated(kind: type[_T], data: Any) -> _T:
    """`kind.model_validate(data)`, a failed validation becoming CheckFailed with the field."""
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        name = kind.__name__
        raise CheckFailed(f"response is not a valid {name}: {where}: {err['msg']}") from None
