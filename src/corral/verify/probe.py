"""How checks talk to the endpoint: the official openai SDK (the client of record) for every
request, each answer re-validated against the SDK's types, plus a raw httpx stream for SSE.

The SDK builds its response objects without validation (`construct`), so a missing field
or an unknown finish_reason would pass unnoticed; `Reply` validates the raw JSON with
`ChatCompletion.model_validate` as well.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import ValidationError

from corral.verify.model import CheckFailed, Target
from corral.verify.sse import StreamTrace, assemble, parse_sse

_T = TypeVar("_T", ChatCompletion, ChatCompletionChunk)
# Tokens a chat template adds per message (role markers, separators) when the template
# can't be applied by the server: SmolLM2's ChatML adds 5; room for larger templates.
TEMPLATE_ALLOWANCE = 16


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
        self.count_is_exact = True  # False once a count had to estimate the chat template
        self._engine_kind: str | None = None
        self._engine_known = False

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
        """Token count of a chat prompt by the server's own tokenizer, or None if it has none.

        vLLM (and corral's gateway in front of it): `POST /tokenize {model, messages}` →
        `{count}`. llama-server's /tokenize takes text (`{content}` → `{tokens}`): the chat
        template is applied first with its `POST /apply-template`; through the gateway,
        which routes only /tokenize, the messages' text is counted plus a per-message
        allowance for the template (`count_is_exact` then says so).
        """
        count = await self._json_int(
            "/tokenize", {"model": self.target.model, "messages": messages}, "count"
        )
        if count is not None:
            return count
        prompt = await self._template(messages)
        self.count_is_exact = prompt is not None
        text = prompt if prompt is not None else "\n".join(_texts(messages))
        body = {"model": self.target.model, "content": text, "add_special": True}
        tokens = await self._json_list("/tokenize", body, "tokens")
        if tokens is None or (text and not tokens):
            return None
        return len(tokens) + (0 if prompt is not None else TEMPLATE_ALLOWANCE * len(messages))

    async def _template(self, messages: list[dict[str, Any]]) -> str | None:
        data = await self._post_json("/apply-template", {"messages": messages})
        prompt = data.get("prompt") if data else None
        return prompt if isinstance(prompt, str) else None

    async def _json_int(self, path: str, body: dict[str, Any], key: str) -> int | None:
        value = (await self._post_json(path, body) or {}).get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    async def _json_list(self, path: str, body: dict[str, Any], key: str) -> list[Any] | None:
        value = (await self._post_json(path, body) or {}).get(key)
        return value if isinstance(value, list) else None

    async def _post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The JSON object a root-level POST answers with 200, or None."""
        return await self._json(self.http.post(self.target.root_url + path, json=body))

    async def get_json(self, path: str) -> dict[str, Any] | None:
        """The JSON object a GET answers with 200 (path from the server root), or None."""
        return await self._json(self.http.get(self.target.root_url + path))

    async def _json(self, request: Awaitable[httpx.Response]) -> dict[str, Any] | None:
        try:
            response = await request
            data = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    async def served_context(self) -> int | None:
        """The context one request really gets, as the engine says: llama-server's `/props`
        per-slot `n_ctx` (`-c` divided among `-np` slots), else the model card's
        `max_model_len` (vLLM). None when the endpoint says neither (e.g. the gateway)."""
        props = await self.get_json("/props")
        settings = (props or {}).get("default_generation_settings")
        n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
        if isinstance(n_ctx, int) and n_ctx > 0:
            return n_ctx
        models = await self.get_json("/v1/models")
        for card in (models or {}).get("data") or []:
            if isinstance(card, dict) and card.get("id") == self.target.model:
                served = card.get("max_model_len")
                return served if isinstance(served, int) else None
        return None

    async def engine_kind(self) -> str | None:
        """`llama-server` when the endpoint is one (its `/props`, or `owned_by: llamacpp`
        on its model cards), else None (vLLM, the gateway, another server). Asked once."""
        if not self._engine_known:
            self._engine_kind = await self._find_engine_kind()
            self._engine_known = True
        return self._engine_kind

    async def _find_engine_kind(self) -> str | None:
        props = await self.get_json("/props")
        if props is not None and "default_generation_settings" in props:
            return "llama-server"
        models = await self.get_json("/v1/models")
        owners = {
            c.get("owned_by") for c in (models or {}).get("data") or [] if isinstance(c, dict)
        }
        return "llama-server" if "llamacpp" in owners else None


def _texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in messages if isinstance(m.get("content"), str)]


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
