"""Commands that fit together (issue 20): names, honest exits, keys that explain themselves.

Real processes throughout: the CLI as a subprocess, the ledger on disk, loopback servers
(the scripted engine, or a small aiohttp server answering as a misconfigured one would)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from corral import naming
from corral.cli import access
from corral.config import default_config
from corral.errors import ConfigError, EndpointError
from corral.gateway.auth import Authenticator
from corral.gateway.errors import HttpError
from corral.gateway.keystore import KeyStore
from corral.ledger import gateways
from corral.ledger.db import open_ledger
from corral.paths import ledger_path
from tests.support.scripted import RunningEngine, scripted_engine
from tests.support.vllm import free_port

NAME = "smollm2-135m-instruct"


def corral(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "CORRAL_HOME": str(home), **env}
    environ.pop("CORRAL_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "corral", *args], env=environ, capture_output=True, text=True,
        timeout=180, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def engine() -> Iterator[RunningEngine]:
    with scripted_engine("--ttft", "0.01", "--itl", "0.001", "--tokens", "4", model=NAME) as e:
        yield e


@pytest.fixture
def store_home(tmp_path: Path, default_model_path: Path, corral_test_home: Path) -> Path:
    (tmp_path / "models").symlink_to(corral_test_home / "models")
    return tmp_path


# -- one way to name an endpoint ------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    ["http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/", " http://h:1//v1// "],
)
def test_every_spelling_of_a_url_is_one_base_url(written: str) -> None:
    assert naming.base_url(written) == "http://h:1"


def test_a_name_resolves_to_its_live_gateway_then_its_engine(tmp_path: Path) -> None:
    ledger_file = tmp_path / "ledger.sqlite3"
    config = default_config()
    with pytest.raises(EndpointError, match="is not running"):
        naming.resolve_endpoint(NAME, config, ledger_file)
    with pytest.raises(ConfigError) as typo:
        naming.resolve_endpoint("smollm2-135m-instruc", config, ledger_file)
    assert typo.value.hint == f"did you mean {NAME!r}?"
    with open_ledger(ledger_file) as ledger:
        with ledger.transaction() as conn:
            dep = conn.execute("INSERT INTO deployments (name, created_at) VALUES (?, 0)", (NAME,))
            conn.execute(
                "INSERT INTO runs (deployment_id, started_at, state, runtime, engine, command,"
                " base_url, config_json) VALUES (?, 1, 'ready', 'process', 'vllm', 'x',"
                " 'http://127.0.0.1:9', '{}')",
                (dep.lastrowid,),
            )
        assert naming.resolve_endpoint(NAME, config, ledger_file).via == "engine"
        row = gateways.opened(ledger, "http://127.0.0.1:8000", [NAME])
        found = naming.resolve_endpoint(NAME, config, ledger_file)
        assert (found.base_url, found.via) == ("http://127.0.0.1:8000", "gateway")
        gateways.closed(ledger, row)
        dead = gateways.opened(ledger, "http://127.0.0.1:8001", [NAME], pid=_dead_pid())
        assert dead
        assert naming.resolve_endpoint(NAME, config, ledger_file).via == "engine"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_verify_name_that_never_connected_names_the_url_and_records_nothing(
    tmp_path: Path,
) -> None:
    """Was: `APIConnectionError: Connection error.`, no URL, and a failed run recorded."""
    port = free_port()
    with open_ledger(ledger_path(tmp_path)) as ledger:
        gateways.opened(ledger, f"http://127.0.0.1:{port}", [NAME])  # this process: alive
    done = corral(tmp_path, "verify", NAME, "--checks", "chat")
    assert done.returncode == 1
    assert f"cannot reach http://127.0.0.1:{port}/v1/models" in done.stderr
    assert "Traceback" not in done.stderr
    with open_ledger(ledger_path(tmp_path)) as ledger:
        assert ledger.conn.execute("SELECT COUNT(*) FROM verify_runs").fetchone()[0] == 0


def test_verify_name_resolves_through_the_ledger_like_bench(
    engine: RunningEngine, tmp_path: Path
) -> None:
    """Was: `bench NAME` resolved the live run, `verify NAME` did not."""
    with open_ledger(ledger_path(tmp_path)) as ledger:
        gateways.opened(ledger, engine.base_url, [NAME])
    done = corral(tmp_path, "verify", NAME, "--checks", "models,chat")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "recorded as verify run" in done.stderr
    with open_ledger(ledger_path(tmp_path)) as ledger:
        row = ledger.conn.execute("SELECT base_url FROM verify_runs").fetchone()
    assert row["base_url"] == engine.base_url


# -- honest exits -----------------------------------------------------------------------------


@pytest.fixture
def html_404_server() -> Iterator[str]:
    """Lists a model, then answers every generation with an HTML 404 page."""
    port = free_port()
    code = (
        "from aiohttp import web\n"
        "async def models(r): return web.json_response({'data': [{'id': 'm'}]})\n"
        "async def nope(r): return web.Response(status=404, text='<html><h1>Not Found</h1>"
        "</html>', content_type='text/html')\n"
        "app = web.Application(); app.router.add_get('/v1/models', models)\n"
        "app.router.add_route('*', '/{tail:.*}', nope)\n"
        f"web.run_app(app, host='127.0.0.1', port={port}, print=None)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        _wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _wait_port(port: int) -> None:
    for _ in range(200):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("server did not start")


def test_a_bench_whose_requests_all_failed_exits_1_with_the_status_line(
    html_404_server: str, tmp_path: Path
) -> None:
    """Was: three rows of HTTP 404 (an HTML page) and exit 0."""
    done = corral(tmp_path, "bench", "story", html_404_server + "/v1", "--words", "10,20",
                  "--max-tokens", "4", "-q")  # fmt: skip
    assert done.returncode == 1
    assert "every request failed (HTTP 404 Not Found)" in done.stderr
    assert "<html" not in done.stdout + done.stderr


def _result(input_len: int) -> dict[str, Any]:
    dist = {"p50": 0.1, "p99": 0.2}
    level = {"label": "c=1", "ok": 4, "requests": 4, "output_tok_s": 100.0, "req_s": 1.0,
             "ttft": dist, "tpot": dist, "e2e": dist}  # fmt: skip
    settings = {"input_len": input_len, "output_len": 32, "ignore_eos": True,
                "temperature": None, "num_requests": 4}  # fmt: skip
    return {"kind": "serve", "settings": settings, "levels": [level],
            "target": {"api": "completions"}}  # fmt: skip


def test_compare_refuses_different_workloads_unless_told(tmp_path: Path) -> None:
    """Was: 128/32 vs 64/16 tokens compared as "+121.6 % req/s", no warning."""
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_result(128)))
    b.write_text(json.dumps(_result(64)))
    refused = corral(tmp_path, "bench", "compare", str(a), str(b))
    assert refused.returncode == 1
    assert "different workloads (input_len: 128 vs 64)" in refused.stderr
    allowed = corral(tmp_path, "bench", "compare", str(a), str(b), "--allow-different-workloads")
    assert allowed.returncode == 0, allowed.stderr
    assert "WARNING: different workloads" in allowed.stderr
    same = corral(tmp_path, "bench", "compare", str(a), str(a))
    assert same.returncode == 0
    assert "WARNING" not in same.stderr


# -- one way to name a model ------------------------------------------------------------------


def test_plan_and_models_verify_take_store_names_and_the_short_name(store_home: Path) -> None:
    """Was: only `pull` knew `smollm2`; plan refused store names."""
    for name in ("smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct"):
        done = corral(store_home, "plan", name, "--hardware", "cpu", "--kv-cache-memory", "1",
                      "--json")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["kv_cache_tokens"] > 0
    checked = corral(store_home, "models", "verify", "smollm2", "--json")
    assert checked.returncode == 0, checked.stderr


def test_a_misspelt_model_gets_did_you_mean_before_any_recipe(store_home: Path) -> None:
    """Was: render/deploy said "no recipe"; plan said "neither a folder nor built-in"."""
    typo = "HuggingFaceTB/SmolLM2-135M-Instruc"
    planned = corral(store_home, "plan", typo, "--hardware", "cpu")
    assert planned.returncode == 1
    assert "did you mean 'HuggingFaceTB/SmolLM2-135M-Instruct'?" in planned.stderr
    config = store_home / "corral.yaml"
    config.write_text(yaml.safe_dump({"deployments": [{"name": "x", "model": typo}]}))
    rendered = corral(store_home, "render", "x", "--config", str(config))
    assert rendered.returncode != 0
    assert "did you mean 'HuggingFaceTB/SmolLM2-135M-Instruct'?" in rendered.stderr
    assert "no recipe" not in rendered.stderr
    short = corral(store_home, "models", "verify", "smolm2")
    assert "did you mean 'smollm2'?" in short.stderr


# -- keys that explain themselves -------------------------------------------------------------


def test_the_banner_curl_line_carries_a_placeholder_when_keys_are_on() -> None:
    """Was: no auth header when keys were on (the printed curl got a 401)."""
    line = access.curl_line("http://127.0.0.1:8000", "default", keys_on=True)
    assert '-H "Authorization: Bearer $CORRAL_API_KEY"' in line
    assert "Authorization" not in access.curl_line("http://x", "default", keys_on=False)


def test_revoking_every_key_is_locked_everywhere_and_listed_with_all(tmp_path: Path) -> None:
    """Was: `keys list` showed an empty table and nothing said why the gateway answered 401."""
    created = corral(tmp_path, "keys", "create", "--name", "ci", "--json")
    key = json.loads(created.stdout)["key"]
    assert corral(tmp_path, "keys", "revoke", "ci").returncode == 0
    listed = corral(tmp_path, "keys", "list")
    assert "locked: every key revoked" in listed.stderr
    shown = corral(tmp_path, "keys", "list", "--all")
    assert "ci" in shown.stdout
    assert "UTC" in shown.stdout  # the revoked column is filled
    status = corral(tmp_path, "status")
    assert "locked: every key revoked" in status.stdout
    with open_ledger(ledger_path(tmp_path)) as ledger:
        # a gateway started after the revocation (a restart) is locked, not open
        auth = Authenticator([], KeyStore(ledger), clock=time.monotonic)
        with pytest.raises(HttpError) as refused:
            auth.authenticate({"Authorization": f"Bearer {key}"})
    assert refused.value.status == 401
    assert "locked: every key revoked" in str(refused.value.message)


def test_status_shows_the_gateway_url(tmp_path: Path) -> None:
    """Was: `status` showed the engine's URL only."""
    with open_ledger(ledger_path(tmp_path)) as ledger:
        gateways.opened(ledger, "http://127.0.0.1:8123", [NAME])
    done = corral(tmp_path, "status")
    assert "gateway http://127.0.0.1:8123/v1" in done.stdout


def test_serve_beyond_loopback_without_keys_refuses_before_starting(tmp_path: Path) -> None:
    """Was: printed "starting ..." before refusing."""
    done = corral(tmp_path, "serve", "--host", "0.0.0.0", "--port", str(free_port()))
    assert done.returncode == 2
    assert "refusing to listen on 0.0.0.0 without API keys" in done.stderr
    assert "starting" not in done.stderr


def test_the_serve_banner_shows_the_key_placeholder_never_a_key() -> None:
    from rich.console import Console

    from corral.cli.serve import _print_ready

    console = Console(record=True, width=400)
    _print_ready(console, default_config(), "http://127.0.0.1:8000", 1.0, "keys")
    text = console.export_text()
    assert "Authorization: Bearer $CORRAL_API_KEY" in text
    assert "export CORRAL_API_KEY" in text
    console = Console(record=True, width=400)
    _print_ready(console, default_config(), "http://127.0.0.1:8000", 1.0, "open")
    assert "Authorization" not in console.export_text()
