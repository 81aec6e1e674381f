"""`corral hosts check`: reach each host over SSH and say whether its deployments can run there.

Nothing of corral runs on the host. One SSH command gathers the facts in sections (the
engine and docker executables, `nvidia-smi -q -x`, /proc/meminfo and cpuinfo, the mount
table, each store root's path there); corral's own parsers read them here (hardware/'s
nvidia-smi XML and /proc parsers, store/mount.py's mount table and advice). A second, tiny
command reads the host's clock between two local readings, for the skew.

Each fact becomes a `Finding` (ok, warn or error, with a hint). An error means a deployment
on that host can't start: docker missing for a docker deployment, fewer GPUs than the
recipe asks for, a store root not there. `require_ready` turns a host's errors into one
`HostError` naming the host and what to do, before anything starts.
"""

from __future__ import annotations

import re
import shlex
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from corral.config import LOCAL_NAMES, CorralConfig, Deployment, Host
from corral.errors import CorralError, HostError
from corral.hardware.cpu import parse_cpuinfo, parse_meminfo
from corral.hardware.detect import detect_from_smi
from corral.hardware.info import HardwareInfo
from corral.hardware.nvidia_smi import SmiReport, parse_q_xml
from corral.hosts.ssh import SshClient
from corral.recipes.loader import get_recipe, load_recipes
from corral.store.mount import advise, load_advice, mount_for

Level = Literal["ok", "warn", "error"]
MARK = "@@corral:"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
CLOCK_WARN_SECONDS = 1.0  # logs and metrics from two hosts stop lining up beyond this
ENGINE_EXECUTABLES = {"vllm": "vllm", "sglang": "python3", "llama-server": "llama-server"}
PARALLEL_FLAGS = {
    "--tensor-parallel-size": "tp",
    "-tp": "tp",
    "--pipeline-parallel-size": "pp",
    "-pp": "pp",
    "--data-parallel-size": "dp",
    "-dp": "dp",
}


@dataclass(frozen=True)
class Finding:
    what: str
    level: Level
    detail: str
    hint: str | None = None


@dataclass(frozen=True)
class StoreNeed:
    root: str
    path: Path  # where the root should be on that host


@dataclass
class HostNeeds:
    """What the deployments placed on one host require of it."""

    docker: list[str] = field(default_factory=list)  # deployments that need docker
    executables: dict[str, list[str]] = field(default_factory=dict)  # exe → deployments
    gpus: dict[str, int] = field(default_factory=dict)  # deployment → GPUs on this host
    store: list[StoreNeed] = field(default_factory=list)
    exposed: dict[str, str] = field(default_factory=dict)  # deployment → non-loopback bind


@dataclass
class HostReport:
    host: str
    address: str
    findings: list[Finding] = field(default_factory=list)
    hardware: HardwareInfo | None = None
    clock_skew: float | None = None

    def add(self, what: str, level: Level, detail: str, hint: str | None = None) -> None:
        self.findings.append(Finding(what, level, detail, hint))

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    def as_json(self) -> dict[str, object]:
        """`corral hosts check --json`'s entry, also what the ledger's host_checks keeps."""
        return {
            "host": self.host,
            "address": self.address,
            "ok": not self.errors,
            "clock_skew_s": self.clock_skew,
            "hardware": self.hardware.model_dump(mode="json") if self.hardware else None,
            "hardware_summary": self.hardware.summary() if self.hardware else None,
            "findings": [vars(f) for f in self.findings],
        }


def gpus_in_args(args: Iterable[str]) -> int:
    """GPUs an engine command asks for: tensor × pipeline × data parallel sizes (default 1)."""
    sizes = {"tp": 1, "pp": 1, "dp": 1}
    items = list(args)
    for index, item in enumerate(items):
        flag, _, inline = item.partition("=")
        if flag in PARALLEL_FLAGS:
            value = inline or (items[index + 1] if index + 1 < len(items) else "1")
            sizes[PARALLEL_FLAGS[flag]] = int(value) if value.isdigit() else 1
    return sizes["tp"] * sizes["pp"] * sizes["dp"]


def _deployment_gpus(dep: Deployment, config: CorralConfig) -> int:
    """GPUs one deployment needs on its host (each node's share for multi-node); 0 for a
    recipe made for CPUs (an engine built for CPUs uses no GPU anywhere)."""
    recipe = get_recipe(load_recipes(config.recipes_dir), dep.recipe) if dep.recipe else None
    if recipe is not None and "cpu" in recipe.match.hardware:
        return 0
    if dep.nodes:  # vLLM splits the world evenly over the nodes
        world = (dep.tensor_parallel_size or 1) * (dep.pipeline_parallel_size or 1)
        return max(1, world // len(dep.nodes))
    if recipe is None:
        # Without a recipe only the deployment's own flags say it wants GPUs.
        asks = any(arg.partition("=")[0] in PARALLEL_FLAGS for arg in dep.args)
        return gpus_in_args(dep.args) if asks else 0
    return gpus_in_args([*recipe.args, *dep.args])


def _executable(dep: Deployment, config: CorralConfig) -> str:
    """What a process deployment runs first: its recipe's command, else the engine's CLI."""
    if dep.recipe:
        recipe = get_recipe(load_recipes(config.recipes_dir), dep.recipe)
        if recipe.process is not None:
            # `{python}` is the interpreter corral runs under (recipes/render.py).
            return recipe.process.command[0].replace("{python}", sys.executable)
    return ENGINE_EXECUTABLES[dep.engine]


def needs_of(config: CorralConfig, host_name: str) -> HostNeeds:
    """What every deployment placed on `host_name` needs there."""
    host = config.host(host_name)
    needs = HostNeeds()
    for dep in config.deployments:
        if host_name not in (dep.host, *dep.nodes):
            continue
        if dep.runtime == "docker":
            needs.docker.append(dep.name)
        else:
            needs.executables.setdefault(_executable(dep, config), []).append(dep.name)
        needs.gpus[dep.name] = _deployment_gpus(dep, config)
        if dep.bind and dep.bind not in LOOPBACK:
            needs.exposed[dep.name] = dep.bind
    needs.store = [StoreNeed(r.name, host.mounts.get(r.name, r.path)) for r in config.store.roots]
    return needs


def probe_script(needs: HostNeeds) -> str:
    """One shell script whose output is `@@corral:<section>` blocks, for one round trip."""
    parts = [
        _section("uname", "uname -m"),
        _section("docker", "command -v docker && docker info --format '{{.ServerVersion}}'"),
        *(_section(f"exe:{exe}", f"command -v {shlex.quote(exe)}") for exe in needs.executables),
        _section("nvidia-smi", "command -v nvidia-smi >/dev/null && nvidia-smi -q -x"),
        _section("meminfo", "cat /proc/meminfo"),
        _section("cpuinfo", "cat /proc/cpuinfo"),
        _section("nproc", "nproc"),
        _section("mounts", "cat /proc/self/mounts"),
    ]
    for need in needs.store:
        path = shlex.quote(str(need.path))
        parts.append(
            _section(f"root:{need.root}", f"test -d {path} && readlink -f {path} && ls -A {path}")
        )
    return "\n".join(parts) + "\n"


def _section(name: str, command: str) -> str:
    # Every section prints its own exit status last, so "missing" and "empty" differ.
    return f"echo '{MARK}{name}'; ( {command} ) 2>&1; echo \"{MARK}rc $?\""


def parse_sections(text: str) -> dict[str, tuple[int, str]]:
    """`@@corral:<name>` … `@@corral:rc N` blocks → {name: (rc, body)}."""
    sections: dict[str, tuple[int, str]] = {}
    pattern = re.compile(
        rf"^{re.escape(MARK)}(?P<name>[^\n]+)\n(?P<body>.*?)^{re.escape(MARK)}rc (?P<rc>\d+)$",
        re.MULTILINE | re.DOTALL,
    )
    for match in pattern.finditer(text):
        sections[match.group("name")] = (int(match.group("rc")), match.group("body"))
    return sections


def hardware_from(sections: dict[str, tuple[int, str]]) -> HardwareInfo:
    """The host's hardware from its sections, through corral's own parsers."""
    smi_rc, smi_text = sections.get("nvidia-smi", (1, ""))
    report = parse_q_xml(smi_text) if smi_rc == 0 and smi_text.strip() else SmiReport()
    arch = sections.get("uname", (0, "unknown"))[1].strip() or "unknown"
    cores = sections.get("nproc", (1, ""))[1].strip()
    cpu = parse_cpuinfo(
        sections.get("cpuinfo", (1, ""))[1],
        arch=arch,
        logical_cores=int(cores) if cores.isdigit() else None,
    )
    ram = parse_meminfo(sections.get("meminfo", (1, ""))[1]).get("MemTotal", 0)
    return detect_from_smi(report, cpu, ram)


def detect_remote(client: SshClient) -> HardwareInfo:
    """The host's hardware, read over SSH with the probe's hardware sections only."""
    script = probe_script(HostNeeds())
    return hardware_from(parse_sections(client.run(["sh", "-c", script], timeout=60).stdout))


def judge(
    report: HostReport, sections: dict[str, tuple[int, str]], needs: HostNeeds, host: Host
) -> None:
    """Turn the sections into findings against what the host's deployments need."""
    _judge_docker(report, sections, needs)
    _judge_executables(report, sections, needs)
    _judge_gpus(report, needs, host)
    _judge_memory(report, sections)
    _judge_store(report, sections, needs)
    _judge_exposure(report, needs)


def _judge_exposure(report: HostReport, needs: HostNeeds) -> None:
    for dep, bind in needs.exposed.items():
        report.add(
            f"bind:{dep}",
            "warn",
            f"{dep} binds {bind}: its API is reachable from that network, not only "
            "through corral's SSH forward",
            hint="remove `bind:` (engines default to loopback; decision 0014), or give the "
            "engine an API key",
        )


def _judge_docker(
    report: HostReport, sections: dict[str, tuple[int, str]], needs: HostNeeds
) -> None:
    rc, body = sections.get("docker", (1, ""))
    lines = body.strip().splitlines()
    if rc == 0:
        report.add("docker", "ok", f"docker {lines[-1]} ({lines[0]})")
    elif needs.docker:
        why = "not installed" if not lines else f"not usable: {lines[-1]}"
        report.add(
            "docker",
            "error",
            f"docker is {why}, and {', '.join(needs.docker)} run(s) in docker here",
            hint="install Docker Engine (and the NVIDIA container toolkit) on the host, or "
            "set `runtime: process` for those deployments",
        )
    else:
        report.add("docker", "ok", "no docker (no docker deployment here)")


def _judge_executables(
    report: HostReport, sections: dict[str, tuple[int, str]], needs: HostNeeds
) -> None:
    for exe, deployments in needs.executables.items():
        rc, body = sections.get(f"exe:{exe}", (1, ""))
        if rc == 0:
            report.add(f"engine:{exe}", "ok", body.strip())
        else:
            report.add(
                f"engine:{exe}",
                "error",
                f"`{exe}` is not on the SSH session's PATH, and {', '.join(deployments)} "
                "run(s) it as a process here",
                hint=f"install the engine on the host (so `ssh HOST command -v {exe}` finds "
                "it), or run those deployments in docker",
            )


def _judge_gpus(report: HostReport, needs: HostNeeds, host: Host) -> None:
    hardware = report.hardware
    count = len(hardware.gpus) if hardware else 0
    if hardware and hardware.gpus:
        report.add("gpus", "ok", hardware.summary())
    else:
        report.add("gpus", "ok", "no NVIDIA GPU (nvidia-smi not found or none listed)")
    if host.hardware and hardware and host.hardware != hardware.kind:
        report.add(
            "hardware",
            "warn",
            f"corral.yaml says {host.hardware!r}, the host looks like {hardware.kind!r}",
            hint=f"recipes match on hosts.{report.host}.hardware; fix it or remove it",
        )
    for dep, wanted in needs.gpus.items():
        if wanted > count:
            report.add(
                f"gpus:{dep}",
                "error",
                f"{dep} needs {wanted} GPU(s), the host has {count}",
                hint="lower tensor/pipeline parallelism, or place the deployment on a host "
                "with enough GPUs (or across nodes: `nodes:`)",
            )


def _judge_memory(report: HostReport, sections: dict[str, tuple[int, str]]) -> None:
    info = parse_meminfo(sections.get("meminfo", (1, ""))[1])
    total, free = info.get("MemTotal", 0), info.get("MemAvailable", 0)
    report.add("memory", "ok", f"{free / 2**30:.1f} GiB available of {total / 2**30:.1f} GiB")


def _judge_store(
    report: HostReport, sections: dict[str, tuple[int, str]], needs: HostNeeds
) -> None:
    mounts_text = sections.get("mounts", (1, ""))[1]
    for need in needs.store:
        rc, body = sections.get(f"root:{need.root}", (1, ""))
        lines = body.strip().splitlines()
        if rc != 0:
            report.add(
                f"store:{need.root}",
                "error",
                f"store root {need.root!r} is not there: {need.path} is missing",
                hint=f"mount the share at {need.path} on the host (see docs/hosts.md), or set "
                f"hosts.{report.host}.mounts.{need.root} to where it is mounted",
            )
            continue
        _judge_mounted_root(report, need, Path(lines[0]), lines[1:], mounts_text)


def _judge_mounted_root(
    report: HostReport, need: StoreNeed, real: Path, entries: list[str], mounts_text: str
) -> None:
    try:
        mount = mount_for(real, mounts_text)
    except CorralError as exc:
        report.add(f"store:{need.root}", "error", exc.message)
        return
    where = f"{need.path} on {mount.device} ({mount.fstype})"
    if not entries:
        report.add(
            f"store:{need.root}",
            "error",
            f"store root {need.root!r} at {where} is empty: the share is probably not mounted",
            hint=f"mount it on the host (`mount {need.path}`; see docs/hosts.md)",
        )
        return
    warnings = advise(mount, load_advice())
    level: Level = "warn" if warnings else "ok"
    report.add(f"store:{need.root}", level, "; ".join([where, *warnings]))


def measure_clock(client: SshClient) -> float:
    """Host clock minus ours, in seconds, read between two local clock readings."""
    before = time.time()
    result = client.run(["date", "+%s.%N"], timeout=10)
    after = time.time()
    return float(result.stdout.strip()) - (before + after) / 2


def _judge_clock(report: HostReport, skew: float) -> None:
    report.clock_skew = skew
    level: Level = "warn" if abs(skew) > CLOCK_WARN_SECONDS else "ok"
    report.add(
        "clock",
        level,
        f"{skew:+.3f} s from this machine",
        hint="run NTP (chrony or systemd-timesyncd) on both machines" if level == "warn" else None,
    )


def check_host(name: str, config: CorralConfig, client: SshClient) -> HostReport:
    """Reach `name` and judge it against its deployments; never raises for the host's state."""
    host = config.host(name)
    report = HostReport(name, host.address)
    needs = needs_of(config, name)
    try:
        took = client.connect()
        report.add("ssh", "ok", f"{client.target.describe()} (handshake {took:.2f} s)")
        sections = parse_sections(client.run(["sh", "-c", probe_script(needs)], timeout=60).stdout)
        report.hardware = hardware_from(sections)
        judge(report, sections, needs, host)
        _judge_clock(report, measure_clock(client))
    except HostError as exc:
        report.add("ssh", "error", exc.message.removeprefix(f"host {name}: "), exc.hint)
    return report


def remote_hosts(config: CorralConfig, names: Iterable[str] = ()) -> list[str]:
    """The hosts to check: `names`, else every host in the config that isn't this machine."""
    chosen = list(names) or [n for n in config.hosts if n not in LOCAL_NAMES]
    for name in chosen:
        config.host(name)  # ConfigError naming the known hosts
    return chosen


def require_ready(report: HostReport) -> None:
    """Raise one HostError listing everything that keeps the host's deployments from starting."""
    if not report.errors:
        return
    first = report.errors[0]
    details = "; ".join(f"{f.what}: {f.detail}" for f in report.errors)
    raise HostError(report.host, details, hint=first.hint)


def hosts_in_use(config: CorralConfig) -> list[str]:
    """Every remote host some deployment runs on (a rank of it, for multi-node)."""
    names = [n for dep in config.deployments for n in (dep.host, *dep.nodes)]
    return [n for n in dict.fromkeys(names) if n not in LOCAL_NAMES]


def preflight(config: CorralConfig, clients: Callable[[str], SshClient]) -> dict[str, HostReport]:
    """Check every host in use before anything starts; a report per host, errors included.

    `corral serve` starts nothing on a host whose report has errors (its deployments stay
    visible as failed, with the report's first error as the reason) and goes on with the
    other hosts.
    """
    return {name: check_host(name, config, clients(name)) for name in hosts_in_use(config)}


def blocked(config: CorralConfig, reports: dict[str, HostReport]) -> dict[str, HostError]:
    """Deployment name → the HostError that keeps it from starting (any of its hosts)."""
    found: dict[str, HostError] = {}
    for dep in config.deployments:
        for name in (dep.host, *dep.nodes):
            report = reports.get(name)
            if report is not None and report.errors and dep.name not in found:
                try:
                    require_ready(report)
                except HostError as exc:
                    found[dep.name] = exc
    return found
