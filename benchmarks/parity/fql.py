"""FQL parity: the authors' `FQLAgent.update` (seohongpark/fql, agents/fql.py, JAX) on o2o's initial parameters, batch
and draws.

    python benchmarks/parity/fql.py --reference /work/refs/fql --inputs INPUTS            # tests/.../fql.npz
    python benchmarks/parity/fql.py --reference /work/refs/fql --inputs INPUTS --as-is    # fql-as-is.npz

What the adapter does to the reference, and nothing else:
- distrax stubbed (its utils/networks.py imports it for the Gaussian actors of its other agents; FQL uses none, and
  distrax's TensorFlow Probability backend does not import with jax 0.10);
- `FQLAgent.create` builds its networks (Value ensemble and two ActorVectorFields, the widths and settings of o2o's
  config), then o2o's initial parameters replace its own, the target critic as a copy, Adam re-initialised on them;
- the jit decorators of its methods (`update`, `total_loss`, `sample_actions`, `compute_flow_actions`) are unwrapped
  and the adapter jits the whole update once, with the injected draws as its inputs (a nested jit would cache its trace
  across the updates' draws); the methods' code runs unchanged;
- its draws, made by `jax.random.normal` / `jax.random.uniform` in this order in one update, return the injected ones:
  the one-step policy's noise at s' (`critic_loss` -> `sample_actions`), x_0 and t of the flow-matching loss and the
  one-step policy's noise z (`actor_loss`). The fifth draw, `sample_actions` for the logged `mse`, is its own.
One place where o2o departs from it (see the fixture's JSON): its target critic's Polyak step moves towards the critic
BEFORE this update's step (`target_update` reads `self.network`, the pre-update network), o2o's towards the critic after
it, as TD3 and SAC do. Without --as-is the adapter aligns it: `target_update` is given the updated network to read (its
own formula; the target's parameters are unchanged by Adam there, their gradient being zero); with --as-is the
reference runs as its `update` is written, and tests/test_parity.py checks that o2o departs from it in exactly this way.
"""

from __future__ import annotations

import copy
import sys

import fixture
import numpy as np

# o2o's metrics <- the reference's info (o2o's actor_loss, without the flow term, is computed: alpha distill + q_loss)
METRICS = {"critic_loss": "critic/critic_loss", "q": "critic/q_mean", "flow_loss": "actor/bc_flow_loss",
           "distill_loss": "actor/distill_loss", "policy_q": "actor/q"}
# The draws, in the order the reference makes them in one update: (name in the inputs, jax.random function)
DRAWS = (("next_one_step_noise", "normal"), ("flow_noise", "normal"), ("flow_times", "uniform"),
         ("one_step_noise", "normal"))


def to_reference(init: dict) -> dict:
    """o2o's parameters (bc_flow, actor, critic) as the reference's ModuleDict parameters."""
    critic = {"value_net": init["critic"]["VmapCritic_0"]["MLP_0"]}
    return {"modules_actor_bc_flow": {"mlp": init["bc_flow"]["MLP_0"]},
            "modules_actor_onestep_flow": {"mlp": init["actor"]["MLP_0"]},
            "modules_critic": critic, "modules_target_critic": critic}


def from_reference(params: dict) -> dict:
    numpy = lambda tree: {k: numpy(v) if hasattr(v, "items") else np.asarray(v) for k, v in tree.items()}
    params = numpy(params)
    critic = lambda name: {"VmapCritic_0": {"MLP_0": params[name]["value_net"]}}
    return {"bc_flow": {"MLP_0": params["modules_actor_bc_flow"]["mlp"]},
            "actor": {"MLP_0": params["modules_actor_onestep_flow"]["mlp"]},
            "critic": critic("modules_critic"), "target_critic_params": critic("modules_target_critic")}


def main() -> None:
    args = fixture.arguments(__doc__.splitlines()[0],
                             ("--as-is", "the reference's own target critic step (a deviation fixture)"))
    inputs = fixture.Inputs(args.inputs)
    config, meta = inputs.config, inputs.meta
    import jax
    if args.float64:
        jax.config.update("jax_enable_x64", True)
    import flax
    import jax.numpy as jnp
    import optax

    fixture.stub_training_imports("distrax")
    sys.path.insert(0, str(args.reference))
    from agents import fql as reference

    assert config["num_critics"] == 2, "the reference's critic ensemble has two members"
    assert not config["normalize_observations"], "the reference feeds states as given"
    agent_class = reference.FQLAgent
    for method in ("update", "total_loss", "sample_actions", "compute_flow_actions"):
        setattr(agent_class, method, getattr(agent_class, method).__wrapped__)
    original_target_update = agent_class.target_update
    if not args.as_is:  # o2o's (and TD3's) target: a Polyak step towards the critic after its step
        def target_update(self, network, module_name):
            return original_target_update(self.replace(network=network), network, module_name)
        agent_class.target_update = target_update

    dtype = jnp.float64 if args.float64 else jnp.float32
    hyper = reference.get_config()
    hidden = tuple(config["hidden_dims"])
    hyper.update(lr=config["learning_rate"], batch_size=meta["batch_size"], actor_hidden_dims=hidden,
                 value_hidden_dims=hidden, layer_norm=config["critic_layer_norm"],
                 actor_layer_norm=config["actor_layer_norm"], discount=config["discount"], tau=config["tau"],
                 q_agg=config["q_aggregation"], alpha=config["alpha"], flow_steps=config["flow_steps"],
                 normalize_q_loss=config["normalize_q_loss"])
    examples = np.zeros((1, meta["observation_dim"]), dtype), np.zeros((1, meta["action_dim"]), dtype)
    agent = agent_class.create(0, *examples, hyper)
    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), to_reference(inputs.tree("init")))
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(agent.network.params)
    for mine, theirs in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(agent.network.params)):
        assert mine.shape == theirs.shape
    network = agent.network.replace(params=params, opt_state=agent.network.tx.init(params))
    agent = agent.replace(network=network)

    raw = inputs.tree("batch")
    batch = {"observations": raw["observations"], "actions": raw["actions"], "rewards": raw["rewards"],
             "next_observations": raw["next_observations"], "masks": 1.0 - raw["dones"]}
    batch = {k: jnp.asarray(v, dtype) for k, v in batch.items()}
    # The architecture notes' check: the critic ensemble's jitted forward pass equals its eager one.
    critic = agent.network.select("critic")
    jitted = jax.jit(lambda o, a: critic(o, actions=a))(batch["observations"], batch["actions"])
    with jax.disable_jit():
        eager = critic(batch["observations"], actions=batch["actions"])
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-5, atol=1e-6)

    @jax.jit
    def update(agent, draws):  # a fifth draw, sample_actions for the logged mse, is the reference's own
        return fixture.call_with_draws(DRAWS, draws, lambda: agent.update(batch))

    draws = {name: jnp.asarray(inputs.draws(name), dtype) for name, _ in DRAWS}
    losses, after_1 = {name: [] for name in [*METRICS, "actor_loss"]}, None
    for i in range(inputs.steps):
        agent, info = update(agent, {name: value[i] for name, value in draws.items()})
        info = {k: float(np.asarray(v)) for k, v in info.items()}
        for name, key in METRICS.items():
            losses[name].append(info[key])
        losses["actor_loss"].append(config["alpha"] * info["actor/distill_loss"] + info["actor/q_loss"])
        if i == 0:
            after_1 = copy.deepcopy(from_reference(agent.network.params))

    deviations = [
        {"name": "target critic",
         "reference": "target <- tau critic_before_its_step + (1 - tau) target (update: target_update reads "
                      "self.network, the network before this update's gradient step)",
         "o2o": "target <- tau critic_after_its_step + (1 - tau) target, as TD3 and SAC",
         "in_this_fixture": "as the reference" if args.as_is else "aligned to o2o's: target_update reads the updated "
                            "network (its own formula)"},
        {"name": "one optimiser or three",
         "reference": "one Adam over all networks' parameters, one gradient of critic_loss + actor_loss (the flow, "
                      "distillation and Q terms)",
         "o2o": "one Adam per network, each on the gradient of its own loss terms",
         "in_this_fixture": "none: Adam is elementwise and each network's parameters appear in its own terms only "
                            "(the distillation target and the Q term read the other networks without gradient)"},
    ]
    fixture.write(
        args, inputs, repository="seohongpark/fql", name="fql-as-is" if args.as_is else None,
        kind="deviation" if args.as_is else "parity",
        versions={"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
                  "numpy": np.__version__},
        why="the authors' code (Park, Li & Levine, 2025)",
        losses=losses, after_1=after_1, after_all=from_reference(agent.network.params),
        tolerance={"losses": 1e-5, "after_1": 1e-5, "after_all": 1e-5, **fixture.TOLERANCE_NOTE},
        injected=["x_0 of the flow-matching loss: jax.random.normal in actor_loss, (batch, action_dim) per update",
                  "t of the flow-matching loss: jax.random.uniform in actor_loss, (batch, 1) per update",
                  ("z of the one-step policy's distillation and Q terms: jax.random.normal in actor_loss, "
                   "(batch, action_dim) per update"),
                  ("z' of the one-step policy at s' in the critic target: jax.random.normal in sample_actions (from "
                   "critic_loss), (batch, action_dim) per update")],
        not_injected=["actor_loss's sample_actions(observations) for the logged mse metric only"],
        deviations=deviations,
        notes=[(f"hidden layers {config['hidden_dims']} (the paper's are (512, 512, 512, 512)), batch "
                f"{meta['batch_size']} (the paper's is 256): four (batch, ...) draws per update, kept under 1 MB"),
               (f"alpha {config['alpha']}, flow_steps {config['flow_steps']}, q_agg {config['q_aggregation']}: the "
                "reference's defaults"),
               ("losses: o2o's metric names; actor_loss is o2o's (alpha distill_loss + q_loss, the reference's "
                "actor_loss less its bc_flow_loss, which o2o reports as flow_loss); q is the reference's "
                "critic/q_mean, policy_q its actor/q"),
               "one batch for every update; states as given (neither side standardizes them)"],
    )


if __name__ == "__main__":
    main()
