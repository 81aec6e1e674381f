"""`corral verify`: named, capability-aware checks against any OpenAI-compatible endpoint.

    results = await run_suite(Target(base_url, model, capabilities), ["chat", "streaming"])

The official openai SDK is the client of record and every answer is validated against its
types; streams are also parsed byte-for-byte (`sse`) so a malformed stream can't hide
behind the SDK's leniency. `gate.make_gate` is the pipeline's gate step
(`control/pipeline.py`, run by the supervisor after readiness);
`store` keeps results in the ledger.
"""

from corral.verify.checks import CHECK_NAMES, CHECKS
from corral.verify.model import CheckResult, Status, Target, suite_passed
from corral.verify.suite import run_suite, select_checks

__all__ = [
    "CHECKS",
    "CHECK_NAMES",
    "CheckResult",
    "Status",
    "Target",
    "run_suite",
    "select_checks",
    "suite_passed",
]
