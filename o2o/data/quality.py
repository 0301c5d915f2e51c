"""Action divergence and transition diversity: the two dataset properties of Belkhale, Cui & Sadigh, "Data Quality in
Imitation Learning" (NeurIPS 2023), estimated from the transitions alone.

The paper: "two fundamental properties that shape the quality of a dataset: i) action divergence: the mismatch between
the expert and learned policy at certain states; and ii) transition diversity: the noise present in the system for a
given state and action." Its analysis models the dynamics as `s' ~ N(mu(s, a), sigma^2 I)`, so transition diversity is
`sigma^2`; action divergence is a KL divergence between the learned and the expert policy at each state.

- Action divergence needs the expert policy, which a dataset does not hold, and a learned one, which needs training. o2o
  reports a reference-free stand-in, `action_variance`: how much the behaviour's actions disagree at a state, the
  squared error no learner that picks one action per state can go below on the dataset's states (a statistic of the
  kind the paper reports as "Action Variance", whose exact definition we have not checked). For each of `queries`
  dataset states drawn with a fixed seed, the `ACTION_NEIGHBOURS` nearest dataset states (the query included) give the
  variance of their actions per action dimension (ddof 1); the estimate is its mean over dimensions and queries, in the
  actions' own units. Known values: one policy `a = mu(s) + sigma_p * noise` with smooth `mu` gives `sigma_p^2`; a
  mixture that picks one of two policies whose means differ by `delta`, with probabilities p and 1 - p on the same
  states, gives `sigma_p^2 + p (1 - p) delta^2`. Where the policies visit different states, the neighbours come from one
  policy and the variance stays low: a learner can fit each policy where it acts, so its action divergence is low there
  too. Goal-conditioned data is not measured: its actions depend on a goal the observations do not hold.
- Transition diversity: `transition_noise_variance` estimates `sigma^2` (mean over state dimensions, in the
  observations' units squared) from the residuals of `s' - s` that a local linear model of `(s, a)` leaves. For each
  query transition (the same fixed-seed draw), `s' - s` is fitted by least squares on its `transition_neighbours(d)`
  nearest transitions in `(s, a)` (itself left out; `d` = state + action dimensions), and its residual `r` is divided
  by `1 + h`, `h` its leverage in that fit: under homoscedastic Gaussian noise `E[r^2] = sigma^2 (1 + h)`. This is
  exact for linear-Gaussian dynamics; on deterministic nonlinear dynamics (MuJoCo) the curvature within a neighbourhood
  leaves a floor that shrinks as the dataset grows, so noise well below that floor cannot be told from none.
  `transition_noise_fraction` is the share of each dimension's variance of `s' - s` that `(s, a)` leaves unexplained,
  averaged over the dimensions that move: a scale-free number to compare environments. Steps that end by termination are
  left out, since a reader may hold a placeholder next observation there.

Neighbours are searched among all transitions after standardizing every dimension with the dataset's mean and standard
deviation, with a kd-tree that may return a neighbour up to `1 + NEIGHBOUR_EPS` times farther than the exact one (on
HalfCheetah's 23 dimensions: 94% of the exact neighbours, mean distance 0.3% larger, four times faster). Above
`MAX_DIMENSIONS` searched dimensions neither measure is estimated: neighbourhoods there are no longer local (on random
Pusher data, 30 dimensions, the local fits already leave 19% of a deterministic s' - s unexplained) and the search
approaches brute force. Cost on 2 cores: about 5 s for a million Hopper transitions (14 dimensions), where `describe`
takes as long without them. Both estimates assume the states are the dataset's own (no rollouts of a learned policy:
the paper's divergence also counts states a learner drifts to) and that the observations are the Markov state. A
measure that cannot be estimated is None, with the reason in `quality_unavailable`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from o2o.data.dataset import Dataset

QUERIES = 10_000  # states and transitions drawn per estimate; Gaussian noise: sigma^2 to 1.4% per dimension
ACTION_NEIGHBOURS = 10
NEIGHBOUR_EPS = 1.0
MAX_DIMENSIONS = 32
_FIT_CHUNK = 1_000  # queries per batch of local fits, to bound memory at (chunk, neighbours, d + 1) float64


def transition_neighbours(dimensions: int) -> int:
    """Neighbours per local linear fit: four per parameter (`dimensions` slopes and an intercept), at least 32."""
    return max(4 * (dimensions + 1), 32)


def dataset_quality(dataset: Dataset, queries: int = QUERIES, seed: int = 0) -> dict[str, Any]:
    """JSON-ready `action_variance`, `transition_noise_variance` and `transition_noise_fraction` (see the module
    docstring), each None where it cannot be estimated, with the reason under `quality_unavailable`."""
    unavailable: dict[str, str] = {}
    action_variance = None
    if dataset.metadata.get("goal_conditioned"):
        unavailable["action_variance"] = ("goal-conditioned data: its actions depend on a goal the observations do "
                                          "not hold (relabel it with a task first)")
    elif dataset.observation_dim > MAX_DIMENSIONS:
        unavailable["action_variance"] = _too_many(dataset.observation_dim, "observation")
    elif len(dataset) < ACTION_NEIGHBOURS:
        unavailable["action_variance"] = f"{len(dataset)} transitions: it needs at least {ACTION_NEIGHBOURS}"
    else:
        action_variance = _action_variance(dataset, queries, seed)
    noise = fraction = None
    dimensions = dataset.observation_dim + dataset.action_dim
    fitted = int(np.count_nonzero(~np.asarray(dataset.terminals)))
    if dimensions > MAX_DIMENSIONS:
        unavailable["transition_noise"] = _too_many(dimensions, "observation and action")
    elif fitted <= transition_neighbours(dimensions):
        unavailable["transition_noise"] = (f"{fitted} non-terminal transitions: a local fit in {dimensions} dimensions "
                                           f"needs more than {transition_neighbours(dimensions)}")
    else:
        noise, fraction = _transition_noise(dataset, queries, seed)
        if fraction is None:
            unavailable["transition_noise_fraction"] = "no observation dimension ever changes from s to s'"
    return {"action_variance": action_variance, "transition_noise_variance": noise,
            "transition_noise_fraction": fraction, **({"quality_unavailable": unavailable} if unavailable else {})}


def _too_many(dimensions: int, what: str) -> str:
    return f"{dimensions} {what} dimensions: above {MAX_DIMENSIONS}, nearest neighbours are not local enough"


def _action_variance(dataset: Dataset, queries: int, seed: int) -> float:
    from scipy.spatial import cKDTree  # a dependency of jax

    states = _standardized(np.asarray(dataset.observations, np.float64))
    tree = cKDTree(states, balanced_tree=False, compact_nodes=False)  # faster to build, as fast to query
    drawn = _draw(len(states), queries, seed)
    _, neighbours = tree.query(states[drawn], k=ACTION_NEIGHBOURS, eps=NEIGHBOUR_EPS, workers=-1)  # (queries, k)
    actions = np.asarray(dataset.actions, np.float64)[neighbours]  # (queries, k, action_dim)
    return float(actions.var(axis=1, ddof=1).mean())


def _transition_noise(dataset: Dataset, queries: int, seed: int) -> tuple[float, float | None]:
    from scipy.spatial import cKDTree

    steps = np.flatnonzero(~np.asarray(dataset.terminals))
    observations = np.asarray(dataset.observations, np.float64)[steps]
    inputs = _standardized(np.concatenate([observations, np.asarray(dataset.actions, np.float64)[steps]], axis=1))
    changes = np.asarray(dataset.next_observations, np.float64)[steps] - observations  # (n, obs_dim)
    k = transition_neighbours(inputs.shape[1])
    tree = cKDTree(inputs, balanced_tree=False, compact_nodes=False)
    drawn = _draw(len(inputs), queries, seed)
    squared = []
    for chunk in np.array_split(drawn, -(-len(drawn) // _FIT_CHUNK)):
        _, found = tree.query(inputs[chunk], k=k + 1, eps=NEIGHBOUR_EPS, workers=-1)  # (chunk, k + 1)
        # The query's own index moved last and dropped (when k + 1 others tie at distance 0 it is not there: drop one).
        others = np.take_along_axis(found, np.argsort(found == chunk[:, None], axis=1, kind="stable"), axis=1)[:, :k]
        # Inputs relative to the query's, so its prediction is the intercept and its design row (0, ..., 0, 1).
        design = np.concatenate([inputs[others] - inputs[chunk, None], np.ones(others.shape + (1,))], axis=2)
        solve = np.linalg.pinv(design)  # (chunk, d + 1, k): coefficients = solve @ targets
        intercept = np.einsum("ck,cko->co", solve[:, -1], changes[others])
        leverage = np.einsum("ck,ck->c", solve[:, -1], solve[:, -1])  # e (X'X)^+ e' with e the intercept's row
        squared.append(np.square(changes[chunk] - intercept) / (1.0 + leverage[:, None]))
    noise = np.concatenate(squared).mean(axis=0)  # (obs_dim,) sigma_j^2
    spread = changes.var(axis=0)
    moving = spread > 0
    fraction = float(np.mean(noise[moving] / spread[moving])) if moving.any() else None
    return float(noise.mean()), fraction


def _standardized(rows: np.ndarray) -> np.ndarray:
    std = rows.std(axis=0)
    return (rows - rows.mean(axis=0)) / np.where(std > 1e-8, std, 1.0)


def _draw(n: int, queries: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n, min(queries, n), replace=False))
