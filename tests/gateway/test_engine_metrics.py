"""Engine metrics under the gateway's /metrics: relabelled, merged, cached, and honest
about an engine that does not answer (its series vanish; corral_engine_scrape_up 0).

Engines are real loopback servers: the scripted engine (vLLM-named series) as a
subprocess, and small aiohttp servers in this process where a test needs to count hits
or to hang.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import httpx
import pytest
from aiohttp import web

from corral.config import GatewaySettings
from corral.fleet import Policy, Replica, StaticFleet
from corral.gateway import GatewayServer
from corral.gateway.engine_metrics import (
    EngineScraper,
    GpuSample,
    gpu_lines,
    host_of,
    parse_families,
    relabel,
)
from tests.gateway.conftest import Served, StartEngine, replica

pytestmark = pytest.mark.timeout(60)

VLLM_TEXT = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="smol"} 2.0
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="smol"} 41.0
# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{engine="0",le="0.3",model_name="smol"} 1.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf",model_name="smol"} 3.0
vllm:e2e_request_latency_seconds_count{engine="0",model_name="smol"} 3.0
vllm:e2e_request_latency_seconds_sum{engine="0",model_name="smol"} 1.5
"""


def samples(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


# -- pure: relabel and parse ----------------------------------------------------------------
def test_relabel_puts_ours_first_and_renames_a_clashing_engine_label() -> None:
    ours = 'deployment="d",replica="r",host="h"'
    assert relabel(None, ours) == "{" + ours + "}"
    assert (
        relabel('{model_name="m"}', ours) == '{deployment="d",replica="r",host="h",model_name="m"}'
    )
    assert relabel('{host="gpu1",a="x"}', ours).endswith(',exported_host="gpu1",a="x"}')


def test_histogram_samples_stay_in_their_family() -> None:
    families = parse_families(VLLM_TEXT, 'deployment="d"')
    histogram = families["vllm:e2e_request_latency_seconds"]
    assert histogram.type == "histogram"
    assert len(histogram.samples) == 4
    assert all(s.startswith("vllm:e2e_request_latency_seconds_") for s in histogram.samples)
    assert families["vllm:prompt_tokens_total"].samples == [
        'vllm:prompt_tokens_total{deployment="d",engine="0",model_name="smol"} 41.0'
    ]


def test_host_label_is_the_fleet_host_else_the_engine_address() -> None:
    local = Replica(id="a", served_name="m", base_url="http://127.0.0.1:8001")
    remote = Replica(id="b", served_name="m", base_url="http://10.0.0.7:8001")
    assert host_of(local) == "local"
    assert host_of(remote) == "10.0.0.7"


def test_gpu_gauges_leave_out_what_nvml_cannot_say() -> None:
    h200 = GpuSample(0, "NVIDIA H200", 2 * 2**30, 141 * 2**30, 37.0)
    gb10 = GpuSample(1, "NVIDIA GB10", None, None, 12.0)  # memory NOT_SUPPORTED
    lines = list(gpu_lines([h200, gb10], host="spark"))
    used = samples("\n".join(lines), "corral_host_gpu_memory_used_bytes")
    assert used == [
        'corral_host_gpu_memory_used_bytes{host="spark",gpu="0",name="NVIDIA H200"} 2147483648'
    ]
    busy = samples("\n".join(lines), "corral_host_gpu_utilization_ratio")
    assert [b.rsplit(" ", 1)[1] for b in busy] == ["0.37", "0.12"]
    assert list(gpu_lines([])) == []


# -- through a real gateway -----------------------------------------------------------------
async def scrape(url: str) -> str:
    async with httpx.AsyncClient() as client:
        answer = await client.get(url + "/metrics")
    answer.raise_for_status()
    return answer.text


@pytest.fixture
async def gateway_for() -> AsyncIterator[Callable[[list[Served]], asyncio.Future[str]]]:
    servers: list[GatewayServer] = []

    async def start(replicas: list[Served]) -> str:
        server = GatewayServer(StaticFleet.of(replicas), GatewaySettings(), port=0)
        await server.start()
        servers.append(server)
        return server.url

    yield start  # type: ignore[misc]
    for server in servers:
        await server.stop()


async def test_two_engines_become_one_family_each_labelled_by_replica(
    engines: StartEngine, gateway_for: Callable[[list[Served]], asyncio.Future[str]]
) -> None:
    a, b = engines(), engines()
    url = await gateway_for([replica(a, rid="a"), replica(b, rid="b")])
    text = await scrape(url)
    running = samples(text, "vllm:num_requests_running")
    assert sorted(r.split("replica=")[1].split(",")[0] for r in running) == ['"a"', '"b"']
    assert all('deployment="scripted"' in r and 'host="local"' in r for r in running)
    lines = text.splitlines()
    first = lines.index(running[0])
    assert lines[first + 1] == running[1]  # one family: the replicas' samples together
    assert samples(text, "corral_engine_scrape_up") == [
        'corral_engine_scrape_up{deployment="scripted",replica="a",host="local"} 1',
        'corral_engine_scrape_up{deployment="scripted",replica="b",host="local"} 1',
    ]


async def test_an_engine_that_dies_loses_its_series_and_reports_scrape_up_0(
    engines: StartEngine, gateway_for: Callable[[list[Served]], asyncio.Future[str]]
) -> None:
    a, b = engines(), engines()
    url = await gateway_for([replica(a, rid="a"), replica(b, rid="b")])
    assert len(samples(await scrape(url), "vllm:num_requests_running")) == 2
    a.stop()
    await asyncio.sleep(2.1)  # past the cache's max_age
    text = await scrape(url)
    running = samples(text, "vllm:num_requests_running")
    assert len(running) == 1
    assert 'replica="b"' in running[0]
    assert 'corral_engine_scrape_up{deployment="scripted",replica="a",host="local"} 0' in text
    assert "corral_gateway_replica_up" in text  # the rest of /metrics is all there


async def test_a_hanging_engine_costs_a_scrape_its_timeout_not_more(
    gateway_for: Callable[[list[Served]], asyncio.Future[str]],
) -> None:
    released = asyncio.Event()

    async def hang(_request: web.Request) -> web.Response:
        await released.wait()
        return web.Response(text="")

    async with serving(hang) as hung:
        url = await gateway_for([replica(hung, rid="hung")])
        began = time.monotonic()
        text = await scrape(url)
        took = time.monotonic() - began
        released.set()
    assert 'corral_engine_scrape_up{deployment="scripted",replica="hung",host="local"} 0' in text
    assert took < 3.0  # the scraper's timeout is 1 s; a hung engine must not hold /metrics


async def test_scrapes_within_max_age_share_one_engine_fetch() -> None:
    hits = 0

    async def metrics(_request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        await asyncio.sleep(0.05)
        return web.Response(text=VLLM_TEXT)

    async with serving(metrics) as url, aiohttp.ClientSession() as session:
        now = [0.0]
        scraper = EngineScraper(session, max_age=2.0, clock=lambda: now[0])
        target = [replica(url, rid="one")]
        first = await asyncio.gather(*(scraper.collect(target) for _ in range(5)))
        assert hits == 1
        assert all(lines == first[0] for lines in first)
        now[0] = 1.0
        await scraper.collect(target)
        assert hits == 1
        now[0] = 2.5
        await scraper.collect(target)
        assert hits == 2


async def test_stopped_replicas_are_not_scraped(
    engines: StartEngine, gateway_for: Callable[[list[Served]], asyncio.Future[str]]
) -> None:
    a = engines()
    stopped = Policy("scripted"), Replica("old", "scripted", a.base_url, state="stopped")
    text = await scrape(await gateway_for([stopped]))
    assert "vllm:" not in text
    assert 'replica="old"' not in "\n".join(samples(text, "corral_engine_scrape_up"))


class serving:
    """A one-route aiohttp server for /metrics on a free loopback port."""

    def __init__(self, handler: Callable[[web.Request], asyncio.Future[web.Response]]) -> None:
        self.app = web.Application()
        self.app.router.add_get("/metrics", handler)  # type: ignore[arg-type]
        self.runner = web.AppRunner(self.app)

    async def __aenter__(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()
