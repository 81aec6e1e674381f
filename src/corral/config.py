"""The corral.yaml schema and its one loader.

Precedence, lowest to highest: the defaults in these models → the YAML file → environment
(`CORRAL_GATEWAY_HOST`, `CORRAL_GATEWAY_PORT`) → command-line flags (passed to
`load_config` as `overrides`). Validation happens once, at load; an invalid file raises
`ConfigError` naming the key path and the file. API keys are `SecretStr`, so they never
reach logs or reprs.

Without a file, `default_config()` gives the default fleet: SmolLM2-135M-Instruct on vLLM's
CPU build, served as `smollm2-135m-instruct` with alias `default`, behind a gateway on
127.0.0.1:8000.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from corral.errors import ConfigError

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
DEFAULT_STORE_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
LOCAL_HOST = "local"  # this machine: reached without SSH
LOCAL_NAMES = frozenset({LOCAL_HOST, "localhost"})


class Strict(BaseModel):
    """Base for every section: unknown keys are errors, so typos don't pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=False)


class Capabilities(Strict):
    """What the served model can do; verify skips checks it cannot pass, routing uses it."""

    tools: bool = True
    auto_tool_choice: bool = False
    reasoning: bool = False
    context_length: int = Field(default=4096, gt=0)
    structured_output: bool = True
    reasoning_field: Literal["reasoning", "reasoning_content"] | None = Field(
        default=None,
        description="the reasoning field this deployment's clients read; None accepts either",
    )


class Timeouts(Strict):
    """Gateway → engine timeouts in seconds (per deployment; defaults in the gateway section)."""

    connect: float = Field(default=5.0, gt=0)
    first_byte: float = Field(default=300.0, gt=0)
    idle: float = Field(default=60.0, gt=0)
    total: float = Field(default=3600.0, gt=0)


class Limits(Strict):
    """Per-deployment request limits enforced by the gateway."""

    max_n: int = Field(default=4, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_in_flight: int = Field(default=64, ge=1)
    max_queue: int = Field(default=256, ge=0)
    queue_timeout: float = Field(default=30.0, gt=0)
    allowed_fields: list[str] = Field(default_factory=list)


class VerifyGate(Strict):
    """Whether `corral serve` keeps a deployment out of routing until its suite passes."""

    gate: bool = False
    checks: list[str] | None = None


class DockerOptions(Strict):
    """Per-deployment `docker run` settings on top of the recipe's `container` section."""

    container_name: str | None = Field(default=None, description="default: the deployment name")
    image: str | None = Field(default=None, description="replaces the recipe's image")
    restart: str | None = Field(default=None, description="docker --restart policy, e.g. always")
    network: str | None = Field(default=None, description="replaces the recipe's network mode")
    extra: list[str] = Field(default_factory=list, description="more `docker run` options")


class RestartPolicy(Strict):
    """Restart an engine that dies unexpectedly, with exponential backoff."""

    max_restarts: int = Field(default=3, ge=0)
    backoff_initial: float = Field(default=2.0, gt=0)
    backoff_max: float = Field(default=60.0, gt=0)
    healthy_reset: float = Field(
        default=60.0, gt=0, description="seconds serving after which the restart count resets"
    )


class Deployment(Strict):
    """One engine serving one model under one served name."""

    name: str = Field(min_length=1, description="served model name clients ask for")
    model: str = Field(
        default="",
        description="store name (org/name[@revision]) or a path to a model folder",
    )
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="an OpenAI-compatible endpoint corral does not launch (in place of model)",
    )
    endpoint_model: str | None = Field(
        default=None, description="the model name the endpoint answers to (default: name)"
    )
    api_key_env: str | None = Field(
        default=None, description="environment variable holding the endpoint's API key"
    )
    engine: Literal["vllm", "sglang", "llama-server"] = "vllm"
    runtime: Literal["process", "docker"] = "process"
    recipe: str | None = None
    host: str = "local"
    aliases: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)
    port: int | None = Field(default=None, ge=1, le=65535)
    max_model_len: int | None = Field(default=None, gt=0)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    capabilities: Capabilities = Field(default_factory=Capabilities)
    limits: Limits = Field(default_factory=Limits)
    timeouts: Timeouts | None = None
    verify: VerifyGate = Field(default_factory=VerifyGate)
    restart: RestartPolicy = Field(default_factory=RestartPolicy)
    startup_timeout: float = Field(default=600.0, gt=0)
    kv_cache_gib: int | None = Field(
        default=None,
        ge=1,
        description="CPU engines: KV cache space in whole GiB (vLLM reads it with int())",
    )
    gpu_memory_utilization: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="GPU engines: the share of GPU memory vLLM may take (default: the recipe's)",
    )
    bind: str | None = Field(
        default=None, description="address the engine listens on (default: the recipe's, loopback)"
    )
    docker: DockerOptions = Field(default_factory=DockerOptions)
    nodes: list[str] = Field(
        default_factory=list,
        description="hosts one engine spans (multi-node); the first is the head, where the "
        "API server runs; `host` is then the head",
    )
    tensor_parallel_size: int | None = Field(default=None, ge=1)
    pipeline_parallel_size: int | None = Field(default=None, ge=1)
    distributed_backend: Literal["mp", "ray"] = Field(
        default="mp",
        description="multi-node: vLLM's own processes (`mp`: --nnodes/--node-rank/--headless) "
        "or a Ray cluster corral starts on the nodes",
    )
    master_port: int = Field(
        default=29501, ge=1, le=65535, description="multi-node: the head's rendezvous port"
    )

    @model_validator(mode="after")
    def _head_is_the_host(self) -> Deployment:
        if self.nodes:
            if len(set(self.nodes)) != len(self.nodes):
                raise ValueError(f"nodes {self.nodes} names a host twice")
            if self.host not in LOCAL_NAMES and self.host != self.nodes[0]:
                raise ValueError(
                    f"host {self.host!r} is not the first of nodes {self.nodes} (the head)"
                )
            self.host = self.nodes[0]
        return self

    on_demand: bool = Field(
        default=False, description="start on the first request naming it, not with serve"
    )
    idle_stop: float | None = Field(
        default=None, gt=0, description="stop after this long without requests (15m, 90s, 600)"
    )
    pinned: bool = Field(default=False, description="never stopped to make room for another")
    priority: int = Field(default=0, description="higher is evicted later among idle ones")
    place_on: list[str] = Field(
        default_factory=list,
        description="on demand: hosts it may start on; a request places it on the one "
        "(its recipe matching that host's hardware) where it fits with the least eviction",
    )
    memory_gib: float | None = Field(
        default=None, gt=0,
        description="what it holds on its host (planner's weights + KV + overhead); the "
        "measured peak replaces it once it ran, when larger",
    )  # fmt: skip

    @field_validator("idle_stop", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _model_or_endpoint(self) -> Deployment:
        if bool(self.model) == bool(self.endpoint):
            raise ValueError(f"deployment {self.name!r}: set exactly one of `model` or `endpoint`")
        return self


def parse_duration(text: str) -> float:
    """'15m', '90s', '1h', '2.5m' or a bare number of seconds."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    text = text.strip().lower()
    scale = units.get(text[-1:], 1.0)
    number = text[:-1] if text[-1:] in units else text
    try:
        return float(number) * scale
    except ValueError:
        raise ValueError(f"{text!r} is not a duration (use e.g. 15m, 90s or 600)") from None


class KeyLimits(Strict):
    """Per-key limits enforced by the gateway (None = unlimited); a 429 names the one hit."""

    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_day: int | None = Field(default=None, ge=1)
    concurrent: int | None = Field(default=None, ge=1, description="requests in flight at once")


class ApiKey(Strict):
    """A key from the config file: the key itself (kept secret) or its sha256."""

    name: str
    key: SecretStr | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    models: list[str] = Field(
        default_factory=list, description="names, aliases or roles; empty = all"
    )
    limits: KeyLimits = Field(default_factory=KeyLimits)

    @model_validator(mode="after")
    def _key_or_hash(self) -> ApiKey:
        if (self.key is None) == (self.sha256 is None):
            raise ValueError(f"api key {self.name!r}: set exactly one of `key` or `sha256`")
        return self


class Role(Strict):
    """A role resolves to a ready deployment that meets these requirements."""

    min_context: int = Field(default=0, ge=0)
    tools: bool = False
    reasoning: bool = False
    prefer: list[str] = Field(default_factory=list)


ApiMode = Literal["auto", "native", "translate"]


class ApiSettings(Strict):
    """How the gateway serves the Responses and Messages APIs (gateway/translate/modes.py)."""

    responses: ApiMode = "auto"
    messages: ApiMode = "auto"
    retained_responses: int = Field(
        default=1000, ge=0, description="answers kept for previous_response_id"
    )
    retention_seconds: float = Field(default=3600.0, gt=0)
    reasoning_memory: int = Field(
        default=10000, ge=0, description="tool-call turns whose reasoning is kept (gpt-oss)"
    )


class GatewaySettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    api_keys: list[ApiKey] = Field(default_factory=list)
    insecure_no_auth: bool = False
    metrics_require_key: bool = False
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    breaker_failures: int = Field(default=3, ge=1, description="failures in a row to open")
    breaker_cooldown: float = Field(default=10.0, gt=0, description="seconds before a probe")
    apis: ApiSettings = Field(default_factory=ApiSettings)
    usage_flush_seconds: float = Field(
        default=5.0, gt=0, description="how often per-key usage is written to the ledger"
    )
    record_shapes: Path | None = Field(
        default=None,
        description="append each request's shape (token counts, arrival time; never content) "
        "to this JSONL file, for `corral tune --workload replay:FILE`",
    )
    admin_keys: list[str] = Field(
        default_factory=list,
        description="names of API keys that may act (stop, deploy, ...) from the web console",
    )


class StoreRoot(Strict):
    name: str
    path: Path
    read_only: bool = False


class StoreSettings(Strict):
    roots: list[StoreRoot] = Field(default_factory=list)


class HostSsh(Strict):
    """How corral reaches a host: OpenSSH with key auth and checked host keys (decision 0013)."""

    user: str | None = Field(default=None, description="login user; default: your own")
    port: int = Field(default=22, ge=1, le=65535)
    key: Path | None = Field(default=None, description="private key; default: ssh's own")
    known_hosts: Path = Field(
        default=Path("~/.ssh/known_hosts"),
        description="host keys to check against; an unknown or changed key is refused",
    )
    connect_timeout: float = Field(default=5.0, gt=0)


class Host(Strict):
    """A machine in the fleet. Every host but `local` is reached over SSH; no agent runs there."""

    address: str = "127.0.0.1"
    hardware: str | None = Field(default=None, description="a hardware kind; default: detected")
    description: str = ""
    ssh: HostSsh = Field(default_factory=HostSsh)
    interface: str | None = Field(
        default=None,
        description="network interface for NCCL/GLOO between nodes (NCCL_SOCKET_IFNAME)",
    )
    mounts: dict[str, Path] = Field(
        default_factory=dict,
        description="store root name → where that root is mounted on this host "
        "(default: the root's own path)",
    )
    memory_budget_gib: float | None = Field(
        default=None, gt=0,
        description="memory the deployments on this host may hold together (unified-memory "
        "boxes: system memory counts as the GPU's); on-demand starts evict to stay under it",
    )  # fmt: skip


class ServeSettings(Strict):
    """How `corral serve` treats the engines it runs."""

    stop_engines_on_exit: bool = Field(
        default=False,
        description="Ctrl-C stops every engine (they die with serve); otherwise detached and "
        "docker engines keep running and the next serve adopts them",
    )
    on_demand_start_timeout: float = Field(
        default=300.0, gt=0, description="seconds a request waits for an on-demand start"
    )


class CorralConfig(Strict):
    """The whole corral.yaml."""

    version: Literal[1] = 1
    home: Path | None = None
    store: StoreSettings = Field(default_factory=StoreSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    roles: dict[str, Role] = Field(default_factory=dict)
    hosts: dict[str, Host] = Field(default_factory=dict)
    recipes_dir: Path | None = None
    serve: ServeSettings = Field(default_factory=ServeSettings)
    deployments: list[Deployment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _hosts_known(self) -> CorralConfig:
        roots = {root.name for root in self.store.roots}
        for name, host in self.hosts.items():
            unknown = sorted(set(host.mounts) - roots)
            if unknown:
                raise ValueError(
                    f"hosts.{name}.mounts names store roots {unknown} that store.roots lacks"
                )
        for dep in self.deployments:
            if dep.place_on and (not dep.on_demand or dep.nodes):
                raise ValueError(f"deployment {dep.name!r}: place_on is for single-node "
                                 "on_demand deployments")  # fmt: skip
            for name in dict.fromkeys([dep.host, *dep.nodes, *dep.place_on]):
                if name not in LOCAL_NAMES and name not in self.hosts:
                    known = ", ".join(sorted(self.hosts)) or "none"
                    raise ValueError(
                        f"deployment {dep.name!r} runs on host {name!r}, which `hosts:` "
                        f"does not define (hosts: {known})"
                    )
        return self

    def host(self, name: str) -> Host:
        """The host called `name` (`local` is this machine even when `hosts:` omits it)."""
        if name in self.hosts:
            return self.hosts[name]
        if name in LOCAL_NAMES:
            return Host(address="127.0.0.1", description="this machine")
        known = ", ".join(sorted(self.hosts)) or "none"
        raise ConfigError(f"no host named {name!r} (hosts: {known})")

    @field_validator("deployments")
    @classmethod
    def _unique_names_per_host(cls, value: list[Deployment]) -> list[Deployment]:
        seen: set[tuple[str, str, int | None]] = set()
        for dep in value:
            key = (dep.name, dep.host, dep.port)
            if dep.port is not None and key in seen:
                raise ValueError(f"two deployments named {dep.name!r} on one host and port")
            seen.add(key)
        return value

    def deployment(self, name: str) -> Deployment:
        """The deployment called `name`; ConfigError naming the ones that exist if none."""
        for dep in self.deployments:
            if dep.name == name:
                return dep
        known = ", ".join(d.name for d in self.deployments) or "none"
        raise ConfigError(f"no deployment named {name!r} (deployments: {known})")


def default_deployment() -> Deployment:
    """SmolLM2-135M-Instruct on vLLM: the deployment `corral serve` runs without a file. No
    recipe is named, so the host's hardware picks one (smollm2-135m-cpu on a CPU box, the GPU
    recipe of its kind on a GPU host)."""
    return Deployment(
        name=DEFAULT_MODEL_NAME,
        model=DEFAULT_STORE_NAME,
        engine="vllm",
        aliases=["default"],
        max_model_len=4096,
        capabilities=Capabilities(
            tools=True, auto_tool_choice=False, reasoning=False, context_length=4096
        ),
    )


def default_config() -> CorralConfig:
    """The default fleet; Ctrl-C on its `corral serve` stops the engine too."""
    return CorralConfig(
        deployments=[default_deployment()], serve=ServeSettings(stop_engines_on_exit=True)
    )


def _format_location(loc: tuple[int | str, ...], data: Any) -> str:
    """Turn pydantic's location into a key path, naming list items by their `name`."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int) and isinstance(node, list) and item < len(node):
            entry = node[item]
            label = entry.get("name") if isinstance(entry, dict) else None
            parts[-1] = f"{parts[-1]}[{label!r}]" if label else f"{parts[-1]}[{item}]"
            node = entry
            continue
        parts.append(str(item))
        node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts)


def validate_config(data: Any, source: str) -> CorralConfig:
    """Validate parsed YAML; ConfigError names every bad key and the file."""
    try:
        return CorralConfig.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"  {_format_location(tuple(err['loc']), data)}: {err['msg']}" for err in exc.errors()
        ]
        raise ConfigError(
            f"invalid configuration in {source}:\n" + "\n".join(lines),
            hint="fix the key named above; examples/corral.yaml shows every section",
        ) from None


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None


def _env_overrides(env: dict[str, str]) -> dict[str, Any]:
    gateway: dict[str, Any] = {}
    if env.get("CORRAL_GATEWAY_HOST"):
        gateway["host"] = env["CORRAL_GATEWAY_HOST"]
    if env.get("CORRAL_GATEWAY_PORT"):
        gateway["port"] = env["CORRAL_GATEWAY_PORT"]
    return {"gateway": gateway} if gateway else {}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        elif value is not None:
            merged[key] = value
    return merged


def load_config(
    path: Path | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> CorralConfig:
    """Load corral.yaml (or the default fleet when `path` is None) with env and flag overrides."""
    env = dict(os.environ) if env is None else env
    if path is None:
        data: Any = default_config().model_dump(mode="json", exclude_none=True)
        source = "the default configuration"
    else:
        data = read_yaml(path)
        source = str(path)
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path} must hold a mapping at the top level, not {type(data).__name__}"
            )
    data = _merge(_merge(data, _env_overrides(env)), overrides or {})
    return validate_config(data, source)
