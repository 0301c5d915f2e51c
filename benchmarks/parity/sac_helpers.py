"""What the JAX adapters of the SAC family share (jaxrl's SAC, rlpd, wsrl; numpy only, no o2o import): o2o's Gaussian
policy's output layer as the references' separate mean and log-std layers and back, the references' draws replaced by
the injected ones in call order, the architecture notes' check that a jitted forward pass equals the eager one, the
smallest log-std a policy reaches (the references clip log-stds lower than o2o) and the temperature-loss deviation."""

from __future__ import annotations

import contextlib
import inspect
from unittest import mock

import numpy as np

TEMPERATURE_DEVIATION = {
    "name": "temperature loss",
    "reference": "L(alpha) = alpha (H - target_entropy), minimised over log alpha: its gradient is alpha (H - target) "
                 "(jaxrl's temperature.update; rlpd's update_temperature is the same)",
    "o2o": "L(alpha) = log(alpha) (H - target_entropy): gradient (H - target), as the SAC authors' softlearning "
           "(log_alpha * stop_gradient(-log_pi - target_entropy)) and Stable-Baselines3",
    "effect": "none at the first update (alpha = 1 at the start); after it the Adam steps of log alpha differ as alpha "
              "moves away from 1",
}


def log_stds_range(hidden: dict, log_std: dict, observations: np.ndarray) -> tuple[float, float]:
    """The smallest and largest log-std a ReLU policy (`hidden` Dense_0, Dense_1, ...; its `log_std` layer) outputs on
    `observations` before any clipping."""
    x = observations
    for name in sorted(hidden, key=lambda n: int(n.split("_")[1])):
        x = np.maximum(x @ hidden[name]["kernel"] + hidden[name]["bias"], 0.0)
    log_stds = x @ log_std["kernel"] + log_std["bias"]
    return float(log_stds.min()), float(log_stds.max())


def split_policy(mlp: dict, action_dim: int) -> tuple[dict, dict, dict]:
    """o2o's GaussianPolicy MLP (Dense_0 ... Dense_n; Dense_n's outputs are (mean, log_std)) as (its hidden layers
    Dense_0 ... Dense_{n-1}, the mean layer, the log-std layer): the references' heads are two Dense layers on the same
    features."""
    layers = sorted(mlp, key=lambda name: int(name.split("_")[1]))
    last = mlp[layers[-1]]
    head = lambda columns: {"kernel": last["kernel"][:, columns], "bias": last["bias"][columns]}
    return ({name: mlp[name] for name in layers[:-1]}, head(slice(None, action_dim)), head(slice(action_dim, None)))


def join_policy(hidden: dict, mean: dict, log_std: dict) -> dict:
    """The inverse of `split_policy`."""
    last = {p: np.concatenate([np.asarray(mean[p]), np.asarray(log_std[p])], axis=-1) for p in ("kernel", "bias")}
    layers = {name: {p: np.asarray(v) for p, v in layer.items()} for name, layer in hidden.items()}
    return {**layers, f"Dense_{len(hidden)}": last}


def numpy_tree(tree) -> dict:
    """A (Frozen)dict of arrays as nested dicts of numpy arrays."""
    return {k: numpy_tree(v) if hasattr(v, "items") else np.asarray(v) for k, v in tree.items()}


@contextlib.contextmanager
def draws_in_call_order(owner, attribute: str, draws: list, *, transposed: bool = False):
    """`owner.attribute`, a function that draws an array of a given `shape` (`jax.random.normal`, `jax.random.choice`;
    TensorFlow Probability's `samplers.normal`, whose `mean` and `stddev` it applies), returns `draws[i]` at its i-th
    call while active (a trace of one update: the draws are that update's inputs); with `transposed`, `draws[i].T`, for
    TensorFlow Probability's MultivariateNormalDiag, which draws its (batch, event) normals as (event, batch) and
    transposes them. Every draw must be used, in order, each for the shape it has."""
    signature = inspect.signature(getattr(owner, attribute))
    remaining = list(draws)

    def normal(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        assert remaining, f"the reference draws more than the {len(draws)} injected arrays ({attribute})"
        draw = remaining.pop(0)
        draw = draw.T if transposed else draw
        shape = tuple(bound.arguments["shape"])
        assert shape == tuple(draw.shape), f"the reference draws {shape}, the injected draw is {tuple(draw.shape)}"
        if bound.arguments.get("dtype") is not None:
            draw = draw.astype(bound.arguments["dtype"])
        if "stddev" in bound.arguments:  # 1.0 and 0.0 where a distribution draws them: exact
            draw = draw * bound.arguments["stddev"] + bound.arguments["mean"]
        return draw

    with mock.patch.object(owner, attribute, normal):
        yield
    assert not remaining, f"the reference used {len(draws) - len(remaining)} of the {len(draws)} injected draws"


def check_jit(jax, apply, *inputs) -> None:
    """The architecture notes' check: a module's jitted forward pass equals its eager one."""
    jitted = jax.jit(apply)(*inputs)
    with jax.disable_jit():
        eager = apply(*inputs)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-5, atol=1e-6)
