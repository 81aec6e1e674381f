"""llama-server's memory, from the GGUF header and the launch flags, checked before launch.

    weights  = the GGUF file(s) as they are (llama.cpp maps the tensors as stored)
    KV cache = n_ctx cells × n_layer × (n_head_kv × (key_length + value_length)) × 2 bytes

for the default f16 cache (`-ctk`/`-ctv` other than f16 scale it by their bytes per value),
where n_ctx is `-c` (0 or absent: the model's trained context) and is one pool however many
slots share it. This equals what llama.cpp logs: the RTX 3090 capture's Qwen2.5-14B
(48 layers, 8 KV heads × 128) at 32,768 cells gives 6,144.00 MiB, as its
`llama_kv_cache: size = 6144.00 MiB` line says; SmolLM2-135M at 16,384 cells gives 360 MiB.
Compute buffers are not predicted; `COMPUTE_ALLOWANCE` stands in for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from corral.errors import PlanError, StoreError
from corral.hardware.info import HardwareInfo
from corral.store.gguf import GgufHeader, read_header

MIB = 2**20
GIB = 2**30
COMPUTE_ALLOWANCE = 512 * MIB
# Bytes per cached value by llama.cpp cache type (q8_0: 34 bytes per 32, q4_0: 18 per 32).
CACHE_TYPE_BYTES = {
    "f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q5_1": 24 / 32,
    "q5_0": 22 / 32, "q4_1": 20 / 32, "q4_0": 18 / 32, "iq4_nl": 18 / 32,
}  # fmt: skip


@dataclass(frozen=True)
class LlamaPlan:
    weights_bytes: int
    kv_bytes: int
    context_tokens: int
    layers: int
    on_gpu: bool
    available_bytes: int | None
    where: str

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + COMPUTE_ALLOWANCE

    @property
    def fits(self) -> bool:
        return self.available_bytes is None or self.total_bytes <= self.available_bytes

    def figures(self) -> str:
        avail = f"{self.available_bytes / GIB:.1f} GiB" if self.available_bytes else "unknown"
        return (
            f"weights {self.weights_bytes / GIB:.2f} GiB + KV cache {self.kv_bytes / GIB:.2f} GiB "
            f"({self.context_tokens:,} tokens × {self.layers} layers, f16) + compute ~"
            f"{COMPUTE_ALLOWANCE / GIB:.1f} GiB = {self.total_bytes / GIB:.2f} GiB; "
            f"{self.where} has {avail}"
        )


def flag(argv: Sequence[str], *names: str) -> str | None:
    """The value of the last of `names` in argv (`-c 4096` or `--ctx-size=4096`)."""
    found = None
    for i, arg in enumerate(argv):
        head, eq, value = arg.partition("=")
        if head in names:
            found = value if eq else (argv[i + 1] if i + 1 < len(argv) else None)
    return found


def _int(header: GgufHeader, key: str, default: int | None = None) -> int:
    value = header.arch_value(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if default is not None:
        return default
    raise PlanError(f"{header.path.name} has no {header.architecture}.{key} in its metadata")


def kv_bytes(header: GgufHeader, context: int, cache_type: str = "f16") -> int:
    """The KV cache llama.cpp allocates for `context` cells of this model."""
    heads = _int(header, "attention.head_count")
    kv_heads = _int(header, "attention.head_count_kv", heads)
    head_dim = _int(header, "embedding_length") // heads
    k_len = _int(header, "attention.key_length", head_dim)
    v_len = _int(header, "attention.value_length", head_dim)
    per_value = CACHE_TYPE_BYTES.get(cache_type, 2.0)
    per_cell = _int(header, "block_count") * kv_heads * (k_len + v_len) * per_value
    return int(context * per_cell)


def context_of(header: GgufHeader, argv: Sequence[str]) -> int:
    """`-c` from the command line; 0 or absent means the model's trained context."""
    value = flag(argv, "-c", "--ctx-size")
    context = int(value) if value and value.lstrip("-").isdigit() else 0
    return context if context > 0 else _int(header, "context_length", 4096)


def offloads(argv: Sequence[str], hardware: HardwareInfo) -> bool:
    """Whether the weights go to a GPU: a GPU is there and -ngl is not 0."""
    layers = flag(argv, "-ngl", "--n-gpu-layers", "--gpu-layers")
    return bool(hardware.gpus) and layers not in ("0",)


def plan(header: GgufHeader, argv: Sequence[str], hardware: HardwareInfo) -> LlamaPlan:
    context = context_of(header, argv)
    cache = flag(argv, "-ctk", "--cache-type-k") or "f16"
    on_gpu = offloads(argv, hardware)
    gpu = hardware.gpus[0] if on_gpu else None
    available = gpu.memory_bytes if gpu is not None else hardware.ram_bytes
    where = f"the GPU ({gpu.name})" if gpu is not None else "this machine's memory"
    return LlamaPlan(
        weights_bytes=header.size_bytes,
        kv_bytes=kv_bytes(header, context, cache),
        context_tokens=context,
        layers=_int(header, "block_count"),
        on_gpu=on_gpu,
        available_bytes=available,
        where=where,
    )


def check_fits(model: Path, argv: Sequence[str], hardware: HardwareInfo) -> LlamaPlan:
    """The plan for launching llama-server on `model` with `argv`; StoreError when the file
    is not a GGUF model, PlanError with the figures when it does not fit in memory."""
    header = read_header(model)
    if not header.architecture or header.tensor_count == 0:
        raise StoreError(
            f"{model} is a GGUF file without a model in it "
            f"(architecture {header.architecture or 'missing'}, {header.tensor_count} tensors)",
            hint="a vocabulary-only or LoRA-adapter GGUF can't be served on its own; give the "
            "model's .gguf",
        )
    found = plan(header, argv, hardware)
    if not found.fits:
        raise PlanError(
            f"{model.name} does not fit: {found.figures()}",
            hint="lower -c / --ctx-size (the KV cache grows with it), pick a smaller "
            "quantization, or offload fewer layers (-ngl) so the rest stays in system memory",
        )
    return found
