"""The Decision Transformer's data and evaluation paths on hand-built cases: windows at episode starts and ends
(padding, masks, returns-to-go, timesteps), and the rolling context of evaluation, which must show the model exactly
what a training window of the same steps shows it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from o2o.agents import Spec, dt, get_algorithm
from o2o.data import Dataset


def two_episodes() -> Dataset:
    """Episodes of 3 and 2 steps; observation i is [i, -i]; rewards 1, 2, 3 | 10, 20; the second is cut by a timeout."""
    n = 5
    return Dataset(observations=np.stack([np.arange(n), -np.arange(n)], 1).astype(np.float32),
                   actions=np.linspace(-0.8, 0.8, n, dtype=np.float32)[:, None],
                   rewards=np.array([1, 2, 3, 10, 20], np.float32),
                   next_observations=np.zeros((n, 2), np.float32),
                   terminals=np.array([0, 0, 1, 0, 0], bool), timeouts=np.array([0, 0, 0, 0, 1], bool))


def device(dataset: Dataset) -> dict:
    return {"observations": jnp.asarray(dataset.observations), "actions": jnp.asarray(dataset.actions),
            "returns_to_go": jnp.asarray(dataset.returns_to_go(1.0)), "timesteps": jnp.asarray(dataset.timesteps()),
            "steps_to_episode_end": jnp.asarray(dataset.episode_last_steps() - np.arange(len(dataset)), jnp.float32),
            "rewards": jnp.asarray(dataset.rewards)}


# (first step) -> (observation column 0, mask, returns-to-go, timesteps) of a window of 4 steps, by hand
EXPECTED = {
    0: ([0, 1, 2, 0], [1, 1, 1, 0], [6, 5, 3, 0], [0, 1, 2, 0]),
    1: ([1, 2, 0, 0], [1, 1, 0, 0], [5, 3, 0, 0], [1, 2, 0, 0]),
    2: ([2, 0, 0, 0], [1, 0, 0, 0], [3, 0, 0, 0], [2, 0, 0, 0]),
    3: ([3, 4, 0, 0], [1, 1, 0, 0], [30, 20, 0, 0], [0, 1, 0, 0]),
    4: ([4, 0, 0, 0], [1, 0, 0, 0], [20, 0, 0, 0], [1, 0, 0, 0]),
}


def test_windows_are_padded_and_masked_past_the_episode_end():
    dataset = two_episodes()
    assert dataset.timesteps().tolist() == [0, 1, 2, 0, 1]
    assert dataset.episode_last_steps().tolist() == [2, 2, 2, 4, 4]
    config = dt.Config(context_length=4, batch_size=200)
    batch = jax.device_get(dt.sample_batch(config, device(dataset), jax.random.PRNGKey(0)))
    firsts = batch["observations"][:, 0, 0].astype(int)
    assert set(firsts) == set(EXPECTED)  # every step starts some window
    for row, first in enumerate(firsts):
        obs, mask, rtg, timesteps = EXPECTED[first]
        np.testing.assert_array_equal(batch["observations"][row, :, 0], obs)
        np.testing.assert_array_equal(batch["observations"][row, :, 1], -np.array(obs))
        np.testing.assert_array_equal(batch["mask"][row], mask)
        np.testing.assert_array_equal(batch["returns_to_go"][row], rtg)
        np.testing.assert_array_equal(batch["timesteps"][row], timesteps)
        np.testing.assert_array_equal(batch["actions"][row, :, 0][np.array(mask) == 0], 0.0)
    assert np.mean(firsts == 3) == pytest.approx(0.2, abs=0.08)  # episodes drawn in proportion to their length


def small_state(target_return=100.0, k=3):
    _, config = get_algorithm("dt", {"embedding_dim": 16, "num_layers": 2, "context_length": k,
                                     "target_return": target_return, "return_scale": 0.01})
    spec = Spec(2, 1, np.array([1.0, -1.0], np.float32), np.array([2.0, 0.5], np.float32))
    return dt.init(jax.random.PRNGKey(0), spec, config)


def test_the_rolling_context_shows_the_model_what_a_training_window_shows():
    state, k, steps = small_state(), 3, 6
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(steps, 2)).astype(np.float32)
    rewards = rng.normal(size=steps).astype(np.float32)
    act = jax.jit(lambda memory, o, r, t: dt.act_in_episode(state, memory, o, r, t, jax.random.PRNGKey(0)))
    memory = jax.tree.map(lambda x: x + jnp.asarray(7, x.dtype), dt.begin_episode(state))  # whatever is left from an earlier episode
    actions = []
    for t in range(steps):
        action, memory = act(memory, observations[t], rewards[t - 1] if t else 0.0, t)
        actions.append(np.asarray(action))
    actions = np.array(actions)
    returns_to_go = 100.0 - np.concatenate([[0.0], np.cumsum(rewards[:-1])])  # what is left after the rewards so far
    np.testing.assert_allclose(memory["returns_to_go"], 0.01 * returns_to_go[-k:], rtol=1e-5)
    np.testing.assert_array_equal(memory["timesteps"], np.arange(steps - k, steps))
    np.testing.assert_allclose(memory["actions"], actions[-k:], rtol=1e-6)
    for t in range(steps):  # each action from the window of the last k steps, right-padded early in the episode
        window = np.arange(max(0, t - k + 1), max(0, t - k + 1) + k)
        valid = window <= t
        w = np.minimum(window, steps - 1)
        inputs = (np.where(valid, 0.01 * returns_to_go[w], 0.0)[None],
                  np.where(valid[:, None], (observations[w] - [1.0, -1.0]) / [2.0, 0.5], 0.0)[None],
                  np.where(valid[:, None], actions[w], 0.0)[None], np.where(valid, w, 0)[None])
        expected = state.actor(*[jnp.asarray(x, jnp.int32 if i == 3 else jnp.float32) for i, x in enumerate(inputs)])
        np.testing.assert_allclose(actions[t], expected[0, min(t, k - 1)], rtol=1e-4, atol=1e-6)


def test_the_target_return_defaults_to_the_best_episode_in_the_data():
    _, config = get_algorithm("dt", {"embedding_dim": 16, "num_layers": 1})
    spec = Spec(2, 1, np.zeros(2, np.float32), np.ones(2, np.float32), episode_return_max=250.0)
    assert float(dt.init(jax.random.PRNGKey(0), spec, config).target_return) == pytest.approx(0.25)
    with pytest.raises(Exception, match="target return"):
        dt.init(jax.random.PRNGKey(0), Spec.unnormalized(2, 1), config)


def test_returns_to_go_run_to_the_episodes_end_past_a_goal_reached_on_the_way():
    """OGBench's relabelled data: mask 0 where the goal is reached while the trajectory goes on. DT conditions on the
    return to the episode's end; Cal-QL's Monte-Carlo returns stop there, with the TD target."""
    from o2o.data.fields import FIELDS

    episode = Dataset(observations=np.zeros((10, 1), np.float32), actions=np.zeros((10, 1), np.float32),
                      rewards=np.ones(10, np.float32), next_observations=np.zeros((10, 1), np.float32),
                      terminals=np.zeros(10, bool), timeouts=np.eye(10, dtype=bool)[-1], masks=np.arange(10) != 3)
    config = get_algorithm("calql", {"discount": 1.0, "sparse_failure_reward": "none"})[1]
    dt_field = FIELDS["returns_to_go"].from_dataset
    np.testing.assert_array_equal(dt_field(episode, episode.actions, config), np.arange(10, 0, -1))
    np.testing.assert_array_equal(FIELDS["mc_returns"].from_dataset(episode, episode.actions, config),
                                  [4, 3, 2, 1, 6, 5, 4, 3, 2, 1])
    plain = two_episodes()  # no masks: the same values as ever
    np.testing.assert_array_equal(dt_field(plain, plain.actions, config), plain.returns_to_go(1.0))
    np.testing.assert_array_equal(dt_field(plain, plain.actions, config), [6, 5, 3, 30, 20])
