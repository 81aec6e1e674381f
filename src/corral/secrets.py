"""Which deployment environment values are secrets, and their masked form.

A variable whose name says it holds a credential (KEY, TOKEN, SECRET, PASSWORD, PASS,
CREDENTIAL, AUTH) is shown as `***` in the ledger, `corral render`, `status` and logs.
The engine still gets the value, through its environment, never on its command line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASK", "is_secret", "mask_config", "mask_env", "mask_words"]

MASK = "***"
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH", re.IGNORECASE)


def is_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def mask_env(env: Mapping[str, str]) -> dict[str, str]:
    return {k: MASK if is_secret(k) else v for k, v in env.items()}


def mask_config(config: dict[str, Any]) -> dict[str, Any]:
    """A deployment's config as JSON, its secret env values masked."""
    env = config.get("env")
    return {**config, "env": mask_env(env)} if isinstance(env, dict) else config


def mask_words(text: str, values: Iterable[str]) -> str:
    """`text` with every secret value replaced (for log lines and error messages)."""
    for value in values:
        if value:
            text = text.replace(value, MASK)
    return text
