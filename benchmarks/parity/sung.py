"""SUNG parity: the authors' `TD3.train` (guosyjlu/SUNG, TD3_BC/TD3.py and TD3_BC/vae.py, PyTorch) on o2o's initial
parameters, batch and draws, offline (its BC term on every sample at weight 1: TD3+BC with the VAE trained beside it)
and fine-tuning (`sung-finetuning`: the BC term on the samples whose policy actions the VAE finds rarest).

    python benchmarks/parity/sung.py --reference /work/refs/SUNG --inputs INPUTS

What the adapter does to the reference, and nothing else:
- its hard-coded layer widths (256 in actor and critic, 750 in the VAE) are built o2o's case widths (the fixture must
  stay small), its code unchanged; `TD3(..., constrained="greedy", filter_prob=FRACTION, lamda=WEIGHT, alpha=ALPHA)`
  as its main.py builds it with the case's values;
- o2o's initial parameters are copied into its actor, critic, their targets and its VAE (o2o's encoder output layer:
  the first latent_dim columns are its `mean`, the others its `log_std`);
- its replay buffer is a stub returning the one batch, states standardized as its OORB does;
- `torch.randn_like` returns the injected draws in the order train() makes them: the target policy smoothing noise,
  the VAE step's eps, and on actor steps the eps of u(s, pi(s)) (zeros where o2o draws none: offline, every sample is
  kept whatever u says);
- the losses are the values `backward()` is called on (critic, VAE, then actor on the delayed steps).
"""

from __future__ import annotations

import copy
import sys
from unittest import mock

import fixture
import numpy as np
import torch
from td3bc import ACTOR, Q1, Q2, OneBatch
from td3bc import parameters as td3_parameters
from torch_helpers import NarrowLayers, mlp_from_torch, mlp_to_torch, standardized_batch

VAE_WIDTH = 750  # vae.py's hidden_dim as TD3.__init__ builds it
ENCODER, DECODER = ["e1", "e2"], ["d1", "d2", "d3"]


def vae_to_torch(params: dict, latent: int) -> dict[str, torch.Tensor]:
    encoder, decoder = params["MLP_0"], params["MLP_1"]
    out = mlp_to_torch(encoder, ENCODER)
    kernel, bias = encoder["Dense_2"]["kernel"], encoder["Dense_2"]["bias"]
    for name, columns in (("mean", slice(0, latent)), ("log_std", slice(latent, None))):
        out[f"{name}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel[:, columns].T))
        out[f"{name}.bias"] = torch.from_numpy(np.ascontiguousarray(bias[columns]))
    return {**out, **mlp_to_torch(decoder, DECODER)}


def vae_from_torch(module: torch.nn.Module) -> dict:
    encoder, state = mlp_from_torch(module, ENCODER), module.state_dict()
    encoder["Dense_2"] = {"kernel": np.concatenate([state["mean.weight"].numpy().T, state["log_std.weight"].numpy().T],
                                                   axis=1),
                          "bias": np.concatenate([state["mean.bias"].numpy(), state["log_std.bias"].numpy()])}
    return {"MLP_0": encoder, "MLP_1": mlp_from_torch(module, DECODER)}


def parameters(policy) -> dict:
    return {**td3_parameters(policy), "vae": vae_from_torch(policy.vae)}


def main() -> None:
    args = fixture.arguments(__doc__.splitlines()[0])
    dtype = torch.float64 if args.float64 else torch.float32
    inputs = fixture.Inputs(args.inputs)
    config, meta = inputs.config, inputs.meta
    action_dim, batch_size = meta["action_dim"], meta["batch_size"]
    latent = config["vae_latent_per_action_dim"] * action_dim
    sys.path.insert(0, str(args.reference / "TD3_BC"))
    import TD3 as reference
    import vae as reference_vae

    torch.set_num_threads(1)
    torch.set_default_dtype(dtype)
    widths, vae_widths = set(config["hidden_dims"]), set(config["vae_hidden_dims"])
    assert len(config["hidden_dims"]) == 2 and len(widths) == 1, "the reference has two hidden layers of one width"
    assert len(config["vae_hidden_dims"]) == 2 and len(vae_widths) == 1, "its VAE has two hidden layers of one width"
    assert config["actor_lr"] == config["critic_lr"] == 3e-4 and config["vae_lr"] == 1e-3, "its learning rates"
    assert config["vae_latent_per_action_dim"] == 2 and config["vae_kl_weight"] == 0.5, "its VAE's latent and beta"
    assert config["normalize_observations"] and not config["critic_layer_norm"]
    reference.nn = NarrowLayers(widths.pop())
    reference_vae.nn = NarrowLayers(vae_widths.pop(), VAE_WIDTH)
    policy = reference.TD3(meta["observation_dim"], action_dim, max_action=1.0, discount=config["discount"],
                           tau=config["tau"], policy_noise=config["policy_noise"], noise_clip=config["noise_clip"],
                           policy_freq=config["policy_frequency"], constrained="greedy",
                           filter_prob=config["uncertain_fraction"], alpha=config["alpha"], lamda=config["bc_weight"])
    kept = int(batch_size * config["uncertain_fraction"])
    assert kept >= 1, "the reference keeps int(batch * filter_prob) samples"

    init = inputs.tree("init")
    actor = mlp_to_torch(init["actor"]["MLP_0"], ACTOR)
    critic = {**mlp_to_torch(init["critic"]["VmapCritic_0"]["MLP_0"], Q1, member=0),
              **mlp_to_torch(init["critic"]["VmapCritic_0"]["MLP_0"], Q2, member=1)}
    for module, state in ((policy.actor, actor), (policy.actor_target, actor), (policy.critic, critic),
                          (policy.critic_target, critic), (policy.vae, vae_to_torch(init["vae"], latent))):
        module.load_state_dict(state)  # strict: every parameter, every shape
    mean, std = inputs.arrays["spec/observation_mean"], inputs.arrays["spec/observation_std"]
    states, actions, next_states, rewards, not_dones = standardized_batch(inputs.tree("batch"), mean, std, dtype)
    buffer = OneBatch((states, actions, next_states, rewards, not_dones))  # OORB.sample's order

    ranked = kept < batch_size  # o2o draws u's eps only where it ranks the samples
    queue = []

    def randn_like(tensor):
        assert queue, "the reference drew more often than the update was given draws for"
        draw = torch.from_numpy(queue.pop(0)).to(dtype)
        assert draw.shape == tensor.shape, f"draw {tuple(draw.shape)} for a {tuple(tensor.shape)} tensor"
        return draw

    losses = {"critic_loss": [], "vae_loss": [], "actor_loss": []}
    after_1 = None
    with fixture.LossRecorder(torch) as recorder, mock.patch.object(torch, "randn_like", randn_like):
        for t in range(inputs.steps):
            queue[:] = [inputs.draws("target_noise")[t], inputs.draws("vae_noise")[t]]
            if (t + 1) % config["policy_frequency"] == 0:
                queue.append(inputs.draws("uncertainty_noise")[t] if ranked
                             else np.zeros((batch_size, latent), np.float32))
            policy.train(buffer, batch_size=batch_size)
            assert not queue, "the reference drew less often than the update was given draws for"
            values = recorder.take()
            for name, value in zip(losses, values + [np.nan] * (3 - len(values))):
                losses[name].append(value)
            if t == 0:
                after_1 = copy.deepcopy(parameters(policy))

    fixture.write(
        args, inputs, name=meta.get("case"), repository="guosyjlu/SUNG",
        versions={"torch": torch.__version__, "numpy": np.__version__},
        why=("the authors' code (Guo et al.; PyTorch, on the TD3+BC authors' TD3_BC.py): its TD3 class and VAE import "
             "with torch 2.13 as they are"),
        losses=losses, after_1=after_1, after_all=parameters(policy),
        tolerance={"losses": 1e-4, "after_1": 1e-4, "after_all": 1e-3, **fixture.TOLERANCE_NOTE},
        injected=["target policy smoothing noise: torch.randn_like(action), (batch, action_dim) per update "
                  "(o2o: td3_bc.target_noise_draw)",
                  "the VAE step's eps: torch.randn_like(std) in VAE.forward, (batch, latent) per update "
                  "(o2o: sung.vae_noise_draw)",
                  "u(s, pi(s))'s eps on actor steps: torch.randn_like(std) in VAE.elbo_loss, (batch, latent) "
                  + ("(o2o: sung.uncertainty_noise_draw)" if ranked else
                     "given zeros: with filter_prob 1 every sample is kept whatever u is, and o2o draws none")],
        not_injected=[],
        deviations=[],
        notes=["float32 tolerance after 100 updates 1e-3 (the losses' and one update's 1e-4): o2o's Adam (optax) "
               "computes its bias corrections 1 - beta^t in float32, torch in float64; the critics' hidden layers, "
               "whose gradients on this batch of 64 are near zero for some units, take that rounding as direction "
               "(offline: the critic 4.2e-4 apart; 1e-7 with exact corrections, tests/test_parity.py; float64 5e-16)",
               f"hidden layers {config['hidden_dims']} and the VAE's {config['vae_hidden_dims']} instead of the "
               "reference's hard-coded (256, 256) and (750, 750), to keep the fixture small: the adapter builds its "
               "nn.Linear layers narrower, its code unchanged",
               f"batch {batch_size}; BC weight {config['bc_weight']} on the {kept} samples of largest u(s, pi(s))"
               + (" (the authors' fine-tuning: 0.05 on 5%; a weight of 1 and 10% here so that the term moves the "
                  "fixture)" if ranked else " (every sample: TD3+BC, the offline phase)"),
               "states standardized by the adapter before the reference sees them (as its OORB does); o2o "
               "standardizes inside its update with the same mean and std",
               "fresh Adam states on both sides (the authors' fine-tuning loads the offline run's actor and critic "
               "Adam states; o2o's fine-tuning continues its offline state, Adam's included)",
               "one batch for every update (the reference's replay buffer is a stub returning it)"],
    )


if __name__ == "__main__":
    main()
