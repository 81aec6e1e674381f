"""Engine and host metrics, collected by the gateway and served under its own `/metrics`.

Engines listen on loopback (or a private address) and their `/metrics` is open even where
`--api-key` guards `/v1` (docs/monitoring.md): so Prometheus never scrapes an engine.
The gateway does, at its own scrape time:

    collect(pairs(fleet)) → scrape every live replica concurrently (timeout `timeout` s,
    answers cached `max_age` s, one fetch in flight per replica) → relabel each sample
    with deployment, replica, host → merge families across replicas → text lines

An engine whose endpoint fails (refused, timeout, non-200) contributes no samples at all,
so Prometheus marks its series stale at once, and `corral_engine_scrape_up{...} 0` says
why. A slow engine costs a scrape at most `timeout`, never the whole of `/metrics`.

Host metrics (GPU memory and utilisation through NVML, where there is a driver) come from
a `GpuSampler`; `nvml_sampler()` gives None on a machine without one.

Limits: the engine's text must be Prometheus text format 0.0.4 (vLLM, SGLang and
llama-server all serve it); a sample with a label named like one of ours keeps the
engine's value as `exported_<name>`, as Prometheus does with `honor_labels: false`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp

from corral.fleet import Policy, Replica
from corral.gateway.metrics import _escape, _number

OUR_LABELS = ("deployment", "replica", "host")
# Where each engine serves its metrics (llama-server needs `--metrics`, SGLang
# `--enable-metrics`; vLLM always serves them).
METRICS_PATH = {"vllm": "/metrics", "sglang": "/metrics", "llama-server": "/metrics"}
LIVE_STATES = frozenset({"starting", "ready", "stopping"})
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{.*\})?\s+(.*)$")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="')


@dataclass
class Family:
    """One metric family as merged across replicas: HELP and TYPE once, then samples."""

    help: str = ""
    type: str = ""
    samples: list[str] = field(default_factory=list)


@dataclass
class Scrape:
    """The last answer from one replica's engine."""

    at: float
    up: bool
    seconds: float
    families: dict[str, Family]


def host_of(replica: Replica) -> str:
    """The host label: the replica's `host` where the fleet contract has one, else the
    engine's address when it is not loopback, else `local`."""
    named = getattr(replica, "host", None)
    if isinstance(named, str) and named:
        return named
    address = urlsplit(replica.base_url).hostname or ""
    return "local" if address in ("", "localhost") or address.startswith("127.") else address


def relabel(labels: str | None, ours: str) -> str:
    """`{a="1"}` + our labels → `{deployment=...,a="1"}`; clashing names become exported_."""
    if not labels or labels == "{}":
        return "{" + ours + "}"
    inner = _LABEL.sub(_rename_clash, labels[1:-1])
    return "{" + ours + "," + inner + "}"


def _rename_clash(match: re.Match[str]) -> str:
    name = match.group(1)
    return f'exported_{name}="' if name in OUR_LABELS else match.group(0)


def parse_families(text: str, ours: str) -> dict[str, Family]:
    """Engine exposition → families with relabelled samples (a sample belongs to the
    family of the `# TYPE` or `# HELP` line before it, else to its own name)."""
    families: dict[str, Family] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            _, kind, name, *rest = line.split(" ", 3)
            current = name
            family = families.setdefault(name, Family())
            setattr(family, kind.lower(), rest[0] if rest else "")
        elif line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            if match is None:
                continue
            name, labels, value = match.groups()
            owner = current if name.startswith(current) and current else name
            sample = f"{name}{relabel(labels, ours)} {value}"
            families.setdefault(owner, Family()).samples.append(sample)
    return families


def merge(scrapes: Iterable[dict[str, Family]]) -> dict[str, Family]:
    """Families of several replicas as one exposition (a family's samples stay together)."""
    merged: dict[str, Family] = {}
    for families in scrapes:
        for name, family in families.items():
            into = merged.setdefault(name, Family(family.help, family.type))
            into.help = into.help or family.help
            into.type = into.type or family.type
            into.samples.extend(family.samples)
    return merged


def family_lines(families: dict[str, Family]) -> Iterator[str]:
    for name, family in families.items():
        if not family.samples:
            continue
        if family.help:
            yield f"# HELP {name} {family.help}"
        if family.type:
            yield f"# TYPE {name} {family.type}"
        yield from family.samples


def our_labels(replica: Replica) -> str:
    values = (replica.served_name, replica.id, host_of(replica))
    return ",".join(f'{n}="{_escape(v)}"' for n, v in zip(OUR_LABELS, values, strict=True))


class EngineScraper:
    """Scrapes engines for the gateway's `/metrics`, concurrently, with a short cache."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        timeout: float = 1.0,
        max_age: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.timeout = timeout
        self.max_age = max_age
        self.clock = clock
        self.cache: dict[str, Scrape] = {}
        self._pending: dict[str, asyncio.Task[Scrape]] = {}

    async def collect(self, served: Sequence[tuple[Policy, Replica]]) -> list[str]:
        """The engine part of `/metrics`: merged engine families, then scrape health.
        `served` is every replica with its deployment's policy (`corral.fleet.pairs`)."""
        live = [(p, r) for p, r in served if r.state in LIVE_STATES]
        results = await asyncio.gather(*(self._fresh(p, r) for p, r in live))
        self._forget_except({r.id for _, r in live})
        lines = list(family_lines(merge(s.families for s in results if s.up)))
        replicas = [r for _, r in live]
        lines.extend(health_lines(list(zip(replicas, results, strict=True))))
        return lines

    async def _fresh(self, policy: Policy, replica: Replica) -> Scrape:
        cached = self.cache.get(replica.id)
        if cached is not None and self.clock() - cached.at < self.max_age:
            return cached
        task = self._pending.get(replica.id)
        if task is None:  # one fetch per replica, however many scrapes wait for it
            task = asyncio.ensure_future(self._scrape(policy.engine, replica))
            self._pending[replica.id] = task
            task.add_done_callback(lambda _t: self._pending.pop(replica.id, None))
        scrape = await asyncio.shield(task)
        self.cache[replica.id] = scrape
        return scrape

    async def _scrape(self, engine: str, replica: Replica) -> Scrape:
        began = self.clock()
        url = replica.base_url.rstrip("/") + METRICS_PATH.get(engine, "/metrics")
        try:
            text = await self._get(url)
        except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError):
            return Scrape(self.clock(), False, self.clock() - began, {})
        families = parse_families(text, our_labels(replica))
        return Scrape(self.clock(), True, self.clock() - began, families)

    async def _get(self, url: str) -> str:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with self.session.get(url, timeout=timeout) as answer:
            answer.raise_for_status()
            return await answer.text()

    def _forget_except(self, ids: set[str]) -> None:
        for gone in set(self.cache) - ids:
            del self.cache[gone]


def health_lines(rows: Sequence[tuple[Replica, Scrape]]) -> Iterator[str]:
    """`corral_engine_scrape_up` and `_duration_seconds` per live replica."""
    yield "# HELP corral_engine_scrape_up 1 when the gateway's last scrape of the engine worked."
    yield "# TYPE corral_engine_scrape_up gauge"
    for replica, scrape in rows:
        yield f"corral_engine_scrape_up{{{our_labels(replica)}}} {int(scrape.up)}"
    yield "# HELP corral_engine_scrape_duration_seconds How long that scrape took."
    yield "# TYPE corral_engine_scrape_duration_seconds gauge"
    for replica, scrape in rows:
        yield f"corral_engine_scrape_duration_seconds{{{our_labels(replica)}}} " + _number(
            round(scrape.seconds, 6)
        )


# -- host metrics -------------------------------------------------------------------------
@dataclass(frozen=True)
class GpuSample:
    index: int
    name: str
    memory_used: int | None
    memory_total: int | None
    utilization: float | None  # percent, 0-100


class GpuSampler(Protocol):
    """Reads the GPUs of this host now (NVML, or recorded answers in tests)."""

    def samples(self) -> Sequence[GpuSample]: ...


class NvmlSampler:
    """Live NVML through nvidia-ml-py: initialised once, per-query errors become None."""

    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml

    def samples(self) -> Sequence[GpuSample]:
        return [self._sample(i) for i in range(int(self.nvml.nvmlDeviceGetCount()))]

    def _sample(self, index: int) -> GpuSample:
        handle = self.nvml.nvmlDeviceGetHandleByIndex(index)
        memory = self._ask("nvmlDeviceGetMemoryInfo", handle)
        rates = self._ask("nvmlDeviceGetUtilizationRates", handle)
        name = self.nvml.nvmlDeviceGetName(handle)
        return GpuSample(
            index=index,
            name=name.decode() if isinstance(name, bytes) else str(name),
            memory_used=int(memory.used) if memory is not None else None,
            memory_total=int(memory.total) if memory is not None and memory.total else None,
            utilization=float(rates.gpu) if rates is not None else None,
        )

    def _ask(self, call: str, *args: Any) -> Any:
        try:
            return getattr(self.nvml, call)(*args)
        except self.nvml.NVMLError:  # NOT_SUPPORTED on GB10's memory, for one
            return None


def nvml_sampler() -> NvmlSampler | None:
    """NVML for the gateway's lifetime, or None without an NVIDIA driver (the CPU case)."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    return NvmlSampler(pynvml)


GPU_GAUGES = (
    ("corral_host_gpu_memory_used_bytes", "GPU memory in use (NVML).", "memory_used"),
    ("corral_host_gpu_memory_total_bytes", "GPU memory in all (NVML).", "memory_total"),
    ("corral_host_gpu_utilization_ratio", "GPU busy share over NVML's last period, 0-1.",
     "utilization"),
)  # fmt: skip


def gpu_lines(samples: Sequence[GpuSample], host: str = "local") -> Iterator[str]:
    """Host GPU gauges; a figure NVML cannot give (None) is left out, not written as 0."""
    for name, help_text, attribute in GPU_GAUGES:
        rows = [(s, getattr(s, attribute)) for s in samples]
        rows = [(s, v) for s, v in rows if v is not None]
        if not rows:
            continue
        yield f"# HELP {name} {help_text}"
        yield f"# TYPE {name} gauge"
        for sample, raw in rows:
            value = raw / 100 if attribute == "utilization" else raw
            labels = f'host="{_escape(host)}",gpu="{sample.index}",name="{_escape(sample.name)}"'
            yield f"{name}{{{labels}}} {_number(value)}"
