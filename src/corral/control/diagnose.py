"""Why an engine did not start, in words a person can act on.

The engine's parser reports known failure lines (`Failure` events, with hints kept as data
in `engines/known_failures/`); when there is none, the exit code and the last startup phase
are the evidence: a SIGKILL with no error line is, in practice, the kernel's OOM killer
(the fixture laguna-...-oom-killed.log just stops after torch.compile).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from corral.engines.base import Failure


@dataclass(frozen=True)
class StartFailure:
    """What is known when a start fails."""

    deployment: str
    exited: bool
    exit_code: int | None
    last_phase: str | None
    failures: tuple[Failure, ...]
    log_path: str | None
    timeout: float
    step: str


def _signal_name(code: int | None) -> str | None:
    if code is None or code >= 0:
        return None
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def explain(info: StartFailure) -> tuple[str, str]:
    """(message, hint) for an engine that exited or never became ready."""
    known = [f for f in info.failures if f.hint]
    where = f" during {info.last_phase}" if info.last_phase else ""
    if info.exited:
        sig = _signal_name(info.exit_code)
        how = f"was killed by {sig}" if sig else f"exited with code {info.exit_code}"
        message = f"engine for {info.deployment!r} {how}{where}"
    else:
        message = (
            f"engine for {info.deployment!r} was not ready after {info.timeout:.0f} s{where} "
            f"(stuck at readiness step: {info.step})"
        )
    log_note = f" (full log: {info.log_path})" if info.log_path else ""
    if known:
        return f"{message}: {known[-1].message}", known[-1].hint + log_note
    errors = [f for f in info.failures if not f.hint]
    if errors:
        message = f"{message}: {errors[-1].message}"
    if info.exited and info.exit_code == -signal.SIGKILL and not errors:
        return message, (
            "a SIGKILL with no error in the log is usually the kernel's OOM killer (check "
            "`dmesg`): lower max_model_len or the KV cache, or stop other engines" + log_note
        )
    if not info.exited:
        return message, (
            "raise the deployment's `startup_timeout` if the engine is just slow, or read "
            "the engine log" + log_note
        )
    return message, "read the engine's last log lines above" + log_note
