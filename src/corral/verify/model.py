"""The suite's vocabulary: what is verified (`Target`), and what a check reports (`CheckResult`).

A check either returns a detail string (pass), raises `CheckFailed` (fail) or `CheckSkipped`
(skip, with the reason). A check is skipped only for a reason the target declares (its
capabilities); it is never passed silently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from corral.config import Capabilities

DEFAULT_CONCURRENCY = 4
# Room left out of the declared context for the chat template, the question and the answer;
# 4,096 → a ~3K-token haystack, 131,072 (gpt-oss-120b) → ~127K.
CONTEXT_RESERVE = 1024


class Status(StrEnum):
    PASS = "pass"  # noqa: S105  (a status, not a password)
    FAIL = "fail"
    SKIP = "skip"


class CheckFailed(Exception):
    """The endpoint misbehaved; the message says how."""


class CheckSkipped(Exception):
    """The target cannot be expected to pass; the message says why."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["seconds"] = round(self.seconds, 3)
        return data


@dataclass(frozen=True)
class Target:
    """An OpenAI-compatible endpoint serving `model`, and what that model can do.

    `base_url` may be given with or without the trailing `/v1`.
    """

    base_url: str
    model: str
    capabilities: Capabilities = field(default_factory=Capabilities)
    api_key: str = "unused"
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = 300.0

    @property
    def root_url(self) -> str:
        """The server root (where vLLM's /tokenize and /health live)."""
        url = self.base_url.rstrip("/")
        return url.removesuffix("/v1")

    @property
    def v1_url(self) -> str:
        return self.root_url + "/v1"

    @property
    def haystack_tokens(self) -> int:
        """How long the needle-in-a-haystack prompt should be, in tokens."""
        return haystack_tokens(self.capabilities.context_length)


def haystack_tokens(context: int) -> int:
    """The needle prompt's length for a context of `context` tokens per request."""
    return max(256, context - CONTEXT_RESERVE)


def suite_passed(results: list[CheckResult]) -> bool:
    """True when no check failed (skips don't fail a suite; they say why they skipped)."""
    return all(r.status is not Status.FAIL for r in results)
