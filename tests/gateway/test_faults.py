"""Failover, the circuit breaker, timeouts, mid-stream death, admission (429) and 503."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from corral.config import Limits, Timeouts
from tests.gateway.conftest import Gateways, StartEngine, replica
from tests.gateway.test_proxy import HELLO, engine_state
from tests.support.scripted import RunningEngine

pytestmark = pytest.mark.timeout(120)

DEAD_URL = "http://127.0.0.1:9"  # discard port: nothing listens, connect is refused


def chat(stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": "scripted", "messages": HELLO, "stream": stream, **extra}


async def post(url: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(url + "/v1/chat/completions", json=body, **kw)


async def sse_events(url: str, body: dict[str, Any]) -> list[str]:
    """The `data:` payloads of a stream, in order."""
    events: list[str] = []
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("POST", url + "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
    return events


def assert_error_shape(body: dict[str, Any], source: str) -> dict[str, Any]:
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code", "source"}
    assert error["source"] == source
    assert isinstance(error["message"], str)
    assert error["message"]
    return dict(error)


async def requests_seen(engine: RunningEngine) -> int:
    value = (await engine_state(engine.base_url))["requests"]
    assert isinstance(value, int)
    return value


async def test_connect_error_fails_over_and_the_breaker_opens(
    engines: StartEngine, gateways: Gateways
) -> None:
    good = engines()
    gw = await gateways.start(
        [replica(DEAD_URL, rid="dead"), replica(good, rid="good")], breaker_failures=2
    )
    for _ in range(6):
        response = await post(gw.url, chat())
        assert response.status_code == 200
    assert gw.gateway is not None
    assert gw.gateway.balancer.state("dead") == "open"
    assert await requests_seen(good) == 6
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(gw.url + "/metrics")).text
    assert 'corral_gateway_replica_breaker_open{deployment="scripted",replica="dead"} 1' in metrics
    assert 'corral_gateway_replica_up{deployment="scripted",replica="good"} 1' in metrics


async def test_5xx_before_any_byte_is_retried_once_elsewhere(
    engines: StartEngine, gateways: Gateways
) -> None:
    failing, good = engines("--fail-first", "1000"), engines()
    gw = await gateways.start([replica(failing, rid="failing"), replica(good, rid="good")])
    for _ in range(4):
        assert (await post(gw.url, chat())).status_code == 200
        assert (await post(gw.url, chat(stream=True))).status_code == 200
    assert await requests_seen(good) == 8


async def test_open_breaker_is_probed_back_in(engines: StartEngine, gateways: Gateways) -> None:
    flaky, good = engines("--fail-first", "2"), engines()
    gw = await gateways.start(
        [replica(flaky, rid="flaky"), replica(good, rid="good")],
        breaker_failures=2,
        breaker_cooldown=0.3,
    )
    assert gw.gateway is not None
    while gw.gateway.balancer.state("flaky") != "open":
        assert (await post(gw.url, chat())).status_code == 200
    served_before = await requests_seen(flaky)
    await asyncio.sleep(0.4)  # past the cooldown: the next pick of `flaky` is the probe
    for _ in range(4):
        assert (await post(gw.url, chat())).status_code == 200
    assert gw.gateway.balancer.state("flaky") == "closed"
    assert await requests_seen(flaky) > served_before


async def test_only_replica_failing_passes_the_engine_error_on(
    engines: StartEngine, gateways: Gateways
) -> None:
    plain = engines("--fail-first", "1000", "--quirk", "wrong-error-shape")
    gw = await gateways.start([replica(plain)])
    response = await post(gw.url, chat())
    assert response.status_code == 500
    error = assert_error_shape(response.json(), "engine")
    assert error["message"] == "scripted failure"


async def test_unreachable_only_replica_is_a_502(gateways: Gateways) -> None:
    gw = await gateways.start([replica(DEAD_URL)])
    response = await post(gw.url, chat())
    assert response.status_code == 502
    assert assert_error_shape(response.json(), "corral")["code"] == "engine_unreachable"


async def test_crash_mid_stream_ends_with_error_event_and_done_without_retry(
    engines: StartEngine, gateways: Gateways
) -> None:
    crashing, good = engines("--crash-after-chunks", "3", "--tokens", "10"), engines()
    gw = await gateways.start([replica(crashing, rid="crashing"), replica(good, rid="good")])
    gw_state = gw.gateway
    assert gw_state is not None
    gw_state.balancer.outstanding["good"] = 1  # make the crashing replica the first pick
    events = await sse_events(gw.url, chat(stream=True))
    assert len(events) == 5  # three chunks, the error, [DONE]
    assert events[-1] == "[DONE]"
    assert '"source":"corral"' in events[-2]
    assert "engine_disconnected" in events[-2]
    assert await requests_seen(good) == 0  # bytes went out: never retried


async def test_hang_mid_stream_is_cut_by_the_idle_timeout(
    engines: StartEngine, gateways: Gateways
) -> None:
    hanging = engines("--hang-after-chunks", "2", "--tokens", "10")
    timeouts = Timeouts(idle=0.5, first_byte=5)
    gw = await gateways.start([replica(hanging, timeouts=timeouts)])
    events = await sse_events(gw.url, chat(stream=True))
    assert len(events) == 4
    assert "idle timeout" in events[2]
    assert "engine_timeout" in events[2]
    assert events[-1] == "[DONE]"


async def test_engine_that_never_answers_hits_the_first_byte_timeout(
    engines: StartEngine, gateways: Gateways
) -> None:
    hanging = engines("--hang")
    gw = await gateways.start([replica(hanging)], timeouts=Timeouts(first_byte=0.5))
    response = await post(gw.url, chat())
    assert response.status_code == 504
    assert "first-byte" in assert_error_shape(response.json(), "corral")["message"]


async def test_stream_without_done_gets_one(engines: StartEngine, gateways: Gateways) -> None:
    eng = engines("--quirk", "no-done", "--tokens", "2")
    gw = await gateways.start([replica(eng)])
    events = await sse_events(gw.url, chat(stream=True))
    assert events[-1] == "[DONE]"
    assert events.count("[DONE]") == 1


async def test_full_deployment_answers_429_with_retry_after(
    engines: StartEngine, gateways: Gateways
) -> None:
    slow = engines("--ttft", "2.0")
    gw = await gateways.start([replica(slow, limits=Limits(max_in_flight=1, max_queue=0))])
    first = asyncio.ensure_future(post(gw.url, chat()))
    await asyncio.sleep(0.5)
    second = await post(gw.url, chat())
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "1"
    assert assert_error_shape(second.json(), "corral")["type"] == "rate_limit_error"
    assert (await first).status_code == 200


async def test_queue_waits_then_times_out_with_429(
    engines: StartEngine, gateways: Gateways
) -> None:
    slow = engines("--ttft", "1.0")
    limits = Limits(max_in_flight=1, max_queue=1, queue_timeout=0.3)
    gw = await gateways.start([replica(slow, limits=limits)])
    results = await asyncio.gather(*(post(gw.url, chat()) for _ in range(3)))
    assert sorted(r.status_code for r in results) == [200, 429, 429]


async def test_queued_request_runs_when_a_slot_frees(
    engines: StartEngine, gateways: Gateways
) -> None:
    slow = engines("--ttft", "0.3")
    limits = Limits(max_in_flight=1, max_queue=4, queue_timeout=10)
    gw = await gateways.start([replica(slow, limits=limits)])
    results = await asyncio.gather(*(post(gw.url, chat()) for _ in range(3)))
    assert [r.status_code for r in results] == [200, 200, 200]


async def test_no_routable_replica_is_503(engines: StartEngine, gateways: Gateways) -> None:
    eng = engines()
    gw = await gateways.start([replica(eng, routable=False)])
    response = await post(gw.url, chat())
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert assert_error_shape(response.json(), "corral")["code"] == "no_ready_replica"


async def test_total_timeout_cuts_a_slow_but_steady_stream(
    engines: StartEngine, gateways: Gateways
) -> None:
    steady = engines("--itl", "0.1", "--tokens", "100")
    gw = await gateways.start([replica(steady, timeouts=Timeouts(total=0.8, idle=5))])
    events = await sse_events(gw.url, chat(stream=True))
    assert "total timeout" in events[-2]
    assert events[-1] == "[DONE]"
    assert len(events) < 100
