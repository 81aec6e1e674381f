"""The gateway's Prometheus metrics, kept in plain dicts and rendered in text format 0.0.4.

A small registry of its own rather than prometheus_client: the hot path only does dict
lookups and a bisect (no locks: everything runs on the event loop thread), and labels are
tuples fixed per metric. Labels: `deployment` (served name), `model` (the name the client
asked for), `key` (the API key's name, "" without auth), plus `status` on request counts.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from corral.fleet import OnDemandStats

Labels = tuple[str, ...]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
GAP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
REQUEST_LABELS = ("deployment", "model", "key")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _label_text(names: tuple[str, ...], values: Labels, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


@dataclass
class Counter:
    name: str
    help: str
    labels: tuple[str, ...]
    values: dict[Labels, float] = field(default_factory=dict)
    kind: str = "counter"

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def get(self, labels: Labels) -> float:
        return self.values.get(labels, 0.0)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        for labels, value in self.values.items():
            yield f"{self.name}{_label_text(self.labels, labels)} {_number(value)}"


@dataclass
class Gauge(Counter):
    kind: str = "gauge"

    def set(self, labels: Labels, value: float) -> None:
        self.values[labels] = value


@dataclass
class Histogram:
    name: str
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...]
    series: dict[Labels, list[float]] = field(default_factory=dict)

    def observe(self, labels: Labels, value: float) -> None:
        """Per-bucket counts (not cumulative), then sum and count, in one list."""
        row = self.series.get(labels)
        if row is None:
            row = self.series[labels] = [0.0] * (len(self.buckets) + 3)
        row[bisect_left(self.buckets, value)] += 1
        row[-2] += value
        row[-1] += 1

    def count(self, labels: Labels) -> int:
        row = self.series.get(labels)
        return int(row[-1]) if row else 0

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for labels, row in self.series.items():
            running = 0.0
            for bound, hits in zip((*self.buckets, float("inf")), row, strict=False):
                running += hits
                le = "+Inf" if bound == float("inf") else _number(bound)
                text = _label_text(self.labels, labels, f'le="{le}"')
                yield f"{self.name}_bucket{text} {_number(running)}"
            base = _label_text(self.labels, labels)
            yield f"{self.name}_sum{base} {_number(row[-2])}"
            yield f"{self.name}_count{base} {_number(row[-1])}"


class GatewayMetrics:
    """Every metric the gateway exports. `render()` is the /metrics body."""

    def __init__(self) -> None:
        r = REQUEST_LABELS
        self.requests = Counter(
            "corral_gateway_requests_total", "Requests answered, by HTTP status.", (*r, "status")
        )
        self.in_flight = Gauge(
            "corral_gateway_in_flight", "Requests holding a slot, per deployment.", ("deployment",)
        )
        self.queued = Gauge(
            "corral_gateway_queued", "Requests waiting for a slot, per deployment.", ("deployment",)
        )
        self.ttft = Histogram(
            "corral_gateway_time_to_first_token_seconds",
            "From request arrival to the first streamed chunk (or the whole answer).",
            r,
            LATENCY_BUCKETS,
        )
        self.gap = Histogram(
            "corral_gateway_inter_chunk_seconds",
            "Gap between consecutive streamed chunks.",
            r,
            GAP_BUCKETS,
        )
        self.e2e = Histogram(
            "corral_gateway_e2e_seconds", "From request arrival to the last byte.", r,
            LATENCY_BUCKETS,
        )  # fmt: skip
        self.prompt_tokens = Counter(
            "corral_gateway_prompt_tokens_total", "Prompt tokens (engine usage).", r
        )
        self.completion_tokens = Counter(
            "corral_gateway_completion_tokens_total", "Completion tokens (engine usage).", r
        )
        self.reasoning_tokens = Counter(
            "corral_gateway_reasoning_tokens_total",
            "Reasoning tokens (usage details, else reasoning chunks counted).",
            r,
        )
        self.retries = Counter(
            "corral_gateway_failovers_total",
            "Requests retried on another replica.",
            ("deployment",),
        )

    def render(self, extra: Callable[[], Iterable[str]] | None = None) -> str:
        lines: list[str] = []
        for metric in (
            self.requests, self.in_flight, self.queued, self.ttft, self.gap, self.e2e,
            self.prompt_tokens, self.completion_tokens, self.reasoning_tokens, self.retries,
        ):  # fmt: skip
            lines.extend(metric.render())
        if extra is not None:
            lines.extend(extra())
        return "\n".join(lines) + "\n"


def replica_lines(rows: Iterable[tuple[str, str, bool, str]]) -> Iterable[str]:
    """Replica health: (deployment, replica id, routable, breaker state) per replica."""
    rows = list(rows)
    yield "# HELP corral_gateway_replica_up 1 when the replica is routable and its breaker closed."
    yield "# TYPE corral_gateway_replica_up gauge"
    for deployment, replica, routable, breaker in rows:
        up = 1 if routable and breaker == "closed" else 0
        labels = _label_text(("deployment", "replica"), (deployment, replica))
        yield f"corral_gateway_replica_up{labels} {up}"
    yield "# HELP corral_gateway_replica_breaker_open 1 while the replica's circuit is open."
    yield "# TYPE corral_gateway_replica_breaker_open gauge"
    for deployment, replica, _routable, breaker in rows:
        labels = _label_text(("deployment", "replica"), (deployment, replica))
        yield f"corral_gateway_replica_breaker_open{labels} {0 if breaker == 'closed' else 1}"


def key_lines(refused: dict[tuple[str, str], int]) -> Iterable[str]:
    """Requests refused by a key's own limits: (key, limit name) → count."""
    yield "# HELP corral_gateway_key_limited_total Requests refused by the key's own limits."
    yield "# TYPE corral_gateway_key_limited_total counter"
    for (key, limit), count in refused.items():
        labels = _label_text(("key", "limit"), (key, limit))
        yield f"corral_gateway_key_limited_total{labels} {count}"


COLD_START_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0)


def on_demand_lines(stats: OnDemandStats) -> Iterable[str]:
    """On-demand starts, idle stops, evictions and cold-start seconds, by deployment."""
    tables = (
        ("corral_on_demand_starts_total", "On-demand starts a request asked for.", stats.starts),
        ("corral_on_demand_idle_stops_total", "Stops after idle_stop.", stats.idle_stops),
        ("corral_on_demand_evictions_total", "Stops to make room on the host.", stats.evictions),
        ("corral_on_demand_sleeps_total", "Idle engines put to sleep (sleep mode).", stats.sleeps),
        ("corral_on_demand_wakes_total", "Sleeping engines woken by a request.", stats.wakes),
    )
    for name, text, table in tables:
        counter = Counter(name, text, ("deployment",))
        for deployment, value in table.items():
            counter.inc((deployment,), value)
        yield from counter.render()
    cold = Histogram("corral_on_demand_cold_start_seconds",
                     "Seconds a request waited for its deployment to start.", ("deployment",),
                     COLD_START_BUCKETS)  # fmt: skip
    for deployment, waits in stats.cold_start_s.items():
        for wait in waits:
            cold.observe((deployment,), wait)
    yield from cold.render()
