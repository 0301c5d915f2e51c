"""Multi-seed statistics with rliable (Agarwal et al., 2021): IQM, mean, median and optimality gap with stratified
bootstrap confidence intervals, performance profiles and probability of improvement.

Score matrices are (runs, tasks): runs are seeds, tasks are datasets. Scores are on the normalized 0-100 scale (or a
success rate in %), so the optimality gap is measured against 100. Every bootstrap draws from a fixed seed: the same
results give the same report.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np

CONFIDENCE = 0.95


def _rliable():
    with warnings.catch_warnings():  # arch's import-time deprecation notices are not the user's business
        warnings.simplefilter("ignore")
        from rliable import library, metrics
    return library, metrics


def aggregate_functions() -> dict[str, Callable[[np.ndarray], float]]:
    _, metrics = _rliable()
    return {
        "iqm": metrics.aggregate_iqm,
        "mean": metrics.aggregate_mean,
        "median": metrics.aggregate_median,
        "optimality_gap": lambda x: metrics.aggregate_optimality_gap(x, gamma=100.0),
    }


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """rliable draws its stratified resamples from NumPy's global generator (its random_state reaches arch, not the
    draw): seed that generator for the call and give the caller's state back afterwards."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # arch's deprecation notices about RandomState
            yield
    finally:
        np.random.set_state(saved)


def _intervals(score_dict: dict[str, np.ndarray], func: Callable, reps: int, seed: int):
    library, _ = _rliable()
    with _seeded(seed):
        return library.get_interval_estimates(score_dict, func, reps=reps, confidence_interval_size=CONFIDENCE,
                                              random_state=np.random.RandomState(seed))


def aggregates(scores: dict[str, np.ndarray], reps: int = 2000, seed: int = 0) -> dict[str, dict[str, object]]:
    """Per method: each aggregate's point estimate and its 95% stratified-bootstrap interval."""
    functions = aggregate_functions()
    stacked = lambda x: np.array([f(x) for f in functions.values()])  # noqa: E731
    points, intervals = _intervals(scores, stacked, reps, seed)
    out = {}
    for method in scores:
        out[method] = {}
        for i, name in enumerate(functions):
            out[method][name] = float(points[method][i])
            out[method][f"{name}_ci"] = [float(intervals[method][0, i]), float(intervals[method][1, i])]
    return out


def iqm_with_ci(values: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, list[float]]:
    """IQM of one dataset's per-seed scores and its bootstrap interval (seeds resampled)."""
    _, metrics = _rliable()
    points, intervals = _intervals({"x": np.asarray(values, float).reshape(-1, 1)},
                                   lambda x: np.array([metrics.aggregate_iqm(x)]), reps, seed)
    return float(points["x"][0]), [float(intervals["x"][0, 0]), float(intervals["x"][1, 0])]


def performance_profiles(scores: dict[str, np.ndarray], taus: np.ndarray, reps: int = 2000, seed: int = 0):
    """Fraction of runs scoring above each tau, per method, with bootstrap bands: (profiles, bands)."""
    library, _ = _rliable()
    with _seeded(seed):
        return library.create_performance_profile(scores, taus, reps=reps, confidence_interval_size=CONFIDENCE)


def probability_of_improvement(scores: dict[str, np.ndarray], reps: int = 2000, seed: int = 0):
    """P(X > Y) for every ordered pair of methods (ties count half), averaged over tasks, with its interval:
    {(x, y): (point, [low, high])}."""
    _, metrics = _rliable()
    methods = list(scores)
    pairs = {f"{x}\u0000{y}": (scores[x], scores[y]) for x in methods for y in methods if x != y}
    if not pairs:
        return {}
    points, intervals = _intervals(pairs, lambda a, b: np.array([metrics.probability_of_improvement(a, b)]), reps, seed)
    return {tuple(key.split("\u0000")): (float(points[key][0]), [float(intervals[key][0, 0]), float(intervals[key][1, 0])])
            for key in pairs}


def iqm_curve(scores: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """IQM at every step of (runs, tasks, steps) scores, and its (2, steps) interval."""
    _, metrics = _rliable()
    steps = scores.shape[-1]
    func = lambda x: np.array([metrics.aggregate_iqm(x[..., t]) for t in range(steps)])  # noqa: E731
    points, intervals = _intervals({"x": scores}, func, reps, seed)
    return points["x"], intervals["x"]


def rectangular(per_task: dict[str, list[float]]) -> np.ndarray:
    """(runs, tasks) from per-task score lists of possibly unequal length: the stratified bootstrap needs the same
    number of runs per task, so each task keeps its first `min` runs (callers sort runs by seed)."""
    n = min(len(v) for v in per_task.values())
    return np.array([v[:n] for v in per_task.values()], float).T
