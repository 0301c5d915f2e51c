"""Data corruption for robustness studies: the protocol of RIQL (Yang et al., "Towards Robust Offline Reinforcement
Learning under Diverse Data Corruption", ICLR 2024; its code YangRui2015/RIQL, attack.py).

A fraction `rate` of the transitions, chosen uniformly, has one field corrupted (the target); every other value stays
byte-identical. Targets: `states` (observations), `actions`, `rewards`, `dynamics` (next observations, nothing else).
- random: observations, actions and next observations get `U(-scale, scale)` noise times each dimension's standard
  deviation over the whole field; a reward is replaced by `30 U(-scale, scale)`.
- adversarial: within the same budget (at most `scale` standard deviations per dimension), 100 signed-gradient steps
  of size `0.01 scale` from a uniform start push the value of a Q-ensemble trained on the clean data down: the mean
  over its critics of Q(s, a) for states and actions, of Q(s', pi(s')) for dynamics; a reward becomes `-scale r`.
Where o2o departs from the authors' code, and why:
- exactly `round(rate N)` transitions are corrupted (the code draws one Bernoulli(rate) per transition): the count a
  user asks for is the count they get;
- corrupted actions are clipped to the action box (the code leaves them outside): o2o's loader refuses such actions,
  and a tanh policy cannot produce them; without a known env, to the range each dimension covers in the data;
- the adversarial start is `U(-scale, scale)` standard deviations (the code's is also multiplied by the standard
  deviation, a unit slip), and each step is `sign(gradient)` (the code's fresh Adam per step: g / (|g| + 1e-8), the
  same but where the gradient is below 1e-8, which its mean over a chunk's rows makes chunk-size dependent);
- the dynamics attack reads the attacker's deterministic action pi(s') (the code's call of a stochastic actor fails);
- a corruption stacked on data already corrupted k times draws from `default_rng([seed, k])`, the first one from
  `default_rng(seed)`: the same --seed then picks other rows (the code's global generator has moved on by then).
The result records the protocol and its parameters in `metadata["corruption"]` (a list: corruptions stack) and which
transitions were corrupted in the per-step extra field `corrupted`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from o2o.data.dataset import Dataset
from o2o.errors import O2OError

TARGETS = {"states": "observations", "actions": "actions", "rewards": "rewards", "dynamics": "next_observations"}
MODES = ("random", "adversarial")
RANDOM_REWARD_SCALE = 30.0  # a randomly corrupted reward is 30 U(-scale, scale) (authors' code)
ATTACK_STEPS = 100  # signed-gradient steps of the adversarial attack (authors' code)
ATTACK_STEP_SIZE = 0.01  # per step, in units of `scale` (authors' code)
ATTACK_ROWS = 8192  # rows perturbed together: bounded memory whatever the dataset's size
CORRUPTED = "corrupted"  # the extra per-step field: True where this or an earlier corruption changed the transition


@dataclasses.dataclass(frozen=True)
class Attacker:
    """A Q-ensemble trained on the clean data, as JAX functions of raw (unnormalized) states and actions:
    `q_values(observations, actions) -> (num_critics, batch)` and its policy's deterministic `policy(observations) ->
    actions`; `description` says where it came from (recorded in the corrupted dataset's metadata)."""

    q_values: Callable[[Any, Any], Any]
    policy: Callable[[Any], Any]
    description: dict[str, Any]


def check_parameters(target: str, mode: str, rate: float, scale: float) -> None:
    if target not in TARGETS:
        raise O2OError(f"unknown corruption target {target!r}; choose one of {', '.join(TARGETS)}")
    if mode not in MODES:
        raise O2OError(f"unknown corruption mode {mode!r}; choose one of {', '.join(MODES)}")
    if not 0.0 < rate <= 1.0:
        raise O2OError(f"--rate must be a fraction in (0, 1] (got {rate})")
    if not (np.isfinite(scale) and scale > 0.0):
        raise O2OError(f"--scale must be a positive number (got {scale})")


def corrupt(dataset: Dataset, target: str, mode: str = "random", rate: float = 0.3, scale: float = 1.0, seed: int = 0,
            attacker: Attacker | None = None, action_bounds: tuple[np.ndarray, np.ndarray] | None = None) -> Dataset:
    """A new dataset with `target` corrupted on `round(rate N)` transitions (the module's protocol); `dataset` is not
    modified. `attacker` is required for adversarial states, actions and dynamics; `action_bounds` (low, high) clip
    corrupted actions (default: each dimension's range in the data); the record keeps the bounds used."""
    check_parameters(target, mode, rate, scale)
    if mode == "adversarial" and target != "rewards" and attacker is None:
        raise O2OError(f"adversarial {target} corruption needs an attacker: a Q-ensemble trained on the clean data "
                       "(--attacker RUN_DIR, an o2o run of sacn or edac on this dataset)")
    n = len(dataset)
    earlier = len(dataset.metadata.get("corruption", []))
    # the first corruption draws from the seed alone, so that datasets corrupted before stacked draws were told apart
    # reproduce bit for bit
    rng = np.random.default_rng([seed, earlier] if earlier else seed)
    rows = np.sort(rng.choice(n, size=round(rate * n), replace=False))
    field = TARGETS[target]
    clean = np.asarray(getattr(dataset, field))
    corrupted_values = clean.copy()
    if target == "rewards":
        corrupted_values[rows] = (RANDOM_REWARD_SCALE * rng.uniform(-scale, scale, size=rows.size) if mode == "random"
                                  else -scale * clean[rows])
    else:
        std = clean.astype(np.float64).std(axis=0)
        if mode == "random":
            offsets = rng.uniform(-scale, scale, size=(rows.size, clean.shape[1]))
        else:
            offsets = _adversarial_offsets(dataset, target, rows, std, scale, rng, attacker)
        corrupted_values[rows] = clean[rows].astype(np.float64) + offsets * std
        if target == "actions":
            low, high = action_bounds if action_bounds is not None else (clean.min(axis=0), clean.max(axis=0))
            corrupted_values[rows] = np.clip(corrupted_values[rows], low, high)
    flags = np.zeros(n, bool) if CORRUPTED not in dataset.extras else np.asarray(dataset.extras[CORRUPTED]).copy()
    flags[rows] = True
    record = {"protocol": "RIQL (Yang et al., ICLR 2024)", "target": target, "mode": mode, "rate": rate, "scale": scale,
              "seed": seed, "corrupted_transitions": int(rows.size)}
    if target == "actions":
        record["action_bounds"] = {"low": np.broadcast_to(low, clean.shape[1:]).tolist(),
                                   "high": np.broadcast_to(high, clean.shape[1:]).tolist()}
    if attacker is not None and mode == "adversarial" and target != "rewards":
        record["attacker"] = attacker.description
    metadata = {**dataset.metadata, "corruption": [*dataset.metadata.get("corruption", []), record]}
    arrays = {**dataset.arrays(), field: corrupted_values}
    return Dataset(**arrays, extras={**dataset.extras, CORRUPTED: flags}, metadata=metadata)


def corruption_key(metadata: dict[str, Any]) -> str | None:
    """"MODE-TARGET" of a dataset corrupted once (presets are per corruption); None for clean or stacked corruptions."""
    records = metadata.get("corruption") or []
    return f"{records[0]['mode']}-{records[0]['target']}" if len(records) == 1 else None


def _adversarial_offsets(dataset: Dataset, target: str, rows: np.ndarray, std: np.ndarray, scale: float,
                         rng: np.random.Generator, attacker: Attacker) -> np.ndarray:
    """(rows, dim) offsets in standard deviations, within [-scale, scale], that lower the attacker's mean Q."""
    import jax
    import jax.numpy as jnp

    def value(offsets, observations, actions, next_observations):
        shift = offsets * jnp.asarray(std, jnp.float32)
        if target == "states":
            return attacker.q_values(observations + shift, actions).mean(axis=0).sum()
        if target == "actions":
            return attacker.q_values(observations, actions + shift).mean(axis=0).sum()
        attacked = next_observations + shift
        return attacker.q_values(attacked, attacker.policy(attacked)).mean(axis=0).sum()

    gradient = jax.grad(value)
    step = ATTACK_STEP_SIZE * scale

    @jax.jit
    def attack(offsets, observations, actions, next_observations):
        def one_step(offsets, _):
            g = gradient(offsets, observations, actions, next_observations)
            return jnp.clip(offsets - step * jnp.sign(g), -scale, scale), None

        return jax.lax.scan(one_step, offsets, None, length=ATTACK_STEPS)[0]

    field_dim = np.asarray(getattr(dataset, TARGETS[target])).shape[1]
    start = rng.uniform(-scale, scale, size=(rows.size, field_dim))
    out = np.empty_like(start)
    for begin in range(0, rows.size, ATTACK_ROWS):
        part = rows[begin:begin + ATTACK_ROWS]
        inputs = [jnp.asarray(np.asarray(getattr(dataset, name))[part], jnp.float32)
                  for name in ("observations", "actions", "next_observations")]
        out[begin:begin + part.size] = np.asarray(attack(jnp.asarray(start[begin:begin + part.size], jnp.float32), *inputs))
    return out
