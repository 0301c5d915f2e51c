"""TD3+BC parity: the authors' `TD3_BC.train` (sfujim/TD3_BC, PyTorch) on o2o's initial parameters, batch and draws.

    python benchmarks/parity/td3bc.py --reference /work/refs/TD3_BC --inputs INPUTS

What the adapter does to the reference, and nothing else:
- its 256-wide `nn.Linear` layers are built `hidden_dims` wide (its width is hard-coded; the fixture must stay small);
- o2o's initial parameters are copied into its actor, critic and their targets (its twin critic's l1-l3 is o2o's
  ensemble member 0, the one the actor loss reads; l4-l6 member 1);
- its replay buffer is a stub that returns the one batch, states standardized with the dataset's statistics as its
  main.py does before filling the buffer (o2o standardizes inside the update);
- `torch.randn_like`, its one draw per update (target policy smoothing), returns the injected draw;
- `torch.Tensor.backward` records the loss values (critic, then actor on the delayed steps).
"""

from __future__ import annotations

import copy
import sys
from unittest import mock

import fixture
import numpy as np
import torch
from torch_helpers import NarrowLayers, mlp_from_torch, mlp_to_torch, standardized_batch


class OneBatch:
    """The reference's ReplayBuffer.sample, always returning the same batch."""

    def __init__(self, tensors: tuple):
        self.tensors, self.size = tensors, len(tensors[0])

    def sample(self, batch_size: int):
        assert batch_size == self.size, f"the reference asked for {batch_size} transitions, the batch has {self.size}"
        return self.tensors


ACTOR, Q1, Q2 = ["l1", "l2", "l3"], ["l1", "l2", "l3"], ["l4", "l5", "l6"]


def critic_from_torch(module: torch.nn.Module) -> dict:
    members = [mlp_from_torch(module, Q1), mlp_from_torch(module, Q2)]
    return {"VmapCritic_0": {"MLP_0": {layer: {p: np.stack([m[layer][p] for m in members]) for p in ("kernel", "bias")}
                                       for layer in members[0]}}}


def parameters(policy) -> dict:
    return {"actor": {"MLP_0": mlp_from_torch(policy.actor, ACTOR)},
            "critic": critic_from_torch(policy.critic),
            "target_actor_params": {"MLP_0": mlp_from_torch(policy.actor_target, ACTOR)},
            "target_critic_params": critic_from_torch(policy.critic_target)}


def train(policy, inputs: fixture.Inputs, dtype: torch.dtype) -> tuple[dict, dict, dict]:
    """The reference's `policy.train` (TD3_BC's or TD3's: the same modules, the same loop) run `inputs.steps` times on
    o2o's initial parameters, the one batch (states standardized as the reference's main.py does where o2o's config
    standardizes them) and the injected target noise; returns its losses per update and its parameters after 1 and
    after all updates, in o2o's structure."""
    config = inputs.config
    init = inputs.tree("init")
    actor = mlp_to_torch(init["actor"]["MLP_0"], ACTOR)
    critic = {**mlp_to_torch(init["critic"]["VmapCritic_0"]["MLP_0"], Q1, member=0),
              **mlp_to_torch(init["critic"]["VmapCritic_0"]["MLP_0"], Q2, member=1)}
    for module, state in ((policy.actor, actor), (policy.actor_target, actor), (policy.critic, critic),
                          (policy.critic_target, critic)):
        module.load_state_dict(state)  # strict: every parameter, every shape (cast to the modules' dtype)

    mean, std = inputs.arrays["spec/observation_mean"], inputs.arrays["spec/observation_std"]
    if not config["normalize_observations"]:  # TD3: states as observed
        mean, std = np.zeros_like(mean), np.ones_like(std)
    buffer = OneBatch(standardized_batch(inputs.tree("batch"), mean, std, dtype))
    draws = iter(inputs.draws("target_noise"))

    def randn_like(tensor):
        draw = torch.from_numpy(next(draws)).to(dtype)
        assert draw.shape == tensor.shape, f"draw {tuple(draw.shape)} for a {tuple(tensor.shape)} tensor"
        return draw

    losses = {"critic_loss": [], "actor_loss": []}
    after_1 = None
    with fixture.LossRecorder(torch) as recorder, mock.patch.object(torch, "randn_like", randn_like):
        for step in range(inputs.steps):
            policy.train(buffer, batch_size=buffer.size)
            values = recorder.take()
            losses["critic_loss"].append(values[0])
            losses["actor_loss"].append(values[1] if len(values) > 1 else np.nan)
            if step == 0:
                after_1 = copy.deepcopy(parameters(policy))
    assert next(draws, None) is None, "the reference used fewer draws than the updates were given"
    return losses, after_1, parameters(policy)


def narrow_layers(reference, config: dict, dtype: torch.dtype) -> None:
    """The reference module's 256-wide layers built `hidden_dims` wide, in `dtype`, on one thread."""
    torch.set_num_threads(1)
    torch.set_default_dtype(dtype)
    widths = set(config["hidden_dims"])
    assert len(config["hidden_dims"]) == 2 and len(widths) == 1, "the reference has two hidden layers of one width"
    assert config["actor_lr"] == config["critic_lr"] == 3e-4, "the reference's learning rates are 3e-4"
    assert not config["critic_layer_norm"], "the reference's critics have no LayerNorm"
    reference.nn = NarrowLayers(widths.pop())


def main() -> None:
    args = fixture.arguments(__doc__.splitlines()[0])
    dtype = torch.float64 if args.float64 else torch.float32
    inputs = fixture.Inputs(args.inputs)
    config, meta = inputs.config, inputs.meta
    sys.path.insert(0, str(args.reference))
    import TD3_BC as reference

    assert config["behavior_cloning"] and config["normalize_observations"], "TD3+BC's settings"
    narrow_layers(reference, config, dtype)
    policy = reference.TD3_BC(meta["observation_dim"], meta["action_dim"], max_action=1.0, discount=config["discount"],
                              tau=config["tau"], policy_noise=config["policy_noise"], noise_clip=config["noise_clip"],
                              policy_freq=config["policy_frequency"], alpha=config["alpha"])
    losses, after_1, after_all = train(policy, inputs, dtype)

    fixture.write(
        args, inputs, repository="sfujim/TD3_BC", versions={"torch": torch.__version__, "numpy": np.__version__},
        why="the authors' code (Fujimoto & Gu, 2021)",
        losses=losses, after_1=after_1, after_all=after_all,
        tolerance={"losses": 1e-4, "after_1": 1e-4, "after_all": 1e-4, **fixture.TOLERANCE_NOTE},
        injected=["target policy smoothing noise: torch.randn_like(action), one (batch, action_dim) draw per update"],
        not_injected=[],
        deviations=[],
        notes=[(f"hidden layers {config['hidden_dims']} instead of the reference's hard-coded (256, 256), to keep the "
               "fixture small: the adapter builds its nn.Linear(256) layers narrower, its code unchanged"),
               ("states standardized by the adapter before the reference sees them (as the reference's main.py does "
               "for the whole dataset); o2o standardizes inside its update with the same mean and std"),
               "one batch for every update (the reference's replay buffer is a stub returning it)"],
    )


if __name__ == "__main__":
    main()
