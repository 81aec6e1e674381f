"""The REAL llama-server (CPU) deployed through `corral deploy` on the wheel's GGUF: launch,
phases and facts in the ledger, verify (direct and through the gateway), the bench story,
then `corral stop` leaves no process. One engine for the whole session (conftest.py)."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from corral.config import Capabilities, GatewaySettings
from corral.fleet import Policy, Replica, StaticFleet
from corral.gateway import GatewayServer
from corral.ledger.db import open_ledger
from corral.ledger.launches import fact_rows, launch_of, runs_of
from corral.runtime.detached import alive
from corral.verify.model import Status, Target
from corral.verify.probe import Probe
from corral.verify.suite import run_suite
from tests.integration.conftest import LLAMA_NAME, LlamaDeployed

pytestmark = [pytest.mark.integration, pytest.mark.llama]
CAPS = Capabilities(tools=False, auto_tool_choice=False, context_length=4096)


def ledger_rows(home: Any, sql: str, *args: Any) -> list[dict[str, Any]]:
    with open_ledger(home / "ledger.sqlite3") as ledger:
        return [dict(r) for r in ledger.conn.execute(sql, args).fetchall()]


def run_id(deployed: LlamaDeployed) -> int:
    with open_ledger(deployed.home / "ledger.sqlite3") as ledger:
        return int(runs_of(ledger, LLAMA_NAME)[-1]["id"])


def facts(deployed: LlamaDeployed) -> dict[str, str]:
    with open_ledger(deployed.home / "ledger.sqlite3") as ledger:
        return {r["name"]: r["value"] for r in fact_rows(ledger, run_id(deployed))}


def test_deploy_picks_the_llama_recipe_and_the_wheel_gguf(llama_deployed: LlamaDeployed) -> None:
    out = llama_deployed.output
    assert "smollm2-135m-llama-server-cpu for cpu" in out
    assert "KV cache 0.35 GiB (16,384 tokens × 30 layers, f16)" in out  # the preflight plan
    found = facts(llama_deployed)
    assert found["model_path"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert float(found["startup_s"]) > 0


def test_phases_from_the_real_log(llama_deployed: LlamaDeployed) -> None:
    rows = ledger_rows(
        llama_deployed.home, "SELECT name FROM phases WHERE run_id = ? ORDER BY id",
        run_id(llama_deployed),
    )  # fmt: skip
    names = [r["name"] for r in rows]
    assert names[0] == "launch"
    for phase in ("config", "load_weights", "kv_cache", "warmup", "api_server"):
        assert phase in names


def test_facts_from_the_real_log_and_the_planner(llama_deployed: LlamaDeployed) -> None:
    found = facts(llama_deployed)
    assert found["parallel_slots"] == "4"
    assert found["max_model_len"] == "4096"  # --kv-unified-per-slot
    assert found["kv_cache_tokens"] == "16384"
    assert float(found["kv_cache_memory_mib"]) == 360.0
    assert float(found["planned.kv_cache_memory_mib"]) == float(found["kv_cache_memory_mib"])
    assert float(found["model_size_mib"]) == 92.10
    assert found["listen_url"] == llama_deployed.base_url


def test_health_and_props_semantics(llama_deployed: LlamaDeployed) -> None:
    """Ready: /health 200; /props gives the per-slot context verify sizes the needle to."""
    health = httpx.get(llama_deployed.base_url + "/health", timeout=10)
    assert health.status_code == 200
    props = httpx.get(llama_deployed.base_url + "/props", timeout=10).json()
    assert props["default_generation_settings"]["n_ctx"] == 4096
    assert props["total_slots"] == 4


def test_verify_in_deploy_passes_with_reasons(llama_deployed: LlamaDeployed) -> None:
    rows = ledger_rows(
        llama_deployed.home,
        "SELECT r.name, r.status, r.detail FROM verify_results r "
        "JOIN verify_runs v ON v.id = r.verify_run_id WHERE v.run_id = ?",
        run_id(llama_deployed),
    )
    results = {r["name"]: (r["status"], r["detail"]) for r in rows}
    failed = {k: v for k, v in results.items() if v[0] == "fail"}
    assert not failed, failed
    status, detail = results["needle"]
    assert status == "pass"
    assert "by the server's /tokenize for the engine's 4,096-token context" in detail
    status, detail = results["unknown-model"]
    assert status == "skip"
    assert "serves its one model under any name" in detail


async def test_tokenize_counts_like_the_engine(llama_deployed: LlamaDeployed) -> None:
    """verify's count of a chat prompt equals the prompt tokens the engine reports."""
    messages = [{"role": "user", "content": "The grass is green. " * 50}]
    target = Target(llama_deployed.base_url, LLAMA_NAME, CAPS)
    async with Probe(target) as probe:
        counted = await probe.tokenize(messages)
        reply = await probe.chat(messages=messages, max_tokens=1)
        assert await probe.served_context() == 4096
        assert await probe.engine_kind() == "llama-server"
    usage = reply.completion.usage
    assert usage is not None
    assert counted == usage.prompt_tokens


async def test_tool_checks_explain_a_model_that_cannot_call_tools(
    llama_deployed: LlamaDeployed,
) -> None:
    """Declared tools: true anyway: the failure says the model answered in text and why."""
    caps = CAPS.model_copy(update={"tools": True})
    target = Target(llama_deployed.base_url, LLAMA_NAME, caps)
    (named,) = await run_suite(target, ["tool-named"])
    assert named.status is Status.FAIL
    assert "no tool_calls in the answer" in named.detail
    assert "declares tools: true" in named.detail
    assert "llama-server answers in text for every tool_choice" in named.detail
    assert "capabilities.tools: false" in named.detail


@pytest.fixture
async def gateway(llama_deployed: LlamaDeployed) -> AsyncIterator[GatewayServer]:
    policy = Policy(served_name=LLAMA_NAME, capabilities=CAPS, engine="llama-server")
    replica = Replica(
        id="llama-0", served_name=LLAMA_NAME, base_url=llama_deployed.base_url,
        routable=True, state="ready",
    )  # fmt: skip
    server = GatewayServer(StaticFleet.of([(policy, replica)]), GatewaySettings(), port=0)
    await server.start()
    yield server
    await server.stop()


async def test_verify_through_the_gateway(gateway: GatewayServer) -> None:
    """Behind corral's gateway the unknown-model check runs and passes (the gateway 404s)."""
    target = Target(gateway.url, LLAMA_NAME, CAPS)
    results = {r.name: r for r in await run_suite(target, ["unknown-model", "needle", "chat"])}
    assert results["unknown-model"].status is Status.PASS, results["unknown-model"].detail
    assert results["needle"].status is Status.PASS, results["needle"].detail
    assert results["chat"].status is Status.PASS


def test_bench_story_recorded(llama_deployed: LlamaDeployed) -> None:
    rows = ledger_rows(
        llama_deployed.home,
        "SELECT kind, result_json FROM bench_results WHERE run_id = ?",
        run_id(llama_deployed),
    )
    assert [r["kind"] for r in rows] == ["story"]
    story = json.loads(rows[0]["result_json"])
    decode = [row.get("decode_tok_s") or 0 for row in story["rows"]]
    assert len(decode) >= 3
    assert min(decode) > 1.0


def test_stop_leaves_no_process(llama_deployed: LlamaDeployed) -> None:
    """Last in this module: `corral stop` ends the engine's process group and frees the port."""
    with open_ledger(llama_deployed.home / "ledger.sqlite3") as ledger:
        launch = launch_of(ledger, run_id(llama_deployed))
    assert launch is not None
    assert launch.pid is not None
    assert alive(launch.pid, launch.pid_started_at)
    result = llama_deployed.corral("stop", LLAMA_NAME, timeout=60)
    assert result.returncode == 0, result.stderr
    assert not alive(launch.pid, launch.pid_started_at)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", llama_deployed.port)) != 0
