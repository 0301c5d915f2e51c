"""RIQL parity: the authors' `ImplicitQLearning.train` (YangRui2015/RIQL, RIQL.py, PyTorch) on o2o's initial parameters
and batch.

    python benchmarks/parity/riql.py --reference /work/refs/RIQL --inputs INPUTS        # tests/fixtures/parity/riql.npz

RIQL's update draws nothing: the batch is its only randomness. What the adapter does to the reference, and nothing else:
- its training-script imports stubbed (d4rl, gym, wandb, pyrallis);
- the ensemble's quantile, Huber sigma and size set where its update reads them (TrainConfig's class attributes, as its
  get_config does per corruption);
- its VectorizedQ, ValueFunction and DeterministicPolicy built `hidden_dim` wide (their own argument), o2o's initial
  parameters copied in, the target as a copy, three Adams with the actor's cosine schedule as its train() builds them;
- the one batch for every update, states standardized with the given statistics, as its train() does first;
- an all-zero `attack_indexes` (it feeds only the logged Q statistics of attacked rows).
"""

from __future__ import annotations

import copy
import sys

import fixture
import numpy as np
import torch
from torch_helpers import mlp_from_torch, mlp_to_torch, standardized_batch

MLP_LAYERS = ["net.0", "net.2", "net.4"]  # RIQL's MLP: Linear, ReLU, Linear, ReLU, Linear (+ Tanh for the policy)
CRITIC_LAYERS = ["critic.0", "critic.2", "critic.4"]  # VectorizedLinear (weight (N, in, out), bias (N, 1, out))


def critic_to_torch(critic: dict) -> dict[str, torch.Tensor]:
    mlp = critic["VmapCritic_0"]["MLP_0"]
    return {**{f"{name}.weight": torch.from_numpy(np.ascontiguousarray(mlp[f"Dense_{i}"]["kernel"]))
               for i, name in enumerate(CRITIC_LAYERS)},
            **{f"{name}.bias": torch.from_numpy(np.ascontiguousarray(mlp[f"Dense_{i}"]["bias"][:, None, :]))
               for i, name in enumerate(CRITIC_LAYERS)}}


def critic_from_torch(module: torch.nn.Module) -> dict:
    state = module.state_dict()
    return {"VmapCritic_0": {"MLP_0": {f"Dense_{i}": {"kernel": state[f"{name}.weight"].numpy().copy(),
                                                      "bias": state[f"{name}.bias"].numpy()[:, 0, :].copy()}
                                       for i, name in enumerate(CRITIC_LAYERS)}}}


def parameters(trainer) -> dict:
    return {"actor": {"MLP_0": mlp_from_torch(trainer.actor.net, MLP_LAYERS)},
            "critic": critic_from_torch(trainer.qf), "value": {"MLP_0": mlp_from_torch(trainer.vf.v, MLP_LAYERS)},
            "target_critic_params": critic_from_torch(trainer.q_target)}


def main() -> None:
    args = fixture.arguments(__doc__.splitlines()[0])
    inputs = fixture.Inputs(args.inputs)
    config, meta = inputs.config, inputs.meta
    dtype = torch.float64 if args.float64 else torch.float32
    fixture.stub_training_imports("d4rl", "gym", "wandb", "pyrallis")
    sys.path.insert(0, str(args.reference))
    import RIQL as reference

    torch.set_num_threads(1)
    torch.set_default_dtype(dtype)
    widths = set(config["hidden_dims"])
    assert len(config["hidden_dims"]) == 2 and len(widths) == 1, "the reference has two hidden layers of one width"
    assert config["actor_lr"] == config["critic_lr"] == config["value_lr"] == reference.TrainConfig.learning_rate
    assert config["normalize_observations"] and (config["target_min"], config["target_max"]) == (-100.0, 1000.0)
    width = widths.pop()
    reference.TrainConfig.quantile = config["quantile"]
    reference.TrainConfig.sigma = config["huber_sigma"]
    reference.TrainConfig.num_critics = config["num_critics"]
    state_dim, action_dim = meta["observation_dim"], meta["action_dim"]
    critic = reference.VectorizedQ(state_dim, action_dim, hidden_dim=width, num_critics=config["num_critics"])
    value = reference.ValueFunction(state_dim, hidden_dim=width)
    actor = reference.DeterministicPolicy(state_dim, action_dim, max_action=1.0, hidden_dim=width)
    init = inputs.tree("init")
    critic.load_state_dict(critic_to_torch(init["critic"]))
    value.v.load_state_dict(mlp_to_torch(init["value"]["MLP_0"], MLP_LAYERS))
    actor.net.load_state_dict(mlp_to_torch(init["actor"]["MLP_0"], MLP_LAYERS))
    lr = reference.TrainConfig.learning_rate
    trainer = reference.ImplicitQLearning(
        max_action=1.0, actor=actor, actor_optimizer=torch.optim.Adam(actor.parameters(), lr=lr),
        q_network=critic, q_optimizer=torch.optim.Adam(critic.parameters(), lr=lr),
        v_network=value, v_optimizer=torch.optim.Adam(value.parameters(), lr=lr),
        iql_tau=config["expectile"], beta=config["temperature"], max_steps=config["actor_decay_steps"],
        discount=config["discount"], soft_target_update_rate=config["tau"])

    states, actions, next_states, rewards, not_dones = standardized_batch(
        inputs.tree("batch"), inputs.arrays["spec/observation_mean"], inputs.arrays["spec/observation_std"], dtype)
    batch = [states, actions, rewards, next_states, 1.0 - not_dones, torch.zeros(states.shape[0])]

    losses, after_1 = {"value_loss": [], "critic_loss": [], "actor_loss": []}, None
    for step in range(inputs.steps):
        log = trainer.train(batch)
        for ours, theirs in (("value_loss", "value_loss"), ("critic_loss", "q_loss"), ("actor_loss", "actor_loss")):
            losses[ours].append(log[theirs])
        if step == 0:
            after_1 = copy.deepcopy(parameters(trainer))

    fixture.write(
        args, inputs, repository="YangRui2015/RIQL",
        versions={"torch": torch.__version__, "numpy": np.__version__},
        why="the authors' code (PyTorch, built on CORL's IQL)",
        losses=losses, after_1=after_1, after_all=parameters(trainer),
        # after 100: 1.0e-3 for the critic in float32, 1.4e-7 with Adam's bias corrections exact (tests/test_parity.py):
        # optax computes them in float32, and in the Huber loss's linear zone Adam's steps are all of one size
        tolerance={"losses": 1e-4, "after_1": 1e-4, "after_all": 2e-3, **fixture.TOLERANCE_NOTE},
        injected=[], not_injected=[],
        deviations=[
            {"name": "critic initialisation",
             "reference": "VectorizedLinear's hidden weights kaiming_uniform_(a=sqrt(5)) on each (in, out) slice, so "
                          "U(+-1/sqrt(out)) (torch reads fan_in from the second axis); biases 0.1, output layer U(+-3e-3)",
             "o2o": "U(+-1/sqrt(in)) hidden weights (EDAC's intent), biases 0.1, output layer U(+-3e-3)",
             "in_this_fixture": "not compared: both sides start from o2o's parameters"},
            {"name": "state statistics",
             "reference": "mean and std of the observations and next observations together (+1e-3)",
             "o2o": "of the observations (+1e-3), as every o2o algorithm",
             "in_this_fixture": "not compared: both sides standardize with the given statistics"},
        ],
        notes=[(f"hidden layers {config['hidden_dims']} (the authors' 256 wide), {config['num_critics']} critics (their "
                "5) and a 200-update actor schedule (their 3M), to keep the fixture small and the schedule exercised: "
                "the reference's own arguments"),
               "rewards N(0, 150^2) and sigma 0.1: the target's clip at -100 and both zones of the Huber loss are reached",
               "training-script imports stubbed (d4rl, gym, wandb, pyrallis): the update uses none of them"],
    )


if __name__ == "__main__":
    main()
