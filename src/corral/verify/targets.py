"""Where `corral verify` points: a bare URL (capabilities from flags) or a deployment from
corral.yaml (capabilities as declared, flags override).

A deployment is reached, in this order: an explicit `--url`; the engine's own port when the
deployment fixes one (`port:` on its host's address); else corral's gateway, which routes
the deployment's served name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corral.config import Capabilities, CorralConfig, Deployment
from corral.errors import VerifyError
from corral.verify.model import DEFAULT_CONCURRENCY, Target


@dataclass(frozen=True)
class Overrides:
    """Capability flags from the command line; None leaves the declared (or default) value."""

    tools: bool | None = None
    auto_tool_choice: bool | None = None
    reasoning: bool | None = None
    context_length: int | None = None
    structured_output: bool | None = None
    reasoning_field: str | None = None

    def apply(self, base: Capabilities) -> Capabilities:
        changes: dict[str, Any] = {k: v for k, v in vars(self).items() if v is not None}
        return Capabilities.model_validate({**base.model_dump(), **changes})


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def url_target(
    url: str, model: str | None, overrides: Overrides, *, api_key: str, concurrency: int
) -> Target:
    """A target for a bare endpoint; `model` is required (the served name to ask for)."""
    if not model:
        raise VerifyError(
            f"verifying a URL needs the served model name: corral verify {url} --model NAME",
            hint=f"list the names with: curl {url.rstrip('/')}/v1/models",
        )
    caps = overrides.apply(Capabilities())
    return Target(url, model, caps, api_key=api_key, concurrency=concurrency)


def deployment_url(config: CorralConfig, dep: Deployment) -> str:
    """The engine's own URL when the deployment fixes a port, else the gateway's."""
    if dep.port is not None:
        host = config.hosts.get(dep.host)
        address = host.address if host else "127.0.0.1"
        return f"http://{address}:{dep.port}"
    gateway = config.gateway
    address = "127.0.0.1" if gateway.host in ("0.0.0.0", "::") else gateway.host
    return f"http://{address}:{gateway.port}"


def deployment_target(
    config: CorralConfig,
    name: str,
    overrides: Overrides,
    *,
    url: str | None,
    api_key: str,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> tuple[Deployment, Target]:
    """The deployment called `name` and a target for it (ConfigError if there is none)."""
    dep = config.deployment(name)
    caps = overrides.apply(dep.capabilities)
    base = url or deployment_url(config, dep)
    return dep, Target(base, dep.name, caps, api_key=api_key, concurrency=concurrency)
