"""`corral deploy`: the one pipeline (control/pipeline.py) composed for a detached run:

    prepare (recipe, plan check, exact command) → adopt the running engine, or launch it
      detached → its output into the recorder while probing readiness → ready
      → the planner's figures → verify suite → optional quick story benchmark

The engine outlives the command; `corral serve`, a later `deploy`, `stop` and `logs` find
it again through the ledger. Everything lands in the ledger as it happens, so a deploy
killed half-way leaves a run in `starting`, which the next one adopts or settles.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from corral.config import CorralConfig
from corral.control.pipeline import (
    Live,
    Services,
    bring_up,
    differs,
    log_lines,
    prepare_checked,
    runtime_of,
    stop_deployment,
)
from corral.errors import EngineError
from corral.ledger import runs
from corral.ledger.launches import fact_rows
from corral.recipes.prepare import Prepared

__all__ = ["DeployOptions", "DeployResult", "Services", "deploy", "log_lines", "stop"]


@dataclass
class DeployOptions:
    force: bool = False
    verify: bool = True
    checks: list[str] | None = None
    bench: bool = False
    bench_max_tokens: int = 128
    timeout: float | None = None
    restart: bool = False


@dataclass
class DeployResult:
    deployment: str
    run_id: int
    adopted: bool
    base_url: str
    served_name: str
    startup_s: float | None
    prepared: Prepared
    verify: list[Any] = field(default_factory=list)
    bench: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def deploy(
    config: CorralConfig, name: str, services: Services, options: DeployOptions
) -> DeployResult:
    """Deploy `name` (see the module docstring); EngineError if it never became ready."""
    prepared = prepare_checked(config, name, services, force=options.force)
    runtime = runtime_of(prepared.deployment, services, supervised=False, config=config)
    changes = differs(prepared, services, runtime)
    if options.restart or changes:
        # `deploy` applies the config: a running engine with another command is replaced
        for change in changes:
            services.say("differs", change)
        _stop_if_running(name, services, "replaced by `corral deploy` (config changed)")
    live = asyncio.run(bring_up(prepared, services, runtime, timeout=options.timeout))
    result = DeployResult(name, live.run_id, live.adopted, live.base_url,
                          prepared.launch.served_name, live.startup_s, prepared,
                          notes=live.notes)  # fmt: skip
    if not live.adopted and services.planner is not None:
        record_planned(services, live)
    if options.verify:
        result.verify = run_verify(live, services, options.checks)
    if options.bench:
        result.bench = run_bench(live, services, options.bench_max_tokens)
    return result


def _stop_if_running(name: str, services: Services, reason: str) -> None:
    with contextlib.suppress(EngineError):
        stop_deployment(name, services, reason=reason)


def stop(name: str, services: Services) -> int:
    """Stop the live run of `name`; its run id. EngineError when nothing runs."""
    return stop_deployment(name, services)


def record_planned(services: Services, live: Live) -> None:
    """The planner's figures for this run as `planned.*` facts, beside the logged ones."""
    assert services.planner is not None
    logged = {r["name"]: r["value"] for r in fact_rows(services.ledger, live.run_id)}
    for name, (value, unit) in services.planner(live.prepared, logged).items():
        runs.record_fact(services.ledger, live.run_id, f"planned.{name}", value, unit=unit)


def run_verify(live: Live, services: Services, checks: list[str] | None) -> list[Any]:
    """The verify suite against the engine, recorded in 0002's tables."""
    from corral.verify.model import Target
    from corral.verify.store import NewVerifyRun, record_verify_run
    from corral.verify.suite import run_suite

    launch, dep = live.prepared.launch, live.prepared.deployment
    target = Target(launch.base_url, launch.served_name, dep.capabilities)
    results = asyncio.run(
        run_suite(target, checks,
                  lambda r: services.say("check", f"{r.name}: {r.status.value} {r.detail}"))
    )  # fmt: skip
    record_verify_run(
        services.ledger,
        NewVerifyRun(launch.base_url, launch.served_name, results, deployment=dep.name,
                     run_id=live.run_id),
    )  # fmt: skip
    return results


def run_bench(live: Live, services: Services, max_tokens: int) -> dict[str, Any]:
    """The seed's story table, capped at `max_tokens` per story, recorded in 0003's tables."""
    from corral.bench.api import Progress, Resolved, story_command
    from corral.bench.client import Endpoint
    from corral.bench.results import Target
    from corral.bench.story import StorySettings

    launch = live.prepared.launch
    resolved = Resolved(
        Target(launch.base_url, live.name, live.run_id),
        Endpoint(launch.base_url, launch.served_name),
        services.home,
    )
    services.say("bench", f"story table, at most {max_tokens} tokens per story")
    return story_command(resolved, StorySettings(max_tokens=max_tokens), None, Progress())
