"""The logbook as Markdown, section by section, in the seed's structure.

Each section is a function of the `Logbook` (ledger data only) returning its lines, so a
section can be tested alone and every figure can be traced to a ledger row.
"""

from __future__ import annotations

import json
import time
from typing import Any

from corral.report.logbook import FactValue, Logbook, RunRecord

PHASE_LABELS = {
    "launch": "Launch (process or container start) to first engine log line",
    "config": "Configuration and model architecture resolution",
    "engine_init": "Engine initialization",
    "load_weights": "Model loading",
    "compile": "torch.compile",
    "kv_cache": "KV cache profiling and allocation",
    "warmup": "Warm-up, autotuning and graph capture",
    "api_server": "API server startup and readiness check",
}
MEMORY_ROWS = (
    ("model_load_gib", "Model weights in memory"),
    ("kv_cache_memory_gib", "KV cache memory available"),
    ("kv_cache_tokens", "KV cache capacity"),
    ("max_concurrency", "Maximum concurrency at full request length"),
    ("max_num_batched_tokens", "Chunked prefill: max tokens per batch"),
    ("graph_capture_gib", "CUDA graph memory"),
)
TOOL = {
    "type": "function",
    "function": {
        "name": "calculate",
        "description": "Perform a mathematical calculation",
        "parameters": {
            "type": "object",
            "properties": {
                "expression": {"type": "string", "description": "The expression", "maxLength": 40}
            },
            "required": ["expression"],
        },
        "strict": True,
    },
}


def when(epoch: float | None) -> str:
    if epoch is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(epoch)))


def shown(fact: FactValue | None) -> str:
    """A fact as written: thousands separators for whole numbers, its unit."""
    if fact is None:
        return "—"
    number = fact.number()
    if number is not None and number.is_integer() and abs(number) >= 1000:
        text = f"{int(number):,}"
    else:
        text = fact.value
    return f"{text} {fact.unit}".strip()


def render(book: Logbook, *, ledger_path: str = "") -> str:
    sections = (
        title,
        overview,
        hardware,
        model_specs,
        deployment_details,
        performance,
        tuning,
        memory,
        startup,
        api_access,
        features,
        known_issues,
        related_systems,
        history,
    )
    lines: list[str] = []
    for section in sections:
        lines += section(book)
        lines.append("")
    lines.append(
        f"_Written by `corral report` from the ledger {ledger_path} at "
        f"{when(time.time())}; every figure above is a ledger record._"
    )
    return "\n".join(lines) + "\n"


def title(book: Logbook) -> list[str]:
    return [f"# {book.deployment} Deployment"]


def _engine_line(run: RunRecord) -> str:
    version = run.row["engine_version"] or "version not logged"
    return f"{run.row['engine']} {version}"


def overview(book: Logbook) -> list[str]:
    run, cfg = book.current, book.current.config
    recipe = run.launch.recipe if run.launch else None
    roles = ", ".join(cfg.get("roles") or []) or "none"
    lines = ["## Overview", ""]
    lines.append(
        f"`{cfg['model']}` served as `{run.launch.served_name if run.launch else cfg['name']}`"
        f" by {_engine_line(run)} ({run.row['runtime']}) on host `{cfg.get('host', 'local')}`"
        f" ({run.launch.hardware_kind if run.launch else '?'} hardware), with recipe "
        f"`{recipe}`. Roles: {roles}."
    )
    state = run.row["state"]
    ready = f", ready after {run.startup_s:.1f} s" if run.startup_s is not None else ""
    lines.append(f"Run {run.id}: {state}; started {when(run.row['started_at'])}{ready}.")
    return lines


def hardware(book: Logbook) -> list[str]:
    launch = book.current.launch
    lines = ["## Hardware", ""]
    info = launch.hardware if launch else None
    if not info:
        kind = launch.hardware_kind if launch else "?"
        return [*lines, f"- **Hardware kind**: {kind} (from corral.yaml; not detected here)"]
    for gpu in info.get("gpus", []):
        mem = gpu.get("memory_bytes")
        size = f"{mem / 2**30:.1f} GiB" if mem else "unknown"
        unified = " (unified with system memory)" if gpu.get("unified_memory") else ""
        lines.append(
            f"- **GPU {gpu['index']}**: {gpu['name']}, SM "
            f"{gpu.get('compute_capability') or '?'}, {size}{unified}"
        )
    if not info.get("gpus"):
        lines.append("- **GPU**: none (the engine runs on the CPU)")
    cpu = info["cpu"]
    lines.append(
        f"- **CPU**: {cpu['model']} ({cpu['arch']}), {cpu['logical_cores']} cores; "
        f"flags: {' '.join(cpu['flags']) or 'none of note'}"
    )
    lines.append(f"- **System memory**: {info['ram_bytes'] / 2**30:.1f} GiB")
    if info.get("driver_version"):
        lines.append(f"- **Driver / CUDA**: {info['driver_version']} / {info.get('cuda_version')}")
    return lines


def model_specs(book: Logbook) -> list[str]:
    run, cfg = book.current, book.current.config
    notes = (run.recipe or {}).get("model", {})
    facts = run.facts
    size = facts.get("model_size_bytes")
    size_text = f"{float(size.value) / 2**30:.2f} GiB" if size else "—"
    files = facts.get("model_weight_files")
    lines = ["## Deployment Details", "", "### Model Specifications"]
    lines.append(
        f"- **Model**: `{cfg['model']}`" + (f" ({notes['family']})" if notes.get("family") else "")
    )
    if notes.get("parameters"):
        lines.append(f"- **Parameters**: {notes['parameters']}")
    lines.append(f"- **Size**: {size_text}" + (f" ({files.value} weight files)" if files else ""))
    lines.append(f"- **Architecture**: {shown(facts.get('architecture'))}")
    lines.append(
        f"- **Context window**: {shown(facts.get('max_model_len'))} (as the engine reported it)"
    )
    if notes.get("quantization"):
        lines.append(f"- **Quantization**: {notes['quantization']}")
    lines.append(
        f"- **Location**: `{facts['model_path'].value}`"
        if "model_path" in facts
        else "- **Location**: —"
    )
    return lines


def deployment_details(book: Logbook) -> list[str]:
    run, launch = book.current, book.current.launch
    recipe = run.recipe or {}
    lines = ["", f"### Engine ({run.row['runtime']})"]
    container = recipe.get("container") or {}
    if launch and launch.container:
        image = run.config.get("docker", {}).get("image") or container.get("image")
        lines.append(
            f"- **Image**: `{image}`"
            + (f" (from {container['image_source']})" if container.get("image_source") else "")
        )
        lines.append(f"- **Container**: `{launch.container}` ({(launch.container_id or '')[:12]})")
    elif launch:
        lines.append(f"- **Process**: pid {launch.pid}")
    lines.append(f"- **Engine**: {_engine_line(run)}")
    lines.append(f"- **Endpoint**: {run.row['base_url']}")
    if container.get("build"):
        lines += ["", "### Build Command", "```bash", container["build"], "```"]
    lines += [
        "",
        "### Run Command",
        "",
        "```bash",
        launch.shell_command if launch else " ".join(json.loads(run.row["command"])),
        "```",
    ]
    return lines


def performance(book: Logbook) -> list[str]:
    lines = ["## Performance Benchmarks", "", "### Throughput Tests"]
    stories = [b for b in book.bench if b["kind"] == "story"]
    if not stories:
        lines.append(
            f"Not measured for this run: `corral deploy {book.deployment} --bench` or "
            f"`corral bench story {book.deployment}` adds it."
        )
    for bench in stories:
        lines += [
            "",
            f"Measured {when(bench['at'])} (bench result {bench['id']}), one story at a "
            "time, streamed; tokens from the server's usage.",
            "",
            "| Test Scenario | Tokens Generated | Time (seconds) | Tokens/sec | "
            "Decode tok/s | TTFT (s) |",
            "|---|---|---|---|---|---|",
        ]
        lines += [_story_row(row) for row in bench["rows"]]
    return lines + _reference_figures(book)


def tuning(book: Logbook) -> list[str]:
    """Every `corral tune` search of this deployment: its table and verdict."""
    from corral.tune.result import summary_line, table

    if not book.tuning:
        return []
    lines = ["## Tuning"]
    for search in book.tuning:
        res = search["result"]
        lines += [
            "",
            f"### Search {search['id']}: workload {search['workload']}, SLO {search['slo']} "
            f"({search['state']}, {when(search['started_at'])})",
            "",
            table(res.get("candidates", [])),
            "",
            summary_line(res.get("verdict", {})),
        ]
    return lines


def _story_row(row: dict[str, Any]) -> str:
    if row.get("error"):
        return f"| {row['words']}-word story | error: {row['error']} | | | | |"
    return (
        f"| {row['words']}-word story | {row['tokens']} | {row['seconds']:.3f} | "
        f"{row['seed_tok_s']:.1f} | {_num(row.get('decode_tok_s'))} | "
        f"{_num(row.get('ttft'), 3)} |"
    )


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _reference_figures(book: Logbook) -> list[str]:
    figures = (book.current.recipe or {}).get("reference_figures") or []
    if not figures:
        return []
    lines = [
        "",
        "### Reference Figures (measured elsewhere, from the recipe)",
        "",
        "| Figure | Value | Source |",
        "|---|---|---|",
    ]
    lines += [
        f"| {f['name']} | {_figure(f['value'])} {f.get('unit', '')} | {f['source']} |"
        for f in figures
    ]
    return lines


def _figure(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def memory(book: Logbook) -> list[str]:
    facts = book.current.facts
    lines = [
        "### Memory Usage and KV Capacity",
        "",
        "| Figure | Measured (engine log) | Planned |",
        "|---|---|---|",
    ]
    for name, label in MEMORY_ROWS:
        if name not in facts and f"planned.{name}" not in facts:
            continue
        if name == "max_concurrency" and "max_concurrency_request_tokens" in facts:
            label = f"{label} ({shown(facts['max_concurrency_request_tokens'])} per request)"  # noqa: PLW2901
        lines.append(
            f"| {label} | {shown(facts.get(name))} | {shown(facts.get(f'planned.{name}'))} |"
        )
    if len(lines) == 4:
        lines.append("| (the engine logged no capacity figures) | — | — |")
    if "planned.note" in facts:
        lines += [
            "",
            f"Planned figures: the planner could not plan this run here "
            f"({facts['planned.note'].value}).",
        ]
    elif not any(n.startswith("planned.") for n in facts):
        lines += [
            "",
            "Planned figures: none recorded for this run (no planner was plugged "
            "into `corral deploy`).",
        ]
    else:
        lines += [
            "",
            "Planned: `corral plan` for this model, hardware and engine version, "
            "given the KV memory the engine reported.",
        ]
    return lines


def startup(book: Logbook) -> list[str]:
    run = book.current
    lines = ["## Startup Time Breakdown", "", "| # | Phase | Seconds |", "|---|---|---|"]
    for index, phase in enumerate(run.phases, 1):
        seconds = "—" if phase["seconds"] is None else f"{phase['seconds']:.1f}"
        label = PHASE_LABELS.get(phase["name"], phase["name"])
        lines.append(f"| {index} | {label} | {seconds} |")
    lines += [
        "",
        f"**Total**: {shown(run.facts.get('startup_s'))} from launch to ready "
        "(health, model listed, one generation).",
    ]
    engine = [
        (n, label)
        for n, label in (
            ("weights_load_s", "weights load"),
            ("model_load_s", "model loading"),
            ("torch_compile_s", "torch.compile"),
            ("init_engine_s", "engine init (profile, KV cache, warm-up)"),
        )
        if n in run.facts
    ]
    if engine:
        lines.append(
            "Engine-reported: "
            + "; ".join(f"{label} {shown(run.facts[n])}" for n, label in engine)
            + "."
        )
    return lines


def _curl(url: str, body: dict[str, Any]) -> list[str]:
    return [
        "```bash",
        f"curl -s {url}/v1/chat/completions \\",
        '  -H "Content-Type: application/json" \\',
        f"  -d '{json.dumps(body, indent=2)}'",
        "```",
    ]


def api_access(book: Logbook) -> list[str]:
    run = book.current
    url = run.row["base_url"]
    name = run.launch.served_name if run.launch else run.config["name"]
    caps = run.config.get("capabilities", {})
    lines = [
        "## API Access",
        "",
        "### Endpoint",
        "```",
        f"{url}/v1",
        "```",
        "",
        "### Basic Chat Completion",
        "```bash",
        f"curl -s {url}/v1/models",
        "```",
    ]
    lines += _curl(
        url,
        {
            "model": name,
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "Say hello in one sentence."}],
        },
    )
    tool_body: dict[str, Any] = {
        "model": name,
        "max_tokens": 150,
        "tools": [TOOL],
        "messages": [{"role": "user", "content": "What is 2+2?"}],
    }
    lines += ["", "### Tool Calling Example"]
    if not caps.get("auto_tool_choice"):
        tool_body["tool_choice"] = {"type": "function", "function": {"name": "calculate"}}
        lines.append(
            "This model does not choose tools by itself (`auto_tool_choice: false`), "
            "so the example names the tool."
        )
    return lines + _curl(url, tool_body)


def features(book: Logbook) -> list[str]:
    caps = book.current.config.get("capabilities", {})
    lines = ["## Features", ""]
    lines.append(
        f"- **Tool calling**: {'yes' if caps.get('tools') else 'no'}; automatic tool "
        f"choice: {'yes' if caps.get('auto_tool_choice') else 'no'}"
    )
    lines.append(f"- **Reasoning traces**: {'yes' if caps.get('reasoning') else 'no'}")
    lines.append(f"- **Context length**: {caps.get('context_length', 0):,} tokens")
    if book.verify:
        lines += [
            "",
            "### Verification (`corral verify` suite against this run)",
            "",
            "| Check | Result | Detail |",
            "|---|---|---|",
        ]
        lines += [f"| {r['name']} | {r['status']} | {_cell(r['detail'])} |" for r in book.verify]
    else:
        lines += ["", "Not verified for this run: `corral verify` was not run against it."]
    return lines


def _cell(text: str) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= 120 else flat[:117] + "..."


def known_issues(book: Logbook) -> list[str]:
    issues = (book.current.recipe or {}).get("known_issues") or []
    lines = ["## Known Issues", ""]
    for issue in issues:
        lines.append(
            f"- **{issue['id']}** — when: {issue['condition']}. {issue['message']}. "
            f"What the recipe does: {issue['action']}."
        )
    seen = [e for e in book.current.events if e["kind"] == "failure"]
    if seen:
        lines += ["", "Seen in this run's log:"]
        lines += [f"- {e['detail']}" for e in seen]
    if not issues and not seen:
        lines.append("None recorded.")
    return lines


def related_systems(book: Logbook) -> list[str]:
    """The fleet by host, like the seed's "Related Systems": where this ran, and the rest."""
    if not book.fleet and not book.hosts:
        return []
    here = {h.host: h for h in book.hosts}
    lines = ["## Related Systems", ""]
    for entry in book.fleet:
        what = entry.hardware or "hardware not checked"
        if entry.host in here:
            rank = here[entry.host]
            role = f"this deployment, rank {rank.rank} ({rank.role}, pid {rank.pid})"
            lines.append(f"- **{entry.host}**: {what}; {role}")
        else:
            running = ", ".join(entry.deployments) or "no active deployment"
            lines.append(f"- **{entry.host}**: {what} ({running})")
    return lines


def history(book: Logbook) -> list[str]:
    lines = ["## Deployment History"]
    previous: RunRecord | None = None
    entries = []
    for run in book.history:
        entries.append(_history_entry(run, previous))
        previous = run
    for entry in reversed(entries):
        lines += ["", *entry]
    return lines


def _history_entry(run: RunRecord, previous: RunRecord | None) -> list[str]:
    lines = [f"### {when(run.row['started_at'])}: run {run.id} ({_ended_as(run)})"]
    if run.config.get("on_demand"):
        lines.append("- **Started**: on demand, by a request naming it")
    lines.append(
        f"- **Recipe**: {run.launch.recipe if run.launch else '—'}; engine {_engine_line(run)}"
    )
    if run.startup_s is not None:
        lines.append(f"- **Ready after**: {run.startup_s:.1f} s")
    if previous is not None:
        lines.append(f"- **Changes**: {_changes(previous, run)}")
    for event in run.events:
        lines.append(f"- {when(event['at'])} {event['kind']}: {event['detail']}")
    return lines


def _ended_as(run: RunRecord) -> str:
    """The run's state; `evicted` or `stopped for idleness` when its stop event says so."""
    stops = [e["detail"] for e in run.events if e["kind"] == "stop"]
    if run.row["state"] != "stopped" or not stops:
        return str(run.row["state"])
    if stops[-1].startswith("evicted"):
        return "evicted"
    return "stopped for idleness" if stops[-1].startswith("idle for") else "stopped"


def _changes(before: RunRecord, after: RunRecord) -> str:
    old, new = json.loads(before.row["command"]), json.loads(after.row["command"])
    added = [a for a in new if a not in old]
    removed = [a for a in old if a not in new]
    if not added and not removed:
        return "same command as the run before"
    parts = []
    if added:
        parts.append("added " + " ".join(f"`{a}`" for a in added))
    if removed:
        parts.append("removed " + " ".join(f"`{a}`" for a in removed))
    return "; ".join(parts)
