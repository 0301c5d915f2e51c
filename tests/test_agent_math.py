"""Losses on hand-computed cases: networks whose weights are zero output their last bias everywhere, so every
quantity of the update can be worked out by hand."""


import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import BATCH, SPEC, constant

from o2o.agents import Spec, bc, famo2o, fql, get_algorithm, iql, qc, ro2o, sac, sung, sung_cql, td3_bc
from o2o.agents.common import soft_update
from o2o.data import Dataset
from o2o.errors import O2OError
from o2o.nets import gaussian_log_prob


def test_expectile_loss_weights_negative_errors_by_one_minus_tau():
    np.testing.assert_allclose(iql.expectile_loss(jnp.array([-2.0, 1.0]), 0.7), [0.3 * 4, 0.7 * 1], rtol=1e-6)


def test_gaussian_log_prob_of_standard_normal():
    lp = gaussian_log_prob(jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.array([[0.0, 1.0]]))
    np.testing.assert_allclose(lp, [-np.log(2 * np.pi) - 0.5], rtol=1e-6)


def test_soft_update_is_polyak_average():
    out = soft_update({"w": jnp.array([0.0, 10.0])}, {"w": jnp.array([1.0, 0.0])}, 0.1)
    np.testing.assert_allclose(out["w"], [0.1, 9.0], rtol=1e-6)


def test_td3_bc_critic_target_masks_terminals_and_takes_min():
    config = td3_bc.Config(hidden_dims=(4,), policy_noise=0.0, discount=0.99)
    state = td3_bc.init(jax.random.PRNGKey(0), SPEC, config)
    state = state.replace(critic=state.critic.replace(params=constant(state.critic.params, 2.0)),
                          target_critic_params=constant(state.target_critic_params, 2.0))
    _, metrics = td3_bc.update(state, BATCH, jax.random.PRNGKey(1))
    # targets: 1 + 0.99 * 2 = 2.98 and 0 (terminal); both critics output 2: 2 * mean((2 - 2.98)^2, (2 - 0)^2)
    assert metrics["critic_loss"] == pytest.approx(2 * (0.98**2 + 4) / 2, rel=1e-5)


def test_td3_bc_actor_loss_is_normalized_q_plus_bc():
    config = td3_bc.Config(hidden_dims=(4,), policy_frequency=1, alpha=2.5)
    state = td3_bc.init(jax.random.PRNGKey(0), SPEC, config)
    state = state.replace(actor=state.actor.replace(params=constant(state.actor.params, 0.0)),
                          critic=state.critic.replace(params=constant(state.critic.params, 4.0)))
    _, metrics = td3_bc.update(state, BATCH, jax.random.PRNGKey(1))
    # pi(s) = tanh(0) = 0; Q moves off 4 by one Adam step (~3e-4), so lambda * Q ~ alpha; BC = mean(0.25, 1)
    assert metrics["bc_loss"] == pytest.approx(0.625, rel=1e-6)
    assert metrics["actor_loss"] == pytest.approx(-2.5 + 0.625, abs=1e-3)


def test_td3_bc_updates_actor_every_second_step_only():
    state = td3_bc.init(jax.random.PRNGKey(0), SPEC, td3_bc.Config(hidden_dims=(4,)))
    s1, m1 = td3_bc.update(state, BATCH, jax.random.PRNGKey(1))
    s2, m2 = td3_bc.update(s1, BATCH, jax.random.PRNGKey(2))
    assert np.isnan(m1["actor_loss"]) and np.isfinite(m2["actor_loss"])
    same = jax.tree.map(lambda a, b: bool(jnp.all(a == b)), state.actor.params, s1.actor.params)
    assert all(jax.tree.leaves(same))


def test_iql_losses_on_constant_networks():
    config = iql.Config(hidden_dims=(4,), expectile=0.7, temperature=3.0, discount=0.99)
    state = iql.init(jax.random.PRNGKey(0), SPEC, config)
    state = state.replace(
        critic=state.critic.replace(params=constant(state.critic.params, 1.0)),
        target_critic_params=constant(state.target_critic_params, 1.0),
        value=state.value.replace(params=constant(state.value.params, 3.0)),
        actor=state.actor.replace(params=constant(state.actor.params, 0.0)),
    )
    _, metrics = iql.update(state, BATCH, jax.random.PRNGKey(1))
    # value: u = Q - V = -2 -> 0.3 * 4
    assert metrics["value_loss"] == pytest.approx(1.2, rel=1e-6)
    v = 3.0 - 3e-4  # one Adam step on the value bias (gradient > 0) moves it by the learning rate
    targets = np.array([1.0 + 0.99 * v, 0.0])
    assert metrics["critic_loss"] == pytest.approx(2 * np.mean((1.0 - targets) ** 2), rel=1e-4)
    # actor: weight exp(3 * (1 - v)); policy N(0, 1): log pi(a) = -0.5 a^2 - 0.5 log(2 pi)
    weight = np.exp(3.0 * (1.0 - v))
    log_pi = -0.5 * np.array([0.25, 1.0]) - 0.5 * np.log(2 * np.pi)
    assert metrics["actor_loss"] == pytest.approx(-np.mean(weight * log_pi), rel=1e-3)


def test_iql_advantage_weights_are_clipped_at_100():
    state = iql.init(jax.random.PRNGKey(0), SPEC, iql.Config(hidden_dims=(4,), temperature=10.0))
    state = state.replace(target_critic_params=constant(state.target_critic_params, 5.0),
                          value=state.value.replace(params=constant(state.value.params, 0.0)))
    _, metrics = iql.update(state, BATCH, jax.random.PRNGKey(1))
    assert metrics["advantage_weight"] == pytest.approx(100.0)


def test_bc_loss_is_mse_to_dataset_actions():
    state = bc.init(jax.random.PRNGKey(0), SPEC, bc.Config(hidden_dims=(4,), normalize_observations=False))
    state = state.replace(actor=state.actor.replace(params=constant(state.actor.params, 0.0)))
    _, metrics = bc.update(state, BATCH, jax.random.PRNGKey(1))
    assert metrics["actor_loss"] == pytest.approx((0.25 + 1.0) / 2)


def _episodes(returns_per_episode):
    rewards = np.array(returns_per_episode, np.float32)
    n = len(rewards)
    obs = np.arange(n, dtype=np.float32)[:, None]
    return Dataset(obs, np.zeros((n, 1), np.float32), rewards, obs, np.zeros(n, bool), np.ones(n, bool))


def test_percent_bc_keeps_the_best_episodes():
    data = _episodes([5.0, 1.0, 9.0, 3.0, 7.0, 0.0, 2.0, 8.0, 4.0, 6.0])  # ten one-step episodes
    kept = bc.prepare_dataset(data, bc.Config(top_fraction=0.3))
    np.testing.assert_array_equal(np.sort(kept.rewards), [7.0, 8.0, 9.0])


def test_iql_scales_rewards_by_the_episode_return_range():
    data = _episodes([-100.0, 400.0, 150.0])
    scaled = iql.prepare_dataset(data, iql.Config())
    np.testing.assert_allclose(scaled.rewards, np.array([-100.0, 400.0, 150.0]) * 1000 / 500, rtol=1e-6)


def test_algorithm_registry_resolves_variants_and_overrides():
    agent, config = get_algorithm("10%BC")
    assert agent.name == "bc10" and agent.update is bc.update and config.top_fraction == 0.1
    _, config = get_algorithm("iql", {"expectile": "0.9", "hidden_dims": "64,64", "normalize_observations": "true"})
    assert config.expectile == 0.9 and config.hidden_dims == (64, 64) and config.normalize_observations is True
    with pytest.raises(O2OError, match="unknown algorithm"):
        get_algorithm("dqn")
    with pytest.raises(O2OError, match="no config field 'expectle'"):
        get_algorithm("iql", {"expectle": "0.9"})
    with pytest.raises(O2OError, match="not a valid float"):
        get_algorithm("iql", {"expectile": "high"})


def test_layer_initialisations_are_the_references():
    """"pytorch": torch.nn.Linear's U(+-1/sqrt(fan_in)) for weights and biases (spread 1/sqrt(3 fan_in)); "orthogonal":
    W^T W = 2 I (gain sqrt 2), zero biases; "flax": LeCun normal (spread 1/sqrt(fan_in)), zero biases."""
    from o2o.nets import MLP
    x = jnp.ones((1, 64))
    layers = {init: MLP((256,), 64, initialisation=init).init(jax.random.PRNGKey(0), x)["params"]
              for init in ("pytorch", "orthogonal", "flax")}
    for name, fan_in in (("Dense_0", 64), ("Dense_1", 256)):
        torch_like = layers["pytorch"][name]
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(torch_like["kernel"]).max() <= bound and np.abs(torch_like["bias"]).max() <= bound
        assert np.abs(torch_like["bias"]).max() > 0.9 * bound
        np.testing.assert_allclose(np.std(torch_like["kernel"]), bound / np.sqrt(3), rtol=0.05)
        np.testing.assert_allclose(np.std(layers["flax"][name]["kernel"]), bound, rtol=0.1)
        assert not np.any(layers["flax"][name]["bias"]) and not np.any(layers["orthogonal"][name]["bias"])
    w = np.asarray(layers["orthogonal"]["Dense_0"]["kernel"])  # (64, 256): orthogonal rows
    np.testing.assert_allclose(w @ w.T, 2 * np.eye(64), atol=1e-4)
    # JaxCQL's (the Cal-QL authors'): the same hidden layers, gain 0.01 on the last
    small = MLP((256,), 64, initialisation="orthogonal-small-output").init(jax.random.PRNGKey(0), x)["params"]
    np.testing.assert_array_equal(small["Dense_0"]["kernel"], w)
    last = np.asarray(small["Dense_1"]["kernel"])  # (256, 64): orthogonal columns
    np.testing.assert_allclose(last.T @ last, 1e-4 * np.eye(64), atol=1e-8)


def test_layer_norm_matches_flax_in_value_and_gradient():
    import flax.linen as nn

    from o2o.nets import LayerNorm
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 7)) * 3 + 1
    params = nn.LayerNorm().init(jax.random.PRNGKey(1), x)
    params = jax.tree.map(lambda p: p + jax.random.normal(jax.random.PRNGKey(2), p.shape), params)
    assert jax.tree.structure(LayerNorm().init(jax.random.PRNGKey(1), x)) == jax.tree.structure(params)

    def loss(module):
        return lambda p, x: jnp.sin(module.apply(p, x)).sum()

    np.testing.assert_allclose(loss(LayerNorm())(params, x), loss(nn.LayerNorm())(params, x), atol=1e-5)
    ours = jax.grad(loss(LayerNorm()), argnums=(0, 1))(params, x)
    theirs = jax.grad(loss(nn.LayerNorm()), argnums=(0, 1))(params, x)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        np.testing.assert_allclose(a, b, atol=1e-5)

    def input_gradient_norm(module):  # second order, as EDAC's term differentiates action gradients
        return lambda p: (jax.grad(loss(module), argnums=1)(p, x) ** 2).sum()

    ours = jax.grad(input_gradient_norm(LayerNorm()))(params)
    theirs = jax.grad(input_gradient_norm(nn.LayerNorm()))(params)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _rebrac_state(**config):
    from o2o.agents import rebrac
    state = rebrac.init(jax.random.PRNGKey(0), SPEC, rebrac.Config(hidden_dims=(4,), **config))
    return state.replace(actor=state.actor.replace(params=constant(state.actor.params, 0.0)),
                         target_actor_params=constant(state.target_actor_params, 0.0))


REBRAC_BATCH = {**BATCH, "next_actions": jnp.array([[0.5], [jnp.nan]])}  # the second step ends its episode


def test_rebrac_critic_target_subtracts_the_next_action_penalty():
    from o2o.agents import rebrac
    state = _rebrac_state(policy_noise=0.0, critic_bc_coef=0.4, discount=0.99)
    state = state.replace(critic=state.critic.replace(params=constant(state.critic.params, 2.0)),
                          target_critic_params=constant(state.target_critic_params, 2.0))
    _, metrics = rebrac.update(state, REBRAC_BATCH, jax.random.PRNGKey(1))
    # a' = tanh(0) = 0; penalty (0 - 0.5)^2 = 0.25 on the first step, none where the next action is unknown (NaN)
    target = np.array([1.0 + 0.99 * (2.0 - 0.4 * 0.25), 0.0])
    assert metrics["critic_penalty"] == pytest.approx(0.125, rel=1e-6)
    assert metrics["critic_loss"] == pytest.approx(2 * np.mean((2.0 - target) ** 2), rel=1e-5)


def test_rebrac_actor_loss_sums_the_penalty_over_action_dims_and_decays_it():
    from o2o.agents import rebrac
    state = _rebrac_state(policy_frequency=1, actor_bc_coef=0.2, actor_bc_decay_steps=10, actor_bc_min_scale=0.5)
    state = state.replace(critic=state.critic.replace(params=constant(state.critic.params, 4.0)))
    _, metrics = rebrac.update(state, REBRAC_BATCH, jax.random.PRNGKey(1))
    # pi(s) = 0: penalty mean(0.25, 1) = 0.625; lambda * min Q ~ 1 (Q moves off 4 by one Adam step)
    assert metrics["bc_loss"] == pytest.approx(0.625, rel=1e-6)
    assert metrics["actor_loss"] == pytest.approx(0.2 * 0.625 - 1.0, abs=1e-3)
    _, metrics = rebrac.update(state.replace(step=jnp.asarray(8)), REBRAC_BATCH, jax.random.PRNGKey(1))
    assert metrics["actor_bc_coef"] == pytest.approx(0.2 * 0.5)  # 1 - 8/10 is below the floor of 0.5


def test_rebrac_critic_normalizes_after_each_relu_as_the_authors_code():
    from o2o.agents import rebrac
    state = rebrac.init(jax.random.PRNGKey(0), SPEC, rebrac.Config(hidden_dims=(4, 3)))
    params = jax.tree.map(lambda p: np.asarray(p[0], np.float64), state.critic.params)["VmapCritic_0"]["MLP_0"]
    x = np.concatenate([BATCH["observations"], BATCH["actions"]], axis=-1)
    for layer in range(2):
        dense, norm = params[f"Dense_{layer}"], params[f"LayerNorm_{layer}"]
        x = np.maximum(x @ dense["kernel"] + dense["bias"], 0.0)
        x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-6) * norm["scale"] + norm["bias"]
    q = (x @ params["Dense_2"]["kernel"] + params["Dense_2"]["bias"])[:, 0]
    np.testing.assert_allclose(state.critic(BATCH["observations"], BATCH["actions"])[0], q, rtol=1e-4, atol=1e-6)


def test_rebrac_fine_tuning_drops_the_critic_penalty_unless_the_user_sets_it():
    _, config = get_algorithm("rebrac", online_updates=5000)
    assert config.critic_bc_coef == 0.0 and config.actor_bc_decay_steps == 5000
    _, config = get_algorithm("rebrac", {"critic_bc_coef": "0.1"}, online_updates=5000)
    assert config.critic_bc_coef == 0.1


def test_iql_fine_tuning_keeps_learning_after_the_offline_decay_has_ended():
    agent, offline = get_algorithm("iql", {"actor_decay_steps": 2, "hidden_dims": (8, 8)})
    _, online = get_algorithm("iql", inherited=dataclasses.asdict(offline), online_updates=100)
    assert online.actor_decay_steps == 0 and online.hidden_dims == (8, 8)
    update, key = jax.jit(agent.update), jax.random.PRNGKey(0)
    state = agent.init(key, SPEC, offline)
    for _ in range(3):
        state, _ = update(state, BATCH, key)
    stopped, _ = update(state, BATCH, key)  # the cosine schedule has reached zero
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.actor.params), jax.tree.leaves(stopped.actor.params)))
    fine_tuned = agent.init(key, SPEC, online)  # what the handoff does: trained params and optimiser state carried over
    fine_tuned = fine_tuned.replace(actor=fine_tuned.actor.replace(params=state.actor.params, opt_state=state.actor.opt_state),
                                    critic=state.critic, value=state.value)
    moved, _ = update(fine_tuned, BATCH, key)
    assert not any(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.actor.params), jax.tree.leaves(moved.actor.params)))


def _linear_ensemble(state, action_weights, biases):
    """Critics Q_i(s, a) = w_i . a + b_i (no hidden layer): grad_a Q_i = w_i."""
    params = jax.tree.map(jnp.zeros_like, state.critic.params)
    dense = params["VmapCritic_0"]["MLP_0"]["Dense_0"]
    dense["kernel"] = dense["kernel"].at[:, state.spec.observation_dim:, 0].set(jnp.asarray(action_weights, jnp.float32))
    dense["bias"] = jnp.asarray(biases, jnp.float32)[:, None]
    return params


def test_edac_ensemble_similarity_on_critics_with_known_action_gradients():
    from o2o.agents import edac
    spec = type(SPEC).unnormalized(2, 2)
    state = edac.init(jax.random.PRNGKey(0), spec, edac.Config(hidden_dims=(), num_critics=3, eta=1.0))
    params = _linear_ensemble(state, [[1.0, 0.0], [0.0, 3.0], [2.0, 2.0]], [0.0, 0.0, 0.0])
    obs, actions = jnp.zeros((4, 2)), jnp.zeros((4, 2))
    # unit gradients (1, 0), (0, 1), (1, 1)/sqrt2: pairwise dots 0, 1/sqrt2, 1/sqrt2, each pair twice, over N - 1 = 2
    assert edac.ensemble_similarity(state, params, obs, actions) == pytest.approx(np.sqrt(2.0), rel=1e-5)


def test_sac_n_target_takes_the_minimum_over_all_critics():
    from o2o.agents import edac
    config = edac.Config(hidden_dims=(), num_critics=3, backup_entropy=False, discount=0.99)
    state = edac.init(jax.random.PRNGKey(0), SPEC, config)
    params = _linear_ensemble(state, [[0.0], [0.0], [0.0]], [5.0, 1.0, 3.0])
    state = state.replace(critic=state.critic.replace(params=params), target_critic_params=params)
    _, metrics = edac.update(state, BATCH, jax.random.PRNGKey(1))
    target = np.array([1.0 + 0.99 * 1.0, 0.0])
    expected = sum(np.mean((q - target) ** 2) for q in (5.0, 1.0, 3.0))
    assert metrics["critic_loss"] == pytest.approx(expected, rel=1e-5)


def test_lb_sac_scales_batch_and_learning_rates_and_presets_follow_the_dataset():
    from o2o.algorithms import preset
    _, config = get_algorithm("lbsac")
    assert config.batch_size == 10_000 and config.actor_lr == config.critic_lr == config.temperature_lr == 0.0018
    assert preset("edac", "auto", "Hopper-v5", "medium-replay") == ("hopper-medium-replay", {"num_critics": 50, "eta": 1.0})
    assert preset("sacn", "auto", "Walker2d-v5", "medium") == ("walker2d", {"num_critics": 20})
    assert preset("rebrac", "auto", "Pendulum-v1", "medium") == (None, {})
    assert preset("rebrac", "none", "Hopper-v5", "medium") == (None, {})
    _, ogbench_values = preset("rebrac", "ogbench-cube-single")  # the FQL paper's ReBRAC: lr 3e-4, not D4RL's 1e-3
    assert ogbench_values["actor_lr"] == ogbench_values["critic_lr"] == 3e-4
    with pytest.raises(O2OError, match="no preset 'ant-medium'"):
        preset("rebrac", "ant-medium")


def test_auto_preset_reads_the_level_of_a_d4rl_file_name_and_warns_where_the_paper_has_none(tmp_path):
    import warnings

    import h5py
    from conftest import make_dataset

    from o2o.algorithms import d4rl_level, preset
    from o2o.train.offline import OfflineSettings, prepare

    assert d4rl_level("Hopper-v5", "/data/hopper-medium-replay-v2.hdf5") == "medium-replay"
    assert d4rl_level("Hopper-v5", "/root/.d4rl/datasets/hopper_medium_replay-v2.hdf5") == "medium-replay"  # D4RL's
    assert d4rl_level("HalfCheetah-v5", "walker2d-medium-v2.hdf5") is None  # another env's data of the same shapes
    assert d4rl_level("Hopper-v5", "hopper.hdf5") is None and d4rl_level(None, "hopper-medium-v2.hdf5") is None
    with h5py.File(tmp_path / "hopper-medium-replay-v2.hdf5", "w") as f:  # D4RL's layout: no level recorded
        for name, values in make_dataset(n=200).arrays().items():
            f[name] = np.asarray(values)
    (tmp_path / "renamed.hdf5").write_bytes((tmp_path / "hopper-medium-replay-v2.hdf5").read_bytes())
    for algo in ("rebrac", "edac", "lbsac", "sacn"):
        settings = OfflineSettings(algo=algo, dataset=str(tmp_path / "hopper-medium-replay-v2.hdf5"), env="Hopper-v5",
                                   eval_episodes=0)
        assert prepare(settings).preset["name"] == "hopper-medium-replay", algo
    renamed = OfflineSettings(algo="rebrac", dataset=str(tmp_path / "renamed.hdf5"), env="Hopper-v5", eval_episodes=0)
    with pytest.warns(UserWarning, match="rebrac has no preset for hopper data of no known level, so its defaults "
                      "apply .its presets for hopper: hopper-medium, hopper-medium-replay, hopper-medium-expert"):
        assert prepare(renamed).preset is None
    with pytest.warns(UserWarning, match="edac has no preset for hopper-random"):
        assert preset("edac", "auto", "Hopper-v5", "random") == (None, {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no word where the paper tunes nothing for the env, or by env alone
        assert preset("rebrac", "auto", "Pendulum-v1", "medium") == (None, {})
        assert preset("sacn", "auto", "Walker2d-v5", "random")[0] == "walker2d"
        assert preset("iql", "auto", "Hopper-v5", "medium") == (None, {})


def fql_state(**config):
    return fql.init(jax.random.PRNGKey(0), SPEC, fql.Config(hidden_dims=(4,), **config))


def test_fql_flow_matching_loss_regresses_the_straight_path_velocity():
    state = fql_state()
    params = constant(state.bc_flow.params, 0.5)  # v(s, x, t) = 0.5 everywhere
    noise, times = jnp.array([[1.0], [0.0]]), jnp.array([[0.3], [0.9]])
    # a - x_0 = (0.5 - 1, -1 - 0) = (-0.5, -1): mean((0.5 + 0.5)^2, (0.5 + 1)^2)
    loss = fql.flow_matching_loss(state.bc_flow, params, BATCH["observations"], BATCH["actions"], noise, times)
    assert loss == pytest.approx((1.0 + 2.25) / 2, rel=1e-6)


def test_fql_one_step_policy_loss_distils_the_euler_integrated_flow():
    state = fql_state(alpha=300.0, flow_steps=10)
    state = state.replace(bc_flow=state.bc_flow.replace(params=constant(state.bc_flow.params, 0.3)),
                          critic=state.critic.replace(params=constant(state.critic.params, 4.0)))
    noise = jnp.array([[0.5], [-2.0]])
    # ten Euler steps of v = 0.3 / 10 move z by 0.3: mu = clip(0.8), clip(-1.7) = 0.8, -1
    np.testing.assert_allclose(fql.flow_actions(state, BATCH["observations"], noise), [[0.8], [-1.0]], rtol=1e-6)
    actor_params = constant(state.actor.params, 0.2)
    loss, info = fql.one_step_policy_loss(state, actor_params, BATCH["observations"], noise)
    assert info["distill_loss"] == pytest.approx((0.6**2 + 1.2**2) / 2, rel=1e-5)
    assert loss == pytest.approx(300.0 * 0.9 - 4.0, rel=1e-5)  # Q = 4 at any action, lambda = 1
    loss, _ = fql.one_step_policy_loss(state.replace(config=dataclasses.replace(state.config, normalize_q_loss=True)),
                                       actor_params, BATCH["observations"], noise)
    assert loss == pytest.approx(300.0 * 0.9 - 1.0, rel=1e-5)


@pytest.mark.parametrize("aggregation, expected_next_q", [("mean", 2.0), ("min", 1.0)])
def test_fql_critic_target_aggregates_the_target_critics(aggregation, expected_next_q):
    state = fql_state(q_aggregation=aggregation, discount=0.99)
    target = constant(state.target_critic_params, 0.0)
    target["VmapCritic_0"]["MLP_0"]["Dense_1"]["bias"] = jnp.array([[1.0], [3.0]])  # the two critics: 1 and 3
    state = state.replace(target_critic_params=target)
    y = fql.critic_target(state, BATCH, BATCH["next_observations"], jnp.zeros((2, 1)))
    np.testing.assert_allclose(y, [1.0 + 0.99 * expected_next_q, 0.0], rtol=1e-6)


def test_fql_flow_reproduces_a_bimodal_action_distribution_a_gaussian_cannot():
    """Actions are +-0.8 with equal odds in every state. The best Gaussian (mean 0, std 0.8) puts 47% of its mass within
    0.5 of zero, where no action was taken; the learned flow must put its samples near the two modes."""
    import optax

    state = fql.init(jax.random.PRNGKey(0), Spec.unnormalized(1, 1), fql.Config(hidden_dims=(64, 64)))
    bc_flow = state.bc_flow.replace(optimizer=optax.adam(3e-3), opt_state=optax.adam(3e-3).init(state.bc_flow.params))

    def step(network, key):
        sign_key, x0_key, t_key = jax.random.split(key, 3)
        actions = 0.8 * jnp.where(jax.random.bernoulli(sign_key, 0.5, (256, 1)), 1.0, -1.0)
        loss, grads = jax.value_and_grad(fql.flow_matching_loss, argnums=1)(
            network, network.params, jnp.zeros((256, 1)), actions, jax.random.normal(x0_key, (256, 1)),
            jax.random.uniform(t_key, (256, 1)))
        return network.apply_gradients(grads), loss

    bc_flow, _ = jax.jit(lambda n: jax.lax.scan(step, n, jax.random.split(jax.random.PRNGKey(1), 2000)))(bc_flow)
    samples = np.asarray(fql.flow_actions(state.replace(bc_flow=bc_flow), jnp.zeros((4000, 1)),
                                          jax.random.normal(jax.random.PRNGKey(2), (4000, 1))))[:, 0]
    assert np.mean(np.abs(samples) < 0.5) < 0.1
    assert 0.35 < np.mean(samples > 0) < 0.65
    assert np.mean(np.abs(np.abs(samples) - 0.8) < 0.15) > 0.7


def test_famo2o_embeds_beta_as_interleaved_sines_and_cosines_and_maps_u_to_the_range():
    config = famo2o.Config(embedding_dim=4, embedding_base=100.0, coefficient_min=1.0, coefficient_max=5.0)
    beta = jnp.array([[0.0], [2.0]])
    # frequencies 100^(-2i/4), i = 0, 1: 1 and 0.1
    expected = [[0.0, 1.0, 0.0, 1.0], [np.sin(2.0), np.cos(2.0), np.sin(0.2), np.cos(0.2)]]
    np.testing.assert_allclose(famo2o.embedding(beta, config), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(famo2o.coefficient(jnp.array([-1.0, 0.0, 1.0]), config), [1.0, 3.0, 5.0])


def test_famo2o_weights_each_sample_by_the_batch_mean_over_coefficients_or_by_its_own():
    """Advantages (1, -1, 6), coefficients (1, 2, 1): the authors' broadcast gives sample j the mean over i of
    min(exp(beta_i A_j), 100), the paper's min(exp(beta_j A_j), 100)."""
    advantage, beta = jnp.array([1.0, -1.0, 6.0]), jnp.array([[1.0], [2.0], [1.0]])
    authors = famo2o.advantage_weights(advantage, beta, famo2o.Config())
    e = np.e
    # the third sample's exp(6) and exp(12) are both clipped at 100
    np.testing.assert_allclose(authors, [(2 * e + e ** 2) / 3, (2 / e + e ** -2) / 3, 100.0], rtol=1e-6)
    own = famo2o.advantage_weights(advantage, beta, famo2o.Config(batch_mean_weights=False))
    np.testing.assert_allclose(own, [e, e ** -2, 100.0], rtol=1e-6)


def qc_state(algo="qc-fql", **changes):
    # two Euler steps of a constant velocity move as far as ten: the flows below are constant
    _, config = get_algorithm(algo, {"hidden_dims": "8,8", "horizon": "3", "flow_steps": "2", **changes})
    return qc.init(jax.random.PRNGKey(0), Spec.unnormalized(2, 1), config)


def test_qc_critic_target_sums_the_window_discounted_and_drops_windows_past_an_episode_end():
    """Critics output 0.5, the target critics 1 and 3 (mean 2); gamma 0.9, h 3. Window 1: rewards 1, 2, 3, a success at
    its second step: y = 1 + 0.9 * 2 + 0.81 * 3 = 5.23 (no bootstrap). Window 2: rewards 0, 0, 1, no done, y = 0.81 +
    0.729 * 2, but its episode ends at its second step: its third step is invalid and the window drops out of the
    critic loss, which still averages over all 2 x 2 entries (the authors' code)."""
    state = qc_state(discount="0.9")
    target = constant(state.target_critic_params, 0.0)
    target["VmapCritic_0"]["MLP_0"]["Dense_2"]["bias"] = jnp.array([[1.0], [3.0]])
    state = state.replace(critic=state.critic.replace(params=constant(state.critic.params, 0.5)),
                          target_critic_params=target)
    batch = {"observations": jnp.zeros((2, 3, 2)), "actions": jnp.zeros((2, 3, 1)),
             "rewards": jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]]), "next_observations": jnp.zeros((2, 3, 2)),
             "dones": jnp.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]),
             "steps_to_episode_end": jnp.array([[7.0, 6.0, 5.0], [1.0, 0.0, 9.0]])}
    np.testing.assert_array_equal(qc.window_validity(batch["steps_to_episode_end"][:, 0], 3), [[1, 1, 1], [1, 1, 0]])
    update = jax.jit(qc.update)  # compiled once: op by op, every primitive compiles on its own
    _, metrics = update(state, batch, jax.random.PRNGKey(1))
    assert metrics["q"] == pytest.approx(0.5)
    assert metrics["critic_loss"] == pytest.approx(2 * (0.5 - 5.23) ** 2 / 4, rel=1e-5)
    batch["steps_to_episode_end"] = jnp.full((2, 3), 9.0)  # both windows inside their episodes
    _, metrics = update(state, batch, jax.random.PRNGKey(1))
    assert metrics["critic_loss"] == pytest.approx((2 * (0.5 - 5.23) ** 2 + 2 * (0.5 - 2.268) ** 2) / 4, rel=1e-5)


def test_qc_target_critic_moves_towards_the_critic_before_its_step():
    state = qc_state()
    batch = {"observations": jnp.ones((4, 3, 2)), "actions": jnp.zeros((4, 3, 1)), "rewards": jnp.ones((4, 3)),
             "next_observations": jnp.ones((4, 3, 2)), "dones": jnp.zeros((4, 3)),
             "steps_to_episode_end": jnp.full((4, 3), 9.0)}
    new, _ = qc.update(state, batch, jax.random.PRNGKey(1))  # eager: bit for bit what soft_update computes
    expected = soft_update(state.target_critic_params, state.critic.params, state.config.tau)
    for x, y in zip(jax.tree.leaves(new.target_critic_params), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(x, y)


def test_qc_executes_a_chunk_open_loop_and_draws_the_next_at_h():
    state = qc_state()
    observation = jnp.array([0.3, -0.2])
    memory, actions = qc.begin_episode(state), []
    for t in range(4):
        action, memory = qc.act_in_episode(state, memory, observation, jnp.float32(0), jnp.int32(t),
                                           jax.random.PRNGKey(10 + t))
        actions.append(np.asarray(action))
    first = np.asarray(qc.act_chunks(state, observation[None], jax.random.PRNGKey(10))[0])
    np.testing.assert_array_equal(actions[:3], first)  # steps 0..2: the chunk drawn at t = 0, whatever their keys
    fresh = np.asarray(qc.act_chunks(state, observation[None], jax.random.PRNGKey(13))[0])
    np.testing.assert_array_equal(actions[3], fresh[0])  # t = 3: a new chunk with its own draw


def test_qc_best_of_n_takes_the_candidate_the_critics_value_most():
    """Critics that value a chunk by its first action: of the four candidates the flow gives, the largest first action
    wins (the flow is constant, so candidate n is its noise z_n moved by the same 0.3 and clipped)."""
    state = qc_state("qc", num_samples="4", hidden_dims="8", critic_layer_norm="false")
    state = state.replace(bc_flow=state.bc_flow.replace(params=constant(state.bc_flow.params, 0.3)))
    critic = jax.tree.map(jnp.zeros_like, state.critic.params)
    layers = critic["VmapCritic_0"]["MLP_0"]
    # input 2: the chunk's first action (after the 2 state dimensions); GELU grows above -0.75
    layers["Dense_0"]["kernel"] = layers["Dense_0"]["kernel"].at[:, 2, :].set(1.0)
    layers["Dense_1"]["kernel"] = jnp.ones_like(layers["Dense_1"]["kernel"])
    state = state.replace(critic=state.critic.replace(params=critic))
    noise = jnp.array([[[-0.5, 0, 0], [0.4, 0, 0], [0.1, 0, 0], [-0.9, 0, 0]]])
    chunk = qc.chunk_actions(state, jnp.zeros((1, 2)), noise)
    np.testing.assert_allclose(chunk, [[0.7, 0.3, 0.3]], rtol=1e-5)


def test_ro2o_gaussian_kl_on_hand_computed_cases():
    # KL(N(0, 1) || N(1, 2^2)) = log 2 + (1 + 1) / (2 * 4) - 1/2; KL(N(1, 2^2) || N(0, 1)) = -log 2 + (4 + 1) / 2 - 1/2
    kl = ro2o.gaussian_kl(jnp.array(0.0), jnp.array(0.0), jnp.array(1.0), jnp.log(2.0))
    back = ro2o.gaussian_kl(jnp.array(1.0), jnp.log(2.0), jnp.array(0.0), jnp.array(0.0))
    np.testing.assert_allclose([kl, back], [np.log(2) - 0.25, 2.0 - np.log(2)], rtol=1e-6)
    # nearly coincident Gaussians: d^2 + z^2 / 2 to first order, which the expm1 form keeps in float32
    d = 1e-4
    near = ro2o.gaussian_kl(jnp.array(0.0), jnp.array(d, jnp.float32), jnp.array(0.0), jnp.array(0.0))
    np.testing.assert_allclose(near, d**2, rtol=1e-3)


def test_ro2o_perturbs_each_state_by_offsets_shared_across_the_batch():
    obs = jnp.array([[0.0, 10.0], [1.0, 20.0], [2.0, 30.0]])
    uniform = jnp.array([[0.0, 1.0], [0.5, 0.75]])  # offsets 2 eps (u - 0.5): (-eps, eps) and (0, eps / 2)
    noisy = ro2o.perturbed(obs, 0.1, 2, jax.random.PRNGKey(0), lambda key, shape: uniform)
    np.testing.assert_allclose(noisy.reshape(3, 2, 2), obs[:, None, :] + jnp.array([[-0.1, 0.1], [0.0, 0.05]]),
                               atol=1e-6)


def test_ro2o_q_smoothness_takes_each_state_worst_offset_weighting_drops_by_tau(monkeypatch):
    class TwoCritics:  # Q_1(s, a) = s_0, Q_2(s, a) = 2 s_0
        @staticmethod
        def apply(variables, obs, actions):
            return jnp.stack([obs[:, 0], 2.0 * obs[:, 0]])

    config = ro2o.Config(num_critics=2, num_perturbations=2, q_smooth_tau=0.2, q_smooth_eps=1.0)
    state = ro2o.init(jax.random.PRNGKey(0), SPEC, config)
    state = state.replace(critic=state.critic.replace(module=TwoCritics()))
    # offsets 2 eps (u - 0.5): s_0 + 0.5 (u = 0.75) and s_0 - 0.75 (u = 0.125)
    monkeypatch.setattr(ro2o, "q_smooth_perturbation_draw", lambda key, shape: jnp.array([[0.75, 0.5], [0.125, 0.5]]))
    obs, actions = jnp.zeros((3, 2)), jnp.zeros((3, 1))
    value = ro2o.q_smoothness(state, None, obs, actions, state.critic(obs, actions), jax.random.PRNGKey(0))
    # up by (0.5, 1): 0.8 * (0.25 + 1) / 2 = 0.5; down by (0.75, 1.5): 0.2 * (0.5625 + 2.25) / 2 = 0.28125; the worst
    # offset counts (tau swapped: 1.125; the mean over offsets: 0.390625)
    np.testing.assert_allclose(value, 0.5, rtol=1e-6)


def test_ro2o_pessimism_weight_decays_linearly_to_its_floor_and_fine_tuning_drops_the_three_terms():
    config = ro2o.Config(ood_uncertainty=1.0, ood_uncertainty_min=0.5, ood_uncertainty_decay=0.01)
    np.testing.assert_allclose([ro2o.ood_uncertainty(config, jnp.array(t)) for t in (0, 10, 50, 80)],
                               [1.0, 0.9, 0.5, 0.5], rtol=1e-6)
    _, online = get_algorithm("ro2o", online_updates=1_000)
    assert (online.q_smooth_weight, online.ood_weight, online.policy_smooth_weight) == (0.0, 0.0, 0.0)
    _, kept = get_algorithm("ro2o", {"ood_weight": "0.1"}, online_updates=1_000)
    assert kept.ood_weight == 0.1
    with pytest.raises(O2OError, match="num_critics"):
        get_algorithm("ro2o", {"num_critics": "1"})


def test_ro2o_antmaze_recipes_offline_and_fine_tuning():
    """The authors' AntMaze scripts: the LCB one trains offline on raw rewards with beta_bc 5 and fine-tunes on
    4 (r - 0.5) with beta_bc 1; the min one uses 4 (r - 0.5) throughout and fine-tunes with beta_bc 10. The preset
    carries its fine-tuning script, a user's value at fine-tuning stays theirs, and MuJoCo's recipe is untouched."""
    from o2o.algorithms import preset
    lcb, minimum = (preset("ro2o", name)[1] for name in ("antmaze-lcb", "antmaze-min"))
    _, offline = get_algorithm("ro2o", preset=lcb)
    assert (offline.per_critic_targets, offline.actor_std_weight, offline.bc_weight) == (True, -4.0, 5.0)
    assert (offline.reward_scale, offline.reward_bias, offline.ood_weight, offline.q_smooth_eps) == (1.0, 0.0, 0.3, 0.0)
    inherited = dataclasses.asdict(offline)
    _, online = get_algorithm("ro2o", inherited=inherited, online_updates=10)
    assert (online.bc_weight, online.reward_scale, online.reward_bias, online.ood_weight) == (1.0, 4.0, -2.0, 0.0)
    assert online.per_critic_targets and online.actor_std_weight == -4.0
    _, mine = get_algorithm("ro2o", {"bc_weight": "3"}, inherited=inherited, online_updates=10)
    assert mine.bc_weight == 3.0
    _, offline = get_algorithm("ro2o", preset=minimum)
    assert (offline.actor_std_weight, offline.bc_weight, offline.reward_scale, offline.reward_bias) == (None, 1.0, 4.0, -2.0)
    _, online = get_algorithm("ro2o", inherited=dataclasses.asdict(offline), online_updates=10)
    assert (online.bc_weight, online.reward_scale, online.reward_bias) == (10.0, 4.0, -2.0)
    _, mujoco = get_algorithm("ro2o", online_updates=10)
    assert (mujoco.per_critic_targets, mujoco.bc_weight, mujoco.reward_scale, mujoco.reward_bias) == (False, 0.0, 1.0, 0.0)
    with pytest.raises(O2OError, match="finetuning"):
        get_algorithm("ro2o", {"finetuning": "kitchen"})


def test_ro2o_per_critic_targets_are_each_critics_own_and_their_minimum_is_sac_ns_target():
    """y_i = r + gamma (1 - d) (Q_targ_i(s', a') - alpha log pi): the critics' targets differ, their minimum is SAC-N's
    one target (the same a' and log pi), a done transition's targets are all r; and the update trained with
    reward_scale 4, reward_bias -2 is the update on 4 r - 2."""
    config = ro2o.Config(num_critics=3, hidden_dims=(8, 8), per_critic_targets=True)
    state = ro2o.init(jax.random.PRNGKey(0), SPEC, config)
    batch = {"observations": jnp.ones((4, SPEC.observation_dim)), "rewards": jnp.array([1.0, 0.0, 1.0, 0.5]),
             "dones": jnp.array([0.0, 0.0, 1.0, 0.0])}
    per_critic = sac.critic_target(state, batch, batch["observations"], jax.random.PRNGKey(1), per_critic=True)
    shared = sac.critic_target(state, batch, batch["observations"], jax.random.PRNGKey(1))
    assert per_critic.shape == (3, 4) and shared.shape == (4,)
    np.testing.assert_allclose(per_critic.min(axis=0), shared, rtol=1e-6)
    assert float(jnp.ptp(per_critic[:, 0])) > 1e-4
    np.testing.assert_allclose(per_critic[:, 2], 1.0, rtol=1e-6)
    scaled = ro2o.init(jax.random.PRNGKey(0), SPEC, dataclasses.replace(config, reward_scale=4.0, reward_bias=-2.0))
    given = {**BATCH, "rewards": 4.0 * BATCH["rewards"] - 2.0}
    after_scaled, _ = ro2o.update(scaled, BATCH, jax.random.PRNGKey(2))
    after_given, _ = ro2o.update(state, given, jax.random.PRNGKey(2))
    for a, b in zip(jax.tree.leaves(after_scaled.critic.params), jax.tree.leaves(after_given.critic.params)):
        np.testing.assert_array_equal(a, b)


def test_sung_explores_with_the_rarest_of_the_best_candidates_by_q(monkeypatch):
    class Zero:  # pi(s) = 0
        apply = staticmethod(lambda variables, obs: jnp.zeros(obs.shape[:-1] + (1,)))

    class QIsTheAction:  # Q_1(s, a) = Q_2(s, a) = a
        apply = staticmethod(lambda variables, obs, actions: jnp.stack([actions[:, 0], actions[:, 0]]))

    config = sung.Config(num_candidates=4, top_q=2, exploration_noise=1.0, normalize_observations=False)
    state = sung.init(jax.random.PRNGKey(0), SPEC, config)
    state = state.replace(actor=state.actor.replace(module=Zero()), critic=state.critic.replace(module=QIsTheAction()))
    monkeypatch.setattr(sung, "candidate_noise_draw", lambda key, shape: jnp.array([[0.3], [0.9], [-0.5], [2.0]]))
    obs = jnp.zeros((3, 2))
    # the best two by Q are 2.0 and 0.9; the rarer (larger u) is drawn with probability softmax(u)
    monkeypatch.setattr(sung, "uncertainty", lambda state, params, obs, actions, noise: 50.0 * (actions[:, 0] < 1.0))
    np.testing.assert_allclose(sung.act(state, obs, jax.random.PRNGKey(1), False), 0.9, rtol=1e-6)
    monkeypatch.setattr(sung, "uncertainty", lambda state, params, obs, actions, noise: 50.0 * (actions[:, 0] > 1.0))
    np.testing.assert_allclose(sung.act(state, obs, jax.random.PRNGKey(1), False), 1.0)  # 2.0, clipped
    np.testing.assert_allclose(sung.act(state, obs, jax.random.PRNGKey(1), True), 0.0)  # evaluation: pi(s)


def test_sung_cql_explores_with_the_best_by_q_of_the_rarest_candidates(monkeypatch):
    class Unit:  # pi(.|s) = N(0, 1) before the tanh
        apply = staticmethod(lambda variables, obs: 2 * (jnp.zeros(obs.shape[:-1] + (1,)),))

    class QIsTheAction:  # Q_1(s, a) = Q_2(s, a) = 50 a
        apply = staticmethod(lambda variables, obs, actions: 50.0 * jnp.stack([actions[:, 0], actions[:, 0]]))

    config = sung_cql.Config(num_candidates=4, top_uncertain=2, hidden_dims=(4,), vae_hidden_dims=(4,))
    state = sung_cql.init(jax.random.PRNGKey(0), SPEC, config)
    state = state.replace(actor=state.actor.replace(module=Unit()), critic=state.critic.replace(module=QIsTheAction()))
    monkeypatch.setattr(sung_cql, "candidate_noise_draw", lambda key, shape: jnp.array([[0.3], [0.9], [-0.5], [2.0]]))
    obs = jnp.zeros((3, 2))
    # u = -a: the rarest two are tanh(-0.5) and tanh(0.3); softmax(50 a) draws the larger, tanh(0.3)
    monkeypatch.setattr(sung, "uncertainty", lambda state, params, obs, actions, noise: -actions[:, 0])
    np.testing.assert_allclose(sung_cql.act(state, obs, jax.random.PRNGKey(1), False), np.tanh(0.3), rtol=1e-6)
    # u = a: the rarest two are tanh(2) and tanh(0.9); the larger by Q, tanh(2)
    monkeypatch.setattr(sung, "uncertainty", lambda state, params, obs, actions, noise: actions[:, 0])
    np.testing.assert_allclose(sung_cql.act(state, obs, jax.random.PRNGKey(1), False), np.tanh(2.0), rtol=1e-6)
    np.testing.assert_allclose(sung_cql.act(state, obs, jax.random.PRNGKey(1), True), 0.0)  # evaluation: tanh(mean)


def test_sung_cql_draws_its_conservative_samples_by_softmax_u_once_fine_tuning(monkeypatch):
    drawn = []
    draw = sung_cql.uncertain_samples_draw
    monkeypatch.setattr(sung_cql, "uncertain_samples_draw", lambda *args: drawn.append(draw(*args)) or drawn[-1])
    batch = {**BATCH, **{k: jnp.concatenate([v] * 10) for k, v in BATCH.items()}}  # 20 transitions
    # u = 50 on transition 3, 0 elsewhere: softmax puts all but e^-50 of the mass there
    monkeypatch.setattr(sung, "uncertainty", lambda state, params, obs, actions, noise: 50.0 * (jnp.arange(20) == 3))
    offline = sung_cql.Config(hidden_dims=(4,), vae_hidden_dims=(4,), cql_num_actions=2)
    sung_cql.update(sung_cql.init(jax.random.PRNGKey(0), SPEC, offline), batch, jax.random.PRNGKey(1))
    assert not drawn  # offline: every sample once (CQL)
    _, online = get_algorithm("sung-cql", {"hidden_dims": "4", "vae_hidden_dims": "4", "cql_num_actions": "2"},
                              online_updates=1_000)
    assert (online.conservative_weight, online.uncertain_fraction) == (0.1, 0.1)
    state = sung_cql.init(jax.random.PRNGKey(0), SPEC, online)
    _, metrics = sung_cql.update(state, batch, jax.random.PRNGKey(1))
    assert drawn[0].tolist() == [3, 3]  # int(0.1 * 20) samples, with replacement
    assert np.isfinite(metrics["conservative_loss"]) and np.isfinite(metrics["vae_loss"])


def test_sung_uncertainty_is_the_per_dimension_negative_elbo_and_fine_tuning_narrows_the_bc_term():
    class Echo:  # reconstruction 0.5 everywhere, latent mean 1 and log std 0
        apply = staticmethod(lambda variables, x, noise: (jnp.full(x.shape, 0.5), jnp.ones(noise.shape),
                                                          jnp.zeros(noise.shape)))

    state = sung.init(jax.random.PRNGKey(0), SPEC, sung.Config())
    state = state.replace(vae=state.vae.replace(module=Echo()))
    u = sung.uncertainty(state, None, jnp.array([[0.5, 1.5]]), jnp.array([[-0.5]]), jnp.zeros((1, 2)))
    # reconstruction: mean(0, 1, 1) = 2/3; KL per latent dimension -0.5 (1 + 0 - 1 - 1) = 0.5, weighted 0.5
    np.testing.assert_allclose(u, [2.0 / 3.0 + 0.25], rtol=1e-6)
    _, online = get_algorithm("sung", online_updates=1_000)
    assert (online.bc_weight, online.uncertain_fraction) == (0.05, 0.05)
