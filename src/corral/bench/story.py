"""`corral bench story`: the seed write-up's "Throughput Tests" table, measured properly.

The seed asked for stories of 200, 400 and 2000 words and divided tokens by total seconds
(≈34 tok/s). That figure folds the time to first token into the rate and, for a
reasoning model, depends on whether reasoning tokens were counted. This workload prints
the seed's figure next to the true decode rate: one request at a time, streamed, tokens
from the server's usage (reasoning included and shown separately).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from corral.bench.client import Endpoint, build_payload
from corral.bench.load import Request, Runner
from corral.bench.metrics import Counter, request_metrics
from corral.bench.timeline import Timeline

PROMPT = (
    "Write a {words}-word story about a lighthouse keeper who finds a message in a bottle. "
    "Write the whole story in one go."
)


@dataclass
class StorySettings:
    words: list[int] = field(default_factory=lambda: [200, 400, 2000])
    tokens_per_word: float = 1.5
    """The seed's rows are 300, 600 and 3000 tokens for 200, 400 and 2000 words."""
    max_tokens: int | None = None
    """An absolute cap on every story's tokens (keeps the run short on a CPU)."""
    repeat: int = 1

    def budget(self, words: int) -> int:
        wanted = math.ceil(words * self.tokens_per_word)
        return min(wanted, self.max_tokens) if self.max_tokens else wanted


def story_row(words: int, budget: int, tl: Timeline, fallback: Counter | None) -> dict[str, Any]:
    m = request_metrics(tl, fallback)
    if m is None:
        return {"words": words, "max_tokens": budget, "error": tl.error}
    return {
        "words": words,
        "max_tokens": budget,
        "tokens": m.tokens.total,
        "reasoning_tokens": m.tokens.reasoning,
        "visible_tokens": m.tokens.visible,
        "token_source": m.tokens.source,
        "seconds": m.e2e,
        "seed_tok_s": m.seed_tok_s,
        "ttft": m.ttft,
        "ttfvt": m.ttfvt,
        "decode_tok_s": m.decode_tok_s,
        "finish_reason": tl.finish_reason,
    }


async def run_story(
    endpoint: Endpoint, settings: StorySettings, *, runner: Runner, fallback: Counter | None = None
) -> dict[str, Any]:
    """One warm-up request, then each story in turn (never two at once)."""
    warm = Request(build_payload(endpoint, "Say hello.", 8, ignore_eos=False, extra={}), 8)
    await runner.concurrency(1, [warm], warmup=1)
    rows = []
    for words in settings.words:
        budget = settings.budget(words)
        payload = build_payload(
            endpoint, PROMPT.format(words=words), budget, ignore_eos=False, extra={}
        )
        for _ in range(settings.repeat):
            run = await runner.concurrency(1, [Request(payload, budget)])
            rows.append(story_row(words, budget, run.timelines[0], fallback))
    return {"kind": "story", "settings": asdict(settings), "rows": rows, "measured_at": time.time()}
