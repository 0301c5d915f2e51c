"""BC parity: CORL's `BC.train` (tinkoff-ai/CORL, algorithms/offline/any_percent_bc.py, PyTorch) on o2o's initial
parameters and batch.

    python benchmarks/parity/bc.py --reference /work/refs/CORL --inputs INPUTS

BC has no authors' code: the TD3+BC paper's BC baseline was not released with sfujim/TD3_BC, and CORL's single file
(BC and %BC) is the reimplementation the field compares against (its deterministic tanh policy, MSE loss, Adam 3e-4,
standardized states are what o2o's BC follows). The adapter: the file's training-script imports (d4rl, gym, wandb,
pyrallis) stubbed, its 256-wide layers built `hidden_dims` wide, o2o's initial parameters copied into its Actor, its
Adam built as its `train()` builds it (lr 3e-4), the one batch (states standardized with the dataset's statistics, as
its script does) for every update. No random draws.
"""

from __future__ import annotations

import copy
import sys

import fixture
import numpy as np
import torch
from torch_helpers import NarrowLayers, mlp_from_torch, mlp_to_torch, standardized_batch

LAYERS = ["net.0", "net.2", "net.4"]  # Linear, ReLU, Linear, ReLU, Linear, Tanh
ADAM_LR = 3e-4  # any_percent_bc.py, train(): torch.optim.Adam(actor.parameters(), lr=3e-4)


def main() -> None:
    args = fixture.arguments(__doc__.splitlines()[0])
    inputs = fixture.Inputs(args.inputs)
    config, meta = inputs.config, inputs.meta
    dtype = torch.float64 if args.float64 else torch.float32
    fixture.stub_training_imports("d4rl", "gym", "wandb", "pyrallis")
    sys.path.insert(0, str(args.reference / "algorithms" / "offline"))
    import any_percent_bc as reference

    torch.set_num_threads(1)
    torch.set_default_dtype(dtype)
    widths = set(config["hidden_dims"])
    assert len(config["hidden_dims"]) == 2 and len(widths) == 1, "the reference has two hidden layers of one width"
    assert config["actor_lr"] == ADAM_LR and config["normalize_observations"], "the reference's settings"
    reference.nn = NarrowLayers(widths.pop())
    actor = reference.Actor(meta["observation_dim"], meta["action_dim"], max_action=1.0)
    actor.load_state_dict(mlp_to_torch(inputs.tree("init")["actor"]["MLP_0"], LAYERS))
    bc = reference.BC(max_action=1.0, actor=actor, actor_optimizer=torch.optim.Adam(actor.parameters(), lr=ADAM_LR))

    batch = list(standardized_batch(inputs.tree("batch"), inputs.arrays["spec/observation_mean"],
                                    inputs.arrays["spec/observation_std"], dtype))
    losses, after_1 = {"actor_loss": []}, None
    for step in range(inputs.steps):
        losses["actor_loss"].append(bc.train(batch)["actor_loss"])
        if step == 0:
            after_1 = copy.deepcopy({"actor": {"MLP_0": mlp_from_torch(actor, LAYERS)}})

    fixture.write(
        args, inputs, repository="tinkoff-ai/CORL", versions={"torch": torch.__version__, "numpy": np.__version__},
        why=("no authors' code exists for the BC baseline; CORL's any_percent_bc.py is the maintained reimplementation "
             "the field compares against, and the one o2o's BC follows"),
        losses=losses, after_1=after_1, after_all={"actor": {"MLP_0": mlp_from_torch(actor, LAYERS)}},
        tolerance={"losses": 1e-4, "after_1": 1e-4, "after_all": 1e-4, **fixture.TOLERANCE_NOTE},
        injected=[], not_injected=[], deviations=[],
        notes=[(f"hidden layers {config['hidden_dims']} instead of the reference's hard-coded (256, 256), to keep the "
                "fixture small: the adapter builds its nn.Linear(256) layers narrower, its code unchanged"),
               "training-script imports stubbed (d4rl, gym, wandb, pyrallis): BC.train uses none of them",
               "one batch for every update; states standardized before the reference sees them"],
    )


if __name__ == "__main__":
    main()
