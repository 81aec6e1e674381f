"""The control plane over real processes: the one pipeline (bring_up), the supervisor that
keeps a deployment alive, and the fleet `corral serve` runs. The scripted engine (a real
HTTP server) and scripts that fail like vLLM stand in for engines."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from corral.config import CorralConfig, Deployment, RestartPolicy, VerifyGate
from corral.control.fleet import Fleet
from corral.control.pipeline import Gate, Live, Services, bring_up, prepare_checked, runtime_of
from corral.control.supervisor import Supervisor
from corral.errors import EngineError, PortInUseError
from corral.ledger import runs
from corral.ledger.db import Ledger, open_ledger
from corral.ledger.launches import runs_of
from corral.runtime import SupervisedRuntime
from corral.serving import until_stopped
from tests.support.fleet import fleet_config, script_recipe, scripted
from tests.support.scripted import SCRIPTED
from tests.unit.test_render import cpu_box


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    with open_ledger(tmp_path / "ledger.sqlite3") as led:
        yield led


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def services(ledger: Ledger, tmp_path: Path, said: list[str] | None = None) -> Services:
    notes = said if said is not None else []
    return Services(ledger, tmp_path, cpu_box, say=lambda k, t: notes.append(f"{k} {t}"))


async def up(config: CorralConfig, name: str, svc: Services, gate: Gate | None = None) -> Live:
    prepared = prepare_checked(config, name, svc)
    return await bring_up(prepared, svc, SupervisedRuntime(svc.host), gate=gate)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def failing_script(tmp_path: Path, code: str) -> tuple[Deployment, dict[str, Any]]:
    script = tmp_path / "engine.py"
    script.write_text(code)
    return scripted("bad", tmp_path, recipe="script"), script_recipe("script", script)


def launched_pid(ledger: Ledger) -> int:
    return int(ledger.conn.execute("SELECT pid FROM run_launches").fetchone()["pid"])


# ---- the pipeline -------------------------------------------------------------------------


async def test_bring_up_records_the_run(tmp_path: Path, ledger: Ledger) -> None:
    said: list[str] = []
    config = fleet_config(tmp_path, [scripted("m1", tmp_path, aliases=["default"])])
    live = await up(config, "m1", services(ledger, tmp_path, said))
    try:
        reply = httpx.get(live.base_url + "/v1/models")
        assert reply.json()["data"][0]["id"] == "m1"
        assert not live.adopted
        assert live.startup_s is not None
    finally:
        assert live.running.stop(grace=2)
    assert gone(launched_pid(ledger))
    (row,) = runs.status(ledger)
    assert row["state"] == "ready"  # the stop is recorded by its caller (stop_deployment)
    assert [p["name"] for p in row["phases"]] == ["launch"]
    assert row["facts"]["startup_s"].endswith(" s")
    assert [e["kind"] for e in row["events"]] == ["start", "ready"]
    assert "phase launch" in said
    assert any(s.startswith("ready ") for s in said)


async def test_an_engine_that_dies_at_startup_gives_log_lines_and_a_hint(
    tmp_path: Path, ledger: Ledger
) -> None:
    dep, recipe = failing_script(tmp_path, (
        "print('(APIServer pid=1) INFO 06-07 13:18:43 [utils.py:1] non-default args: {}')\n"
        "print('(APIServer pid=1) ValueError: Chunked MM input disabled but "
        "max_tokens_per_mm_item (2496) is larger than max_num_batched_tokens (2048).')\n"
        "raise SystemExit(1)\n"
    ))  # fmt: skip
    config = fleet_config(tmp_path, [dep], [recipe])
    with pytest.raises(EngineError) as caught:
        await up(config, "bad", services(ledger, tmp_path))
    err = caught.value
    assert "exited with code 1 during config" in err.message
    assert "--max-num-batched-tokens" in (err.hint or "")
    assert any("max_tokens_per_mm_item (2496)" in line for line in err.log_tail)
    (row,) = runs.status(ledger)
    assert row["state"] == "failed"
    assert row["exit_code"] == 1
    assert [e["kind"] for e in row["events"]] == ["start", "failure", "fail"]


async def test_a_sigkill_without_an_error_line_hints_at_the_oom_killer(
    tmp_path: Path, ledger: Ledger
) -> None:
    dep, recipe = failing_script(tmp_path, (
        "import os, signal\n"
        "print('(EngineCore pid=9) INFO 08-01 17:49:34 [monitor.py:53] "
        "torch.compile took 30.61 s in total')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    ))  # fmt: skip
    config = fleet_config(tmp_path, [dep], [recipe])
    with pytest.raises(EngineError) as caught:
        await up(config, "bad", services(ledger, tmp_path))
    assert "killed by SIGKILL" in caught.value.message
    assert "OOM killer" in (caught.value.hint or "")


async def test_a_slow_engine_times_out_and_is_stopped(tmp_path: Path, ledger: Ledger) -> None:
    dep = scripted("slow", tmp_path, args=["--slow-start", "60"], startup_timeout=1.5)
    config = fleet_config(tmp_path, [dep])
    with pytest.raises(EngineError, match=r"not ready after 2 s .*health") as caught:
        await up(config, "slow", services(ledger, tmp_path))
    assert "startup_timeout" in (caught.value.hint or "")
    (run,) = runs_of(ledger, "slow")
    assert run["state"] == "failed"
    assert gone(launched_pid(ledger))


async def test_the_gate_decides(tmp_path: Path, ledger: Ledger) -> None:
    seen: list[int] = []

    async def failing_gate(dep: Deployment, base_url: str, run_id: int) -> bool:
        seen.append(run_id)
        return False

    config = fleet_config(tmp_path, [scripted("g", tmp_path, verify=VerifyGate(gate=True))])
    with pytest.raises(EngineError, match="failed its verify gate"):
        await up(config, "g", services(ledger, tmp_path), failing_gate)
    assert seen == [runs_of(ledger, "g")[-1]["id"]]  # the gate's results belong to this run
    assert runs_of(ledger, "g")[-1]["state"] == "failed"
    assert "gate" in [e["kind"] for e in runs.events(ledger, "g")]
    assert gone(launched_pid(ledger))


async def test_a_taken_fixed_port_is_named_before_launch(tmp_path: Path, ledger: Ledger) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        config = fleet_config(tmp_path, [scripted("p", tmp_path, port=port)])
        with pytest.raises(PortInUseError, match=f"cannot start p: port {port}"):
            await up(config, "p", services(ledger, tmp_path))
    assert runs_of(ledger, "p") == []


async def test_a_stop_during_startup_abandons_the_start(tmp_path: Path, ledger: Ledger) -> None:
    stop = asyncio.Event()
    config = fleet_config(tmp_path, [scripted("s", tmp_path, args=["--slow-start", "60"])])
    svc = services(ledger, tmp_path)
    asyncio.get_running_loop().call_later(1.0, stop.set)
    assert await until_stopped(up(config, "s", svc), stop) is False
    # the engine is the fleet's to stop on the way out (serve's close): here, by its pid
    pid = launched_pid(ledger)
    os.killpg(pid, signal.SIGKILL)
    await until(lambda: not svc.host.alive(pid, None))  # reaped by its parent, the host
    assert gone(pid)


# ---- the supervisor -----------------------------------------------------------------------


def supervisor(config: CorralConfig, name: str, svc: Services, http: httpx.AsyncClient
               ) -> Supervisor:  # fmt: skip
    dep = config.deployment(name)
    return Supervisor(dep, lambda: prepare_checked(config, name, svc), svc,
                      runtime_of(dep, svc, supervised=True), http)  # fmt: skip


async def until(check: Callable[[], bool], timeout: float = 30.0) -> float:
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < timeout, "timed out"
        await asyncio.sleep(0.05)
    return time.monotonic() - began


async def supervised(sup: Supervisor, body: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.create_task(sup.run())
    try:
        await body()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        if sup.live is not None:
            sup.live.running.stop(grace=1)


QUICK = RestartPolicy(max_restarts=3, backoff_initial=0.2)


async def test_a_killed_or_frozen_engine_is_seen_ended_and_replaced(
    tmp_path: Path, ledger: Ledger, http: httpx.AsyncClient
) -> None:
    """The leader SIGKILLed; a live engine that stops answering (SIGSTOP): each is seen
    within 5 s, its group ended, and a new engine takes its place in rotation."""
    config = fleet_config(tmp_path, [scripted("c", tmp_path, restart=QUICK)])
    sup = supervisor(config, "c", services(ledger, tmp_path), http)

    async def body() -> None:
        await until(lambda: sup.state == "ready")
        for sig in (signal.SIGKILL, signal.SIGSTOP):
            assert sup.live is not None
            pid = sup.live.running.identity.pid
            assert pid is not None
            os.kill(pid, sig)
            # ≈1 s for a kill, ≈3 s for a frozen engine on an idle machine (decision 0002);
            # the bound leaves room for a loaded 2-core box
            assert await until(lambda: sup.state != "ready", timeout=15) < 10.0
            await until(lambda: sup.state == "ready")
            assert gone(pid)
            assert sup.live is not None
            assert sup.live.running.identity.pid != pid
            assert sup.view().routable

    await supervised(sup, body)
    kinds = [e["kind"] for e in runs.events(ledger, "c", limit=50)]
    assert kinds.count("crash") == 2
    assert kinds.count("ready") == 3
    assert [r["state"] for r in runs_of(ledger, "c")][:2] == ["failed", "failed"]


async def test_a_dead_group_member_ends_the_whole_group(
    tmp_path: Path, ledger: Ledger, http: httpx.AsyncClient
) -> None:
    """vLLM's shape: a leader with helpers in its group. A dead helper is a death too, and
    the leader that lived on is ended with it."""
    script = tmp_path / "leader.py"
    script.write_text(
        "import os, subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"os.execv(sys.executable, [sys.executable, {str(SCRIPTED)!r}, *sys.argv[1:]])\n"
    )
    recipe = {**script_recipe("grouped", script),
              "args": ["--model", "{served_name}", "--port", "{port}"]}  # fmt: skip
    dep = scripted("g", tmp_path, recipe="grouped", restart=QUICK)
    config = fleet_config(tmp_path, [dep], [recipe])
    sup = supervisor(config, "g", services(ledger, tmp_path), http)

    async def body() -> None:
        await until(lambda: sup.state == "ready")
        assert sup.live is not None
        leader = sup.live.running.identity.pid
        helper = next(p for p in sup.live.running.group() if p != leader)
        os.kill(helper, signal.SIGKILL)
        assert await until(lambda: sup.state != "ready", timeout=10) < 5.0
        await until(lambda: sup.state == "ready")
        assert leader is not None
        assert gone(leader)

    await supervised(sup, body)
    assert "died" in " ".join(e["detail"] for e in runs.events(ledger, "g", limit=50))


async def test_a_start_that_keeps_failing_stays_visible(
    tmp_path: Path, ledger: Ledger, http: httpx.AsyncClient
) -> None:
    dep, recipe = failing_script(tmp_path, "raise SystemExit(3)\n")
    dep = dep.model_copy(update={"restart": RestartPolicy(max_restarts=1, backoff_initial=0.1)})
    config = fleet_config(tmp_path, [dep], [recipe])
    sup = supervisor(config, "bad", services(ledger, tmp_path), http)

    async def body() -> None:
        await until(lambda: sup.state == "failed")
        view = sup.view()
        assert not view.routable
        assert "exited with code 3" in view.reason
        assert "no restarts left" in view.reason

    await supervised(sup, body)
    assert [r["state"] for r in runs_of(ledger, "bad")] == ["failed", "failed"]


# ---- the fleet ----------------------------------------------------------------------------


async def test_the_fleet_refuses_bad_deployments_and_serves_the_rest(
    tmp_path: Path, ledger: Ledger, http: httpx.AsyncClient
) -> None:
    """A port two deployments ask for, a docker deployment without docker: each refused
    with a reason naming it; the good one serves."""
    first = scripted("a", tmp_path)
    second = scripted("b", tmp_path, port=first.port)
    docker = scripted("d", tmp_path, runtime="docker", recipe="gb10-like")
    gb10_like = {
        "name": "gb10-like", "description": "a docker recipe", "runtime": "docker",
        "match": {"models": ["fake-model"], "hardware": ["cpu"]},
        "container": {"image": "vllm/vllm-openai", "command": ["vllm", "serve", "{model}"]},
    }  # fmt: skip
    config = fleet_config(tmp_path, [first, second, docker], [gb10_like])
    svc = services(ledger, tmp_path)
    svc.docker = str(tmp_path / "no-docker")

    def supervisor_for(cfg: CorralConfig, dep: Deployment, desired: bool) -> Supervisor:
        sup = supervisor(cfg, dep.name, svc, http)
        sup.desired = desired
        return sup

    fleet = Fleet(config, svc, supervisor_for)
    await fleet.start()
    try:
        await asyncio.wait_for(fleet.settled(), 30)
        views = {v.name: v for v in fleet.deployments()}
        assert views["a"].routable
        assert not views["b"].routable
        assert "deployments 'a' and 'b' both ask for port" in views["b"].reason
        assert not views["d"].routable
        assert "docker CLI" in views["d"].reason
        assert views["d"].reason.startswith("d: ")
        assert views["d"].state == "failed"  # permanent: not retried after a backoff
    finally:
        await fleet.close(stop_engines=True)
    assert runs_of(ledger, "a")[-1]["state"] == "stopped"


# ---- an unmanaged endpoint ----------------------------------------------------------------


async def test_an_unmanaged_endpoint_is_routed_with_its_key_and_never_stopped(
    tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real loopback server stands in for `http://venus:8000/v1`; the gateway sends it
    the key from the env var the config names and the model name it answers to."""
    from aiohttp import web

    from corral.config import GatewaySettings
    from corral.gateway import GatewayServer
    from corral.serving import _supervisors

    seen: list[tuple[str, str]] = []

    async def models(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("Authorization", "")))
        return web.json_response({"data": [{"id": "venus-model"}]})

    async def complete(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((body["model"], request.headers.get("Authorization", "")))
        choice = {"index": 0, "text": "hi", "message": {"role": "assistant", "content": "hi"},
                  "finish_reason": "stop"}  # fmt: skip
        return web.json_response({"id": "x", "object": "chat.completion", "created": 0,
                                  "model": body["model"], "choices": [choice]})  # fmt: skip

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", complete)
    app.router.add_post("/v1/chat/completions", complete)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    monkeypatch.setenv("VENUS_KEY", "sk-venus-secret")
    dep = Deployment(name="venus", endpoint=f"http://127.0.0.1:{port}/v1",
                     endpoint_model="venus-model", api_key_env="VENUS_KEY")  # fmt: skip
    config = fleet_config(tmp_path, [dep])
    svc = services(ledger, tmp_path)

    class Quiet:
        def say(self, deployment: str, kind: str, text: str) -> None:
            return None

    async with httpx.AsyncClient() as shared:
        fleet = Fleet(config, svc, _supervisors(svc, shared, Quiet(), None, True))
        gateway = GatewayServer(fleet, GatewaySettings(), port=0)
        await fleet.start()
        try:
            await asyncio.wait_for(fleet.settled(), 20)
            await gateway.start()
            body = {"model": "venus", "messages": [{"role": "user", "content": "hi"}]}
            reply = await shared.post(gateway.url + "/v1/chat/completions", json=body)
            assert reply.status_code == 200, reply.text
            listed = (await shared.get(gateway.url + "/v1/models")).json()["data"]
            assert listed[0]["id"] == "venus"
            assert listed[0]["corral"]["routable"]
        finally:
            await gateway.stop()
            await fleet.close(stop_engines=True)
        assert ("venus-model", "Bearer sk-venus-secret") in seen  # routed with its key
        assert all(auth == "Bearer sk-venus-secret" for _, auth in seen)
        still = await shared.get(f"http://127.0.0.1:{port}/v1/models")
        assert still.status_code == 200  # never stopped
    await runner.cleanup()
    (run,) = runs_of(ledger, "venus")
    assert run["runtime"] == "endpoint"
    assert "sk-venus-secret" not in str(run)
