"""Engine adapters: one module per engine behind the `Engine` protocol in `base`."""

from corral.engines.base import (
    Engine,
    EngineEvent,
    Fact,
    LaunchCommand,
    LaunchSpec,
    LogParser,
    Phase,
)

__all__ = ["Engine", "EngineEvent", "Fact", "LaunchCommand", "LaunchSpec", "LogParser", "Phase"]
