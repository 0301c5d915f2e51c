"""The report's figures with matplotlib's object API (no pyplot state), each written as PNG and SVG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

AGGREGATE_TITLES = {"iqm": "IQM", "mean": "Mean", "median": "Median", "optimality_gap": "Optimality gap"}


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def colors(methods: list[str]) -> dict[str, Any]:
    """A distinct colour per method: tab10, tab20 beyond ten methods, evenly spaced hues beyond twenty."""
    from matplotlib import colormaps

    if len(methods) > 20:
        return {m: colormaps["hsv"](i / len(methods)) for i, m in enumerate(methods)}
    palette = colormaps["tab10" if len(methods) <= 10 else "tab20"].colors
    return {m: palette[i] for i, m in enumerate(methods)}


def _save(fig, out: Path, name: str, title: str, caption: str) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"{name}.png", dpi=110)
    fig.savefig(out / f"{name}.svg")
    return {"name": name, "title": title, "caption": caption, "png": f"figures/{name}.png", "svg": f"figures/{name}.svg"}


def aggregate_intervals(aggregate: dict[str, dict[str, Any]], colors: dict, out: Path, unit: str) -> dict[str, str]:
    methods = list(aggregate)
    fig = _figure(11, 0.5 + 0.45 * len(methods))
    axes = fig.subplots(1, len(AGGREGATE_TITLES), sharey=True)
    for ax, (key, title) in zip(axes, AGGREGATE_TITLES.items()):
        for row, method in enumerate(methods):
            low, high = aggregate[method][f"{key}_ci"]
            ax.barh(row, high - low, left=low, height=0.6, color=colors[method], alpha=0.75)
            ax.plot([aggregate[method][key]] * 2, [row - 0.3, row + 0.3], color="black", linewidth=1.5)
        ax.set_title(title + (" (lower is better)" if key == "optimality_gap" else ""), fontsize=10)
        ax.set_xlabel(unit)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(methods)), methods)
    return _save(fig, out, "aggregates", "Aggregate scores over datasets",
                 "Point estimates (black) and 95% stratified-bootstrap confidence intervals (bars) over seeds and datasets.")


def per_dataset(entry_list: list[dict[str, Any]], colors: dict, out: Path, unit: str) -> dict[str, str]:
    datasets = list(dict.fromkeys(e["dataset"] for e in entry_list))
    methods = list(colors)
    fig = _figure(9, 0.8 + 0.32 * len(datasets) * len(methods))
    ax = fig.subplots()
    height = 0.8 / len(methods)
    labelled = set()
    for e in entry_list:
        row = datasets.index(e["dataset"]) + methods.index(e["method"]) * height - 0.4 + height / 2
        low, high = e["iqm_ci"]
        ax.barh(row, e["final_mean"], height=height * 0.9, color=colors[e["method"]], alpha=0.6,
                hatch="//" if e.get("imported") else None, label=None if e["method"] in labelled else e["method"])
        labelled.add(e["method"])
        ax.errorbar(e["iqm"], row, xerr=[[e["iqm"] - low], [high - e["iqm"]]], fmt="o", color="black", markersize=3,
                    capsize=2, linewidth=1)
        ax.scatter(e["final_per_seed"], [row] * len(e["final_per_seed"]), s=9, color="white", edgecolors="black",
                   linewidths=0.5, zorder=3)
        if e.get("published") is not None:
            ax.plot([e["published"]] * 2, [row - height / 2, row + height / 2], color="red", linewidth=1.5)
    ax.set_yticks(range(len(datasets)), datasets)
    ax.invert_yaxis()
    ax.set_xlabel(f"final {unit}")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, out, "per_dataset", "Final score per dataset",
                 "Bars: mean over seeds (hatched: imported from other code); white dots: seeds; black: IQM with its "
                 "95% bootstrap interval; red ticks: published score where a published table covers the dataset "
                 "(different data version).")


def profiles(taus: np.ndarray, curves: dict[str, np.ndarray], bands: dict[str, np.ndarray], colors: dict, out: Path,
             unit: str, datasets: list[str]) -> dict[str, str]:
    fig = _figure(6.5, 4)
    ax = fig.subplots()
    for method, curve in curves.items():
        ax.plot(taus, curve, color=colors[method], label=method, linewidth=1.8)
        ax.fill_between(taus, bands[method][0], bands[method][1], color=colors[method], alpha=0.2)
    ax.set_xlabel(f"{unit} (\u03c4)")
    ax.set_ylabel("fraction of runs with score > \u03c4")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out, "profiles", "Performance profiles",
                 f"Run-score distributions over {len(datasets)} dataset(s) every method has, with 95% bootstrap bands.")


def improvement(pairs: list[dict[str, Any]], methods: list[str], out: Path) -> dict[str, str]:
    shown = [p for p in pairs if methods.index(p["x"]) < methods.index(p["y"])]
    fig = _figure(6.5, 0.8 + 0.4 * len(shown))
    ax = fig.subplots()
    for row, p in enumerate(shown):
        low, high = p["ci"]
        ax.plot([low, high], [row, row], color="tab:blue", linewidth=6, alpha=0.5, solid_capstyle="butt")
        ax.plot([low, high], [row, row], "|", color="tab:blue", markersize=12)  # an interval of width 0 still shows
        ax.plot([p["probability"]], [row], "o", color="black", markersize=5)
    ax.axvline(0.5, color="gray", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(shown)), [f"P({p['x']} > {p['y']})" for p in shown])
    ax.set_ylim(-0.6, len(shown) - 0.4)
    ax.set_xlim(-0.03, 1.03)
    ax.set_xlabel("probability of improvement")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, out, "improvement", "Probability of improvement",
                 "P(X > Y): the chance that a run of X scores above a run of Y on a dataset both have, averaged over "
                 "datasets, with its 95% stratified-bootstrap interval; above 0.5 favours X.")


def curves(phase_curves: dict[str, dict[str, dict[str, Any]]], colors: dict, out: Path, unit: str) -> dict[str, str]:
    phases = [p for p in ("offline", "online") if phase_curves.get(p)]
    fig = _figure(5.5 * len(phases), 3.8)
    axes = np.atleast_1d(fig.subplots(1, len(phases)))
    for ax, phase in zip(axes, phases):
        for method, c in phase_curves[phase].items():
            ax.plot(c["steps"], c["iqm"], color=colors[method], label=method, linewidth=1.8,
                    linestyle="--" if c.get("imported") else "-", marker="." if len(c["steps"]) < 30 else None)
            ax.fill_between(c["steps"], c["ci_low"], c["ci_high"], color=colors[method], alpha=0.2)
        ax.set_xlabel("gradient updates" if phase == "offline" else "environment steps")
        ax.set_ylabel(f"IQM {unit}")
        ax.set_title(f"{phase} phase", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    imported = any(c.get("imported") for curves in phase_curves.values() for c in curves.values())
    return _save(fig, out, "curves", "Sample-efficiency curves",
                 "IQM over runs and datasets at every evaluation step all of a method's runs share, with a 95% "
                 "stratified-bootstrap band" + ("; dashed: imported from other code." if imported else "."))


def o2o(rows: list[dict[str, Any]], colors: dict, out: Path, unit: str) -> dict[str, str]:
    fig = _figure(8, 1.4 + 0.55 * len(rows))
    ax = fig.subplots()
    for row, e in enumerate(rows):
        points = [("offline", e.get("offline_mean")), ("online step 0", e.get("start_mean")), ("final", e["final_mean"])]
        xs = [v for _, v in points if v is not None]
        ax.plot(xs, [row] * len(xs), color=colors[e["method"]], linewidth=2, alpha=0.6)
        for (label, value), marker in zip(points, ("s", "v", "o")):
            if value is not None:
                ax.scatter([value], [row], marker=marker, color=colors[e["method"]], edgecolors="black", zorder=3,
                           label=label if row == 0 else None)
        if e.get("dip_mean") is not None and e.get("start_mean") is not None:
            ax.annotate(f"dip {e['dip_mean']:.1f}", (e["start_mean"], row), textcoords="offset points", xytext=(0, 7),
                        fontsize=7, ha="center")
    ax.set_yticks(range(len(rows)), [f"{e['method']} / {e['dataset']}" for e in rows])
    ax.set_ylim(len(rows) - 0.4, -0.6)
    ax.set_xlabel(unit)
    ax.grid(axis="x", alpha=0.3)
    fig.legend(fontsize=8, loc="outside upper center", ncols=3)
    return _save(fig, out, "o2o", "Offline to online",
                 "Per fine-tuned cell, mean over seeds: the offline run's last evaluation (square), the fine-tuned agent "
                 "at online step 0 (triangle) and after fine-tuning (circle); the dip is the lowest score in the first "
                 "10% of online steps minus the score at step 0.")
