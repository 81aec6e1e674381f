"""Decode speed of a deployment started by corral against the same engine started directly.

    python scripts/bench_gpu_direct.py NAME --config corral.yaml --corral story.json

Renders NAME exactly as `corral deploy` would (same recipe, argv and environment), starts
that command by hand (no corral supervision, no gateway), waits for /health, runs
`corral bench story --repeat 3` against its URL, stops it, and prints each story length's
decode tok/s beside the corral-deployed run's (from `corral bench story --json`) and their
ratio. The issue's goal: corral-deployed decode within 10 % of the direct run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from corral.cli.common import config_from, home_of
from corral.hardware.detect import detect_local
from corral.recipes.prepare import prepare


def start(argv: tuple[str, ...], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **env}, start_new_session=True)  # fmt: skip


def wait_health(url: str, proc: subprocess.Popen[bytes], timeout: float = 600) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"the engine exited with {proc.returncode} before /health")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return time.monotonic() - began
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"no /health 200 from {url} in {timeout:.0f} s")


def story(url: str, model: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "corral", "bench", "story", url, "--model", model,
         "--repeat", "3", "--json", "-q"],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def decode_by_words(result: dict[str, Any]) -> dict[int, list[float]]:
    rows: dict[int, list[float]] = {}
    for row in result["rows"]:
        rows.setdefault(int(row["words"]), []).append(float(row["decode_tok_s"]))
    return rows


def table(direct: dict[str, Any], corral: dict[str, Any] | None) -> str:
    lines = ["| story | direct decode tok/s | corral decode tok/s | corral / direct |",
             "| --- | --- | --- | --- |"]  # fmt: skip
    theirs = decode_by_words(corral) if corral else {}
    for words, values in decode_by_words(direct).items():
        mine = sum(values) / len(values)
        other = theirs.get(words)
        mean = sum(other) / len(other) if other else None
        ratio = f"{mean / mine:.3f}" if mean else "-"
        shown = f"{mean:.1f}" if mean else "-"
        lines.append(f"| {words} words | {mine:.1f} | {shown} | {ratio} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--corral", type=Path, help="corral bench story --json of the deployed run")
    parser.add_argument("--log", type=Path, default=Path("direct-engine.log"))
    parser.add_argument("--save", type=Path, help="write the direct story JSON here")
    args = parser.parse_args()
    config = config_from(args.config)
    launch = prepare(config, args.name, home_of(config), detect_local).launch
    proc = start(launch.argv, dict(launch.env), args.log)
    try:
        ready_s = wait_health(launch.base_url, proc)
        direct = story(launch.base_url, launch.served_name)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    if args.save:
        args.save.write_text(json.dumps(direct, indent=1))
    corral = json.loads(args.corral.read_text()) if args.corral else None
    print(f"direct start to /health 200: {ready_s:.1f} s\n{table(direct, corral)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
