"""The default model deployed through corral on this machine's GPU recipe: deploy, verify,
the story table, a `bench serve` sweep, the report, stop, and no process left behind.

Runs where NVML sees a GPU (tests/gpu/conftest.py skips it elsewhere, as in CI). Set
CORRAL_GPU_OUT to a folder to keep the logbook, the bench JSON and the engine log there
(docs/examples/report-smollm2-h200.md was made that way on an H200).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from corral.engines.vllm import facts_of, parse_log
from corral.ledger.db import open_ledger
from corral.ledger.launches import launch_of, runs_of
from tests.support.corral_cli import corral, default_config_file, kill_leftover
from tests.support.vllm import free_port

pytestmark = pytest.mark.gpu
NAME = "smollm2-135m-instruct"
SWEEP = "1,4,16,64"


@dataclass
class GpuDeployment:
    config: Path
    home: Path
    deploy_output: str
    rendered: str
    story: dict[str, object]
    sweep: dict[str, object]
    report: str
    engine_pid: int
    log_path: Path


def newest_launch(home: Path) -> tuple[int, Path]:
    with open_ledger(home / "ledger.sqlite3") as ledger:
        run = runs_of(ledger, NAME)[-1]
        launch = launch_of(ledger, int(run["id"]))
    assert launch is not None
    assert launch.pid
    return launch.pid, Path(str(run["log_path"]))


def bench_json(config: Path, kind: str, *args: str, timeout: float = 400) -> dict[str, object]:
    done = corral("bench", kind, NAME, "--config", str(config), "--json", "-q", *args,
                  timeout=timeout)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def keep(out: str | None, deployed: GpuDeployment) -> None:
    if not out:
        return
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.md").write_text(deployed.report)
    (folder / "deploy.txt").write_text(deployed.deploy_output + "\n" + deployed.rendered)
    (folder / "story.json").write_text(json.dumps(deployed.story, indent=1))
    (folder / "sweep.json").write_text(json.dumps(deployed.sweep, indent=1))
    shutil.copy(deployed.log_path, folder / "engine.log")


@pytest.fixture(scope="module")
def gpu_deployment(
    default_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GpuDeployment]:
    tmp = tmp_path_factory.mktemp("gpu")
    config, home = default_config_file(tmp, default_model_path, free_port()), tmp / "home"
    done = corral("deploy", NAME, "--config", str(config), "--bench", timeout=900)
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        pid, log_path = newest_launch(home)
        rendered = corral("render", NAME, "--config", str(config)).stdout
        story = bench_json(config, "story", "--repeat", "3")
        sweep = bench_json(config, "serve", "--concurrency", SWEEP, "-n", "64")
        out = tmp / "report.md"
        made = corral("report", NAME, "--config", str(config), "--out", str(out))
        assert made.returncode == 0, made.stderr
        deployed = GpuDeployment(config, home, done.stdout + done.stderr, rendered, story,
                                 sweep, out.read_text(), pid, log_path)  # fmt: skip
        keep(os.environ.get("CORRAL_GPU_OUT"), deployed)
        yield deployed
    finally:
        stopped = corral("stop", NAME, "--config", str(config))
        kill_leftover(home, NAME)
        # test_stop_leaves_no_engine_process may have stopped it already
        assert stopped.returncode == 0 or "no running engine" in stopped.stderr, stopped.stderr


def test_the_gpu_recipe_is_chosen_with_no_cpu_settings(gpu_deployment: GpuDeployment) -> None:
    rendered = gpu_deployment.rendered
    assert "smollm2-135m-cpu" not in gpu_deployment.deploy_output
    for cpu_only in ("--enforce-eager", "VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_NUM_OF_RESERVED"):
        assert cpu_only not in rendered, cpu_only
    assert "--gpu-memory-utilization" in rendered or "--kv-cache-memory-bytes" in rendered


def test_the_engine_ran_compiled_with_cuda_graphs(gpu_deployment: GpuDeployment) -> None:
    facts = facts_of(parse_log(gpu_deployment.log_path.read_text(), year=2026))
    assert float(facts["torch_compile_s"]) > 0
    assert float(facts["graph_capture_s"]) >= 0
    assert float(facts["kv_cache_tokens"]) > 4096
    assert "Enforce eager set" not in gpu_deployment.log_path.read_text()


def test_verify_passed_and_the_report_holds_the_benches(gpu_deployment: GpuDeployment) -> None:
    report = gpu_deployment.report
    assert "| fail |" not in report
    for section in ("Throughput Tests", "Startup Time Breakdown", "Memory Usage and KV Capacity"):
        assert section in report, section
    levels = [int(level["level"]) for level in gpu_deployment.sweep["levels"]]  # type: ignore[index]
    assert levels == [int(c) for c in SWEEP.split(",")]
    rows = gpu_deployment.story["rows"]  # type: ignore[index]
    assert all(row["decode_tok_s"] > 0 for row in rows)


def test_stop_leaves_no_engine_process(gpu_deployment: GpuDeployment) -> None:
    stopped = corral("stop", NAME, "--config", str(gpu_deployment.config))
    assert stopped.returncode == 0, stopped.stderr
    assert not psutil.pid_exists(gpu_deployment.engine_pid) or (
        psutil.Process(gpu_deployment.engine_pid).status() == psutil.STATUS_ZOMBIE
    )
    model = str(gpu_deployment.log_path)
    leftovers = [p.pid for p in psutil.process_iter(["cmdline"])
                 if "vllm.entrypoints" in " ".join(p.info["cmdline"] or [])]  # fmt: skip
    assert leftovers == [], model
