"""Where `corral verify` points: a bare URL (capabilities from flags) or a deployment from
corral.yaml (capabilities as declared, flags override).

Names and URLs are resolved by `corral.naming`, as for every command: a deployment is
reached at an explicit `--url`, else its live gateway, else its live engine (the ledger
knows both). Before any check runs the endpoint's model list is read with the key: a
verify that cannot connect, or whose key is refused, stops there with the URL it tried,
and nothing is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral import naming
from corral.config import Capabilities, CorralConfig, Deployment
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


def url_target(
    url: str, model: str | None, overrides: Overrides, *, api_key: str, concurrency: int
) -> Target:
    """A target for a bare endpoint (any spelling of its URL). The model list is read first,
    with the key: EndpointError names the URL when nothing answers or the key is refused,
    and `model` is checked against it (the first served model when None)."""
    base = naming.base_url(url)
    served = naming.served_models(base, api_key)
    name = naming.pick_model(model, served, base)
    caps = overrides.apply(Capabilities())
    return Target(base, name, caps, api_key=api_key, concurrency=concurrency)


def deployment_target(
    config: CorralConfig,
    name: str,
    overrides: Overrides,
    *,
    ledger_file: Path,
    url: str | None,
    api_key: str,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> tuple[Deployment, Target]:
    """The deployment called `name` (did you mean, if none) and a target for it: `url`, else
    its live gateway or engine from the ledger. Connects once (see `url_target`)."""
    dep = naming.find_deployment(config, name)
    base = (
        naming.base_url(url) if url else naming.resolve_endpoint(name, config, ledger_file).base_url
    )
    naming.pick_model(dep.name, naming.served_models(base, api_key), base)
    caps = overrides.apply(dep.capabilities)
    return dep, Target(base, dep.name, caps, api_key=api_key, concurrency=concurrency)
