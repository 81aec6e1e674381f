"""Pure parts of the console's pages: the fleet cards, the command diff between runs, the
live counters."""

from __future__ import annotations

from corral.config import Capabilities
from corral.fleet import DeploymentView, Policy, Replica
from corral.gateway.metrics import GatewayMetrics
from corral.gateway.ui.views import command_diff, command_lines, fleet_view, live_view


def test_fleet_cards_read_the_policy_and_show_why_a_deployment_without_replicas_is_down() -> None:
    smol = Policy("smol", aliases=("default",), capabilities=Capabilities(context_length=4096),
                  engine="llama-server")  # fmt: skip
    up = DeploymentView(smol, (Replica("smol@a", "smol", "http://10.0.0.7:8001", routable=True,
                                       state="ready"),), state="ready")  # fmt: skip
    down = DeploymentView(Policy("big"), reason="port 8000 is in use", state="failed")
    view = fleet_view([up, down], [], None, [])
    hosts = {h["host"]: h["deployments"] for h in view["hosts"]}
    (card,) = hosts["10.0.0.7"]
    assert (card["name"], card["replica"], card["engine"]) == ("smol", "smol@a", "llama-server")
    assert card["aliases"] == ["default"]
    assert card["context_length"] == 4096
    assert (card["state"], card["routable"], card["reason"]) == ("ready", True, "")
    (failed,) = hosts["local"]
    assert (failed["name"], failed["replica"], failed["routable"]) == ("big", None, False)
    assert (failed["state"], failed["reason"]) == ("failed", "port 8000 is in use")


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
