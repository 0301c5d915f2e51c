"""`o2o quickstart`: the main job end to end on a small built-in default, in about a minute on 2 CPU cores.

Make a mixed-quality dataset on a real environment (Pendulum-v1, a scripted controller, 30% good episodes and 70% with
a torque bias), describe it, then train BC, TD3+BC and IQL offline with two seeds each and evaluate every seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from o2o.collect.scripted import collect_pendulum
from o2o.data import describe, load_dataset, write_o2o
from o2o.envs import normalized_score, reference_returns
from o2o.train import offline

# Small networks keep the whole job near a minute on 2 cores (the papers use 256-256), and Pendulum's 200-step episodes
# take a shorter horizon (discount 0.95) so that the critics settle within the budget.
ALGORITHMS = {
    "bc": {"hidden_dims": "64,64"},
    "td3bc": {"hidden_dims": "64,64", "discount": "0.95"},
    "iql": {"hidden_dims": "64,64", "discount": "0.95"},
}


def run(out: str | Path = "runs/quickstart", steps: int = 20_000, seeds: int = 2, progress: bool = True,
        eval_episodes: int = 30) -> dict[str, Any]:
    out = Path(out)
    dataset_dir = out / "dataset-pendulum-mixed"
    if not (dataset_dir / "metadata.json").is_file():
        write_o2o(collect_pendulum(episodes=50, seed=0), dataset_dir)
    dataset = load_dataset(dataset_dir)
    info = describe(dataset, reference_returns(dataset.env_id, dataset.metadata))
    behaviour = float(normalized_score(dataset.env_id, info["return_mean"], dataset.metadata))
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
    return {"run_dir": str(out), "dataset": str(dataset_dir), "env": dataset.env_id, "transitions": len(dataset),
            "episodes": dataset.num_episodes, "behaviour_normalized_score": behaviour, "steps": steps, "seeds": seeds,
            "results": results}
