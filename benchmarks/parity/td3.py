"""TD3 parity: the authors' `TD3.train` (sfujim/TD3, PyTorch) on o2o's initial parameters, batch and draws.

    python benchmarks/parity/td3.py --reference /work/refs/TD3 --inputs INPUTS

TD3+BC (sfujim/TD3_BC) is this code with a BC term in the actor loss: same modules, same `train` loop, same draw. So
the adapter is td3bc.py's (`td3bc.train`, `td3bc.narrow_layers`) on the `TD3` class, and does to the reference what that
one does, and nothing else: its 256-wide layers built `hidden_dims` wide, o2o's initial parameters copied in (twin
critic l1-l3 = o2o's member 0, the one the actor loss reads), a one-batch replay buffer (states as observed: neither
TD3 nor o2o's td3 standardizes them), `torch.randn_like` (target policy smoothing, one draw per update) returning the
injected draw, `torch.Tensor.backward` recording the losses.
"""

from __future__ import annotations

import sys

import fixture
import numpy as np
import td3bc
import torch

# TD3's actor loss -E[Q1(s, pi(s))] averages Q values of order 1 to about 0.01 from update 30 on (rewards N(0, 1)): its
# float32 relative error is cancellation, not math.
ACTOR_LOSS_TOLERANCE = 1e-3
ACTOR_LOSS_NOTE = (
    "losses compared to 1e-3, parameters to 1e-4: TD3's actor loss -E[Q1(s, pi(s))] averages Q values of order 1 to "
    "about 0.01 from update 30 on, so float32 rounding shows about 100 times larger in it than in the parameters. "
    "o2o's float32 actor losses are 6e-4 from its float64 ones (from update 71 on, where a few parameters whose "
    "gradient hovers near zero take Adam steps of a fraction of the learning rate the other way), the reference's "
    "1.5e-6; in float64 the two agree to 1.5e-15 (benchmarks/parity/float64.py)")


def main() -> None:
    args = fixture.arguments(__doc__.splitlines()[0])
    dtype = torch.float64 if args.float64 else torch.float32
    inputs = fixture.Inputs(args.inputs)
    config, meta = inputs.config, inputs.meta
    sys.path.insert(0, str(args.reference))
    import TD3 as reference

    assert not config["behavior_cloning"] and not config["normalize_observations"], "TD3's settings"
    td3bc.narrow_layers(reference, config, dtype)
    policy = reference.TD3(meta["observation_dim"], meta["action_dim"], max_action=1.0, discount=config["discount"],
                           tau=config["tau"], policy_noise=config["policy_noise"], noise_clip=config["noise_clip"],
                           policy_freq=config["policy_frequency"])
    losses, after_1, after_all = td3bc.train(policy, inputs, dtype)

    fixture.write(
        args, inputs, repository="sfujim/TD3", versions={"torch": torch.__version__, "numpy": np.__version__},
        why="the authors' code (Fujimoto, van Hoof & Meger, 2018)",
        losses=losses, after_1=after_1, after_all=after_all,
        tolerance={"losses": ACTOR_LOSS_TOLERANCE, "after_1": 1e-4, "after_all": 1e-4, **fixture.TOLERANCE_NOTE},
        injected=["target policy smoothing noise: torch.randn_like(action), one (batch, action_dim) draw per update"],
        not_injected=["exploration noise and the 25k random warm-up actions: the env loop's, not the update's"],
        deviations=[],
        notes=[(f"hidden layers {config['hidden_dims']} instead of the reference's hard-coded (256, 256), to keep the "
               "fixture small: the adapter builds its nn.Linear(256) layers narrower, its code unchanged"),
               "states as observed on both sides (TD3 standardizes nothing)",
               "one batch for every update (the reference's replay buffer is a stub returning it)",
               ACTOR_LOSS_NOTE],
    )


if __name__ == "__main__":
    main()
