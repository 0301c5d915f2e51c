"""Online SAC speed: o2o's loop (per env step: a jitted in-place insert, then one jitted call for the UTD updates and
the next action) against a plain PyTorch-eager SAC loop with the same env, sizes and UTD, measured in the same run.

Run (nothing else busy on the machine):  pip install -e ".[bench]" && python benchmarks/bench_online.py
Hopper-v5, 256-256 MLPs, batch 256, UTD 1, learning from the first step. Prints env steps/s of both, their ratio, and
where the time goes (env stepping, policy inference, updates; o2o fuses inference with the updates in one call).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

THREADS = int(os.environ.get("O2O_BENCH_THREADS", "2"))
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + f" --xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={THREADS}"
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))

import numpy as np  # noqa: E402

ENV = "Hopper-v5"


def o2o_sac(steps: int, buffer_capacity: int | None = None) -> dict:
    from o2o.train import online

    with tempfile.TemporaryDirectory() as tmp:
        settings = online.settings_for("sac", env=ENV, steps=steps, seeds=1, utd=1, warmup_steps=0, eval_every=steps,
                                       eval_episodes=0, log_every=steps, out=f"{tmp}/run", buffer_capacity=buffer_capacity)
        s = online.train(settings, progress=False)
    learning = s["wall_seconds"] - s["compile_seconds"]
    return {"steps_per_second": (steps - 1) / learning, "env": s["env_seconds"] / learning,
            "inference": None, "updates": s["update_seconds"] / learning}


def torch_sac(steps: int) -> dict:
    import gymnasium as gym
    import torch
    from torch import nn

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    env = gym.make(ENV)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]

    def mlp(i, o):
        return nn.Sequential(nn.Linear(i, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, o))

    actor, q1, q2 = mlp(obs_dim, 2 * act_dim), mlp(obs_dim + act_dim, 1), mlp(obs_dim + act_dim, 1)
    tq1, tq2 = mlp(obs_dim + act_dim, 1), mlp(obs_dim + act_dim, 1)
    tq1.load_state_dict(q1.state_dict())
    tq2.load_state_dict(q2.state_dict())
    log_alpha = torch.zeros(1, requires_grad=True)
    actor_opt = torch.optim.Adam(actor.parameters(), 3e-4)
    critic_opt = torch.optim.Adam([*q1.parameters(), *q2.parameters()], 3e-4)
    alpha_opt = torch.optim.Adam([log_alpha], 3e-4)
    buf = {k: np.zeros((steps, d), np.float32) for k, d in (("o", obs_dim), ("a", act_dim), ("r", 1), ("o2", obs_dim), ("d", 1))}

    def policy(o):
        mean, log_std = actor(o).chunk(2, -1)
        std = log_std.clamp(-5, 2).exp()
        u = mean + std * torch.randn_like(mean)
        log_prob = torch.distributions.Normal(mean, std).log_prob(u).sum(-1) - (2 * (np.log(2) - u - nn.functional.softplus(-2 * u))).sum(-1)
        return torch.tanh(u), log_prob

    def update(size):
        idx = np.random.randint(0, size, 256)
        o, a, r, o2, d = (torch.as_tensor(buf[k][idx]) for k in ("o", "a", "r", "o2", "d"))
        r, d = r.squeeze(-1), d.squeeze(-1)
        alpha = log_alpha.exp().detach()
        with torch.no_grad():
            a2, lp2 = policy(o2)
            sa2 = torch.cat([o2, a2], 1)
            y = r + 0.99 * (1 - d) * (torch.min(tq1(sa2), tq2(sa2)).squeeze(-1) - alpha * lp2)
        sa = torch.cat([o, a], 1)
        critic_loss = ((q1(sa).squeeze(-1) - y) ** 2).mean() + ((q2(sa).squeeze(-1) - y) ** 2).mean()
        critic_opt.zero_grad()
        critic_loss.backward()
        critic_opt.step()
        pi, lp = policy(o)
        spi = torch.cat([o, pi], 1)
        actor_loss = (alpha * lp - torch.min(q1(spi), q2(spi)).squeeze(-1)).mean()
        actor_opt.zero_grad()
        actor_loss.backward()
        actor_opt.step()
        alpha_loss = (log_alpha * (-lp.detach() + act_dim)).mean()
        alpha_opt.zero_grad()
        alpha_loss.backward()
        alpha_opt.step()
        with torch.no_grad():
            for t, q in ((tq1, q1), (tq2, q2)):
                for pt, pq in zip(t.parameters(), q.parameters()):
                    pt.mul_(0.995).add_(pq, alpha=0.005)

    o, _ = env.reset(seed=0)
    spent = {"env": 0.0, "inference": 0.0, "updates": 0.0}
    start = time.perf_counter()
    for t in range(steps):
        t0 = time.perf_counter()
        with torch.no_grad():
            a = policy(torch.as_tensor(o, dtype=torch.float32)[None])[0][0].numpy()
        t1 = time.perf_counter()
        o2, r, term, trunc, _ = env.step(a)
        buf["o"][t], buf["a"][t], buf["r"][t], buf["o2"][t], buf["d"][t] = o, a, r, o2, float(term)
        o = env.reset()[0] if term or trunc else o2
        t2 = time.perf_counter()
        update(t + 1)
        t3 = time.perf_counter()
        spent["inference"] += t1 - t0
        spent["env"] += t2 - t1
        spent["updates"] += t3 - t2
    wall = time.perf_counter() - start
    return {"steps_per_second": steps / wall, **{k: v / wall for k, v in spent.items()}}


def raw_env_steps_per_second(steps: int = 5000) -> float:
    import gymnasium as gym

    env = gym.make(ENV)
    env.reset(seed=0)
    env.action_space.seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    import jax
    import torch

    print(f"threads: XLA intra-op {THREADS}, torch {THREADS} (torch {torch.__version__}, jax {jax.__version__}); "
          f"{ENV}, SAC 256-256, batch 256, UTD 1, {args.steps} env steps learning from the first")
    print(f"raw {ENV} steps/s (random actions): {raw_env_steps_per_second():,.0f}\n")
    ours, theirs = o2o_sac(args.steps), torch_sac(args.steps)
    # a D4RL-sized buffer must not slow the step (it did when insert and sampling shared one XLA program)
    ours_1m = o2o_sac(args.steps, buffer_capacity=1_000_000)
    header = f"{'loop':16} {'env steps/s':>12} {'env %':>7} {'inference %':>12} {'updates %':>10}"
    print(header)
    print("-" * len(header))
    for name, r in (("o2o (JAX)", ours), ("o2o, 1M buffer", ours_1m), ("PyTorch eager", theirs)):
        inference = "fused" if r["inference"] is None else f"{100 * r['inference']:.1f}"
        print(f"{name:16} {r['steps_per_second']:12,.0f} {100 * r['env']:7.1f} {inference:>12} {100 * r['updates']:10.1f}")
    print(f"\nratio o2o / PyTorch: {ours['steps_per_second'] / theirs['steps_per_second']:.2f}x; "
          f"o2o with a 1M buffer / o2o: {ours_1m['steps_per_second'] / ours['steps_per_second']:.2f}x")


if __name__ == "__main__":
    main()
