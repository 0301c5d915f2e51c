"""`o2o quickstart`: the whole pipeline on a small built-in default, about two minutes on 2 CPU cores.

It runs the shipped `quick` bench suite: collect a D4RL-protocol "medium" dataset on a real environment (Pendulum-v1,
20k transitions by o2o's shipped medium policy acting stochastically), train BC, TD3+BC and IQL offline with two seeds
each, fine-tune the TD3+BC and IQL runs online with their own mechanisms, then write the report (IQM with bootstrap
confidence intervals, figures, an HTML page). Every cell is a Ray task; re-running resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from o2o import bench, report
from o2o.data import load_dataset
from o2o.envs import normalized_score

SUITE = "quick"


def grid(steps: int | None = None, seeds: int | None = None) -> bench.Grid:
    values = bench.load_suite(SUITE)
    values.update({k: v for k, v in (("steps", steps), ("seeds", seeds)) if v is not None})
    return bench.Grid(**values)


def make_dataset(out: str | Path) -> Path:
    """The quickstart's dataset under `out`/datasets (collected once; the same seed always gives the same bytes)."""
    return Path(bench.materialize(grid().datasets[0], Path(out)))


def behaviour_score(dataset_dir: Path) -> float:
    """Normalized mean return of the behaviour policy over complete episodes (all episodes when none is measured)."""
    data = load_dataset(dataset_dir)
    behaviour_return = data.metadata.get("measured_return_mean")
    if behaviour_return is None:
        behaviour_return = float(data.episode_returns.mean())
    return float(normalized_score(data.env_id, behaviour_return, data.metadata))


def run(out: str | Path = "runs/quickstart", steps: int | None = None, seeds: int | None = None,
        workers: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the quick suite into `out`, then report on it; returns the bench and report summaries and the behaviour level."""
    out = Path(out)
    bench_summary = bench.run(grid(steps, seeds), out, workers=workers, progress=progress)
    report_summary = report.build([str(out)])
    dataset_dir = make_dataset(out)
    return {"bench": bench_summary, "report": report_summary, "dataset": str(dataset_dir),
            "behaviour_normalized_score": behaviour_score(dataset_dir)}
