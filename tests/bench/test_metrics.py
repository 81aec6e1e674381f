"""Metric math on synthetic timelines: exact values, reasoning tokens, missing usage."""

from __future__ import annotations

import numpy as np
import pytest

from corral.bench import metrics as m
from corral.bench.client import record_event
from corral.bench.timeline import KIND_CODES, Timeline, Usage
from corral.errors import BenchError


def timeline(
    n: int = 10,
    *,
    ttft: float = 0.2,
    itl: float = 0.02,
    sent: float = 100.0,
    kinds: str | None = None,
    usage: Usage | None = None,
    scheduled: float | None = None,
    max_tokens: int | None = None,
    warmup: bool = False,
) -> Timeline:
    """Token chunks at sent + ttft + i·itl; usage = n tokens unless given."""
    tl = Timeline(
        scheduled=sent if scheduled is None else scheduled,
        sent=sent,
        max_tokens=max_tokens,
        warmup=warmup,
    )
    names = {code: kind for kind, code in KIND_CODES.items()}
    for i, kind in enumerate(kinds or "c" * n):
        tl.add_chunk(sent + ttft + itl * i, names[kind])
    tl.usage = usage if usage is not None else Usage(prompt_tokens=50, completion_tokens=n)
    tl.end = tl.chunk_times[-1] + 0.001 if tl.chunk_times else sent
    return tl


def test_exact_figures_of_a_regular_stream() -> None:
    rm = m.request_metrics(timeline(10))
    assert rm is not None
    assert rm.ttft == pytest.approx(0.2)
    assert rm.ttfvt == pytest.approx(0.2)
    assert rm.e2e == pytest.approx(0.38)
    assert rm.tpot == pytest.approx(0.02)
    assert rm.decode_tok_s == pytest.approx(50.0)
    assert rm.seed_tok_s == pytest.approx(10 / 0.38)
    assert rm.gaps == pytest.approx([0.02] * 9)
    assert rm.tokens == m.TokenCount(10, 0, "usage")


def test_tpot_uses_server_tokens_not_chunks() -> None:
    """Two tokens per chunk (5 chunks, usage says 10): TPOT is per token, not per chunk."""
    rm = m.request_metrics(timeline(5, itl=0.04, usage=Usage(completion_tokens=10)))
    assert rm is not None
    assert rm.tpot == pytest.approx(0.16 / 9)
    assert rm.gaps == pytest.approx([0.04] * 4)


def test_reasoning_tokens_count_and_are_shown_apart() -> None:
    usage = Usage(completion_tokens=10, reasoning_tokens=4)
    rm = m.request_metrics(timeline(kinds="rrrrcccccc", usage=usage))
    assert rm is not None
    assert rm.tokens == m.TokenCount(10, 4, "usage")
    assert rm.tokens.visible == 6
    assert rm.ttft == pytest.approx(0.2)
    assert rm.ttfvt == pytest.approx(0.2 + 4 * 0.02)
    # seed-style rate counts reasoning too: 10 tokens over the whole request
    assert rm.seed_tok_s == pytest.approx(10 / 0.38)


def test_an_empty_token_step_ends_ttft_but_not_ttfvt() -> None:
    """vLLM streams a chunk per token step, its text empty when the token decodes to
    nothing yet: the token was generated then (TTFT), but nothing was visible (TTFVT)."""
    rm = m.request_metrics(timeline(kinds="eccc", usage=Usage(completion_tokens=4)))
    assert rm is not None
    assert rm.ttft == pytest.approx(0.2)
    assert rm.ttfvt == pytest.approx(0.2 + 0.02)


def test_reasoning_share_estimated_from_chunks_when_usage_has_no_details() -> None:
    rm = m.request_metrics(timeline(kinds="rrrccc", usage=Usage(completion_tokens=6)))
    assert rm is not None
    assert rm.tokens == m.TokenCount(6, 3, "usage")


def test_only_reasoning_means_no_visible_token() -> None:
    rm = m.request_metrics(timeline(kinds="rrr", usage=Usage(completion_tokens=3)))
    assert rm is not None
    assert rm.ttfvt is None


def test_missing_usage_falls_back_to_chunks_and_says_so() -> None:
    tl = timeline(kinds="rrcccc", usage=Usage())
    tl.usage = None
    count = m.output_tokens(tl)
    assert count == m.TokenCount(6, 2, "chunks")
    summary = m.summarize([tl])
    assert summary.token_sources == {"chunks": 1}
    assert any(
        "no usage" in note and "one token per stream chunk" in note for note in summary.notes
    )


def test_missing_usage_with_a_tokenizer_counts_the_text() -> None:
    tl = timeline(kinds="rcc")
    tl.usage = None
    tl.reasoning_text, tl.content_text = "a b c", "d e"
    count = m.output_tokens(tl, counter=lambda text: len(text.split()))
    assert count == m.TokenCount(5, 3, "tokenizer")


def test_single_token_has_no_tpot_but_counts_as_good() -> None:
    rm = m.request_metrics(timeline(1))
    assert rm is not None
    assert rm.tpot is None
    assert m.is_good(rm, m.SLO(ttft=0.5, tpot=0.01))


def test_failed_request_has_no_metrics() -> None:
    tl = Timeline(scheduled=0.0, sent=0.0, error="HTTP 500: boom")
    assert m.request_metrics(tl) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ttft=500ms,tpot=50ms", m.SLO(ttft=0.5, tpot=0.05)),
        ("ttft=0.5s", m.SLO(ttft=0.5)),
        ("e2e=2000", m.SLO(e2e=2.0)),
        ("tpot: 20ms , ttft:1s", m.SLO(ttft=1.0, tpot=0.02)),
        ("", m.SLO()),
    ],
)
def test_parse_slo(text: str, expected: m.SLO) -> None:
    assert m.parse_slo(text) == expected


@pytest.mark.parametrize("text", ["ttft=fast", "latency=5ms", "ttft=5min"])
def test_parse_slo_rejects_bad_items(text: str) -> None:
    with pytest.raises(BenchError, match="--slo"):
        m.parse_slo(text)


def test_goodput_and_slo() -> None:
    fast = timeline(10, ttft=0.1, itl=0.01, sent=0.0)
    slow_first = timeline(10, ttft=0.9, itl=0.01, sent=0.0)
    slow_decode = timeline(10, ttft=0.1, itl=0.1, sent=0.0)
    summary = m.summarize([fast, slow_first, slow_decode], slo=m.parse_slo("ttft=500ms,tpot=50ms"))
    assert summary.good_fraction == pytest.approx(1 / 3)
    assert summary.goodput_req_s == pytest.approx(1 / summary.duration)


def test_summary_excludes_warmup_and_counts_failures() -> None:
    warm = timeline(10, sent=0.0, warmup=True)
    measured = [timeline(10, sent=1.0), timeline(10, sent=2.0)]
    failed = Timeline(scheduled=3.0, sent=3.0, end=3.1, error="HTTP 500: scripted failure")
    s = m.summarize([warm, *measured, failed])
    assert (s.requests, s.ok, s.failed) == (3, 2, 1)
    assert s.output_tokens == 20
    assert s.prompt_tokens == 100
    assert s.duration == pytest.approx(3.1 - 1.0)
    assert s.output_tok_s == pytest.approx(20 / 2.1)
    assert s.errors == ["HTTP 500: scripted failure"]
    assert s.goodput_req_s is None


def test_early_stops_are_counted() -> None:
    short = timeline(5, max_tokens=10)
    full = timeline(10, max_tokens=10)
    s = m.summarize([short, full])
    assert s.early_stops == 1
    assert any("stopped before max_tokens" in n for n in s.notes)


def test_queue_delay_is_sent_minus_scheduled() -> None:
    rm = m.request_metrics(timeline(3, sent=10.0, scheduled=9.75))
    assert rm is not None
    assert rm.queue_delay == pytest.approx(0.25)
    assert rm.ttft == pytest.approx(0.2)  # TTFT starts at the send, not the schedule


def test_distribution_matches_numpy() -> None:
    values = [0.1, 0.2, 0.3, 0.4, 1.0]
    d = m.distribution(values)
    assert d["p50"] == pytest.approx(np.percentile(values, 50))
    assert d["p99"] == pytest.approx(np.percentile(values, 99))
    assert d["mean"] == pytest.approx(0.4)
    assert m.distribution([]) == {}


def test_steady_rate_counts_tokens_inside_the_full_load_window() -> None:
    # Four back-to-back requests on one slot: 10 tokens per second throughout.
    tls = [timeline(10, ttft=0.1, itl=0.1, sent=float(i)) for i in range(4)]
    per = [m.request_metrics(t) for t in tls]
    rate = m.steady_tokens_per_s(tls, per)
    assert rate == pytest.approx(10.0, rel=0.15)


def test_steady_rate_is_none_when_the_window_is_too_short() -> None:
    tls = [timeline(10, sent=0.0), timeline(10, sent=0.0)]
    assert m.steady_tokens_per_s(tls, [m.request_metrics(t) for t in tls]) is None


@pytest.mark.parametrize(
    ("event", "kinds"),
    [
        ({"choices": [{"delta": {"role": "assistant", "content": ""}}]}, []),
        ({"choices": [{"delta": {"content": "hi"}}]}, ["c"]),
        ({"choices": [{"delta": {"reasoning": "hm"}}]}, ["r"]),
        ({"choices": [{"delta": {"reasoning_content": "hm", "content": None}}]}, ["r"]),
        ({"choices": [{"delta": {"tool_calls": [{"index": 0}]}}]}, ["t"]),
        ({"choices": [{"text": "tok "}]}, ["c"]),
        # a token step whose text is empty (special token, half a character): vLLM sends it
        ({"choices": [{"text": ""}]}, ["e"]),
        ({"choices": [{"delta": {"content": ""}}]}, ["e"]),
        ({"choices": [{"text": "", "finish_reason": "stop"}]}, []),
        ({"choices": [{"delta": {}, "finish_reason": "stop"}]}, []),
        ({"choices": [], "usage": {"completion_tokens": 3}}, []),
    ],
)
def test_stream_events_are_classified(event: dict[str, object], kinds: list[str]) -> None:
    tl = Timeline(scheduled=0.0)
    record_event(tl, event, 1.0, keep_text=True)
    assert tl.kinds == kinds


def test_usage_event_reads_reasoning_and_cached_tokens() -> None:
    tl = Timeline(scheduled=0.0)
    usage = {
        "prompt_tokens": 9,
        "completion_tokens": 7,
        "completion_tokens_details": {"reasoning_tokens": 3},
        "prompt_tokens_details": {"cached_tokens": 8},
    }
    record_event(tl, {"choices": [], "usage": usage}, 1.0, keep_text=False)
    assert tl.usage == Usage(9, 7, 3, 8)
