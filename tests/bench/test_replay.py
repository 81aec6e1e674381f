"""Recorded traffic, replayed: the gateway writes each request's shape (token counts and
arrival time, never content) when `gateway.record_shapes` is set, and `corral tune
--workload replay:FILE` sends the same lengths at the same gaps, then faster. Real
processes: a scripted engine behind a real GatewayServer, the real bench client."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from corral.bench.client import Endpoint
from corral.bench.shapes import read_shapes
from corral.errors import BenchError
from corral.tune.measure import sweep
from corral.tune.workload import load_workload, parse_objective
from tests.gateway.conftest import Gateways, replica
from tests.support.scripted import start_scripted

SECRET = "zanzibar-quokka"


async def _record(log: Path) -> None:
    engine = start_scripted("--tokens", "6")
    gateways = Gateways()
    try:
        gw = await gateways.start([replica(engine)], record_shapes=log)
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            for words, stream in ((4, False), (40, True), (12, True)):
                message = {"role": "user", "content": f"{SECRET} " * words}
                body = {"model": "scripted", "max_tokens": 5, "stream": stream,
                        "messages": [message]}  # fmt: skip
                answer = await client.post("/v1/chat/completions", json=body)
                assert answer.status_code == 200, answer.text
                await asyncio.sleep(0.3)
            missing = await client.post("/v1/chat/completions", json={**body, "model": "nope"})
            assert missing.status_code == 404
    finally:
        for server in gateways.servers:
            await server.stop()
        engine.stop()


async def test_gateway_records_shapes_and_tune_replays_them(tmp_path: Path) -> None:
    log = tmp_path / "shapes.jsonl"
    await _record(log)
    text = log.read_text()
    assert SECRET not in text  # lengths and timing, never content
    assert len(text.splitlines()) == 3  # the 404 for an unknown model reached no engine
    shapes = read_shapes(log)
    assert [s.stream for s in shapes] == [False, True, True]
    assert shapes[0].prompt < shapes[2].prompt < shapes[1].prompt
    assert all(s.completion == 5 for s in shapes)
    assert shapes[1].t - shapes[0].t >= 0.3
    assert json.loads(text.splitlines()[0])["path"] == "/v1/chat/completions"

    workload = load_workload(f"replay:{log}")
    assert [s.input for s in workload.shapes] == [s.prompt for s in shapes]
    assert workload.arrivals[0] == 0.0
    assert workload.arrivals[1] >= 0.3

    engine = start_scripted("--tokens", "6")
    try:
        endpoint = Endpoint(engine.base_url, "scripted", "completions")
        levels = await sweep(endpoint, workload, parse_objective("ttft_p95=2s"))
    finally:
        engine.stop()
    assert [lv["level"] for lv in levels] == [1, 2, 4, 8]  # every speed-up held the SLO
    assert {lv["kind"] for lv in levels} == {"speed"}
    assert all(lv["requests"] == 2 and lv["failed"] == 0 for lv in levels)  # first: warm-up
    # at 8× the recorded gaps the three requests took an eighth of the time, about
    assert levels[3]["duration"] < levels[0]["duration"] / 2


def test_a_bad_shape_log_is_named(tmp_path: Path) -> None:
    log = tmp_path / "bad.jsonl"
    log.write_text('{"t": 1, "model": "m"}\n')
    with pytest.raises(BenchError, match=r"bad.jsonl:1: not a request shape"):
        load_workload(f"replay:{log}")
    with pytest.raises(BenchError, match="cannot read the shape log"):
        load_workload(f"replay:{tmp_path / 'none.jsonl'}")
    log.write_text(json.dumps({"t": 1, "model": "m", "path": "/v1/completions", "prompt": 9,
                               "completion": 0, "status": 500, "stream": True}) + "\n")  # fmt: skip
    with pytest.raises(BenchError, match="holds no successful request"):
        read_shapes(log)
