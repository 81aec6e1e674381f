"""The needle prompt is sized by the server's count and is the same every time."""

from __future__ import annotations

from typing import Any

from corral.verify import haystack


async def _words(messages: list[dict[str, Any]]) -> int:
    """A stand-in /tokenize: one token per word (the scripted engine counts the same way)."""
    return len(messages[0]["content"].split())


async def _no_tokenizer(_messages: list[dict[str, Any]]) -> None:
    return None


async def test_sized_to_the_target_by_the_servers_count() -> None:
    hay = await haystack.build("m", 3072, _words)
    assert hay.measured
    assert 3072 - 10 <= hay.tokens <= 3072
    assert f"The pass key is {hay.pass_key}." in hay.messages[0]["content"]


async def test_deterministic_and_the_key_depends_on_model_and_length() -> None:
    first = await haystack.build("m", 2048, _words)
    again = await haystack.build("m", 2048, _words)
    assert first == again
    assert haystack.pass_key_for("m", 2048) != haystack.pass_key_for("m", 4096)
    assert haystack.pass_key_for("m", 2048) != haystack.pass_key_for("n", 2048)


async def test_without_tokenize_the_estimate_stays_inside_the_context() -> None:
    hay = await haystack.build("m", 3072, _no_tokenizer)
    assert not hay.measured
    # Filler English runs 4+ characters per token, so the estimate must undershoot.
    assert len(hay.messages[0]["content"]) / 4 < 3072
