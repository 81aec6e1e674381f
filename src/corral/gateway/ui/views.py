"""What the console's pages show, as JSON built from the fleet view, the ledger and the
gateway's own counters. Pure reads: nothing here changes state or touches an engine.

    fleet_view(deployments, catalog, ledger, gpus) → hosts → deployments (state, memory,
                                                   routable, why not)
    deployment_view(ledger, name)                → runs with phases, facts, command diffs,
                                                   verify results, bench tables
    live_view(metrics, clock)                    → cumulative counters per deployment; the page
                                                   turns two polls into rates
    report_html(ledger, name)                    → `corral report` as HTML
"""

from __future__ import annotations

import difflib
import json
import shlex
from collections.abc import Iterable, Sequence
from typing import Any

from markdown_it import MarkdownIt

from corral.errors import CorralError
from corral.fleet import DeploymentView, Policy, Replica
from corral.gateway.engine_metrics import GpuSample, host_of
from corral.gateway.errors import HttpError
from corral.gateway.metrics import GatewayMetrics
from corral.gateway.routing import CatalogEntry
from corral.ledger import runs
from corral.ledger.db import Ledger
from corral.report.logbook import Logbook, RunRecord, collect, verify_results
from corral.report.markdown import render

MEMORY_FACTS = ("model_load_gib", "kv_cache_memory_gib", "graph_capture_gib", "kv_cache_tokens")


# -- fleet ----------------------------------------------------------------------------------
def fleet_view(
    deployments: Sequence[DeploymentView],
    catalog: Iterable[CatalogEntry],
    ledger: Ledger | None,
    gpus: Sequence[GpuSample],
) -> dict[str, Any]:
    """A card per replica; a deployment with none (starting, stopped, failed) still gets
    one, on the local host, with the control plane's state and reason."""
    latest = {r["deployment"]: r for r in runs.latest_runs(ledger)} if ledger else {}
    hosts: dict[str, list[dict[str, Any]]] = {}
    for view in deployments:
        row = latest.get(view.name)
        for replica in view.replicas or (None,):
            host = host_of(replica) if replica else "local"
            hosts.setdefault(host, []).append(_card(view, replica, row, ledger))
    return {
        "hosts": [{"host": h, "deployments": d} for h, d in sorted(hosts.items())],
        "gpus": [_gpu(g) for g in gpus],
        "models": [
            {"name": e.name, "kind": e.kind, "routable": e.routable, "targets": e.resolves_to}
            for e in catalog
        ],
        "recorded": sorted(set(latest) - {view.name for view in deployments}),
    }


def _card(
    view: DeploymentView, replica: Replica | None, row: dict[str, Any] | None,
    ledger: Ledger | None,
) -> dict[str, Any]:  # fmt: skip
    facts = runs.facts(ledger, int(row["id"])) if ledger and row else {}
    ready = row and row["ready_at"] and float(row["ready_at"]) - float(row["started_at"])
    return {
        **_policy(view.policy),
        **_replica(replica, view.state or "stopped"),
        "reason": "" if replica and replica.routable else view.reason,
        "memory": {name: facts[name] for name in MEMORY_FACTS if name in facts},
        "run": int(row["id"]) if row else None, "ready_s": ready or None,
    }  # fmt: skip


def _policy(policy: Policy) -> dict[str, Any]:
    return {
        "name": policy.served_name, "engine": policy.engine, "aliases": list(policy.aliases),
        "roles": list(policy.roles), "context_length": policy.capabilities.context_length,
    }  # fmt: skip


def _replica(replica: Replica | None, state: str) -> dict[str, Any]:
    """A replica's part of its card; without one, the deployment's state alone."""
    if replica is None:
        return {"replica": None, "state": state, "routable": False, "gate": "none"}
    return {"replica": replica.id, "state": replica.state, "routable": replica.routable,
            "gate": replica.gate}  # fmt: skip


def _gpu(sample: GpuSample) -> dict[str, Any]:
    return {
        "index": sample.index, "name": sample.name, "memory_used": sample.memory_used,
        "memory_total": sample.memory_total, "utilization": sample.utilization,
    }  # fmt: skip


# -- one deployment -----------------------------------------------------------------------
def deployment_view(ledger: Ledger | None, name: str) -> dict[str, Any]:
    book = _logbook(ledger, name)
    history = []
    previous: RunRecord | None = None
    for run in book.history:
        history.append(_run(run, previous))
        previous = run
    return {
        "name": name,
        "current": book.current.id,
        "runs": list(reversed(history)),
        "verify": book.verify or _gate_results(ledger, book),
        "bench": [_bench(b) for b in book.bench],
    }


def _gate_results(ledger: Ledger | None, book: Logbook) -> list[dict[str, Any]]:
    """The newest suite run against the deployment since its current run started: the
    pipeline's gate step records its results without the run id."""
    if ledger is None:
        return []
    row = ledger.conn.execute(
        "SELECT v.id FROM verify_runs v JOIN deployments d ON d.id = v.deployment_id "
        "WHERE d.name = ? AND v.started_at >= ? ORDER BY v.id DESC LIMIT 1",
        (book.deployment, book.current.row["started_at"]),
    ).fetchone()
    return [] if row is None else verify_results(ledger, int(row["id"]))


def _logbook(ledger: Ledger | None, name: str) -> Logbook:
    if ledger is None:
        raise HttpError(404, "this gateway has no ledger to read", code="no_ledger")
    try:
        return collect(ledger, name)
    except CorralError as exc:
        raise HttpError(404, exc.message, code="unknown_deployment") from None


def command_of(run: RunRecord) -> str:
    """The exact command: the launch's shell line when recorded, else the argv quoted."""
    if run.launch is not None and run.launch.shell_command:
        return run.launch.shell_command
    return shlex.join(json.loads(run.row["command"]))


def command_lines(command: str) -> list[str]:
    """One line per option (`--flag value`), so a diff shows which flag changed."""
    lines: list[str] = []
    for word in shlex.split(command):
        if word.startswith("-") or not lines:
            lines.append(word)
        else:
            lines[-1] += " " + shlex.quote(word)
    return lines


def command_diff(before: str, after: str) -> list[str]:
    """Options removed (`- ...`) and added (`+ ...`) between two commands, in order."""
    old, new = command_lines(before), command_lines(after)
    lines: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new).get_opcodes():
        if tag != "equal":
            lines += [f"- {line}" for line in old[i1:i2]] + [f"+ {line}" for line in new[j1:j2]]
    return lines


def _run(run: RunRecord, previous: RunRecord | None) -> dict[str, Any]:
    command = command_of(run)
    return {
        "id": run.id, "state": run.row["state"], "engine": run.row["engine"],
        "engine_version": run.row["engine_version"], "started_at": run.row["started_at"],
        "ready_at": run.row["ready_at"], "ended_at": run.row["ended_at"],
        "exit_code": run.row["exit_code"], "startup_s": run.startup_s,
        "phases": run.phases, "command": command,
        "facts": [{"name": k, "value": f.value, "unit": f.unit} for k, f in run.facts.items()],
        "events": run.events,
        "diff": None if previous is None else command_diff(command_of(previous), command),
        "recipe": run.launch.recipe if run.launch else None,
    }  # fmt: skip


BENCH_X = ("level", "words")  # what a benchmark's rows vary: serve levels, story lengths
BENCH_HIDDEN = frozenset({"label", "kind", "warmup", "loop_lag", "error", "duration",
                          "reasoning_tokens", "prompt_tokens", "early_stops", "good_fraction",
                          "steady_output_tok_s"})  # fmt: skip
BENCH_SPREADS = ("ttft", "tpot", "e2e")  # shown as their p50 and p99


def _bench(bench: dict[str, Any]) -> dict[str, Any]:
    """A benchmark as a table: `rows` (story) or `levels` (serve), whichever it has."""
    rows = bench.get("rows") or bench.get("levels") or []
    table = [_flat(r) for r in rows if isinstance(r, dict)]
    x = next((name for name in BENCH_X if table and name in table[0]), None)
    return {"id": bench["id"], "kind": bench["kind"], "at": bench["at"], "x": x, "rows": table}


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """Scalars only, the varied figure first; nested detail stays in the ledger."""
    kept = {k: v for k, v in row.items() if k not in BENCH_HIDDEN and _scalar(v)}
    for name in BENCH_SPREADS:
        spread = row.get(name)
        if isinstance(spread, dict):
            kept.update({f"{name}_{q}": spread.get(q) for q in ("p50", "p99")})
    first = {k: kept.pop(k) for k in BENCH_X if k in kept}
    return {**first, **kept}


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, int | float | str)


# -- live -----------------------------------------------------------------------------------
def live_view(metrics: GatewayMetrics, now: float) -> dict[str, Any]:
    """Per deployment: requests, errors, TTFT sum/count and tokens so far (cumulative)."""
    per: dict[str, dict[str, float]] = {}

    def add(deployment: str, field: str, value: float) -> None:
        if deployment:
            row = per.setdefault(deployment, dict.fromkeys(LIVE_FIELDS, 0.0))
            row[field] += value

    for (dep, _m, _k, status), value in metrics.requests.values.items():
        add(dep, "requests", value)
        add(dep, "errors", value if not status.startswith("2") else 0.0)
    for (dep, _m, _k), row in metrics.ttft.series.items():
        add(dep, "ttft_sum", row[-2])
        add(dep, "ttft_count", row[-1])
    for (dep, _m, _k), value in metrics.completion_tokens.values.items():
        add(dep, "completion_tokens", value)
    return {"at": now, "deployments": per}


LIVE_FIELDS = ("requests", "errors", "ttft_sum", "ttft_count", "completion_tokens")


# -- the logbook ------------------------------------------------------------------------
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


def report_html(ledger: Ledger | None, name: str) -> str:
    """`corral report NAME` rendered; raw HTML in the Markdown is escaped, not passed on."""
    book = _logbook(ledger, name)
    return str(_MARKDOWN.render(render(book, ledger_path=str(ledger.path if ledger else ""))))
