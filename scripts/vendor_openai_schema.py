"""Vendor the pieces of OpenAI's published OpenAPI document that the gateway's answers obey.

    git -C <openai-openapi checkout> show HEAD:openapi.json > openapi.json
    .venv/bin/python scripts/vendor_openai_schema.py openapi.json <commit>

Writes `src/corral/gateway/data/openai_schemas.json`: the response schemas the gateway
returns (chat completion, chat completion chunk, completion, error) with every component
they reference, as plain JSON Schema (draft 2020-12). The document mixes OpenAPI 3.0's
`nullable: true` into its 3.1 schemas; JSON Schema ignores that keyword, so it is turned
into an explicit `null` alternative here (otherwise a `null` the API itself sends, such as
a stream choice's `logprobs`, would fail validation).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOTS = (
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "CreateCompletionResponse",
    "ErrorResponse",
)
SOURCE = "https://github.com/openai/openai-openapi (openapi.json)"
OUT = Path(__file__).resolve().parent.parent / "src/corral/gateway/data/openai_schemas.json"


def refs(node: Any) -> set[str]:
    """Component names referenced anywhere under `node`."""
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            found |= refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= refs(value)
    return found


def closure(schemas: dict[str, Any]) -> dict[str, Any]:
    todo, picked = list(ROOTS), {}
    while todo:
        name = todo.pop()
        if name not in picked:
            picked[name] = schemas[name]
            todo.extend(refs(schemas[name]))
    return picked


def plain(node: Any) -> Any:
    """Rewrite refs to `#/$defs/...` and `nullable: true` to an explicit null alternative."""
    if isinstance(node, list):
        return [plain(value) for value in node]
    if not isinstance(node, dict):
        return node
    out = {k: plain(v) for k, v in node.items() if k != "nullable"}
    if isinstance(out.get("$ref"), str):
        out["$ref"] = "#/$defs/" + out["$ref"].rsplit("/", 1)[1]
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def main(document: str, commit: str) -> None:
    schemas = json.loads(Path(document).read_text())["components"]["schemas"]
    vendored = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": f"Vendored from {SOURCE} at commit {commit} by scripts/vendor_openai_schema.py",
        "roots": list(ROOTS),
        "$defs": plain(closure(schemas)),
    }
    OUT.write_text(json.dumps(vendored, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT} ({len(vendored['$defs'])} schemas)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
