"""Every check fails against a scripted engine that misbehaves in exactly its way, and passes
against one that behaves. A check no case here can fail is a defect (see the last test).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from corral.config import Capabilities
from corral.verify.checks import CHECK_NAMES
from corral.verify.model import Status, Target
from corral.verify.suite import run_suite
from tests.support.scripted import RunningEngine, scripted_engine

# A model that can do everything, so no check is skipped.
ALL = Capabilities(auto_tool_choice=True, reasoning=True)
CAPABLE = ("--auto-tools", "--reasoning-tokens", "4")

# (engine flags, declared capabilities, check, words the failure detail must contain)
FAULTS: list[tuple[tuple[str, ...], Capabilities, str, str]] = [
    ((*CAPABLE, "--quirk", "unlisted-model"), ALL, "models", "is not listed"),
    ((*CAPABLE, "--context-length", "2048"), ALL, "models", "declares context_length 4096"),
    ((*CAPABLE, "--quirk", "null-reasoning"), Capabilities(), "chat", "both null"),
    ((*CAPABLE, "--fail-first", "1"), ALL, "chat", "HTTP 500"),
    ((*CAPABLE, "--quirk", "no-done"), ALL, "streaming", "[DONE]"),
    ((*CAPABLE, "--quirk", "no-role"), ALL, "streaming", "role is None"),
    ((*CAPABLE, "--quirk", "double-finish"), ALL, "streaming", "2 chunks carry a finish_reason"),
    ((*CAPABLE, "--quirk", "harmony-error"), ALL, "streaming", "HarmonyError"),
    (
        (
            *CAPABLE,
            "--malformed",
        ),
        ALL,
        "streaming",
        "is not JSON",
    ),
    ((*CAPABLE, "--quirk", "no-usage"), ALL, "usage", "no usage"),
    ((*CAPABLE, "--quirk", "usage-mismatch"), ALL, "usage", "completion tokens, max_tokens was 12"),
    ((*CAPABLE, "--quirk", "ignore-stop"), ALL, "stop", "is in the answer"),
    ((*CAPABLE, "--quirk", "wrong-finish-reason"), ALL, "max-tokens", "expected 'length'"),
    ((*CAPABLE, "--quirk", "tool-json-in-content"), ALL, "tool-named", "tool call"),
    ((*CAPABLE, "--quirk", "invalid-tool-args"), ALL, "tool-named", "not JSON"),
    ((*CAPABLE, "--quirk", "tool-json-in-content"), ALL, "tool-required", "tool call"),
    ((*CAPABLE, "--quirk", "invalid-tool-args"), ALL, "tool-required", "not JSON"),
    (("--reasoning-tokens", "4"), ALL, "tool-auto", "no tool_calls"),  # declared, not served
    ((*CAPABLE, "--quirk", "tool-json-in-content"), ALL, "tool-auto", "tool call"),
    ((*CAPABLE, "--quirk", "reject-tool-messages"), ALL, "tool-round-trip", "HTTP 400"),
    ((*CAPABLE, "--quirk", "null-reasoning"), ALL, "tool-round-trip", "both null"),
    ((*CAPABLE, "--quirk", "tool-json-in-content"), ALL, "tool-stream", "tool call"),
    ((*CAPABLE, "--quirk", "invalid-tool-args"), ALL, "tool-stream", "not JSON"),
    ((*CAPABLE, "--quirk", "harmony-error"), ALL, "tool-stream", "HarmonyError"),
    ((*CAPABLE, "--quirk", "null-reasoning"), ALL, "reasoning", "both null"),
    ((*CAPABLE, "--reasoning-tokens", "0"), ALL, "reasoning", "no reasoning"),
    (
        (*CAPABLE, "--reasoning-field", "reasoning_content"),
        Capabilities(reasoning=True, reasoning_field="reasoning"),
        "reasoning",
        "renamed",
    ),
    ((*CAPABLE, "--quirk", "harmony-error"), ALL, "reasoning", "HarmonyError"),
    ((*CAPABLE, "--quirk", "ignore-response-format"), ALL, "structured-output", "not JSON"),
    ((*CAPABLE, "--quirk", "forget-needle"), ALL, "needle", "pass key"),
    ((*CAPABLE, "--fail-when-concurrent", "1", "--ttft", "0.3"), ALL, "concurrency", "HTTP 500"),
    ((*CAPABLE, "--quirk", "wrong-error-shape"), ALL, "unknown-model", "not JSON"),
]


def _id(case: tuple[tuple[str, ...], Capabilities, str, str]) -> str:
    flags, _, check, _ = case
    return f"{check}[{' '.join(f for f in flags if f not in CAPABLE) or 'auto-tools-declared'}]"


@pytest.mark.parametrize("case", FAULTS, ids=[_id(c) for c in FAULTS])
async def test_check_fails_on_its_fault(
    case: tuple[tuple[str, ...], Capabilities, str, str],
) -> None:
    flags, caps, check, words = case
    with scripted_engine(*flags) as engine:
        [result] = await run_suite(Target(engine.base_url, engine.model, caps), [check])
    assert result.status is Status.FAIL, result
    assert words in result.detail


@pytest.fixture(scope="module")
def good_engine() -> Iterator[RunningEngine]:
    with scripted_engine(*CAPABLE, "--ttft", "0.01") as engine:
        yield engine


async def test_every_check_passes_on_a_well_behaved_engine(good_engine: RunningEngine) -> None:
    results = await run_suite(Target(good_engine.base_url, good_engine.model, ALL))
    assert [r.name for r in results] == list(CHECK_NAMES)
    assert [r for r in results if r.status is not Status.PASS] == []


async def test_checks_the_model_cannot_pass_are_skipped_with_the_reason(
    good_engine: RunningEngine,
) -> None:
    caps = Capabilities(tools=False, reasoning=False, structured_output=False)
    results = await run_suite(Target(good_engine.base_url, good_engine.model, caps))
    skipped = {r.name: r.detail for r in results if r.status is Status.SKIP}
    assert set(skipped) == {
        "tool-named", "tool-required", "tool-auto", "tool-round-trip", "tool-stream",
        "reasoning", "structured-output",
    }  # fmt: skip
    assert "capabilities.reasoning" in skipped["reasoning"]
    assert all(r.status is Status.PASS for r in results if r.name not in skipped)


def test_every_check_has_a_fault_that_fails_it() -> None:
    assert {check for _, _, check, _ in FAULTS} == set(CHECK_NAMES)
