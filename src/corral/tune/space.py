"""Search spaces: which engine settings to try, as data (spaces.yaml, or the user's --space).

A space file is YAML with `axes` (each `{flag | setting, kind?, values}`; one candidate per
value, the other settings left as they are) and/or `candidates` (explicit combinations,
`{name?, settings: {axis: value}}`). `current` (the deployment as configured) is always
candidate one, the baseline every margin is measured against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from corral.config import Deployment
from corral.errors import ConfigError

SPACES = Path(__file__).with_name("spaces.yaml")


@dataclass(frozen=True)
class Axis:
    name: str
    flag: str | None = None
    setting: str | None = None
    kind: str = "value"

    def args(self, value: Any) -> list[str]:
        if self.flag is None:
            return []
        if self.kind == "switch":
            return [self.flag if value else "--no-" + self.flag.removeprefix("--")]
        return [self.flag, str(value)]


@dataclass(frozen=True)
class Candidate:
    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    fields: tuple[tuple[str, Any], ...] = ()

    def apply(self, dep: Deployment) -> Deployment:
        """The deployment with this candidate's flags appended (they win) and fields set."""
        update: dict[str, Any] = {"args": [*dep.args, *self.args], **dict(self.fields)}
        return dep.model_copy(update=update)


CURRENT = Candidate("current")
AGAIN = Candidate("current-again")
"""`current` measured once more after every other candidate (tune/search.py)."""


def _axes(engine_space: dict[str, Any]) -> dict[str, Axis]:
    merged = {**engine_space.get("known", {}), **engine_space.get("axes", {})}
    return {name: Axis(name, a.get("flag"), a.get("setting"), a.get("kind", "value"))
            for name, a in merged.items()}  # fmt: skip


def candidate(name: str, settings: dict[str, Any], axes: dict[str, Axis]) -> Candidate:
    args: list[str] = []
    fields: list[tuple[str, Any]] = []
    for key, value in settings.items():
        if key not in axes:
            raise ConfigError(f"space: unknown setting {key!r}", hint=f"known: {sorted(axes)}")
        axis = axes[key]
        args += axis.args(value)
        if axis.setting:
            fields.append((axis.setting, value))
    return Candidate(name, dict(settings), tuple(args), tuple(fields))


def _label(settings: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in settings.items())


def candidates_of(space: dict[str, Any], engine: str) -> list[Candidate]:
    """`current` first, then one per axis value, then the explicit combinations."""
    defaults = yaml.safe_load(SPACES.read_text("utf-8"))
    if engine not in defaults:
        raise ConfigError(f"no tuning space is known for engine {engine!r}")
    known = {**defaults[engine].get("known", {}), **defaults[engine].get("axes", {})}
    given = {k: {**known.get(k, {}), **v} for k, v in space.get("axes", {}).items()}
    axes = _axes({"axes": {**known, **given}})
    found = [CURRENT]
    for name, axis_data in space.get("axes", {}).items():
        for value in axis_data.get("values", []):
            found.append(candidate(_label({name: value}), {name: value}, axes))
    for item in space.get("candidates", []):
        settings = dict(item.get("settings", {}))
        found.append(candidate(item.get("name") or _label(settings), settings, axes))
    return found


def load_space(path: Path | None, engine: str) -> list[Candidate]:
    """The user's space file, else the engine's default one."""
    if path is None:
        data = yaml.safe_load(SPACES.read_text("utf-8")).get(engine, {})
    else:
        try:
            data = yaml.safe_load(path.read_text("utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the space {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"the space {path} must be a mapping with axes/candidates")
    return candidates_of(data, engine)
