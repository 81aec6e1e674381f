"""Pure parts of the console's pages: the command diff between runs, the live counters."""

from __future__ import annotations

from corral.gateway.metrics import GatewayMetrics
from corral.gateway.ui.views import command_diff, command_lines, live_view


def test_a_command_reads_one_option_per_line() -> None:
    line = "vllm serve /models/x --max-model-len 131072 --enable-auto-tool-choice --host 0.0.0.0"
    assert command_lines(line) == [
        "vllm serve /models/x", "--max-model-len 131072", "--enable-auto-tool-choice",
        "--host 0.0.0.0",
    ]  # fmt: skip


def test_the_diff_shows_removed_and_added_options_even_when_they_start_with_dashes() -> None:
    before = "vllm serve m --port 8000 --gpu-memory-utilization 0.90"
    after = "vllm serve m --port 8000 --gpu-memory-utilization 0.85 --tool-call-parser openai"
    assert command_diff(before, after) == [
        "- --gpu-memory-utilization 0.90",
        "+ --gpu-memory-utilization 0.85",
        "+ --tool-call-parser openai",
    ]
    assert command_diff(before, before) == []


def test_live_counters_sum_per_deployment_and_skip_unresolved_requests() -> None:
    metrics = GatewayMetrics()
    metrics.requests.inc(("smol", "smol", "k", "200"), 3)
    metrics.requests.inc(("smol", "default", "k", "429"))
    metrics.requests.inc(("", "", "k", "404"))  # never resolved: no deployment
    metrics.ttft.observe(("smol", "smol", "k"), 0.25)
    metrics.ttft.observe(("smol", "default", "k"), 0.75)
    metrics.completion_tokens.inc(("smol", "smol", "k"), 40)
    view = live_view(metrics, now=100.0)
    assert view["deployments"] == {
        "smol": {"requests": 4.0, "errors": 1.0, "ttft_sum": 1.0, "ttft_count": 2.0,
                 "completion_tokens": 40.0},
    }  # fmt: skip
