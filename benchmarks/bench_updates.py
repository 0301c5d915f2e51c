"""Offline update speed: o2o's fused JAX updates against a straightforward PyTorch-eager twin, in the same run.

Run (nothing else busy on the machine):  pip install -e ".[bench]" && python benchmarks/bench_updates.py
Sizes: 256-256 MLPs, batch 256, observation 17, action 6 (HalfCheetah). Prints:
- updates/s of o2o's IQL and TD3+BC (1 seed, 1000 updates fused per call) and of the PyTorch twin, and their ratio;
- the CPU's matmul FLOP/s measured here (JAX, 256x256 @ 256x256) and the share of it each update reaches;
- the share of a real `o2o train` run's wall time spent outside the fused updates (evaluation, logging, checkpoints).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

THREADS = int(os.environ.get("O2O_BENCH_THREADS", "2"))
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + f" --xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={THREADS}"
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

OBS, ACT, HIDDEN, BATCH, N = 17, 6, 256, 256, 100_000


def mlp_flops(inputs: int, outputs: int, batch: int = BATCH) -> int:
    """Multiply-add FLOPs of one forward pass of an inputs-256-256-outputs MLP."""
    return 2 * batch * (inputs * HIDDEN + HIDDEN * HIDDEN + HIDDEN * outputs)


def update_flops(algo: str) -> float:
    """Matmul FLOPs of one update (forward = 1, backward = 2 forward passes)."""
    actor, critic, value = mlp_flops(OBS, ACT), mlp_flops(OBS + ACT, 1), mlp_flops(OBS, 1)
    if algo == "iql":
        # value fwd+bwd; 2 target critics fwd; 2 critics fwd+bwd; value fwd on s and s'; actor fwd+bwd
        return 3 * value + 2 * critic + 2 * 3 * critic + 2 * value + 3 * actor
    # TD3+BC: target actor fwd, 2 target critics fwd, 2 critics fwd+bwd; every 2nd step actor fwd+bwd through critic 1
    return actor + 2 * critic + 2 * 3 * critic + 0.5 * (3 * actor + 3 * critic)


def matmul_flops_per_second() -> float:
    a = jnp.ones((256, 256), jnp.float32)
    f = jax.jit(lambda a: jax.lax.fori_loop(0, 200, lambda i, x: (x @ a) * 0.5, a))
    f(a).block_until_ready()
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        f(a).block_until_ready()
        best = max(best, 200 * 2 * 256**3 / (time.perf_counter() - t))
    return best


def fused_rate_and_flops(agent, config, spec, data: dict, chunk: int, calls: int = 3) -> tuple[float, float]:
    """(updates/s, FLOPs per update as XLA counts them) of one seed training on `data` (NumPy arrays) through the offline
    loop's fused chunk of `chunk` updates: the best of `calls` timed calls after a warm-up call."""
    from o2o.train.offline import make_train_chunk

    states = jax.vmap(lambda k: agent.init(k, spec, config))(jax.random.split(jax.random.PRNGKey(0), 1))
    states = jax.tree.map(jnp.copy, states)
    data = {k: jnp.asarray(v) for k, v in data.items()}
    train = make_train_chunk(agent, config, chunk)
    keys = jax.random.split(jax.random.PRNGKey(1), 1)
    cost = train.lower(states, keys, 0, data).compile().cost_analysis()
    flops = (cost[0] if isinstance(cost, list) else cost).get("flops", float("nan"))  # XLA counts a loop body once
    states, _ = train(states, keys, 0, data)
    jax.block_until_ready(states)
    best = 0.0
    for c in range(1, calls + 1):
        t = time.perf_counter()
        states, _ = train(states, keys, c, data)
        jax.block_until_ready(states)
        best = max(best, chunk / (time.perf_counter() - t))
    return best, flops


def jax_updates_per_second(algo: str, repeats: int = 3) -> float:
    from o2o.agents import Spec, get_algorithm
    from o2o.train.offline import make_train_chunk

    agent, config = get_algorithm(algo, {"batch_size": BATCH})
    spec = Spec.unnormalized(OBS, ACT)
    rng = np.random.default_rng(0)
    data = {"observations": jnp.asarray(rng.normal(size=(N, OBS)), jnp.float32),
            "actions": jnp.asarray(rng.uniform(-1, 1, (N, ACT)), jnp.float32),
            "rewards": jnp.asarray(rng.normal(size=N), jnp.float32),
            "next_observations": jnp.asarray(rng.normal(size=(N, OBS)), jnp.float32),
            "dones": jnp.zeros(N, jnp.float32)}
    states = jax.tree.map(jnp.copy, jax.vmap(lambda k: agent.init(k, spec, config))(jax.random.PRNGKey(0)[None]))
    keys = jax.random.PRNGKey(1)[None]
    chunk = 1000
    train_chunk = make_train_chunk(agent, config, chunk)
    states, m = train_chunk(states, keys, 0, data)
    jax.block_until_ready(m)
    best = 0.0
    for i in range(repeats):
        t = time.perf_counter()
        states, m = train_chunk(states, keys, i + 1, data)
        jax.block_until_ready(m)
        best = max(best, chunk / (time.perf_counter() - t))
    return best


def torch_updates_per_second(algo: str, updates: int = 300) -> float:
    """The same update written plainly in PyTorch (eager), batches sampled on the same device."""
    import torch
    from torch import nn

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)

    def mlp(i, o):
        return nn.Sequential(nn.Linear(i, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, o))

    obs, act = torch.randn(N, OBS), torch.rand(N, ACT) * 2 - 1
    rew, nobs, done = torch.randn(N), torch.randn(N, OBS), torch.zeros(N)
    actor, q1, q2 = mlp(OBS, ACT), mlp(OBS + ACT, 1), mlp(OBS + ACT, 1)
    tq1, tq2 = mlp(OBS + ACT, 1), mlp(OBS + ACT, 1)
    tq1.load_state_dict(q1.state_dict())
    tq2.load_state_dict(q2.state_dict())
    critic_opt = torch.optim.Adam([*q1.parameters(), *q2.parameters()], lr=3e-4)
    actor_opt = torch.optim.Adam(actor.parameters(), lr=3e-4)
    if algo == "iql":
        value = mlp(OBS, 1)
        value_opt = torch.optim.Adam(value.parameters(), lr=3e-4)
        log_std = torch.zeros(ACT, requires_grad=True)
        actor_opt = torch.optim.Adam([*actor.parameters(), log_std], lr=3e-4)
    else:
        target_actor = mlp(OBS, ACT)
        target_actor.load_state_dict(actor.state_dict())

    def polyak(target, online, tau=0.005):
        with torch.no_grad():
            for t, o in zip(target.parameters(), online.parameters()):
                t.mul_(1 - tau).add_(o, alpha=tau)

    def step(i):
        idx = torch.randint(0, N, (BATCH,))
        s, a, r, s2, d = obs[idx], act[idx], rew[idx], nobs[idx], done[idx]
        sa = torch.cat([s, a], 1)
        if algo == "iql":
            with torch.no_grad():
                tq = torch.min(tq1(sa), tq2(sa)).squeeze(-1)
            v = value(s).squeeze(-1)
            u = tq - v
            value_loss = (torch.abs(0.7 - (u < 0).float()) * u**2).mean()
            value_opt.zero_grad()
            value_loss.backward()
            value_opt.step()
            with torch.no_grad():
                target = r + 0.99 * (1 - d) * value(s2).squeeze(-1)
                weights = torch.exp(3.0 * (tq - value(s).squeeze(-1))).clamp(max=100.0)
            critic_loss = ((q1(sa).squeeze(-1) - target) ** 2).mean() + ((q2(sa).squeeze(-1) - target) ** 2).mean()
            critic_opt.zero_grad()
            critic_loss.backward()
            critic_opt.step()
            mean = torch.tanh(actor(s))
            log_prob = torch.distributions.Normal(mean, log_std.clamp(-5, 2).exp()).log_prob(a).sum(-1)
            actor_loss = -(weights * log_prob).mean()
            actor_opt.zero_grad()
            actor_loss.backward()
            actor_opt.step()
            polyak(tq1, q1)
            polyak(tq2, q2)
            return
        with torch.no_grad():
            noise = (torch.randn_like(a) * 0.2).clamp(-0.5, 0.5)
            a2 = (torch.tanh(target_actor(s2)) + noise).clamp(-1, 1)
            sa2 = torch.cat([s2, a2], 1)
            target = r + 0.99 * (1 - d) * torch.min(tq1(sa2), tq2(sa2)).squeeze(-1)
        critic_loss = ((q1(sa).squeeze(-1) - target) ** 2).mean() + ((q2(sa).squeeze(-1) - target) ** 2).mean()
        critic_opt.zero_grad()
        critic_loss.backward()
        critic_opt.step()
        if i % 2 == 0:
            pi = torch.tanh(actor(s))
            q = q1(torch.cat([s, pi], 1))
            actor_loss = -2.5 / q.abs().mean().detach() * q.mean() + ((pi - a) ** 2).mean()
            actor_opt.zero_grad()
            actor_loss.backward()
            actor_opt.step()
            polyak(target_actor, actor)
            polyak(tq1, q1)
            polyak(tq2, q2)

    for i in range(20):
        step(i)
    t = time.perf_counter()
    for i in range(updates):
        step(i)
    return updates / (time.perf_counter() - t)


def outside_updates_share(steps: int) -> dict:
    """A real `o2o train` run (TD3+BC, HalfCheetah-v5 shapes and evaluation, 2 evaluations of 5 episodes)."""
    from o2o.data import Dataset, write_o2o
    from o2o.train import offline

    rng = np.random.default_rng(0)
    n = 50_000
    timeouts = np.zeros(n, bool)
    timeouts[999::1000] = True
    data = Dataset(rng.normal(size=(n, OBS)).astype(np.float32), rng.uniform(-1, 1, (n, ACT)).astype(np.float32),
                   rng.normal(size=n).astype(np.float32), rng.normal(size=(n, OBS)).astype(np.float32),
                   np.zeros(n, bool), timeouts, {"env_id": "HalfCheetah-v5"})
    with tempfile.TemporaryDirectory() as tmp:
        path = write_o2o(data, f"{tmp}/data")
        settings = offline.OfflineSettings(algo="td3bc", dataset=str(path), steps=steps, seeds=1,
                                           eval_every=steps // 2, eval_episodes=5, out=f"{tmp}/run")
        return offline.train(settings, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-steps", type=int, default=10_000, help="updates of the real `o2o train` run")
    args = parser.parse_args()
    import torch

    print(f"threads: XLA intra-op {THREADS}, torch {THREADS} (torch {torch.__version__}, jax {jax.__version__}); "
          f"cores seen: {os.cpu_count()}")
    roofline = matmul_flops_per_second()
    print(f"matmul roofline (JAX, 256x256 @ 256x256): {roofline / 1e9:.1f} GFLOP/s\n")
    header = f"{'update':10} {'o2o (JAX) upd/s':>16} {'PyTorch eager upd/s':>20} {'ratio':>7} {'GFLOP/update':>13} {'% roofline':>11}"
    print(header)
    print("-" * len(header))
    for algo in ("iql", "td3bc"):
        ours, theirs = jax_updates_per_second(algo), torch_updates_per_second(algo)
        flops = update_flops(algo)
        print(f"{algo:10} {ours:16,.0f} {theirs:20,.0f} {ours / theirs:6.2f}x {flops / 1e9:13.3f} "
              f"{100 * ours * flops / roofline:10.0f}%")
    summary = outside_updates_share(args.run_steps)
    print(f"\nreal `o2o train` run (td3bc, {args.run_steps} updates, 2 evaluations x 5 HalfCheetah-v5 episodes): "
          f"wall {summary['wall_seconds']:.1f} s, in fused updates {summary['update_seconds']:.1f} s (incl. compile), "
          f"evaluation {summary['eval_seconds']:.1f} s, outside updates {100 * summary['outside_updates_fraction']:.1f}%")


if __name__ == "__main__":
    main()
