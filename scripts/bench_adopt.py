"""How fast `corral serve` routes engines it adopts, and sees `corral deploy`/`stop`.

    python scripts/bench_adopt.py [--engines 2]

A fleet of scripted engines (real HTTP servers, tests/support/scripted_engine.py) as
detached processes: the first serve starts them; it is SIGKILLed; a second serve is timed
from its start to routing every engine again (same pids: adopted, not restarted). Then a
deployment is `corral deploy`ed and `corral stop`ped from another process, each timed
from the command's return to the change in /v1/models. Prints the figures; ends every
process it started.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from tests.support.fleet import fleet_config, scripted
from tests.support.vllm import free_port

CORRAL = [sys.executable, "-m", "corral"]


def routable(port: int, names: list[str]) -> Callable[[], bool]:
    def check() -> bool:
        try:
            data = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).json()["data"]
        except httpx.HTTPError:
            return False
        up = {m["id"] for m in data if m["corral"]["routable"]}
        return set(names) <= up

    return check


def wait(check: Callable[[], bool], timeout: float = 120) -> float:
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout:
            raise SystemExit("timed out")
        time.sleep(0.05)
    return time.monotonic() - began


def serve(config: Path, env: dict[str, str], out: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as sink:
        return subprocess.Popen([*CORRAL, "serve", "--config", str(config)], env=env,
                                stdout=sink, stderr=subprocess.STDOUT)  # fmt: skip


def own_seconds(out: Path) -> str:
    """serve's own "ready in X s" (from its start-up after imports to the gateway bound)."""
    line = next((ln for ln in out.read_text().splitlines() if ln.startswith("ready in")), "")
    return line.split(":")[0].removeprefix("ready in ").strip() or "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="corral-adopt-"))
    names = [f"e{i}" for i in range(args.engines)]
    config = fleet_config(tmp, [scripted(n, tmp) for n in names])
    data = config.model_dump(mode="json", exclude_none=True)
    port = free_port()
    data["gateway"] = {"port": port}
    path = tmp / "corral.yaml"
    path.write_text(yaml.safe_dump(data))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path[:2])}
    first = serve(path, env, tmp / "serve-1.out")
    try:
        first_s = wait(routable(port, names))
        print(f"first serve: routing {len(names)} new engines after {first_s:.2f} s")
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = serve(path, env, tmp / "serve-2.out")
        seconds = wait(routable(port, names))
        print(f"second serve (after SIGKILL of the first): routing {len(names)} adopted engines "
              f"{seconds:.2f} s after its process started; serve's own part (after the "
              f"interpreter and imports): {own_seconds(tmp / 'serve-2.out')}")  # fmt: skip
        fourth = scripted("fourth", tmp).model_dump(mode="json", exclude_none=True)
        data["deployments"].append(fourth)
        path.write_text(yaml.safe_dump(data))
        subprocess.run([*CORRAL, "deploy", "fourth", "--config", str(path), "--no-verify"],
                       env=env, check=True, capture_output=True)  # fmt: skip
        print(f"corral deploy returned → routable after {wait(routable(port, ['fourth'])):.2f} s")
        subprocess.run([*CORRAL, "stop", "fourth", "--config", str(path)], env=env, check=True,
                       capture_output=True)  # fmt: skip
        gone = wait(lambda: not routable(port, ["fourth"])())
        print(f"corral stop returned → unroutable after {gone:.2f} s")
    finally:
        for proc in (first, locals().get("second")):
            if isinstance(proc, subprocess.Popen) and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        for name in names:
            subprocess.run([*CORRAL, "stop", name, "--config", str(path)], env=env,
                           capture_output=True, check=False)  # fmt: skip


if __name__ == "__main__":
    main()
