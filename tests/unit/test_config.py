from __future__ import annotations

from pathlib import Path

import pytest

from corral.config import DEFAULT_MODEL_NAME, load_config
from corral.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_default_config_serves_smollm2_with_alias_default() -> None:
    cfg = load_config(None, env={})
    dep = cfg.deployment(DEFAULT_MODEL_NAME)
    assert dep.aliases == ["default"]
    assert dep.capabilities.auto_tool_choice is False
    assert cfg.gateway.host == "127.0.0.1"
    assert cfg.gateway.port == 8000


def test_example_default_config_loads_and_matches_builtin() -> None:
    cfg = load_config(EXAMPLES / "corral.yaml", env={})
    assert cfg.model_dump() == load_config(None, env={}).model_dump()


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    bad = tmp_path / "corral.yaml"
    bad.write_text("deployments:\n  - name: x\n    model: m\n    max_model_lenn: 5\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad, env={})
    assert "deployments['x'].max_model_lenn" in info.value.message
    assert str(bad) in info.value.message


def test_wrong_type_names_key(tmp_path: Path) -> None:
    bad = tmp_path / "corral.yaml"
    bad.write_text("gateway:\n  port: lots\n")
    with pytest.raises(ConfigError, match=r"gateway\.port"):
        load_config(bad, env={})


def test_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    path = tmp_path / "corral.yaml"
    path.write_text("gateway:\n  port: 9000\n")
    assert load_config(path, env={}).gateway.port == 9000
    assert load_config(path, env={"CORRAL_GATEWAY_PORT": "9100"}).gateway.port == 9100
    cfg = load_config(
        path, env={"CORRAL_GATEWAY_PORT": "9100"}, overrides={"gateway": {"port": 9200}}
    )
    assert cfg.gateway.port == 9200


def test_api_key_is_secret_in_repr(tmp_path: Path) -> None:
    path = tmp_path / "corral.yaml"
    path.write_text("gateway:\n  api_keys:\n    - name: ci\n      key: sk-very-secret\n")
    cfg = load_config(path, env={})
    assert "sk-very-secret" not in repr(cfg)
    assert "sk-very-secret" not in str(cfg.model_dump())


def test_not_yaml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "corral.yaml"
    path.write_text("gateway: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path, env={})
