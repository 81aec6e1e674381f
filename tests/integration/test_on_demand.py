"""examples/on-demand.yaml under a real `corral serve`: two on-demand deployments of the
default model on one host whose budget holds one; requests alternate between them.

Real vLLM CPU engines, one at a time by construction (the budget guarantees it), under
the shared `vllm_lock`. A sampler reads the engines' memory (RSS of every process under
serve) every 0.2 s; it must never see more than the budget, nor two engines at once.
Prints the cold-start and swap seconds and the memory high-water mark.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import psutil
import pytest
import yaml

from tests.integration.test_serve import Served, start_serve, wait_until_ready
from tests.support.vllm import free_port

# The session may first wait for the shared vLLM lock; then four starts on 2 shared cores.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

EXAMPLE = Path(__file__).parents[2] / "examples" / "on-demand.yaml"
GIB = 1024**3


@dataclass
class Sampler:
    """RSS of the processes under serve (not serve itself), and how many engines run."""

    root: int
    peak_gib: float = 0.0
    most_engines: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            rss, engines = self._sample()
            self.peak_gib = max(self.peak_gib, rss / GIB)
            self.most_engines = max(self.most_engines, engines)
            time.sleep(0.2)

    def _sample(self) -> tuple[int, int]:
        try:
            children = psutil.Process(self.root).children(recursive=True)
        except psutil.NoSuchProcess:
            return 0, 0
        rss, engines = 0, 0
        for child in children:
            try:
                rss += child.memory_info().rss
                engines += "vllm.entrypoints" in " ".join(child.cmdline())
            except psutil.NoSuchProcess:
                continue
        return rss, engines


def write_config(tmp: Path, model: Path, port: int) -> Path:
    config = yaml.safe_load(EXAMPLE.read_text())
    config["home"] = str(tmp / "home")
    config["gateway"]["port"] = port
    for dep in config["deployments"]:
        dep["model"] = str(model)
        dep["port"] = free_port()
    path = tmp / "corral.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def served(
    vllm_lock: None, default_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("ondemand")
    port = free_port()
    running = start_serve(write_config(tmp, default_model_path, port), tmp / "serve.out", port)
    try:
        wait_until_ready(running, timeout=60)
        yield running
    finally:
        running.stop()


def models(served: Served) -> dict[str, dict[str, object]]:
    cards = httpx.get(served.base_url + "/models", timeout=5).json()["data"]
    return {card["id"]: card["corral"] for card in cards}


def ask(client: openai.OpenAI, model: str) -> float:
    began = time.monotonic()
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hi."}], max_tokens=4
    )
    assert reply.choices[0].message.content is not None
    seconds = time.monotonic() - began
    print(f"{model}: answered after {seconds:.1f} s", flush=True)
    return seconds


def test_alternating_requests_swap_within_the_budget(served: Served) -> None:
    budget = float(yaml.safe_load(EXAMPLE.read_text())["hosts"]["local"]["memory_budget_gib"])
    before = models(served)
    assert before["smol-short"]["state"] == "stopped"
    assert before["smol-long"]["state"] == "stopped"
    sampler = Sampler(served.process.pid)
    thread = threading.Thread(target=sampler.run, daemon=True)
    thread.start()
    client = openai.OpenAI(base_url=served.base_url, api_key="unused", max_retries=0,
                           timeout=300)  # fmt: skip
    try:
        cold = ask(client, "smol-short")
        warm = ask(client, "smol-short")
        swaps = [ask(client, "smol-long"), ask(client, "smol-short")]
    finally:
        sampler.stop.set()
        thread.join()
    after = models(served)
    print(served.output()[-3000:])
    print(f"\ncold start through the gateway {cold:.1f} s; warm request {warm:.2f} s; "
          f"swaps {', '.join(f'{s:.1f}' for s in swaps)} s; memory high-water "
          f"{sampler.peak_gib:.2f} GiB of a {budget:.0f} GiB budget")  # fmt: skip
    assert after["smol-short"]["state"] == "running"
    assert after["smol-long"]["state"] == "evicted"
    assert sampler.most_engines == 1
    assert 0 < sampler.peak_gib <= budget
    evictions = ledger_evictions(served.home)
    assert [name for name, _ in evictions] == ["smol-short", "smol-long"]
    assert all("evicted to make room for" in detail for _, detail in evictions)


def ledger_evictions(home: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(home / "ledger.sqlite3") as conn:
        rows = conn.execute(
            "SELECT d.name, e.detail FROM events e JOIN deployments d ON d.id = e.deployment_id "
            "WHERE e.kind = 'stop' ORDER BY e.id"
        ).fetchall()
    return [(str(name), str(detail)) for name, detail in rows]
