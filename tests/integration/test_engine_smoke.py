"""The shared real engine answers through the official openai SDK."""

from __future__ import annotations

import openai
import pytest

from tests.support.vllm import LiveEngine

pytestmark = pytest.mark.integration


def test_chat_completion_through_sdk(vllm_engine: LiveEngine) -> None:
    client = openai.OpenAI(base_url=vllm_engine.base_url + "/v1", api_key="unused")
    reply = client.chat.completions.create(
        model=vllm_engine.served_name,
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=8,
    )
    assert reply.choices[0].message.content
    assert reply.usage is not None
    assert reply.usage.completion_tokens <= 8
