"""The entry points the CLI calls: resolve the target, run one workload, store the result.

Each `*_command` takes its I/O in (config, a progress sink) and returns the JSON-ready
result; printing is the CLI's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from corral import naming
from corral.bench.client import Endpoint
from corral.bench.load import Runner, run_async
from corral.bench.metrics import Counter
from corral.bench.probes import ProbeSettings, run_probes
from corral.bench.prompts import FallbackCounter, LocalTokenizer, ServerTokenizer, TokenCounter
from corral.bench.report import all_failed
from corral.bench.results import Target, save_to_ledger
from corral.bench.serve import OnLevel, ServeSettings, run_serve
from corral.bench.story import StorySettings, run_story
from corral.bench.timeline import Timeline
from corral.config import CorralConfig
from corral.errors import BenchError, StoreError
from corral.ledger.db import open_ledger
from corral.paths import ledger_path
from corral.store.roots import store_roots


@dataclass
class Progress:
    """Where live progress goes (the CLI passes Rich callbacks; tests pass nothing)."""

    on_level: OnLevel | None = None
    on_done: Callable[[Timeline], None] | None = None


@dataclass
class Resolved:
    target: Target
    endpoint: Endpoint
    home: Path
    store_folder: Path | None = None  # the model's folder, when the store has it


def resolve(
    target: str,
    model: str | None,
    api: str,
    config: CorralConfig,
    *,
    home: Path,
    api_key: str | None = None,
) -> Resolved:
    """A URL (any spelling) or a deployment name, through `corral.naming`; the model is
    checked against the endpoint's own list (asked with the key), the first one by default."""
    if api not in ("chat", "completions"):
        raise BenchError(f"--api must be chat or completions, not {api!r}")
    ref = naming.resolve_endpoint(target, config, ledger_path(home))
    served = naming.served_models(ref.base_url, api_key)
    chosen = naming.pick_model(model or ref.deployment, served, ref.base_url)
    endpoint = Endpoint(ref.base_url, chosen, api, api_key)
    return Resolved(ref, endpoint, home, _tokenizer_folder(config, home, ref, chosen))


def _tokenizer_folder(
    config: CorralConfig, home: Path, ref: naming.EndpointRef, model: str
) -> Path | None:
    """The store folder of the deployment serving `model`, for counting tokens locally."""
    for dep in config.deployments:
        if dep.name in (ref.deployment, model) or model in dep.aliases:
            try:
                return naming.model_folder(dep.model, store_roots(config, home))
            except StoreError:
                return None
    return None


def _counters(
    tokenizer: Path | None, client: httpx.AsyncClient, resolved: Resolved
) -> tuple[TokenCounter, Counter | None]:
    """`--tokenizer` when given; else the server's /tokenize, falling back to the store's
    tokenizer of the deployment behind it when the server has none (a gateway may not)."""
    if tokenizer is not None:
        local = LocalTokenizer(tokenizer)
        return local, local.count_sync
    endpoint = resolved.endpoint
    server = ServerTokenizer(client, endpoint.base_url, endpoint.model, endpoint.api_key)
    return FallbackCounter(server, resolved.store_folder), None


def _store(resolved: Resolved, result: dict[str, Any]) -> dict[str, Any]:
    result["target"] = {
        "base_url": resolved.target.base_url,
        "model": resolved.endpoint.model,
        "deployment": resolved.target.deployment,
        "api": resolved.endpoint.api,
    }
    if resolved.target.deployment and all_failed(result) is None:
        with open_ledger(ledger_path(resolved.home)) as ledger:
            result["ledger_id"] = save_to_ledger(
                ledger, resolved.target, resolved.endpoint.model, result
            )
    return result


def serve_command(
    resolved: Resolved, settings: ServeSettings, tokenizer: Path | None, progress: Progress
) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=60) as client:
            counter, fallback = _counters(tokenizer, client, resolved)
            runner = Runner(
                resolved.endpoint, on_done=progress.on_done, keep_text=fallback is not None
            )
            return await run_serve(
                resolved.endpoint,
                settings,
                counter,
                runner=runner,
                fallback=fallback,
                on_level=progress.on_level,
            )

    return _store(resolved, run_async(go()))


def story_command(
    resolved: Resolved, settings: StorySettings, tokenizer: Path | None, progress: Progress
) -> dict[str, Any]:
    fallback = LocalTokenizer(tokenizer).count_sync if tokenizer else None
    runner = Runner(resolved.endpoint, on_done=progress.on_done, keep_text=True)
    result = run_async(run_story(resolved.endpoint, settings, runner=runner, fallback=fallback))
    return _store(resolved, result)


def probes_command(
    resolved: Resolved,
    settings: ProbeSettings,
    tokenizer: Path | None,
    which: tuple[str, ...],
    progress: Progress,
) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=60) as client:
            counter, _ = _counters(tokenizer, client, resolved)
            runner = Runner(resolved.endpoint, on_done=progress.on_done)
            return await run_probes(
                resolved.endpoint, settings, counter, runner=runner, which=which
            )

    return _store(resolved, run_async(go()))
