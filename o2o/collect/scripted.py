"""A scripted controller for Pendulum-v1 and a mixed-quality dataset made with it: a cheap, real task for the
quickstart and for learning tests (until `o2o collect` ships trained behaviour policies)."""

from __future__ import annotations

import numpy as np

from o2o.data import Dataset
from o2o.envs import make_env
from o2o.envs.scores import O2O_REFERENCES

PENDULUM_ID = "Pendulum-v1"
PENDULUM_RANDOM_RETURN, PENDULUM_CONTROLLER_RETURN = O2O_REFERENCES[PENDULUM_ID]


def pendulum_controller(observations: np.ndarray) -> np.ndarray:
    """Energy pumping until the pole is near upright, then a PD balance law. observations (n, 3) -> torques (n, 1)."""
    cos, sin, velocity = observations[:, 0], observations[:, 1], observations[:, 2]
    angle = np.arctan2(sin, cos)
    energy = 0.5 * velocity**2 + 15.0 * (cos - 1.0)  # 0 at rest upright; 3g/2l = 15 for Pendulum-v1
    swing = np.where(energy < 0, 2.0 * np.sign(velocity), -np.sign(velocity))
    torque = np.where(cos > 0.8, -(10.0 * angle + 2.0 * velocity), swing)
    return np.clip(torque, -2.0, 2.0)[:, None]


def collect_pendulum(
    episodes: int = 50, controller_fraction: float = 0.3, noise: float = 0.3, poor_bias: float = 1.5, seed: int = 0
) -> Dataset:
    """`controller_fraction` of the episodes by the noisy controller, the rest by the same controller with a constant
    torque bias `poor_bias`, which fails to hold the pole up (return about -1080, normalized about 9).

    Behaviour cloning averages the two and inherits part of the bias; an offline RL agent can pick the good actions."""
    env = make_env(PENDULUM_ID)
    rng = np.random.default_rng(seed)
    by_controller = rng.permutation(episodes) < round(controller_fraction * episodes)
    columns: dict[str, list] = {k: [] for k in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")}
    for episode in range(episodes):
        observation, _ = env.reset(seed=seed * 100_003 + episode)
        done = False
        while not done:
            bias = 0.0 if by_controller[episode] else poor_bias
            action = np.clip(pendulum_controller(observation[None])[0] + bias + noise * rng.normal(size=1), -2.0, 2.0)
            next_observation, reward, terminated, truncated, _ = env.step(action.astype(np.float32))
            for key, value in (("observations", observation), ("actions", action), ("rewards", reward),
                               ("next_observations", next_observation), ("terminals", terminated), ("timeouts", truncated)):
                columns[key].append(value)
            observation, done = next_observation, terminated or truncated
    env.close()
    arrays = {k: np.asarray(v, dtype=bool if k in ("terminals", "timeouts") else np.float32) for k, v in columns.items()}
    return Dataset(**arrays, metadata={
        "env_id": PENDULUM_ID,
        "ref_min_score": PENDULUM_RANDOM_RETURN,
        "ref_max_score": PENDULUM_CONTROLLER_RETURN,
        "description": f"Pendulum-v1, {episodes} episodes: {controller_fraction:.0%} scripted controller "
                       f"(noise {noise}), the rest the controller with torque bias {poor_bias}",
        "provenance": {"collector": "o2o.collect.scripted.collect_pendulum", "episodes": episodes,
                       "controller_fraction": controller_fraction, "noise": noise, "poor_bias": poor_bias,
                       "seed": seed},
    })
