"""ReBRAC parity: the authors' `update_td3` / `update_td3_no_targets` (tinkoff-ai/ReBRAC, src/algorithms/rebrac.py, JAX)
on o2o's initial parameters, batch and draws.

    python benchmarks/parity/rebrac.py --reference /work/refs/ReBRAC --inputs INPUTS            # tests/.../rebrac.npz
    python benchmarks/parity/rebrac.py --reference /work/refs/ReBRAC --inputs INPUTS --as-is    # rebrac-as-is.npz

Its training loop lives in `main()` (d4rl, wandb, a fori_loop over a sampled buffer), so the adapter drives its update
functions itself, as that loop does: `update_td3` on the delayed updates, `update_td3_no_targets` on the others, one
fresh `Metrics` per update to read that update's losses. What the adapter does to the reference, and nothing else:
- its training-script imports stubbed (wandb, pyrallis, tqdm, gym, d4rl, its buffer module; distrax, whose TanhNormal
  no update uses and whose TensorFlow Probability backend does not import with jax 0.10);
- o2o's initial parameters copied into its DetActor (no LayerNorm, its default) and its EnsembleCritic (Dense -> ReLU ->
  LayerNorm), targets as copies, Adam built as its main() builds it;
- `jax.random.normal`, its one draw per critic update (target policy smoothing), returns the injected draw; its actor
  update's `jax.random.uniform` feeds a logged metric only and is left alone.
Two places where o2o departs from it (see the fixture's JSON): its loop steps the actor on updates 1, 3, 5, ...
(`arange(n) % policy_freq == 0`), o2o on 2, 4, 6, ... as TD3 and TD3+BC do; and its actor target's Polyak step moves
towards the actor's parameters from BEFORE that update's actor step (`incremental_update(actor.params, ...)` with the
old `actor`), o2o's towards those after it, as TD3 and TD3+BC do. Without --as-is the adapter aligns both (its loop runs
`update_td3` on o2o's updates, and the actor target is recomputed from the stepped actor with the reference's own
`optax.incremental_update`), so that the rest of the update can be compared exactly; with --as-is it runs the reference
as its main() would, and tests/test_parity.py checks that o2o departs from it in exactly these two ways.
"""

from __future__ import annotations

import copy
import sys
from unittest import mock

import fixture
import numpy as np

STUBBED = ("wandb", "pyrallis", "tqdm", "tqdm.auto", "gym", "d4rl", "distrax", "src.utils.buffer")
METRICS = ["critic_loss", "q_min", "actor_loss", "batch_entropy", "bc_mse_policy", "bc_mse_random", "action_mse"]


def to_reference(init: dict) -> dict:
    """o2o's parameters (actor MLP_0/..., critic VmapCritic_0/MLP_0/...) as the reference's variables."""
    return {"actor": {"params": init["actor"]["MLP_0"]},
            "critic": {"params": {"VmapCritic_0": init["critic"]["VmapCritic_0"]["MLP_0"]}}}


def from_reference(actor, critic) -> dict:
    numpy = lambda tree: {k: numpy(v) if hasattr(v, "items") else np.asarray(v) for k, v in tree.items()}
    o2o_critic = lambda variables: {"VmapCritic_0": {"MLP_0": numpy(variables["params"]["VmapCritic_0"])}}
    return {"actor": {"MLP_0": numpy(actor.params["params"])}, "critic": o2o_critic(critic.params),
            "target_actor_params": {"MLP_0": numpy(actor.target_params["params"])},
            "target_critic_params": o2o_critic(critic.target_params)}


def main() -> None:
    args = fixture.arguments(__doc__.splitlines()[0],
                             ("--as-is", "the reference's own actor schedule and actor target (a deviation fixture)"))
    inputs = fixture.Inputs(args.inputs)
    config, meta = inputs.config, inputs.meta
    import jax
    if args.float64:
        jax.config.update("jax_enable_x64", True)
    import flax
    import jax.numpy as jnp
    import optax

    fixture.stub_training_imports(*STUBBED)
    sys.path.insert(0, str(args.reference))
    from src.algorithms import rebrac as reference
    from src.networks import DetActor, EnsembleCritic
    from src.utils.common import Metrics

    hidden = set(config["hidden_dims"])
    assert len(hidden) == 1 and config["critic_layer_norm"] and config["critic_norm_after_activation"]
    assert not config["normalize_observations"] and not config["actor_bc_decay_steps"], "the reference's settings"
    dtype = jnp.float64 if args.float64 else jnp.float32
    width, depth = hidden.pop(), len(config["hidden_dims"])
    actor_module = DetActor(action_dim=meta["action_dim"], hidden_dim=width, layernorm=False, n_hiddens=depth)
    critic_module = EnsembleCritic(hidden_dim=width, num_critics=2, layernorm=True, n_hiddens=depth)
    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), to_reference(inputs.tree("init")))
    observation, action = jnp.zeros((1, meta["observation_dim"]), dtype), jnp.zeros((1, meta["action_dim"]), dtype)
    for name, module, shapes in (("actor", actor_module, (observation,)), ("critic", critic_module, (observation, action))):
        expected = jax.eval_shape(module.init, jax.random.PRNGKey(0), *shapes)
        assert jax.tree_util.tree_structure(expected) == jax.tree_util.tree_structure(params[name]), name
    actor = reference.ActorTrainState.create(apply_fn=actor_module.apply, params=params["actor"],
                                             target_params=params["actor"], tx=optax.adam(config["actor_lr"]))
    critic = reference.CriticTrainState.create(apply_fn=critic_module.apply, params=params["critic"],
                                               target_params=params["critic"], tx=optax.adam(config["critic_lr"]))

    raw = inputs.tree("batch")
    batch = {"states": raw["observations"], "actions": raw["actions"], "rewards": raw["rewards"],
             "next_states": raw["next_observations"], "next_actions": raw["next_actions"], "dones": raw["dones"]}
    batch = {k: jnp.asarray(v, dtype) for k, v in batch.items()}
    # The architecture notes' check: the critic ensemble's jitted forward pass equals its eager one.
    jitted = jax.jit(critic_module.apply)(critic.params, batch["states"], batch["actions"])
    with jax.disable_jit():
        eager = critic_module.apply(critic.params, batch["states"], batch["actions"])
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-5, atol=1e-6)

    hyper = {"gamma": config["discount"], "actor_bc_coef": config["actor_bc_coef"],
                 "critic_bc_coef": config["critic_bc_coef"], "tau": config["tau"], "policy_noise": config["policy_noise"],
                 "noise_clip": config["noise_clip"]}

    def injected(draw):
        def normal(key, shape, *rest, **kwargs):
            assert tuple(shape) == draw.shape, f"the reference draws {tuple(shape)}, the input is {draw.shape}"
            return draw
        return mock.patch.object(jax.random, "normal", normal)

    @jax.jit
    def full(key, actor, critic, metrics, draw):
        with injected(draw):
            key, new_actor, new_critic, metrics = reference.update_td3(
                key, actor, critic, batch, metrics, normalize_q=config["normalize_q"], **hyper)
        if not args.as_is:  # o2o's (and TD3's) actor target: a Polyak step towards the actor after its step
            new_actor = new_actor.replace(
                target_params=optax.incremental_update(new_actor.params, actor.target_params, config["tau"]))
        return key, new_actor, new_critic, metrics

    @jax.jit
    def critic_only(key, actor, critic, metrics, draw):
        with injected(draw):
            return reference.update_td3_no_targets(key, actor, critic, batch, metrics=metrics, **hyper)

    frequency = config["policy_frequency"]
    delayed = (lambda i: i % frequency == 0) if args.as_is else (lambda i: (i + 1) % frequency == 0)
    key = jax.random.PRNGKey(0)
    draws = jnp.asarray(inputs.draws("target_noise"), dtype)
    losses, after_1 = {"critic_loss": [], "actor_loss": []}, None
    for i in range(inputs.steps):
        update = full if delayed(i) else critic_only
        key, actor, critic, metrics = update(key, actor, critic, Metrics.create(METRICS), draws[i])
        for name, values in losses.items():
            total, count = (float(np.asarray(x)[0]) for x in metrics.accumulators[name])
            values.append(total / count if count else np.nan)
        if i == 0:
            after_1 = copy.deepcopy(from_reference(actor, critic))

    deviations = [
        {"name": "actor schedule",
         "reference": "actor and targets step on updates 1, 3, 5, ... (main(): arange(n) % policy_freq == 0)",
         "o2o": "on updates 2, 4, 6, ... (state.step after increment % policy_frequency == 0), as TD3 and TD3+BC",
         "in_this_fixture": "as the reference" if args.as_is else "aligned to o2o's by the adapter's loop"},
        {"name": "actor target",
         "reference": "target_actor <- (1 - tau) target_actor + tau actor_before_its_step (update_actor: "
                      "incremental_update(actor.params, actor.target_params, tau) with the pre-step actor)",
         "o2o": "target_actor <- (1 - tau) target_actor + tau actor_after_its_step, as TD3 and TD3+BC",
         "in_this_fixture": "as the reference" if args.as_is else "aligned to o2o's: the adapter recomputes it from "
                            "the stepped actor with the reference's optax.incremental_update"},
    ]
    fixture.write(
        args, inputs, repository="tinkoff-ai/ReBRAC", name="rebrac-as-is" if args.as_is else None,
        kind="deviation" if args.as_is else "parity",
        versions={"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
                  "numpy": np.__version__},
        why="the authors' code (Tarasov et al., 2023)",
        losses=losses, after_1=after_1, after_all=from_reference(actor, critic),
        # the as-is fixture's test reads its tolerances as the scale the documented lag must exceed
        tolerance={**({"losses": 1e-5, "after_1": 1e-5, "after_all": 1e-5} if args.as_is else
                      {"losses": 3e-4, "after_1": 1e-5, "after_all": 1e-2}), **fixture.TOLERANCE_NOTE},
        injected=[("target policy smoothing noise: jax.random.normal in update_critic, one (batch, action_dim) draw "
                  "per update")],
        not_injected=["update_actor's jax.random.uniform: a logged metric (bc_mse_random) only"],
        deviations=deviations,
        notes=[(f"hidden layers {config['hidden_dims']} (the paper's are (256, 256, 256)), batch {meta['batch_size']} "
               "(the paper's is 1024), to keep the fixture small"),
               (f"actor_bc_coef {config['actor_bc_coef']}, critic_bc_coef {config['critic_bc_coef']}: the paper's "
               "hopper-medium-replay values (Table 8)"),
               ("one batch for every update; states as given (neither side standardizes them: the reference's gym "
               "setting)"), *([] if args.as_is else [FLOAT32_NOTE])],
    )


# Why the float32 tolerances after many updates are loose: this update carries float32 rounding far (LayerNorm critics,
# ReLU kinks, Adam): one ulp on the batch's states moves o2o's own actor by 4.6e-4 and its critic by 2.2e-4 after the
# 100 updates. Run on the CPU the fixture was made on, o2o matched the reference to 2.5e-7 (the same XLA kernels round
# alike); on another CPU of this project's (roofline 422 against 140 GFLOP/s) the same code is 2.4e-3 (actor) and
# 1.1e-3 (critic) off after 100 updates and 7.1e-5 on the losses, 4.2e-7 after one update; float64 agrees to 5e-16.
FLOAT32_NOTE = ("float32 tolerances losses 3e-4, after 100 updates 1e-2 (one update 1e-5): one ulp on the batch's states "
                "moves o2o's own actor by 4.6e-4 after 100 updates; on the CPU that made the fixture o2o matched to "
                "2.5e-7, on a CPU with other XLA kernels 2.4e-3 (float64: 5e-16)")


if __name__ == "__main__":
    main()
