"""What the planner knows about a model: its attention layout and its checkpoint tensors.

A model is either a local folder (config.json plus safetensors files or their index) or a
built-in reference config kept as data in `planner/models/*.yaml`. Safetensors files are
never loaded: each starts with an 8-byte little-endian header length and a JSON header
that lists every tensor's dtype, shape and byte range, which is all the planner needs.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from corral.errors import PlanError

DATA_DIR = Path(__file__).parent
BUILTIN_DIR = DATA_DIR / "models"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors caps headers at 100 MB


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int


@dataclass(frozen=True)
class ModelSpec:
    """A model as the planner sees it. `tensors` is empty when no checkpoint was read."""

    name: str
    source: str  # "builtin" or the folder path
    config: dict[str, Any]
    arch: dict[str, Any]
    tensors: tuple[Tensor, ...] = ()
    index_total_size: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def architecture(self) -> str:
        return str(self.config["architectures"][0])

    @property
    def num_layers(self) -> int:
        return int(self.config["num_hidden_layers"])

    @property
    def num_kv_heads(self) -> int:
        heads = self.config.get("num_key_value_heads") or self.config["num_attention_heads"]
        return int(heads)

    @property
    def head_dim(self) -> int:
        explicit = self.config.get("head_dim")
        if explicit:
            return int(explicit)
        return int(self.config["hidden_size"]) // int(self.config["num_attention_heads"])

    @property
    def dtype(self) -> str:
        return str(self.config.get("torch_dtype") or self.config.get("dtype") or "bfloat16")

    @property
    def quant_method(self) -> str | None:
        quant = self.config.get("quantization_config") or {}
        method = quant.get("quant_method")
        return str(method) if method else None

    @property
    def max_position_embeddings(self) -> int | None:
        value = self.config.get("max_position_embeddings")
        return int(value) if value else None


def load_architectures(path: Path = DATA_DIR / "architectures.yaml") -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def builtin_names(directory: Path = BUILTIN_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_model(ref: str, *, builtin_dir: Path = BUILTIN_DIR) -> ModelSpec:
    """A built-in name (e.g. `gpt-oss-120b`) or a local folder with config.json."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return _from_folder(path)
    if (builtin_dir / f"{ref}.yaml").is_file():
        return _from_builtin(ref, builtin_dir)
    known = ", ".join(builtin_names(builtin_dir))
    raise PlanError(
        f"{ref!r} is neither a local model folder nor a built-in model (built-in: {known})",
        hint="pass a folder that holds config.json and *.safetensors, or a built-in name",
    )


def _from_builtin(name: str, directory: Path) -> ModelSpec:
    data = yaml.safe_load((directory / f"{name}.yaml").read_text())
    config = data["config"]
    return ModelSpec(name, "builtin", config, _arch_of(config, f"built-in {name}"))


def _from_folder(path: Path) -> ModelSpec:
    config_path = path / "config.json"
    if not config_path.is_file():
        raise PlanError(
            f"{path} has no config.json",
            hint="point at the model's snapshot folder (the one with config.json)",
        )
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise PlanError(f"{config_path} is not valid JSON: {exc}") from exc
    arch = _arch_of(config, str(config_path))
    tensors, total, notes = _checkpoint_of(path)
    return ModelSpec(path.name, str(path), config, arch, tensors, total, notes)


def _arch_of(config: dict[str, Any], where: str) -> dict[str, Any]:
    known = load_architectures()
    names = config.get("architectures") or []
    if not names:
        raise PlanError(f"{where} has no 'architectures' entry", hint="is this a model config?")
    if names[0] not in known:
        raise PlanError(
            f"architecture {names[0]} (from {where}) is not one the planner can size",
            hint="supported: " + ", ".join(known) + " (add one in planner/architectures.yaml)",
        )
    missing = [k for k in ("num_hidden_layers", "num_attention_heads") if k not in config]
    if missing:
        raise PlanError(f"{where} lacks {', '.join(missing)}")
    arch: dict[str, Any] = known[names[0]]
    return arch


def _checkpoint_of(path: Path) -> tuple[tuple[Tensor, ...], int | None, list[str]]:
    """Tensors from every safetensors header; the index's total_size if shards are absent."""
    files = sorted(path.glob("*.safetensors"))
    index_total: int | None = None
    notes: list[str] = []
    index = path / "model.safetensors.index.json"
    if index.is_file():
        meta = json.loads(index.read_text()).get("metadata") or {}
        if meta.get("total_size"):
            index_total = int(meta["total_size"])
    if not files and index_total is None:
        notes.append("no safetensors files or index: weights estimated from config.json")
    tensors = tuple(t for f in files for t in read_safetensors_header(f))
    return tensors, index_total, notes


DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
               "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1}  # fmt: skip


def read_safetensors_header(path: Path) -> list[Tensor]:
    """The tensors a safetensors file holds, read from its header only."""
    with path.open("rb") as handle:
        raw = handle.read(8)
        if len(raw) != 8:
            raise PlanError(f"{path} is too short to be a safetensors file")
        (length,) = struct.unpack("<Q", raw)
        if length > MAX_HEADER_BYTES:
            raise PlanError(f"{path}: header length {length} is implausible; file corrupt?")
        try:
            header = json.loads(handle.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PlanError(f"{path}: unreadable safetensors header ({exc})") from exc
    return [_tensor(name, info) for name, info in header.items() if name != "__metadata__"]


def _tensor(name: str, info: dict[str, Any]) -> Tensor:
    start, end = info["data_offsets"]
    return Tensor(name, str(info["dtype"]), tuple(int(d) for d in info["shape"]), end - start)
