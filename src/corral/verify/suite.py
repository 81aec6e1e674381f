"""Run the named checks against one target, in order, and time each one.

A failing check is a result (status `fail` with a detail), never an exception: the
endpoint's errors as the SDK raises them, HTTP errors, timeouts, and malformed responses
all become the check's detail. `VerifyError` is only for a suite that cannot run at all
(an unknown check name).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence

import httpx
import openai
from pydantic import ValidationError

from corral.errors import VerifyError
from corral.verify.checks import CHECK_NAMES, CHECKS, Check
from corral.verify.model import CheckFailed, CheckResult, CheckSkipped, Status, Target
from corral.verify.probe import Probe, describe

# What an endpoint's misbehaviour looks like from inside a check.
_ENDPOINT_ERRORS = (
    openai.OpenAIError,
    httpx.HTTPError,
    ValidationError,
    json.JSONDecodeError,
    TimeoutError,
)

OnResult = Callable[[CheckResult], None]


def select_checks(names: Sequence[str] | None) -> list[Check]:
    """The checks called `names` in suite order (all when None); VerifyError on a typo."""
    if not names:
        return list(CHECKS)
    unknown = [n for n in names if n not in CHECK_NAMES]
    if unknown:
        raise VerifyError(
            f"unknown check(s): {', '.join(unknown)}",
            hint=f"choose from: {', '.join(CHECK_NAMES)}",
        )
    return [c for c in CHECKS if c.name in names]


async def run_suite(
    target: Target, names: Sequence[str] | None = None, on_result: OnResult | None = None
) -> list[CheckResult]:
    """Run the selected checks one after another; `on_result` sees each result as it lands."""
    checks = select_checks(names)
    results: list[CheckResult] = []
    async with Probe(target) as probe:
        for check in checks:
            result = await run_check(check, probe)
            results.append(result)
            if on_result:
                on_result(result)
    return results


async def run_check(check: Check, probe: Probe) -> CheckResult:
    reason = check.skip_reason(probe.target)
    if reason:
        return CheckResult(check.name, Status.SKIP, reason, 0.0)
    start = time.perf_counter()
    try:
        detail = await check.run(probe)
    except CheckSkipped as exc:
        return _result(check, Status.SKIP, str(exc), start)
    except CheckFailed as exc:
        return _result(check, Status.FAIL, str(exc), start)
    except _ENDPOINT_ERRORS as exc:
        return _result(check, Status.FAIL, describe(exc), start)
    return _result(check, Status.PASS, detail, start)


def _result(check: Check, status: Status, detail: str, start: float) -> CheckResult:
    # One line per detail: answers quoted in it may hold newlines.
    return CheckResult(check.name, status, " ".join(detail.split()), time.perf_counter() - start)
