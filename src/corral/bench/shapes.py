"""Recorded request shapes: what the gateway saw of each request, never its content.

One JSON object a line (`gateway.record_shapes: PATH` in corral.yaml turns it on):

    {"t": 1764639600.125, "model": "smollm2", "path": "/v1/chat/completions",
     "prompt": 212, "completion": 48, "status": 200, "stream": true}

`t` is the arrival time (epoch seconds), `prompt`/`completion` the token counts the engine
reported (or the gateway counted). No text, no key, no client address: a shape log can be
handed to someone tuning the deployment without handing over the traffic. `corral tune
--workload replay:PATH` replays it (corral.tune.workload): the same lengths, at the same
gaps, then at the gaps divided by 2, 4, … until the SLO breaks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from corral.errors import BenchError

log = logging.getLogger("corral.gateway")


@dataclass(frozen=True)
class RequestShape:
    t: float
    model: str
    path: str
    prompt: int
    completion: int
    status: int
    stream: bool


class ShapeLog:
    """Appends one line per finished request; a write error is logged once, never raised
    (recording must not fail a request)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._failed = False

    def add(self, shape: RequestShape) -> None:
        if self._failed:
            return
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(json.dumps(asdict(shape)) + "\n")
            self._file.flush()
        except OSError as exc:
            self._failed = True
            log.warning(
                "cannot record request shapes to %s (%s): recording stopped", self.path, exc
            )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_shapes(path: Path, model: str | None = None) -> list[RequestShape]:
    """The successful requests of a shape log (of `model` when given), oldest first."""
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as exc:
        raise BenchError(f"cannot read the shape log {path}: {exc.strerror}") from None
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            shape = RequestShape(**json.loads(line))
        except (ValueError, TypeError) as exc:
            raise BenchError(f"{path}:{number}: not a request shape ({exc})") from None
        if shape.status == 200 and shape.prompt > 0 and (model is None or shape.model == model):
            out.append(shape)
    if not out:
        raise BenchError(f"{path} holds no successful request" + (f" of {model}" if model else ""))
    return sorted(out, key=lambda s: s.t)
