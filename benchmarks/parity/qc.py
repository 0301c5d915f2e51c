"""Q-chunking parity: the authors' `ACFQLAgent.update` (ColinQiyangLi/qc, agents/acfql.py, JAX) on o2o's initial
parameters, the same windows and the same draws, best-of-n (case qc) or distill-ddpg (case qc-fql).

    python benchmarks/parity/qc.py --reference /work/refs/qc --inputs INPUTS     # tests/.../qc.npz or qc-fql.npz

What the adapter does to the reference, and nothing else:
- distrax and ml_collections stubbed (utils/networks.py imports distrax for its Gaussian actors, which ACFQL never
  uses; ml_collections only for `get_config`, whose values the adapter passes as a plain dict);
  agents/acfql.py imported by its path (agents/__init__.py imports QC-RLPD's modules, which need TensorFlow
  Probability);
- the batch is its own `Dataset.sample_sequence` on stage 1's episodes (terminals at each episode's last step, masks
  1 - done), its `np.random.randint` returning the windows' first steps that o2o's sampler drew;
- `ACFQLAgent.create` builds its networks (the widths of o2o's config, chunks of `horizon` actions), o2o's initial
  parameters replace its own (the target critic as a copy), Adam re-initialised on them;
- the jit decorators of its methods are unwrapped and the adapter jits the whole update once, with the injected draws
  as its inputs; its draws (`jax.random.normal` / `uniform` in this order in one update) return the injected ones:
  the acting policy's noise at s_{t+h} in `critic_loss` (best-of-n: its candidates' x_0, (batch, samples, h x dim)),
  x_0 and t of the flow-matching loss, and distill-ddpg's z.
Nothing is aligned: o2o's QC moves its target critic towards the critic before the update's step, as this code does.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from unittest import mock

import fixture
import numpy as np
from fql import from_reference, to_reference

METRICS = {"critic_loss": "critic/critic_loss", "q": "critic/q_mean", "flow_loss": "actor/bc_flow_loss"}
DISTILL_METRICS = {"distill_loss": "actor/distill_loss"}


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

    fixture.stub_training_imports("distrax", "ml_collections")
    sys.path.insert(0, str(args.reference))
    spec = importlib.util.spec_from_file_location("acfql", args.reference / "agents" / "acfql.py")
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    from utils.datasets import Dataset

    distill = config["policy"] == "distill"
    draws_in_order = (("next_policy_noise", "normal"), ("flow_noise", "normal"), ("flow_times", "uniform"),
                      *((("one_step_noise", "normal"),) if distill else ()))
    agent_class = reference.ACFQLAgent
    for method in ("update", "total_loss", "sample_actions", "compute_flow_actions"):
        setattr(agent_class, method, getattr(agent_class, method).__wrapped__)

    dtype = jnp.float64 if args.float64 else jnp.float32
    hidden, horizon = tuple(config["hidden_dims"]), config["horizon"]
    hyper = dict(agent_name="acfql", lr=config["learning_rate"], batch_size=meta["batch_size"],
                 actor_hidden_dims=hidden, value_hidden_dims=hidden, layer_norm=config["critic_layer_norm"],
                 actor_layer_norm=config["actor_layer_norm"], discount=config["discount"], tau=config["tau"],
                 q_agg=config["q_aggregation"], alpha=config["alpha"], num_qs=config["num_critics"],
                 flow_steps=config["flow_steps"], normalize_q_loss=config["normalize_q_loss"], encoder=None,
                 horizon_length=horizon, action_chunking=True,
                 actor_type="distill-ddpg" if distill else "best-of-n", actor_num_samples=config["num_samples"],
                 use_fourier_features=False, fourier_feature_dim=64, weight_decay=0.0)
    assert not config["normalize_observations"], "the reference feeds states as given"
    # unbatched, as its main.py passes them: it reads the batch shape as what precedes the example's dimensions
    examples = np.zeros(meta["observation_dim"], dtype), np.zeros(meta["action_dim"], dtype)
    agent = agent_class.create(0, *examples, hyper)
    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), to_reference(inputs.tree("init")))
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(agent.network.params)
    for mine, theirs in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(agent.network.params)):
        assert mine.shape == theirs.shape
    agent = agent.replace(network=agent.network.replace(params=params, opt_state=agent.network.tx.init(params)))

    episodes = inputs.tree("episodes")
    starts = episodes.pop("window_starts")
    dataset = Dataset.create(observations=episodes["observations"], actions=episodes["actions"],
                             rewards=episodes["rewards"], masks=1.0 - episodes["dones"],
                             terminals=(episodes["steps_to_episode_end"] == 0).astype(np.float32),
                             next_observations=episodes["next_observations"])
    with mock.patch.object(np.random, "randint", lambda high, size: np.asarray(starts)):
        sequence = dataset.sample_sequence(meta["batch_size"], horizon, config["discount"])
    mine = inputs.tree("batch")
    np.testing.assert_array_equal(sequence["actions"], mine["actions"])  # the same windows on both sides
    batch = {k: jnp.asarray(sequence[k], dtype) for k in ("observations", "actions", "rewards", "masks", "valid",
                                                          "next_observations")}

    @jax.jit
    def update(agent, draws):
        return fixture.call_with_draws(draws_in_order, draws, lambda: agent.update(batch))

    draws = {name: jnp.asarray(inputs.draws(name), dtype) for name, _ in draws_in_order}
    metrics = {**METRICS, **(DISTILL_METRICS if distill else {})}
    losses, after_1 = {name: [] for name in metrics}, None
    if distill:
        losses["actor_loss"] = []
    for i in range(inputs.steps):
        agent, info = update(agent, {name: value[i] for name, value in draws.items()})
        info = {k: float(np.asarray(v)) for k, v in info.items()}
        for name, key in metrics.items():
            losses[name].append(info[key])
        if distill:  # o2o's actor_loss: the reference's less its flow term, which o2o reports as flow_loss
            losses["actor_loss"].append(info["actor/actor_loss"] - info["actor/bc_flow_loss"])
        if i == 0:
            after_1 = copy.deepcopy(from_reference(agent.network.params))

    deviations = [
        {"name": "one optimiser or three",
         "reference": "one Adam over all networks' parameters, one gradient of critic_loss + actor_loss",
         "o2o": "one Adam per network, each on the gradient of its own loss terms (best-of-n: the one-step policy, "
                "which no loss reaches, takes no step)",
         "in_this_fixture": "none: Adam is elementwise and each network's parameters appear in its own terms only; "
                            "a zero gradient leaves Adam's parameters where they are"},
        {"name": "two discounts",
         "reference": "sample_sequence's discount (a command-line flag) sums the window's rewards, the agent's config "
                      "discount gives gamma^h",
         "o2o": "one discount for both",
         "in_this_fixture": "none: both are the config's discount"},
    ]
    fixture.write(
        args, inputs, repository="ColinQiyangLi/qc", kind="parity",
        versions={"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
                  "numpy": np.__version__},
        why="the authors' code (Li, Zhou & Levine, 2025)",
        losses=losses, after_1=after_1, after_all=from_reference(agent.network.params),
        tolerance={"losses": 1e-5, "after_1": 1e-5, "after_all": 1e-5, **fixture.TOLERANCE_NOTE},
        injected=[("the acting policy's noise at s_{t+h} in the critic target: jax.random.normal in sample_actions, "
                   + ("(batch, h x action_dim)" if distill else "(batch, actor_num_samples, h x action_dim)")),
                  "x_0 of the flow-matching loss: jax.random.normal in actor_loss, (batch, h x action_dim)",
                  "t of the flow-matching loss: jax.random.uniform in actor_loss, (batch, 1)",
                  *(["z of the one-step policy's distillation and Q terms: jax.random.normal in actor_loss, "
                     "(batch, h x action_dim)"] if distill else [])],
        not_injected=["the window starts: np.random.randint in sample_sequence returns o2o's sampler's draw"],
        deviations=deviations,
        notes=[(f"hidden layers {config['hidden_dims']} (the paper's are (512, 512, 512, 512)), batch "
                f"{meta['batch_size']} (the paper's is 256)"
                + ("" if distill else f", {config['num_samples']} best-of-n samples (the paper's 32)")
                + ": the per-update draws kept under 1 MB"),
               (f"horizon {horizon}, alpha {config['alpha']}, flow_steps {config['flow_steps']}, q_agg "
                f"{config['q_aggregation']}: the reference's defaults"),
               ("one batch for every update: windows of twelve synthetic episodes of 2 to 29 steps, some crossing an "
                "episode's end (masked by valid), successes (done) in one step of eight"),
               ("losses: o2o's metric names; q is the reference's critic/q_mean"
                + ("; actor_loss is o2o's (alpha distill_loss + q_loss, the reference's actor_loss less its "
                   "bc_flow_loss)" if distill else ""))],
    )


if __name__ == "__main__":
    main()
