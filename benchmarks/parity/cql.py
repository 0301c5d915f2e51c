"""CQL and Cal-QL parity: the Cal-QL authors' `ConservativeSAC._train_step` (nakamotoo/Cal-QL, JAX) on o2o's inputs.

The reference's JaxCQL/conservative_sac.py, CQL with `enable_calql=False`, Cal-QL with True, on o2o's initial
parameters, batch and draws.

    python benchmarks/parity/cql.py --reference /work/refs/Cal-QL --inputs INPUTS                    # cql.npz
    python benchmarks/parity/cql.py --reference /work/refs/Cal-QL --inputs INPUTS --joint-gradients  # cql-joint-...npz
    (calql.py: the same adapter, run on calql's inputs and on calql-antmaze's: the options of Cal-QL's AntMaze script,
    its default cql_max_target_backup=True and cql_lagrange=True with cql_target_action_gap 0.8)

One code for both: Cal-QL's repository is JaxCQL (young-geng/JaxCQL) with the calibration added, and CQL is its
`enable_calql=False` mode. Its training loop (conservative_sac_main.py: d4rl, wandb, samplers) stays out; the adapter
calls the jitted update's own function, `_train_step`, once per update, as `train()` does. What the adapter does to
the reference, and nothing else:
- its networks built `hidden_dims` wide (its own `arch` argument), its config set from o2o's (discount, lrs, tau, N,
  temperature, alpha 5, target entropy -action_dim as its main() sets it, no entropy backup, the max-target backup and
  the Lagrange form as o2o's config has them);
- o2o's initial parameters copied into its policy, its two Q-functions (qf1: o2o's ensemble member 0, qf2: member 1),
  their targets (copies), log_alpha and (Lagrange form) log_alpha_prime; Adam as its constructor builds them (the
  temperature's with policy_lr, alpha prime's with qf_lr);
- its policy's two trainable log-std scalars (log_std = m * raw + c, m = 1 and c = -1 in its runs) set to m = 1, c = 0
  and held there (reset after each update): o2o's policy has none (log_std = raw);
- `jax.random.normal` (the policy's reparameterised noise, inside distrax) and `jax.random.uniform` (the random
  proposals) return the injected draws while the update is traced. Its update traces its loss function once per loss
  (policy, qf1, qf2, log_alpha: `value_and_multi_grad`), each trace splitting fresh keys, so that each loss sees its own
  samples; every trace is given the same draws, as o2o draws once for all its losses;
- o2o's order: the policy and temperature step against the critics after their step (SAC's update in o2o and jaxrl).
  The reference takes all four gradients from the parameters before the update. Without --joint-gradients the adapter
  runs `_train_step` a second time on the stepped critics and keeps its policy and log_alpha (their losses and Adam
  steps: the reference's code); with --joint-gradients it keeps the reference's order (a deviation fixture), and
  tests/test_parity.py checks that o2o with its actor stepped first matches it.
"""

from __future__ import annotations

import copy
import sys
from unittest import mock

import fixture
import numpy as np

CQL_ALPHA = 5.0  # conservative_sac_main.py's cql_min_q_weight default (its antmaze script: 5, adroit: 1)


def to_reference(init: dict, dtype) -> dict:
    """o2o's parameters as the reference's train-state parameters (policy, qf1, qf2, log_alpha, log_alpha_prime)."""
    import jax.numpy as jnp
    array = lambda tree: {k: array(v) if isinstance(v, dict) else jnp.asarray(v, dtype) for k, v in tree.items()}
    critic = init["critic"]["VmapCritic_0"]["MLP_0"]
    member = lambda i: {layer: {p: critic[layer][p][i] for p in ("kernel", "bias")} for layer in critic}
    return {"policy": {"params": {"base_network": array(init["actor"]["MLP_0"]), **log_std_scalars(dtype)}},
            "qf1": {"params": {"FullyConnectedNetwork_0": array(member(0))}},
            "qf2": {"params": {"FullyConnectedNetwork_0": array(member(1))}},
            "log_alpha": {"params": {"value": jnp.asarray(init["log_temperature"]["log_temperature"], dtype)}},
            **({"log_alpha_prime": {"params": {"value": jnp.asarray(init["log_multiplier"]["log_multiplier"], dtype)}}}
               if "log_multiplier" in init else {})}


def log_std_scalars(dtype) -> dict:
    """m = 1, c = 0 of the reference's log_std = m * raw + c: o2o's log_std = raw."""
    import jax.numpy as jnp
    return {"log_std_multiplier_module": {"value": jnp.asarray(1.0, dtype)},
            "log_std_offset_module": {"value": jnp.asarray(0.0, dtype)}}


def from_reference(states: dict, targets: dict) -> dict:
    numpy = lambda tree: {k: numpy(v) if hasattr(v, "items") else np.asarray(v) for k, v in tree.items()}
    def critic(q1, q2):
        members = [q["params"]["FullyConnectedNetwork_0"] for q in (q1, q2)]
        return {"VmapCritic_0": {"MLP_0": {layer: {p: np.stack([np.asarray(m[layer][p]) for m in members])
                                                   for p in ("kernel", "bias")} for layer in members[0]}}}
    return {"actor": {"MLP_0": numpy(states["policy"].params["params"]["base_network"])},
            "critic": critic(states["qf1"].params, states["qf2"].params),
            "target_critic_params": critic(targets["qf1"], targets["qf2"]),
            "log_temperature": {"log_temperature": np.asarray(states["log_alpha"].params["params"]["value"])},
            **({"log_multiplier": {"log_multiplier": np.asarray(states["log_alpha_prime"].params["params"]["value"])}}
               if "log_alpha_prime" in states else {})}


def main() -> None:
    args = fixture.arguments(__doc__.splitlines()[0],
                             ("--joint-gradients", ("the reference's order: every gradient from the parameters before "
                                                    "the update (a deviation fixture)")))
    inputs = fixture.Inputs(args.inputs)
    config, meta = inputs.config, inputs.meta
    import jax
    if args.float64:
        jax.config.update("jax_enable_x64", True)
    import distrax
    import flax
    import jax.numpy as jnp
    import optax
    from flax.training.train_state import TrainState

    sys.path.insert(0, str(args.reference))
    from JaxCQL import jax_utils
    from JaxCQL.conservative_sac import ConservativeSAC
    from JaxCQL.model import FullyConnectedQFunction, TanhGaussianPolicy

    calibrated, lagrange = config["calibrated"], config["cql_target_action_gap"] is not None
    action_dim, observation_dim, n = meta["action_dim"], meta["observation_dim"], config["cql_num_actions"]
    assert config["num_critics"] == config["critic_subset"] == 2 and not config["critic_layer_norm"], "its two critics"
    assert not (config["actor_uses_mean_q"] or config["edac_init"] or config["normalize_observations"])
    assert config["temperature_lr"] == config["actor_lr"], "the reference's temperature steps with policy_lr"
    assert config["initial_temperature"] == 1.0 and config["target_entropy_per_action_dim"] == -1.0
    assert config["cql_alpha"] == CQL_ALPHA
    dtype = jnp.float64 if args.float64 else jnp.float32
    arch = "-".join(str(width) for width in config["hidden_dims"])

    jax_utils.init_rng(0)  # its module-level key, which its constructor's inits read (parameters replaced below)
    policy = TanhGaussianPolicy(observation_dim, action_dim, arch, orthogonal_init=True, log_std_multiplier=1.0,
                                log_std_offset=0.0)
    qf = FullyConnectedQFunction(observation_dim, action_dim, arch, orthogonal_init=True)
    sac = ConservativeSAC({
        "discount": config["discount"], "policy_lr": config["actor_lr"], "qf_lr": config["critic_lr"],
        "soft_target_update_rate": config["tau"], "cql_n_actions": n, "cql_temp": config["cql_temperature"],
        "backup_entropy": config["backup_entropy"], "cql_max_target_backup": config["max_target_backup"],
        "cql_lagrange": lagrange, "cql_target_action_gap": config["cql_target_action_gap"] if lagrange else 1.0,
        "target_entropy": float(-action_dim),  # its main(): -prod(action shape) when left at its default 0
    }, policy, qf)
    params = to_reference(inputs.tree("init"), dtype)
    for key, value in sac._train_states.items():
        assert jax.tree_util.tree_structure(value.params) == jax.tree_util.tree_structure(params[key]), key
    learning_rates = {"policy": config["actor_lr"], "qf1": config["critic_lr"], "qf2": config["critic_lr"],
                      "log_alpha": config["actor_lr"],  # its constructor: optax.adam(policy_lr) for log_alpha
                      **({"log_alpha_prime": config["critic_lr"]} if lagrange else {})}  # qf_lr for alpha prime
    states = {key: TrainState.create(params=params[key], tx=optax.adam(lr), apply_fn=None)
              for key, lr in learning_rates.items()}
    targets = {"qf1": params["qf1"], "qf2": params["qf2"]}

    raw = inputs.tree("batch")
    batch = {k: jnp.asarray(raw[k], dtype)
             for k in ("observations", "actions", "rewards", "next_observations", "dones", "mc_returns")}
    # The architecture notes' check: the Q-function's jitted forward pass equals its eager one.
    jitted = jax.jit(qf.apply)(params["qf1"], batch["observations"], batch["actions"])
    with jax.disable_jit():
        eager = qf.apply(params["qf1"], batch["observations"], batch["actions"])
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-5, atol=1e-6)

    # Per trace of its loss function: normals for a ~ pi(s) (policy and alpha losses), a' ~ pi(s') (target), the
    # proposals at s, the proposals at s'; one uniform for the random proposals.
    normal_order = ["actor_action_noise", "next_action_noise", "policy_actions_noise", "next_policy_actions_noise"]

    real_normal, real_uniform = jax.random.normal, jax.random.uniform

    def caller() -> str:
        return sys._getframe(2).f_code.co_filename

    def injected(draws: dict):
        calls = {"normal": 0, "uniform": 0}

        def normal(key, shape=(), dtype=float, *rest, **kwargs):
            if not caller().endswith("distrax/_src/distributions/normal.py"):  # Flax's shape check of its initialisers
                return real_normal(key, shape, dtype, *rest, **kwargs)
            name = normal_order[calls["normal"] % len(normal_order)]
            calls["normal"] += 1
            draw = draws[name]
            assert int(np.prod(shape)) == draw.size, f"{name}: {tuple(shape)} drawn, {draw.shape} given"
            return draw.reshape(shape).astype(dtype)

        def uniform(key, shape=(), dtype=float, minval=0.0, maxval=1.0, *rest, **kwargs):
            if not caller().endswith("JaxCQL/conservative_sac.py"):
                return real_uniform(key, shape, dtype, minval, maxval, *rest, **kwargs)
            calls["uniform"] += 1
            assert (minval, maxval) == (-1.0, 1.0), "the reference's random proposals are U(-1, 1)"
            draw = 2.0 * draws["random_actions"] - 1.0  # what jax.random.uniform(minval=-1, maxval=1) computes
            assert int(np.prod(shape)) == draw.size, f"random actions {tuple(shape)}, the input is {draw.shape}"
            return draw.reshape(shape).astype(dtype)

        patches = mock.patch.multiple(jax.random, normal=normal, uniform=uniform)
        return patches, calls

    train_step = ConservativeSAC._train_step.__wrapped__  # the jitted update's function (self static)

    def update(states, targets, draws):
        patches, calls = injected(draws)
        with patches:
            new_states, new_targets, metrics = train_step(sac, states, targets, jax.random.PRNGKey(0), batch, True,
                                                          CQL_ALPHA, calibrated)
            if not args.joint_gradients:  # o2o's order: policy and temperature against the stepped critics
                stepped = {**states, "qf1": new_states["qf1"], "qf2": new_states["qf2"]}
                again, _, metrics_again = train_step(sac, stepped, targets, jax.random.PRNGKey(0), batch, True,
                                                     CQL_ALPHA, calibrated)
                new_states = {**new_states, "policy": again["policy"], "log_alpha": again["log_alpha"]}
                metrics = {**metrics, "policy_loss": metrics_again["policy_loss"],
                           "alpha_loss": metrics_again["alpha_loss"]}
        losses_per_call = 5 if lagrange else 4  # policy, qf1, qf2, log_alpha (and log_alpha_prime)
        traces = losses_per_call * (1 if args.joint_gradients else 2)  # its loss function, once per loss per call
        assert calls == {"normal": 4 * traces, "uniform": traces}, f"the reference drew {calls}"
        held = {**new_states["policy"].params["params"], **log_std_scalars(dtype)}  # o2o has no log-std scalars
        new_states["policy"] = new_states["policy"].replace(params={"params": held})
        losses = {"critic_loss": metrics["qf1_loss"] + metrics["qf2_loss"], "actor_loss": metrics["policy_loss"],
                  "temperature_loss": metrics["alpha_loss"],
                  **({"multiplier_loss": metrics["cql/alpha_prime_loss"]} if lagrange else {})}
        return new_states, new_targets, losses

    update = jax.jit(update)
    draws = {name: jnp.asarray(inputs.draws(name), dtype) for name in normal_order + ["random_actions"]}
    losses, after_1 = {}, None
    for i in range(inputs.steps):
        states, targets, values = update(states, targets, {k: v[i] for k, v in draws.items()})
        for name, value in values.items():
            losses.setdefault(name, []).append(float(value))
        if i == 0:
            after_1 = copy.deepcopy(from_reference(states, targets))

    name = f"{meta['case']}-joint-gradients" if args.joint_gradients else meta["case"]
    order = {"name": "update order",
             "reference": "one joint step: the policy, temperature and critic gradients all from the parameters before "
                          "the update (value_and_multi_grad over one loss function), so the policy loss reads the "
                          "critics before their step",
             "o2o": "the critics step first, then the actor and temperature, the actor loss reading the stepped "
                    "critics (sac.critic_then_actor: SAC's update in o2o and jaxrl)",
             "in_this_fixture": "as the reference" if args.joint_gradients else
                                "aligned to o2o's: the adapter runs _train_step again on the stepped critics and keeps "
                                "that run's policy and log_alpha"}
    target = ({"name": "target",
               "reference": "Cal-QL's runs use cql_max_target_backup=True (its default): the target is the max over N "
                            "sampled next actions of min Q_targ",
               "o2o": "max_target_backup=True does the same (False, o2o's default: one sampled next action, CQL's "
                      "official MuJoCo setting, max_q_backup=False)",
               "in_this_fixture": "the reference's default, as o2o's config here" if config["max_target_backup"] else
                                  "aligned by the reference's own flag: cql_max_target_backup=False"})
    deviations = [
        order,
        {"name": "log-std scalars",
         "reference": "log_std = m * raw + c with two trainable scalars, m = 1 and c = -1 at the start (its "
                      "policy_log_std_multiplier and policy_log_std_offset flags; c = -1 starts the policy's std near "
                      "e^-1), clipped to [-20, 2]",
         "o2o": "log_std = raw, clipped to [-5, 2] (o2o.nets.GaussianPolicy, as SAC in o2o)",
         "in_this_fixture": "aligned: m = 1 and c = 0, reset after every update; the clip bounds are not reached"},
        {"name": "samples per loss",
         "reference": "each of its four losses draws its own samples (its loss function is traced once per loss, "
                      "each trace splitting fresh keys): the two critics' conservative terms see different proposals, "
                      "the temperature loss other actions than the policy loss",
         "o2o": "one set of samples per update, shared by the critics' losses and by the actor and temperature losses",
         "in_this_fixture": "the same draws are injected into every trace (the same distribution either way)"},
        target,
    ]
    injected_draws = [
        ("a ~ pi(s) of the policy and temperature losses: jax.random.normal inside distrax's sample_and_log_prob, "
         "(batch, action_dim) per update"),
        "a' ~ pi(s') of the target: the same, (batch, action_dim)",
        "the N proposals a ~ pi(.|s) and a ~ pi(.|s') of the conservative term: the same, (batch, N, action_dim) each",
        "the N uniform proposals: jax.random.uniform(minval=-1, maxval=1), given 2u - 1 for the stored u ~ U(0, 1)",
    ]
    fixture.write(
        args, inputs, repository="nakamotoo/Cal-QL", name=name, kind="deviation" if args.joint_gradients else "parity",
        versions={"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
                  "distrax": distrax.__version__, "numpy": np.__version__},
        why=("the Cal-QL authors' code (Nakamoto et al., 2023), built on JaxCQL (young-geng/JaxCQL), whose CQL is its "
             "enable_calql=False mode; run with jax 0.4.30 / flax 0.8.5 / distrax 0.1.5 instead of its pinned jax "
             "0.3.15 / flax 0.4.2 (no Python 3.11 wheels), no change to its code"),
        losses=losses, after_1=after_1, after_all=from_reference(states, targets),
        tolerance={"losses": 1e-5, "after_1": 1e-5, "after_all": 1e-5, **fixture.TOLERANCE_NOTE},
        injected=injected_draws,
        not_injected=["o2o's random choice of 2 of its 2 critics for the target's minimum (a permutation: no effect)"],
        deviations=deviations,
        notes=[(f"hidden layers {config['hidden_dims']} for policy and critics, batch {meta['batch_size']}, N = {n} "
                "proposals per state (o2o's defaults (256, 256), 256, 10), to keep the fixture under 1 MB: the draws "
                "take 614 kB"),
               ("the batch's mc_returns are N(0, 1), so that Cal-QL's bound max(Q, G) binds for some proposals and not "
                "others; the reference reads them in both modes (for a logged bound rate), o2o's CQL ignores them"),
               "one batch for every update; states as given (neither side standardizes them)",
               "the reference's orthogonal initialisation is not compared: both start from o2o's parameters"],
    )


if __name__ == "__main__":
    main()
