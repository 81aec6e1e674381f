"""Engine adapters: one module per engine behind the `Engine` protocol in `base`.

`engine_for(name)` gives the adapter a deployment's `engine:` names. vLLM and llama-server
run for real in the tests (llama-server through `corral deploy`, docs/llama-server.md); the
SGLang adapter is checked against recorded logs only.
"""

from corral.engines.base import (
    Engine,
    EngineEvent,
    Fact,
    Failure,
    LogParser,
    Phase,
)
from corral.errors import ConfigError


def engine_for(name: str) -> Engine:
    """The adapter for engine `name` (`vllm`); ConfigError naming the known ones otherwise."""
    from corral.engines.llama_server import LlamaServerEngine
    from corral.engines.sglang import SglangEngine
    from corral.engines.vllm import VllmEngine

    engines: dict[str, Engine] = {
        "vllm": VllmEngine(),
        "sglang": SglangEngine(),
        "llama-server": LlamaServerEngine(),
    }
    if name not in engines:
        known = ", ".join(engines)
        raise ConfigError(
            f"engine {name!r} has no adapter yet (available: {known})",
            hint="set `engine: vllm` in the deployment",
        )
    return engines[name]


__all__ = [
    "Engine",
    "EngineEvent",
    "Fact",
    "Failure",
    "LogParser",
    "Phase",
    "engine_for",
]
