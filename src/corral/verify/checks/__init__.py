"""The named checks, in the order the suite runs them, and when each one applies.

A check is an `async def (probe) -> str` returning its detail, raising `CheckFailed` when
the endpoint misbehaves. `Check.skip_reason` reads the target's declared capabilities: a
check the model cannot be expected to pass is skipped with that reason, never passed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from corral.verify.checks import abilities, protocol, tools
from corral.verify.model import Target
from corral.verify.probe import Probe

CheckFn = Callable[[Probe], Awaitable[str]]
Requirement = Callable[[Target], str | None]


def _always(_target: Target) -> str | None:
    return None


def _tools(target: Target) -> str | None:
    if not target.capabilities.tools:
        return "the model declares no tool calling (capabilities.tools: false)"
    return None


def _auto_tools(target: Target) -> str | None:
    if not target.capabilities.auto_tool_choice:
        return (
            "the model cannot choose tools by itself (capabilities.auto_tool_choice: false, "
            "or no --auto-tools); named and required tool_choice are checked instead"
        )
    return _tools(target)


def _reasoning(target: Target) -> str | None:
    if not target.capabilities.reasoning:
        return "not a reasoning model (capabilities.reasoning: false, or no --reasoning)"
    return None


def _structured(target: Target) -> str | None:
    if not target.capabilities.structured_output:
        return "the deployment declares no structured output (capabilities.structured_output)"
    return None


@dataclass(frozen=True)
class Check:
    name: str
    run: CheckFn
    requires: Requirement = _always

    @property
    def summary(self) -> str:
        """The first line of the check function's docstring: what it proves."""
        return (self.run.__doc__ or "").strip().splitlines()[0]

    def skip_reason(self, target: Target) -> str | None:
        return self.requires(target)


CHECKS: tuple[Check, ...] = (
    Check("models", protocol.check_models),
    Check("chat", protocol.check_chat),
    Check("streaming", protocol.check_streaming),
    Check("usage", protocol.check_usage),
    Check("stop", protocol.check_stop),
    Check("max-tokens", protocol.check_max_tokens),
    Check("tool-named", tools.check_tool_named, _tools),
    Check("tool-required", tools.check_tool_required, _tools),
    Check("tool-auto", tools.check_tool_auto, _auto_tools),
    Check("tool-round-trip", tools.check_tool_round_trip, _tools),
    Check("tool-stream", tools.check_tool_stream, _tools),
    Check("reasoning", abilities.check_reasoning, _reasoning),
    Check("structured-output", abilities.check_structured_output, _structured),
    Check("needle", abilities.check_needle),
    Check("concurrency", protocol.check_concurrency),
    Check("unknown-model", protocol.check_unknown_model),
)
CHECK_NAMES: tuple[str, ...] = tuple(c.name for c in CHECKS)

__all__ = ["CHECKS", "CHECK_NAMES", "Check", "CheckFn"]
