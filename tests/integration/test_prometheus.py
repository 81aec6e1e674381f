"""A real Prometheus (Debian's package) scraping a gateway that serves the real vLLM engine.

Prometheus runs with a templated copy of deploy/prometheus/prometheus.yml (the gateway's
address, one-second intervals, the alert rules by absolute path). Traffic goes through the
gateway with the official SDK; then every query of every panel of the Grafana dashboard is
evaluated through Prometheus's HTTP API and must return data. The fleet: the real vLLM
engine with a dead replica beside it (failovers, an open breaker, `corral_engine_scrape_up
0`), and a scripted reasoning engine (reasoning tokens, which SmolLM2 has none of), which is
stopped at the end to show its series going stale in Prometheus.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from corral.config import Capabilities, GatewaySettings
from corral.fleet import Policy, Replica, StaticFleet
from corral.gateway import GatewayServer
from corral.gateway.engine_metrics import nvml_sampler
from tests.support.console import Cleanup, LiveGateway
from tests.support.scripted import RunningEngine, start_scripted
from tests.support.vllm import LiveEngine, free_port

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "corral-gateway.json"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
# Panels over NVML's GPU gauges have no series on a machine without an NVIDIA driver.
GPU_ONLY = "corral_host_gpu_"


@dataclass
class Stack:
    gateway: str
    prometheus: str
    thinker: RunningEngine

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = httpx.get(self.prometheus + "/api/v1/query", params={"query": expr}, timeout=10)
        body = answer.json()
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


def templated_config(gateway_url: str, folder: Path) -> Path:
    """deploy/prometheus/prometheus.yml, pointed at the test gateway, scraping every second."""
    config = yaml.safe_load(CONFIG.read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(CONFIG.parent / name) for name in config["rule_files"]]
    (job,) = config["scrape_configs"]
    job["static_configs"][0]["targets"] = [gateway_url.removeprefix("http://")]
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_prometheus(config: Path, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={folder / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
    with (folder / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, (folder / "prometheus.log").read_text()[-2000:]
        try:
            if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(
        "Prometheus did not get ready:\n" + (folder / "prometheus.log").read_text()
    )


def fleet(engine: LiveEngine, thinker: RunningEngine) -> StaticFleet:
    smol = Policy(engine.served_name, capabilities=Capabilities(context_length=4096))
    return StaticFleet.of([
        # first, so the balancer tries it, fails over, and opens its breaker
        (smol, Replica("vllm-dead", engine.served_name, "http://127.0.0.1:9", routable=True,
                       state="ready")),
        (smol, Replica("vllm-0", engine.served_name, engine.base_url, routable=True,
                       state="ready")),
        (Policy("thinker", capabilities=Capabilities(reasoning=True)),
         Replica("thinker-0", "thinker", thinker.base_url, routable=True, state="ready")),
    ])  # fmt: skip


@pytest.fixture(scope="module")
def stack(vllm_engine: LiveEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not Path(PROMETHEUS).exists():
        pytest.fail("prometheus is not installed: apt-get install prometheus (.ci/run does)")
    folder = tmp_path_factory.mktemp("prometheus")
    thinker = start_scripted("--tokens", "6", "--reasoning-tokens", "4", "--itl", "0.01",
                             model="thinker")  # fmt: skip

    async def build() -> tuple[GatewayServer, Cleanup]:
        server = GatewayServer(fleet(vllm_engine, thinker), GatewaySettings(), port=0)
        await server.start()
        return server, server.stop

    try:
        with LiveGateway(build) as live:
            proc, url = start_prometheus(templated_config(live.url, folder), folder)
            try:
                yield Stack(live.url, url, thinker)
            finally:
                proc.terminate()
                proc.wait(20)
    finally:
        thinker.stop()


def drive_traffic(url: str, engine: str, seconds: float = 8.0) -> None:
    """Streamed chats (usage on) to vLLM and the reasoning engine for `seconds`; the same
    prompt again and again so vLLM's prefix cache has hits."""
    sdk = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        for model in (engine, "thinker"):
            stream = sdk.chat.completions.create(
                model=model, max_tokens=8, stream=True, stream_options={"include_usage": True},
                messages=[{"role": "user", "content": "Describe a calm lake at dawn in detail."}],
            )  # fmt: skip
            for _chunk in stream:
                pass


def panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def as_grafana_would(expr: str) -> str:
    """The dashboard variables as Grafana fills them: All deployments, a 1-minute window."""
    return expr.replace("$deployment", ".*").replace("$__rate_interval", "1m")


def finite(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The series with a number (a quantile or ratio over an empty window is NaN)."""
    return [r for r in result if math.isfinite(float(r["value"][1]))]


def wait_for(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_every_dashboard_query_returns_data_from_a_real_prometheus(
    stack: Stack, vllm_engine: LiveEngine
) -> None:
    drive_traffic(stack.gateway, vllm_engine.served_name)
    time.sleep(2.5)  # the last answers' counters reach Prometheus on its next scrape
    gpu = nvml_sampler() is not None
    checked = 0
    for title, expr in panel_queries():
        if GPU_ONLY in expr and not gpu:
            continue
        result = wait_for(lambda expr=expr: finite(stack.query(as_grafana_would(expr))))
        assert result, f"panel {title!r}: {expr} returned no data (or only NaN)"
        checked += 1
    assert checked >= len(panel_queries()) - (0 if gpu else 2)
    kv = stack.query(f'vllm:kv_cache_usage_perc{{deployment="{vllm_engine.served_name}"}}')
    assert kv
    assert kv[0]["metric"]["replica"] == "vllm-0"
    assert kv[0]["metric"]["host"] == "local"


def test_alert_rules_load_and_a_dead_engine_is_pending(stack: Stack) -> None:
    rules = httpx.get(stack.prometheus + "/api/v1/rules").json()["data"]["groups"]
    names = {r["name"]: r for group in rules for r in group["rules"]}
    assert set(names) == {
        "CorralEngineDown", "CorralNoRoutableReplica", "CorralTTFTOverSLO",
        "CorralKVCacheNearlyFull", "CorralQueueGrowing", "CorralDeploymentRestarting",
    }  # fmt: skip
    assert all(rule["health"] == "ok" for rule in names.values()), names

    def dead_alert() -> list[dict[str, Any]]:
        alerts = httpx.get(stack.prometheus + "/api/v1/alerts").json()["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "CorralEngineDown"]

    (alert,) = wait_for(dead_alert)
    assert alert["labels"]["replica"] == "vllm-dead"
    assert alert["state"] in ("pending", "firing")


def test_a_stopped_engine_goes_stale_and_scrape_up_says_0(stack: Stack) -> None:
    assert stack.query('vllm:num_requests_running{deployment="thinker"}')
    stack.thinker.stop()

    def gone() -> bool:
        return not stack.query('vllm:num_requests_running{deployment="thinker"}')

    assert wait_for(gone), "the stopped engine's series did not go stale"
    (up,) = stack.query('corral_engine_scrape_up{deployment="thinker"}')
    assert up["value"][1] == "0"
    assert stack.query("corral_gateway_requests_total")  # the rest of /metrics still there
