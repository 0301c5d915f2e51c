"""d3rlpy's IQL on an OGBench singletask dataset, as a reference for o2o's IQL on the same data (issue: is a gap
between them real?). Runs in its own environment, because d3rlpy pins gymnasium 1.0.0:

    python -m venv venv-d3 && venv-d3/bin/pip install torch==2.13.0 d3rlpy==2.8.1 ogbench
    venv-d3/bin/python benchmarks/compare_iql_d3rlpy.py datasets/cube-single-play-v0.npz --seed 0

Data and rewards come from OGBench's own loader and relabelling (`make_env_and_datasets`); a success step (mask 0)
becomes a d3rlpy terminal, so the TD target stops there as in o2o and the FQL code. Settings: the published IQL ones
(4 x 256 ReLU, expectile 0.9, AWR temperature 1, batch 256, Adam 3e-4, discount 0.99). Evaluation: deterministic
actions, `--episodes` episodes of the singletask env, success = info["success"] at the last step; prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", help="an OGBench .npz (cube-single-play-v0.npz)")
    parser.add_argument("--task", default="cube-single-play-singletask-task2-v0")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--eval-every", type=int, default=50_000)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import d3rlpy
    import torch
    from ogbench.utils import make_env_and_datasets

    torch.set_num_threads(1)
    env, train, _ = make_env_and_datasets(args.task, dataset_path=args.dataset)
    d3rlpy.seed(args.seed)
    success_ends = train["masks"] == 0
    dataset = d3rlpy.dataset.MDPDataset(
        observations=train["observations"], actions=np.clip(train["actions"], -1 + 1e-5, 1 - 1e-5),
        rewards=train["rewards"], terminals=success_ends.astype(np.float32),
        timeouts=(train["terminals"].astype(bool) & ~success_ends).astype(np.float32),
    )
    encoder = d3rlpy.models.VectorEncoderFactory(hidden_units=[256] * 4)
    iql = d3rlpy.algos.IQLConfig(
        actor_encoder_factory=encoder, critic_encoder_factory=encoder, value_encoder_factory=encoder,
        expectile=0.9, weight_temp=1.0, batch_size=256, gamma=0.99,
    ).create(device="cpu")
    results, start = [], time.time()
    for done in range(args.eval_every, args.steps + 1, args.eval_every):
        iql.fit(dataset, n_steps=args.eval_every, n_steps_per_epoch=args.eval_every, show_progress=False,
                save_interval=10**9, experiment_name=f"d3rlpy-iql-s{args.seed}", with_timestamp=True)
        successes = []
        for episode in range(args.episodes):
            observation, _ = env.reset(seed=10_000 * (args.seed + 1) + episode)
            finished, info = False, {}
            while not finished:
                action = iql.predict(observation[None].astype(np.float32))[0]
                observation, _, terminated, truncated, info = env.step(np.clip(action, -1, 1))
                finished = terminated or truncated
            successes.append(float(info["success"]))
        results.append({"step": done, "success_rate": 100 * float(np.mean(successes))})
        print(json.dumps({"seed": args.seed, **results[-1], "seconds": time.time() - start}), flush=True)


if __name__ == "__main__":
    main()
