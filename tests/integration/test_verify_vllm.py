"""The whole suite against the real vLLM CPU engine serving the default model.

SmolLM2-135M cannot choose tools by itself and does not reason, so those two checks are
skipped, with the reason; every other check must pass.
"""

from __future__ import annotations

import pytest

from corral.config import default_deployment
from corral.verify.checks import CHECK_NAMES
from corral.verify.model import Status, Target
from corral.verify.suite import run_suite
from tests.support.vllm import LiveEngine

pytestmark = pytest.mark.integration


async def test_default_deployment_passes_the_suite(vllm_engine: LiveEngine) -> None:
    caps = default_deployment().capabilities
    results = await run_suite(Target(vllm_engine.base_url, vllm_engine.served_name, caps))
    by_name = {r.name: r for r in results}
    assert list(by_name) == list(CHECK_NAMES)
    failed = [f"{r.name}: {r.detail}" for r in results if r.status is Status.FAIL]
    assert failed == []
    skipped = {r.name for r in results if r.status is Status.SKIP}
    assert skipped == {"tool-auto", "reasoning"}
    assert "auto_tool_choice" in by_name["tool-auto"].detail
    assert "3072 prompt tokens" in by_name["needle"].detail  # 4096 declared − 1024 reserve
