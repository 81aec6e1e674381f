"""Start the real vLLM CPU engine for tests (one per session; see tests/conftest.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

SERVED_NAME = "smollm2-135m-instruct"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveEngine:
    process: subprocess.Popen[bytes]
    port: int
    served_name: str
    model_path: Path
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM the engine's process group, SIGKILL after 20 s, and reap it."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def engine_env(kv_gib: int = 1) -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": str(kv_gib),
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    }


def start_default_engine(
    model_path: Path,
    workdir: Path,
    timeout: float = 300.0,
    *,
    kv_gib: int = 1,
    max_model_len: int = 4096,
) -> LiveEngine:
    port = free_port()
    log_path = workdir / "vllm.log"
    argv = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_path), "--served-model-name", SERVED_NAME,
        "--host", "127.0.0.1", "--port", str(port), "--max-model-len", str(max_model_len),
        "--enforce-eager", "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=engine_env(kv_gib),
            start_new_session=True,
        )
    engine = LiveEngine(proc, port, SERVED_NAME, model_path, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("vLLM exited during startup:\n" + engine.log_text()[-3000:])
        try:
            if httpx.get(f"{engine.base_url}/health", timeout=2).status_code == 200:
                return engine
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    engine.stop()
    raise RuntimeError("vLLM did not become healthy in time:\n" + engine.log_text()[-3000:])
