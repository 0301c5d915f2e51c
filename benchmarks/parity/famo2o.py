"""FamO2O parity: the authors' `FamilyLearner.update` (LeapLabTHU/FamO2O, jax_iql/family_learner.py, JAX, on the IQL
authors' code) on o2o's initial parameters, batch and draws.

    python benchmarks/parity/famo2o.py --reference /work/refs/FamO2O --inputs INPUTS

It runs in refs/.venv-iql (the IQL authors' environment: jax 0.4.30, flax 0.8.5, optax 0.2.3, tensorflow-probability
0.24.0) with iql.py's compatibility shims (FrozenDicts from flax's `init`, which its `Model.create` unpacks; a lenient
`jax.jit` for its acting helper), none of which touches the update. What the adapter does to the reference:
- its learner is built by its own `FamilyLearner` with o2o's settings (sizes, coefficient range, embedding, learning
  rates; a constant actor learning rate, `opt_decay_schedule=None`, as its config), then o2o's initial parameters
  replace its own (universal actor, balance model, temperature, double critic as IQL's adapter maps them, value), with
  fresh optimiser states from its own optimisers;
- its draws are the injected ones: TensorFlow Probability's `samplers.normal`, called by the balance model's sample
  (u's normals, drawn (1, batch) and transposed), then the universal actor's (the action's, (action_dim, batch)), and
  in the fine-tuning mode the balance model's again (the actor's coefficients); `jax.random.uniform`, the offline
  coefficients (min + (max - min) U, as jax computes it);
- its learner's update is called as its jitted `_family_update_jit` (unwrapped, jitted again here with the draws as
  inputs, as rlpd.py does), so that each update reads its own draws.
Its update draws dropout keys but has no dropout (dropout_rate None, its config): nothing to inject there.
"""

from __future__ import annotations

import contextlib
import copy
import sys
from unittest import mock

import fixture
import numpy as np
from iql import compatibility, start_from
from iql import from_reference as iql_from_reference
from iql import to_reference as iql_to_reference
from sac_helpers import draws_in_call_order


def policy_to_reference(params: dict) -> dict:
    """An o2o Gaussian policy or balance model (MLP_0 with its output layer, log_std) as IQL's NormalTanhPolicy."""
    mlp = params["MLP_0"]
    output = f"Dense_{len(mlp) - 1}"
    return {"MLP_0": {k: v for k, v in mlp.items() if k != output}, "Dense_0": mlp[output],
            "log_stds": params["log_std"]}


def policy_from_reference(params: dict) -> dict:
    mlp = {k: {p: np.asarray(v) for p, v in layer.items()} for k, layer in params["MLP_0"].items()}
    return {"MLP_0": {**mlp, f"Dense_{len(mlp)}": {p: np.asarray(v) for p, v in params["Dense_0"].items()}},
            "log_std": np.asarray(params["log_stds"])}


def to_reference(init: dict) -> dict:
    return {**iql_to_reference(init), "balance": policy_to_reference(init["balance"]),
            "temperature": {"log_temp": init["log_temperature"]["log_temperature"]}}


def from_reference(learner) -> dict:
    return {**iql_from_reference(learner), "balance": policy_from_reference(learner.hierarchical_actor.params),
            "log_temperature": {"log_temperature": np.asarray(learner.hierarchical_temp.params["log_temp"])}}


def main() -> None:
    args = fixture.arguments(__doc__.splitlines()[0])
    inputs = fixture.Inputs(args.inputs)
    config, meta = inputs.config, inputs.meta
    import jax
    if args.float64:
        jax.config.update("jax_enable_x64", True)
    import flax
    import jax.numpy as jnp
    import optax
    import tensorflow_probability
    import tensorflow_probability.substrates.jax
    from tensorflow_probability.substrates.jax.internal import (
        samplers,  # where its distributions draw
    )

    sys.path.insert(0, str(args.reference / "jax_iql"))
    with compatibility(jax, flax):
        import family_learner
        from common import Batch

    offline = config["coefficient_source"] == "uniform"
    assert config["actor_decay_steps"] == 0 and not config["normalize_observations"], "the reference's settings"
    assert config["batch_mean_weights"], "the reference's advantage weights"
    low, high = config["coefficient_min"], config["coefficient_max"]
    dtype = np.float64 if args.float64 else np.float32
    learner = family_learner.FamilyLearner(
        0, np.zeros((1, meta["observation_dim"]), dtype), np.zeros((1, meta["action_dim"]), dtype),
        actor_lr=config["actor_lr"], value_lr=config["value_lr"], critic_lr=config["critic_lr"],
        hidden_dims=tuple(config["hidden_dims"]), discount=config["discount"], tau=config["tau"],
        expectile=config["expectile"], dropout_rate=None, max_steps=None, opt_decay_schedule=None,
        family_sin_cos_n=config["embedding_base"], family_sin_cos_d=config["embedding_dim"],
        family_coefficient_range=(low, high), target_entropy=config["balance_target_entropy"],
        hierarchical_init_temperature=config["balance_initial_temperature"],
        hierarchical_temp_lr=config["balance_temperature_lr"])
    assert config["balance_lr"] == config["actor_lr"], "its balance model's optimiser takes the actor's learning rate"
    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), to_reference(inputs.tree("init")))
    attributes = {"actor": "actor", "critic": "critic", "value": "value", "balance": "hierarchical_actor",
                  "temperature": "hierarchical_temp"}
    batch = start_from(jax, flax, learner, params, attributes, inputs.tree("batch"), Batch, dtype)

    update = family_learner._family_update_jit.__wrapped__  # the function its learner jits; traced once more here
    statics = {"discount": learner.discount, "tau": learner.tau, "expectile": learner.expectile,
               "target_entropy": learner.target_entropy, "family_coefficient_range": learner.family_coefficient_range,
               "family_sin_cos_n": learner.family_sin_cos_n, "family_sin_cos_d": learner.family_sin_cos_d,
               "random_hierarchical_coefficients": offline}

    @jax.jit
    def call(models, rng, balance_noise, action_noise, coefficients):
        """One update of its learner, its draws the given ones (inputs of the compiled update)."""
        with contextlib.ExitStack() as stack:
            normals = [balance_noise, action_noise] + ([] if offline else [coefficients])
            stack.enter_context(draws_in_call_order(samplers, "normal", normals, transposed=True))
            if offline:  # jax.random.uniform(key, shape, dtype, minval, maxval) as jax computes it from its U(0, 1)
                def uniform(key, shape, dtype=jnp.float32, minval=0.0, maxval=1.0):
                    assert tuple(shape) == coefficients.shape, shape
                    return coefficients.astype(dtype) * (maxval - minval) + minval
                stack.enter_context(mock.patch.object(jax.random, "uniform", uniform))
            return update(rng=rng, batch=batch, **models, **statics)

    draws = [inputs.draws("balance_noise"), inputs.draws("balance_action_noise"),
             inputs.draws("coefficients" if offline else "coefficient_noise")]
    recorded = {"value_loss": "value_loss", "balance_loss": "hierarchical_loss",
                "balance_entropy": "hierarchical_entropy", "temperature": "temperature",
                "temperature_loss": "temp_loss", "actor_loss": "actor_loss", "critic_loss": "critic_loss"}
    losses = {name: [] for name in recorded}
    after_1 = None
    for step in range(inputs.steps):
        models = {"actor": learner.actor, "hierarchical_actor": learner.hierarchical_actor,
                  "temp": learner.hierarchical_temp, "critic": learner.critic, "value": learner.value,
                  "target_critic": learner.target_critic}
        rng, *new, info = call(models, learner.rng, *(jnp.asarray(d[step], dtype) for d in draws))
        new = dict(zip(("hierarchical_actor", "hierarchical_temp", "actor", "value", "critic", "target_critic"), new))
        for attribute, model in new.items():  # _family_update_jit's return order
            setattr(learner, attribute, model)
        learner.rng = rng
        for name, key in recorded.items():
            losses[name].append(float(info[key]))
        if step == 0:
            after_1 = copy.deepcopy(from_reference(learner))

    mode = "offline (coefficients U[min, max])" if offline else "fine-tuning (coefficients from the balance model)"
    fixture.write(
        args, inputs, repository="LeapLabTHU/FamO2O", name=meta.get("case"),
        versions={"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
                  "tensorflow_probability": tensorflow_probability.__version__, "numpy": np.__version__},
        why="the authors' code (Wang et al., 2023), its IQL version (jax_iql/), run with the IQL adapter's "
            "compatibility shims, which touch no update math (benchmarks/parity/famo2o.py)",
        losses=losses, after_1=after_1, after_all=from_reference(learner),
        tolerance={"losses": 1e-5, "after_1": 1e-5, "after_all": 1e-5, **fixture.TOLERANCE_NOTE},
        injected=[("u ~ pi_phi(s) in the balance model's loss: TensorFlow Probability's samplers.normal, (1, batch), "
                   "transposed"),
                  ("the universal actor's action noise in the balance model's loss: samplers.normal, (action_dim, "
                   "batch), transposed"),
                  ("the universal actor's coefficients: jax.random.uniform((batch, 1), min, max)" if offline else
                   "the universal actor's coefficients u ~ pi_phi(s): samplers.normal, (1, batch), transposed")],
        not_injected=["the dropout keys of its actor and balance updates: no dropout in this setting, so unused"],
        deviations=[{
            "name": "one key for two draws",
            "reference": "the balance model's u and the universal actor's action noise in the balance loss are drawn "
                         "from the same key (family_actor.py: sample(seed=key) twice)",
            "o2o": "two keys (balance_noise_draw, balance_action_noise_draw)",
            "effect": "none on any expectation: each draw is N(0, 1) either way; the reference's two draws share "
                      "their random bits (normal(key, (1, batch)) and normal(key, (action_dim, batch)))",
            "in_this_fixture": "both given the injected draws"}],
        notes=[f"mode: {mode}",
               f"hidden layers {config['hidden_dims']} (the paper's (256, 256)), to keep the fixture small",
               (f"coefficients in [{low}, {high}] (the authors' learner default), embedding "
                f"{config['embedding_dim']} features, base {config['embedding_base']:g}"),
               ("advantage weights as its code computes them: exp((q - v) * beta) of shapes (batch,) and (batch, 1) "
                "broadcast to (batch, batch), each sample's weight the mean over every state's beta (o2o's "
                "batch_mean_weights true; false gives the paper's per-state weight)"),
               "one batch for every update; observations as given (neither side standardizes them here)"],
    )


if __name__ == "__main__":
    main()
