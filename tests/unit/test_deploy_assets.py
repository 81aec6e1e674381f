"""The files in deploy/ against the code they describe.

The dashboard's PromQL may only name series the gateway really exports, with labels they
really carry: the exported names come from a live gateway's /metrics after known traffic
(a scripted engine as a real subprocess, plus a dead replica so failovers and an open
breaker show up), not from a list kept by hand. The Prometheus job must point at the
gateway's default address and the path that served those metrics; the systemd unit must
run `corral serve --config` with the stop timeout and hardening docs/monitoring.md promises.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from openai.types.chat import ChatCompletionMessageParam
from typer.testing import CliRunner

from corral.cli import app as cli_app
from corral.config import GatewaySettings
from corral.fleet import StaticFleet
from corral.gateway import GatewayServer
from corral.runtime.docker import DockerCli
from corral.runtime.process import ProcessRunning
from tests.gateway.conftest import replica
from tests.support.scripted import start_scripted

pytestmark = pytest.mark.timeout(120)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "corral-gateway.json"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
UNIT = DEPLOY / "systemd" / "corral.service"

Exposition = dict[str, set[str]]  # series name -> label names seen on it


# -- the gateway's real exposition -------------------------------------------------------
def gateway_job() -> dict[str, Any]:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    job: dict[str, Any] = jobs["corral-gateway"]
    return job


async def scrape_after_traffic(metrics_path: str) -> str:
    """Stream a few answers (reasoning, usage, gaps) and one unknown model, then scrape."""
    engine = start_scripted("--tokens", "3", "--reasoning-tokens", "2", "--itl", "0.01")
    try:
        fleet = StaticFleet.of([replica(engine), replica("http://127.0.0.1:9", rid="dead")])
        server = GatewayServer(fleet, GatewaySettings(), port=0)
        await server.start()
        try:
            await send_traffic(server.url)
            async with httpx.AsyncClient() as client:
                answer = await client.get(server.url + metrics_path)
            answer.raise_for_status()
            return answer.text
        finally:
            await server.stop()
    finally:
        engine.stop()


async def send_traffic(url: str) -> None:
    hello: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0) as sdk:
        for _ in range(4):  # the dead replica fails (failover) until its breaker opens
            stream = await sdk.chat.completions.create(
                model="scripted",
                messages=hello,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for _chunk in stream:
                pass
        with pytest.raises(openai.NotFoundError):
            await sdk.chat.completions.create(model="nope", messages=hello)


def parse_exposition(text: str) -> Exposition:
    series: Exposition = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)
        assert name, line
        labels = re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="', line[name.end() :].split("} ")[0])
        series.setdefault(name.group(), set()).update(labels)
    return series


@pytest.fixture(scope="module")
def exported() -> Exposition:
    return parse_exposition(asyncio.run(scrape_after_traffic(gateway_job()["metrics_path"])))


# -- PromQL, as far as the dashboard needs it ---------------------------------------------
KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan"}
GROUPING = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)"


def metric_names(expr: str) -> set[str]:
    """Series names in a PromQL expression: identifiers that are not functions,
    keywords, label names, strings or ranges."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(GROUPING, " ", text)
    names = set()
    for found in re.finditer(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\()?", text):
        if found.group(2) is None and found.group(1) not in KEYWORDS:
            names.add(found.group(1))
    return names


def label_names(expr: str) -> set[str]:
    """Labels an expression groups by or matches on."""
    grouped = {n.strip() for g in re.findall(GROUPING, expr) for n in g.split(",")}
    matched = set()
    for matcher in re.findall(r"\{([^}]*)\}", expr):
        matched.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matcher))
    return (grouped | matched) - {""}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


# Engine series (vllm:*, scraped by the gateway) and NVML's GPU gauges are not in a
# scripted engine's exposition: tests/integration/test_prometheus.py checks those panels
# against the real vLLM engine through a real Prometheus.
ENGINE_OR_HOST = ("vllm:", "corral_host_gpu_")


def expressions() -> list[str]:
    every = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    return [e for e in every if not any(p in e for p in ENGINE_OR_HOST)]


def test_the_promql_reader_finds_series_and_skips_functions_labels_and_ranges() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, deployment) (rate(corral_x_bucket{key=~"a|b"}'
        "[$__rate_interval]))) / ignoring(le) corral_typo_total offset 5m"
    )
    assert metric_names(expr) == {"corral_x_bucket", "corral_typo_total"}
    assert label_names(expr) == {"le", "deployment", "key"}


def test_every_dashboard_series_is_exported_by_the_gateway(exported: Exposition) -> None:
    used = set()
    for expr in expressions():
        names = metric_names(expr)
        assert names, f"no series found in {expr!r}"
        unknown = names - exported.keys()
        assert not unknown, f"{expr!r} uses {unknown}; the gateway exports {sorted(exported)}"
        used |= names
    # Every panel the dashboard promises has its series (names the gateway exports).
    for wanted in (
        "corral_gateway_requests_total",
        "corral_gateway_in_flight",
        "corral_gateway_queued",
        "corral_gateway_time_to_first_token_seconds_bucket",
        "corral_gateway_inter_chunk_seconds_bucket",
        "corral_gateway_e2e_seconds_bucket",
        "corral_gateway_prompt_tokens_total",
        "corral_gateway_completion_tokens_total",
        "corral_gateway_reasoning_tokens_total",
        "corral_gateway_replica_up",
        "corral_gateway_replica_breaker_open",
    ):
        assert wanted in used & exported.keys(), wanted


def test_every_dashboard_label_is_on_the_series_it_is_used_with(exported: Exposition) -> None:
    for expr in expressions():
        carried = set().union(*(exported[name] for name in metric_names(expr)))
        missing = label_names(expr) - carried
        assert not missing, f"{expr!r} uses labels {missing}; the series carry {carried}"
    variable = dashboard()["templating"]["list"][0]["query"]["query"]
    found = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable)
    assert found, variable
    metric, label = found.groups()
    assert label in exported[metric]


def test_the_dashboard_imports_with_a_prometheus_datasource_input() -> None:
    data = dashboard()
    assert data["schemaVersion"] >= 39
    assert [i["name"] for i in data["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    for panel in data["panels"]:
        for part in (panel, *panel.get("targets", [])):
            if "datasource" in part:
                assert part["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]


# -- prometheus.yml -----------------------------------------------------------------------
def test_the_scrape_job_points_at_the_gateways_default_address() -> None:
    job = gateway_job()
    defaults = GatewaySettings()
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert targets == [f"{defaults.host}:{defaults.port}"]
    assert job["metrics_path"] == "/metrics"
    assert job.get("scheme", "http") == "http"


def test_the_commented_bearer_option_names_a_real_setting() -> None:
    text = PROMETHEUS.read_text()
    assert "metrics_require_key" in GatewaySettings.model_fields
    assert "`gateway.metrics_require_key: true`" in text
    assert "#   type: Bearer" in text


# -- corral.service -----------------------------------------------------------------------
def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """systemd unit syntax: [Section], Key=value, repeatable keys, # and ; comments."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"{path}: {raw!r} before any [Section]"
        assert "=" in line, f"{path}: bad line {raw!r}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(section: dict[str, list[str]], key: str) -> str:
    assert len(section.get(key, [])) == 1, f"{key} must be set exactly once"
    return section[key][0]


def test_the_unit_runs_corral_serve_with_a_config_as_its_own_user() -> None:
    service = read_unit(UNIT)["Service"]
    argv = one(service, "ExecStart").split()
    assert argv[0].startswith("/")
    assert argv[0].endswith("/corral")
    assert argv[1:] == ["serve", "--config", "/etc/corral/corral.yaml"]
    helped = CliRunner().invoke(cli_app, ["serve", "--help"])
    assert helped.exit_code == 0
    assert "--config" in helped.output
    assert one(service, "User") not in ("", "root")
    assert one(service, "Restart") == "on-failure"
    assert "multi-user.target" in read_unit(UNIT)["Install"]["WantedBy"]


def test_the_stop_timeout_outlasts_corrals_own_sigterm_to_sigkill_grace() -> None:
    service = read_unit(UNIT)["Service"]
    # only corral gets the signal: engines are corral's to stop (or to leave for adoption)
    assert one(service, "KillMode") == "process"
    runner_grace = inspect.signature(ProcessRunning.stop).parameters["grace"].default
    docker_grace = inspect.signature(DockerCli.stop).parameters["grace"].default
    # A process engine: grace for the leader, then grace again for members that outlived it.
    assert isinstance(runner_grace, float)
    assert isinstance(docker_grace, int)
    assert int(one(service, "TimeoutStopSec")) > max(2 * runner_grace, docker_grace) + 10


def test_the_unit_keeps_corral_home_writable_under_strict_hardening() -> None:
    service = read_unit(UNIT)["Service"]
    env = dict(e.split("=", 1) for e in service["Environment"])
    home = env["CORRAL_HOME"]
    assert home == "/var/lib/corral"
    assert one(service, "ProtectSystem") == "strict"
    assert home in one(service, "ReadWritePaths").split()
    assert one(service, "NoNewPrivileges") == "true"
    assert one(service, "PrivateTmp") == "true"
    assert env.get("HOME", home).startswith(home)  # caches under $HOME must be writable too
    for breaks_engines in ("PrivateDevices", "MemoryDenyWriteExecute", "PrivateNetwork"):
        assert breaks_engines not in service, f"{breaks_engines} breaks GPU engines or JIT"
