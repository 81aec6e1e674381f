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


def test_limits_expiry_and_rotation_with_an_overlap(home: Path) -> None:
    code, out = run("keys", "create", "--name", "team", "--rpm", "60", "--tpd", "1000",
                    "--expires", "30d", "--json")  # fmt: skip
    assert code == 0
    first = json.loads(out)
    assert first["limits"] == {"requests_per_minute": 60, "tokens_per_day": 1000}
    assert first["expires_at"] is not None
    code, out = run("keys", "rotate", "team", "--overlap", "1h", "--json")
    assert code == 0
    second = json.loads(out)
    assert second["key"] != first["key"]
    assert second["limits"] == first["limits"]  # the successor keeps the limits
    with open_ledger(home / "ledger.sqlite3") as ledger:
        now = KeyStore(ledger)
        assert len(now.active_keys()) == 2  # both work during the overlap
        later = KeyStore(ledger, clock=lambda: first["expires_at"] - 10)  # past the overlap
        (record,) = later.active_keys()
    assert record.limits is not None
    assert record.limits.requests_per_minute == 60
    code, listing = run("keys", "list", "--json")
    assert code == 0
    assert [k["limits"] for k in json.loads(listing)] == [first["limits"]] * 2


def failure(*args: str) -> str:
    """The error a command ends with (the CLI's entry point prints it for users)."""
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code != 0
    return f"{result.exception} {getattr(result.exception, 'hint', '')}"


def test_bad_durations_and_unknown_keys_say_what_to_write(home: Path) -> None:
    assert "12h" in failure("keys", "create", "--name", "x", "--expires", "soon")
    assert "no active key named 'nobody'" in failure("keys", "rotate", "nobody")


def test_usage_lists_what_the_gateway_recorded(home: Path) -> None:
    from corral.gateway.usage import LedgerUsage

    with open_ledger(home / "ledger.sqlite3") as ledger:
        LedgerUsage(ledger).write({(0.0, "ci", "smollm2"): [3, 0, 1, 30, 12]})
        LedgerUsage(ledger).write({(0.0, "ci", "smollm2"): [1, 1, 0, 10, 0]})
    code, out = run("keys", "usage", "--since", "100000d", "--json")
    assert code == 0
    (row,) = json.loads(out)
    assert row == {"key_name": "ci", "model": "smollm2", "requests": 4, "errors": 1,
                   "refused": 1, "prompt_tokens": 40, "completion_tokens": 12}  # fmt: skip
