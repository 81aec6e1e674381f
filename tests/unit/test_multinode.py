"""Multi-node rendering: one command per rank, checked against vLLM's own argument parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.config import load_config
from corral.errors import ConfigError
from corral.hosts.multinode import ranks, require_spannable

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fleet-two-sparks.yaml"
SERVE = ("vllm", "serve", "/models/gpt-oss-120b", "--port", "8000", "--host", "127.0.0.1")


def test_mp_ranks_follow_vllms_documented_shape() -> None:
    config = load_config(EXAMPLE)
    dep = config.deployment("gpt-oss-120b-tp2")
    head, worker = ranks(SERVE, dep, config)
    assert (head.host, head.role, worker.host, worker.role) == (
        "pegasus",
        "head",
        "stella",
        "worker",
    )
    shared = [
        "--tensor-parallel-size",
        "2",
        "--distributed-executor-backend",
        "mp",
        "--nnodes",
        "2",
    ]
    place = ["--master-addr", "pegasus.home.arpa", "--master-port", "29501"]
    assert list(head.argv) == [*SERVE, *shared, "--node-rank", "0", *place]
    assert list(worker.argv) == [*SERVE, *shared, "--node-rank", "1", *place, "--headless"]
    assert worker.env == {  # no VLLM_HOST_IP: the example names hosts by DNS, not IP
        "NCCL_SOCKET_IFNAME": "enp1s0f1np1",
        "GLOO_SOCKET_IFNAME": "enp1s0f1np1",
    }


def test_every_rank_parses_with_vllms_serve_parser() -> None:
    """The installed vLLM's own `vllm serve` parser and its post-parse validation."""
    cli_args = pytest.importorskip("vllm.entrypoints.launchers.cli_args")
    argparse_utils = pytest.importorskip("vllm.utils.argparse_utils")
    config = load_config(EXAMPLE)
    dep = config.deployment("gpt-oss-120b-tp2")
    for rank in ranks(SERVE, dep, config):
        parser = cli_args.make_arg_parser(argparse_utils.FlexibleArgumentParser())
        args = parser.parse_args(list(rank.argv[2:]))
        cli_args.validate_parsed_serve_args(args)
        assert (args.nnodes, args.node_rank) == (2, rank.index)
        assert args.master_addr == "pegasus.home.arpa"
        assert args.master_port == 29501
        assert args.distributed_executor_backend == "mp"
        assert args.tensor_parallel_size == 2
        assert args.headless is (rank.index > 0)


def test_ray_starts_the_cluster_then_serves_on_the_head() -> None:
    config = load_config(EXAMPLE)
    dep = config.deployment("gpt-oss-120b-tp2").model_copy(update={"distributed_backend": "ray"})
    roles = [(r.host, r.role) for r in ranks(SERVE, dep, config)]
    assert roles == [("pegasus", "ray-head"), ("stella", "ray-worker"), ("pegasus", "head")]
    head, worker, serve = ranks(SERVE, dep, config)
    assert head.argv[:3] == ("ray", "start", "--head")
    assert "pegasus.home.arpa:6379" in worker.argv
    assert serve.argv[-2:] == ("--distributed-executor-backend", "ray")


def test_a_world_that_does_not_split_over_the_nodes_is_refused() -> None:
    config = load_config(EXAMPLE)
    dep = config.deployment("gpt-oss-120b-tp2").model_copy(update={"tensor_parallel_size": 3})
    with pytest.raises(ConfigError, match=r"\(3\) must be a multiple of the number of nodes \(2\)"):
        require_spannable(dep)


def test_nodes_must_be_defined_hosts() -> None:
    from corral.config import validate_config

    data = {
        "hosts": {"a": {"address": "a"}},
        "deployments": [{"name": "x", "model": "m", "nodes": ["a", "b"]}],
    }
    with pytest.raises(ConfigError, match="runs on host 'b'"):
        validate_config(data, "f.yaml")


def test_render_prints_one_command_per_rank(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "CORRAL_HOME": str(tmp_path), "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, "-m", "corral", "render", "gpt-oss-120b-tp2", "--config", str(EXAMPLE)]
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout
    assert "# rank 0 on pegasus (head)" in out
    assert "# rank 1 on stella (worker)" in out
    assert out.count("--nnodes 2") == 2
    assert out.count("--headless") == 1
    assert out.count("-e NCCL_SOCKET_IFNAME=enp1s0f1np1") == 2


def test_the_rendered_ranks_of_the_example_pass_vllms_flag_check() -> None:
    """The example's own recipe, rendered as serve renders it, then split into ranks: every
    rank's argv goes through recipes/flags.py's vLLM check (decision 0012), which fails on
    a flag vLLM's parser does not know (the misspelt one below)."""
    pytest.importorskip("vllm.entrypoints.launchers.cli_args")
    from dataclasses import replace

    from corral.recipes import flags
    from corral.recipes.loader import get_recipe, load_recipes
    from corral.recipes.render import render

    config = load_config(EXAMPLE)
    dep = config.deployment("gpt-oss-120b-tp2")
    recipe = get_recipe(load_recipes(config.recipes_dir), "gpt-oss-120b-gb10")
    launch = render(dep, recipe, flags.SAMPLE_MODEL, runtime="docker")
    checker = flags.vllm_checker()
    found = ranks(launch.argv, dep, config)
    assert [r.role for r in found] == ["head", "worker"]
    for rank in found:
        assert "--nnodes" in rank.argv
        assert flags.check(recipe, rank.argv, checker).problems == [], rank.argv
    misspelt = replace(
        found[1], argv=tuple(a.replace("--headless", "--headles") for a in found[1].argv)
    )
    assert flags.check(recipe, misspelt.argv, checker).problems
