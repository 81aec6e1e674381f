"""Put the stand-in `docker` (tests/support/fake_docker.py) on PATH for a test."""

from __future__ import annotations

import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

FAKE = Path(__file__).with_name("fake_docker.py")


@dataclass
class FakeDocker:
    executable: Path
    state: Path

    def calls(self) -> list[list[str]]:
        """Every argv the stand-in received, in order (without the leading `docker`)."""
        path = self.state / "argv.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


def install_fake_docker(bin_dir: Path, state: Path, log: Path) -> FakeDocker:
    """Write a `docker` wrapper into `bin_dir` that runs the stand-in with `log` to replay."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "docker"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"FAKE_DOCKER_DIR='{state}' FAKE_DOCKER_LOG='{log}' "
        f"exec '{sys.executable}' '{FAKE}' \"$@\"\n"
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return FakeDocker(wrapper, state)


def path_with(bin_dir: Path) -> str:
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
