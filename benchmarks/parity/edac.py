"""SAC-N and EDAC parity: the authors' `SACTrainer.train_from_torch` (snu-mllab/EDAC, lifelong_rl/trainers/q_learning/
sac.py, PyTorch) on o2o's initial parameters, batch and draws.

    python benchmarks/parity/edac.py --reference /work/refs/EDAC --inputs INPUTS [--as-is]

The same trainer is SAC-N (eta <= 0) and EDAC (eta > 0); the inputs say which (`sacn.py` runs this file for sacn).
What the adapter does to the reference, and nothing else:
- the modules its training script doesn't need for an update (logging, plotting, timing: dateutil, tensorboardX,
  matplotlib, gtimer) are stubbed; its policy (TanhGaussianPolicy), critic ensemble (ParallelizedEnsembleFlattenMLP)
  and trainer are built as experiment_configs/configs/q_learning/sac_config.py builds them, `hidden_dims` wide;
- o2o's initial parameters are copied into its policy (o2o's output layer: the first action_dim columns are its
  last_fc, the mean, the others its last_fc_log_std), critics and target critics, and log alpha;
- its two draws per update, `Normal.sample` in TanhNormal.rsample (a ~ pi(s), for the policy and alpha losses) and in
  TanhNormal.sample (a' ~ pi(s'), for the target), return loc + scale * the injected standard normal draw;
- `torch.Tensor.backward` records the loss values (alpha, policy, then the critics' loss).

Two differences from o2o, both documented in the fixture's JSON. (1) Its update computes every loss on the networks as
they were before the update, then steps alpha, the policy, the critics and the target critics; o2o steps the critics
first and its actor loss reads the stepped critics (SAC's order in jaxrl; sac.critic_then_actor). (2) Its log pi adds
1e-6 inside the tanh correction, log(1 - tanh(u)^2 + 1e-6) (TanhNormal's epsilon); o2o's is exact. By default the
adapter aligns both: before each update it runs the reference's update on a deep copy of the trainer (same batch, same
draws) and the policy loss of the real update reads the copy's stepped critics (`qfs.sample`, called only there); and
TanhNormal's epsilon defaults to 0. `--as-is` runs the reference unchanged: `<algo>-as-is.npz`.
"""

from __future__ import annotations

import copy
import sys
import types
from unittest import mock

import fixture
import numpy as np
import torch
from torch_helpers import mlp_from_torch

STUBBED = ("dateutil", "dateutil.tz", "tensorboardX", "matplotlib", "matplotlib.pyplot", "gtimer")
HIDDEN = ["fc0", "fc1", "fc2", "fc3", "fc4"]
# After 100 updates. o2o's Adam (optax) computes its bias corrections 1 - beta^t in float32, where 0.999 is off by
# 1.3e-8, so its steps are ~6.5e-6 shorter than the reference's (torch computes them in float64); EDAC's actor amplifies
# that to ~2e-4 of its norm over 100 updates. With exact bias corrections o2o matches both fixtures to ~1e-7
# (tests/test_parity.py, test_the_float32_gap_is_optax_adam_bias_correction), in float64 to ~1e-16 (float64.py).
AFTER_ALL_TOLERANCE = {"sacn": 1e-4, "edac": 5e-4}


def policy_to_torch(mlp: dict, action_dim: int) -> dict[str, torch.Tensor]:
    """o2o's GaussianPolicy MLP (Dense_i; the last one's outputs are (mean, log_std)) as the policy's state dict
    entries fc0..., last_fc (mean) and last_fc_log_std."""
    layers = sorted(mlp, key=lambda name: int(name.split("_")[1]))
    tensor = lambda x: torch.from_numpy(np.ascontiguousarray(x))
    out = {}
    for name, layer in zip(HIDDEN, layers[:-1]):
        out[f"{name}.weight"], out[f"{name}.bias"] = tensor(mlp[layer]["kernel"].T), tensor(mlp[layer]["bias"])
    kernel, bias = mlp[layers[-1]]["kernel"], mlp[layers[-1]]["bias"]
    out["last_fc.weight"], out["last_fc.bias"] = tensor(kernel[:, :action_dim].T), tensor(bias[:action_dim])
    out["last_fc_log_std.weight"] = tensor(kernel[:, action_dim:].T)
    out["last_fc_log_std.bias"] = tensor(bias[action_dim:])
    return out


def policy_from_torch(policy: torch.nn.Module, depth: int) -> dict:
    mlp = mlp_from_torch(policy, HIDDEN[:depth] + ["last_fc"])
    log_std = mlp_from_torch(policy, ["last_fc_log_std"])["Dense_0"]
    last = mlp[f"Dense_{depth}"]
    last["kernel"] = np.concatenate([last["kernel"], log_std["kernel"]], axis=1)
    last["bias"] = np.concatenate([last["bias"], log_std["bias"]])
    return {"MLP_0": mlp}


def critics_to_torch(mlp: dict) -> dict[str, torch.Tensor]:
    """o2o's vmapped critics (kernel (N, in, out), bias (N, out)) as the ensemble's fc_i.W / last_fc.W (N, in, out) and
    .b (N, 1, out)."""
    layers = sorted(mlp, key=lambda name: int(name.split("_")[1]))
    names = HIDDEN[:len(layers) - 1] + ["last_fc"]
    out = {}
    for name, layer in zip(names, layers):
        out[f"{name}.W"] = torch.from_numpy(np.ascontiguousarray(mlp[layer]["kernel"]))
        out[f"{name}.b"] = torch.from_numpy(np.ascontiguousarray(mlp[layer]["bias"][:, None, :]))
    return out


def critics_from_torch(module: torch.nn.Module, depth: int) -> dict:
    state = module.state_dict()
    names = HIDDEN[:depth] + ["last_fc"]
    return {"VmapCritic_0": {"MLP_0": {f"Dense_{i}": {"kernel": state[f"{name}.W"].numpy().copy(),
                                                      "bias": state[f"{name}.b"].numpy()[:, 0, :].copy()}
                                       for i, name in enumerate(names)}}}


def parameters(trainer, depth: int) -> dict:
    return {"actor": policy_from_torch(trainer.policy, depth),
            "critic": critics_from_torch(trainer.qfs, depth),
            "log_temperature": {"log_temperature": trainer.log_alpha.detach().numpy()[0].copy()},
            "target_critic_params": critics_from_torch(trainer.target_qfs, depth)}


class InjectedNormal:
    """torch.distributions.Normal.sample while active: loc + scale * the next injected standard normal draw. The
    reference's update draws twice: a ~ pi(s) (rsample: Normal(0, 1).sample()), then a' ~ pi(s') (sample)."""

    def __init__(self, actor_draws: np.ndarray, next_draws: np.ndarray, dtype: torch.dtype):
        self.actor_draws, self.next_draws, self.dtype = actor_draws, next_draws, dtype
        self.step, self.order = 0, []

    def queue(self, step: int) -> None:
        """The draws of update `step`, in the order the reference makes them."""
        self.order = [self.actor_draws[step], self.next_draws[step]]

    def sample(self, distribution, sample_shape=torch.Size()):
        assert self.order, "the reference drew more than twice in one update"
        draw = torch.from_numpy(self.order.pop(0)).to(self.dtype)
        assert tuple(sample_shape) == () and draw.shape == distribution.loc.shape, (
            f"draw {tuple(draw.shape)} for a {tuple(distribution.loc.shape)} distribution")
        with torch.no_grad():
            return distribution.loc + distribution.scale * draw


def main() -> None:
    args = fixture.arguments(__doc__.splitlines()[0],
                             ("--as-is", "the reference's update as it is: its policy loss reads the critics before "
                                         "their step, its log pi has a 1e-6 (fixture <algo>-as-is)"))
    inputs = fixture.Inputs(args.inputs)
    config, meta = inputs.config, inputs.meta
    algo, depth, action_dim = meta["algo"], len(config["hidden_dims"]), meta["action_dim"]
    dtype = torch.float64 if args.float64 else torch.float32
    fixture.stub_training_imports(*STUBBED)
    sys.path.insert(0, str(args.reference))
    from lifelong_rl.models.networks import ParallelizedEnsembleFlattenMLP
    from lifelong_rl.policies.models.tanh_gaussian_policy import TanhGaussianPolicy
    from lifelong_rl.torch.distributions import TanhNormal
    from lifelong_rl.trainers.q_learning.sac import SACTrainer

    if not args.as_is:  # log pi's tanh correction without its 1e-6: log(1 - tanh(u)^2), as o2o's
        TanhNormal.__init__.__defaults__ = (0.0,)

    torch.set_num_threads(1)
    torch.set_default_dtype(dtype)
    assert config["actor_lr"] == config["temperature_lr"], "the reference's alpha steps with the policy's rate"
    assert config["critic_subset"] is None and config["backup_entropy"] and not config["normalize_observations"]
    assert not config["critic_layer_norm"] and not config["actor_uses_mean_q"]
    assert config["target_entropy_per_action_dim"] == -1.0 and config["initial_temperature"] == 1.0
    hidden = list(config["hidden_dims"])
    qfs, target_qfs = (ParallelizedEnsembleFlattenMLP(ensemble_size=config["num_critics"], hidden_sizes=hidden,
                                                      input_size=meta["observation_dim"] + action_dim, output_size=1,
                                                      layer_norm=None) for _ in range(2))
    policy = TanhGaussianPolicy(obs_dim=meta["observation_dim"], action_dim=action_dim, hidden_sizes=hidden,
                                layer_norm=None)
    for module in (qfs, target_qfs, policy):  # its ensemble layers make their biases float32 (`.float()`)
        module.to(dtype)
    init = inputs.tree("init")
    policy.load_state_dict({**policy.state_dict(), **policy_to_torch(init["actor"]["MLP_0"], action_dim)})
    for critics in (qfs, target_qfs):
        critics.load_state_dict(critics_to_torch(init["critic"]["VmapCritic_0"]["MLP_0"]))
    env = types.SimpleNamespace(action_space=types.SimpleNamespace(shape=(action_dim,)))
    trainer = SACTrainer(env=env, policy=policy, qfs=qfs, target_qfs=target_qfs, discount=config["discount"],
                         soft_target_tau=config["tau"], policy_lr=config["actor_lr"], qf_lr=config["critic_lr"],
                         target_entropy=-float(action_dim), eta=config["eta"] if config["eta"] > 0 else -1.0,
                         num_qs=config["num_critics"])
    with torch.no_grad():
        trainer.log_alpha.copy_(torch.as_tensor(init["log_temperature"]["log_temperature"]).reshape(1))

    batch = inputs.tree("batch")
    tensor = lambda x: torch.from_numpy(np.ascontiguousarray(x)).to(dtype)

    def torch_batch():  # a fresh one per update: EDAC's update marks the actions as requiring gradients
        return {"observations": tensor(batch["observations"]), "next_observations": tensor(batch["next_observations"]),
                "actions": tensor(batch["actions"]), "rewards": tensor(batch["rewards"][:, None]),
                "terminals": tensor(batch["dones"][:, None])}

    def train(trainer):  # TorchTrainer.train, on tensors of the run's dtype (its np_to_pytorch_batch casts to float32)
        trainer._num_train_steps += 1
        trainer.train_from_torch(torch_batch(), None)

    normal = InjectedNormal(inputs.draws("actor_action_noise"), inputs.draws("next_action_noise"), dtype)
    losses = {"temperature_loss": [], "actor_loss": [], "critic_loss": []}
    after_1 = None
    with fixture.LossRecorder(torch) as recorder, \
            mock.patch.object(torch.distributions.Normal, "sample", lambda d, s=torch.Size(): normal.sample(d, s)):
        for step in range(inputs.steps):
            if not args.as_is:  # the critics' step of this update, on a copy, for the policy loss to read
                stepped = copy.deepcopy(trainer)
                normal.queue(step)
                train(stepped)
                recorder.take()
                trainer.qfs.sample = stepped.qfs.sample
            normal.queue(step)
            train(trainer)
            assert not normal.order, "the reference drew fewer than two draws in an update"
            vars(trainer.qfs).pop("sample", None)
            for name, value in zip(losses, recorder.take(), strict=True):
                losses[name].append(value)
            if step == 0:
                after_1 = copy.deepcopy(parameters(trainer, depth))

    as_is = (f"kept in {algo}-as-is.npz: tests/test_parity.py shows that o2o with both deviations patched in (its "
             "actor reading the critics before their step, the 1e-6 in its tanh correction) matches it")
    fixture.write(
        args, inputs, name=f"{algo}-as-is" if args.as_is else None, kind="deviation" if args.as_is else "parity",
        repository="snu-mllab/EDAC", versions={"torch": torch.__version__, "numpy": np.__version__},
        why=("the authors' code (An et al., 2021): its trainer, policy and critic ensemble import with torch 2.13 once "
             "six logging/plotting/timing modules are stubbed, so CORL's reimplementation is not needed"),
        losses=losses, after_1=after_1, after_all=parameters(trainer, depth),
        tolerance={"losses": 1e-4, "after_1": 1e-4, "after_all": AFTER_ALL_TOLERANCE[algo], **fixture.TOLERANCE_NOTE},
        injected=["a ~ pi(s) for the policy and alpha losses: torch.distributions.Normal.sample in TanhNormal.rsample, "
                  "one (batch, action_dim) standard normal per update (o2o: sac.actor_action_noise_draw)",
                  "a' ~ pi(s') for the target: Normal.sample in TanhNormal.sample, one (batch, action_dim) draw per "
                  "update (o2o: sac.next_action_noise_draw)"],
        not_injected=[],
        deviations=[
            {"name": "which critics the actor loss reads",
             "reference": "the critics before the update's critic step (every loss is computed first, then alpha, "
                          "policy, critics and targets step)",
             "o2o": "the critics after their step (sac.critic_then_actor: critic step, target step, then actor and "
                    "temperature, as jaxrl's SAC)",
             "effect": "the actor's gradient comes from critics one step newer: the actor differs after one update, "
                       "every network after 100",
             "fixture": as_is if args.as_is else (
                 "aligned: each update's policy loss reads the critics after the update's critic step, taken from "
                 "the reference's own update run on a deep copy of the trainer (same batch, same draws)")},
            {"name": "log pi's tanh correction",
             "reference": "log(1 - tanh(u)^2 + 1e-6) (TanhNormal's epsilon)",
             "o2o": "2 (log 2 - u - softplus(-2u)), the exact log(1 - tanh(u)^2)",
             "effect": "relative 1e-6 / (1 - tanh(u)^2) on each term: 1e-4 at |u| = 3, more where the policy "
                       "saturates; here the actor differs by ~1e-4 after 100 updates (in float64 too)",
             "fixture": as_is if args.as_is else (
                 "aligned: TanhNormal's epsilon defaults to 0 (the reference then computes log(1 - tanh(u)^2) "
                 "directly, which float32 rounds where |u| is large; |u| stays small here)")},
        ],
        notes=[("float32 tolerance after 100 updates: " + {
                   "sacn": "1e-4", "edac": "5e-4: o2o's Adam (optax) computes 1 - beta^t in float32, its steps ~6.5e-6 "
                   "shorter than the reference's; EDAC's actor amplifies that to ~2e-4 over 100 updates. With exact "
                   "bias corrections o2o matches to ~1e-7 (tests/test_parity.py), in float64 to ~1e-16"}[algo]),
               f"hidden layers {config['hidden_dims']} and {config['num_critics']} critics instead of the paper's "
               "3 x 256 and 10 to 50 (500 for SAC-N), to keep the fixture under 1 MB; the reference takes both as "
               "arguments",
               "states unnormalized on both sides (the reference's script does not standardize them, nor does o2o's "
               f"{algo})",
               "one batch for every update, passed to train_from_torch (rewards and terminals as (batch, 1), as its "
               "replay buffer returns them)",
               "the policy loss's gradient also reaches the reference's log alpha (its alpha is not detached there); "
               "that gradient is discarded (alpha has already stepped; zero_grad before the next alpha loss)"],
    )


if __name__ == "__main__":
    main()
