"""The project stands alone: no doc, packaged data file or code comment points at a file a
user of a fresh clone does not have (the engineers' shared notes, a machine's paths), and
every repository path a doc names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# What a fresh clone lacks: the engineers' notes beside the checkout, and the machines the
# docs were written on.
FORBIDDEN = {
    "the engineers' shared folder": re.compile(r"\.\./shared\b"),
    "a shared note or capture": re.compile(r"(?<!tests/fixtures/)\bshared/(seed|fixtures|\w+\.md)"),
    "the engine notes": re.compile(r"ENGINE-FACTS"),
    "the build machine's work tree": re.compile(r"/work/"),
    "a scratch clone's path": re.compile(r"/tmp/fresh"),
    "the test suite's data home": re.compile(r"\.corral/test-home"),
    "notes the reader cannot see": re.compile(r"project notes", re.IGNORECASE),
}
DATA_SUFFIXES = {".yaml", ".yml", ".sql", ".json", ".jinja", ".md", ".txt", ".toml"}


def _published() -> list[Path]:
    """Docs, the README, the Makefile, example configs, and everything under src/corral."""
    files = [REPO / "README.md", REPO / "Makefile", *sorted((REPO / "docs").rglob("*.md"))]
    files += sorted(p for p in (REPO / "examples").rglob("*") if p.is_file())
    src = REPO / "src" / "corral"
    files += sorted(p for p in src.rglob("*") if p.suffix in DATA_SUFFIXES | {".py"})
    return files


def _hits(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for what, pattern in FORBIDDEN.items():
            if pattern.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {what}: {line.strip()[:100]}")
    return found


def test_no_published_file_points_outside_the_repository() -> None:
    hits = [hit for path in _published() for hit in _hits(path)]
    assert not hits, "\n".join(hits)


def test_the_check_catches_what_it_is_for(tmp_path: Path) -> None:
    """Each pattern finds the references the issue saw, and spares the repo's own copies."""
    seen = [
        "see ../shared/ARCHITECTURE.md",
        "The hand-written logbook (`shared/seed/000_af45524de24d514f.txt`)",
        "# on the CPU build of torch (ENGINE-FACTS.md).",
        "--model /tmp/fresh2-home/models/x",
        "/work/main/.venv/bin/python",
        "see the figures in the project notes.",
    ]
    for line in seen:
        assert any(p.search(line) for p in FORBIDDEN.values()), line
    fine = "the copy in `tests/fixtures/shared/fixtures/logs/vllm/x.log`"
    assert not any(p.search(fine) for p in FORBIDDEN.values())


# A repository path in a doc: `src/...`, `tests/...`, `docs/...`, `scripts/...`, `examples/...`
REPO_PATH = re.compile(r"`((?:src|tests|docs|scripts|examples|deploy)/[\w./-]+)`")


def _exists(ref: str) -> bool:
    """A repository path, or one relative to the package (`deploy/flow.py`); another
    project's source cited by its own path (`src/guidellm/...`) is not ours to check."""
    if "*" in ref or (ref.startswith("src/") and not ref.startswith("src/corral")):
        return True
    return (REPO / ref).exists() or (REPO / "src" / "corral" / ref).exists()


@pytest.mark.parametrize("doc", sorted((REPO / "docs").rglob("*.md")), ids=lambda p: p.name)
def test_every_repository_path_a_doc_names_exists(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    missing = [ref for ref in REPO_PATH.findall(text) if not _exists(ref.rstrip("."))]
    assert not missing, f"{doc.name} names paths the repository does not have: {missing}"
