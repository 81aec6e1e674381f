"""Checks of the API itself: listing, chat, streaming, usage, stop, max_tokens, errors, load."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import openai
from openai.types import Model
from pydantic import ValidationError

from corral.verify.checks.common import HELLO, STORY, budget
from corral.verify.model import CheckFailed, CheckSkipped
from corral.verify.probe import Probe, describe
from corral.verify.symptoms import require_content

UNKNOWN_MODEL = "corral-verify-no-such-model"


async def check_models(probe: Probe) -> str:
    """GET /v1/models lists the served name; each card is an SDK `Model`; context fits."""
    raw = await probe.sdk.models.with_raw_response.list()
    cards = raw.http_response.json().get("data")
    if not isinstance(cards, list):
        raise CheckFailed("/v1/models has no `data` list")
    try:
        models = [Model.model_validate(card) for card in cards]
    except ValidationError as exc:
        raise CheckFailed(f"a /v1/models entry is not a Model: {exc.errors()[0]['msg']}") from None
    ids = [m.id for m in models]
    if probe.target.model not in ids:
        raise CheckFailed(f"{probe.target.model!r} is not listed (listed: {', '.join(ids)})")
    card = cards[ids.index(probe.target.model)]
    return _context_note(card, probe.target.capabilities.context_length)


def _context_note(card: dict[str, Any], declared: int) -> str:
    served = card.get("max_model_len")
    if not isinstance(served, int):
        return "listed"
    if served < declared:
        raise CheckFailed(
            f"the engine serves max_model_len {served} but the deployment declares "
            f"context_length {declared}: raise the engine's limit or lower the declaration"
        )
    return f"listed, max_model_len {served}"


async def check_chat(probe: Probe) -> str:
    """A plain chat completion answers with text and a normal finish_reason."""
    reply = await probe.chat(messages=HELLO, max_tokens=budget(probe.target, 32))
    content = require_content(reply.message)
    if reply.finish_reason not in ("stop", "length"):
        raise CheckFailed(f"finish_reason is {reply.finish_reason!r}, expected 'stop' or 'length'")
    return f"{len(content)} chars, finish_reason {reply.finish_reason}"


async def check_streaming(probe: Probe) -> str:
    """A well-formed SSE stream: JSON chunks, role first, one finish_reason, `[DONE]`."""
    fields: dict[str, Any] = {"messages": HELLO, "max_tokens": budget(probe.target, 32)}
    trace = await probe.raw_stream(**fields)
    problems = trace.protocol_problems()
    if problems:
        raise CheckFailed("; ".join(problems[:3]))
    if not trace.content and not trace.reasoning_text():
        raise CheckFailed("the stream carried no text")
    chunks = await probe.sdk_stream(**fields)  # the SDK raises on an error event
    return f"{len(trace.chunks)} chunks (SDK: {len(chunks)}), finish_reason {trace.finish_reason}"


async def check_usage(probe: Probe) -> str:
    """Usage is present (streamed and not), adds up, and agrees with what was streamed."""
    limit = 12
    reply = await probe.chat(messages=STORY, max_tokens=limit)
    if reply.completion.usage is None:
        raise CheckFailed("no usage in the chat completion")
    trace = await probe.raw_stream(
        messages=STORY, max_tokens=limit, stream_options={"include_usage": True}
    )
    if trace.usage is None:
        raise CheckFailed("no usage chunk in the stream although stream_options.include_usage")
    plain = reply.completion.usage.model_dump()
    for label, usage in (("response", plain), ("stream", trace.usage)):
        _usage_adds_up(label, usage, limit)
    if plain["prompt_tokens"] != trace.usage["prompt_tokens"]:
        raise CheckFailed(
            f"prompt_tokens differ for one prompt: {plain['prompt_tokens']} (response) vs "
            f"{trace.usage['prompt_tokens']} (stream)"
        )
    streamed = trace.usage["completion_tokens"]
    return _stream_agrees(streamed, trace.pieces, trace.finish_reason, limit)


def _usage_adds_up(label: str, usage: dict[str, Any], limit: int) -> None:
    prompt, completion, total = (
        usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")
    )
    if total != prompt + completion:
        raise CheckFailed(f"{label} usage: total_tokens {total} != {prompt} + {completion}")
    if completion > limit:
        raise CheckFailed(f"{label} usage: {completion} completion tokens, max_tokens was {limit}")


def _stream_agrees(completion: int, pieces: int, finish: str | None, limit: int) -> str:
    if pieces > completion:
        raise CheckFailed(f"{pieces} text chunks were streamed but usage says {completion} tokens")
    if finish == "length" and completion != limit:
        raise CheckFailed(
            f"the stream was cut at max_tokens={limit} but usage says {completion} tokens"
        )
    return f"{completion} completion tokens over {pieces} text chunks, finish_reason {finish}"


async def check_stop(probe: Probe) -> str:
    """A stop sequence ends the answer early, is not included, and finish_reason is `stop`."""
    baseline = await probe.chat(messages=STORY, max_tokens=48)
    text = require_content(baseline.message)
    stop = _stop_word(text)
    reply = await probe.chat(messages=STORY, max_tokens=48, stop=[stop])
    content = reply.message.get("content") or ""
    if stop in content:
        raise CheckFailed(f"the stop sequence {stop!r} is in the answer: {content[:80]!r}")
    if reply.finish_reason != "stop":
        raise CheckFailed(f"finish_reason is {reply.finish_reason!r} after a stop sequence")
    if len(content) >= len(text):
        raise CheckFailed(f"the answer did not get shorter with stop={stop!r}")
    return f"stopped at {stop!r} after {len(content)} of {len(text)} chars"


def _stop_word(text: str) -> str:
    """A word from the middle of `text` (or three characters there, if it has no words)."""
    words: list[str] = re.findall(r"[A-Za-z]{3,}", text)
    if words:
        return words[len(words) // 2]
    middle = len(text) // 2
    return text[middle : middle + 3]


async def check_max_tokens(probe: Probe) -> str:
    """An answer cut by max_tokens reports finish_reason `length` and no more tokens."""
    limit = 8
    reply = await probe.chat(messages=STORY, max_tokens=limit)
    usage = reply.completion.usage
    if usage is not None and usage.completion_tokens > limit:
        raise CheckFailed(f"{usage.completion_tokens} completion tokens with max_tokens={limit}")
    if reply.finish_reason != "length":
        raise CheckFailed(
            f"finish_reason is {reply.finish_reason!r} with max_tokens={limit} "
            f"(usage: {usage.completion_tokens if usage else 'none'} tokens); expected 'length'"
        )
    return f"finish_reason length at {limit} tokens"


async def check_concurrency(probe: Probe) -> str:
    """N requests at once all succeed with text."""
    count = probe.target.concurrency

    async def one(i: int) -> None:
        prompt = [{"role": "user", "content": f"Say the number {i} in words."}]
        reply = await probe.chat(messages=prompt, max_tokens=budget(probe.target, 16))
        require_content(reply.message)

    outcomes = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    if failed:
        first = failed[0]
        why = str(first) if isinstance(first, CheckFailed) else describe(first)
        raise CheckFailed(f"{len(failed)} of {count} concurrent requests failed: {why}")
    return f"{count} concurrent requests succeeded"


async def check_unknown_model(probe: Probe) -> str:
    """An unknown model answers 404 in the OpenAI error shape; the SDK raises NotFoundError.

    llama-server answers any model name with its one model (HTTP 200): asked directly, that
    is reported as what the engine is, a skip saying so; behind corral's gateway, which
    answers 404 for names it does not route, the check runs and must pass."""
    body: dict[str, Any] = {"model": UNKNOWN_MODEL, "messages": HELLO, "max_tokens": 1}
    response = await probe.http.post(probe.target.v1_url + "/chat/completions", json=body)
    if response.status_code == 200 and await probe.engine_kind() == "llama-server":
        raise CheckSkipped(
            f"llama-server serves its one model under any name (HTTP 200 for {UNKNOWN_MODEL!r}); "
            "clients reaching it through corral's gateway get 404 for names it does not route"
        )
    if response.status_code != 404:
        raise CheckFailed(f"answered HTTP {response.status_code} for an unknown model, not 404")
    _error_shape(response.text)
    try:
        await probe.sdk.chat.completions.create(**body)
    except openai.NotFoundError:
        return "404 in the OpenAI error shape"
    except openai.APIStatusError as exc:
        raise CheckFailed(f"the SDK saw {type(exc).__name__}, not NotFoundError") from None
    raise CheckFailed("the SDK call for an unknown model succeeded")


def _error_shape(text: str) -> None:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise CheckFailed(f"the error body is not JSON: {text[:80]!r}") from None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        raise CheckFailed(f"the error body has no `error` object: {text[:80]!r}")
    missing = [k for k in ("message", "type") if not isinstance(error.get(k), str)]
    if missing:
        raise CheckFailed(f"the error object lacks {', '.join(missing)}: {text[:80]!r}")
