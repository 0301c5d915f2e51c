"""IQL parity: the authors' `Learner.update` (ikostrikov/implicit_q_learning, JAX) on o2o's initial parameters and
batch.

    python benchmarks/parity/iql.py --reference /work/refs/implicit_q_learning --inputs INPUTS

The reference was written for jax 0.2/0.3 with flax 0.4 and TensorFlow Probability's JAX substrate; the oldest jaxlib
that installs here is 0.4.13, and tfp's JAX substrate does not import with the jax o2o uses (0.10). So it runs in its
own environment (README: jax 0.4.30, flax 0.8.5, optax 0.2.3, tensorflow-probability 0.24.0), with three compatibility
shims that touch no update math:
- `jax.tree_multimap`, removed in jax 0.3.16, is `jax.tree_util.tree_map` (the function it was renamed to; the
  reference's target update uses it);
- flax returns FrozenDicts from `init`, as the flax of its time did (its `Model.create` unpacks `variables.pop`);
- `jax.jit` drops a static argument name that its acting helper `_sample_actions` declares but does not have (jax
  warned about that until 2022 and refuses it since; the helper is never called by an update).
Then, as for every reference: o2o's initial parameters copied into its actor, double critic (Critic_0 = o2o's member
0), value and target critic, optimiser states from its own optimisers; the one batch for every update. Its update
draws a dropout key but uses no dropout (dropout_rate None, the MuJoCo setting): nothing to inject.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import sys

import fixture
import numpy as np


@contextlib.contextmanager
def compatibility(jax, flax):
    """The three shims above, for the import of the reference and its updates."""
    jit = jax.jit

    def lenient_jit(fun=None, **kwargs):
        if fun is None:
            return lambda f: lenient_jit(f, **kwargs)
        names = set(inspect.signature(fun).parameters)
        kwargs["static_argnames"] = tuple(n for n in kwargs.get("static_argnames", ()) if n in names)
        return jit(fun, **kwargs)

    jax.tree_multimap = jax.tree_util.tree_map
    flax.config.update("flax_return_frozendict", True)
    jax.jit = lenient_jit
    try:
        import policy  # noqa: F401  (imported here, under the lenient jit; the reference imports it again by name)
    finally:
        jax.jit = jit
    yield


def to_reference(init: dict) -> dict:
    """o2o's parameters (state fields actor, critic, value) in the reference's modules' structure."""
    mlp = init["actor"]["MLP_0"]
    critic = init["critic"]["VmapCritic_0"]["MLP_0"]
    member = lambda m: {"MLP_0": {layer: {p: v[m] for p, v in ps.items()} for layer, ps in critic.items()}}
    return {"actor": {"MLP_0": {"Dense_0": mlp["Dense_0"], "Dense_1": mlp["Dense_1"]}, "Dense_0": mlp["Dense_2"],
                      "log_stds": init["actor"]["log_std"]},
            "critic": {"Critic_0": member(0), "Critic_1": member(1)},
            "value": init["value"]}


def from_reference(learner) -> dict:
    """The reference's parameters in o2o's structure (the inverse of `to_reference`)."""
    get = lambda tree: {k: get(v) if hasattr(v, "items") else np.asarray(v) for k, v in tree.items()}
    actor, critic, target, value = (get(m.params) for m in (learner.actor, learner.critic, learner.target_critic,
                                                           learner.value))
    stack = lambda c: {"VmapCritic_0": {"MLP_0": {layer: {p: np.stack([c[f"Critic_{m}"]["MLP_0"][layer][p] for m in (0, 1)])
                                                          for p in ("kernel", "bias")}
                                                  for layer in c["Critic_0"]["MLP_0"]}}}
    return {"actor": {"MLP_0": {**actor["MLP_0"], "Dense_2": actor["Dense_0"]}, "log_std": actor["log_stds"]},
            "critic": stack(critic), "value": value, "target_critic_params": stack(target)}


def start_from(jax, flax, learner, params: dict, attributes: dict[str, str], batch: dict, batch_type, dtype):
    """The learner's networks (`attributes`: o2o's name -> its attribute) set to `params` (in its structure) with fresh
    optimiser states from its own optimisers, its target critic to the critic's; returns the batch as its `Batch`
    (FamO2O's adapter too)."""
    import jax.numpy as jnp
    for name, attribute in attributes.items():
        model = getattr(learner, attribute)
        new = flax.core.freeze(params[name])
        assert jax.tree_util.tree_structure(model.params) == jax.tree_util.tree_structure(new), name
        setattr(learner, attribute, model.replace(params=new, opt_state=model.tx.init(new)))
    learner.target_critic = learner.target_critic.replace(params=flax.core.freeze(params["critic"]))
    return batch_type(observations=jnp.asarray(batch["observations"], dtype),
                      actions=jnp.asarray(batch["actions"], dtype), rewards=jnp.asarray(batch["rewards"], dtype),
                      masks=jnp.asarray(1.0 - batch["dones"], dtype),
                      next_observations=jnp.asarray(batch["next_observations"], dtype))


def main() -> None:
    args = fixture.arguments(__doc__.splitlines()[0])
    inputs = fixture.Inputs(args.inputs)
    config, meta = inputs.config, inputs.meta
    if args.float64:
        import jax
        jax.config.update("jax_enable_x64", True)
    import flax
    import jax
    import jax.numpy as jnp
    import optax
    import tensorflow_probability

    sys.path.insert(0, str(args.reference))
    with compatibility(jax, flax):
        import learner as reference
        from common import Batch

    assert config["actor_decay_steps"] > 0 and not config["normalize_observations"], "the reference's settings"
    dtype = np.float64 if args.float64 else np.float32
    learner = reference.Learner(
        0, np.zeros((1, meta["observation_dim"]), dtype), np.zeros((1, meta["action_dim"]), dtype),
        actor_lr=config["actor_lr"], value_lr=config["value_lr"], critic_lr=config["critic_lr"],
        hidden_dims=tuple(config["hidden_dims"]), discount=config["discount"], tau=config["tau"],
        expectile=config["expectile"], temperature=config["temperature"], dropout_rate=None,
        max_steps=config["actor_decay_steps"], opt_decay_schedule="cosine")
    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), to_reference(inputs.tree("init")))
    batch = start_from(jax, flax, learner, params, {"actor": "actor", "critic": "critic", "value": "value"},
                       inputs.tree("batch"), Batch, dtype)
    # The architecture notes' check: a jitted forward pass of each network equals its eager one.
    for name, model, inputs_ in (("critic", learner.critic, (batch.observations, batch.actions)),
                                 ("value", learner.value, (batch.observations,))):
        jitted = jax.jit(lambda p, *x, model=model: model.apply({"params": p}, *x))(model.params, *inputs_)
        with jax.disable_jit():
            eager = model(*inputs_)
        np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-5, atol=1e-6, err_msg=name)

    losses = {"value_loss": [], "critic_loss": [], "actor_loss": []}
    after_1 = None
    for step in range(inputs.steps):
        info = learner.update(batch)
        for name, values in losses.items():
            values.append(float(info[name]))
        if step == 0:
            after_1 = copy.deepcopy(from_reference(learner))

    fixture.write(
        args, inputs, repository="ikostrikov/implicit_q_learning",
        versions={"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
                  "tensorflow_probability": tensorflow_probability.__version__, "numpy": np.__version__},
        why="the authors' code (Kostrikov, Nair & Levine, 2022), run with three compatibility shims that touch no "
            "update math (see benchmarks/parity/iql.py); CORL's PyTorch IQL was not used: it departs from the "
            "authors' update (next V and advantages from the value network before its step, critic loss halved)",
        losses=losses, after_1=after_1, after_all=from_reference(learner),
        tolerance={"losses": 1e-5, "after_1": 1e-5, "after_all": 1e-5, **fixture.TOLERANCE_NOTE},
        injected=[], not_injected=["the dropout key of the actor's update: no dropout in this setting, so unused"],
        deviations=[],
        notes=[f"hidden layers {config['hidden_dims']} (the paper's are (256, 256)), to keep the fixture small",
               (f"actor cosine decay over {config['actor_decay_steps']} updates (the paper: the 1M of training), so "
               "that 100 updates exercise the schedule"),
               ("the reference's update order (value, actor, critic, target) differs from o2o's (value, critic, "
               "actor, target): both actor and critic read the updated value network and neither reads the other, "
               "so the results are the same"),
               "one batch for every update; observations as given (neither side standardizes them here)"],
    )


if __name__ == "__main__":
    main()
