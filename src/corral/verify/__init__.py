"""`corral verify`: named, capability-aware checks against any OpenAI-compatible endpoint.

    results = await run_suite(Target(base_url, model, capabilities), ["chat", "streaming"])

The official openai SDK is the client of record and every answer is validated against its
types; streams are also parsed byte-for-byte (`sse`) so a malformed stream can't hide
behind the SDK's leniency. `gate.make_gate` is the pipeline's gate step
(`control/pipeline.py`, run by the supervisor after readiness);
`store` keeps results in the ledger.
"""

# No re-exports: importing `corral.verify.gate` (as `corral serve` does) must not load the
# checks and the openai SDK until a gate runs. Import from the submodules: `checks`
# (CHECK_NAMES, CHECKS), `model` (CheckResult, Status, Target, suite_passed), `suite`.
