"""Q-ensemble update speed: o2o's SAC-N and EDAC (N critics in one vmapped call, updates fused in `lax.scan`) against
a PyTorch-eager twin with the usual batched-matmul ensemble layer (CORL's), at N = 10 and N = 50, in the same run.

Run (nothing else busy on the machine):  pip install -e ".[bench]" && python benchmarks/bench_ensemble.py
Sizes: the papers' 3x256 MLPs, batch 256, observation 17, action 6 (HalfCheetah). Prints updates/s of each, their ratio,
the update's FLOPs as XLA counts them, and the share of the CPU's measured matmul rate (256x256 @ 256x256) it reaches.
"""

from __future__ import annotations

import argparse
import time

from bench_updates import CORES, fused_rate_and_flops, pinned  # pins the cores before JAX loads

import numpy as np  # noqa: E402

OBS, ACT, HIDDEN, LAYERS, BATCH, DATA = 17, 6, 256, 3, 256, 100_000


def dataset(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"observations": rng.normal(size=(DATA, OBS)).astype(np.float32),
            "actions": rng.uniform(-1, 1, size=(DATA, ACT)).astype(np.float32),
            "rewards": rng.normal(size=DATA).astype(np.float32),
            "next_observations": rng.normal(size=(DATA, OBS)).astype(np.float32),
            "dones": (rng.uniform(size=DATA) < 0.01).astype(np.float32)}


def jax_updates_per_second(algo: str, critics: int, chunk: int) -> tuple[float, float, float]:
    """(updates/s, FLOPs per update, the matmul rate beside the calls) of one seed, `chunk` updates per call."""
    from o2o.agents import Spec, get_algorithm

    agent, config = get_algorithm(algo, {"num_critics": str(critics)})
    return fused_rate_and_flops(agent, config, Spec.unnormalized(OBS, ACT), dataset(), chunk)


def torch_updates_per_second(critics: int, eta: float, updates: int) -> float:
    """SAC-N (eta = 0) or EDAC as CORL writes it: temperature, actor, then critic steps, eagerly."""
    import torch
    from torch import nn

    torch.set_num_threads(CORES)
    torch.manual_seed(0)

    class EnsembleLinear(nn.Module):
        def __init__(self, inputs: int, outputs: int, members: int):
            super().__init__()
            self.weight = nn.Parameter(torch.empty(members, inputs, outputs).uniform_(-inputs**-0.5, inputs**-0.5))
            self.bias = nn.Parameter(torch.full((members, 1, outputs), 0.1))

        def forward(self, x):  # (members, batch, inputs)
            return torch.baddbmm(self.bias, x, self.weight)

    def critic_net():
        layers, width = [], OBS + ACT
        for _ in range(LAYERS):
            layers += [EnsembleLinear(width, HIDDEN, critics), nn.ReLU()]
            width = HIDDEN
        return nn.Sequential(*layers, EnsembleLinear(width, 1, critics))

    def q_values(net, obs, act):  # obs, act: (batch, dim) or (members, batch, dim)
        x = torch.cat([obs, act], dim=-1)
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(critics, -1, -1)
        return net(x).squeeze(-1)

    actor = nn.Sequential(nn.Linear(OBS, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                          nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 2 * ACT))
    critic, target = critic_net(), critic_net()
    target.load_state_dict(critic.state_dict())
    log_alpha = torch.zeros(1, requires_grad=True)
    actor_opt, critic_opt = torch.optim.Adam(actor.parameters(), 3e-4), torch.optim.Adam(critic.parameters(), 3e-4)
    alpha_opt = torch.optim.Adam([log_alpha], 3e-4)
    data = {k: torch.from_numpy(v) for k, v in dataset().items()}

    def sample(obs):
        mean, log_std = actor(obs).chunk(2, dim=-1)
        dist = torch.distributions.Normal(mean, log_std.clamp(-5, 2).exp())
        u = dist.rsample()
        log_prob = dist.log_prob(u).sum(-1) - (2 * (np.log(2) - u - nn.functional.softplus(-2 * u))).sum(-1)
        return torch.tanh(u), log_prob

    def update():
        index = torch.randint(0, DATA, (BATCH,))
        obs, act, rew, next_obs, done = (data[k][index] for k in ("observations", "actions", "rewards",
                                                                   "next_observations", "dones"))
        pi, log_prob = sample(obs)
        alpha_loss = -(log_alpha * (log_prob.detach() - ACT)).mean()
        alpha_opt.zero_grad()
        alpha_loss.backward()
        alpha_opt.step()
        alpha = log_alpha.exp().detach()
        actor_loss = (alpha * log_prob - q_values(critic, obs, pi).min(0).values).mean()
        actor_opt.zero_grad()
        actor_loss.backward()
        actor_opt.step()
        with torch.no_grad():
            next_pi, next_log_prob = sample(next_obs)
            next_v = q_values(target, next_obs, next_pi).min(0).values - alpha * next_log_prob
            y = rew + 0.99 * (1 - done) * next_v
        loss = ((q_values(critic, obs, act) - y) ** 2).mean(1).sum()
        if eta:
            tiled_act = act.unsqueeze(0).expand(critics, -1, -1).clone().requires_grad_(True)
            q = q_values(critic, obs.unsqueeze(0).expand(critics, -1, -1), tiled_act)
            grads = torch.autograd.grad(q.sum(), tiled_act, create_graph=True)[0]
            grads = grads / (grads.norm(dim=-1, keepdim=True) + 1e-10)
            cos = torch.einsum("ibk,jbk->bij", grads, grads)
            loss = loss + eta * (cos.sum((1, 2)) - cos.diagonal(dim1=1, dim2=2).sum(-1)).mean() / (critics - 1)
        critic_opt.zero_grad()
        loss.backward()
        critic_opt.step()
        with torch.no_grad():
            for t, o in zip(target.parameters(), critic.parameters()):
                t.mul_(0.995).add_(0.005 * o)

    for _ in range(3):
        update()
    t = time.perf_counter()
    for _ in range(updates):
        update()
    return updates / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--critics", default="10,50", help="comma-separated ensemble sizes")
    parser.add_argument("--chunk", type=int, default=100, help="updates fused per JAX call")
    parser.add_argument("--torch-updates", type=int, default=40)
    args = parser.parse_args()
    print(f"{pinned()}; {LAYERS}x{HIDDEN} MLPs, batch {BATCH}; roofline: the matmul rate (256x256 @ 256x256) beside "
          "each row's timed calls")
    print(f"{'algorithm':9s} {'N':>3s} {'o2o upd/s':>10s} {'torch upd/s':>12s} {'ratio':>6s} {'GFLOP/upd':>10s} {'roofline':>9s}")
    for critics in (int(n) for n in args.critics.split(",")):
        for algo, eta in (("sacn", 0.0), ("edac", 1.0)):
            rate, flops, roofline = jax_updates_per_second(algo, critics, args.chunk)
            twin = torch_updates_per_second(critics, eta, args.torch_updates)
            print(f"{algo:9s} {critics:3d} {rate:10.1f} {twin:12.1f} {rate / twin:6.2f} {flops / 1e9:10.3f} "
                  f"{rate * flops / roofline:9.0%}", flush=True)


if __name__ == "__main__":
    main()
