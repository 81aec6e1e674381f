"""PNG plots of a serve result (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PERCENTILE_KEYS = ("p50", "p90", "p99")


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _x(levels: list[dict[str, Any]]) -> tuple[list[float], str]:
    kind = levels[0]["kind"] if levels else "concurrency"
    return [lv["level"] for lv in levels], ("concurrency" if kind == "concurrency" else "req/s")


def plot_serve(result: dict[str, Any], folder: Path) -> list[Path]:
    """throughput.png (output tok/s against load), ttft.png and tpot.png (percentiles)."""
    plt = _figure()
    folder.mkdir(parents=True, exist_ok=True)
    levels = result["levels"]
    xs, xlabel = _x(levels)
    paths = []
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(xs, [lv["output_tok_s"] for lv in levels], marker="o", label="output tok/s")
    steady = [lv["steady_output_tok_s"] for lv in levels]
    if any(v is not None for v in steady):
        ax.plot(xs, [v or float("nan") for v in steady], marker="x", label="steady tok/s")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("tokens/s")
    ax.set_title("Output throughput")
    ax.legend()
    paths.append(_save(plt, fig, folder / "throughput.png"))
    for metric in ("ttft", "tpot"):
        fig, ax = plt.subplots(figsize=(6, 4))
        for key in PERCENTILE_KEYS:
            ys = [lv[metric].get(key, float("nan")) * 1000 for lv in levels]
            ax.plot(xs, ys, marker="o", label=key)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("ms")
        ax.set_title(metric.upper() + " percentiles")
        ax.legend()
        paths.append(_save(plt, fig, folder / f"{metric}.png"))
    return paths


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
