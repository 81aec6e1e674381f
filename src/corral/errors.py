"""One exception tree for corral. Every message says what went wrong and how to fix it.

    CorralError
     ├── ConfigError          corral.yaml or a flag is invalid (names the key and the file)
     ├── StoreError           a model root or model is missing, corrupt, or can't be staged
     ├── EngineError          an engine failed to start, exited, or never became ready
     │    ├── PortInUseError  the port an engine or the gateway wants is taken
     │    └── RuntimeMissing  the runtime a deployment needs (docker) is not installed
     ├── RecipeError          no recipe matches, or a recipe is malformed
     ├── HardwareError        detection failed in a way the user must know about
     ├── HostError            another host can't be reached or used (names the host)
     │    ├── HostUnreachableError  no SSH connection: down, partitioned, wrong address
     │    ├── HostAuthError         the host refused our key
     │    └── HostKeyError          the host's key is unknown or changed
     ├── PlanError            the planner lacks an input or the settings can't fit
     │    └── DoesNotFit      the planner's figures refuse a deployment before launch
     │         └── KvCacheError  the memory settings leave no KV room for one request
     ├── VerifyError          the acceptance suite could not run (not: a check failed)
     ├── BenchError           a benchmark could not run or its input is invalid
     ├── EndpointError        an endpoint is unreachable, refuses the key, or is not running
     └── LedgerError          the SQLite ledger can't be opened or migrated

The CLI turns a CorralError into its message and a non-zero exit; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class CorralError(Exception):
    """Base of every error corral raises on purpose. `hint` says how to fix it."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message


class ConfigError(CorralError):
    """The configuration is invalid; the message names the key and the file."""

    exit_code = 2


class StoreError(CorralError):
    """A model root or model is missing, corrupt, or can't be staged."""


class EngineError(CorralError):
    """An engine failed to start, exited early, or never became ready."""

    def __init__(
        self, message: str, *, hint: str | None = None, log_tail: list[str] | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.log_tail = log_tail or []

    def __str__(self) -> str:
        text = self.message
        if self.log_tail:
            text += "\nlast engine log lines:\n" + "\n".join("  " + ln for ln in self.log_tail)
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text


class PortInUseError(EngineError):
    """A port corral wants to listen on (or give an engine) is already taken."""


class RuntimeMissing(EngineError):
    """The runtime a deployment needs (the docker CLI) is not installed on its host."""


class NoCapacity(CorralError):
    """A deployment can't start on its host: what holds the memory won't make room.
    `retry_after` is when asking again may succeed (seconds)."""

    def __init__(self, message: str, *, hint: str | None = None, retry_after: float = 10.0
                 ) -> None:  # fmt: skip
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class RecipeError(CorralError):
    """No recipe matches, or a recipe file is malformed."""


class HardwareError(CorralError):
    """Hardware detection failed in a way the user must know about."""


class HostError(CorralError):
    """Another host can't be reached, refused us, or lacks what a deployment needs."""

    def __init__(self, host: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"host {host}: {message}", hint=hint)
        self.host = host


class HostUnreachableError(HostError):
    """No SSH connection to the host (down, partitioned, wrong address or port)."""


class HostAuthError(HostError):
    """The host's sshd refused corral's key."""


class HostKeyError(HostError):
    """The host's key is not in known_hosts, or differs from the one recorded there."""


class PlanError(CorralError):
    """The planner lacks an input, or the settings cannot fit."""


class DoesNotFit(PlanError):
    """The planner's figures say the deployment cannot fit the hardware (refused)."""


class KvCacheError(DoesNotFit):
    """The memory settings leave no room for one request's KV cache at the asked context."""


class VerifyError(CorralError):
    """The acceptance suite could not run at all (a failing check is a result, not this)."""


class BenchError(CorralError):
    """A benchmark could not run, or its input is invalid."""


class EndpointError(CorralError):
    """An endpoint could not be reached, refused the key, or the deployment is not running.

    The message names the URL tried."""


class LedgerError(CorralError):
    """The SQLite ledger can't be opened or migrated."""
