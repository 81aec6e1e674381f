"""`/tokenize` and `/detokenize` in one shape, whichever engine serves them.

The gateway's shape is vLLM's (read: vllm/entrypoints/serve/tokenize/protocol.py):
`POST /tokenize {"model", "prompt", "add_special_tokens": true, "return_token_strs":
false}` → `{"count", "max_model_len", "tokens": [ids], "token_strs": [..] | null}`, and
`POST /detokenize {"model", "tokens"}` → `{"prompt"}`. llama-server's own (read:
tools/server/README.md; measured here) is `{"content", "add_special", "with_pieces"}` →
`{"tokens": [ids]}` or `[{"id", "piece"}]`, and `{"tokens"}` → `{"content"}`; it answers
vLLM's body with `{"tokens": []}` and a 200, so the gateway translates both ways.
llama-server's /tokenize takes text only: a chat (`messages`) is a 400 naming the field.
llama-server's own body (`content`, `add_special`, `with_pieces`) is accepted too, with its
defaults (verify sends it), and answered in the gateway's shape.

    shape = tokens.for_engine("llama-server", path, context_length)   # None: pass through
    body = shape.request(payload)           # 400s here
    answer = shape.answer(engine_answer)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corral.gateway.translate.chat import field_error
from corral.gateway.translate.modes import engine_apis


def for_engine(engine: str, path: str, context_length: int) -> LlamaTokens | None:
    """The translation for this engine's tokenizer routes; None where it speaks vLLM's."""
    if path not in ("/tokenize", "/detokenize"):
        return None
    apis = engine_apis().get(engine)
    if apis is None or apis.tokenizer != "llama-server":
        return None
    return LlamaTokens(path, context_length)


@dataclass
class LlamaTokens:
    path: str  # /tokenize or /detokenize
    context_length: int
    pieces: bool = False

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        if self.path == "/detokenize":
            return {"tokens": _token_ids(payload.get("tokens"))}
        if payload.get("messages") is not None:
            raise field_error(
                "messages",
                "this deployment's engine (llama-server) tokenizes text only: "
                "send `prompt` (the chat rendered with its template)",
            )
        native = "prompt" not in payload and "content" in payload  # llama-server's own body
        prompt = payload.get("content" if native else "prompt")
        if not isinstance(prompt, str):
            raise field_error("content" if native else "prompt", "must be a string")
        self.pieces = payload.get("with_pieces" if native else "return_token_strs") is True
        special = payload.get("add_special" if native else "add_special_tokens", not native)
        add_special = special is True
        return {"content": prompt, "add_special": add_special, "with_pieces": self.pieces}

    def answer(self, answer: dict[str, Any]) -> dict[str, Any]:
        if self.path == "/detokenize":
            return {"prompt": str(answer.get("content") or "")}
        found = answer.get("tokens") or []
        ids = [int(t["id"]) if isinstance(t, dict) else int(t) for t in found]
        strs = [_piece(t.get("piece")) for t in found if isinstance(t, dict)]
        return {"count": len(ids), "max_model_len": self.context_length, "tokens": ids,
                "token_strs": strs if self.pieces else None}  # fmt: skip


def _token_ids(tokens: Any) -> list[int]:
    if not isinstance(tokens, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) for t in tokens
    ):
        raise field_error("tokens", "must be a list of token ids (integers)")
    return tokens


def _piece(piece: Any) -> str:
    """A token's text; llama-server gives the bytes of a piece that is not valid UTF-8."""
    if isinstance(piece, list):
        return bytes(piece).decode("utf-8", errors="replace")
    return str(piece)
