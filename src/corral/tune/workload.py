"""Workloads (workloads.yaml) and SLOs with a percentile: `ttft_p95=2s,tpot_p95=60ms`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from corral.bench.metrics import SLO, parse_slo
from corral.bench.shapes import read_shapes
from corral.errors import BenchError

WORKLOADS = Path(__file__).with_name("workloads.yaml")
_PCT = re.compile(r"_p(\d{1,2})\b")


@dataclass(frozen=True)
class Shape:
    input: int
    output: int
    weight: float = 1.0


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    shapes: tuple[Shape, ...]
    levels: tuple[int, ...]
    per_level: int = 2
    min_requests: int = 4
    shared_prefix: int = 0
    arrivals: tuple[float, ...] = ()
    """A replayed trace: request i (shapes[i]) is sent arrivals[i] s after the start, the
    gaps divided by each level (the speed-up); empty for the closed-loop workloads."""

    def requests_at(self, level: int) -> int:
        return max(self.min_requests, self.per_level * level)

    @property
    def longest(self) -> int:
        """The most tokens one request holds (prompt + output)."""
        return max(s.input + s.output for s in self.shapes)


REPLAY_SPEEDS = (1, 2, 4, 8)


def replay_workload(path: Path) -> Workload:
    """The gateway's recorded shapes (`gateway.record_shapes`) as a workload: the same
    lengths in the same order at the recorded gaps, then 2, 4 and 8 times as fast."""
    recorded = read_shapes(path)
    shapes = tuple(Shape(r.prompt, max(1, r.completion)) for r in recorded)
    arrivals = tuple(r.t - recorded[0].t for r in recorded)
    return Workload(f"replay:{path}", f"{len(shapes)} requests recorded by the gateway",
                    shapes, REPLAY_SPEEDS, arrivals=arrivals)  # fmt: skip


def load_workload(name: str) -> Workload:
    """A workload of workloads.yaml, or `replay:PATH` (a recorded shape log)."""
    if name.startswith("replay:"):
        return replay_workload(Path(name.removeprefix("replay:")).expanduser())
    data = yaml.safe_load(WORKLOADS.read_text("utf-8"))
    if name not in data:
        known = ", ".join([*data, "replay:PATH"])
        raise BenchError(f"unknown workload {name!r}", hint=f"known: {known}")
    item = data[name]
    shapes = tuple(Shape(**s) for s in item["shapes"])
    levels, prefix = tuple(item["levels"]), item.get("shared_prefix", 0)
    return Workload(name, item["description"], shapes, levels, item["per_level"],
                    item["min_requests"], prefix)  # fmt: skip


@dataclass(frozen=True)
class Objective:
    """Per-request thresholds, and the share of requests that must meet them (p95 → 0.95)."""

    slo: SLO
    share: float
    text: str


def parse_objective(text: str) -> Objective:
    shares = {int(p) for p in _PCT.findall(text)}
    if len(shares) > 1:
        raise BenchError(f"--slo {text!r} mixes percentiles; use one (e.g. all _p95)")
    slo = parse_slo(_PCT.sub("", text))
    if not slo.as_dict():
        raise BenchError("--slo needs at least one of ttft, tpot, e2e, e.g. ttft_p95=2s")
    return Objective(slo, (shares.pop() if shares else 95) / 100.0, text)
