"""The recipe schema. Unknown keys are errors so that a typo in a recipe is caught at load.

Arguments, the command and environment values are templates: `{model}` (the model path as
the engine sees it, inside the container for docker), `{served_name}`, `{host}`, `{port}`,
`{max_model_len}`, `{kv_cache_gib}`, `{gpu_memory_utilization}`, `{python}` (the interpreter
corral runs under), `{flashinfer_sampler}` ("1" when the engine's Python has FlashInfer,
else "0": vLLM's sampler needs `VLLM_USE_FLASHINFER_SAMPLER=0` without it) and
`{llama_server}` (the llama-server binary: engines/llama_server.py's `find_binary`).
"""

from __future__ import annotations

import string
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from corral.config import Capabilities

PLACEHOLDERS = frozenset(
    {
        "model",
        "served_name",
        "host",
        "port",
        "max_model_len",
        "kv_cache_gib",
        "gpu_memory_utilization",
        "python",
        "flashinfer_sampler",
        "llama_server",
    }
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Match(Strict):
    """What a recipe is for. `models` are store names or fnmatch patterns (case-insensitive)."""

    models: list[str] = Field(min_length=1)
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="config.json values that identify the model in a folder of any name "
        "(e.g. architectures, hidden_size, num_hidden_layers, vocab_size)",
    )
    hardware: list[str] = Field(min_length=1, description="hardware kinds, see `corral hw`")
    engine: Literal["vllm", "sglang", "llama-server"] = "vllm"


class Parallel(Strict):
    """How the model is split over GPUs and hosts. `nodes` > 1 needs that many hosts of the
    recipe's hardware kind (the hosts' list comes from the deployment's `nodes:`)."""

    tensor_parallel_size: int = Field(default=1, ge=1)
    pipeline_parallel_size: int = Field(default=1, ge=1)
    distributed_backend: Literal["mp", "ray"] | None = Field(
        default=None, description="vLLM's --distributed-executor-backend; None: one process"
    )
    nodes: int = Field(default=1, ge=1, description="hosts the recipe spans")


class Source(Strict):
    """Where a fact came from, and what it says (so a reader need not open the link)."""

    url: str
    says: str = ""


class Disagreement(Strict):
    """Where sources differ on a setting: who says what, what this recipe picked, and why."""

    topic: str
    views: list[str] = Field(min_length=2, description="'source: what it says'")
    choice: str
    reason: str


class FlagAllowance(Strict):
    """A flag the installed checker does not know but the pinned engine version does."""

    flag: str = Field(pattern=r"^--?[A-Za-z0-9]")
    engine_version: str = Field(description="the version that has it, e.g. 'vLLM 0.33.0'")
    source: str


class Container(Strict):
    """How the engine runs under `docker run`. The store root is mounted read-only."""

    image: str
    image_source: str | None = Field(default=None, description="where the image comes from")
    build: str | None = Field(default=None, description="how to build the image, if not pulled")
    command: list[str] = Field(description="after the image name, before `args`")
    gpus: str | None = "all"
    ipc: str | None = "host"
    network: str | None = "host"
    privileged: bool = False
    model_mount: str = "/models"
    restart: str | None = None
    extra: list[str] = Field(default_factory=list, description="more `docker run` options")


class Process(Strict):
    """How the engine runs as a local process: the argv before `args`."""

    command: list[str] = Field(min_length=1)


class Defaults(Strict):
    """Values the templates use when the deployment doesn't set them."""

    max_model_len: int = Field(default=4096, gt=0)
    port: int = Field(default=8000, ge=1, le=65535)
    host: str = "127.0.0.1"
    kv_cache_gib: int | None = Field(default=None, ge=1)  # whole GiB: vLLM reads int()
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)


class KnownIssue(Strict):
    """A problem of this model/engine/hardware combination: when, what, and the remedy."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    condition: str = Field(description="when it happens")
    message: str = Field(description="what the user sees")
    action: str = Field(description="what this recipe does about it")
    log_pattern: str | None = Field(default=None, description="a log line that signals it")
    references: list[str] = Field(default_factory=list)


class ReferenceFigure(Strict):
    """A figure measured elsewhere, with its source (shown beside corral's own measurements)."""

    name: str
    value: int | float | str
    unit: str = ""
    source: str
    note: str = ""


class SleepMode(Strict):
    """vLLM's sleep mode (`--enable-sleep-mode`; POST /sleep?level=N, /wake_up, served
    with VLLM_SERVER_DEV_MODE=1): an idle on-demand deployment sleeps instead of stopping,
    and the next request wakes it. Used only when `safe` for this recipe's hardware."""

    safe: bool = Field(description="sleep instead of stop/start on this recipe's hardware")
    level: Literal[1, 2] = Field(
        default=1, description="1: weights offloaded to host memory; 2: weights discarded"
    )
    reason: str = Field(description="why it is (or is not) safe here, with the source")


class ModelNotes(Strict):
    """What the report's model specifications section says beyond what the files show."""

    family: str = ""
    quantization: str = ""
    parameters: str = ""
    notes: list[str] = Field(default_factory=list)


class Recipe(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    description: str
    match: Match
    runtime: Literal["process", "docker"]
    engine_version: str | None = Field(default=None, description="the version it was written for")
    cuda: str | None = Field(
        default=None,
        pattern=r"^\d+\.\d+$",
        description="the CUDA version the engine build needs; a driver supporting less is "
        "refused before launch",
    )
    container: Container | None = None
    process: Process | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    served_name: str | None = Field(
        default=None,
        description="the model name the engine answers to (template); default: the value "
        "of --served-model-name in args, else the model path",
    )
    defaults: Defaults = Field(default_factory=Defaults)
    capabilities: Capabilities = Field(default_factory=Capabilities)
    model: ModelNotes = Field(default_factory=ModelNotes)
    known_issues: list[KnownIssue] = Field(default_factory=list)
    sleep_mode: SleepMode | None = Field(
        default=None, description="vLLM sleep mode for idle on-demand stops (see SleepMode)"
    )
    reference_figures: list[ReferenceFigure] = Field(default_factory=list)
    sources: list[str | Source] = Field(default_factory=list)
    parallel: Parallel = Field(default_factory=Parallel)
    disagreements: list[Disagreement] = Field(default_factory=list)
    flags_beyond_checker: list[FlagAllowance] = Field(
        default_factory=list, description="flags newer than the checker's engine version"
    )
    generic: bool = Field(
        default=False,
        description="a fallback for models without a recipe: never matched by name; "
        "corral fills in the planner's settings and the model's parsers",
    )

    @model_validator(mode="after")
    def _runtime_section_present(self) -> Recipe:
        if self.runtime == "docker" and self.container is None:
            raise ValueError("runtime 'docker' needs a `container` section")
        if self.runtime == "process" and self.process is None:
            raise ValueError("runtime 'process' needs a `process` section")
        unknown = sorted(template_names(self) - PLACEHOLDERS)
        if unknown:
            raise ValueError(f"unknown placeholders {unknown}; known: {sorted(PLACEHOLDERS)}")
        return self


def template_names(recipe: Recipe) -> set[str]:
    """Every `{name}` used in the command, args and env values."""
    texts = [*recipe.args, *recipe.env.values(), recipe.served_name or ""]
    if recipe.container:
        texts += recipe.container.command
    if recipe.process:
        texts += recipe.process.command
    names: set[str] = set()
    for text in texts:
        names |= {field for _, field, _, _ in string.Formatter().parse(text) if field}
    return names
