"""Synthetic prompts of a set length in tokens, counted by the model's own tokenizer.

Counting is done by a `TokenCounter`, never by a hub download:
- `ServerTokenizer`: the server's `POST /tokenize` (vLLM, SGLang, the scripted engine, and
  corral's gateway when it routes it); chat prompts are counted with the chat template
  applied (`messages`). It sends the key it was given.
- `StoreTokenizer`: `tokenizer.json` (and the chat template) of the model's folder in the
  store, read with the `tokenizers` package; `FallbackCounter` switches to it when the
  server has no /tokenize.
- `LocalTokenizer`: a transformers tokenizer from a folder given with `--tokenizer`.

Each prompt starts with a distinct random sequence of common words, so no two prompts
share a prefix the engine could cache (vLLM's random dataset uses random token ids for the
same reason); `shared_prefix` builds the opposite for the prefix-cache test.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Protocol

import httpx

from corral.errors import BenchError

_WORD_TEXT = """
time year people way day man thing woman life child world school state family student
group country problem hand part place case week company system program question work
government number night point home water room mother area money story fact month lot
right study book eye job word business issue side kind head house service friend father
power hour game line end member law car city community name president team minute idea
kid body information back parent face others level office door health person art war
history party result change morning reason research girl guy moment air teacher force
"""
WORDS = tuple(_WORD_TEXT.split())


class TokenCounter(Protocol):
    async def count(self, text: str, *, chat: bool) -> int: ...


class ServerTokenizer:
    """Counts with the engine's `/tokenize` endpoint."""

    def __init__(
        self, client: httpx.AsyncClient, base_url: str, model: str, api_key: str | None = None
    ) -> None:
        self.client = client
        self.url = base_url.rstrip("/") + "/tokenize"
        self.model = model
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def count(self, text: str, *, chat: bool) -> int:
        body: dict[str, Any] = {"model": self.model}
        if chat:
            body["messages"] = [{"role": "user", "content": text}]
        else:
            body["prompt"] = text
        try:
            resp = await self.client.post(self.url, json=body, headers=self.headers)
        except httpx.HTTPError as exc:
            raise BenchError(f"cannot reach {self.url}: {exc}") from exc
        if resp.status_code in NO_TOKENIZE:
            raise NoTokenizeRoute(self.url, resp.status_code)
        if resp.status_code != 200:
            raise BenchError(f"{self.url} answered HTTP {resp.status_code}: {resp.text[:200]}")
        answer = resp.json()
        # vLLM answers {"count": N, "tokens": [...]}; llama-server {"tokens": [...]} only.
        return int(answer["count"]) if "count" in answer else len(answer["tokens"])


# What a server without a /tokenize route answers.
NO_TOKENIZE = (404, 405, 501)


class NoTokenizeRoute(BenchError):
    """The server has no /tokenize."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(
            f"{url} answered {status}: the server cannot count tokens, and the store has no "
            "tokenizer for this model",
            hint="pass --tokenizer PATH (a local model folder) to count with its tokenizer",
        )


class StoreTokenizer:
    """Counts with `tokenizer.json` from a model folder (the `tokenizers` package), chat
    prompts through the folder's chat template (Jinja, as transformers renders it)."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.template = _chat_template(folder)

    async def count(self, text: str, *, chat: bool) -> int:
        if chat and self.template is not None:
            messages = [{"role": "user", "content": text}]
            rendered = self.template.render(messages=messages, add_generation_prompt=True)
            return len(self.tok.encode(rendered, add_special_tokens=False).ids)
        return len(self.tok.encode(text).ids)


def _chat_template(folder: Path) -> Any:
    """The folder's chat template (`chat_template.jinja`, else tokenizer_config.json's)."""
    import json

    from jinja2.sandbox import ImmutableSandboxedEnvironment

    path = folder / "chat_template.jinja"
    source = path.read_text(encoding="utf-8") if path.is_file() else None
    config = folder / "tokenizer_config.json"
    if source is None and config.is_file():
        source = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
    if not isinstance(source, str):
        return None
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    return env.from_string(source)


class FallbackCounter:
    """The server's count; the store's tokenizer from the first time the server has none."""

    def __init__(self, server: ServerTokenizer, folder: Path | None) -> None:
        self.server = server
        self.folder = folder
        self.local: StoreTokenizer | None = None

    async def count(self, text: str, *, chat: bool) -> int:
        if self.local is not None:
            return await self.local.count(text, chat=chat)
        try:
            return await self.server.count(text, chat=chat)
        except NoTokenizeRoute:
            if self.folder is None or not (self.folder / "tokenizer.json").is_file():
                raise
            self.local = StoreTokenizer(self.folder)
            return await self.local.count(text, chat=chat)


class LocalTokenizer:
    """Counts with a transformers tokenizer loaded from a local folder (offline)."""

    def __init__(self, folder: Path) -> None:
        if (
            not (folder / "tokenizer_config.json").exists()
            and not (folder / "tokenizer.json").exists()
        ):
            raise BenchError(
                f"no tokenizer in {folder}",
                hint="--tokenizer takes a local model folder holding tokenizer.json",
            )
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)

    async def count(self, text: str, *, chat: bool) -> int:
        if chat:
            ids = self.tok.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True
            )
            return len(ids)
        return len(self.tok(text)["input_ids"])

    def count_sync(self, text: str) -> int:
        """Output tokens for the no-usage fallback (no special tokens)."""
        return len(self.tok(text, add_special_tokens=False)["input_ids"])


def _words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(WORDS) for _ in range(n)]


async def fit_prompt(
    counter: TokenCounter, target: int, rng: random.Random, *, chat: bool, prefix: str = ""
) -> tuple[str, int]:
    """A prompt of `target` tokens (±1 where words split unevenly), and its exact count."""
    words = [f"{rng.randrange(10**6)}", *_words(rng, max(1, target))]
    best: tuple[str, int] | None = None
    for _ in range(8):
        text = prefix + " ".join(words)
        count = await counter.count(text, chat=chat)
        if best is None or abs(count - target) < abs(best[1] - target):
            best = (text, count)
        if count == target:
            break
        if count > target:
            cut = max(1, (count - target + 1) // 2)
            words = words[: max(1, len(words) - cut)]
        else:
            words.extend(_words(rng, max(1, (target - count + 1) // 2)))
    assert best is not None
    return best


async def make_prompts(
    counter: TokenCounter, n: int, target: int, *, chat: bool, seed: int = 0
) -> list[tuple[str, int]]:
    """`n` distinct prompts of `target` tokens each."""
    rng = random.Random(seed)  # noqa: S311  (reproducible load, not secrets)
    return [await fit_prompt(counter, target, rng, chat=chat) for _ in range(n)]


def shared_prefix(tokens_hint: int, seed: int = 1) -> str:
    """A long text to share between prompts (about `tokens_hint` tokens of common words)."""
    rng = random.Random(seed)  # noqa: S311  (reproducible load, not secrets)
    return "Read this passage: " + " ".join(_words(rng, tokens_hint)) + ".\n"
