"""Update speed: o2o's fused JAX updates against the matmul roofline measured in the same run.

Run (nothing else busy on the machine):
    pip install -e ".[bench]" && python benchmarks/bench_updates.py            # IQL and TD3+BC against PyTorch
    python benchmarks/bench_updates.py --all [--out FILE.json] [--algos a,b]  # every registered algorithm
Default: 256-256 MLPs, batch 256, observation 17, action 6 (HalfCheetah). Prints:
- updates/s of o2o's IQL and TD3+BC (1 seed, 1000 updates fused per call) and of the PyTorch twin, and their ratio;
- the CPU's matmul FLOP/s measured here (JAX, 256x256 @ 256x256) and the share of it each update reaches;
- the share of a real `o2o train` run's wall time spent outside the fused updates (evaluation, logging, checkpoints).
--all: every registered algorithm with its paper's batch size and networks (its default config; RLPD and WSRL with one
actor step per `utd` critic steps, as they run online), trained through the offline loop's fused chunk (sampling on
the device included) on HalfCheetah-shaped random data, at 1 seed and at 4 seeds vmapped: updates/s, XLA's FLOP count
of one update with every scan unrolled (XLA counts a loop body once), and the share of the roofline.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path

from pinning import CORES, describe as pinned  # noqa: E402  (before JAX loads)

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


def matmul_flops_per_second(iterations: int = 2000, calls: int = 5) -> float:
    """The best rate of `calls` timed chains of `iterations` 256x256 @ 256x256 matmuls (about 0.2 s each here)."""
    a = jnp.ones((256, 256), jnp.float32)
    f = jax.jit(lambda a: jax.lax.fori_loop(0, iterations, lambda i, x: (x @ a) * 0.5, a))
    f(a).block_until_ready()
    best = 0.0
    for _ in range(calls):
        t = time.perf_counter()
        f(a).block_until_ready()
        best = max(best, iterations * 2 * 256**3 / (time.perf_counter() - t))
    return best


def fused_rate_and_flops(agent, config, spec, data: dict, chunk: int, calls: int = 5) -> tuple[float, float, float]:
    """(updates/s, FLOPs per update as XLA counts them, the matmul rate measured beside the timed calls) of one seed
    training on `data` (NumPy arrays) through the offline loop's fused chunk of `chunk` updates: medians over the
    calls `paired_rates` keeps of `calls` (nan where it keeps none)."""
    from o2o.train.offline import make_train_chunk

    states = jax.vmap(lambda k: agent.init(k, spec, config))(jax.random.split(jax.random.PRNGKey(0), 1))
    states = jax.tree.map(jnp.copy, states)
    data = {k: jnp.asarray(v) for k, v in data.items()}
    train = make_train_chunk(agent, config, chunk)
    keys = jax.random.split(jax.random.PRNGKey(1), 1)
    cost = train.lower(states, keys, 0, data).compile().cost_analysis()
    flops = (cost[0] if isinstance(cost, list) else cost).get("flops", float("nan"))  # XLA counts a loop body once
    pairs = np.array(paired_rates(train, states, keys, data, chunk, calls) or [(np.nan, np.nan)])
    return float(np.median(pairs[:, 0])), flops, float(np.median(pairs[:, 1]))


def _eval_unrolled(jaxpr, consts, args, taken: list[int]):
    """Evaluate `jaxpr` with every scan written out step by step (calls and custom derivatives inlined), so that the
    jitted result holds each loop iteration's operations and XLA's cost analysis counts them all; and each `cond` as
    the one branch it takes (XLA would count every branch): with concrete inputs the branch is read off the values
    and appended to `taken`, under a trace the next one is taken from its front."""
    from jax.extend import core

    env = dict(zip(jaxpr.constvars, consts)) | dict(zip(jaxpr.invars, args))

    def read(var):
        return var.val if isinstance(var, core.Literal) else env[var]

    for eqn in jaxpr.eqns:
        inputs = [read(v) for v in eqn.invars]
        params = eqn.params
        if eqn.primitive.name == "scan":
            outputs = _scan_unrolled(params, inputs, taken)
        elif eqn.primitive.name == "cond":
            if isinstance(inputs[0], jax.core.Tracer):
                branch = params["branches"][taken.pop(0)]
            else:
                taken.append(int(inputs[0]))
                branch = params["branches"][taken[-1]]
            outputs = _eval_unrolled(branch.jaxpr, branch.consts, inputs[1:], taken)
        elif (inner := params.get("jaxpr", params.get("call_jaxpr"))) is not None and eqn.primitive.name != "cond":
            closed = inner if isinstance(inner, core.ClosedJaxpr) else core.ClosedJaxpr(inner, ())
            outputs = _eval_unrolled(closed.jaxpr, closed.consts, inputs, taken)
        else:
            outputs = eqn.primitive.bind(*inputs, **eqn.primitive.get_bind_params(params))
            outputs = outputs if eqn.primitive.multiple_results else [outputs]
        env.update(zip(eqn.outvars, outputs))
    return [read(v) for v in jaxpr.outvars]


def _scan_unrolled(params, inputs, taken: list[int]):
    body, consts_count, carry_count = params["jaxpr"], params["num_consts"], params["num_carry"]
    consts, carry, xs = inputs[:consts_count], inputs[consts_count:consts_count + carry_count], inputs[consts_count + carry_count:]
    steps = range(params["length"])
    ys = []
    for i in reversed(steps) if params["reverse"] else steps:
        outputs = _eval_unrolled(body.jaxpr, body.consts, [*consts, *carry, *(x[i] for x in xs)], taken)
        carry = outputs[:carry_count]
        ys.append(outputs[carry_count:])
    if params["reverse"]:
        ys.reverse()
    return [*carry, *(jnp.stack(parts) for parts in zip(*ys))]


def unrolled_flops(fn, *args) -> float:
    """XLA's FLOP count of `fn(*args)` with every scan unrolled and every `cond` as the branch these arguments take
    (found by evaluating the function once, eagerly, op by op)."""
    closed = jax.make_jaxpr(fn)(*args)
    leaves = jax.tree.leaves(args)
    taken: list[int] = []
    _eval_unrolled(closed.jaxpr, closed.consts, leaves, taken)
    traced = jax.jit(lambda *xs: _eval_unrolled(closed.jaxpr, closed.consts, xs, taken))
    cost = traced.lower(*leaves).compile().cost_analysis()
    return (cost[0] if isinstance(cost, list) else cost).get("flops", float("nan"))


def jax_updates_per_second(algo: str) -> tuple[float, float]:
    """(updates/s, the matmul rate beside the timed calls) of o2o's `algo`, 1 seed, 1000 updates fused per call."""
    from o2o.agents import Spec, get_algorithm

    agent, config = get_algorithm(algo, {"batch_size": BATCH})
    rng = np.random.default_rng(0)
    data = {"observations": rng.normal(size=(N, OBS)).astype(np.float32),
            "actions": rng.uniform(-1, 1, (N, ACT)).astype(np.float32),
            "rewards": rng.normal(size=N).astype(np.float32),
            "next_observations": rng.normal(size=(N, OBS)).astype(np.float32), "dones": np.zeros(N, np.float32)}
    rate, _, matmul = fused_rate_and_flops(agent, config, Spec.unnormalized(OBS, ACT), data, 1000)
    return rate, matmul


def torch_updates_per_second(algo: str, updates: int = 300) -> float:
    """The same update written plainly in PyTorch (eager), batches sampled on the same device."""
    import torch
    from torch import nn

    torch.set_num_threads(CORES)
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


def synthetic_dataset(n: int):
    """HalfCheetah-v5-shaped random transitions in episodes of 1000 steps (what every algorithm's data transform needs:
    episodes for %BC, DT's windows and Cal-QL's returns)."""
    from o2o.data import Dataset

    rng = np.random.default_rng(0)
    timeouts = np.zeros(n, bool)
    timeouts[999::1000] = True
    return Dataset(rng.normal(size=(n, OBS)).astype(np.float32), rng.uniform(-1, 1, (n, ACT)).astype(np.float32),
                   rng.normal(size=n).astype(np.float32), rng.normal(size=(n, OBS)).astype(np.float32),
                   np.zeros(n, bool), timeouts, {"env_id": "HalfCheetah-v5"})


def outside_updates_share(steps: int) -> dict:
    """A real `o2o train` run (TD3+BC, HalfCheetah-v5 shapes and evaluation, 2 evaluations of 5 episodes)."""
    from o2o.data import write_o2o
    from o2o.train import offline

    with tempfile.TemporaryDirectory() as tmp:
        path = write_o2o(synthetic_dataset(50_000), f"{tmp}/data")
        settings = offline.OfflineSettings(algo="td3bc", dataset=str(path), steps=steps, seeds=1,
                                           eval_every=steps // 2, eval_episodes=5, out=f"{tmp}/run")
        return offline.train(settings, progress=False)


def network(config) -> str:
    """The networks in a few characters: hidden layers (x critics), or DT's blocks x width."""
    if hasattr(config, "num_layers"):
        return f"{config.num_layers} blocks x {config.embedding_dim}, K {config.context_length}"
    layers = "x".join(str(width) for width in config.hidden_dims)
    critics = getattr(config, "num_critics", None)
    return f"{layers}" + (f", {critics} critics" if critics else "")


def consecutive_updates(agent, config, count, state, key, data):
    """`count` updates of one seed on batches the agent draws, as the offline loop runs them."""
    for update_key in jax.random.split(key, count):
        sample_key, update_key = jax.random.split(update_key)
        state, _ = agent.update(state, agent.sample_batch(config, data, sample_key), update_key)
    return state


def paired_rates(train, states, keys, data, chunk: int, calls: int = 7) -> list[tuple[float, float]]:
    """(updates/s per seed, matmul FLOP/s) of `calls` timed calls of a fused `train` chunk after a warm-up call, each
    call's matmul rate the mean of short measurements right before and right after it. The machines of this project
    switch between two matmul rates (about 270 and 420 GFLOP/s on 2 cores) every few seconds, so a share of the
    roofline is only meaningful against the rate measured beside the call; calls whose two measurements differ by more
    than 10% (a switch in between) are dropped."""
    states, _ = train(states, keys, 0, data)
    jax.block_until_ready(states)
    pairs = []
    for c in range(1, calls + 1):
        before = matmul_flops_per_second(iterations=500, calls=1)
        t = time.perf_counter()
        states, _ = train(states, keys, c, data)
        jax.block_until_ready(states)
        rate = chunk / (time.perf_counter() - t)
        after = matmul_flops_per_second(iterations=500, calls=1)
        if abs(before - after) <= 0.1 * max(before, after):
            pairs.append((rate, (before + after) / 2))
    return pairs


def prepared(algo: str, dataset_path: str, seeds: int, overrides: dict | None = None):
    """`algo` as the offline loop runs it (RLPD and WSRL with their online actor schedule) on `seeds` seeds: (the
    prepared run, its data on the device, the initial states, the seeds' keys)."""
    from o2o.algorithms import online_schedule
    from o2o.train import offline

    p = offline.prepare(offline.OfflineSettings(algo=algo, dataset=dataset_path, seeds=seeds, eval_episodes=0,
                                                agent_overrides={**online_schedule(algo), **(overrides or {})}))
    return p, offline.device_data(p), offline.init_states(p), jnp.stack([jax.random.PRNGKey(s) for s in p.seeds])


def flops_per_update(p, states, keys, data) -> float:
    """XLA's FLOPs of one seed's update (sampling included), averaged over a cycle of TD3's delayed actor steps or
    RLPD's critic steps."""
    cycle = getattr(p.config, "policy_frequency", getattr(p.config, "actor_every", 1))
    return unrolled_flops(partial(consecutive_updates, p.agent, p.config, cycle),
                          jax.tree.map(lambda x: x[0], states), keys[0], data) / cycle


def algorithm_speed(algo: str, dataset_path: str, roofline: float, seed_counts=(1, 4), seconds: float = 0.5) -> dict:
    """One algorithm's row: FLOPs of one update and, at each seed count, updates/s through the offline loop's fused
    chunk (a chunk sized to about `seconds`) and its share of the matmul rate measured beside it: the medians over the
    timed calls `paired_rates` keeps (`calls_kept` of 7; none kept: no share)."""
    from o2o.train import offline

    row = {"algo": algo}
    for seeds in seed_counts:
        p, data, states, keys = prepared(algo, dataset_path, seeds)
        if "flops" not in row:
            row.update(batch=p.config.batch_size, network=network(p.config),
                       flops=flops_per_update(p, states, keys, data))
        chunk = int(np.clip(seconds * roofline / (row["flops"] * seeds), 4, 2000))
        pairs = paired_rates(offline.make_train_chunk(p.agent, p.config, chunk), states, keys, data, chunk)
        rates = [rate for rate, _ in pairs]
        shares = [rate * seeds * row["flops"] / matmul for rate, matmul in pairs]
        row[f"seeds_{seeds}"] = {"chunk": chunk, "calls_kept": len(pairs),
                                 "updates_per_second": float(np.median(rates)) if pairs else float("nan"),
                                 "matmul_flops_per_second": float(np.median([m for _, m in pairs])) if pairs else None,
                                 "roofline_share": float(np.median(shares)) if pairs else float("nan")}
    return row


def speed_table(rows: list[dict], roofline: float) -> str:
    """The rows as a markdown table: each share against the matmul rate measured beside its calls (shown)."""
    lines = [f"matmul rate at the start (JAX, 256x256 @ 256x256, {CORES} cores): {roofline / 1e9:.1f} GFLOP/s", "",
             ("| algorithm | batch | networks | GFLOP/update | 1 seed: updates/s | matmul GFLOP/s | share "
              "| 4 seeds: updates/s per seed | matmul GFLOP/s | share |"), "|---|---|---|---|---|---|---|---|---|---|"]

    def cells(timing: dict) -> str:
        matmul = timing["matmul_flops_per_second"]
        if matmul is None:
            return "not measured (the matmul rate switched during every call) | | |"
        return f"{timing['updates_per_second']:.1f} | {matmul / 1e9:.0f} | {100 * timing['roofline_share']:.0f}% |"

    for r in rows:
        lines.append(f"| {r['algo']} | {r['batch']} | {r['network']} | {r['flops'] / 1e9:.2f} | "
                     f"{cells(r['seeds_1'])} {cells(r['seeds_4'])}")
    return "\n".join(lines)


def all_algorithms(names: list[str], out: str | None) -> None:
    from o2o.data import write_o2o

    print(f"{pinned()}; jax {jax.__version__}")
    roofline = matmul_flops_per_second()
    print(f"matmul roofline before the rows: {roofline / 1e9:.1f} GFLOP/s", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = str(write_o2o(synthetic_dataset(100_000), f"{tmp}/data"))
        for algo in names:
            rows.append(algorithm_speed(algo, path, roofline))
            print(f"{algo}: {rows[-1]}", flush=True)
    after = matmul_flops_per_second()
    print(f"matmul roofline after the rows: {after / 1e9:.1f} GFLOP/s (shares: against the rate beside each call)",
          flush=True)
    table = speed_table(rows, roofline)
    print(table)
    if out:
        import json

        Path(out).write_text(json.dumps({"roofline_flops_per_second": roofline, "cores": CORES,
                                         "jax": jax.__version__, "rows": rows, "table": table}, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-steps", type=int, default=10_000, help="updates of the real `o2o train` run")
    parser.add_argument("--all", action="store_true", help="every registered algorithm (or --algos): the speed table")
    parser.add_argument("--algos", default=None, help="comma-separated algorithms for --all (default: every one)")
    parser.add_argument("--out", default=None, help="--all: write the rows and the printed table here as JSON")
    args = parser.parse_args()
    if args.all:
        from o2o.algorithms import names

        return all_algorithms(args.algos.split(",") if args.algos else names(), args.out)
    import torch

    print(f"{pinned()}; torch {torch.__version__}, jax {jax.__version__}")
    print("roofline: the matmul rate (JAX, 256x256 @ 256x256) measured beside the timed calls\n")
    header = (f"{'update':10} {'o2o (JAX) upd/s':>16} {'PyTorch eager upd/s':>20} {'ratio':>7} {'GFLOP/update':>13} "
              f"{'GFLOP/s matmul':>15} {'% roofline':>11}")
    print(header)
    print("-" * len(header))
    for algo in ("iql", "td3bc"):
        (ours, roofline), theirs = jax_updates_per_second(algo), torch_updates_per_second(algo)
        flops = update_flops(algo)
        print(f"{algo:10} {ours:16,.0f} {theirs:20,.0f} {ours / theirs:6.2f}x {flops / 1e9:13.3f} "
              f"{roofline / 1e9:15.0f} {100 * ours * flops / roofline:10.0f}%")
    summary = outside_updates_share(args.run_steps)
    print(f"\nreal `o2o train` run (td3bc, {args.run_steps} updates, 2 evaluations x 5 HalfCheetah-v5 episodes): "
          f"wall {summary['wall_seconds']:.1f} s, in fused updates {summary['update_seconds']:.1f} s (incl. compile), "
          f"evaluation {summary['eval_seconds']:.1f} s, outside updates {100 * summary['outside_updates_fraction']:.1f}%")


if __name__ == "__main__":
    main()
