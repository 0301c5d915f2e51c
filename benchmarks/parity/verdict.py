"""Learning parity, the verdict: o2o's per-seed curves (a bench directory's runs) against the reference's (the CSV of
benchmarks/parity/learn.py), at equal budget on the same data.

    python benchmarks/parity/verdict.py --bench DIR [DIR ...] --reference ALGO=FILE.csv[,FILE.csv ...] \
        [ALGO=...] [--out FILE.md]

Each DIR is an `o2o bench` directory (its offline runs), one run directory (e.g. an `o2o online` run, whose steps
are env steps) or a CSV that `--o2o-csv` wrote (seeds kept from runs no longer on disk). Several directories or CSVs
add seeds (a seed found twice is an error).

For each algorithm: the mean final score (last evaluation) and the area under the curve (the mean score over the
evaluations, which share their steps on both sides) of each side, and the 95% bootstrap interval of the difference
o2o - reference (seeds resampled within each side, 10,000 draws from a fixed seed). "equal" only when the interval
contains 0 and is narrower than 10 points (issue 28's rule); otherwise "differs" (a cause to find) or "inconclusive"
(the interval holds 0 but is too wide: more seeds).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from o2o.train.runs import RunDir

REPS, WIDTH = 10_000, 10.0


def merge(parts: list[dict[int, dict[int, float]]], what: str) -> dict[int, dict[int, float]]:
    curves: dict[int, dict[int, float]] = {}
    for part in parts:
        if twice := set(curves) & set(part):
            raise SystemExit(f"{what}: seeds {sorted(twice)} found twice")
        curves.update(part)
    return curves


def o2o_runs(path: Path) -> list[RunDir]:
    """The run directory `path`, or a bench directory's offline runs."""
    if RunDir.exists(path):
        return [RunDir.open(path)]
    return [RunDir.open(config.parent) for config in sorted(path.glob("runs/*/offline/config.json"))]


def o2o_curves(path: Path, algo: str) -> dict[int, dict[int, float]]:
    """seed -> step -> normalized score, from the runs of `algo` under `path` (see o2o_runs) or its CSV."""
    if path.suffix == ".csv":
        return reference_curves(path, method=algo)
    curves: dict[int, dict[int, float]] = {}
    for run in o2o_runs(path):
        if run.settings["algo"] != algo:
            continue
        for record in run.evaluations():
            for seed, score in zip(run.seeds, record["normalized_score_per_seed"]):
                curves.setdefault(seed, {})[record["step"]] = score
    return curves


def reference_curves(path: Path, method: str | None = None) -> dict[int, dict[int, float]]:
    """seed -> step -> score from a CSV (only its rows of `method`, if given: an o2o CSV that `--o2o-csv` wrote)."""
    curves: dict[int, dict[int, float]] = {}
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            if method is None or row["method"] == method:
                curves.setdefault(int(row["seed"]), {})[int(row["step"])] = float(row["score"])
    return curves


def write_curves(path: Path, algo: str, curves: dict[int, dict[int, float]]) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["method", "seed", "step", "score"])
        writer.writerows([algo, seed, step, score] for seed, curve in sorted(curves.items())
                         for step, score in sorted(curve.items()))


def interval(mine: np.ndarray, theirs: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    a = rng.choice(mine, (REPS, len(mine))).mean(1)
    b = rng.choice(theirs, (REPS, len(theirs))).mean(1)
    low, high = np.percentile(a - b, [2.5, 97.5])
    return float(low), float(high)


def verdict(low: float, high: float) -> str:
    if low <= 0 <= high:
        return "equal" if high - low < WIDTH else "inconclusive"
    return "differs"


def compare(benches: list[Path], algo: str, references: list[Path]) -> dict:
    mine = merge([o2o_curves(bench, algo) for bench in benches], f"{algo}, o2o")
    theirs = merge([reference_curves(path) for path in references], f"{algo}, reference")
    steps = sorted(set.intersection(*(set(c) for c in [*mine.values(), *theirs.values()])))
    if not steps:
        raise SystemExit(f"{algo}: o2o and the reference share no evaluation step")
    rng = np.random.default_rng(0)
    kinds = {run.kind for bench in benches if bench.suffix != ".csv" for run in o2o_runs(bench)
             if run.settings["algo"] == algo}
    unit = "env steps" if kinds == {"online"} else "updates"
    out = {"algo": algo, "seeds": [len(mine), len(theirs)], "steps": steps, "unit": unit}
    for measure, of in (("final", lambda c: c[steps[-1]]), ("auc", lambda c: float(np.mean([c[s] for s in steps])))):
        a = np.array([of(c) for c in mine.values()])
        b = np.array([of(c) for c in theirs.values()])
        low, high = interval(a, b, rng)
        out[measure] = {"o2o": float(a.mean()), "reference": float(b.mean()), "difference": float(a.mean() - b.mean()),
                        "ci": [low, high], "verdict": verdict(low, high)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, nargs="+", required=True)
    parser.add_argument("--reference", nargs="+", required=True, metavar="ALGO=FILE.csv[,FILE.csv]")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--o2o-csv", type=Path, default=None, metavar="DIR",
                        help="also write o2o's per-seed curves as DIR/ALGO-o2o.csv (the reference CSVs' columns)")
    args = parser.parse_args()
    results = [compare(args.bench, algo, [Path(path) for path in paths.split(",")])
               for algo, paths in (item.split("=", 1) for item in args.reference)]
    header = ("| algorithm | seeds (o2o, reference) | budget | final: o2o / reference | final: difference [95% CI] | "
              "AUC: o2o / reference | AUC: difference [95% CI] | verdict (final, AUC) |")
    lines = [header, "|" + "---|" * 8]
    for r in results:
        f, a = r["final"], r["auc"]
        lines.append(f"| {r['algo']} | {r['seeds'][0]}, {r['seeds'][1]} | {r['steps'][-1]:,} {r['unit']} | "
                     f"{f['o2o']:.1f} / {f['reference']:.1f} | {f['difference']:+.1f} [{f['ci'][0]:+.1f}, "
                     f"{f['ci'][1]:+.1f}] | {a['o2o']:.1f} / {a['reference']:.1f} | {a['difference']:+.1f} "
                     f"[{a['ci'][0]:+.1f}, {a['ci'][1]:+.1f}] | {f['verdict']}, {a['verdict']} |")
    table = "\n".join(lines)
    print(table)
    if args.o2o_csv:
        for algo, _ in (item.split("=", 1) for item in args.reference):
            write_curves(args.o2o_csv / f"{algo}-o2o.csv", algo, merge([o2o_curves(b, algo) for b in args.bench], algo))
    if args.out:
        args.out.write_text(table + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
