"""RO2O parity: the authors' `RO2O` (BattleWen/RO2O, algorithms/offline/ro2o_mujoco.py, PyTorch, CORL's SAC-N file
with the paper's three terms) on o2o's initial parameters, batch and draws; the case `ro2o-antmaze` runs their
offline AntMaze LCB script (offline/ro2o_antmaze_LCB.py: per-critic targets, the LCB actor, the BC term), the case
`ro2o-antmaze-finetuning` their AntMaze fine-tuning (finetune/ro2o_ft_ant_LCB.py's update_online: SAC-N's losses with
those three changes, on 4 (r - 0.5) of the rewards, which its loop stores in the buffer).

    python benchmarks/parity/ro2o.py --reference /work/refs/RO2O --inputs INPUTS

What the adapter does to the reference:
- d4rl, gym, pyrallis, wandb and h5py (its training script's imports) are stubbed and the file is imported by its path;
  its Actor and VectorizedCritic are built as its train() builds them (three hidden layers of o2o's width) and RO2O
  with the case's settings; o2o's initial parameters are copied into them (o2o's actor output layer: the first
  action_dim columns are its `mu`, the others its `log_sigma`), and log alpha;
- draws: `torch.rand` (its get_noised_obs) returns the injected U(0, 1) offsets of each term, `Normal.rsample` the
  injected standard normals (a' ~ pi(s') for the target, a ~ pi(s + delta_k) in the pessimism term, a ~ pi(s) for its
  alpha loss and again for its actor loss: the same draw, as o2o's one sample serves both; the two samples its policy
  smoothness term makes and never reads get zeros);
- the Q-smoothness weight: get_qf_loss multiplies by the literal 0.0001; the case's weight (1, so that 100 updates
  show the term) multiplies its value by weight / 0.0001;
- its states standardized with the inputs' statistics, as its script standardizes the dataset before filling its
  buffer (o2o standardizes inside the update, with the same statistics, and perturbs the standardized states).

Its `update` steps alpha, then the actor (on the new alpha and the critics before their step), then the critics (their
target on the stepped actor and alpha), then the target critics (CORL's SAC-N order, LB-SAC's too); its log pi's tanh
correction is log(1 - tanh(u)^2 + 1e-6). The adapter aligns both as lbsac.py does: the reference's own `_critic_loss`,
`_alpha_loss`, `_actor_loss` and optimizers in o2o's order, and `torch.log` in its module is log(x - 1e-6).
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from unittest import mock

import fixture
import numpy as np
import torch
from lbsac import (ExactTanhCorrection, InjectedRsample, actor_to_torch, critics_to_torch, parameters,
                   set_log_alpha, step)

TRUNK = ["trunk.0", "trunk.2", "trunk.4"]  # Linear, ReLU, three times
CRITIC = ["critic.0", "critic.2", "critic.4", "critic.6"]
Q_SMOOTH_LITERAL = 1e-4  # get_qf_loss: noise_Q_loss_max = 0.0001 * noise_Q_loss_max
Q_SMOOTH_TAU_LITERAL = 0.2  # get_qf_loss: q_smooth_tau = 0.2
WEIGHTS = ("q_smooth_weight", "ood_weight", "policy_smooth_weight")  # o2o's names of eta_1, beta_ood, beta_policy
SCRIPTS = {"ro2o": "offline/ro2o_mujoco.py", "ro2o-antmaze": "offline/ro2o_antmaze_LCB.py",
           "ro2o-antmaze-finetuning": "finetune/ro2o_ft_ant_LCB.py"}  # case -> the authors' file


class InjectedRand:
    """torch.rand while active: the next injected U(0, 1) array, checked for the shape asked."""

    def __init__(self, dtype: torch.dtype):
        self.dtype, self.order = dtype, []

    def __call__(self, *size, **kwargs):
        assert self.order, "the reference drew more uniforms than the update was given"
        draw = torch.from_numpy(self.order.pop(0)).to(self.dtype)
        assert tuple(size) == tuple(draw.shape), f"torch.rand{size} for an injected {tuple(draw.shape)}"
        return draw


def update_in_o2o_order(agent, batch, soft_update, case: str) -> dict[str, float]:
    """The reference's losses and optimizers in o2o's order (lbsac.py's update_in_o2o_order, with RO2O's losses):
    critics and targets, then actor and alpha; returns the terms its losses return (offline: Q smoothness, pessimism
    and policy smoothness, each times its weight; AntMaze: the BC term, unweighted), by o2o's metric names."""
    state, action, reward, next_state, done = batch
    critic = agent._critic_loss(state, action, reward, next_state, done)
    step(agent.critic_optimizer, critic[0])
    with torch.no_grad():
        soft_update(agent.target_critic, agent.critic, tau=agent.tau)
    alpha_loss = agent._alpha_loss(state)
    actor = agent._actor_loss(state, action)
    step(agent.actor_optimizer, actor[0])
    step(agent.alpha_optimizer, alpha_loss)
    agent.alpha = agent.log_alpha.exp().detach()
    terms = {"ro2o": {"q_smoothness": critic[2], "ood_penalty": critic[3], "policy_smoothness": actor[2]},
             "ro2o-antmaze": {"q_smoothness": critic[2], "ood_penalty": critic[3], "bc_loss": actor[2],
                              "policy_smoothness": actor[3]},
             "ro2o-antmaze-finetuning": {"bc_loss": actor[2]}}[case]  # their return tuples
    return {name: float(term.detach()) for name, term in terms.items()}


def main() -> None:
    args = fixture.arguments(__doc__.splitlines()[0])
    inputs = fixture.Inputs(args.inputs)
    config, meta = inputs.config, inputs.meta
    action_dim, observation_dim, batch_size = meta["action_dim"], meta["observation_dim"], meta["batch_size"]
    n, case = config["num_perturbations"], inputs.meta["case"]
    offline, antmaze = not case.endswith("-finetuning"), case != "ro2o"
    dtype = torch.float64 if args.float64 else torch.float32
    fixture.stub_training_imports("d4rl", "gym", "pyrallis", "wandb", "h5py")
    path = args.reference / "algorithms" / SCRIPTS[case]
    spec = importlib.util.spec_from_file_location(path.stem, path)
    reference = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = reference
    spec.loader.exec_module(reference)

    torch.set_num_threads(1)
    torch.set_default_dtype(dtype)
    widths = set(config["hidden_dims"])
    assert len(config["hidden_dims"]) == 3 and len(widths) == 1, "the reference has three hidden layers of one width"
    assert config["critic_subset"] is None and config["backup_entropy"] and config["normalize_observations"]
    assert not config["critic_layer_norm"] and not config["actor_uses_mean_q"] and config["eta"] == 0.0
    assert config["per_critic_targets"] == antmaze and (config["actor_std_weight"] is not None) == antmaze
    assert (config["reward_scale"], config["reward_bias"]) == ((1.0, 0.0) if offline else (4.0, -2.0))
    assert offline or not any(config[weight] for weight in WEIGHTS), "its fine-tuning computes none of the three terms"
    assert config["target_entropy_per_action_dim"] == -1.0 and config["initial_temperature"] == 1.0
    assert config["q_smooth_tau"] == Q_SMOOTH_TAU_LITERAL
    width = widths.pop()
    actor = reference.Actor(observation_dim, action_dim, width, max_action=1.0)
    critic = reference.VectorizedCritic(observation_dim, action_dim, width, config["num_critics"])
    init = inputs.tree("init")
    actor.load_state_dict(actor_to_torch(init["actor"]["MLP_0"], action_dim, TRUNK))
    critic.load_state_dict(critics_to_torch(init["critic"]["VmapCritic_0"]["MLP_0"], CRITIC))
    settings = {"ro2o": {}, "ro2o-antmaze": {"beta": config["actor_std_weight"], "beta_bc": config["bc_weight"]},
                "ro2o-antmaze-finetuning": {"beta_online": config["actor_std_weight"], "beta_bc": config["bc_weight"]}}
    terms = dict(beta_policy=config["policy_smooth_weight"], beta_ood=config["ood_weight"],
                 q_smooth_eps=config["q_smooth_eps"], policy_smooth_eps=config["policy_smooth_eps"],
                 ood_smooth_eps=config["ood_smooth_eps"], sample_size=n, q_ood_uncertainty_reg=config["ood_uncertainty"],
                 q_ood_uncertainty_reg_min=config["ood_uncertainty_min"],
                 q_ood_uncertainty_decay=config["ood_uncertainty_decay"]) if offline else {}
    agent = reference.RO2O(
        actor=actor, actor_optimizer=torch.optim.Adam(actor.parameters(), lr=config["actor_lr"]),
        critic=critic, critic_optimizer=torch.optim.Adam(critic.parameters(), lr=config["critic_lr"]),
        gamma=config["discount"], tau=config["tau"], alpha_learning_rate=config["temperature_lr"], device="cpu",
        **terms, **settings[case])
    assert agent.target_entropy == -action_dim
    agent.alpha_optimizer = set_log_alpha(agent, init["log_temperature"]["log_temperature"], dtype,
                                          config["temperature_lr"]) or agent.alpha_optimizer
    qf_loss = reference.RO2O.get_qf_loss
    scale = config["q_smooth_weight"] / Q_SMOOTH_LITERAL if offline else 1.0

    raw = inputs.tree("batch")
    mean, std = (torch.from_numpy(inputs.arrays[f"spec/observation_{k}"]).to(dtype) for k in ("mean", "std"))
    tensor = lambda x: torch.from_numpy(np.ascontiguousarray(x)).to(dtype)  # noqa: E731
    rewards = tensor(raw["rewards"]) * config["reward_scale"] + config["reward_bias"]  # fine-tuning: 4 (r - 0.5)
    batch = [(tensor(raw["observations"]) - mean) / std, tensor(raw["actions"]),
             rewards[:, None] if offline else rewards, (tensor(raw["next_observations"]) - mean) / std,
             tensor(raw["dones"][:, None] if offline else raw["dones"])]  # ReplayBuffer.sample's; fine-tuning: sample's
    normal, uniform = InjectedRsample(dtype), InjectedRand(dtype)
    unread = [np.zeros((batch_size * n, action_dim), np.float32), np.zeros((batch_size, action_dim), np.float32)]
    first_action = np.zeros((batch_size, action_dim), np.float32)  # its fine-tuning critic loss samples, never reads
    losses = {}  # by name: the three losses, then the terms update_in_o2o_order returns for the case
    after_1 = None
    with fixture.LossRecorder(torch) as recorder, mock.patch.object(reference, "torch", ExactTanhCorrection()), \
            mock.patch.object(torch, "rand", uniform), \
            mock.patch.object(reference.RO2O, "get_qf_loss", lambda self, s, a: qf_loss(self, s, a) * scale), \
            mock.patch.object(torch.distributions.Normal, "rsample", lambda d, s=torch.Size(): normal.rsample(d, s)):
        for t in range(inputs.steps):
            actor_draw = inputs.draws("actor_action_noise")[t]
            # critic loss: a' ~ pi(s'), then a ~ pi(s + delta_k) in the pessimism term; alpha loss; actor loss; the
            # policy smoothness term's two unread samples
            if offline:
                normal.order = [inputs.draws("next_action_noise")[t], inputs.draws("ood_action_noise")[t],
                                actor_draw, actor_draw, *unread]
                uniform.order = [inputs.draws(name)[t] for name in ("q_smooth_perturbation", "ood_perturbation",
                                                                    "policy_smooth_perturbation")]
            else:
                normal.order = [inputs.draws("next_action_noise")[t], first_action, actor_draw, actor_draw]
            values = update_in_o2o_order(agent, batch, reference.soft_update, case)
            for name, weight in zip(("q_smoothness", "ood_penalty", "policy_smoothness"), WEIGHTS):
                if name in values:  # o2o's metrics: unweighted
                    values[name] /= config[weight]
            assert not normal.order and not uniform.order, "the reference drew less often than it was given draws"
            critic_value, actor_value, alpha = recorder.take()
            for name, value in {"critic_loss": critic_value, "actor_loss": actor_value, "temperature_loss": alpha,
                                **values}.items():
                losses.setdefault(name, []).append(value)
            if t == 0:
                after_1 = copy.deepcopy(parameters(agent, TRUNK, CRITIC))

    fixture.write(
        args, inputs, name=case, repository="BattleWen/RO2O", versions={"torch": torch.__version__, "numpy": np.__version__},
        why=("the authors' code (Wen et al.; PyTorch, a CORL single file): its RO2O trainer, Actor and "
             "VectorizedCritic import with torch 2.13 once its training script's imports (d4rl, gym, pyrallis, wandb, h5py) are "
             "stubbed"),
        losses=losses, after_1=after_1, after_all=parameters(agent, TRUNK, CRITIC),
        tolerance={"losses": 3e-4, **({"after_1": 1e-4, "after_all": 1e-4} if offline else
                                      {"after_1": 1e-3, "after_all": 3e-3}), **fixture.TOLERANCE_NOTE},
        injected=["a' ~ pi(s') for the target: torch.distributions.Normal.rsample, (batch, action_dim) per update "
                  "(o2o: sac.next_action_noise_draw)",
                  "the offsets of the Q-smoothness, pessimism and policy-smoothness terms: torch.rand(n, obs_dim) in "
                  "get_noised_obs, three per update (o2o: ro2o.q_smooth_perturbation_draw, ood_perturbation_draw, "
                  "policy_smooth_perturbation_draw)",
                  "a ~ pi(s + delta_k) in the pessimism term: Normal.rsample, (batch * n, action_dim) "
                  "(o2o: ro2o.ood_action_noise_draw)",
                  "a ~ pi(s): Normal.rsample, one (batch, action_dim) draw per update given to both of the reference's "
                  "samples (alpha loss, actor loss; o2o draws once for both: sac.actor_action_noise_draw)"],
        not_injected=["the two samples get_policy_loss makes and never reads (its KL terms read the Gaussians' means "
                      "and standard deviations): given zeros",
                      "torch.rand_like in RO2O.update: uniform actions for a logged Q spread only (update() is not "
                      "called)"],
        deviations=[
            {"name": "update order",
             "reference": "alpha, then the actor (on the new alpha and the critics before their step), then the "
                          "critics (target and pessimism term on the stepped actor and the new alpha), then the target "
                          "critics (RO2O.update, CORL's SAC-N order)",
             "o2o": "the critics (target and pessimism term on the actor and alpha before their step), the target "
                    "critics, then the actor (on the stepped critics and the old alpha) and the temperature "
                    "(sac.critic_then_actor)",
             "effect": "the order LB-SAC's code has too; measured there (lbsac-as-is.npz, with two other "
                       "differences): the actor loss 1.5% apart over 100 updates. Not measured for RO2O",
             "fixture": "aligned: the adapter's loop calls the reference's _critic_loss, _alpha_loss and _actor_loss "
                        "and its optimizers in o2o's order (update_in_o2o_order)"},
            {"name": "log pi's tanh correction",
             "reference": "log(1 - tanh(u)^2 + 1e-6) (a literal in Actor.forward)",
             "o2o": "2 (log 2 - u - softplus(-2u)), the exact log(1 - tanh(u)^2)",
             "effect": "none while 1 - tanh(u)^2 >> 1e-6 (SAC-N's and EDAC's fixtures: 1e-4 on the actor after 100 "
                       "updates)",
             "fixture": "aligned: the module's torch.log is log(x - 1e-6) while the reference runs "
                        "(lbsac.ExactTanhCorrection)"}],
        notes=["the three terms' losses are compared unweighted (o2o's metrics): the reference's values divided by "
               "their weights",
               "float32 tolerance of the losses 3e-4: the policy-smoothness term, a KL of Gaussians that nearly "
               "coincide (4e-8 at the first update), is computed by the reference as r - 1 - log r with r near 1, "
               "whose float32 rounding is of the size of the term (1.2e-4 apart over the 100 updates; o2o keeps the "
               "digits with expm1); in float64 the losses agree to 2e-9 (benchmarks/parity/float64.py)",
               "the case's offsets 0.3 and weights eta_1 = eta_3 = 1, eta_2 = 10 (the paper's 0.01, 1e-4, 1, 0.1) and "
               "lambda decaying by 0.01 per update to 0.5, so that each term and the floor of the decay move the "
               "networks within 100 updates",
               f"hidden layers {config['hidden_dims']}, {config['num_critics']} critics, batch {batch_size} and "
               f"{n} perturbations per state (the paper's 3 x 256, 10, 256 and 20) keep the fixture under 1 MB",
               "one batch for every update, in ReplayBuffer.sample's order (rewards and dones (batch, 1))",
               "eta_1 is a literal in get_qf_loss (0.0001, the README's beta_Qsmooth), o2o's q_smooth_weight with the "
               "same default; the case's weight 1 multiplies get_qf_loss's value by 1 / 0.0001 here",
               "MuJoCo fine-tuning is not in a fixture: the authors' update_online (algorithms/finetune/"
               "ro2o_ft_mujoco.py) computes the three terms and adds none (SAC-N's losses alone), on a replay buffer "
               "of online steps only, updating from 2,500 steps on; o2o follows the code (ro2o.online_overrides sets "
               "the three weights to 0; the registry's online recipe), though the paper describes the online phase "
               "as keeping the offline objective",
               *{"ro2o": [],
                 "ro2o-antmaze": ["AntMaze (offline/ro2o_antmaze_LCB.py, the README's umaze command): per-critic "
                                  "targets, the actor's -(mean_i + beta std_i) of Q_i - alpha log pi with beta "
                                  f"{config['actor_std_weight']}, and beta_bc {config['bc_weight']} times "
                                  "F.mse_loss(pi, action); the three terms as above (the README's command sets "
                                  "q_smooth_eps 0, which would leave that term 0: the case keeps 0.3)"],
                 "ro2o-antmaze-finetuning": [
                     "AntMaze fine-tuning (finetune/ro2o_ft_ant_LCB.py's update_online, its own RO2O class): "
                     "per-critic targets, the LCB actor (beta_online "
                     f"{config['actor_std_weight']}), beta_bc {config['bc_weight']}, no smoothness or pessimism term; "
                     "its loop stores 4 (r - 0.5) in its buffer: the reference is given those rewards, o2o the raw "
                     "ones with reward_scale 4 and reward_bias -2; its sample() returns rewards and dones (batch,)",
                     "its _critic_loss also samples pi(s) (first_action) and never reads it: given zeros",
                     "float32 tolerance of the parameters 1e-3 after one update and 3e-3 after 100: without the "
                     "smoothness terms the actor has a hidden unit (its third layer's bias, element 19) whose gradient "
                     "at the first update is at float32 rounding's scale (~1e-9, below Adam's eps 1e-8), so the two "
                     "sides' first Adam steps on it differ (2.5e-4 against 1e-5) and the difference carries through "
                     "the chain; in float64 the parameters agree to 1e-13 after 1 and 100 updates "
                     "(benchmarks/parity/float64.py)"]}[case]],
    )


if __name__ == "__main__":
    main()
