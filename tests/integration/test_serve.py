"""`corral serve` as a real subprocess: real vLLM CPU engine, the gateway, the openai SDK.

One `corral serve` for the module (an engine start takes ~30 s). It runs under the shared
`vllm_lock`, not the `vllm_engine` fixture: it starts its own engine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import psutil
import pytest
import yaml

from tests.support.vllm import SERVED_NAME, free_port

pytestmark = pytest.mark.integration

CORRAL = [sys.executable, "-m", "corral"]


@dataclass
class Served:
    process: subprocess.Popen[str]
    port: int
    home: Path
    out_path: Path
    pids: list[int] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGINT, as Ctrl-C would; SIGKILL (and fail later) only if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def write_config(tmp: Path, model: Path, port: int) -> Path:
    config = {
        "home": str(tmp / "home"),
        "gateway": {"port": port},
        # the default's behaviour: Ctrl-C stops the engine too (supervised, dies with serve)
        "serve": {"stop_engines_on_exit": True},
        "deployments": [
            {
                "name": SERVED_NAME,
                "model": str(model),
                "aliases": ["default"],
                "max_model_len": 4096,
                "capabilities": {"tools": True, "auto_tool_choice": False},
            }
        ],
    }
    path = tmp / "corral.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_serve(config: Path, out_path: Path, port: int) -> Served:
    out = out_path.open("w")
    proc = subprocess.Popen(
        [*CORRAL, "serve", "--config", str(config)],
        stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    out.close()
    return Served(proc, port, config.parent / "home", out_path)


def wait_until_ready(served: Served, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            pytest.fail("corral serve exited during startup:\n" + served.output())
        try:
            if httpx.get(served.base_url + "/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    served.stop()
    pytest.fail("corral serve was not ready in time:\n" + served.output())


@pytest.fixture(scope="module")
def served(
    vllm_lock: None, default_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("serve")
    port = free_port()
    running = start_serve(write_config(tmp, default_model_path, port), tmp / "serve.out", port)
    try:
        wait_until_ready(running)
        parent = psutil.Process(running.process.pid)
        running.pids = [running.process.pid] + [c.pid for c in parent.children(recursive=True)]
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def client(served: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key="unused", max_retries=0)


def test_startup_printed_phases_and_the_endpoint(served: Served) -> None:
    out = served.output()
    for phase in ("launch", "load_weights", "kv_cache", "readiness"):
        assert f"{SERVED_NAME}  {phase}" in out
    assert f"http://127.0.0.1:{served.port}/v1" in out
    assert "curl " in out
    assert len(served.pids) >= 2  # corral and at least the engine


def test_chat_by_alias_and_by_name(client: openai.OpenAI) -> None:
    for model in ("default", SERVED_NAME):
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8
        )
        assert reply.choices[0].message.content
        assert reply.usage is not None
        assert reply.usage.completion_tokens <= 8


def test_streaming_chat(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "Count to five."}],
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].usage is not None


def test_named_tool_choice_with_a_strict_tool_returns_tool_calls(client: openai.OpenAI) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "calculate",
            "description": "Perform a mathematical calculation",
            "strict": True,
            "parameters": {
                "type": "object",
                "properties": {"expression": {"type": "string", "maxLength": 40}},
                "required": ["expression"],
                "additionalProperties": False,
            },
        },
    }
    reply = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "What is 2+2?"}],
        tools=[tool],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "calculate"}},
        max_tokens=150,
    )
    calls = reply.choices[0].message.tool_calls
    assert calls
    call = calls[0]
    assert call.type == "function"
    assert call.function.name == "calculate"
    assert isinstance(json.loads(call.function.arguments)["expression"], str)


def test_unknown_model_is_a_404_naming_the_models(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
    assert SERVED_NAME in str(caught.value)


def test_sigint_stops_everything_and_the_ledger_has_the_run(served: Served) -> None:
    assert served.stop() == 0
    time.sleep(0.5)
    alive = [p for p in served.pids if psutil.pid_exists(p) and not _zombie(p)]
    assert alive == [], f"left behind: {alive}\n{served.output()}"
    status = subprocess.run(
        [*CORRAL, "status", "--json", "--config", str(served.home.parent / "corral.yaml")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    (row,) = json.loads(status.stdout)
    assert row["deployment"] == SERVED_NAME
    assert row["state"] == "stopped"
    assert row["engine_version"]
    assert "kv_cache_tokens" in row["facts"]
    assert [e["kind"] for e in row["events"]][-3:] == ["start", "ready", "stop"]


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_an_engine_that_cannot_load_its_model_stays_listed_with_its_reason(
    vllm_lock: None, tmp_path: Path
) -> None:
    """The fleet does not go down for one engine that fails: serve goes on, /v1/models says
    why (the known-failure hint) and shows the engine's last lines, and retries."""
    # named like the default model so its recipe matches; the folder holds no real model
    bogus = tmp_path / "models--HuggingFaceTB--SmolLM2-135M-Instruct" / "snapshots" / "x"
    bogus.mkdir(parents=True)
    (bogus / "config.json").write_text('{"model_type": "no-such-architecture"}')
    port = free_port()
    run = start_serve(write_config(tmp_path, bogus, port), tmp_path / "serve.out", port)
    try:
        wait_until_ready(run)
        card = httpx.get(run.base_url + "/models", timeout=5).json()["data"][0]
        facts = card["corral"]
        assert not facts["routable"]
        assert "architecture" in facts["reason"]
        assert facts["log_tail"]
        assert run.process.poll() is None  # serve still runs
    finally:
        assert run.stop() == 0
    assert "failed" in run.output()
