"""The store's tokenizer (the fallback when a gateway has no /tokenize) counts as the real
vLLM engine's /tokenize does, for plain prompts and chat prompts with the template."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from corral.bench.prompts import ServerTokenizer, StoreTokenizer
from tests.support.vllm import LiveEngine

pytestmark = pytest.mark.integration

TEXTS = ["hello", "time year people way day man thing woman life child " * 7, "2+2=?\nok."]


@pytest.mark.parametrize("chat", [False, True])
async def test_store_counts_equal_the_engine_counts(
    vllm_engine: LiveEngine, default_model_path: Path, chat: bool
) -> None:
    local = StoreTokenizer(default_model_path)
    async with httpx.AsyncClient(timeout=30) as client:
        server = ServerTokenizer(client, vllm_engine.base_url, vllm_engine.served_name)
        for text in TEXTS:
            assert await local.count(text, chat=chat) == await server.count(text, chat=chat)
