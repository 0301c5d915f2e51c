"""Replay buffer, SAC/CQL/AWAC math and returns-to-go on hand-computed cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import BATCH, SPEC, constant

from o2o.agents import awac, cql, sac
from o2o.data import Dataset, replay


def test_replay_buffer_is_a_ring():
    buffer = replay.create(3, 2, 1)
    for i in range(5):
        buffer = replay.add(buffer, {"observations": jnp.full(2, i), "actions": jnp.full(1, i), "rewards": jnp.float32(i),
                                     "next_observations": jnp.full(2, i + 1), "dones": jnp.float32(0)})
    assert int(buffer.size) == 3 and int(buffer.insert_index) == 2
    np.testing.assert_array_equal(buffer.data["rewards"], [3, 4, 2])  # slots 0, 1 overwritten by steps 3, 4
    batch = replay.sample(buffer, jax.random.PRNGKey(0), 100)
    assert set(np.asarray(batch["rewards"]).tolist()) == {2.0, 3.0, 4.0}


def test_replay_buffer_samples_only_filled_slots():
    buffer = replay.create(100, 1, 1)
    buffer = replay.add(buffer, {"observations": jnp.ones(1), "actions": jnp.ones(1), "rewards": jnp.float32(7),
                                 "next_observations": jnp.ones(1), "dones": jnp.float32(0)})
    assert set(np.asarray(replay.sample(buffer, jax.random.PRNGKey(1), 50)["rewards"]).tolist()) == {7.0}


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    mean, log_std = jnp.array([[0.3, -0.2]]), jnp.array([[-0.5, 0.1]])
    action, log_prob = sac.sample_tanh_gaussian(mean, log_std, jax.random.PRNGKey(3))
    u = np.arctanh(np.asarray(action, np.float64))
    std = np.exp(np.asarray(log_std, np.float64))
    gaussian = -0.5 * ((u - np.asarray(mean, np.float64)) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
    expected = float((gaussian - np.log(1 - np.tanh(u) ** 2)).sum())
    assert float(log_prob[0]) == pytest.approx(expected, rel=1e-4)


def test_sac_critic_target_subtracts_entropy_and_masks_terminals():
    config = sac.Config(hidden_dims=(4,), initial_temperature=0.5, discount=0.9)
    state = sac.init(jax.random.PRNGKey(0), SPEC, config)
    state = state.replace(target_critic_params=constant(state.target_critic_params, 3.0))
    key = jax.random.PRNGKey(5)
    target = sac.critic_target(state, BATCH, BATCH["next_observations"], key)
    _, log_prob = sac.policy_sample(state, BATCH["next_observations"], jax.random.split(key)[0])
    np.testing.assert_allclose(target, [1.0 + 0.9 * (3.0 - 0.5 * log_prob[0]), 0.0], rtol=1e-5)


def test_calql_bound_only_raises_the_conservative_term():
    config = cql.Config(hidden_dims=(4,), calibrated=True)
    state = cql.init(jax.random.PRNGKey(0), SPEC, config)
    low = {**BATCH, "mc_returns": jnp.full(2, -jnp.inf)}
    high = {**BATCH, "mc_returns": jnp.full(2, 1e3)}
    _, plain = cql.update(state.replace(config=cql.Config(hidden_dims=(4,))), BATCH, jax.random.PRNGKey(1))
    _, unbound = cql.update(state, low, jax.random.PRNGKey(1))
    _, bound = cql.update(state, high, jax.random.PRNGKey(1))
    assert float(unbound["conservative_loss"]) == pytest.approx(float(plain["conservative_loss"]), rel=1e-6)
    # every policy-action Q is lifted to 1000: log-sum-exp ~ 1000 + log(2N), minus Q(s, a) ~ 0, summed over 2 critics
    assert float(bound["conservative_loss"]) == pytest.approx(2 * (1000 + np.log(20)), rel=1e-3)


def test_awac_weights_are_one_when_all_actions_have_equal_value():
    state = awac.init(jax.random.PRNGKey(0), SPEC, awac.Config(hidden_dims=(4,)))
    state = state.replace(critic=state.critic.replace(params=constant(state.critic.params, 2.0)),
                          actor=state.actor.replace(params=constant(state.actor.params, 0.0)))
    _, metrics = awac.update(state, BATCH, jax.random.PRNGKey(1))
    # the critic step moves Q by one Adam step, equally for every action: A = 0, weight 1, policy N(0, 1)
    assert float(metrics["advantage_weight"]) == pytest.approx(1.0, abs=1e-3)
    log_pi = -0.5 * np.array([0.25, 1.0]) - 0.5 * np.log(2 * np.pi)
    assert float(metrics["actor_loss"]) == pytest.approx(-log_pi.mean(), rel=1e-3)


def test_returns_to_go_per_episode_and_sparse_failure_convention():
    rewards = np.array([1, 1, 1, 2, -1, -1], np.float32)
    ends = np.array([0, 0, 1, 1, 0, 1], bool)
    obs = np.zeros((6, 1), np.float32)
    d = Dataset(obs, obs, rewards, obs, np.zeros(6, bool), ends)
    np.testing.assert_allclose(d.returns_to_go(0.5), [1.75, 1.5, 1.0, 2.0, -1.5, -1.0])
    # the last episode never succeeded (all rewards -1): it would have failed forever, -1 / (1 - 0.5) = -2 each step
    np.testing.assert_allclose(d.returns_to_go(0.5, sparse_failure_reward=-1.0), [1.75, 1.5, 1.0, 2.0, -2.0, -2.0])


def test_o2o_metrics_dip_regret_and_start():
    from o2o.train.online import o2o_metrics

    curve = [[0, 50.0], [100, 30.0], [200, 45.0], [1000, 90.0]]
    m = o2o_metrics(curve, 2000, offline_score=52.0, successes=[1.0, 0.0, 0.0, 1.0])
    assert m["start_score"] == 50.0 and m["offline_score"] == 52.0
    assert m["dip"] == -20.0  # lowest in the first 200 steps (30) minus the start (50)
    assert m["cumulative_regret"] == 0.5
    assert o2o_metrics([[0, 50.0], [1000, 90.0]], 2000, None, [])["dip"] is None  # no evaluation in the window
    assert o2o_metrics([[0, 50.0], [100, 70.0]], 2000, None, [])["dip"] == 0.0  # no dip when the score only rises


def test_buffer_returns_to_go_reset_on_insert_and_padding_is_dropped():
    buffer = replay.create(4, 1, 1, ("mc_returns",))
    step = {"observations": jnp.ones(1), "actions": jnp.ones(1), "rewards": jnp.float32(1),
            "next_observations": jnp.ones(1), "dones": jnp.float32(0)}
    for _ in range(3):
        buffer = replay.add(buffer, step)
    buffer = replay.set_episode_values(buffer, jnp.array([0, 1, 2, 4, 4]), {"mc_returns": jnp.array([3.0, 2.0, 1.0, 9.0, 9.0])})
    np.testing.assert_array_equal(buffer.data["mc_returns"], [3.0, 2.0, 1.0, -np.inf])
    buffer = replay.add(replay.add(buffer, step), step)  # wraps around onto slot 0
    assert float(buffer.data["mc_returns"][0]) == -np.inf


def test_replay_buffer_learns_next_actions_when_the_episode_goes_on():
    buffer = replay.create(4, 1, 1, ("next_actions",))

    def step(obs, action, next_obs):
        return {"observations": jnp.array([obs]), "actions": jnp.array([action]), "rewards": jnp.array(0.0),
                "next_observations": jnp.array([next_obs]), "dones": jnp.array(0.0)}

    for transition in (step(0.0, 0.1, 1.0), step(1.0, 0.2, 2.0), step(5.0, 0.3, 6.0)):  # the third starts an episode
        buffer = replay.add(buffer, transition)
    next_actions = np.asarray(buffer.data["next_actions"][:3, 0])
    assert next_actions[0] == pytest.approx(0.2) and np.isnan(next_actions[1]) and np.isnan(next_actions[2])


def test_a_checkpointed_buffer_weighs_its_transitions_and_refills_to_the_same_buffer(tmp_path):
    from o2o.train import runs

    def fresh():  # two seeds' stacked buffers, as the online loop keeps them
        return jax.vmap(lambda _: replay.create(10, 2, 1, ("mc_returns", "next_actions")))(jnp.arange(2))

    buffer = fresh()
    for i in range(3):
        step = {"observations": jnp.full((2, 2), i), "actions": jnp.full((2, 1), 0.1 * i), "rewards": jnp.full(2, i),
                "next_observations": jnp.full((2, 2), i + 1), "dones": jnp.zeros(2)}
        buffer = jax.vmap(replay.add)(buffer, step)
    runs.save_checkpoint(tmp_path, {"buffers": replay.filled(buffer)})
    saved = runs.load_checkpoint(tmp_path, {})["buffers"]
    assert saved["data"]["observations"].shape == (2, 3, 2)  # 3 transitions of a capacity of 10
    restored = replay.refill(fresh(), saved)
    for x, y in zip(jax.tree.leaves(buffer), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))  # the empty slots' -inf and NaN included


def test_union_windows_run_through_the_offline_data_into_the_buffer_as_one_sequence():
    """Windows of 3 over 10 offline steps then 5 online ones: every window is 3 consecutive steps of that sequence, the
    first steps drawn from all 13 places a window fits, those crossing from the offline data into the buffer too."""
    from o2o.train.online_step import replay_batch
    offline_data = {"observations": jnp.zeros((10, 1)), "actions": jnp.zeros((10, 1)),
                    "rewards": jnp.arange(10, dtype=jnp.float32), "next_observations": jnp.zeros((10, 1)),
                    "dones": jnp.zeros(10)}
    buffer = replay.create(8, 1, 1)
    for i in range(5):
        buffer = replay.add(buffer, {"observations": jnp.zeros(1), "actions": jnp.zeros(1),
                                     "rewards": jnp.float32(100 + i), "next_observations": jnp.ones(1),
                                     "dones": jnp.float32(0)})
    sequence = np.concatenate([np.arange(10), 100 + np.arange(5)])
    batch = replay_batch(buffer, offline_data, jax.random.PRNGKey(0), 2000, "union", window=3)
    rewards = np.asarray(batch["rewards"])
    first = np.searchsorted(sequence, rewards[:, 0])
    np.testing.assert_array_equal(rewards, sequence[first[:, None] + np.arange(3)])
    assert set(first.tolist()) == set(range(13))
    symmetric = replay_batch(buffer, offline_data, jax.random.PRNGKey(1), 200, "symmetric", window=3)
    offline_half, online_half = np.asarray(symmetric["rewards"][:100]), np.asarray(symmetric["rewards"][100:])
    assert offline_half.max() <= 9 and online_half.min() >= 100  # each half keeps to its own data
    np.testing.assert_array_equal(np.diff(symmetric["rewards"], axis=1), 1.0)


def test_recent_sampling_draws_the_newest_online_steps_and_offline_plus_all_online_for_the_rest():
    """SUNG's replay: of 20 rows, the last int(0.75 * 20) = 15 (once the buffer holds 15) from the newest 3 online steps
    of a ring that has wrapped, the first from the offline data and every online step the ring still holds."""
    from o2o.train.online_step import replay_batch
    offline_data = {"observations": jnp.zeros((10, 1)), "actions": jnp.zeros((10, 1)),
                    "rewards": -1.0 - jnp.arange(10, dtype=jnp.float32), "next_observations": jnp.zeros((10, 1)),
                    "dones": jnp.zeros(10)}

    def buffer_of(steps):
        buffer = replay.create(16, 1, 1)
        for i in range(steps):
            buffer = replay.add(buffer, {"observations": jnp.zeros(1), "actions": jnp.zeros(1),
                                         "rewards": jnp.float32(i), "next_observations": jnp.ones(1),
                                         "dones": jnp.float32(0)})
        return buffer

    rewards = np.asarray(replay_batch(buffer_of(40), offline_data, jax.random.PRNGKey(0), 20, "recent",
                                      offline_fraction=0.25, recent_steps=3)["rewards"])
    assert set(rewards[5:].tolist()) <= {37.0, 38.0, 39.0}  # the ring holds steps 24 to 39
    assert all(r < 0 or 24 <= r <= 39 for r in rewards[:5])
    many = np.concatenate([np.asarray(replay_batch(buffer_of(40), offline_data, jax.random.PRNGKey(k), 20, "recent",
                                                   offline_fraction=0.25, recent_steps=3)["rewards"][:5])
                           for k in range(40)])
    assert (many < 0).any() and (many >= 24).any()  # offline and online steps alike
    early = np.asarray(replay_batch(buffer_of(2), offline_data, jax.random.PRNGKey(1), 20, "recent",
                                    offline_fraction=0.25, recent_steps=3)["rewards"])
    assert set(early[18:].tolist()) <= {0.0, 1.0} and all(r < 0 or r in (0.0, 1.0) for r in early[:18])


def test_steps_to_episode_end_offline_and_online_agree():
    from o2o.data.fields import FIELDS
    dataset = Dataset(observations=np.zeros((5, 1)), actions=np.zeros((5, 1)), rewards=np.ones(5),
                      next_observations=np.zeros((5, 1)), terminals=np.zeros(5, bool),
                      timeouts=np.array([0, 0, 1, 0, 1], bool))
    field = FIELDS["steps_to_episode_end"]
    np.testing.assert_array_equal(field.from_dataset(dataset, dataset.actions, None), [2, 1, 0, 1, 0])
    np.testing.assert_array_equal(field.at_episode_end(np.ones(3), None), [2, 1, 0])
    assert field.unknown == np.inf  # an unfinished episode's windows are valid up to the newest step
