"""RLPD parity: the authors' `SACLearner.update` (ikostrikov/rlpd, rlpd/agents/sac/sac_learner.py, JAX) on o2o's initial
parameters, batch and draws.

    python benchmarks/parity/rlpd.py --reference /work/refs/rlpd --inputs INPUTS

It runs in refs/.venv-iql (jax 0.4.30, flax 0.8.5, optax 0.2.3, tensorflow-probability 0.24.0; its requirements ask for
jax >= 0.3.13, flax >= 0.5.2, tensorflow-probability >= 0.17): TensorFlow Probability's JAX substrate (its policy
distribution) does not import with jax 0.10. What the adapter does to the reference, and nothing else:
- the imports its package makes for training scripts only are stubbed (gym, d4rl, dmcgym, wandb), and TensorFlow
  Probability's JAX substrate is imported before it (its modules reach it as an attribute of the package);
- its learner is built by its own `SACLearner.create` with rlpd_config.py's settings (o2o's sizes: fewer critics,
  narrower layers), then o2o's initial parameters replace its own (o2o's policy output layer: the first action_dim
  columns are its OutputDenseMean, the others its OutputDenseLogStd; o2o's critic Dense_2 is its StateActionValue's
  Dense_0), with fresh optimiser states from its own optimisers;
- its draws are the injected ones: TensorFlow Probability's `samplers.normal`, called by its tanh-Gaussian's `sample`
  for a' ~ pi(s') in the critic target, then for a ~ pi(s) in the actor loss (it draws them as (action_dim, batch) and
  transposes them), and `jax.random.choice`, the target's random critic subset in `subsample_ensemble`;
- two documented deviations aligned (see the fixture's JSON): `update_temperature` takes o2o's temperature loss (the one
  jaxrl's SAC has: tests/fixtures/parity/sac-as-is.json shows its effect), and its critic optimiser first multiplies the
  gradient by the number of critics (o2o's critic loss is the critics' sum, its the mean);
- one numerical shim: flax's LayerNorm computes the variance in two passes, E[(x - E[x])^2] (`use_fast_variance=False`,
  o2o's LayerNorm), not as E[x^2] - E[x]^2: in float32 that cancellation put the reference's Q values 7e-4 from its own
  float64 run in this fixture (o2o's: 1e-5); in float64 the two forms agree.
Each call is the reference's `update(batch, utd_ratio)` with o2o's `actor_every` as its UTD (4 here, the paper's 20):
that many critic (and target) steps on as many minibatches, then one actor and one temperature step on the last, as
o2o's `sac.update` with `actor_every` = UTD takes them over that many updates. Its minibatches are the fixture's one
batch, repeated; the critic losses of every critic step are recorded by wrapping its `update_critic` (the update returns
only the last), the actor's losses at the last step of each call (NaN at the others, where o2o skips them too).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import sys
import types
from unittest import mock

import fixture
import numpy as np
from sac_helpers import (
    TEMPERATURE_DEVIATION,
    check_jit,
    draws_in_call_order,
    join_policy,
    log_stds_range,
    numpy_tree,
    split_policy,
)

STUBBED = ("gym", "gym.utils", "gym.spaces", "gym.wrappers", "d4rl", "dmcgym", "wandb")


def to_reference(init: dict, action_dim: int) -> dict:
    """o2o's parameters (state fields actor, critic, log_temperature) in the reference's modules' structure."""
    layers, mean, log_std = split_policy(init["actor"]["MLP_0"], action_dim)
    mlp = init["critic"]["VmapCritic_0"]["MLP_0"]
    output = f"Dense_{len([name for name in mlp if name.startswith('Dense_')]) - 1}"
    return {"actor": {"MLP_0": layers, "OutputDenseMean": mean, "OutputDenseLogStd": log_std},
            "critic": {"VmapStateActionValue_0": {"MLP_0": {k: v for k, v in mlp.items() if k != output},
                                                  "Dense_0": mlp[output]}},
            "temp": {"log_temp": init["log_temperature"]["log_temperature"]}}


def critic_from_reference(params) -> dict:
    ensemble = numpy_tree(params["VmapStateActionValue_0"])
    output = f"Dense_{len([name for name in ensemble['MLP_0'] if name.startswith('Dense_')])}"
    return {"VmapCritic_0": {"MLP_0": {**ensemble["MLP_0"], output: ensemble["Dense_0"]}}}


def main() -> None:
    args = fixture.arguments(__doc__.splitlines()[0])
    inputs = fixture.Inputs(args.inputs)
    config, meta = inputs.config, inputs.meta
    import jax
    if args.float64:
        jax.config.update("jax_enable_x64", True)
    import flax
    import flax.linen
    import jax.numpy as jnp
    import optax
    import tensorflow_probability
    import tensorflow_probability.substrates.jax
    from tensorflow_probability.substrates.jax.internal import (
        samplers,  # where its distributions draw
    )

    fixture.stub_training_imports(*STUBBED)
    flax.linen.LayerNorm = functools.partial(flax.linen.LayerNorm, use_fast_variance=False)  # the numerical shim
    sys.path.insert(0, str(args.reference))
    from rlpd.agents.sac.sac_learner import SACLearner

    num_critics, subset, action_dim = config["num_critics"], config["critic_subset"], meta["action_dim"]
    assert config["critic_layer_norm"] and config["actor_uses_mean_q"] and config["backup_entropy"], "RLPD's settings"
    assert not config["normalize_observations"]
    dtype = jnp.float64 if args.float64 else jnp.float32
    observations = types.SimpleNamespace(sample=lambda: np.zeros(meta["observation_dim"], np.float32))
    actions = types.SimpleNamespace(sample=lambda: np.zeros(action_dim, np.float32), shape=(action_dim,))
    target_entropy = config["target_entropy_per_action_dim"] * action_dim
    agent = SACLearner.create(  # rlpd_config.py: sac_config.py's SAC with num_qs 10, num_min_qs 2, critic LayerNorm
        0, observations, actions, actor_lr=config["actor_lr"], critic_lr=config["critic_lr"],
        temp_lr=config["temperature_lr"], hidden_dims=tuple(config["hidden_dims"]), discount=config["discount"],
        tau=config["tau"], num_qs=num_critics, num_min_qs=subset, critic_layer_norm=True,
        target_entropy=target_entropy, init_temperature=config["initial_temperature"], backup_entropy=True)

    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), to_reference(inputs.tree("init"), action_dim))
    for name in ("actor", "critic", "temp"):
        state = getattr(agent, name)
        assert jax.tree_util.tree_structure(state.params) == jax.tree_util.tree_structure(params[name]), name
        agent = agent.replace(**{name: state.replace(params=params[name], opt_state=state.tx.init(params[name]))})
    agent = agent.replace(target_critic=agent.target_critic.replace(params=params["critic"]))
    critic_tx = optax.chain(optax.scale(num_critics), agent.critic.tx)  # o2o's summed critic loss (deviations)
    agent = agent.replace(critic=agent.critic.replace(tx=critic_tx, opt_state=critic_tx.init(agent.critic.params)))

    raw = inputs.tree("batch")
    batch = {"observations": raw["observations"], "actions": raw["actions"], "rewards": raw["rewards"],
             "masks": 1.0 - raw["dones"], "next_observations": raw["next_observations"]}
    batch = {k: jnp.asarray(v, dtype) for k, v in batch.items()}
    check_jit(jax, agent.critic.apply_fn, {"params": agent.critic.params}, batch["observations"], batch["actions"])

    def o2o_temperature_step(self, entropy):
        """update_temperature with o2o's loss, log(alpha) (H - target) (the deviation)."""
        def temperature_loss_fn(temp_params):
            temp_loss = temp_params["log_temp"] * (entropy - self.target_entropy).mean()
            temperature = self.temp.apply_fn({"params": temp_params})
            return temp_loss, {"temperature": temperature, "temperature_loss": temp_loss}

        grads, temp_info = jax.grad(temperature_loss_fn, has_aux=True)(self.temp.params)
        return self.replace(temp=self.temp.apply_gradients(grads=grads)), temp_info

    update = SACLearner.update.__wrapped__  # the update its training loop jits; traced once more here
    update_critic = SACLearner.update_critic
    utd = config["actor_every"]
    assert inputs.steps % utd == 0, f"{inputs.steps} updates are not whole calls of {utd}"
    minibatches = {k: jnp.concatenate([v] * utd) for k, v in batch.items()}  # update slices them back into `utd`

    @jax.jit
    def call(agent, next_action_noise, actor_action_noise, critic_subset):
        """One call of update(batch, utd): the draws of its `utd` critic steps, then its actor step's."""
        critic_infos = []

        def recorded_critic_step(self, mini_batch):
            agent, info = update_critic(self, mini_batch)
            critic_infos.append(info)
            return agent, info

        with contextlib.ExitStack() as stack:
            stack.enter_context(draws_in_call_order(samplers, "normal", [*next_action_noise, actor_action_noise],
                                                    transposed=True))
            stack.enter_context(draws_in_call_order(jax.random, "choice", list(critic_subset)))
            stack.enter_context(mock.patch.object(SACLearner, "update_temperature", o2o_temperature_step))
            stack.enter_context(mock.patch.object(SACLearner, "update_critic", recorded_critic_step))
            agent, info = update(agent, minibatches, utd)
        return agent, info, critic_infos

    def parameters() -> dict:
        policy = numpy_tree(agent.actor.params)
        mlp = join_policy(policy["MLP_0"], policy["OutputDenseMean"], policy["OutputDenseLogStd"])
        return {"actor": {"MLP_0": mlp},
                "critic": critic_from_reference(agent.critic.params),
                "target_critic_params": critic_from_reference(agent.target_critic.params),
                "log_temperature": {"log_temperature": np.asarray(agent.temp.params["log_temp"])}}

    critic_recorded, actor_recorded = ["critic_loss", "q"], ["actor_loss", "entropy", "temperature", "temperature_loss"]
    losses, after_1, floor = {name: [] for name in critic_recorded + actor_recorded}, None, np.inf
    next_noise = jnp.asarray(inputs.draws("next_action_noise"), dtype)
    noise = jnp.asarray(inputs.draws("actor_action_noise"), dtype)
    subsets = jnp.asarray(inputs.arrays["draws/critic_subset"])
    for first in range(0, inputs.steps, utd):
        last = first + utd - 1  # o2o's update whose counter reaches a multiple of utd: its actor step
        agent, info, critic_infos = call(agent, next_noise[first:last + 1], noise[last], subsets[first:last + 1])
        for critic_info in critic_infos:
            losses["critic_loss"].append(num_critics * float(critic_info["critic_loss"]))  # o2o's sum (deviations)
            losses["q"].append(float(critic_info["q"]))
        for name in actor_recorded:
            losses[name].extend([float("nan")] * (utd - 1) + [float(info[name])])
        policy = numpy_tree(agent.actor.params)
        floor = min(floor, *(log_stds_range(policy["MLP_0"], policy["OutputDenseLogStd"], raw[k])[0]
                             for k in ("observations", "next_observations")))
        if first == 0:
            after_1 = copy.deepcopy(parameters())
    assert floor > -5.0, f"a log-std reached {floor}: the two log-std clips (see deviations) would differ"

    deviations = [
        {**TEMPERATURE_DEVIATION,
         "in_this_fixture": "aligned to o2o's: the adapter's update_temperature differentiates log(alpha) (H - "
                            "target); sac-as-is.json shows the effect on jaxrl's SAC, whose loss is the same"},
        {"name": "critic loss scale",
         "reference": "mean over the ensemble of the critics' squared errors ((qs - target_q) ** 2).mean()",
         "o2o": "their sum over the ensemble (the RLPD paper's per-critic losses; jaxrl's SAC, TD3)",
         "effect": "gradients num_critics times larger, which Adam cancels but for its epsilon (1e-8)",
         "in_this_fixture": "aligned to o2o's: the adapter's critic optimiser is optax.chain(optax.scale(num_critics), "
                            "its Adam), and its recorded critic_loss is multiplied by num_critics. As the reference, "
                            "only a few arrays differ after one update, by at most 3.3e-5 (a bias whose gradient is "
                            "near epsilon), every network by less than 4e-7 after 100"},
        {"name": "log-std clip", "reference": "clip(log_std, -20, 2) (rlpd's Normal)", "o2o": "clip(log_std, -5, 2)",
         "effect": "policies with a standard deviation below exp(-5) = 0.0067 in some state",
         "in_this_fixture": f"not reached: the smallest log-std over the 100 updates is {floor:.2f}"},
        {"name": "LayerNorm variance",
         "reference": "flax's LayerNorm default: var = E[x^2] - E[x]^2 (use_fast_variance=True)",
         "o2o": "var = E[(x - E[x])^2] (o2o.nets.LayerNorm)",
         "effect": "in float32 its critics learn more slowly: at 6k env steps of RLPD's Hopper-v5 run (UTD 20, medium "
                   "data, 3 + 3 seeds) the authors' code scores 7.7 as published and 16.0 with the two-pass form, "
                   "o2o 14.9 (benchmarks/results/parity/README.md, RLPD); in this fixture its Q values end 7e-4 from "
                   "its own float64 run, 1e-5 with the two-pass form",
         "in_this_fixture": "aligned: its LayerNorm built with use_fast_variance=False (the numerical shim above)"},
    ]
    fixture.write(
        args, inputs, repository="ikostrikov/rlpd",
        versions={"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
                  "tensorflow_probability": tensorflow_probability.__version__, "numpy": np.__version__},
        why="the authors' code (Ball, Smith, Kostrikov & Levine, 2023)",
        losses=losses, after_1=after_1, after_all=parameters(),
        tolerance={"losses": 1e-5, "after_1": 1e-5, "after_all": 1e-5, **fixture.TOLERANCE_NOTE},
        injected=["a' ~ pi(s') in the critic target: TensorFlow Probability's samplers.normal in its tanh-Gaussian's "
                  "sample, one (batch, action_dim) draw per update (drawn transposed)",
                  "a ~ pi(s) in the actor loss: the same, one draw per update",
                  f"the target's random subset of {subset} of the {num_critics} critics: jax.random.choice in "
                  "subsample_ensemble, one per update (o2o: sac.critic_subset_draw)"],
        not_injected=["dropout keys: its critics have no dropout (critic_dropout_rate None, rlpd_config.py)"],
        updates_per_call=utd,
        deviations=deviations,
        notes=[(f"{num_critics} critics (the paper's 10), {subset} for the target's minimum (the paper's 2), hidden "
                f"layers {config['hidden_dims']} (the paper's (256, 256)), batch {meta['batch_size']} (the paper's "
                "256): ten 64-wide LayerNorm critics alone would take 1.2 MB"),
               f"target entropy {target_entropy} (-action_dim / 2, rlpd's default)",
               f"UTD {utd} (the paper's 20): each call of its update(batch, utd_ratio={utd}) is {utd} o2o updates with "
               f"actor_every = {utd}; after_1 holds the parameters after the first call",
               "one batch for every update; states as given (neither side standardizes them)"],
    )


if __name__ == "__main__":
    main()
