"""`corral verify`: the acceptance suite against an endpoint or a deployment."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from corral.cli.common import config_from, home_of, print_json
from corral.errors import ConfigError
from corral.naming import is_url
from corral.paths import ledger_path
from corral.verify.checks import CHECK_NAMES
from corral.verify.gate import record
from corral.verify.model import DEFAULT_CONCURRENCY, CheckResult, Status, Target, suite_passed
from corral.verify.suite import run_suite
from corral.verify.targets import Overrides, deployment_target, url_target

_STYLE = {Status.PASS: "green", Status.FAIL: "bold red", Status.SKIP: "yellow"}


def register(app: typer.Typer) -> None:
    app.command(name="verify")(verify)


def verify(  # noqa: PLR0917  (a Typer command: one parameter per option)
    target: str = typer.Argument(
        ...,
        help="an endpoint URL (with or without /v1), or a deployment name (its live gateway "
        "or engine, from the ledger)",
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="served model name, for a URL (default: the first listed)"
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="corral.yaml"),
    url: str | None = typer.Option(None, "--url", help="reach a deployment at this URL instead"),
    checks: str | None = typer.Option(
        None, "--checks", help=f"comma-separated subset of: {', '.join(CHECK_NAMES)}"
    ),
    as_json: bool = typer.Option(False, "--json", help="print results as a JSON list"),
    context_tokens: int | None = typer.Option(
        None, "--context-tokens", min=512, help="declared context length (needle check)"
    ),
    tools: bool | None = typer.Option(None, "--tools/--no-tools", help="model can call tools"),
    auto_tools: bool | None = typer.Option(
        None, "--auto-tools/--no-auto-tools", help="model chooses tools itself (tool_choice auto)"
    ),
    reasoning: bool | None = typer.Option(
        None, "--reasoning/--no-reasoning", help="a reasoning model (must return reasoning)"
    ),
    structured: bool | None = typer.Option(
        None, "--structured-output/--no-structured-output", help="supports json_schema output"
    ),
    reasoning_field: str | None = typer.Option(
        None,
        "--reasoning-field",
        help="require reasoning in this field: reasoning|reasoning_content",
    ),
    concurrency: int = typer.Option(DEFAULT_CONCURRENCY, "--concurrency", min=1, max=256),
    api_key: str = typer.Option(
        "",
        "--api-key",
        envvar="CORRAL_API_KEY",
        show_envvar=True,
        show_default=False,
        help="key sent on every request (the gateway's, when keys are on)",
    ),
    no_record: bool = typer.Option(False, "--no-record", help="don't store results in the ledger"),
) -> None:
    """Prove an OpenAI-compatible endpoint works: chat, streaming, usage, stop, tools,
    reasoning, structured output, long context, concurrency and errors.

    Checks the model cannot pass (by its declared capabilities, or the flags for a URL)
    are skipped with the reason. Exit code 1 when any check fails. Results against a
    deployment are stored in the ledger. Examples:

    corral verify http://127.0.0.1:8000 --model default

    corral verify http://gpu1:8000 -m gpt-oss-120b --reasoning --auto-tools --context-tokens 131072

    corral verify smollm2-135m-instruct --checks chat,streaming,tool-named --json
    """
    overrides = Overrides(
        tools=tools, auto_tool_choice=auto_tools, reasoning=reasoning,
        context_length=context_tokens, structured_output=structured,
        reasoning_field=_reasoning_field(reasoning_field),
    )  # fmt: skip
    names = [n.strip() for n in checks.split(",") if n.strip()] if checks else None
    if is_url(target):
        goal = url_target(target, model, overrides, api_key=api_key, concurrency=concurrency)
        results = _run(goal, names, as_json)
    else:
        cfg = config_from(config)
        dep, goal = deployment_target(
            cfg, target, overrides, ledger_file=ledger_path(home_of(cfg)), url=url,
            api_key=api_key, concurrency=concurrency,
        )  # fmt: skip
        results = _run(goal, names, as_json)
        if not no_record:
            run_id = record(ledger_path(home_of(cfg)), dep, goal.base_url, results)
            Console(stderr=True).print(f"recorded as verify run {run_id}", style="dim")
    _show(goal, results, as_json)
    if not suite_passed(results):
        raise typer.Exit(1)


def _reasoning_field(value: str | None) -> str | None:
    if value not in (None, "reasoning", "reasoning_content"):
        raise ConfigError(
            f"--reasoning-field {value!r} is not a reasoning field",
            hint="use --reasoning-field reasoning or --reasoning-field reasoning_content",
        )
    return value


def _run(goal: Target, names: list[str] | None, quiet: bool) -> list[CheckResult]:
    console = Console(stderr=True)
    if quiet:
        return asyncio.run(run_suite(goal, names))
    with console.status(f"verifying {goal.model} at {goal.base_url}") as status:

        def progress(result: CheckResult) -> None:
            status.update(f"verifying {goal.model}: {result.name} {result.status.value}")

        return asyncio.run(run_suite(goal, names, on_result=progress))


def _show(goal: Target, results: list[CheckResult], as_json: bool) -> None:
    if as_json:
        print_json([r.as_dict() for r in results])
        return
    table = Table(title=f"corral verify: {goal.model} at {goal.base_url}")
    for column in ("check", "status", "seconds", "detail"):
        table.add_column(column, justify="right" if column == "seconds" else "left")
    for r in results:
        status = f"[{_STYLE[r.status]}]{r.status.value}[/]"
        table.add_row(r.name, status, f"{r.seconds:.2f}", r.detail)
    console = Console()
    console.print(table)
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    console.print(
        f"{counts[Status.PASS]} passed, {counts[Status.FAIL]} failed, {counts[Status.SKIP]} skipped"
    )
