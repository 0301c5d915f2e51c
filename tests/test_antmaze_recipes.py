"""The authors' AntMaze recipes: reward conventions (IQL's r - 1, Cal-QL's 10 r - 5, ReBRAC's 100 r) applied to the
data before anything is computed from it and to every online transition, CQL's max target backup and Lagrange form
(JaxCQL's options, checked against the authors' code by tests/test_parity.py's calql-antmaze fixture; here by hand),
separate critic widths, and presets picked for AntMaze data however it is named."""

import dataclasses
import json
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import BATCH, SPEC

from o2o.agents import cql, get_algorithm, iql, rebrac, sac
from o2o.agents.common import transform_rewards
from o2o.algorithms import preset
from o2o.collect.scripted import collect_pendulum
from o2o.data import Dataset, write_o2o
from o2o.data.fields import FIELDS
from o2o.train import offline, phases, runs


def episodes(rewards_per_episode: list[list[float]]) -> Dataset:
    rewards = np.concatenate([np.asarray(r, np.float32) for r in rewards_per_episode])
    n = len(rewards)
    obs = np.arange(n, dtype=np.float32)[:, None]
    timeouts = np.zeros(n, bool)
    timeouts[np.cumsum([len(r) for r in rewards_per_episode]) - 1] = True
    return Dataset(obs, np.zeros((n, 1), np.float32), rewards, obs + 1, np.zeros(n, bool), timeouts)


def test_reward_transforms_compose_and_are_recorded_for_online_transitions():
    data = episodes([[0.0, 0.0, 1.0], [0.0, 0.0]])
    once = transform_rewards(data, 10.0, -5.0)
    np.testing.assert_array_equal(once.rewards, [-5.0, -5.0, 5.0, -5.0, -5.0])
    twice = transform_rewards(once, 2.0, 1.0)  # 2 (10 r - 5) + 1 = 20 r - 9
    np.testing.assert_array_equal(twice.rewards, [-9.0, -9.0, 11.0, -9.0, -9.0])
    assert (twice.metadata["reward_scale"], twice.metadata["reward_bias"]) == (20.0, -9.0)
    assert transform_rewards(data, 1.0, 0.0) is data and np.array_equal(data.rewards, [0, 0, 1, 0, 0])  # input kept


def test_iql_scales_by_the_return_range_then_adds_its_bias():
    data = episodes([[-100.0], [400.0], [150.0]])
    prepared = iql.prepare_dataset(data, iql.Config(reward_bias=-1.0))
    np.testing.assert_allclose(prepared.rewards, np.array([-100.0, 400.0, 150.0]) * 2 - 1, rtol=1e-6)
    antmaze = iql.prepare_dataset(data, dataclasses.replace(iql.Config(), **preset("iql", "auto", "AntMaze_UMaze-v5")[1]))
    np.testing.assert_array_equal(antmaze.rewards, [-101.0, 399.0, 149.0])  # r - 1, no scaling


def test_calql_returns_to_go_are_computed_on_its_antmaze_rewards():
    """Cal-QL's loader: rewards 10 r - 5 first, then a failed episode (every reward -5) gets -5 / (1 - gamma) at every
    step, a successful one its discounted sum."""
    _, overrides = preset("calql", "auto", "AntMaze_UMaze-v5")
    config = dataclasses.replace(get_algorithm("calql")[1], **overrides)
    prepared = cql.prepare_dataset(episodes([[0.0, 0.0, 0.0], [0.0, 1.0]]), config)
    mc = FIELDS["mc_returns"].from_dataset(prepared, prepared.actions, config)
    np.testing.assert_allclose(mc, [-500.0, -500.0, -500.0, -5.0 + 0.99 * 5.0, 5.0], rtol=1e-6)


def calql_state(**changes):
    agent, config = get_algorithm("calql", {"hidden_dims": (8, 8), "cql_num_actions": 3, **changes})
    batch = {**BATCH, "mc_returns": jnp.array([0.0, 0.0])}
    return agent.init(jax.random.PRNGKey(0), SPEC, config), batch


def test_max_target_backup_takes_the_best_of_n_next_actions_by_the_lower_critic():
    state, batch = calql_state(max_target_backup=True)
    noise = jax.random.normal(jax.random.PRNGKey(3), (2 * 3, 1))
    with mock.patch.object(sac, "next_action_noise_draw", lambda key, shape: noise.reshape(shape)):
        target = cql.max_target(state, batch, batch["next_observations"], jax.random.PRNGKey(0))
        repeated = jnp.repeat(batch["next_observations"], 3, axis=0)
        actions, _ = sac.policy_sample(state, repeated, jax.random.PRNGKey(0), draw=sac.next_action_noise_draw)
    lower = state.critic(repeated, actions, params=state.target_critic_params).min(axis=0).reshape(2, 3)
    expected = batch["rewards"] + 0.99 * (1 - batch["dones"]) * lower.max(axis=1)
    np.testing.assert_allclose(target, expected, rtol=1e-6)
    assert not np.allclose(lower.max(axis=1), lower[:, 0])  # the best is not simply the first


def test_lagrange_multiplier_grows_while_the_gaps_exceed_tau_and_shrinks_below():
    for tau, direction in ((-100.0, 1), (100.0, -1)):
        state, batch = calql_state(cql_target_action_gap=tau)
        assert float(state.log_multiplier.params["log_multiplier"]) == cql.INITIAL_LOG_MULTIPLIER
        stepped, info = cql.update(state, batch, jax.random.PRNGKey(1))
        alpha = get_algorithm("calql")[1].cql_alpha
        expected_loss = -0.5 * np.e * alpha * (float(info["conservative_loss"]) - 2 * tau)  # 2 critics' gaps
        assert float(info["multiplier_loss"]) == pytest.approx(expected_loss, rel=1e-5)
        change = float(stepped.log_multiplier.params["log_multiplier"]) - cql.INITIAL_LOG_MULTIPLIER
        assert np.sign(change) == direction and abs(change) == pytest.approx(3e-4, rel=1e-3)  # Adam at critic_lr


def test_critics_can_be_deeper_than_the_actor():
    state, _ = calql_state(critic_hidden_dims=(8, 8, 8, 8))
    assert len(state.critic.params["VmapCritic_0"]["MLP_0"]) == 5 and len(state.actor.params["MLP_0"]) == 3


@pytest.mark.parametrize("env_id,level,minari_id,key", [
    ("AntMaze_UMaze-v5", None, None, "antmaze"),  # o2o's own data on gymnasium's AntMaze
    ("AntMaze_Medium_Diverse_GR-v4", None, "D4RL/antmaze/medium-play-v1", "antmaze-medium-play"),  # Minari's D4RL
    ("antmaze-large-diverse-v2", None, None, "antmaze-large-diverse"),  # D4RL's own files
    ("antmaze-medium-play-v2", None, None, "antmaze-medium-play"),  # parses as an OGBench name too
])
def test_antmaze_data_gets_the_authors_antmaze_settings_however_it_is_named(env_id, level, minari_id, key):
    assert preset("iql", "auto", env_id, level, None, minari_id)[1]["reward_bias"] == -1.0
    assert preset("calql", "auto", env_id, level, None, minari_id)[1]["cql_target_action_gap"] == 0.8
    found, values = preset("rebrac", "auto", env_id, level, None, minari_id)
    assert found == key and values["reward_scale"] == 100.0 and values["discount"] == 0.999
    assert preset("iql", "auto", "PointMaze_UMaze-v3")[0] is None and preset("iql", "auto", "Hopper-v5", "medium")[0] is None
    assert preset("calql", "auto", "antmaze-large-navigate-v0")[0] is None  # OGBench's maze: its own presets only
    assert rebrac.prepare_dataset(episodes([[0.0, 1.0]]), rebrac.Config(reward_scale=100.0)).rewards[1] == 100.0


def test_online_transitions_get_the_offline_datas_reward_transform(tmp_path):
    """Fine-tuning stores 10 r - 5 for every env reward r, as the offline data had it: checked against Pendulum's
    reward recomputed from each stored state and action."""
    data = str(write_o2o(collect_pendulum(episodes=2), tmp_path / "pendulum"))
    small = {"hidden_dims": (16, 16), "batch_size": 32, "reward_scale": 10.0, "reward_bias": -5.0}
    offline.train(offline.OfflineSettings(algo="calql", dataset=data, steps=50, eval_every=50, eval_episodes=0,
                                          out=str(tmp_path / "off"), agent_overrides=small), progress=False)
    phases.finetune(tmp_path / "off", 300, eval_every=300, eval_episodes=0, out=str(tmp_path / "ft"), progress=False)
    assert json.loads((tmp_path / "ft" / "config.json").read_text())["reward_bias"] == -5.0
    buffer = runs.load_checkpoint(tmp_path / "ft", {})["buffers"]["data"]
    obs, actions = np.asarray(buffer["observations"])[0, :300], np.asarray(buffer["actions"])[0, :300]
    theta, speed, torque = np.arctan2(obs[:, 1], obs[:, 0]), obs[:, 2], np.clip(2.0 * actions[:, 0], -2.0, 2.0)
    env_rewards = -(theta ** 2 + 0.1 * speed ** 2 + 0.001 * torque ** 2)
    np.testing.assert_allclose(np.asarray(buffer["rewards"])[0, :300], 10 * env_rewards - 5, rtol=1e-4, atol=1e-3)


def test_wsrl_from_a_calql_run_with_deeper_critics_starts_from_those_critics():
    """WSRL exists to start from Cal-QL's critics: with the AntMaze recipe's deeper critics its own inherit their
    layers, so they are carried over (they would silently start afresh otherwise)."""
    from o2o.train import handoff

    offline_agent, offline_config = get_algorithm("calql", {"hidden_dims": (16, 16), "critic_hidden_dims": (16,) * 3})
    online, online_config = handoff.online_agent("wsrl", "calql", dataclasses.asdict(offline_config), {})
    assert online_config.critic_hidden_dims == (16, 16, 16)
    key = jax.random.PRNGKey(0)
    mine, theirs = online.init(key, SPEC, online_config), offline_agent.init(key, SPEC, offline_config)
    assert "critic" in handoff._carried(mine, theirs)


def test_an_online_run_from_scratch_prepares_its_offline_data_with_its_own_config(tmp_path):
    """`o2o online ALGO --dataset D` builds its agent without a preset, so its offline data is prepared without one
    too: a preset's reward transform would otherwise reach the data and not the agent's other settings."""
    from o2o.train import online

    settings = online.settings_for("calql", env="Pendulum-v1", offline_dataset=str(tmp_path / "d"), steps=10,
                                   offline_sampling="symmetric")
    assert online._offline_data_settings(settings, None, "Pendulum-v1")["preset"] == "none"


def test_a_resumed_run_whose_data_would_now_get_other_rewards_is_refused(tmp_path):
    from o2o.errors import O2OError
    from o2o.train import online

    data = str(write_o2o(collect_pendulum(episodes=2), tmp_path / "pendulum"))
    small = {"hidden_dims": (16, 16), "batch_size": 32}
    offline.train(offline.OfflineSettings(algo="calql", dataset=data, steps=50, eval_every=50, eval_episodes=0,
                                          out=str(tmp_path / "off"), agent_overrides=small), progress=False)
    phases.finetune(tmp_path / "off", 200, eval_every=100, eval_episodes=0, out=str(tmp_path / "ft"), progress=False)
    config = json.loads((tmp_path / "ft" / "config.json").read_text())
    (tmp_path / "ft" / "config.json").write_text(json.dumps({**config, "reward_bias": -1.0}))  # as if trained on r - 1
    with pytest.raises(O2OError, match="trained on 1 r \\+ -1 \\(a preset changed since\\)"):
        online.resume(tmp_path / "ft", steps=300, progress=False)
