"""corral's tools through corral's own gateway (a real GatewayServer on loopback, with keys,
in front of the scripted engine serving the default deployment's name): bench and verify
take the URL with or without /v1, send the key on every request (the model lookup
included), count tokens when the gateway has no /tokenize, and explain a missing key."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from corral.config import ApiKey, Capabilities, GatewaySettings
from corral.fleet import Policy, Replica, StaticFleet
from corral.gateway import GatewayServer
from tests.support.scripted import RunningEngine, scripted_engine

NAME = "smollm2-135m-instruct"  # the default deployment: its model is in the store
KEY = "k-test-0123456789"


@pytest.fixture(scope="module")
def engine() -> Iterator[RunningEngine]:
    with scripted_engine("--ttft", "0.01", "--itl", "0.001", "--tokens", "4", model=NAME) as e:
        yield e


@pytest.fixture
async def gateway(engine: RunningEngine) -> AsyncIterator[GatewayServer]:
    policy = Policy(
        served_name=NAME, aliases=("default",), capabilities=Capabilities(context_length=2048)
    )
    replica = Replica(
        id="s-0", served_name=NAME, base_url=engine.base_url, routable=True, state="ready"
    )
    settings = GatewaySettings(api_keys=[ApiKey(name="t", key=SecretStr(KEY))])
    server = GatewayServer(StaticFleet.of([(policy, replica)]), settings, port=0)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def home(tmp_path: Path, default_model_path: Path, corral_test_home: Path) -> Path:
    """A data home whose store holds the default model (for the store's tokenizer)."""
    (tmp_path / "models").symlink_to(corral_test_home / "models")
    return tmp_path


async def corral(home: Path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "CORRAL_HOME": str(home)}
    env.pop("CORRAL_API_KEY", None)
    env.pop("OPENAI_API_KEY", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "corral", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


SMALL = ("--concurrency", "1", "-n", "2", "--input-len", "16", "--output-len", "4", "--json")


async def test_bench_serve_through_the_keyed_gateway_with_v1_and_no_model(
    gateway: GatewayServer, home: Path
) -> None:
    """Was: /tokenize answered 404; /v1/v1/models; the model lookup sent no key."""
    code, out, err = await corral(home, "bench", "serve", gateway.url + "/v1/", "--api-key", KEY,
                                  *SMALL)  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["target"]["base_url"] == gateway.url
    assert result["target"]["model"] in (NAME, "default")
    level = result["levels"][0]
    assert level["ok"] == 2
    assert level["prompt_tokens"] > 0


async def test_bench_probes_through_the_gateway(gateway: GatewayServer, home: Path) -> None:
    code, out, err = await corral(home, "bench", "probes", gateway.url, "--api-key", KEY,
                                  "--contexts", "32", "--prefix-tokens", "32", "--trials", "1",
                                  "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["prefill"][0]["ttft"] is not None


async def test_a_keyed_gateway_without_a_key_says_a_key_is_needed(
    gateway: GatewayServer, home: Path
) -> None:
    """Was: verify said "the API key is not valid" (it sent a placeholder)."""
    for args in (
        ("verify", gateway.url, "--checks", "chat"),
        ("bench", "serve", gateway.url, *SMALL),
    ):
        code, _, err = await corral(home, *args)
        assert code == 1, err
        assert f"{gateway.url}/v1/models needs an API key" in err
        assert "not valid" not in err
    code, _, err = await corral(
        home, "verify", gateway.url, "--api-key", "wrong", "--checks", "chat"
    )
    assert code == 1
    assert "refused the API key" in err


async def test_verify_through_the_gateway_with_its_key(gateway: GatewayServer, home: Path) -> None:
    code, out, err = await corral(home, "verify", gateway.url + "/v1", "--api-key", KEY,
                                  "--checks", "models,chat,streaming", "--json")  # fmt: skip
    assert code == 0, err + out
    assert [r["status"] for r in json.loads(out)] == ["pass", "pass", "pass"]
