"""`corral keys create|list|revoke` against a ledger in a temporary CORRAL_HOME."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corral.cli import app
from corral.gateway.keystore import KeyStore
from corral.ledger.db import open_ledger


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path))
    return tmp_path


def test_create_shows_the_key_once_and_stores_its_hash(home: Path) -> None:
    code, out = run("keys", "create", "--name", "ci", "--models", "default,architect", "--json")
    assert code == 0
    created = json.loads(out)
    assert created["key"].startswith("crl-")
    assert created["models"] == ["default", "architect"]
    with open_ledger(home / "ledger.sqlite3") as ledger:
        records = KeyStore(ledger).active_keys()
    assert [r.name for r in records] == ["ci"]
    assert created["key"] not in (home / "ledger.sqlite3").read_bytes().decode("latin-1")
    code, listing = run("keys", "list", "--json")
    assert code == 0
    assert created["key"] not in listing
    assert json.loads(listing)[0]["prefix"] == created["key"][:8]


def test_revoke_and_errors_name_what_exists(home: Path) -> None:
    assert run("keys", "create", "--name", "ci")[0] == 0
    code, _ = run("keys", "create", "--name", "ci")
    assert code != 0
    assert run("keys", "revoke", "ci")[0] == 0
    assert json.loads(run("keys", "list", "--json")[1]) == []
    assert len(json.loads(run("keys", "list", "--revoked", "--json")[1])) == 1
    code, _ = run("keys", "revoke", "ci")
    assert code != 0
