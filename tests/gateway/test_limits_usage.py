"""Per-key limits (sliding windows, Retry-After) and batched usage recording, on a fake clock."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from corral.config import KeyLimits
from corral.gateway.errors import HttpError
from corral.gateway.ratelimit import KeyLimiter, Window
from corral.gateway.strict import conform
from corral.gateway.usage import LedgerUsage, Slot, UsageRecorder
from corral.ledger.db import open_ledger
from tests.unit.test_gateway_logic import Clock


def at(now: float) -> Clock:
    clock = Clock()
    clock.now = now
    return clock


def test_window_slides_and_says_when_it_frees() -> None:
    window = Window(60.0, 1.0)
    window.add(100.0, 5)
    window.add(130.0, 5)
    assert window.sum(130.0) == 10
    assert window.wait(130.0, 10) == pytest.approx(30.0)  # the first 5 leave at t=160
    assert window.sum(160.0) == 5


def test_requests_per_minute_refuses_with_retry_after_from_the_window() -> None:
    clock = at(1000.0)
    limiter = KeyLimiter(clock)
    limits = KeyLimits(requests_per_minute=2)
    for _ in range(2):
        limiter.release(limiter.admit("ci", limits))
        clock.now += 10
    with pytest.raises(HttpError) as refused:
        limiter.admit("ci", limits)
    assert refused.value.status == 429
    assert refused.value.headers["Retry-After"] == "40"  # first request at 1000, now 1020
    assert refused.value.param == "requests_per_minute"
    clock.now += 41
    limiter.admit("ci", limits)  # the window slid


def test_tokens_are_charged_when_the_answer_ends_so_the_next_request_is_refused() -> None:
    clock = at(1000.0)
    limiter = KeyLimiter(clock)
    limits = KeyLimits(tokens_per_minute=100, tokens_per_day=150)
    lease = limiter.admit("ci", limits)
    limiter.admit("ci", limits)  # in flight together: not refused mid-answer
    limiter.release(lease, tokens=120)
    with pytest.raises(HttpError) as over:
        limiter.admit("ci", limits)
    assert over.value.param == "tokens_per_minute"
    clock.now += 61
    limiter.admit("ci", KeyLimits(tokens_per_minute=100))
    limiter.release(limiter.admit("ci", limits), tokens=40)
    with pytest.raises(HttpError) as daily:
        limiter.admit("ci", limits)
    assert daily.value.param == "tokens_per_day"
    assert int(daily.value.headers["Retry-After"]) > 86000


def test_concurrent_limit_and_unlimited_keys() -> None:
    limiter = KeyLimiter(at(1000.0))
    limits = KeyLimits(concurrent=1)
    lease = limiter.admit("ci", limits)
    with pytest.raises(HttpError) as busy:
        limiter.admit("ci", limits)
    assert busy.value.param == "concurrent"
    limiter.release(lease)
    limiter.admit("ci", limits)
    assert limiter.admit("other", None).state is None
    assert limiter.refused == {("ci", "concurrent"): 1}


class FlakySink:
    def __init__(self) -> None:
        self.fail = True
        self.rows: list[dict[Slot, list[int]]] = []

    def write(self, rows: dict[Slot, list[int]]) -> None:
        if self.fail:
            self.fail = False
            raise RuntimeError("database is locked")
        self.rows.append(dict(rows))


async def test_usage_is_batched_and_a_failed_write_loses_nothing() -> None:
    sink = FlakySink()
    recorder = UsageRecorder(sink, every=3600.0, clock=lambda: 120.0)
    recorder.add("ci", "m", 200, prompt=10, completion=5)
    recorder.add("ci", "m", 429)
    await recorder.flush()  # fails: kept
    recorder.add("ci", "m", 502, prompt=1)
    await recorder.stop()
    assert sink.rows == [{(120.0, "ci", "m"): [3, 1, 1, 11, 5]}]


async def test_usage_reaches_the_ledger(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "ledger.sqlite3") as ledger:
        recorder = UsageRecorder(LedgerUsage(ledger), every=0.01, clock=lambda: 60.0)
        await recorder.start()
        recorder.add("ci", "m", 200, prompt=3, completion=4)
        await asyncio.sleep(0.2)
        rows = LedgerUsage(ledger).summary(0.0)
        await recorder.stop()
    assert [(r.key_name, r.requests, r.prompt_tokens, r.completion_tokens) for r in rows] == [
        ("ci", 1, 3, 4)
    ]


# -- strict answers on the recorded vLLM captures ---------------------------------------
FIXTURES = Path(__file__).parents[1] / "fixtures" / "gateway" / "vllm-0.32"
SCHEMAS = json.loads(
    (Path(__file__).parents[2] / "src/corral/gateway/data/openai_schemas.json").read_text()
)


def errors(obj: Any, root: str) -> list[str]:
    import jsonschema

    schema = {"$schema": SCHEMAS["$schema"], "$defs": SCHEMAS["$defs"], "$ref": f"#/$defs/{root}"}
    found = jsonschema.Draft202012Validator(schema).iter_errors(obj)
    return [f"{list(e.absolute_path)}: {e.message}" for e in found]


@pytest.mark.parametrize(
    ("name", "root"),
    [("chat", "CreateChatCompletionResponse"), ("chat_tool", "CreateChatCompletionResponse"),
     ("completion", "CreateCompletionResponse")],
)  # fmt: skip
def test_conform_makes_vllms_answers_validate(name: str, root: str) -> None:
    answer = json.loads((FIXTURES / f"{name}.txt").read_text().split("\n", 1)[1])
    assert errors(answer, root)  # as vLLM sends it: nulls the schema does not allow
    assert conform(answer)
    assert errors(answer, root) == []


def test_required_fields_are_added() -> None:
    answer = {"id": "x", "object": "chat.completion", "created": 1, "model": "m",
              "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": "hi"}}]}  # fmt: skip
    conform(answer)
    assert errors(answer, "CreateChatCompletionResponse") == []
    assert answer["choices"][0]["message"]["refusal"] is None
