"""Which transitions an offline batch holds: drawn uniformly, or weighted by the return of their trajectory.

Hong, Agrawal, Tachet des Combes, Laroche, "Harnessing Mixed Offline Reinforcement Learning Datasets via Trajectory
Weighting" (ICLR 2023); the canonical code is `Improbable-AI/harness-offline-rl` at cb6e709,
implicit_q_learning/dataset_utils.py:166-187 (the same maths in its JaxCQL and TD3+BC copies). With trajectory i's
undiscounted return G_i, its T_i steps and the temperature alpha:

    return-weighted (RW):     w_i = (G_i - min G) / (max G - min G)
    advantage-weighted (AW):  A_i = G_i - V(s0_i),  V = ordinary least squares (with intercept) of G on each
                              trajectory's first observation;  w_i = (A_i - min A) / (max A - min A)
    p(transition of i) = exp(w_i / alpha) / sum_j T_j exp(w_j / alpha)

There is no length normalization: trajectory i is drawn with probability P_i = T_i exp(w_i / alpha) / Z, then one of
its steps uniformly, which is exactly the per-transition softmax above. alpha -> infinity gives uniform transitions,
alpha -> 0 only the best trajectory. Where every return (RW) or advantage (AW) is equal there is nothing to weight by,
and the sampler is uniform (the reference divides by zero there). AW subtracts what a trajectory's start state
predicts, so that trajectories that merely started in easy states are not favoured; with uninformative first
observations it equals RW.

The weights come from the rewards as stored in the dataset, before any agent-side reward transform: min-max
normalization removes a reward scale, but a shift by c moves G_i by c T_i, which depends on the length.
"""

from __future__ import annotations

import numbers
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from o2o.data.dataset import Dataset
from o2o.errors import O2OError

SAMPLERS = ("uniform", "return-weighted", "advantage-weighted")
# The paper's notation (its code's sampler strings are "RW-0.1", "AW-0.1"), used to name a weighted method in results.
SHORT_NAMES = {"return-weighted": "RW", "advantage-weighted": "AW"}
# Hong et al.'s IQL and TD3+BC sweeps (experiments/d4rl/run_iql.py:161, run_td3bc.py:157); their CQL sweep used 0.2.
DEFAULT_TEMPERATURE = 0.1
# Returns or advantages whose spread is below this fraction of the largest |return| are equal up to round-off (an
# interpolating AW fit leaves residuals of about 1e-13 of the returns, which min-max normalization would blow up).
EQUAL_WITHIN = 1e-9


def check(sampler: str, temperature: float) -> None:
    """Settings are refused before any data loads: an unknown sampler, or a temperature that is not a finite number
    above 0 (alpha divides the weights)."""
    if sampler not in SAMPLERS:
        raise O2OError(f"--sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
    if not (isinstance(temperature, numbers.Real) and not isinstance(temperature, bool) and np.isfinite(temperature) and temperature > 0):
        raise O2OError(f"--sampler-temperature {temperature!r}: must be a finite number above 0 "
                       f"(Hong et al. use {DEFAULT_TEMPERATURE})")


def label(sampler: str, temperature: float) -> str:
    """'uniform', or the paper's name of a weighted sampler with its temperature: 'RW-0.1', 'AW-0.2'."""
    return sampler if sampler == "uniform" else f"{SHORT_NAMES[sampler]}-{temperature:g}"


def method_name(algo: str, sampler: str, temperature: float) -> str:
    """How results name an algorithm trained with `sampler`: `td3bc`, `td3bc+RW-0.1` (never pooled with uniform)."""
    return algo if sampler == "uniform" else f"{algo}+{label(sampler, temperature)}"


def trajectory_probabilities(dataset: Dataset, sampler: str, temperature: float = DEFAULT_TEMPERATURE) -> np.ndarray:
    """(num_episodes,) float64, summing to 1: P_i, the probability that a transition drawn by `sampler` belongs to
    episode i (each of its steps then has P_i / T_i)."""
    check(sampler, temperature)
    if len(dataset) == 0:
        raise O2OError(f"--sampler {sampler}: the dataset holds no transitions")
    lengths, returns = dataset.episode_lengths.astype(np.float64), dataset.episode_returns
    scores = np.zeros_like(returns)
    if sampler == "return-weighted":
        scores = returns
    elif sampler == "advantage-weighted":
        scores = returns - start_state_values(dataset)
    spread = scores.max() - scores.min()
    if spread <= EQUAL_WITHIN * np.abs(returns).max():
        if sampler != "uniform":
            warnings.warn(f"--sampler {sampler}: all {dataset.num_episodes} episodes have the same "
                          f"{'return' if sampler == 'return-weighted' else 'advantage'}; sampling uniformly",
                          RuntimeWarning, stacklevel=2)
        weights = np.zeros_like(returns)
    else:
        weights = (scores - scores.min()) / spread  # in [0, 1]
    logits = np.log(lengths) + weights / temperature
    probabilities = np.exp(logits - logits.max())
    return probabilities / probabilities.sum()


def start_state_values(dataset: Dataset) -> np.ndarray:
    """(num_episodes,) float64: the returns' ordinary least-squares fit (with intercept, unregularized, in-sample) on
    each episode's raw first observation, as sklearn's LinearRegression in the reference; the minimum-norm solution
    where the fit is under-determined, which predicts what sklearn's does."""
    first = np.asarray(dataset.observations[dataset.episode_starts], np.float64)
    features = np.column_stack([first, np.ones(len(first))])
    coefficients, *_ = np.linalg.lstsq(features, dataset.episode_returns, rcond=None)
    return features @ coefficients


def transition_probabilities(dataset: Dataset, sampler: str, temperature: float = DEFAULT_TEMPERATURE) -> np.ndarray:
    """(N,) float64, summing to 1: the probability of drawing each transition (the reference's per-step softmax)."""
    per_episode = trajectory_probabilities(dataset, sampler, temperature) / dataset.episode_lengths
    return np.repeat(per_episode, dataset.episode_lengths)


@struct.dataclass
class WeightedTrajectories:
    """A weighted draw of trajectories as a Walker-Vose alias table: pick one of the M slots uniformly, keep its own
    trajectory with probability `keep[slot]`, else take `alias[slot]`. Each trajectory's probability is then resolved
    to float32 precision relative to 1/M, where a float32 CDF would resolve it only to about 1e-7 absolute: the
    thousands of low-return trajectories of a mixed dataset each weigh about that much."""

    keep: np.ndarray | jax.Array  # (M,) float32
    alias: np.ndarray | jax.Array  # (M,) int32
    starts: np.ndarray | jax.Array  # (M,) int32: each trajectory's first transition
    lengths: np.ndarray | jax.Array  # (M,) int32


def weighted_trajectories(dataset: Dataset, sampler: str, temperature: float) -> WeightedTrajectories | None:
    """The table `draw` samples from (NumPy arrays), or None for the uniform sampler (the agent's own draw)."""
    check(sampler, temperature)
    if sampler == "uniform":
        return None
    keep, alias = alias_table(trajectory_probabilities(dataset, sampler, temperature))
    return WeightedTrajectories(keep.astype(np.float32), alias.astype(np.int32),
                                dataset.episode_starts.astype(np.int32), dataset.episode_lengths.astype(np.int32))


def alias_table(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias method (IEEE Trans. Software Eng. 1991): (keep, alias) such that slot j, drawn with probability
    1/M, yields j with probability keep[j] and alias[j] otherwise; in float64."""
    m = len(probabilities)
    scaled = np.asarray(probabilities, np.float64) * m
    keep, alias = np.ones(m), np.arange(m)
    small, large = [i for i in range(m) if scaled[i] < 1.0], [i for i in range(m) if scaled[i] >= 1.0]
    while small and large:
        under, over = small.pop(), large.pop()
        keep[under], alias[under] = scaled[under], over
        scaled[over] -= 1.0 - scaled[under]
        (small if scaled[over] < 1.0 else large).append(over)
    return keep, alias  # slots left in either list hold 1 up to round-off: they keep their own trajectory


def draw(trajectories: WeightedTrajectories, key: jax.Array, batch_size: int) -> jax.Array:
    """(batch_size,) int32 transition indices, i.i.d.: a trajectory from the table, then one of its steps uniformly.
    All the random bits come from one call (`jax.random.randint` draws twice per call, and three of them cost more
    than the uniform sampler's whole draw); taking remainders of 32-bit words biases a slot or a step by less than
    M / 2^32 or T_i / 2^32 of its probability, far below the table's float32 resolution."""
    slot_bits, keep_bits, step_bits = jax.random.bits(key, (3, batch_size), jnp.uint32)
    slots = (slot_bits % trajectories.keep.shape[0]).astype(jnp.int32)
    uniform = (keep_bits >> 8).astype(jnp.float32) * 2.0**-24  # 24 bits: exact in float32, in [0, 1)
    episodes = jnp.where(uniform < trajectories.keep[slots], slots, trajectories.alias[slots])
    steps = step_bits % trajectories.lengths[episodes].astype(jnp.uint32)
    return trajectories.starts[episodes] + steps.astype(jnp.int32)
