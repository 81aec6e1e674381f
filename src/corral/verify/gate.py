"""The verify gate: the suite a deployment must pass, after readiness, before it takes traffic.

`corral serve` hands `make_gate(ledger_path)` to each deployment's `Supervisor`
(`control/supervisor.py`), whose `bring_up` runs it as the pipeline's gate step
(`control/pipeline.py`, shape `Gate = (Deployment, base_url) -> Awaitable[bool]`) once the
engine is ready; `run_gate(deployment, base_url, ledger_path)` is the same call unbound.
It runs the checks named in `deployment.verify.checks` (all when unset) against the engine
at `base_url`, with the deployment's declared capabilities, records the results in the
ledger, and returns True when no check failed. With `verify.gate: false` it runs nothing
and returns True.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from corral.config import Deployment
from corral.ledger.db import open_ledger
from corral.verify.model import CheckResult, Target, suite_passed
from corral.verify.store import NewVerifyRun, record_verify_run


def target_for(deployment: Deployment, base_url: str, api_key: str = "unused") -> Target:
    """The suite's target for a deployment served at `base_url`, by its served name."""
    return Target(base_url, deployment.name, deployment.capabilities, api_key=api_key)


async def run_gate(
    deployment: Deployment,
    base_url: str,
    ledger_path: Path | None,
    *,
    run_id: int | None = None,
) -> bool:
    """Run the deployment's gate checks; record them (when `ledger_path`); True if none failed."""
    if not deployment.verify.gate:
        return True
    from corral.verify.suite import run_suite  # the checks load the openai SDK: not at import

    results = await run_suite(target_for(deployment, base_url), deployment.verify.checks)
    if ledger_path is not None:
        record(ledger_path, deployment, base_url, results, run_id=run_id, gate=True)
    return suite_passed(results)


def make_gate(ledger_path: Path | None) -> Callable[[Deployment, str, int], Awaitable[bool]]:
    """`run_gate` bound to a ledger, in the pipeline's `Gate` shape (`control/pipeline.py`):
    its results are recorded against the run that is starting."""

    async def gate(deployment: Deployment, base_url: str, run_id: int) -> bool:
        return await run_gate(deployment, base_url, ledger_path, run_id=run_id)

    return gate


def record(
    ledger_path: Path,
    deployment: Deployment,
    base_url: str,
    results: list[CheckResult],
    *,
    run_id: int | None = None,
    gate: bool = False,
) -> int:
    """Store a suite run against `deployment` in the ledger at `ledger_path`; its id."""
    new = NewVerifyRun(
        base_url=base_url, model=deployment.name, results=results,
        deployment=deployment.name, run_id=run_id, gate=gate,
    )  # fmt: skip
    with open_ledger(ledger_path) as ledger:
        return record_verify_run(ledger, new)
