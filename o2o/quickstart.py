"""`o2o quickstart`: the main job end to end on a small built-in default, in about a minute on 2 CPU cores.

Collect a D4RL-protocol "medium" dataset on a real environment (Pendulum-v1, 20k transitions by o2o's shipped medium
policy acting stochastically), then train BC, TD3+BC and IQL offline with two seeds each and evaluate every seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from o2o.collect.levels import collect
from o2o.data import load_dataset, write_o2o
from o2o.envs import normalized_score
from o2o.train import offline

ENV, LEVEL, TRANSITIONS = "Pendulum-v1", "medium", 20_000
# Small networks keep the whole job near a minute on 2 cores (the papers use 256-256), and Pendulum's 200-step
# episodes take a shorter horizon (discount 0.95) so that the critics settle within the budget.
ALGORITHMS = {
    "bc": {"hidden_dims": "64,64"},
    "td3bc": {"hidden_dims": "64,64", "discount": "0.95"},
    "iql": {"hidden_dims": "64,64", "discount": "0.95"},
}


def make_dataset(out: str | Path) -> Path:
    """The quickstart's dataset under `out` (collected once; the same seed always gives the same content hash)."""
    dataset_dir = Path(out) / f"dataset-{ENV}-{LEVEL}"
    if not (dataset_dir / "metadata.json").is_file():
        write_o2o(collect(ENV, LEVEL, transitions=TRANSITIONS, seed=0), dataset_dir)
    return dataset_dir


def run(out: str | Path = "runs/quickstart", steps: int = 20_000, seeds: int = 2, progress: bool = True,
        eval_episodes: int = 30, dataset: str | Path | None = None) -> dict[str, Any]:
    """Train and evaluate the three algorithms on `dataset` (default: `make_dataset(out)`); runs resume if killed."""
    out = Path(out)
    dataset_dir = Path(dataset) if dataset else make_dataset(out)
    data = load_dataset(dataset_dir)
    behaviour_return = data.metadata.get("measured_return_mean")  # complete episodes only, when collected by o2o
    if behaviour_return is None:
        behaviour_return = float(data.episode_returns.mean())
    behaviour = float(normalized_score(data.env_id, behaviour_return, data.metadata))
    results = {}
    for algo, overrides in ALGORITHMS.items():
        run_dir = out / algo
        settings = offline.OfflineSettings(algo=algo, dataset=str(dataset_dir), steps=steps, seeds=seeds,
                                           eval_every=max(1, steps // 4), eval_episodes=eval_episodes, out=str(run_dir),
                                           agent_overrides=dict(overrides))
        if (run_dir / "summary.json").is_file():
            results[algo] = offline.runs.read_json(run_dir / "summary.json")
        elif (run_dir / "config.json").is_file():
            results[algo] = offline.resume(run_dir, progress=progress)
        else:
            results[algo] = offline.train(settings, progress=progress)
    return {"run_dir": str(out), "dataset": str(dataset_dir), "env": data.env_id, "level": data.metadata.get("level"),
            "transitions": len(data), "episodes": data.num_episodes, "behaviour_normalized_score": behaviour,
            "steps": steps, "seeds": seeds, "results": results}
