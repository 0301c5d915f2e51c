"""The corruption grid's headline table from its run directories (`benchmarks/corruption/run.sh`'s OUT/bench):
final normalized score (mean ± std over seeds) per algorithm, dataset and corruption, and each algorithm's drop from
clean data averaged over the four corruptions with a 95% bootstrap interval over seeds.

    python benchmarks/corruption/summarize.py BENCH_DIR [BENCH_DIR ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

TARGETS = ("states", "actions", "rewards", "dynamics")


def scores(benches: list[Path]) -> dict[tuple[str, str, str], np.ndarray]:
    """(algo, clean dataset, corruption or "clean") -> per-seed final normalized scores of the benches' finished runs."""
    out = {}
    for summary in sorted(s for bench in benches for s in bench.glob("runs/*/offline/summary.json")):
        record = json.loads(summary.read_text())
        name = Path(record["dataset"]).name
        target = next((t for t in TARGETS if name.endswith(f"-random-{t}")), None)
        clean = name.removesuffix(f"-random-{target}") if target else name
        out[record["algo"], clean, target or "clean"] = np.asarray(record["normalized_score_per_seed"], float)
    return out


def drop_interval(clean: np.ndarray, corrupted: list[np.ndarray], reps: int = 10_000) -> tuple[float, float, float]:
    """Mean over corruptions of (mean clean - mean corrupted), with a percentile bootstrap over each cell's seeds."""
    rng = np.random.default_rng(0)
    resample = lambda x: x[rng.integers(0, x.size, (reps, x.size))].mean(axis=1)
    draws = np.mean([resample(clean) - resample(c) for c in corrupted], axis=0)
    point = float(np.mean([clean.mean() - c.mean() for c in corrupted]))
    return point, float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def main() -> None:
    table = scores([Path(p) for p in sys.argv[1:]])
    algos = sorted({a for a, _, _ in table})
    datasets = sorted({d for _, d, _ in table})
    print("| dataset | algorithm | clean | " + " | ".join(TARGETS) + " | drop, mean of 4 [95% CI] |")
    print("|---|---|---|" + "---|" * len(TARGETS) + "---|")
    for dataset in datasets:
        for algo in algos:
            cells = [table.get((algo, dataset, c)) for c in ("clean", *TARGETS)]
            text = [f"{c.mean():.1f} ± {c.std():.1f}" if c is not None else "—" for c in cells]
            drop = "—"
            if all(c is not None for c in cells):
                point, low, high = drop_interval(cells[0], cells[1:])
                drop = f"{point:.1f} [{low:.1f}, {high:.1f}]"
            print(f"| {dataset} | {algo} | " + " | ".join(text) + f" | {drop} |")


if __name__ == "__main__":
    main()
