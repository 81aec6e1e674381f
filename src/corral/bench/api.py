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

from corral.bench.client import Endpoint
from corral.bench.load import Runner, run_async
from corral.bench.metrics import Counter
from corral.bench.probes import ProbeSettings, run_probes
from corral.bench.prompts import LocalTokenizer, ServerTokenizer, TokenCounter
from corral.bench.results import Target, is_url, running_target, save_to_ledger
from corral.bench.serve import OnLevel, ServeSettings, run_serve
from corral.bench.story import StorySettings, run_story
from corral.bench.timeline import Timeline
from corral.config import CorralConfig
from corral.errors import BenchError
from corral.ledger.db import open_ledger
from corral.paths import ledger_path


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


def _first_model(base_url: str) -> str:
    try:
        data = httpx.get(base_url.rstrip("/") + "/v1/models", timeout=10).json()
        return str(data["data"][0]["id"])
    except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
        raise BenchError(
            f"cannot list the models at {base_url}/v1/models: {exc}",
            hint="pass --model with the served model name",
        ) from exc


def resolve(
    target: str,
    model: str | None,
    api: str,
    config: CorralConfig,
    *,
    home: Path,
    api_key: str | None = None,
) -> Resolved:
    """A URL is used as is; anything else names a deployment whose live run the ledger
    knows (its served name is the default model)."""
    if api not in ("chat", "completions"):
        raise BenchError(f"--api must be chat or completions, not {api!r}")
    if is_url(target):
        tgt = Target(target.rstrip("/"))
    else:
        config.deployment(target)  # ConfigError listing the deployments when unknown
        with open_ledger(ledger_path(home)) as ledger:
            tgt = running_target(ledger, target)
        model = model or target
    endpoint = Endpoint(tgt.base_url, model or _first_model(tgt.base_url), api, api_key)
    return Resolved(tgt, endpoint, home)


def _counters(
    tokenizer: Path | None, client: httpx.AsyncClient, endpoint: Endpoint
) -> tuple[TokenCounter, Counter | None]:
    if tokenizer is None:
        return ServerTokenizer(client, endpoint.base_url, endpoint.model), None
    local = LocalTokenizer(tokenizer)
    return local, local.count_sync


def _store(resolved: Resolved, result: dict[str, Any]) -> dict[str, Any]:
    result["target"] = {
        "base_url": resolved.target.base_url,
        "model": resolved.endpoint.model,
        "deployment": resolved.target.deployment,
        "api": resolved.endpoint.api,
    }
    if resolved.target.deployment:
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
            counter, fallback = _counters(tokenizer, client, resolved.endpoint)
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
            counter, _ = _counters(tokenizer, client, resolved.endpoint)
            runner = Runner(resolved.endpoint, on_done=progress.on_done)
            return await run_probes(
                resolved.endpoint, settings, counter, runner=runner, which=which
            )

    return _store(resolved, run_async(go()))
