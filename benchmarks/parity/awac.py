"""AWAC parity: CORL's `AdvantageWeightedActorCritic.update` (tinkoff-ai/CORL, algorithms/offline/awac.py, PyTorch) on
o2o's initial parameters, batch and draws.

    python benchmarks/parity/awac.py --reference /work/refs/CORL --inputs INPUTS            # tests/.../awac.npz
    python benchmarks/parity/awac.py --reference /work/refs/CORL --inputs INPUTS --as-is    # awac-as-is.npz

o2o's AWAC cites CORL's (the AWAC authors' rlkit code is a framework, not an importable update). What the adapter does
to the reference, and nothing else:
- its training-script imports stubbed (d4rl, gym, wandb, pyrallis);
- its Actor and two Critics built `hidden_dim` wide (its own argument; three hidden layers, as o2o's hidden_dims), o2o's
  initial parameters copied into them (critic_1 is o2o's ensemble member 0, critic_2 member 1), targets as copies, its
  three Adams built as its train() builds them (lr 3e-4);
- the one batch for every update, states standardized with the dataset's statistics, as its train() does first;
- `torch.distributions.normal._standard_normal` (the noise of `Normal.rsample`) returns the injected draws: one for a'
  ~ pi(s') in the critic loss, one for a_pi ~ pi(s) in the actor loss, per update;
- `torch.Tensor.backward` records the loss values (critic, then actor).
One documented departure (see the fixture's JSON): o2o's Gaussian policy squashes its mean with tanh (o2o.nets.
GaussianPolicy, as the authors' IQL policy does), CORL's leaves it unbounded. Without --as-is the adapter appends a
`torch.nn.Tanh()` to the reference actor's `_mlp` (no parameters: its state dict is unchanged), so that the rest of the
update is compared exactly; with --as-is it runs the reference as it is, and tests/test_parity.py checks that o2o with
its mean's tanh removed matches it.
"""

from __future__ import annotations

import copy
import sys
from unittest import mock

import fixture
import numpy as np
import torch
from torch_helpers import mlp_from_torch, mlp_to_torch, standardized_batch

LAYERS = ["_mlp.0", "_mlp.2", "_mlp.4", "_mlp.6"]  # Linear, ReLU, Linear, ReLU, Linear, ReLU, Linear
LEARNING_RATE = 3e-4  # awac.py, TrainConfig.learning_rate: every Adam


def critic_from_torch(critic_1: torch.nn.Module, critic_2: torch.nn.Module) -> dict:
    members = [mlp_from_torch(critic_1, LAYERS), mlp_from_torch(critic_2, LAYERS)]
    return {"VmapCritic_0": {"MLP_0": {layer: {p: np.stack([m[layer][p] for m in members]) for p in ("kernel", "bias")}
                                       for layer in members[0]}}}


def parameters(awac) -> dict:
    return {"actor": {"MLP_0": mlp_from_torch(awac._actor, LAYERS),
                      "log_std": awac._actor._log_std.detach().numpy().copy()},
            "critic": critic_from_torch(awac._critic_1, awac._critic_2),
            "target_critic_params": critic_from_torch(awac._target_critic_1, awac._target_critic_2)}


def main() -> None:
    args = fixture.arguments(__doc__.splitlines()[0],
                             ("--as-is", "the reference's actor as it is, its mean unbounded (a deviation fixture)"))
    inputs = fixture.Inputs(args.inputs)
    config, meta = inputs.config, inputs.meta
    dtype = torch.float64 if args.float64 else torch.float32
    fixture.stub_training_imports("d4rl", "gym", "wandb", "pyrallis")
    sys.path.insert(0, str(args.reference / "algorithms" / "offline"))
    import awac as reference

    torch.set_num_threads(1)
    torch.set_default_dtype(dtype)
    widths = set(config["hidden_dims"])
    assert len(config["hidden_dims"]) == 3 and len(widths) == 1, "the reference has three hidden layers of one width"
    assert config["actor_lr"] == config["critic_lr"] == LEARNING_RATE and config["normalize_observations"]
    width = widths.pop()
    sizes = {"state_dim": meta["observation_dim"], "action_dim": meta["action_dim"], "hidden_dim": width}
    actor, critic_1, critic_2 = reference.Actor(**sizes), reference.Critic(**sizes), reference.Critic(**sizes)
    actor.to(dtype)  # its _log_std is created float32 whatever the default dtype: float64 for the --float64 check
    init = inputs.tree("init")
    actor.load_state_dict({**mlp_to_torch(init["actor"]["MLP_0"], LAYERS),
                           "_log_std": torch.from_numpy(init["actor"]["log_std"])})
    critic_mlp = init["critic"]["VmapCritic_0"]["MLP_0"]
    critic_1.load_state_dict(mlp_to_torch(critic_mlp, LAYERS, member=0))
    critic_2.load_state_dict(mlp_to_torch(critic_mlp, LAYERS, member=1))
    if not args.as_is:  # o2o's policy mean: tanh of the network's output
        actor._mlp.append(torch.nn.Tanh())
    awac = reference.AdvantageWeightedActorCritic(
        actor=actor, actor_optimizer=torch.optim.Adam(actor.parameters(), lr=LEARNING_RATE),
        critic_1=critic_1, critic_1_optimizer=torch.optim.Adam(critic_1.parameters(), lr=LEARNING_RATE),
        critic_2=critic_2, critic_2_optimizer=torch.optim.Adam(critic_2.parameters(), lr=LEARNING_RATE),
        gamma=config["discount"], tau=config["tau"], awac_lambda=config["temperature"])

    states, actions, next_states, rewards, not_dones = standardized_batch(
        inputs.tree("batch"), inputs.arrays["spec/observation_mean"], inputs.arrays["spec/observation_std"], dtype)
    batch = [states, actions, rewards, next_states, 1.0 - not_dones]  # its ReplayBuffer.sample's order, dones
    draws = iter(draw for pair in zip(inputs.draws("target_action_noise"), inputs.draws("baseline_action_noise"))
                 for draw in pair)  # per update: a' ~ pi(s') (critic loss), then a_pi ~ pi(s) (actor loss)

    def standard_normal(shape, dtype, device):
        draw = torch.from_numpy(next(draws)).to(dtype)
        assert draw.shape == tuple(shape), f"draw {tuple(draw.shape)} for a {tuple(shape)} sample"
        return draw

    losses, after_1 = {"critic_loss": [], "actor_loss": []}, None
    with fixture.LossRecorder(torch) as recorder, \
            mock.patch.object(torch.distributions.normal, "_standard_normal", standard_normal):
        for step in range(inputs.steps):
            awac.update(batch)
            critic_loss, actor_loss = recorder.take()
            losses["critic_loss"].append(critic_loss)
            losses["actor_loss"].append(actor_loss)
            if step == 0:
                after_1 = copy.deepcopy(parameters(awac))
    assert next(draws, None) is None, "the reference used fewer draws than the updates were given"

    fixture.write(
        args, inputs, repository="tinkoff-ai/CORL", name="awac-as-is" if args.as_is else None,
        kind="deviation" if args.as_is else "parity",
        versions={"torch": torch.__version__, "numpy": np.__version__},
        why=("the implementation o2o's AWAC follows (its registry and docstrings cite CORL's AWAC: the clip of the "
             "weights at 100, lambda 1, lr 3e-4); the AWAC authors' code is rlkit, a framework whose update cannot be "
             "driven alone"),
        losses=losses, after_1=after_1, after_all=parameters(awac),
        tolerance={"losses": 1e-4, "after_1": 1e-4, "after_all": 1e-4, **fixture.TOLERANCE_NOTE},
        injected=[("a' ~ pi(s') in the critic loss: torch.distributions.normal._standard_normal in Normal.rsample, "
                   "one (batch, action_dim) draw per update"),
                  ("a_pi ~ pi(s) in the actor loss (the advantage's baseline): the same, one (batch, action_dim) draw "
                   "per update")],
        not_injected=[],
        deviations=[
            {"name": "policy mean",
             "reference": "mean = MLP(s), unbounded (awac.py, Actor._get_policy)",
             "o2o": "mean = tanh(MLP(s)) (o2o.nets.GaussianPolicy with a state-independent std, as the IQL authors' "
                    "policy): the mean stays in the action box, samples are clipped to it on both sides",
             "in_this_fixture": "as the reference" if args.as_is else
                                "aligned to o2o's: the adapter appends torch.nn.Tanh() to the reference actor's _mlp"},
            {"name": "log-std lower bound",
             "reference": "log_std clamped to [-20, 2]", "o2o": "clipped to [-5, 2] (o2o.nets.LOG_STD_MIN)",
             "in_this_fixture": "not reached: log_std starts at 0 and moves by at most ~3e-4 per Adam step"},
        ],
        notes=[(f"hidden layers {config['hidden_dims']} (CORL's are (256, 256, 256); o2o's default (256, 256)), to "
                "keep the fixture small: the reference's own hidden_dim argument"),
               "training-script imports stubbed (d4rl, gym, wandb, pyrallis): the update uses none of them",
               ("one batch for every update; states standardized before the reference sees them (as its train() does "
                "for the whole dataset); o2o standardizes inside its update with the same mean and std")],
    )


if __name__ == "__main__":
    main()
