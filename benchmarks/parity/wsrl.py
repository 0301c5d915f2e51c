"""WSRL parity: the authors' online SAC update, `SACAgent.update` (zhouzypaul/wsrl, wsrl/agents/sac.py, JAX), on o2o's
initial parameters, batch and draws.

    python benchmarks/parity/wsrl.py --reference /work/refs/wsrl --inputs INPUTS

WSRL fine-tunes with its SAC agent (finetune.py --agent sac, experiments/configs/train_config.py: locomotion_wsrl);
o2o's wsrl is o2o's SAC update, so the fixture runs o2o's SAC with WSRL's settings where o2o has them (LayerNorm
critics, a random 2 of them for the target, no entropy term in the target, target entropy -action_dim, actor learning
rate 1e-4) and 4 critics (WSRL's 10). It runs in refs/.venv-wsrl (its requirements' pins: flax 0.7.5, optax 0.1.5,
chex 0.1.82, distrax 0.1.2, numpy 1.26.4; jax 0.4.20 and tensorflow-probability 0.22.1, which they leave open).

What the adapter does to the reference, and nothing else:
- the other agents its package imports are stubbed (bc, calql, cql, iql: `overrides` and more, unused by SAC);
- its agent is built by its own `SACAgent._create_common` from its own modules (Policy on an MLP, GeqLagrangeMultiplier,
  Critic), as `SACAgent.create` builds them but for three differences from o2o that o2o's config cannot express (see
  the deviations): its policy MLP without LayerNorm (o2o's policy has none); its critic ensemble with one output layer
  per critic, `ensemblize(Critic)` (o2o's), where it has `Critic(network=ensemblize(MLP))`, whose critics share one;
  its policy's standard deviations bounded as o2o's (its Policy's own std_min = exp(-5), std_max = exp(2)). o2o's
  initial parameters are copied in (the policy output layer split into its mean and log-std layers); the temperature
  starts at 1 as o2o's;
- its critic optimiser first multiplies the gradient by the number of critics (o2o's critic loss is the critics' sum,
  its the mean: a documented deviation);
- its update computes every loss on the networks as they were before it; o2o's actor loss reads the stepped critics
  (SAC's order in jaxrl and rlpd). The adapter runs its update with networks_to_update={"critic"} first, same batch and
  draws, and the real update's actor loss reads those stepped critics (its `loss_fns` bound to an agent holding them);
- the temperature is frozen on both sides (learning rate 0): WSRL's temperature update departs from o2o's in three ways
  (see the deviations), and a moving temperature would carry them into every network;
- its draws are the injected ones: distrax's standard normals (`jax.random.normal` in distrax's Normal), in its call
  order a ~ pi(s) for the actor loss, a' ~ pi(s') for the critic target, a' ~ pi(s') again for the temperature loss
  (given the target's draw: at learning rate 0 it moves nothing), and `jax.random.randint`, the target's 2 critics;
- one numerical shim: flax's LayerNorm computes the variance in two passes (`use_fast_variance=False`, o2o's form), as
  in rlpd.py.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import sys
import types
from pathlib import Path
from unittest import mock

import fixture
import numpy as np
from sac_helpers import (
    check_jit,
    draws_in_call_order,
    join_policy,
    log_stds_range,
    numpy_tree,
    split_policy,
)

STUBBED = ("wsrl.agents.bc", "wsrl.agents.calql", "wsrl.agents.cql", "wsrl.agents.iql")
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # o2o.nets: o2o's policies clip their log-stds to these


def to_reference(init: dict, action_dim: int) -> dict:
    """o2o's actor and critic in the reference's ModuleDict structure (modules_actor, modules_critic)."""
    layers, mean, log_std = split_policy(init["actor"]["MLP_0"], action_dim)
    mlp = init["critic"]["VmapCritic_0"]["MLP_0"]
    output = f"Dense_{len([name for name in mlp if name.startswith('Dense_')]) - 1}"
    return {"modules_actor": {"network": layers, "Dense_0": mean, "Dense_1": log_std},
            "modules_critic": {"network": {k: v for k, v in mlp.items() if k != output}, "Dense_0": mlp[output]}}


def critic_from_reference(params) -> dict:
    critic = numpy_tree(params["modules_critic"])
    output = f"Dense_{len([name for name in critic['network'] if name.startswith('Dense_')])}"
    return {"VmapCritic_0": {"MLP_0": {**critic["network"], output: critic["Dense_0"]}}}


def main() -> None:
    args = fixture.arguments(__doc__.splitlines()[0])
    inputs = fixture.Inputs(args.inputs)
    config, meta = inputs.config, inputs.meta
    import jax
    if args.float64:
        jax.config.update("jax_enable_x64", True)
    import distrax
    import flax
    import flax.linen
    import jax.numpy as jnp
    import optax
    from distrax._src.distributions import normal as distrax_normal

    fixture.stub_training_imports(*STUBBED)
    flax.linen.LayerNorm = functools.partial(flax.linen.LayerNorm, use_fast_variance=False)  # the numerical shim
    here = Path(__file__).resolve().parent  # this file is a module `wsrl` too, and the reference's `wsrl` a
    sys.path[:] = [str(args.reference)] + [p for p in sys.path if Path(p or ".").resolve() != here]  # namespace package
    from wsrl.agents.sac import SACAgent
    from wsrl.networks.actor_critic_nets import Critic, Policy, ensemblize
    from wsrl.networks.lagrange import GeqLagrangeMultiplier
    from wsrl.networks.mlp import MLP

    num_critics, subset, action_dim = config["num_critics"], config["critic_subset"], meta["action_dim"]
    assert config["critic_layer_norm"] and not config["backup_entropy"] and not config["actor_uses_mean_q"]
    assert config["temperature_lr"] == 0.0 and config["initial_temperature"] == 1.0, "the temperature is frozen at 1"
    assert not config["normalize_observations"] and config["target_entropy_per_action_dim"] == -1.0
    dtype = jnp.float64 if args.float64 else jnp.float32
    hidden = list(config["hidden_dims"])
    network = dict(hidden_dims=hidden, activations="relu", activate_final=True)  # locomotion_wsrl (its init aside)
    policy_def = Policy(encoder=None, network=MLP(**network, use_layer_norm=False), action_dim=action_dim,
                        tanh_squash_distribution=True, std_parameterization="exp", name="actor",
                        std_min=float(np.exp(LOG_STD_MIN)), std_max=float(np.exp(LOG_STD_MAX)))  # o2o's bounds
    critic_def = ensemblize(functools.partial(Critic, encoder=None, network=MLP(**network, use_layer_norm=True)),
                            num_critics)(name="critic")
    temperature_def = GeqLagrangeMultiplier(init_value=config["initial_temperature"], constraint_shape=(),
                                            constraint_type="geq", name="temperature")
    observations = jnp.zeros((1, meta["observation_dim"]), dtype)
    actions = jnp.zeros((1, action_dim), dtype)
    agent = SACAgent._create_common(
        jax.random.PRNGKey(0), observations, actions, actor_def=policy_def, critic_def=critic_def,
        temperature_def=temperature_def, actor_optimizer_kwargs={"learning_rate": config["actor_lr"]},
        critic_optimizer_kwargs={"learning_rate": config["critic_lr"]},
        temperature_optimizer_kwargs={"learning_rate": config["temperature_lr"]}, discount=config["discount"],
        soft_target_update_rate=config["tau"], target_entropy=0.0, backup_entropy=False,
        critic_ensemble_size=num_critics, critic_subsample_size=subset)
    assert agent.config["target_entropy"] == -action_dim

    state = agent.state
    params = {**state.params, **jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype),
                                                       to_reference(inputs.tree("init"), action_dim))}
    params["modules_temperature"] = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype),
                                                           state.params["modules_temperature"])
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(state.params)
    txs = {**state.txs, "critic": optax.chain(optax.scale(num_critics), state.txs["critic"])}  # o2o's summed loss
    state = state.replace(params=params, target_params=params, txs=txs,
                          opt_states={name: tx.init(params) for name, tx in txs.items()})
    agent = agent.replace(state=state)
    initial_temperature = np.asarray(params["modules_temperature"]["lagrange"])

    raw = inputs.tree("batch")
    batch = {"observations": raw["observations"], "actions": raw["actions"], "rewards": raw["rewards"],
             "masks": 1.0 - raw["dones"], "next_observations": raw["next_observations"]}
    batch = {k: jnp.asarray(v, dtype) for k, v in batch.items()}
    check_jit(jax, lambda p, o, a: agent.state.apply_fn({"params": p}, o, a, name="critic", train=False),
              agent.state.params, batch["observations"], batch["actions"])

    random = types.SimpleNamespace(normal=jax.random.normal)  # distrax's Normal draws through `jax.random.normal`
    distrax_jax = types.SimpleNamespace(random=random, lax=jax.lax, scipy=jax.scipy)
    original_loss_fns = SACAgent.loss_fns

    def loss_fns_reading(critic_params):
        """The reference's loss_fns, its actor loss bound to an agent holding `critic_params`."""
        def loss_fns(self, batch):
            fns = original_loss_fns(self, batch)
            params = {**self.state.params, "modules_critic": critic_params}
            reader = self.replace(state=self.state.replace(params=params))
            return {**fns, "actor": functools.partial(reader.policy_loss_fn, batch)}
        return loss_fns

    update = SACAgent.update.__wrapped__  # the update its training loop jits; traced once more here

    @jax.jit
    def step(agent, next_action_noise, actor_action_noise, critic_subset):
        with contextlib.ExitStack() as stack:
            stack.enter_context(mock.patch.object(distrax_normal, "jax", distrax_jax))
            stack.enter_context(draws_in_call_order(random, "normal", [next_action_noise[None]]))
            stack.enter_context(draws_in_call_order(jax.random, "randint", [critic_subset]))
            stepped, _ = update(agent, batch, networks_to_update=frozenset({"critic"}))
        with contextlib.ExitStack() as stack:
            stack.enter_context(mock.patch.object(distrax_normal, "jax", distrax_jax))
            # jax.tree_map visits the losses by name: actor (a ~ pi(s)), critic (a' ~ pi(s')), temperature (a' again)
            stack.enter_context(draws_in_call_order(
                random, "normal", [actor_action_noise[None], next_action_noise[None], next_action_noise[None]]))
            stack.enter_context(draws_in_call_order(jax.random, "randint", [critic_subset]))
            stack.enter_context(mock.patch.object(SACAgent, "loss_fns",
                                                  loss_fns_reading(stepped.state.params["modules_critic"])))
            return update(agent, batch)

    def parameters() -> dict:
        policy = numpy_tree(agent.state.params["modules_actor"])
        assert np.array_equal(np.asarray(agent.state.params["modules_temperature"]["lagrange"]), initial_temperature)
        return {"actor": {"MLP_0": join_policy(policy["network"], policy["Dense_0"], policy["Dense_1"])},
                "critic": critic_from_reference(agent.state.params),
                "target_critic_params": critic_from_reference(agent.state.target_params),
                "log_temperature": inputs.tree("init")["log_temperature"]}  # frozen: o2o's own, unchanged

    losses, after_1, extremes = {"critic_loss": [], "q": [], "actor_loss": [], "entropy": []}, None, (np.inf, -np.inf)
    next_noise = jnp.asarray(inputs.draws("next_action_noise"), dtype)
    noise = jnp.asarray(inputs.draws("actor_action_noise"), dtype)
    subsets = jnp.asarray(inputs.arrays["draws/critic_subset"])
    for i in range(inputs.steps):
        agent, info = step(agent, next_noise[i], noise[i], subsets[i])
        values = {"critic_loss": num_critics * info["critic"]["critic_loss"], "q": info["critic"]["predicted_qs"],
                  "actor_loss": info["actor"]["actor_loss"], "entropy": info["actor"]["entropy"]}
        for name, value in values.items():
            losses[name].append(float(value))
        policy = numpy_tree(agent.state.params["modules_actor"])
        for key in ("observations", "next_observations"):
            low, high = log_stds_range(policy["network"], policy["Dense_1"], raw[key])
            extremes = (min(extremes[0], low), max(extremes[1], high))
        if i == 0:
            after_1 = copy.deepcopy(parameters())

    deviations = [
        {"name": "LayerNorm variance",
         "reference": "flax's LayerNorm default: var = E[x^2] - E[x]^2 (use_fast_variance=True)",
         "o2o": "var = E[(x - E[x])^2] (o2o.nets.LayerNorm)",
         "effect": "the same flax default that slows RLPD's critics in float32 (rlpd.json); on WSRL's curve not "
                   "measured",
         "in_this_fixture": "aligned: its LayerNorm built with use_fast_variance=False (the numerical shim above)"},
        {"name": "critic ensemble output layer",
         "reference": "Critic(network=ensemblize(MLP)): the critics' hidden layers are an ensemble, their output "
                      "layer one Dense shared by all of them (SACAgent.create)",
         "o2o": "every critic its own output layer (a vmapped Critic, as rlpd's and jaxrl's ensembles)",
         "effect": "the reference's critics differ in their hidden layers only; its output layer gets the sum of "
                   "their gradients",
         "in_this_fixture": "aligned to o2o's: the adapter builds ensemblize(Critic) from the reference's own modules"},
        {"name": "policy LayerNorm",
         "reference": "LayerNorm after every hidden policy layer (locomotion_wsrl: "
                      "policy_network_kwargs.use_layer_norm)",
         "o2o": "no LayerNorm in the policy (o2o.nets.GaussianPolicy)",
         "in_this_fixture": "aligned to o2o's: the reference's policy MLP is built with use_layer_norm=False"},
        {"name": "update order",
         "reference": "SACAgent.update computes the critic, actor and temperature losses on the networks before the "
                      "update and steps all three (JaxRLTrainState.apply_loss_fns): the actor loss reads the critics "
                      "before their step. (At --utd > 1 its update_high_utd steps the critics first, then actor and "
                      "temperature, with Adam steps of zero gradient for the networks a call leaves out.)",
         "o2o": "critic step, then the actor loss on the stepped critics, then the temperature (sac.critic_then_actor, "
                "as jaxrl's and rlpd's SAC)",
         "in_this_fixture": "aligned to o2o's: the actor loss of the real update reads the critics of a critic-only "
                            "update run first on the same batch and draws"},
        {"name": "critic loss scale", "reference": "mean over the ensemble of the critics' squared errors",
         "o2o": "their sum over the ensemble",
         "effect": "gradients num_critics times larger, which Adam cancels but for its epsilon (1e-8)",
         "in_this_fixture": "aligned to o2o's: the adapter's critic optimiser is optax.chain(optax.scale(num_critics), "
                            "its optimiser); its recorded critic_loss is multiplied by num_critics"},
        {"name": "temperature",
         "reference": "alpha = softplus(lambda) (GeqLagrangeMultiplier), loss alpha (H - target) with H the entropy "
                      "of a fresh a' ~ pi(s') (temperature_loss_fn), learning rate 1e-4",
         "o2o": "alpha = exp(log_alpha), loss log(alpha) (H - target) with H the actor loss's entropy at s, learning "
                "rate temperature_lr (3e-4 in o2o's wsrl)",
         "in_this_fixture": "not compared: frozen at 1 on both sides (learning rate 0)"},
        {"name": "target critic subset",
         "reference": "jax.random.randint: 2 critics drawn with replacement (the same one twice in 1 of "
                      "num_critics draws: a minimum over one critic)",
         "o2o": "jax.random.choice without replacement (RLPD's subsample_ensemble)",
         "in_this_fixture": "both given the same distinct pairs (o2o's kind of draw, which the reference can draw "
                            "too)"},
        {"name": "policy standard deviation bounds", "reference": "std = clip(exp(log_std), 1e-5, 10) (Policy's "
                                                                  "std_min and std_max)",
         "o2o": "std = exp(clip(log_std, -5, 2))",
         "effect": "standard deviations between exp(2) = 7.4 and 10, or below exp(-5) = 0.0067",
         "in_this_fixture": f"aligned to o2o's: Policy(std_min=exp(-5), std_max=exp(2)); its log-stds reach "
                            f"[{extremes[0]:.2f}, {extremes[1]:.2f}], the upper bound acts"},
        {"name": "actor batch",
         "reference": "at its locomotion --utd 4 --batch_size 1024, update_high_utd: 4 critic steps on the batch's 4 "
                      "minibatches of 256, then one actor and temperature step on the whole batch of 1024",
         "o2o": "4 critic steps on 4 batches of 256 per environment step, then one actor and temperature step on the "
                "last of them (actor_every = utd: RLPD's update, rlpd.json)",
         "effect": "the actor's and temperature's gradients from 256 states, not 1024: the same expectation, more "
                   "variance; not measured",
         "in_this_fixture": "per update: the reference's update (its --utd 1 path), o2o with actor_every 1"},
    ]
    fixture.write(
        args, inputs, repository="zhouzypaul/wsrl",
        versions={"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
                  "distrax": distrax.__version__, "numpy": np.__version__},
        why="the authors' code (Zhou, Peng, Li, Levine & Kumar, 2025)",
        losses=losses, after_1=after_1, after_all=parameters(),
        tolerance={"losses": 1e-5, "after_1": 1e-5, "after_all": 1e-5, **fixture.TOLERANCE_NOTE},
        injected=["a ~ pi(s) in the actor loss: jax.random.normal in distrax's Normal, one (batch, action_dim) draw "
                  "per update",
                  "a' ~ pi(s') in the critic target: the same, one draw per update (given to its temperature loss "
                  "too)",
                  f"the target's {subset} of the {num_critics} critics: jax.random.randint, one pair per update "
                  "(o2o: sac.critic_subset_draw)"],
        not_injected=["dropout keys: no dropout (dropout_rate None)"],
        deviations=deviations,
        notes=[(f"{num_critics} critics (WSRL's locomotion 10), hidden layers {config['hidden_dims']} (its (256, "
                f"256)), batch {meta['batch_size']} (its 1024, 256 per critic step at UTD 4): the fixture stays "
                "under 1 MB"),
               ("o2o's registry wsrl keeps o2o's SAC settings where WSRL's differ: an entropy term in the target "
                "(backup_entropy True; WSRL False), actor and temperature learning rates 3e-4 (WSRL 1e-4), and the "
                "critics of the CQL run it starts from (WSRL: 10 LayerNorm critics); this fixture sets WSRL's"),
               "one batch for every update; states as given (neither side standardizes them)"],
    )


if __name__ == "__main__":
    main()
