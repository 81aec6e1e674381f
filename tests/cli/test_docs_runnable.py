"""Every block of `docs/*.md` (and the README) marked runnable runs as written against a
real gateway in front of the real vLLM CPU engine, as after `make serve`.

The marker is the fence's info string: a block opened with ```` ```bash runnable ```` is
one bash script, run with `set -euo pipefail` in a scratch folder linking `examples/` and
`docs/`; it passes when it exits 0 (a block checks outputs with `grep`). The docs address
the gateway as `http://127.0.0.1:8000`, `make serve`'s address; the test's gateway listens
on a free port and every `127.0.0.1:8000` in a block is rewritten to it (a developer's own
`make serve` may hold 8000). Blocks that create keys run last: a key turns auth on for
what follows. The data home is a fresh folder whose model store is the test session's
(SmolLM2 already converted), and its ledger records the gateway as `corral serve` does, so
deployment names resolve. Blocks that need a GPU, another machine, or a second engine are
left unmarked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.vllm import LiveEngine, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```bash runnable\s*\n(.*?)^```", re.MULTILINE | re.DOTALL)
DOCS_ADDRESS = "127.0.0.1:8000"


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    script: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


def runnable_blocks() -> list[Block]:
    """In page order, except that blocks creating keys come last: a key turns auth on (and
    revoking it locks the gateway) for every block after it."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    blocks = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            blocks.append(Block(str(page.relative_to(REPO)), line, match.group(1)))
    return sorted(blocks, key=lambda b: "corral keys create" in b.script)


def test_the_docs_have_runnable_blocks_on_every_task_page() -> None:
    pages = {b.page for b in runnable_blocks()}
    for page in (
        "README.md",
        "docs/verify.md",
        "docs/bench.md",
        "docs/plan.md",
        "docs/models.md",
        "docs/serve.md",
        "docs/gateway.md",
    ):
        assert page in pages, f"{page} has no runnable block"  # fmt: skip


@dataclass(frozen=True)
class DocEnv:
    port: int
    home: Path


@pytest.fixture(scope="module")
def doc_env(
    vllm_engine: LiveEngine, corral_test_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DocEnv]:
    home = tmp_path_factory.mktemp("doc-home")
    (home / "models").symlink_to(corral_test_home / "models")
    port = free_port()
    env = {**os.environ, "CORRAL_HOME": str(home)}
    gateway = subprocess.Popen(
        [sys.executable, "-m", "tests.support.doc_gateway", vllm_engine.base_url, str(port),
         str(home)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert gateway.stdout is not None
        assert gateway.stdout.readline().startswith("ready"), "the docs' gateway did not start"
        yield DocEnv(port, home)
    finally:
        gateway.terminate()
        gateway.wait(10)
        if gateway.stdout is not None:
            gateway.stdout.close()


@pytest.mark.parametrize("block", runnable_blocks(), ids=str)
def test_a_runnable_block_runs_as_written(block: Block, doc_env: DocEnv, tmp_path: Path) -> None:
    script = block.script.replace(DOCS_ADDRESS, f"127.0.0.1:{doc_env.port}")
    env = {**os.environ, "CORRAL_HOME": str(doc_env.home), "PATH": _path_with_corral()}
    env.pop("CORRAL_API_KEY", None)
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=_workdir(tmp_path), env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (
        f"{block} exited {done.returncode}\n--- script\n{script}\n--- stdout\n"
        f"{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    )


def _workdir(tmp_path: Path) -> Path:
    """A scratch copy point: the repository's files by link, outputs land in tmp_path."""
    for name in ("examples", "docs"):
        (tmp_path / name).symlink_to(REPO / name)
    return tmp_path


def _path_with_corral() -> str:
    """PATH with this interpreter's `corral` first (the venv's console script)."""
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
