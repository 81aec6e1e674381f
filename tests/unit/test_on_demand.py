"""On-demand deployments through the real gateway and fleet, with the scripted engine (a
real HTTP server process) standing in for vLLM: start on a request, join a start, evict
by memory, refuse with 503 when nothing can make room, share a failed start's error,
stop when idle. The real-engine version is tests/integration/test_on_demand.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from corral.cli.serve import _memory_line, status_rows
from corral.config import CorralConfig, Deployment, GatewaySettings, Host, load_config
from corral.control.fleet import Fleet
from corral.control.memory import PEAK_FACT, host_budget_gib, memory_of, unified_budget_gib
from corral.control.ondemand import Room, choose_host, expected_start_s, idle_stop_warning
from corral.control.pipeline import Services
from corral.errors import ConfigError
from corral.gateway import GatewayServer
from corral.ledger import runs
from corral.ledger.db import Ledger, open_ledger
from corral.ledger.launches import runs_of
from corral.recipes.loader import load_recipes
from corral.report.logbook import collect
from corral.report.markdown import render
from tests.support.corral_cli import corral
from tests.support.fleet import SCRIPTED_RECIPE, fleet_config, script_recipe, scripted
from tests.unit.test_render import cpu_box
from tests.unit.test_supervisor import supervisor, until


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    with open_ledger(tmp_path / "ledger.sqlite3") as led:
        yield led


def on_demand(name: str, tmp_path: Path, **fields: Any) -> Deployment:
    return scripted(name, tmp_path, on_demand=True, memory_gib=1.0, **fields)


def budgeted(config: CorralConfig, gib: float) -> CorralConfig:
    return config.model_copy(update={"hosts": {"local": Host(memory_budget_gib=gib)}})


class Served:
    def __init__(self, fleet: Fleet, gateway: GatewayServer, client: httpx.AsyncClient) -> None:
        self.fleet, self.gateway, self.client = fleet, gateway, client

    async def chat(self, model: str) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        return await self.client.post(f"{self.gateway.url}/v1/chat/completions", json=body)

    async def states(self) -> dict[str, str]:
        cards = (await self.client.get(f"{self.gateway.url}/v1/models")).json()["data"]
        return {c["id"]: c["corral"]["state"] for c in cards}


@pytest.fixture
async def serve(tmp_path: Path, ledger: Ledger) -> AsyncIterator[Any]:
    started: list[tuple[Fleet, GatewayServer, httpx.AsyncClient]] = []

    async def start(config: CorralConfig, planner: Any = None) -> Served:
        svc = Services(ledger, tmp_path, cpu_box, planner=planner)
        http = httpx.AsyncClient(timeout=60)

        def supervisor_for(cfg: CorralConfig, dep: Deployment, desired: bool) -> Any:
            sup = supervisor(cfg, dep.name, svc, http)
            sup.desired = desired
            return sup

        fleet = Fleet(config, svc, supervisor_for)
        gateway = GatewayServer(fleet, GatewaySettings(), port=0, on_demand=fleet.demand)
        started.append((fleet, gateway, http))
        await fleet.start()
        await fleet.settled()
        await gateway.start()
        return Served(fleet, gateway, http)

    yield start
    for fleet, gateway, http in started:
        await gateway.stop()
        await fleet.close(stop_engines=True)
        await http.aclose()


async def test_a_request_starts_it_and_concurrent_ones_join_the_start(
    tmp_path: Path, ledger: Ledger, serve: Any
) -> None:
    config = fleet_config(tmp_path, [on_demand("a", tmp_path, aliases=["alpha"])])
    served = await serve(config)
    assert await served.states() == {"a": "stopped", "alpha": "stopped"}
    replies = await asyncio.gather(*(served.chat(m) for m in ("a", "alpha", "a")))
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert len(runs_of(ledger, "a")) == 1  # one start, joined by all three
    assert (await served.states())["a"] == "running"
    metrics = (await served.client.get(f"{served.gateway.url}/metrics")).text
    assert 'corral_on_demand_starts_total{deployment="a"} 1' in metrics
    assert 'corral_on_demand_cold_start_seconds_count{deployment="a"} 3' in metrics


async def test_a_start_that_does_not_fit_evicts_the_least_recently_used(
    tmp_path: Path, ledger: Ledger, serve: Any
) -> None:
    deps = [on_demand(n, tmp_path) for n in ("a", "b", "c")]
    served = await serve(budgeted(fleet_config(tmp_path, deps), 2.5))
    for name in ("a", "b", "a", "c"):  # b is the least recently used when c starts
        assert (await served.chat(name)).status_code == 200
    assert await served.states() == {"a": "running", "b": "evicted", "c": "running"}
    await asyncio.sleep(2)  # a supervisor must not bring an evicted one back on its own
    assert [len(runs_of(ledger, n)) for n in ("a", "b", "c")] == [1, 1, 1]
    (stop,) = [e for e in _events(ledger) if e[1] == "stop"]
    assert stop == ("b", "stop", "evicted to make room for c")
    metrics = (await served.client.get(f"{served.gateway.url}/metrics")).text
    assert 'corral_on_demand_evictions_total{deployment="b"} 1' in metrics
    rows = {row["deployment"]: row for row in status_rows(served.fleet.config, ledger)}
    assert rows["b"]["shown_state"] == "evicted (evicted to make room for c)"
    assert rows["a"]["shown_state"] == "ready"
    assert (rows["b"]["memory_gib"], rows["b"]["memory_source"]) == (
        1.0, "memory_gib in the config")  # fmt: skip
    logbook = render(collect(ledger, "b"))  # `corral report b`: the start and the eviction
    assert "run 2 (evicted)\n- **Started**: on demand, by a request naming it" in logbook
    assert "stop: evicted to make room for c" in logbook
    peak = runs.facts(ledger, rows["a"]["run"])[PEAK_FACT]  # the engine's RSS, measured
    assert 0.005 < float(peak.split()[0]) < 1.0


async def test_racing_for_the_last_memory_one_wins_the_other_gets_503(
    tmp_path: Path, ledger: Ledger, serve: Any
) -> None:
    deps = [on_demand(n, tmp_path) for n in ("a", "b")]
    served = await serve(budgeted(fleet_config(tmp_path, deps), 1.5))
    replies = await asyncio.gather(served.chat("a"), served.chat("b"))
    assert sorted(r.status_code for r in replies) == [200, 503]
    refused = next(r for r in replies if r.status_code == 503)
    error = refused.json()["error"]
    assert error["code"] == "insufficient_memory"
    assert "budget of 1.5 GiB" in error["message"]
    assert "(1.0 GiB, starting)" in error["message"]  # names what holds the memory
    assert refused.headers["Retry-After"] == "10"
    assert sum(len(runs_of(ledger, n)) for n in ("a", "b")) == 1


async def test_without_memory_gib_the_planners_weights_and_kv_count(
    tmp_path: Path, ledger: Ledger, serve: Any
) -> None:
    def planner(_prepared: Any, _facts: dict[str, str]) -> dict[str, tuple[float | str, str]]:
        return {"model_load_gib": (0.5, "GiB"), "kv_cache_memory_gib": (1.25, "GiB")}

    deps = [scripted(n, tmp_path, on_demand=True) for n in ("a", "b")]
    served = await serve(budgeted(fleet_config(tmp_path, deps), 3.0), planner)
    assert (await served.chat("a")).status_code == 200
    assert served.fleet.supervisors["a"].planned_gib == 1.75
    assert (await served.chat("b")).status_code == 200  # 1.75 + 1.75 > 3: a is evicted
    assert (await served.states())["a"] == "evicted"


async def test_a_pinned_deployment_is_never_evicted(
    tmp_path: Path, ledger: Ledger, serve: Any
) -> None:
    deps = [on_demand("a", tmp_path, pinned=True), on_demand("b", tmp_path)]
    served = await serve(budgeted(fleet_config(tmp_path, deps), 1.5))
    assert (await served.chat("a")).status_code == 200
    refused = await served.chat("b")
    assert refused.status_code == 503
    assert "a (1.0 GiB, pinned)" in refused.json()["error"]["message"]
    assert (await served.states())["a"] == "running"


def failing_start(tmp_path: Path, **fields: Any) -> CorralConfig:
    """One on-demand deployment whose engine prints a vLLM-like error and exits 3."""
    script = tmp_path / "bad.py"
    script.write_text("print('ValueError: the engine cannot start', flush=True)\n"
                      "raise SystemExit(3)\n")  # fmt: skip
    dep = scripted("bad", tmp_path, recipe="bad", on_demand=True, **fields)
    return fleet_config(tmp_path, [dep], [script_recipe("bad", script)])


async def test_a_failed_start_gives_every_waiter_the_engine_lines_then_backs_off(
    tmp_path: Path, ledger: Ledger, serve: Any
) -> None:
    served = await serve(failing_start(tmp_path))
    replies = await asyncio.gather(served.chat("bad"), served.chat("bad"))
    errors = [r.json()["error"] for r in replies]
    assert [r.status_code for r in replies] == [503, 503]
    assert errors[0]["message"] == errors[1]["message"]
    assert errors[0]["code"] == "start_failed"
    assert "ValueError: the engine cannot start" in errors[0]["message"]
    again = (await served.chat("bad")).json()["error"]
    assert "next try in" in again["message"]
    assert len(runs_of(ledger, "bad")) == 1  # the retry waits for the backoff


async def test_a_start_refused_before_launch_is_a_503_for_every_waiter(
    tmp_path: Path, ledger: Ledger, serve: Any
) -> None:
    """Not only an engine's crash: a recipe that can't be had fails the start the same way
    (it was a 500 'unexpected error')."""
    served = await serve(fleet_config(tmp_path, [on_demand("a", tmp_path, recipe="nope")]))
    replies = await asyncio.gather(served.chat("a"), served.chat("a"))
    assert [r.status_code for r in replies] == [503, 503]
    errors = [r.json()["error"] for r in replies]
    assert errors[0] == errors[1]
    assert errors[0]["code"] == "start_failed"
    assert "names recipe 'nope', which does not exist" in errors[0]["message"]
    assert not runs_of(ledger, "a")


async def test_after_the_backoff_the_next_request_retries_the_start(
    tmp_path: Path, ledger: Ledger, serve: Any
) -> None:
    served = await serve(failing_start(tmp_path, restart={"backoff_initial": 1.0}))
    assert (await served.chat("bad")).status_code == 503
    assert "next try in" in (await served.chat("bad")).json()["error"]["message"]
    assert len(runs_of(ledger, "bad")) == 1
    await asyncio.sleep(1.2)
    again = (await served.chat("bad")).json()["error"]
    assert "next try in" not in again["message"]
    assert "ValueError: the engine cannot start" in again["message"]
    assert len(runs_of(ledger, "bad")) == 2  # retried once the backoff passed


async def test_idle_past_idle_stop_is_stopped_and_recorded(
    tmp_path: Path, ledger: Ledger, serve: Any
) -> None:
    config = fleet_config(tmp_path, [on_demand("a", tmp_path, idle_stop="0.5s")])
    served = await serve(config)
    assert (await served.chat("a")).status_code == 200
    served.fleet.demand.poll = 0.1
    await until(lambda: served.fleet.supervisors["a"].state == "stopped", timeout=10)
    (stop,) = [e for e in _events(ledger) if e[1] == "stop"]
    assert stop[2].startswith("idle for ")
    assert "(stopped for idleness)" in render(collect(ledger, "a"))
    assert runs_of(ledger, "a")[-1]["state"] == "stopped"
    assert (await served.chat("a")).status_code == 200  # and starts again on the next one
    assert len(runs_of(ledger, "a")) == 2


async def test_an_idle_stop_shorter_than_the_recorded_start_warns(
    tmp_path: Path, ledger: Ledger, serve: Any
) -> None:
    config = fleet_config(tmp_path, [on_demand("a", tmp_path, idle_stop=1000)])
    served = await serve(config)
    assert (await served.chat("a")).status_code == 200
    dep = config.deployments[0]
    assert idle_stop_warning(dep, ledger) is None
    short = dep.model_copy(update={"idle_stop": 0.001})
    warning = idle_stop_warning(short, ledger)
    assert warning is not None
    assert "deployments['a'].idle_stop 0 s is shorter than its start" in warning
    assert "recorded in the ledger" in warning


def test_without_a_recorded_start_the_recipes_figure_counts(tmp_path: Path) -> None:
    """smollm2-135m-cpu states "startup to ready ~25 s"; the GPU recipe for the same model
    is not this host's hardware and is not counted."""
    recipes = load_recipes()
    dep = Deployment(name="m", model="HuggingFaceTB/SmolLM2-135M-Instruct", on_demand=True,
                     idle_stop=10)  # fmt: skip
    assert expected_start_s(dep, recipes, "cpu") == 25.0
    warning = idle_stop_warning(dep, None, recipes, "cpu")
    assert warning is not None
    assert "10 s is shorter than its start (25 s, its recipe's figure)" in warning
    assert idle_stop_warning(dep.model_copy(update={"idle_stop": 60}), None, recipes) is None
    assert idle_stop_warning(dep.model_copy(update={"on_demand": False}), None, recipes) is None
    named = dep.model_copy(update={"recipe": "gpt-oss-120b-gb10", "idle_stop": 60})
    assert expected_start_s(named, recipes, None) == 120.0  # the seed's "~120" s


def test_the_warning_comes_when_any_command_loads_the_config(tmp_path: Path) -> None:
    path = tmp_path / "corral.yaml"
    path.write_text(yaml.safe_dump({"home": str(tmp_path / "home"), "deployments": [
        {"name": "m", "model": "HuggingFaceTB/SmolLM2-135M-Instruct", "on_demand": True,
         "idle_stop": "10s", "recipe": "smollm2-135m-cpu"}]}))  # fmt: skip
    done = corral("render", "m", "--config", str(path))
    assert "warning: deployments['m'].idle_stop 10 s is shorter than its start (25 s" in (
        done.stderr
    )
    path.write_text(path.read_text().replace("10s", "15m"))
    assert "idle_stop" not in corral("render", "m", "--config", str(path)).stderr


def test_idle_stop_takes_durations_and_names_a_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "corral.yaml"
    path.write_text("deployments:\n  - {name: m, model: x, on_demand: true, idle_stop: 15m}\n")
    assert load_config(path, env={}).deployments[0].idle_stop == 900.0
    path.write_text("deployments:\n  - {name: m, model: x, idle_stop: soon}\n")
    with pytest.raises(ConfigError, match=r"deployments\['m'\]\.idle_stop"):
        load_config(path, env={})


def _events(ledger: Ledger) -> list[tuple[str, str, str]]:
    rows = ledger.conn.execute(
        "SELECT d.name, e.kind, e.detail FROM events e JOIN deployments d "
        "ON d.id = e.deployment_id ORDER BY e.id"
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


async def test_a_streaming_client_sees_the_start_as_sse_comments(
    tmp_path: Path, ledger: Ledger, serve: Any
) -> None:
    served = await serve(fleet_config(tmp_path, [on_demand("a", tmp_path)]))
    text = await _stream(served, "a")
    assert text.startswith(": starting ")
    assert "data: {" in text
    assert text.rstrip().endswith("data: [DONE]")


async def test_a_streaming_client_of_a_failed_start_gets_an_error_event(
    tmp_path: Path, ledger: Ledger, serve: Any
) -> None:
    script = tmp_path / "bad.py"
    script.write_text("print('ValueError: no', flush=True)\nraise SystemExit(3)\n")
    dep = scripted("bad", tmp_path, recipe="bad", on_demand=True)
    served = await serve(fleet_config(tmp_path, [dep], [script_recipe("bad", script)]))
    text = await _stream(served, "bad")
    assert text.startswith(": starting ")
    assert '"code": "start_failed"' in text or '"code":"start_failed"' in text
    assert text.rstrip().endswith("data: [DONE]")


async def _stream(served: Served, model: str) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
            "stream": True}  # fmt: skip
    url = f"{served.gateway.url}/v1/chat/completions"
    async with served.client.stream("POST", url, json=body) as reply:
        assert reply.status_code == 200
        return (await reply.aread()).decode()


async def test_an_engine_slow_to_stop_is_not_started_again_while_it_goes(
    tmp_path: Path, ledger: Ledger, serve: Any
) -> None:
    """vLLM takes seconds to stop; the run is `stopping` meanwhile, which is no live run
    for the supervisor to adopt (it once launched the evicted deployment again)."""
    slow = on_demand("a", tmp_path, args=["--ignore-sigterm"])
    served = await serve(budgeted(fleet_config(tmp_path, [slow, on_demand("b", tmp_path)]), 1.5))
    assert (await served.chat("a")).status_code == 200
    assert (await served.chat("b")).status_code == 200
    await asyncio.sleep(1)
    assert [len(runs_of(ledger, n)) for n in ("a", "b")] == [1, 1]
    assert (await served.states())["a"] == "evicted"


def test_memory_shown_is_the_config_or_the_measured_peak_or_what_the_engine_logged() -> None:
    peak = {PEAK_FACT: "6.2 GiB", "model_load_gib": "0.25 GiB"}
    assert memory_of(5.0, peak) == (6.2, "peak measured in its last run")
    assert memory_of(7.0, peak) == (7.0, "memory_gib in the config")
    logged = {"model_load_gib": "0.25 GiB", "kv_cache_memory_gib": "1.0 GiB"}
    assert memory_of(None, logged) == (1.25, "weights + KV cache its engine logged")
    assert memory_of(None, {}) is None


def test_status_shows_an_on_demand_deployment_that_never_ran_with_what_it_needs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "corral.yaml"
    path.write_text(yaml.safe_dump({"home": str(tmp_path / "home"), "deployments": [
        {"name": "m", "model": "x", "on_demand": True, "memory_gib": 5},
        {"name": "n", "model": "x", "on_demand": True}]}))  # fmt: skip
    done = corral("status", "--config", str(path))
    assert done.returncode == 0, done.stderr
    lines = [line.strip() for line in done.stdout.splitlines()]
    at = lines.index("m  stopped (on demand: starts on the first request)")
    assert lines[at + 1] == "memory       would need 5.00 GiB (memory_gib in the config)"
    assert lines[lines.index("n  stopped (on demand: starts on the first request)") + 1] == (
        "memory       unknown until it has run (set memory_gib to place it by memory)")  # fmt: skip
    shown = json.loads(corral("status", "--config", str(path), "--json").stdout)
    assert [(r["deployment"], r["memory_gib"]) for r in shown] == [("m", 5.0), ("n", None)]


# ---- placement across hosts --------------------------------------------------------------


def test_choose_host_takes_the_fewest_evictions_then_the_most_room() -> None:
    full = Room("h1", budget=2.0, held=2.0, need=1.0, evictable=(1.0, 1.0))
    empty = Room("h2", budget=1.5, held=0.0, need=1.0)
    roomy = Room("h3", budget=8.0, held=1.0, need=1.0)
    assert full.evictions() == 1
    assert empty.evictions() == 0
    assert choose_host([full, empty]) == "h2"
    assert choose_host([empty, roomy]) == "h3"  # no eviction on either: most room left
    pinned = Room("h4", budget=2.0, held=2.0, need=1.0)  # nothing it may evict
    assert pinned.evictions() is None
    assert choose_host([pinned]) is None
    assert choose_host([full, pinned]) == "h1"


def test_a_unified_memory_box_counts_system_memory_less_the_planners_margin() -> None:
    """GB10: 121.69 GiB the engine sees (gb10.yaml) x 0.90, vLLM 0.14's default
    gpu_memory_utilization; an explicit budget wins; a discrete GPU has none by default."""
    assert unified_budget_gib("gb10") == round(0.90 * 121.69, 2)
    assert host_budget_gib(Host(hardware="gb10")) == 109.52
    assert host_budget_gib(Host(hardware="gb10", memory_budget_gib=64)) == 64
    assert host_budget_gib(Host(hardware="h200")) is None


async def test_a_request_places_it_on_the_host_where_it_fits_without_eviction(
    tmp_path: Path, ledger: Ledger, serve: Any
) -> None:
    hosts = {"h1": Host(hardware="cpu", memory_budget_gib=1.5),
             "h2": Host(hardware="cpu", memory_budget_gib=1.5),
             "h3": Host(hardware="gb10", memory_budget_gib=64)}  # fmt: skip
    a = on_demand("a", tmp_path, host="h1")
    b = on_demand("b", tmp_path, host="h1", place_on=["h3", "h1", "h2"])
    plain = fleet_config(tmp_path, [])
    config = CorralConfig(home=tmp_path, recipes_dir=plain.recipes_dir, hosts=hosts,
                          deployments=[a, b])  # fmt: skip
    served = await serve(config)
    assert served.fleet.demand.candidates["b"] == ["h1", "h2"]  # no recipe for gb10
    assert (await served.chat("a")).status_code == 200
    assert (await served.chat("b")).status_code == 200  # h1 would evict a; h2 is empty
    assert served.fleet.supervisors["b"].deployment.host == "h2"
    assert await served.states() == {"a": "running", "b": "running"}
    assert [len(runs_of(ledger, n)) for n in ("a", "b")] == [1, 1]
    assert not [e for e in _events(ledger) if e[1] == "stop"]


# ---- sleep mode (the scripted engine's /sleep, /wake_up: vLLM CPU refuses sleep mode) ------

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SLEEPY = {**SCRIPTED_RECIPE, "name": "scripted-sleepy",
          "args": [*SCRIPTED_RECIPE["args"], "--wake-delay", "0.3"],
          "sleep_mode": {"safe": True, "level": 1, "reason": "the scripted engine"}}  # fmt: skip


async def test_an_idle_engine_whose_recipe_allows_it_sleeps_and_a_request_wakes_it(
    tmp_path: Path, ledger: Ledger, serve: Any
) -> None:
    dep = on_demand("s", tmp_path, recipe="scripted-sleepy", idle_stop="0.5s")
    config = fleet_config(tmp_path, [dep], [SLEEPY])
    served = await serve(config)
    assert (await served.chat("s")).status_code == 200
    served.fleet.demand.poll = 0.1
    await until(lambda: any(e[1] == "sleep" for e in _events(ledger)), timeout=10)
    assert await served.states() == {"s": "sleeping"}
    (row,) = status_rows(served.fleet.config, ledger)
    assert row["shown_state"] == "sleeping"
    assert _memory_verb(row) == "would need"  # asleep: not serving
    engine = served.fleet.supervisors["s"].live
    assert engine is not None
    asleep = (await served.client.get(f"{engine.base_url}/is_sleeping")).json()
    assert asleep == {"is_sleeping": True}
    served.fleet.demand.poll = 60.0  # no second idle round while the wake is checked
    assert (await served.chat("s")).status_code == 200  # woken, not started again
    assert len(runs_of(ledger, "s")) == 1
    kinds = [(e[1], e[2].split(":")[0]) for e in _events(ledger) if e[1] in {"sleep", "wake"}]
    assert [k for k, _ in kinds] == ["sleep", "wake"]
    assert kinds[0][1] == "level 1"
    woke = float(kinds[1][1].split()[2])
    assert 0.3 <= woke < 5  # the engine's --wake-delay 0.3: the wake was waited for
    assert not [e for e in _events(ledger) if e[1] == "stop"]
    metrics = (await served.client.get(f"{served.gateway.url}/metrics")).text
    assert 'corral_on_demand_sleeps_total{deployment="s"} 1' in metrics
    assert 'corral_on_demand_wakes_total{deployment="s"} 1' in metrics
    assert status_rows(served.fleet.config, ledger)[0]["shown_state"] == "ready"


async def test_a_sleeping_engine_still_counts_and_is_evicted_for_room(
    tmp_path: Path, ledger: Ledger, serve: Any
) -> None:
    sleepy = on_demand("s", tmp_path, recipe="scripted-sleepy", idle_stop="0.3s")
    config = budgeted(fleet_config(tmp_path, [sleepy, on_demand("b", tmp_path)], [SLEEPY]), 1.5)
    served = await serve(config)
    assert (await served.chat("s")).status_code == 200
    served.fleet.demand.poll = 0.1
    await until(lambda: served.fleet.supervisors["s"].state == "sleeping", timeout=10)
    assert (await served.chat("b")).status_code == 200
    assert await served.states() == {"s": "evicted", "b": "running"}


def test_recipes_for_gb10_never_use_sleep_mode() -> None:
    """vllm issue 50011: /wake_up crashes EngineCore on GB10; the CPU build refuses it."""
    recipes = load_recipes()
    gb10 = [r for r in recipes.values() if "gb10" in r.match.hardware and r.match.engine == "vllm"]
    assert len(gb10) >= 5
    for recipe in gb10:
        assert recipe.sleep_mode is not None, recipe.name
        assert not recipe.sleep_mode.safe
        assert "vllm-project/vllm/issues/50011" in recipe.sleep_mode.reason
    cpu = recipes["smollm2-135m-cpu"].sleep_mode
    assert cpu is not None
    assert not cpu.safe
    assert "Sleep mode is not supported on current platform." in cpu.reason
    refused = FIXTURES / "logs/vllm/smollm2-135m-cpu-vllm-0.32.0-enable-sleep-mode-refused.log"
    assert "Value error, Sleep mode is not supported on current platform." in refused.read_text()


def _memory_verb(row: dict[str, Any]) -> str:
    return _memory_line(row).split()[1] + " " + _memory_line(row).split()[2]
