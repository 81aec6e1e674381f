"""The search: for each candidate, the planner's check, then a restart through the one
pipeline (control/pipeline.py) with the candidate's settings as an override of the
deployment, readiness, the measure; every outcome into the ledger as it lands (so an
interrupted search resumes where it stopped); the original deployment restored at the end,
on a budget stop, on an engine failure and on Ctrl-C/SIGTERM.

`current` is measured first and, when the budget allows, once more at the end
(`current-again`): repeats within one engine run do not see how much a restart and the
minutes between two runs move the figures, and on a shared machine that is the larger
noise (measured on vLLM CPU: `current` at 4.99 req/s first and 6.29 after six restarts,
each run's own repeats within 21 %; docs/tune.md). The verdict counts that drift as noise.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any

from corral.bench.client import Endpoint
from corral.config import CorralConfig
from corral.control.pipeline import (
    Services,
    bring_up,
    found_in,
    prepare_checked,
    runtime_of,
    stop_deployment,
)
from corral.errors import CorralError, EngineError
from corral.recipes.prepare import Prepared
from corral.tune import fit, store
from corral.tune.measure import Repeats, measure
from corral.tune.space import AGAIN, CURRENT, Candidate
from corral.tune.workload import Objective, Workload

Measure = Callable[[Endpoint, Workload, Objective, Repeats], dict[str, Any]]
Check = Callable[[Prepared, Candidate, Workload], tuple[str | None, str]]
FIRST_GUESS_S = 90.0


@dataclass
class TuneRequest:
    deployment: str
    workload: Workload
    objective: Objective
    candidates: list[Candidate]
    repeats: Repeats = field(default_factory=Repeats)
    max_time: float = 1200.0


def with_candidate(config: CorralConfig, name: str, candidate: Candidate) -> CorralConfig:
    """The config with one deployment overridden by the candidate (the rest unchanged)."""
    deployments = [candidate.apply(d) if d.name == name else d for d in config.deployments]
    return config.model_copy(update={"deployments": deployments})


def _restart(config: CorralConfig, name: str, services: Services) -> Endpoint:
    """Stop the deployment if it runs; bring it up with `config` through the pipeline."""
    _stop_quietly(name, services, "restarted by `corral tune`")
    prepared = prepare_checked(config, name, services)
    runtime = runtime_of(prepared.deployment, services, supervised=False)
    live = asyncio.run(bring_up(prepared, services, runtime))
    return Endpoint(live.base_url, prepared.launch.served_name, "completions")


def _stop_quietly(name: str, services: Services, reason: str) -> None:
    with contextlib.suppress(EngineError):
        stop_deployment(name, services, reason=reason)


def _error_line(exc: EngineError) -> str:
    for line in reversed(exc.log_tail or []):
        if "Error" in line or "error" in line:
            return line.strip()[:300]
    return exc.message.splitlines()[0]


@contextlib.contextmanager
def interrupts_as_keyboard() -> Iterator[None]:
    """SIGTERM behaves as Ctrl-C, so the restore in `finally` runs for both."""

    def raise_interrupt(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def plan_all(config: CorralConfig, request: TuneRequest, services: Services,
             check: Check = fit.check) -> list[tuple[Candidate, str | None, str]]:  # fmt: skip
    """Each candidate with the planner's reason it can't fit (None: fits) and figures (the
    recipe's notes are said once, at the first restart, not once per candidate)."""
    quiet = replace(services, say=lambda _kind, _text: None)
    out = []
    for cand in request.candidates:
        try:
            prepared = prepare_checked(with_candidate(config, request.deployment, cand),
                                       request.deployment, quiet)  # fmt: skip
            reason, figures = check(prepared, cand, request.workload)
        except CorralError as exc:
            reason, figures = exc.message.splitlines()[0], ""
        out.append((cand, reason, figures))
    return out


class Search:
    """One `corral tune` run; `say(kind, text)` is the progress sink."""

    def __init__(self, config: CorralConfig, request: TuneRequest, services: Services,
                 measure_fn: Measure = measure, check: Check = fit.check) -> None:  # fmt: skip
        self.config, self.request, self.services = config, request, services
        self.measure, self.check = measure_fn, check
        self.started = time.monotonic()
        self.durations: list[float] = []

    def run(self) -> tuple[int, list[dict[str, Any]], str]:
        """(search id, every candidate's outcome, final state)."""
        req, ledger = self.request, self.services.ledger
        names = [c.name + repr(c.args) + repr(c.fields) for c in req.candidates]
        key = store.search_key(req.deployment, req.workload.name, req.objective.text, names)
        tune_id = store.open_search(ledger, req.deployment, key, req.workload.name,
                                    req.objective.text)  # fmt: skip
        done = store.finished(ledger, tune_id)
        planned = plan_all(self.config, req, self.services, self.check)
        if all(reason is not None for c, reason, _ in planned if c is not CURRENT):
            skipped = [_skipped(c, r or "", f) for c, r, f in planned]
            for outcome in skipped:
                store.record_candidate(ledger, tune_id, outcome)
            return tune_id, skipped, "nothing-fits"
        was_running = self._running()
        state = "done"
        outcomes: list[dict[str, Any]] = []
        try:
            with interrupts_as_keyboard():
                state = self._each(tune_id, planned, done, outcomes)
        except KeyboardInterrupt:
            state = "interrupted"
        finally:
            self._restore(was_running)
        return tune_id, outcomes, state

    def _running(self) -> bool:
        found = found_in(self.services, self.request.deployment)
        return found is not None and found[1] is not None

    def _each(self, tune_id: int, planned: list[tuple[Candidate, str | None, str]],
              done: dict[str, dict[str, Any]], outcomes: list[dict[str, Any]]) -> str:  # fmt: skip
        out_of_time = False
        plan = [*planned, (AGAIN, None, "the current settings again, after the others")]
        for index, (cand, reason, figures) in enumerate(plan):
            if cand.name in done:
                self.services.say("resume", f"{cand.name}: already {done[cand.name]['status']}")
                outcomes.append(done[cand.name])
                continue
            if cand is AGAIN and not _comparable(outcomes):
                continue  # nothing measured to compare `current` with: no second run
            if reason is not None:  # skips cost no time: recorded even past the budget
                outcome = _skipped(cand, reason, figures)
            elif out_of_time or not self._time_for_one(len(plan) - index):
                out_of_time = True
                continue
            else:
                outcome = self._one(cand, figures, index, len(plan))
            store.record_candidate(self.services.ledger, tune_id, outcome)
            outcomes.append(outcome)
        return "budget" if out_of_time else "done"

    def _time_for_one(self, left: int) -> bool:
        elapsed = time.monotonic() - self.started
        guess = sum(self.durations) / len(self.durations) if self.durations else FIRST_GUESS_S
        if elapsed + guess > self.request.max_time:
            self.services.say("budget", f"{elapsed:.0f} s used of {self.request.max_time:.0f} s; "
                              f"the next candidate needs ~{guess:.0f} s: stopping")  # fmt: skip
            return False
        self.services.say("estimate", f"~{guess * left:.0f} s left for {left} candidate(s)")
        return True

    def _one(self, cand: Candidate, figures: str, index: int, total: int) -> dict[str, Any]:
        say, begun = self.services.say, time.monotonic()
        say("candidate", f"{index + 1}/{total} {cand.name} {' '.join(cand.args)} ({figures})")
        config = with_candidate(self.config, self.request.deployment, cand)
        base = {"name": cand.name, "settings": cand.settings, "args": list(cand.args),
                "fields": dict(cand.fields), "planner": figures}  # fmt: skip
        try:
            endpoint = _restart(config, self.request.deployment, self.services)
            result = self.measure(endpoint, self.request.workload, self.request.objective,
                                  self.request.repeats)  # fmt: skip
            outcome = {**base, "status": "measured", **result}
        except EngineError as exc:
            say("failed", f"{cand.name}: {_error_line(exc)}")
            outcome = {**base, "status": "failed", "reason": _error_line(exc)}
        outcome["seconds"] = time.monotonic() - begun
        self.durations.append(outcome["seconds"])
        say("measured", _one_line(outcome))
        return outcome

    def _restore(self, was_running: bool) -> None:
        """The deployment as configured: running again if it ran before, else stopped."""
        name, say = self.request.deployment, self.services.say
        if not was_running:
            _stop_quietly(name, self.services, "tune finished")
            say("restore", f"{name} stopped (it was not running before the tune)")
            return
        try:
            _restart(self.config, name, self.services)
            say("restore", f"{name} restarted with its configured settings")
        except EngineError as exc:
            say("failed", f"restoring {name} failed: {exc.message}")
            raise


def _comparable(outcomes: list[dict[str, Any]]) -> bool:
    """`current` and at least one other candidate were measured."""
    measured = {o["name"] for o in outcomes if o["status"] == "measured"}
    return CURRENT.name in measured and len(measured) > 1


def _skipped(cand: Candidate, reason: str, figures: str) -> dict[str, Any]:
    return {"name": cand.name, "settings": cand.settings, "args": list(cand.args),
            "fields": dict(cand.fields), "status": "skipped", "reason": reason,
            "planner": figures}  # fmt: skip


def _one_line(outcome: dict[str, Any]) -> str:
    if outcome["status"] != "measured":
        return f"{outcome['name']}: {outcome['status']} ({outcome.get('reason')})"
    spread = outcome.get("spread")
    shown = f" ±{spread:.0%}" if spread is not None else ""
    return (f"{outcome['name']}: goodput {outcome['goodput']:.2f} req/s{shown}, "
            f"decode {outcome.get('decode_tok_s') or 0:.1f} tok/s at c=1")  # fmt: skip
