"""`corral tune`: spaces, objectives, the planner's check, the verdict, --apply, and the
whole search against the scripted engine (real processes restarted through the pipeline,
measured by the real bench), including a failing candidate, resume, restore and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import yaml

from corral.bench.client import Endpoint
from corral.config import CorralConfig, Deployment
from corral.control.pipeline import Services, find_running, prepare_checked, stop_deployment
from corral.errors import BenchError, ConfigError
from corral.ledger.db import Ledger, open_ledger
from corral.ledger.launches import runs_of
from corral.recipes.prepare import Prepared
from corral.report.logbook import collect
from corral.report.markdown import render
from corral.tune import fit, result, store
from corral.tune.measure import Repeats, measure, workload_requests
from corral.tune.search import Search, TuneRequest, interrupts_as_keyboard
from corral.tune.space import Candidate, candidates_of, load_space
from corral.tune.workload import Objective, Shape, Workload, load_workload, parse_objective
from tests.unit.test_deploy_flow import make_config
from tests.unit.test_render import cpu_box


def test_default_vllm_space_varies_batching_and_sequences() -> None:
    cands = load_space(None, "vllm")
    assert cands[0].name == "current"
    assert cands[0].args == ()
    args = [c.args for c in cands]
    assert ("--max-num-batched-tokens", "256") in args
    assert ("--max-num-seqs", "4") in args
    assert ("--no-enable-chunked-prefill",) in args
    assert len(cands) >= 7  # the done-when: at least six candidates besides `current`
    kv = candidates_of({"axes": {"kv_cache_gib": {"values": [2]}}}, "vllm")[1]
    assert kv.apply(Deployment(name="d", model="m")).kv_cache_gib == 2


def test_user_space_combinations_and_unknown_settings() -> None:
    space = {"candidates": [{"settings": {"max_num_seqs": 8, "enable_prefix_caching": True}}]}
    combo = candidates_of(space, "vllm")[1]
    assert combo.args == ("--max-num-seqs", "8", "--enable-prefix-caching")
    dep = combo.apply(Deployment(name="d", model="m", args=["--seed", "1"]))
    assert dep.args == ["--seed", "1", "--max-num-seqs", "8", "--enable-prefix-caching"]
    with pytest.raises(ConfigError, match="unknown setting 'max_seqs'"):
        candidates_of({"candidates": [{"settings": {"max_seqs": 8}}]}, "vllm")
    with pytest.raises(ConfigError, match="no tuning space"):
        candidates_of({}, "tgi")


def test_objective_with_percentile() -> None:
    obj = parse_objective("ttft_p95=2s,tpot_p95=60ms")
    assert (obj.slo.ttft, obj.slo.tpot, obj.share) == (2.0, 0.06, 0.95)
    assert parse_objective("e2e_p50=1s").share == 0.5
    with pytest.raises(BenchError, match="mixes percentiles"):
        parse_objective("ttft_p95=2s,tpot_p50=60ms")
    with pytest.raises(BenchError, match="at least one"):
        parse_objective("")
    with pytest.raises(BenchError, match="unknown workload"):
        load_workload("nope")


class WordCounter:
    """One token per word: enough for prompts of a set length without an engine."""

    async def count(self, text: str, *, chat: bool) -> int:
        return len(text.split())


async def test_repeats_send_the_same_lengths_with_new_words() -> None:
    """So the spread between repeats is noise, not another draw of the chat mix, and no
    repeat is served from the engine's prefix cache."""
    endpoint, chat = Endpoint("http://127.0.0.1:1", "m", api="completions"), load_workload("chat")

    async def draw(text_seed: int) -> list[tuple[int, int | None, str]]:
        requests = await workload_requests(WordCounter(), endpoint, chat, 12, seed=4,
                                           text_seed=text_seed)  # fmt: skip
        return [(r.max_tokens, r.prompt_tokens, r.payload["prompt"]) for r in requests]

    first, again, second = await draw(4), await draw(4), await draw(1004)
    assert first == again  # seeded: every candidate gets the same requests
    assert [(m, n) for m, n, _ in first] == [(m, n) for m, n, _ in second]
    assert len({m for m, _, _ in first}) > 1  # the mix really has several lengths
    assert all(a != b for (_, _, a), (_, _, b) in zip(first, second, strict=True))


def test_engine_rules_refuse_what_vllm_refuses() -> None:
    small = Candidate("x", {"enable_chunked_prefill": False, "max_num_batched_tokens": 512})
    assert "must be at least max_model_len 4096" in (fit.engine_rules(small, 4096) or "")
    seqs = Candidate("y", {"max_num_batched_tokens": 8, "max_num_seqs": 16})
    assert "below max_num_seqs" in (fit.engine_rules(seqs, 4096) or "")
    assert fit.engine_rules(Candidate("z", {"max_num_seqs": 4}), 4096) is None


def _default_prepared(tmp_path: Path, model_path: Path) -> Prepared:
    dep = Deployment(name="smollm2-135m-instruct", model="HuggingFaceTB/SmolLM2-135M-Instruct",
                     recipe="smollm2-135m-cpu", max_model_len=4096)  # fmt: skip
    root = {"name": "test", "path": str(model_path.parents[2])}
    config = CorralConfig.model_validate({"home": str(tmp_path), "store": {"roots": [root]},
                                          "deployments": [dep.model_dump()]})  # fmt: skip
    with open_ledger(tmp_path / "l.sqlite3") as ledger:
        return prepare_checked(config, dep.name, Services(ledger, tmp_path, cpu_box))


def test_planner_check_on_the_default_model(tmp_path: Path, default_model_path: Path) -> None:
    prepared = _default_prepared(tmp_path, default_model_path)
    chat = load_workload("chat")
    reason, figures = fit.check(prepared, Candidate("current"), chat)
    assert reason is None
    # 1 GiB of KV for SmolLM2 (30 layers × K,V × 3 heads × 64 × 2 bytes = 23,040 bytes a
    # token): 46,603 tokens, 2,912 whole blocks of 16 = 46,592.
    assert "KV 46,592 tokens: 85 requests of 544 tokens" in figures  # the longest shape
    huge = Workload("huge", "", (Shape(30000, 10),), (1,))
    reason, _ = fit.check(prepared, Candidate("current"), huge)
    assert reason is not None
    assert "30010-token requests exceed max_model_len 4096" in reason


def test_llama_slots_fit_the_workload() -> None:
    """llama-server: a split pool (ctx ÷ slots) or a shared one (--kv-unified)."""
    argv = ("llama-server", "--ctx-size", "16384", "--parallel", "4", "--kv-unified",
            "--kv-unified-per-slot", "4096")  # fmt: skip
    prepared = cast(Prepared, SimpleNamespace(launch=SimpleNamespace(argv=argv)))
    chat = load_workload("chat")
    space = {"axes": {"parallel": {"values": [8, 1]}, "ctx_size": {"values": [512]}}}
    current, eight, one, small = candidates_of(space, "llama-server")
    assert fit.llama_slots(prepared, current, chat) == (
        None, "KV pool 16,384 tokens, 4 slots: 4 requests of 544 at once")  # fmt: skip
    assert "8 slots: 8 requests" in fit.llama_slots(prepared, eight, chat)[1]
    assert "1 slot: 1 request of 544" in fit.llama_slots(prepared, one, chat)[1]
    reason, _ = fit.llama_slots(prepared, small, chat)
    assert reason == (
        "a slot holds 512 tokens (--ctx-size 512 over 4 slots); the workload's requests need 544"
    )
    split = cast(Prepared, SimpleNamespace(launch=SimpleNamespace(argv=argv[:5])))
    assert fit.llama_slots(split, eight, chat)[0] is None  # 2,048 a slot holds 544
    assert fit.llama_slots(split, eight, load_workload("long-context"))[0] == (
        "a slot holds 2,048 tokens (--ctx-size 16,384 over 8 slots); "
        "the workload's requests need 2,080")  # fmt: skip


def test_nothing_fits_restarts_nothing_and_says_why(
    tmp_path: Path, default_model_path: Path
) -> None:
    """Through the CLI: every candidate ruled out → each reason shown, exit 2, no engine run."""
    from tests.support.corral_cli import corral, default_config_file

    config = default_config_file(tmp_path, default_model_path, 18999)
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"candidates": [
        {"name": "no-chunk", "settings": {"enable_chunked_prefill": False,
                                          "max_num_batched_tokens": 512}},
        {"name": "seqs", "settings": {"max_num_seqs": 64, "max_num_batched_tokens": 32}},
    ]}))  # fmt: skip
    done = corral("tune", "smollm2-135m-instruct", "--config", str(config), "--space", str(space))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "| no-chunk | skipped |" in done.stdout
    assert "must be at least max_model_len 4096" in done.stdout
    assert "max_num_batched_tokens 32 is below max_num_seqs 64" in done.stdout
    assert "nothing restarted" in done.stderr
    with open_ledger(tmp_path / "home" / "ledger.sqlite3") as opened:
        assert runs_of(opened, "smollm2-135m-instruct") == []


def _outcome(name: str, goodput: float, spread: float | None) -> dict[str, Any]:
    return {"name": name, "status": "measured", "goodput": goodput, "spread": spread,
            "decode_tok_s": 30.0, "miss": f"{name} misses"}  # fmt: skip


def test_verdict_calls_a_margin_inside_the_spread_a_tie() -> None:
    tie = result.verdict([_outcome("current", 1.0, 0.08), _outcome("a", 1.05, 0.02)])
    assert tie["winner"] == "a"
    assert tie["tie"] is True
    assert tie["tied_with_winner"] == ["a", "current"]
    win = result.verdict([_outcome("current", 1.0, 0.03), _outcome("a", 1.5, 0.02)])
    assert (win["tie"], round(win["margin"], 2)) == (False, 0.5)
    assert "+50% over current, measured spread 3%: a win" in result.summary_line(win)
    # the real run's shape: `current` met no level, the top two within their spread
    close = result.verdict([_outcome("current", 0.0, 0.0), _outcome("a", 3.51, 0.04),
                            _outcome("b", 3.48, 0.06)])  # fmt: skip
    line = result.summary_line(close)
    assert "current met the SLO at no load level" in line
    assert "+1% over b, measured spread 6%: a tie" in line
    assert (close["tie"], close["runner_tie"], close["tied_with_winner"]) == (
        False,
        True,
        ["a", "b"],
    )
    # `current` moved 20 % between its first and its last run: its figure is the mean of
    # the two (0.9), and a 22 % win over that is outside the drift
    moved = result.verdict([_outcome("current", 1.0, 0.03), _outcome("a", 1.1, 0.02),
                            _outcome("current-again", 0.8, 0.02)])  # fmt: skip
    assert (moved["winner"], round(moved["margin"], 2)) == ("a", 0.22)
    assert (moved["tie"], round(moved["drift"], 2)) == (False, 0.2)
    # the real run's shape: the winner's 26 % over current's first run is 11 % over the
    # mean of both runs, inside the 21 % drift: a tie
    real = result.verdict([_outcome("current", 4.99, 0.21), _outcome("b", 6.27, 0.0),
                           _outcome("current-again", 6.29, 0.02)])  # fmt: skip
    assert (real["winner"], real["tie"], round(real["margin"], 2)) == ("b", True, 0.11)
    assert "current moved 20% between its first and last run" in result.summary_line(moved)
    assert "current-again" not in moved["tied_with_winner"]
    far, near = _outcome("current", 0.0, None), _outcome("a", 0.0, None)
    far["miss_ratio"], near["miss_ratio"] = 3.0, 1.2
    none = result.verdict([far, near, _outcome("b", 0.0, None)])
    assert "no candidate met the SLO; closest: a: a misses; current: " in none["note"]
    assert none["closest"] == ["a", "current", "b"]  # by how much they miss, not measured
    assert result.pareto([(30, 1, "a"), (20, 2, "b"), (10, 1, "c")]) == {"a", "b"}


def test_apply_writes_the_winner_with_a_diff(tmp_path: Path) -> None:
    path = tmp_path / "corral.yaml"
    path.write_text(yaml.safe_dump({"deployments": [{"name": "d", "model": "m"}]}))
    winner = {"args": ["--max-num-seqs", "4"], "fields": {"kv_cache_gib": 2}}
    new, diff = result.apply_winner(path, "d", winner)
    assert yaml.safe_load(new)["deployments"][0] == {
        "name": "d", "model": "m", "args": ["--max-num-seqs", "4"], "kv_cache_gib": 2,
    }  # fmt: skip
    assert "+  - --max-num-seqs" in diff
    with pytest.raises(ConfigError, match="no deployment 'x'"):
        result.apply_winner(path, "x", winner)


# ---- the search against the scripted engine -----------------------------------------


def _fits(_p: Prepared, _c: Candidate, _w: Workload) -> tuple[str | None, str]:
    return None, "fits"


TINY = Workload("tiny", "", (Shape(8, 4, 2), Shape(24, 6)), (1, 2), 2, 2, shared_prefix=4)
OBJ = parse_objective("ttft_p95=300ms")
SPACE = {
    "axes": {"ttft": {"flag": "--ttft", "values": [0.01, 0.6]}},
    "candidates": [{"name": "broken", "settings": {"bogus": 1}}],
}


def _request(config: CorralConfig) -> TuneRequest:
    return TuneRequest("fake", TINY, OBJ, _cands(SPACE), Repeats(1), max_time=300)


def _cands(space: dict[str, Any]) -> list[Candidate]:
    axes = {**space["axes"], "bogus": {"flag": "--bogus", "values": []}}
    return candidates_of({"axes": axes, "candidates": space["candidates"]}, "vllm")


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    with open_ledger(tmp_path / "ledger.sqlite3") as opened:
        yield opened


def _services(ledger: Ledger, home: Path, said: list[str]) -> Services:
    return Services(ledger, home, cpu_box, say=lambda k, t: said.append(f"{k} {t}"))


def _running_command(ledger: Ledger) -> list[str]:
    return json.loads(runs_of(ledger, "fake")[-1]["command"])  # type: ignore[no-any-return]


def test_search_restarts_measures_records_and_restores(tmp_path: Path, ledger: Ledger) -> None:
    config = make_config(tmp_path)
    said: list[str] = []
    services = _services(ledger, tmp_path, said)
    from corral.deploy.flow import DeployOptions, deploy

    deploy(config, "fake", services, DeployOptions(verify=False))  # running before the tune
    try:
        tune_id, outcomes, state = Search(config, _request(config), services, check=_fits).run()
        assert state == "done"
        by = {o["name"]: o for o in outcomes}
        assert by["current"]["status"] == "measured"
        assert by["ttft=0.01"]["goodput"] > 0
        assert by["ttft=0.6"]["goodput"] == 0.0  # every request misses the 300 ms TTFT
        assert "ttft p95" in by["ttft=0.6"]["miss"]
        assert "vs 300 ms (+" in by["ttft=0.6"]["miss"]  # by how much it misses
        assert by["ttft=0.6"]["miss_ratio"] > 1.5
        assert by["broken"]["status"] == "failed"
        assert "unrecognized arguments: --bogus" in by["broken"]["reason"]
        verdict = result.verdict(outcomes)
        assert verdict["winner"] in ("current", "ttft=0.01")
        # restored: running again, with the configured command (no tune flag)
        found = find_running(ledger, "fake", services.host)
        assert found is not None
        assert found[1] is not None
        assert "--ttft" not in _running_command(ledger)
        assert any(s.startswith("restore fake restarted") for s in said)
        # the four candidates, then `current` once more (its restart-to-restart drift)
        assert "current-again" in store.finished(ledger, tune_id)
        assert len(store.finished(ledger, tune_id)) == 5
        assert by["current-again"]["status"] == "measured"
        assert verdict["drift"] is not None
        summary = {"verdict": verdict, "candidates": outcomes}
        store.close_search(ledger, tune_id, "done", summary)
        report = render(collect(ledger, "fake"))
        assert f"### Search {tune_id}: workload tiny, SLO ttft_p95=300ms (done" in report
        assert "| broken | failed |" in report
        # the same search again resumes: nothing re-run, no new engine run
        before = len(runs_of(ledger, "fake"))
        store.close_search(ledger, tune_id, "interrupted", {})
        again_id, again, _ = Search(config, _request(config), services, check=_fits).run()
        assert again_id == tune_id
        assert [o["name"] for o in again] == [o["name"] for o in outcomes]
        assert len(runs_of(ledger, "fake")) == before + 1  # only the restore
    finally:
        stop_deployment("fake", services)


def test_interrupt_restores_and_nothing_fits_restarts_nothing(
    tmp_path: Path, ledger: Ledger
) -> None:
    config = make_config(tmp_path)
    said: list[str] = []
    services = _services(ledger, tmp_path, said)

    def interrupted(_e: Endpoint, _w: Workload, _o: Objective, _r: Repeats) -> dict[str, Any]:
        raise KeyboardInterrupt

    _, outcomes, state = Search(config, _request(config), services, interrupted, _fits).run()
    assert (state, outcomes) == ("interrupted", [])
    assert find_running(ledger, "fake", services.host) is None  # not running before: stopped
    count = len(runs_of(ledger, "fake"))

    def never(_p: Prepared, c: Candidate, _w: Workload) -> tuple[str | None, str]:
        return f"{c.name} does not fit", ""

    _, skipped, state = Search(config, _request(config), services, measure, never).run()
    assert state == "nothing-fits"
    assert {o["status"] for o in skipped} == {"skipped"}
    assert "ttft=0.6 does not fit" in [o["reason"] for o in skipped]
    assert len(runs_of(ledger, "fake")) == count


def test_sigterm_becomes_an_interrupt() -> None:
    def terminated() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)

    with interrupts_as_keyboard(), pytest.raises(KeyboardInterrupt):
        terminated()
    assert signal.getsignal(signal.SIGTERM) is not None


def test_plots_are_written(tmp_path: Path) -> None:
    levels = [{"level": 1, "goodput_req_s": 0.5}, {"level": 2, "goodput_req_s": 1.0}]
    outcome = {**_outcome("a", 1.0, None), "repeats": [{"levels": levels}]}
    paths = result.plot([outcome, {"name": "b", "status": "skipped"}], tmp_path)
    assert [p.name for p in paths] == ["goodput.png", "pareto.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_budget_durations() -> None:
    from corral.cli.tune import parse_duration

    assert [parse_duration(t) for t in ("20m", "90s", "1h", "45")] == [1200, 90, 3600, 45]
    with pytest.raises(ConfigError, match="like 20m or 90s"):
        parse_duration("soon")
