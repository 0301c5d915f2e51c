"""LB-SAC parity: the authors' `SACN` (tinkoff-ai/lb-sac, lb_sac/sac.py and lb_sac/networks.py, PyTorch) on o2o's
initial parameters, batch and draws.

    python benchmarks/parity/lbsac.py --reference /work/refs/lb-sac --inputs INPUTS [--as-is]

What the adapter does to the reference:
- gym and d4rl (imported by lb_sac/utils.py for its dataset and evaluation helpers) are stubbed; its Actor and
  EnsembleCritic are built as its train.py builds them (three hidden layers of `hidden_dim`, here o2o's width; no
  LayerNorm, no EDAC initialisation: the LB-SAC configs' settings) and SACN with the config's learning rates;
- o2o's initial parameters are copied into its actor (o2o's output layer: the first action_dim columns are its `mu`,
  the others its `log_sigma`), critics and target critics, and log alpha;
- `torch.distributions.Normal.rsample` returns loc + the injected standard normal draw * scale: a ~ pi(s) for its alpha
  loss and again for its actor loss (the same draw for both: o2o draws once for both losses), a' ~ pi(s') for the
  target;
- the losses are the values `backward()` is called on.

Its `update` steps alpha, then the actor (on the new alpha and the critics before their step), then the critics (their
target on the stepped actor and alpha), then the target critics; its critic loss is the mean over the critics
(`edac_style_critic_loss=False`, the LB-SAC configs' default). o2o steps the critics (target on the actor and alpha
before their step), the targets, then the actor (on the stepped critics and the old alpha) and the temperature, and
sums the critics' losses (EDAC's form). Its log pi's tanh correction is log(1 - tanh(u)^2 + 1e-6) (a literal in
Actor.forward), o2o's the exact log(1 - tanh(u)^2). By default the adapter aligns all three: its loop calls the
reference's own `_critic_loss`, `_alpha_loss` and `_actor_loss` and optimizers in o2o's order, with
`edac_style_critic_loss=True` (the reference's own switch for the sum), and lb_sac/networks.py sees a `torch` whose
`log(x)` is log(x - 1e-6) (`ExactTanhCorrection`; that line is its only torch.log). `--as-is` calls `update()` with the
LB-SAC configs' settings, unchanged: `lbsac-as-is.npz`.
"""

from __future__ import annotations

import contextlib
import copy
import sys
from unittest import mock

import fixture
import numpy as np
import torch

# After 100 updates. o2o's Adam (optax) computes its bias corrections 1 - beta^t in float32, where 0.999 is off by
# 1.3e-8, so its steps are ~6.5e-6 shorter than the reference's (torch computes them in float64). At LB-SAC's learning
# rate this fixture is that sensitive: the reference itself, its learning rates scaled by 1 - 6.5e-6, moves its actor by
# 9e-3 of its norm over 100 updates (its losses by < 1e-4). With exact bias corrections o2o matches within 1e-4
# everywhere (tests/test_parity.py, test_the_float32_gap_is_optax_adam_bias_correction), in float64 to ~1e-15.
AFTER_ALL_TOLERANCE = 3e-2
TANH_EPSILON = 1e-6  # Actor.forward: log(1 - tanh_action.pow(2) + 1e-6)
TRUNK = ["trunk.0", "trunk.3", "trunk.6"]  # Linear, Identity (no LayerNorm), ReLU, three times
CRITIC = ["ensemble.0", "ensemble.3", "ensemble.6", "ensemble.9"]


def tensor(x) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x))


def actor_to_torch(mlp: dict, action_dim: int, trunk: list[str] = TRUNK) -> dict[str, torch.Tensor]:
    """o2o's tanh-Gaussian actor (one output layer, mean then log-std) as CORL-style `trunk` Linear layers and separate
    `mu` and `log_sigma` layers (LB-SAC's Actor; RO2O's)."""
    out = {}
    for i, name in enumerate(trunk):
        out[f"{name}.weight"] = tensor(mlp[f"Dense_{i}"]["kernel"].T)
        out[f"{name}.bias"] = tensor(mlp[f"Dense_{i}"]["bias"])
    kernel, bias = mlp[f"Dense_{len(trunk)}"]["kernel"], mlp[f"Dense_{len(trunk)}"]["bias"]
    out["mu.weight"], out["mu.bias"] = tensor(kernel[:, :action_dim].T), tensor(bias[:action_dim])
    out["log_sigma.weight"], out["log_sigma.bias"] = tensor(kernel[:, action_dim:].T), tensor(bias[action_dim:])
    return out


def actor_from_torch(actor: torch.nn.Module, trunk: list[str] = TRUNK) -> dict:
    state = {k: v.numpy() for k, v in actor.state_dict().items()}
    mlp = {f"Dense_{i}": {"kernel": state[f"{name}.weight"].T.copy(), "bias": state[f"{name}.bias"].copy()}
           for i, name in enumerate(trunk)}
    mlp[f"Dense_{len(trunk)}"] = {
        "kernel": np.concatenate([state["mu.weight"].T, state["log_sigma.weight"].T], axis=1),
        "bias": np.concatenate([state["mu.bias"], state["log_sigma.bias"]])}
    return {"MLP_0": mlp}


def critics_to_torch(mlp: dict, layers: list[str] = CRITIC) -> dict[str, torch.Tensor]:
    """o2o's vmapped critics (kernel (N, in, out), bias (N, out)) as VectorizedLinear weight (N, in, out) and bias
    (N, 1, out), the layers named `layers`."""
    out = {}
    for i, name in enumerate(layers):
        out[f"{name}.weight"] = tensor(mlp[f"Dense_{i}"]["kernel"])
        out[f"{name}.bias"] = tensor(mlp[f"Dense_{i}"]["bias"][:, None, :])
    return out


def critics_from_torch(module: torch.nn.Module, layers: list[str] = CRITIC) -> dict:
    state = module.state_dict()
    return {"VmapCritic_0": {"MLP_0": {f"Dense_{i}": {"kernel": state[f"{name}.weight"].numpy().copy(),
                                                      "bias": state[f"{name}.bias"].numpy()[:, 0, :].copy()}
                                       for i, name in enumerate(layers)}}}


def parameters(agent, trunk: list[str] = TRUNK, layers: list[str] = CRITIC) -> dict:
    """o2o's SAC state fields from a CORL-style agent's actor, critic, target critic and log alpha."""
    return {"actor": actor_from_torch(agent.actor, trunk), "critic": critics_from_torch(agent.critic, layers),
            "log_temperature": {"log_temperature": agent.log_alpha.detach().numpy()[0].copy()},
            "target_critic_params": critics_from_torch(agent.target_critic, layers)}


def set_log_alpha(agent, value, dtype: torch.dtype, lr: float):
    """A CORL-style agent's log alpha set to o2o's initial `value` (and alpha with it). Its log alpha is a float32
    tensor whatever the default dtype: in float64 it is rebuilt as the agent builds it, and its new Adam returned (the
    caller puts it where the agent keeps it); else None."""
    optimizer = None
    if dtype == torch.float64:
        agent.log_alpha = agent.log_alpha.detach().to(dtype).requires_grad_(True)
        optimizer = torch.optim.Adam([agent.log_alpha], lr=lr)
    with torch.no_grad():
        agent.log_alpha.copy_(torch.as_tensor(value).reshape(1))
    agent.alpha = agent.log_alpha.exp().detach()
    return optimizer


def step(optimizer, loss) -> None:
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def update_in_o2o_order(agent, batch, soft_update) -> None:
    """The reference's losses and optimizers in o2o's order: the critics (target on the actor and alpha before their
    step) and the target critics, then the actor loss (on the stepped critics and the old alpha) and the alpha loss (on
    the actor before its step, the same draw), then the actor and alpha steps."""
    state, action, reward, next_state, next_action, done = batch
    critic_loss, _ = agent._critic_loss(state, action, reward, next_state, next_action, done)
    step(agent.critic_optim, critic_loss)
    with torch.no_grad():
        soft_update(agent.target_critic, agent.critic, tau=agent.tau)
    alpha_loss, _ = agent._alpha_loss(state)
    actor_loss, _ = agent._actor_loss(state)
    step(agent.actor_optim, actor_loss)
    step(agent.alpha_optim, alpha_loss)
    agent.alpha = agent.log_alpha.exp().detach()


class ExactTanhCorrection:
    """torch as lb_sac/networks.py sees it (its module-level `torch`), but for `log(x)` = log(x - 1e-6): its
    log(1 - tanh(u)^2 + 1e-6) becomes log(1 - tanh(u)^2), o2o's correction (computed directly, which float32 resolves
    while |u| stays moderate, as it does here)."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def log(x: torch.Tensor) -> torch.Tensor:
        return torch.log(x - TANH_EPSILON)


class InjectedRsample:
    """Normal.rsample while active: loc + the next injected draw * scale (torch's own expression)."""

    def __init__(self, dtype: torch.dtype):
        self.dtype, self.order = dtype, []

    def rsample(self, distribution, sample_shape=torch.Size()):
        assert self.order, "the reference drew more often than the update was given draws for"
        draw = torch.from_numpy(self.order.pop(0)).to(self.dtype)
        assert tuple(sample_shape) == () and draw.shape == distribution.loc.shape
        return distribution.loc + draw * distribution.scale


def main() -> None:
    args = fixture.arguments(__doc__.splitlines()[0],
                             ("--as-is", "the reference's update() as the LB-SAC configs run it (fixture lbsac-as-is)"))
    inputs = fixture.Inputs(args.inputs)
    config, meta = inputs.config, inputs.meta
    action_dim = meta["action_dim"]
    dtype = torch.float64 if args.float64 else torch.float32
    fixture.stub_training_imports("gym", "d4rl")
    sys.path.insert(0, str(args.reference))
    from lb_sac import networks
    from lb_sac.networks import Actor, EnsembleCritic
    from lb_sac.sac import SACN
    from lb_sac.utils import soft_update

    torch.set_num_threads(1)
    torch.set_default_dtype(dtype)
    widths = set(config["hidden_dims"])
    assert len(config["hidden_dims"]) == 3 and len(widths) == 1, "the reference has three hidden layers of one width"
    assert config["critic_subset"] is None and config["backup_entropy"] and not config["normalize_observations"]
    assert not config["critic_layer_norm"] and not config["actor_uses_mean_q"] and config["eta"] == 0.0
    assert config["target_entropy_per_action_dim"] == -1.0 and config["initial_temperature"] == 1.0
    width = widths.pop()
    actor = Actor(meta["observation_dim"], action_dim, width, max_action=1.0)
    critic = EnsembleCritic(meta["observation_dim"], action_dim, width, config["num_critics"])
    init = inputs.tree("init")
    actor.load_state_dict(actor_to_torch(init["actor"]["MLP_0"], action_dim))
    critic.load_state_dict(critics_to_torch(init["critic"]["VmapCritic_0"]["MLP_0"]))
    agent = SACN(actor, critic, gamma=config["discount"], tau=config["tau"], actor_lr=config["actor_lr"],
                 critic_lr=config["critic_lr"], alpha_lr=config["temperature_lr"],
                 edac_style_critic_loss=not args.as_is)
    assert agent.target_entropy == -action_dim
    agent.alpha_optim = set_log_alpha(agent, init["log_temperature"]["log_temperature"], dtype,
                                      config["temperature_lr"]) or agent.alpha_optim

    raw = inputs.tree("batch")
    as_tensor = lambda x: torch.from_numpy(np.ascontiguousarray(x)).to(dtype)
    batch = [as_tensor(raw[k]) for k in ("observations", "actions", "rewards", "next_observations", "next_actions",
                                         "dones")]  # OfflineReplayBuffer.random_batch's order; rewards, dones (batch,)
    actor_draws, next_draws = inputs.draws("actor_action_noise"), inputs.draws("next_action_noise")
    normal = InjectedRsample(dtype)
    losses = {"critic_loss": [], "actor_loss": [], "temperature_loss": []}
    after_1 = None
    exact = mock.patch.object(networks, "torch", ExactTanhCorrection()) if not args.as_is else contextlib.nullcontext()
    with fixture.LossRecorder(torch) as recorder, exact, \
            mock.patch.object(torch.distributions.Normal, "rsample", lambda d, s=torch.Size(): normal.rsample(d, s)):
        for t in range(inputs.steps):
            if args.as_is:  # alpha loss, actor loss, critic target
                normal.order = [actor_draws[t], actor_draws[t], next_draws[t]]
                agent.update(batch)
                alpha, actor_value, critic_value = recorder.take()
            else:  # critic target, alpha loss, actor loss
                normal.order = [next_draws[t], actor_draws[t], actor_draws[t]]
                update_in_o2o_order(agent, batch, soft_update)
                critic_value, actor_value, alpha = recorder.take()
            assert not normal.order, "the reference drew less often than the update was given draws for"
            for name, value in zip(losses, (critic_value, actor_value, alpha)):
                losses[name].append(value)
            if t == 0:
                after_1 = copy.deepcopy(parameters(agent))

    n = config["num_critics"]
    order = {"name": "update order",
             "reference": "alpha, then the actor (on the new alpha and the critics before their step), then the "
                          "critics (target on the stepped actor and the new alpha), then the target critics "
                          "(SACN.update; CORL's SAC-N and EDAC step in the same order)",
             "o2o": "the critics (target on the actor and alpha before their step), the target critics, then the actor "
                    "(on the stepped critics and the old alpha) and the temperature (sac.critic_then_actor)",
             "effect": "with the two below: the actor loss 1.5% apart over 100 updates, the networks 2e-3 (target "
                       "critic) to 3e-2 (actor)"}
    mean = {"name": "critic loss reduction",
            "reference": "mean over the critics and the batch (edac_style_critic_loss=False in the LB-SAC configs)",
            "o2o": "sum over the critics of the mean over the batch (EDAC's form, ensemble_squared_error)",
            "effect": f"critic_loss and its gradient {n} (num_critics) times the reference's; Adam's steps are the "
                      "same but for its epsilon (1e-8 against gradients of 1e-3 and more)"}
    as_is = None
    if args.as_is:
        as_is = ("kept in lbsac-as-is.npz: tests/test_parity.py shows that o2o's own pieces in the reference's order, "
                 "with its critics' loss a mean and the 1e-6 in its tanh correction, match it")
        order["fixture"] = mean["fixture"] = as_is
    else:
        order["fixture"] = ("aligned: the adapter's loop calls the reference's _critic_loss, _alpha_loss and "
                            "_actor_loss and its optimizers in o2o's order (update_in_o2o_order)")
        mean["fixture"] = "aligned: edac_style_critic_loss=True, the reference's own switch for the sum"
    fixture.write(
        args, inputs, name="lbsac-as-is" if args.as_is else None, kind="deviation" if args.as_is else "parity",
        repository="tinkoff-ai/lb-sac", versions={"torch": torch.__version__, "numpy": np.__version__},
        why=("the authors' code (Nikulin et al., 2022; PyTorch, not JAX): its SACN, Actor and EnsembleCritic import "
             "with torch 2.13 once gym and d4rl are stubbed"),
        losses=losses, after_1=after_1, after_all=parameters(agent),
        tolerance={"losses": 1e-4, "after_1": 1e-4, "after_all": AFTER_ALL_TOLERANCE, **fixture.TOLERANCE_NOTE},
        injected=["a ~ pi(s): torch.distributions.Normal.rsample in Actor.forward, one (batch, action_dim) standard "
                  "normal per update, given to both of the reference's samples (alpha loss, actor loss; o2o draws once "
                  "for both: sac.actor_action_noise_draw)",
                  "a' ~ pi(s') for the target: Normal.rsample, one (batch, action_dim) draw per update "
                  "(o2o: sac.next_action_noise_draw)"],
        not_injected=["torch.rand_like in SACN.update: uniform actions for a logged Q spread only (as-is runs)"],
        deviations=[
            order, mean,
            {"name": "log pi's tanh correction",
             "reference": "log(1 - tanh(u)^2 + 1e-6) (a literal in Actor.forward)",
             "o2o": "2 (log 2 - u - softplus(-2u)), the exact log(1 - tanh(u)^2)",
             "effect": "none while 1 - tanh(u)^2 >> 1e-6; where the policy saturates the reference's log pi is "
                       "capped (log 1e-6 = -13.8 per action dimension), o2o's exact. With the LB-SAC configs' "
                       "initialisation (no EDAC init; o2o's Flax defaults on these inputs give |u| up to 10) the "
                       "first critic loss differs by 30%",
             "fixture": as_is if args.as_is else (
                 "aligned: networks.py's torch.log is log(x - 1e-6) while the reference runs "
                 "(ExactTanhCorrection)")},
            {"name": "critic LayerNorm (the hopper-medium preset only)",
             "reference": "nn.LayerNorm(hidden_dim) on the (critics, batch, hidden) tensor: one scale and bias shared "
                          "by all critics, epsilon 1e-5",
             "o2o": "a LayerNorm per critic (vmapped with the rest of each critic), epsilon 1e-6",
             "effect": "the same function at initialisation; the shared scale and bias take the sum of the critics' "
                       "gradients, o2o's each its own",
             "fixture": "not shown: the fixtures run without LayerNorm (the halfcheetah-medium setting)"},
        ],
        notes=["float32 tolerance after 100 updates 3e-2, the losses' and one update's 1e-4: o2o's Adam (optax) "
               "computes 1 - beta^t in float32, its steps ~6.5e-6 shorter than the reference's; the reference with its "
               "learning rates scaled by 1 - 6.5e-6 moves its own actor by 9e-3 over these 100 updates. With exact "
               "bias corrections o2o matches within 1e-4 everywhere (tests/test_parity.py)",
               "EDAC's initialisation for the initial parameters (o2o's lbsac leaves it off, as the LB-SAC configs): "
               "its small output layers keep the policy's pre-tanh samples where float32 resolves 1 - tanh(u)^2, which "
               "the reference computes directly (with Flax's initialisation |u| reaches 10 on these states); it "
               "changes nothing but the initial parameters, copied into the reference",
               f"hidden layers {config['hidden_dims']} and {n} critics (halfcheetah-medium's 4) instead of 3 x 256, to "
               "keep the fixture under 1 MB; the reference takes the width as an argument",
               f"batch {meta['batch_size']} instead of LB-SAC's 10,000 (the batch size only sets what is sampled); "
               f"learning rates {config['actor_lr']} as LB-SAC's configs",
               "states unnormalized on both sides (the LB-SAC configs leave normalize_state off)",
               "one batch for every update, in OfflineReplayBuffer.random_batch's order (rewards and dones (batch,))"],
    )


if __name__ == "__main__":
    main()
