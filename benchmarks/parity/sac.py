"""SAC parity: jaxrl's SAC update, `_update_jit` (ikostrikov/jaxrl, jaxrl/agents/sac, JAX), on o2o's initial
parameters, batch and draws.

    python benchmarks/parity/sac.py --reference /work/refs/jaxrl --inputs INPUTS            # tests/.../sac.npz
    python benchmarks/parity/sac.py --reference /work/refs/jaxrl --inputs INPUTS --as-is    # sac-as-is.npz

Why jaxrl: o2o's registry cites it for SAC (o2o takes its initial temperature from it), it is the code rlpd's SAC grew
from (same author, same modules), and its SAC is the 2-critic one o2o's is: critic loss the sum of the two critics'
errors, actor on their minimum (rlpd's actor reads the ensemble's mean, whatever its size). The authors' SAC code
(softlearning) is TensorFlow 1.

It runs in refs/.venv-iql (jax 0.4.30, flax 0.8.5, optax 0.2.3, tensorflow-probability 0.24.0): TensorFlow
Probability's JAX substrate (its policy distribution) does not import with jax 0.10. What the adapter does to the
reference, and nothing else:
- one compatibility shim: `jax.tree_multimap` (removed in jax 0.3.16; its target update calls it) is
  `jax.tree_util.tree_map`, the function it was renamed to;
- the imports its package makes for training scripts only are stubbed (tqdm, its dataset and replay-buffer helpers, the
  other agents' learners, which need jax 0.3's `jnp.DeviceArray`);
- its modules are built as `SACLearner.__init__` builds them (NormalTanhPolicy, DoubleCritic, Temperature), with o2o's
  initial parameters (o2o's policy output layer: the first action_dim columns are its mean layer Dense_0, the others
  its log-std layer Dense_1; its DoubleCritic has o2o's critic structure) and Adam as it builds it; the target critic
  a copy;
- TensorFlow Probability's `samplers.normal`, called twice per update by its tanh-Gaussian's `sample` (a' ~ pi(s') for
  the target, then a ~ pi(s) for the actor loss), returns the injected draws (it draws them as (action_dim, batch) and
  transposes them);
- without --as-is, `temperature.update` takes o2o's temperature loss (see the fixture's deviations).
"""

from __future__ import annotations

import contextlib
import copy
import sys
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

STUBBED = ("tqdm", "jaxrl.datasets.dataset_utils", "jaxrl.datasets.replay_buffer",
           *(f"jaxrl.agents.{name}.{name}_learner" for name in ("awac", "bc", "ddpg", "drq", "redq", "sac_v1")))

def main() -> None:
    args = fixture.arguments(__doc__.splitlines()[0],
                             ("--as-is", "jaxrl's own temperature loss (a deviation fixture)"))
    inputs = fixture.Inputs(args.inputs)
    config, meta = inputs.config, inputs.meta
    import jax
    if args.float64:
        jax.config.update("jax_enable_x64", True)
    import flax
    import jax.numpy as jnp
    import optax

    jax.tree_multimap = jax.tree_util.tree_map
    fixture.stub_training_imports(*STUBBED)
    sys.path.insert(0, str(args.reference))
    from jaxrl.agents.sac import sac_learner, temperature
    from jaxrl.datasets.dataset import Batch
    from jaxrl.networks import critic_net, policies
    from jaxrl.networks.common import Model
    from tensorflow_probability.substrates.jax.internal import (
        samplers,  # where its distributions draw
    )

    assert config["num_critics"] == 2 and config["critic_subset"] in (2, None), "jaxrl's SAC has two critics"
    assert not (config["critic_layer_norm"] or config["actor_uses_mean_q"] or config["normalize_observations"])
    assert config["backup_entropy"], "the reference's default"
    dtype = jnp.float64 if args.float64 else jnp.float32
    hidden, action_dim = tuple(config["hidden_dims"]), meta["action_dim"]
    actor_def = policies.NormalTanhPolicy(hidden, action_dim)
    critic_def = critic_net.DoubleCritic(hidden)
    temp_def = temperature.Temperature(config["initial_temperature"])

    init = inputs.tree("init")
    layers, mean, log_std = split_policy(init["actor"]["MLP_0"], action_dim)
    params = {"actor": {"MLP_0": layers, "Dense_0": mean, "Dense_1": log_std}, "critic": init["critic"],
              "temp": {"log_temp": init["log_temperature"]["log_temperature"]}}
    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), params)
    observation, action = jnp.zeros((1, meta["observation_dim"]), dtype), jnp.zeros((1, action_dim), dtype)
    for name, module, shapes in (("actor", actor_def, (observation,)), ("critic", critic_def, (observation, action)),
                                 ("temp", temp_def, ())):
        expected = jax.eval_shape(module.init, jax.random.PRNGKey(0), *shapes)["params"]
        assert jax.tree_util.tree_structure(expected) == jax.tree_util.tree_structure(params[name]), name

    def model(module, variables, learning_rate):
        tx = optax.adam(learning_rate=learning_rate)  # as SACLearner.__init__ builds them
        return Model(step=1, apply_fn=module.apply, params=variables, tx=tx, opt_state=tx.init(variables))

    actor = model(actor_def, params["actor"], config["actor_lr"])
    critic = model(critic_def, params["critic"], config["critic_lr"])
    target_critic = Model(step=1, apply_fn=critic_def.apply, params=params["critic"], tx=None, opt_state=None)
    temp = model(temp_def, params["temp"], config["temperature_lr"])

    raw = inputs.tree("batch")
    batch = Batch(observations=jnp.asarray(raw["observations"], dtype), actions=jnp.asarray(raw["actions"], dtype),
                  rewards=jnp.asarray(raw["rewards"], dtype), masks=jnp.asarray(1.0 - raw["dones"], dtype),
                  next_observations=jnp.asarray(raw["next_observations"], dtype))
    check_jit(jax, critic_def.apply, {"params": critic.params}, batch.observations, batch.actions)

    def o2o_temperature_update(temp, entropy, target_entropy):
        """jaxrl's temperature.update with o2o's loss, log(alpha) (H - target) (the deviation)."""
        def temperature_loss_fn(temp_params):
            temp_loss = temp_params["log_temp"] * (entropy - target_entropy).mean()
            return temp_loss, {"temperature": temp.apply_fn({"params": temp_params}), "temp_loss": temp_loss}
        return temp.apply_gradient(temperature_loss_fn)

    update = sac_learner._update_jit.__wrapped__  # the update SACLearner.update jits; traced once more here
    target_entropy = config["target_entropy_per_action_dim"] * action_dim

    @jax.jit
    def step(rng, actor, critic, target_critic, temp, next_action_noise, actor_action_noise):
        with contextlib.ExitStack() as stack:
            stack.enter_context(draws_in_call_order(samplers, "normal", [next_action_noise, actor_action_noise],
                                                      transposed=True))
            if not args.as_is:
                stack.enter_context(mock.patch.object(temperature, "update", o2o_temperature_update))
            return update(rng, actor, critic, target_critic, temp, batch, config["discount"], config["tau"],
                          target_entropy, backup_entropy=True, update_target=True)

    def parameters() -> dict:
        policy = numpy_tree(actor.params)
        return {"actor": {"MLP_0": join_policy(policy["MLP_0"], policy["Dense_0"], policy["Dense_1"])},
                "critic": numpy_tree(critic.params), "target_critic_params": numpy_tree(target_critic.params),
                "log_temperature": {"log_temperature": np.asarray(temp.params["log_temp"])}}

    recorded = ["critic_loss", "actor_loss", "temperature", "entropy"] + ([] if args.as_is else ["temperature_loss"])
    losses, after_1, floor = {name: [] for name in recorded}, None, np.inf
    next_noise = jnp.asarray(inputs.draws("next_action_noise"), dtype)
    noise = jnp.asarray(inputs.draws("actor_action_noise"), dtype)
    rng = jax.random.PRNGKey(0)
    for i in range(inputs.steps):
        rng, actor, critic, target_critic, temp, info = step(rng, actor, critic, target_critic, temp, next_noise[i],
                                                             noise[i])
        info = {**info, "temperature_loss": info["temp_loss"]}
        for name in recorded:
            losses[name].append(float(info[name]))
        policy = numpy_tree(actor.params)
        floor = min(floor, *(log_stds_range(policy["MLP_0"], policy["Dense_1"], raw[k])[0]
                             for k in ("observations", "next_observations")))
        if i == 0:
            after_1 = copy.deepcopy(parameters())
    assert floor > -5.0, f"a log-std reached {floor}: the two log-std clips (see deviations) would differ"

    deviations = [
        {**TEMPERATURE_DEVIATION,
         "in_this_fixture": "as the reference" if args.as_is else "aligned to o2o's: the adapter's temperature.update "
                            "differentiates log(alpha) (H - target), the rest of jaxrl's function unchanged"},
        {"name": "log-std clip", "reference": "clip(log_std, -10, 2) (NormalTanhPolicy)", "o2o": "clip(log_std, -5, 2)",
         "effect": "policies with a standard deviation below exp(-5) = 0.0067 in some state",
         "in_this_fixture": f"not reached: the smallest log-std over the 100 updates is {floor:.2f}"},
    ]
    fixture.write(
        args, inputs, repository="ikostrikov/jaxrl", name="sac-as-is" if args.as_is else None,
        kind="deviation" if args.as_is else "parity",
        versions={"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
                  "numpy": np.__version__},
        why=("the implementation o2o's registry cites for SAC (its initial temperature); rlpd's SAC is its successor "
             "(same author and modules) but its actor reads the critics' mean; the SAC authors' softlearning is "
             "TensorFlow 1"),
        losses=losses, after_1=after_1, after_all=parameters(),
        tolerance={"losses": 1e-5, "after_1": 1e-5, "after_all": 1e-5, **fixture.TOLERANCE_NOTE},
        injected=["a' ~ pi(s') in the critic target: TensorFlow Probability's samplers.normal in its tanh-Gaussian's "
                  "sample, one (batch, action_dim) draw per update (drawn transposed)",
                  "a ~ pi(s) in the actor loss: the same, one draw per update"],
        not_injected=["o2o's random choice of 2 of the 2 critics for the target's minimum: any choice is both"],
        deviations=deviations,
        notes=[f"hidden layers {config['hidden_dims']} (the paper's are (256, 256)), batch {meta['batch_size']}, to "
               "keep the fixture small",
               f"target entropy {target_entropy} (o2o's SAC: -action_dim, the SAC paper's; jaxrl's default is "
               "-action_dim / 2), given to the reference's update",
               "one batch for every update; states as given (neither side standardizes them)"],
    )


if __name__ == "__main__":
    main()
