"""The llama-server adapter: its parser over real logs, its failure lines, finding the binary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corral.engines.base import Failure, Phase
from corral.engines.llama_server import (
    BINARY_ENV,
    LlamaServerEngine,
    LlamaServerLogParser,
    failure_in,
    find_binary,
    parse_log,
)
from corral.engines.vllm import facts_of, phases_of
from corral.errors import EngineError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SHARED = FIXTURES / "shared" / "fixtures" / "logs" / "llama-server"
RTX3090 = SHARED / "qwen2.5-14b-instruct-q4_k_m-rtx3090-llama-server-b7896.log"
GB10 = SHARED / "gemma-4-26b-q4_0-gb10-llama-server-b9536.log"
H200 = SHARED / "smollm2-135m-q4_1-h200-cuda-llama-server-0.5.0.log"
CPU = FIXTURES / "logs" / "smollm2-cpu-llama-server-0.5.0.log"


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def test_classic_log_b7896_gives_every_fact() -> None:
    facts = facts_of(parse_log(read(RTX3090)))
    assert facts["engine_version"] == "7896 (ec6c7421e)"
    assert facts["device"] == "CUDA0: NVIDIA GeForce RTX 3090"
    assert facts["compute_capability"] == "8.6"
    assert facts["device_free_mib"] == 20645.0
    assert facts["model_size_gib"] == 8.37
    assert facts["model_params"] == "14.77 B"
    assert (facts["gpu_layers"], facts["model_layers"]) == (49, 49)
    assert facts["model_buffer_mib.CUDA0"] == 8148.38
    assert (facts["kv_cache_memory_mib"], facts["kv_cache_tokens"]) == (6144.0, 32768)
    assert (facts["parallel_slots"], facts["max_model_len"]) == (4, 32768)
    assert facts["listen_url"] == "http://0.0.0.0:8000"


def test_classic_log_phases_in_order_without_times() -> None:
    phases = phases_of(parse_log(read(RTX3090)))
    assert list(phases) == ["config", "load_weights", "kv_cache", "warmup", "api_server", "ready"]
    assert set(phases.values()) == {None}  # no stamps in this format


def test_stamped_log_b9536_device_and_times() -> None:
    events = []
    parser = LlamaServerLogParser(started_at=1000.0)
    for line in read(GB10).split("\n"):
        events.extend(parser.feed(line))
    facts, phases = facts_of(events), phases_of(events)
    assert facts["device"] == "CUDA0: NVIDIA GB10"
    assert (facts["device_memory_mib"], facts["device_free_mib"]) == (122501.0, 118047.0)
    assert facts["max_model_len"] == 8192
    assert phases["load_weights"] == pytest.approx(1000.30381)
    assert phases["ready"] == pytest.approx(1002.254428)


def test_vendored_0_5_0_wording_on_the_h200() -> None:
    """0.5.0-dev: `initializing, n_slots = 4, n_ctx_slot = 2048` and `listening on`."""
    events = parse_log(read(H200))
    facts = facts_of(events)
    assert (facts["parallel_slots"], facts["max_model_len"]) == (4, 2048)
    assert facts["listen_url"] == "http://127.0.0.1:8091"
    assert list(phases_of(events))[-1] == "ready"
    failures = [e for e in events if isinstance(e, Failure)]
    assert [f.kind for f in failures] == ["request_exceeds_context"]
    assert "2544 tokens" in failures[0].message


def test_one_fact_per_slot_context_not_four() -> None:
    names = [e.name for e in parse_log(read(GB10)) if not isinstance(e, (Phase, Failure))]
    assert names.count("max_model_len") == 1


def test_cpu_log_captured_here() -> None:
    """The log of the real CPU llama-server the integration tests start (-lv 4)."""
    events = parse_log(read(CPU))
    facts = facts_of(events)
    assert facts["engine_version"] == "1 (0c1e570)"
    assert facts["model_size_mib"] == 92.10
    assert facts["model_params"] == "134.52 M"
    assert facts["model_buffer_mib.CPU_Mapped"] == 92.10
    assert "gpu_layers" not in facts  # a CPU build offloads nothing and says nothing of it
    assert (facts["kv_cache_memory_mib"], facts["kv_cache_tokens"]) == (360.0, 16384)
    assert facts["context_tokens"] == 16384
    assert (facts["parallel_slots"], facts["max_model_len"]) == (4, 4096)
    assert list(phases_of(events))[-1] == "ready"
    assert not [e for e in events if isinstance(e, Failure)]


# Failure lines, as the llama.cpp sources format them (file named in the YAML).
FAILURE_LINES = {
    "llama_params_fit: failed to fit params to free device memory: n_gpu_layers already set"
    " by user to 99, abort": "gpu_layers_do_not_fit",
    "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 61024.00 MiB on device 0: "
    "cudaMalloc failed: out of memory": "gpu_oom",
    "llama_model_load: error loading model: unable to allocate CUDA0 buffer":
        "gpu_oom",
    "gguf_init_from_file_impl: invalid magic characters: 'PK\x03\x04', expected 'GGUF'":
        "not_a_gguf",
    "gguf_init_from_file: failed to open GGUF file '/m/x.gguf' (No such file or directory)":
        "model_not_found",
    "llama_model_load: error loading model: error loading model architecture: unknown model "
    "architecture: 'foo'": "unsupported_architecture",
    "srv    load_model: couldn't bind HTTP server socket, hostname: 127.0.0.1, port: 8110":
        "port_in_use",
    "srv  llama_server: exiting due to model loading error": "model_load_failed",
}  # fmt: skip


@pytest.mark.parametrize(("line", "kind"), FAILURE_LINES.items())
def test_failure_lines(line: str, kind: str) -> None:
    failure = failure_in(line)
    assert failure is not None
    assert failure.kind == kind
    assert failure.hint


def test_ngl_hint_says_what_to_do() -> None:
    failure = failure_in(next(iter(FAILURE_LINES)))
    assert failure is not None
    assert "-ngl" in failure.hint


def test_ordinary_lines_are_not_failures() -> None:
    assert failure_in("load_tensors: offloaded 31/31 layers to GPU") is None
    assert failure_in("srv  llama_server: model loaded") is None


def test_find_binary_prefers_the_env(tmp_path: Path) -> None:
    exe = tmp_path / "llama-server"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert find_binary({BINARY_ENV: str(exe)}, lambda _n: None) == exe
    assert find_binary({"HOME": str(tmp_path)}, lambda _n: "/usr/bin/llama-server") == Path(
        "/usr/bin/llama-server"
    )


def test_find_binary_uses_the_build_cache(tmp_path: Path) -> None:
    built = tmp_path / "cache" / "0.3.36-avx2" / "bin" / "llama-server"
    built.parent.mkdir(parents=True)
    built.write_text("")
    env = {"CORRAL_LLAMA_SERVER_CACHE": str(tmp_path / "cache")}
    assert find_binary(env, lambda _n: None) == built


def test_no_binary_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(EngineError) as caught:
        find_binary({"HOME": str(tmp_path)}, lambda _n: None)
    hint = caught.value.hint or ""
    assert "scripts/build_llama_server.sh" in hint
    assert "ghcr.io/ggml-org/llama.cpp:server" in hint
    assert BINARY_ENV in hint


def test_named_binary_that_is_missing(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="not an executable"):
        find_binary({BINARY_ENV: str(tmp_path / "nope")}, lambda _n: None)


def test_parser_ignores_a_bare_carriage_return() -> None:
    """The command itself is the recipe's (see the render tests below); the adapter parses."""
    assert LlamaServerEngine().parser() is not None
    assert not [e for e in LlamaServerLogParser().feed("\r\n") if isinstance(e, Phase)]


def _render(recipe: str, model: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    from corral.config import Deployment
    from corral.recipes.loader import load_recipes
    from corral.recipes.render import ModelLocation, render

    exe = tmp_path / "llama-server"
    exe.write_text("")
    exe.chmod(0o755)
    monkeypatch.setenv(BINARY_ENV, str(exe))
    dep = Deployment(name="m", model=str(model), engine="llama-server", recipe=recipe)
    return render(dep, load_recipes()[recipe], ModelLocation(model, None))


def test_gb10_gpt_oss_recipe_has_the_guides_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shard = tmp_path / "gpt-oss-120b-mxfp4-00001-of-00003.gguf"
    launch = _render("gpt-oss-120b-llama-server-gb10", shard, monkeypatch, tmp_path)
    argv = list(launch.argv)
    assert argv[:3] == [str(tmp_path / "llama-server"), "-m", str(shard)]
    # ggml-org/llama.cpp discussion 15396: --ctx-size 0 --jinja -ub 2048 -b 2048
    assert argv[3:10] == ["--ctx-size", "0", "--jinja", "-ub", "2048", "-b", "2048"]
    assert launch.served_name == "m"


def test_cpu_recipe_caps_each_request_and_waits_passively(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launch = _render("smollm2-135m-llama-server-cpu", tmp_path / "s.gguf", monkeypatch, tmp_path)
    argv = list(launch.argv)
    assert argv[argv.index("--kv-unified-per-slot") + 1] == "4096"
    assert argv[argv.index("--parallel") + 1] == "4"
    assert dict(launch.env)["OMP_WAIT_POLICY"] == "PASSIVE"
    assert argv[argv.index("--log-verbosity") + 1] == "4"
