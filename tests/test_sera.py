"""SERA's reward bonus: the estimator on a hand-computed case and against VCSE's code (the fixture `sera`), and its
refusals (the fine-tuning runs it enters: test_online_engine.py)."""

import dataclasses
import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from o2o.agents import get_algorithm, reward_bonus, sera
from o2o.errors import O2OError
from o2o.train import online

FIXTURE = Path(__file__).parent / "fixtures" / "parity" / "sera.npz"
PSI_4 = 1.0 + 1.0 / 2.0 + 1.0 / 3.0 - 0.5772156649015329  # digamma(4)


def test_intrinsic_reward_by_hand():
    # three points on a line, all of one value: the k = 2 nearest (itself counted) is the nearest other point, at
    # 1, 1 and 2; every point's value distance (0) is below its eps, so n_q = 3 and psi(n_q + 1) = psi(4)
    r = sera.intrinsic_reward(jnp.array([[0.0], [1.0], [3.0]]), jnp.zeros(3), 2)
    np.testing.assert_allclose(r, PSI_4 + np.log(2 * np.array([1.0, 1.0, 2.0]) + 1e-5), rtol=1e-6)
    # values far apart: eps is the value distance (10, 10, 20) and no other point's value is strictly closer than
    # eps, the point itself only: n_q = 1, psi(2) = 1 - gamma
    r = sera.intrinsic_reward(jnp.array([[0.0], [1.0], [3.0]]), jnp.array([0.0, 10.0, 30.0]), 2)
    np.testing.assert_allclose(r, 1.0 - 0.5772156649015329 + np.log(2 * np.array([10.0, 10.0, 20.0]) + 1e-5),
                               rtol=1e-6)


@pytest.mark.parametrize("case", ["hopper", "ties", "nearest"])
def test_estimator_matches_vcse_code(case):
    fixture = np.load(FIXTURE)
    states, values, k = fixture[f"{case}/states"], fixture[f"{case}/values"], int(fixture[f"{case}/k"])
    np.testing.assert_allclose(sera.standardized(jnp.asarray(values)), fixture[f"{case}/standardized"], atol=1e-6)
    # on the reference's standardized values; to 1e-6, which a count n_q off by one would exceed (psi(n + 1) / d moves
    # by 1 / (n + 1) / d >= 3e-4 here)
    standardized = jnp.asarray(fixture[f"{case}/standardized"])
    r_int = sera.intrinsic_reward(jnp.asarray(states) / states.shape[-1], standardized, k)
    np.testing.assert_allclose(r_int, fixture[f"{case}/reward"], rtol=1e-6, atol=1e-6)
    if case == "ties":  # values on a grid: one ulp of the standardization moves points across eps (sera.py's docstring)
        return
    # the whole bonus: min over critics (here the value twice, one copy higher), tanh, the scale
    batch = {"observations": jnp.asarray(states), "rewards": jnp.ones(len(values)),
             "actions": jnp.zeros((len(values), 1))}
    augmented, metrics = sera.augment(batch, jnp.stack([jnp.asarray(values), jnp.asarray(values) + 5.0]),
                                      sera.Config(neighbours=k, scale=0.5))
    np.testing.assert_allclose(augmented["rewards"], 1.0 + 0.5 * np.tanh(fixture[f"{case}/reward"]), rtol=1e-5,
                               atol=1e-5)
    assert augmented["actions"] is batch["actions"] and float(metrics["sera_bonus"]) == pytest.approx(
        float((augmented["rewards"] - 1.0).mean()))


def test_fixture_records_its_reference():
    record = json.loads(FIXTURE.with_suffix(".json").read_text())
    assert record["reference"]["repository"].endswith("kingdy2002/VCSE") and len(record["reference"]["commit"]) == 40


def test_bonus_refusals():
    with pytest.raises(O2OError, match="has none of"):
        reward_bonus("sera", *get_algorithm("bc"))
    chunked, config = get_algorithm("qc", {"horizon": "2"})  # no chunking agent has a critic ensemble yet
    with pytest.raises(O2OError, match="windows of 2"):
        reward_bonus("sera", dataclasses.replace(chunked, q_values=lambda state, obs, actions: obs), config)
    with pytest.raises(O2OError, match="choose one of"):
        reward_bonus("rnd", *get_algorithm("calql"))
    with pytest.raises(O2OError, match="at most the batch size"):
        reward_bonus("sera", *get_algorithm("calql", {"batch_size": "8"}), neighbours=9)
    with pytest.raises(O2OError, match=r"neighbours = 1 is outside the integers >= 2"):
        reward_bonus("sera", *get_algorithm("calql"), neighbours=1)
    with pytest.raises(O2OError, match=r"scale = -0.5 is outside \[0, inf\)"):
        reward_bonus("sera", *get_algorithm("calql"), scale=-0.5)
    with pytest.raises(O2OError, match="choose one of none, sera"):
        online.settings_for("sac", env="Pendulum-v1", reward_bonus="rnd").check()
