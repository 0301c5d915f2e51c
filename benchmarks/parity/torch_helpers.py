"""What the PyTorch adapters share: the references' modules built narrower than their hard-coded width, o2o's MLP
parameters in and out of torch Linear layers, the batch as their replay buffers return it."""

from __future__ import annotations

import numpy as np
import torch

REFERENCE_WIDTH = 256  # the references' hidden width, hard-coded in their modules


class NarrowLayers:
    """torch.nn as a reference module sees it (its module-level `nn`), but with its hard-coded `reference_width`-wide
    layers (256 in most) built `width` wide: the reference's own constructors run unchanged, on smaller layers
    (fixtures stay small)."""

    def __init__(self, width: int, reference_width: int = REFERENCE_WIDTH):
        self.width, self.reference_width = width, reference_width

    def __getattr__(self, name):
        return getattr(torch.nn, name)

    def Linear(self, fan_in: int, fan_out: int):
        narrow = lambda n: self.width if n == self.reference_width else n
        return torch.nn.Linear(narrow(fan_in), narrow(fan_out))


def mlp_to_torch(mlp: dict, names: list[str], member: int | None = None) -> dict[str, torch.Tensor]:
    """o2o's MLP_0/Dense_i (kernel (in, out); in an ensemble (members, in, out)) as the state dict entries of torch
    Linear layers `names[i]` (weight (out, in))."""
    out = {}
    for i, name in enumerate(names):
        kernel, bias = mlp[f"Dense_{i}"]["kernel"], mlp[f"Dense_{i}"]["bias"]
        if member is not None:
            kernel, bias = kernel[member], bias[member]
        out[f"{name}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.T))
        out[f"{name}.bias"] = torch.from_numpy(np.ascontiguousarray(bias))
    return out


def mlp_from_torch(module: torch.nn.Module, names: list[str]) -> dict:
    """The inverse of `mlp_to_torch` for one network."""
    state = module.state_dict()
    return {f"Dense_{i}": {"kernel": state[f"{name}.weight"].numpy().T.copy(),
                           "bias": state[f"{name}.bias"].numpy().copy()}
            for i, name in enumerate(names)}


def standardized_batch(batch: dict, mean: np.ndarray, std: np.ndarray, dtype: torch.dtype) -> tuple:
    """(states, actions, next_states, rewards (batch, 1), not_dones (batch, 1)) as tensors, states standardized with
    the dataset's mean and std, as the references' scripts do to the whole dataset before filling their buffers (o2o
    standardizes inside its update, with the same statistics)."""
    tensor = lambda x: torch.from_numpy(np.ascontiguousarray(x)).to(dtype)
    standardized = lambda x: (tensor(x) - tensor(mean)) / tensor(std)
    return (standardized(batch["observations"]), tensor(batch["actions"]), standardized(batch["next_observations"]),
            tensor(batch["rewards"][:, None]), tensor(1.0 - batch["dones"][:, None]))
