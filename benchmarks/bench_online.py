"""Online SAC speed against the offline fused rate of the same update, measured in the same run.

Run (nothing else busy on the machine):  pip install -e ".[bench]" && python benchmarks/bench_online.py
Hopper-v5, SAC 256-256, batch 256, 1 seed, learning from the first step, through `o2o.train.online.train` (the path
`o2o online` takes). For UTD 1 and 20, with a buffer of the run's size and with a 1M-transition buffer, it prints:
- env steps/s and updates/s per second of the run's wall time (compilation excluded), and their share of the fused rate:
  SAC's update fused 1000 times in one `lax.scan` over device-resident data of the same size (the offline loop);
- where the wall time goes: env stepping, the insert call, update compute (the updates at the fused rate), dispatch and
  synchronisation (the rest of the two jitted calls per env step), checkpoints, and everything else;
- the UTD 1 call alone, with no env, against the fused rate: the ceiling of a loop that calls XLA once per env step;
- a plain PyTorch-eager SAC loop at UTD 1 as a sanity reference.
Thread counts are pinned (O2O_BENCH_THREADS, default 2) and printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from pinning import CORES, describe as pinned  # noqa: E402  (before JAX loads)
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402

ENV = "Hopper-v5"
BIG = 1_000_000


def spaces() -> tuple[int, int]:
    from o2o.envs import env_spaces

    s = env_spaces(ENV)
    return s.observation_shape[0], s.action_shape[0]


def fused_rate(size: int) -> float:
    """SAC updates/s through the offline loop's fused chunk, sampling from `size` random transitions on the device."""
    from bench_updates import fused_rate_and_flops

    from o2o.agents import Spec, get_algorithm

    obs, act = spaces()
    agent, config = get_algorithm("sac", {})
    rng = np.random.default_rng(0)
    data = {"observations": rng.normal(size=(size, obs)).astype(np.float32),
            "actions": rng.uniform(-1, 1, (size, act)).astype(np.float32),
            "rewards": rng.normal(size=size).astype(np.float32),
            "next_observations": rng.normal(size=(size, obs)).astype(np.float32), "dones": np.zeros(size, np.float32)}
    return fused_rate_and_flops(agent, config, Spec.unnormalized(obs, act), data, 1000)[0]


def insert_seconds(capacity: int, calls: int = 2000) -> float:
    """Seconds per call of the online loop's jitted in-place insert (one seed), dispatch and completion included."""
    import jax
    import jax.numpy as jnp

    from o2o.data import replay

    obs, act = spaces()
    insert = jax.jit(jax.vmap(replay.add), donate_argnums=(0,))
    buffer = jax.vmap(lambda _: replay.create(capacity, obs, act))(jnp.arange(1))
    transition = {"observations": np.ones((1, obs), np.float32), "actions": np.zeros((1, act), np.float32),
                  "rewards": np.zeros(1, np.float32), "next_observations": np.ones((1, obs), np.float32),
                  "dones": np.zeros(1, np.float32)}
    buffer = jax.block_until_ready(insert(buffer, transition))
    start = time.perf_counter()
    for _ in range(calls):
        buffer = insert(buffer, transition)
    jax.block_until_ready(buffer)
    return (time.perf_counter() - start) / calls


def call_rate(capacity: int, calls: int = 1000) -> float:
    """Updates/s of the online loop's per-env-step call at UTD 1 (insert + one update + the next action) with no env
    at all: the ceiling a loop that calls XLA once per env step can reach."""
    import jax
    import jax.numpy as jnp

    from o2o.agents import Spec, get_algorithm
    from o2o.data import replay
    from o2o.train.online_step import make_env_step

    obs, act = spaces()
    agent, config = get_algorithm("sac", {})
    states = jax.tree.map(jnp.copy, jax.vmap(lambda k: agent.init(k, Spec.unnormalized(obs, act), config))(
        jax.random.split(jax.random.PRNGKey(0), 1)))
    buffers = jax.vmap(lambda _: replay.create(capacity, obs, act))(jnp.arange(1))
    rng = np.random.default_rng(0)
    transition = {"observations": rng.normal(size=(1, obs)).astype(np.float32), "actions": np.zeros((1, act), np.float32),
                  "rewards": np.ones(1, np.float32), "next_observations": rng.normal(size=(1, obs)).astype(np.float32),
                  "dones": np.zeros(1, np.float32)}
    env_step = make_env_step(agent, config.batch_size, 1, "none", True, False)
    keys, next_obs = jax.random.split(jax.random.PRNGKey(1), 1), transition["next_observations"]
    acting = ((), np.zeros(1, np.int32), np.zeros(1, np.float32))  # SAC keeps no episode memory
    for step in range(300):  # compile and fill the buffer past a batch
        states, buffers, action, _, _ = env_step(states, buffers, transition, next_obs, keys, step, {}, *acting)
    np.asarray(action)
    start = time.perf_counter()
    for step in range(calls):
        states, buffers, action, _, _ = env_step(states, buffers, transition, next_obs, keys, step, {}, *acting)
        np.asarray(action)  # the loop needs the action before the next env step
    return calls / (time.perf_counter() - start)


def online_run(steps: int, utd: int, capacity: int | None) -> dict:
    from o2o.train import online

    with tempfile.TemporaryDirectory() as tmp:
        settings = online.settings_for("sac", env=ENV, steps=steps, seeds=1, utd=utd, warmup_steps=0, eval_every=steps,
                                       eval_episodes=0, log_every=steps, out=f"{tmp}/run", buffer_capacity=capacity)
        return online.train(settings, progress=False)


def breakdown(summary: dict, utd: int, fused: float, insert: float) -> dict:
    steps = summary["steps"]
    # a short run's one checkpoint (the whole buffer) is not what a long run pays per step: it is reported apart
    wall = summary["wall_seconds"] - summary["compile_seconds"] - summary["checkpoint_seconds"]
    learning_steps = steps - 1  # the first step's call compiles
    compute = learning_steps * utd / fused
    inserts = learning_steps * insert
    shares = {"env": summary["env_seconds"], "insert": inserts, "compute": compute,
              "dispatch": summary["update_seconds"] - compute - inserts}
    shares["other"] = wall - sum(shares.values())
    return {"env_steps_per_second": learning_steps / wall, "updates_per_second": learning_steps * utd / wall,
            "fused": fused, "checkpoint_seconds": summary["checkpoint_seconds"], **{k: v / wall for k, v in shares.items()}}


def torch_sac(steps: int) -> float:
    """env steps/s of a plain PyTorch-eager SAC loop (same env, sizes, UTD 1)."""
    import gymnasium as gym
    import torch
    from torch import nn

    torch.set_num_threads(CORES)
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
    start = time.perf_counter()
    for t in range(steps):
        with torch.no_grad():
            a = policy(torch.as_tensor(o, dtype=torch.float32)[None])[0][0].numpy()
        o2, r, term, trunc, _ = env.step(a)
        buf["o"][t], buf["a"][t], buf["r"][t], buf["o2"][t], buf["d"][t] = o, a, r, o2, float(term)
        o = env.reset()[0] if term or trunc else o2
        update(t + 1)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000, help="env steps of the UTD 1 runs (UTD 20 runs: a tenth)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    args = parser.parse_args()
    import jax

    print(f"{pinned()}; jax {jax.__version__}; {ENV}, SAC 256-256, batch 256, "
          f"1 seed, learning from the first step")
    rows = []
    for utd, steps in ((1, args.steps), (20, args.steps // 10)):
        for buffer, capacity in (("run-sized", None), ("1M", BIG)):
            fused = fused_rate(capacity or steps)  # measured next to its online run: this machine's speed drifts
            summary = online_run(steps, utd, capacity)
            rows.append((utd, buffer, breakdown(summary, utd, fused, insert_seconds(capacity or steps))))
    header = (f"{'UTD':>3} {'buffer':>9} {'env st/s':>9} {'upd/s':>7} {'fused':>7} {'ratio':>6} | {'env':>5} "
              f"{'insert':>6} {'compute':>7} {'dispatch':>8} {'other':>5} (% of wall) | checkpoint s")
    print(header)
    print("-" * len(header))
    for utd, buffer, r in rows:
        print(f"{utd:>3} {buffer:>9} {r['env_steps_per_second']:9,.0f} {r['updates_per_second']:7,.0f} {r['fused']:7,.0f} "
              f"{r['updates_per_second'] / r['fused']:6.0%} | " + " ".join(
                  f"{100 * r[k]:{w}.1f}" for k, w in (("env", 5), ("insert", 6), ("compute", 7), ("dispatch", 8),
                                                      ("other", 5))) + f"             | {r['checkpoint_seconds']:.2f}")
    print("ratio: online updates/s over the fused rate on data of the same size; wall excludes compilation and the "
          "run's one checkpoint (shown apart: a long run writes one per evaluation)")
    fused, ceiling = fused_rate(args.steps), call_rate(args.steps)
    print(f"\nOne call per env step with no env (UTD 1, run-sized buffer): {ceiling:,.0f} updates/s against {fused:,.0f} "
          f"fused ({ceiling / fused:.0%}): the ceiling of any loop that calls XLA once per env step")
    if not args.no_torch:
        theirs = torch_sac(args.steps)
        print(f"\nPyTorch eager SAC loop, UTD 1: {theirs:,.0f} env steps/s; o2o / PyTorch: "
              f"{rows[0][2]['env_steps_per_second'] / theirs:.2f}x")


if __name__ == "__main__":
    main()
