"""The control plane: one pipeline for a deployment (prepare → claim → start → gate), its
one recorder, and the supervisor and fleet `corral serve` runs."""

from corral.control.fleet import Fleet
from corral.control.pipeline import (
    Gate,
    Live,
    Planner,
    Services,
    bring_up,
    log_lines,
    prepare_checked,
    runtime_of,
    stop_deployment,
)
from corral.control.recorder import Recorder
from corral.control.supervisor import Supervisor

__all__ = [
    "Fleet",
    "Gate",
    "Live",
    "Planner",
    "Recorder",
    "Services",
    "Supervisor",
    "bring_up",
    "log_lines",
    "prepare_checked",
    "runtime_of",
    "stop_deployment",
]
