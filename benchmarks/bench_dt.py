"""Decision Transformer update speed: o2o's DT (windows sampled on device, updates fused in `lax.scan`) against a
PyTorch-eager twin of the same transformer, in the same run.

Run (nothing else busy on the machine):  pip install -e ".[bench]" && python benchmarks/bench_dt.py
Sizes: the paper's gym settings (K = 20, 128-wide embeddings, 3 blocks, 1 head, batch 64, dropout 0.1), Hopper's
observation 11 and action 3, 1000-step episodes. Prints updates/s of each, their ratio, the update's FLOPs as XLA
counts them and the share of the CPU's measured matmul rate (256x256 @ 256x256) it reaches.
"""

from __future__ import annotations

import argparse
import time

from bench_updates import CORES, fused_rate_and_flops, pinned  # pins the cores before JAX loads

import jax  # noqa: E402
import numpy as np  # noqa: E402

OBS, ACT, EPISODE, DATA = 11, 3, 1000, 100_000


def dataset(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    steps = np.arange(DATA)
    return {"observations": rng.normal(size=(DATA, OBS)).astype(np.float32),
            "actions": rng.uniform(-1, 1, size=(DATA, ACT)).astype(np.float32),
            "rewards": rng.normal(size=DATA).astype(np.float32),
            "returns_to_go": rng.uniform(0, 3000, size=DATA).astype(np.float32),
            "timesteps": (steps % EPISODE).astype(np.int32),
            "steps_to_episode_end": (EPISODE - 1 - steps % EPISODE).astype(np.float32)}


def jax_updates_per_second(chunk: int) -> tuple[float, float, float, object]:
    """(updates/s, FLOPs per update, the matmul rate beside the calls, config) of one seed, `chunk` updates per call."""
    from o2o.agents import Spec, get_algorithm

    agent, config = get_algorithm("dt", {"target_return": "3600"})
    return (*fused_rate_and_flops(agent, config, Spec.unnormalized(OBS, ACT), dataset(), chunk), config)


def torch_updates_per_second(config, updates: int) -> float:
    """The same model and update written plainly in PyTorch (eager), windows gathered from tensors on the same device."""
    import torch
    from torch import nn

    torch.set_num_threads(CORES)
    torch.manual_seed(0)
    d, k, batch = config.embedding_dim, config.context_length, config.batch_size

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.attention = nn.MultiheadAttention(d, config.num_heads, dropout=config.dropout, batch_first=True)
            self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.ReLU(), nn.Linear(4 * d, d), nn.Dropout(config.dropout))
            self.drop = nn.Dropout(config.dropout)

        def forward(self, x, mask):
            h = self.ln1(x)
            x = x + self.drop(self.attention(h, h, h, attn_mask=mask, need_weights=False)[0])
            return x + self.mlp(self.ln2(x))

    class DT(nn.Module):
        def __init__(self):
            super().__init__()
            self.time = nn.Embedding(config.max_timestep, d)
            self.rtg, self.obs, self.act = nn.Linear(1, d), nn.Linear(OBS, d), nn.Linear(ACT, d)
            self.ln, self.ln_f, self.drop = nn.LayerNorm(d), nn.LayerNorm(d), nn.Dropout(config.dropout)
            self.blocks = nn.ModuleList([Block() for _ in range(config.num_layers)])
            self.head = nn.Linear(d, ACT)
            self.register_buffer("mask", torch.triu(torch.ones(3 * k, 3 * k, dtype=torch.bool), 1))

        def forward(self, rtg, obs, act, timesteps):
            time = self.time(timesteps)
            tokens = torch.stack([self.rtg(rtg[..., None]) + time, self.obs(obs) + time, self.act(act) + time], 2)
            x = self.drop(self.ln(tokens.reshape(obs.shape[0], 3 * k, d)))
            for block in self.blocks:
                x = block(x, self.mask)
            return torch.tanh(self.head(self.ln_f(x).reshape(obs.shape[0], k, 3, d)[:, :, 1]))

    data = {name: torch.from_numpy(v) for name, v in dataset().items()}
    model = DT()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min((s + 1) / config.warmup_steps, 1.0))

    def step():
        first = torch.randint(0, DATA, (batch,))
        steps = first[:, None] + torch.arange(k)
        valid = torch.arange(k) <= data["steps_to_episode_end"][first][:, None]
        steps = steps.clamp(max=DATA - 1)
        obs, act = data["observations"][steps] * valid[..., None], data["actions"][steps] * valid[..., None]
        rtg, timesteps = data["returns_to_go"][steps] * valid * config.return_scale, data["timesteps"][steps] * valid
        predicted = model(rtg, obs, act, timesteps)
        loss = (((predicted - act) ** 2).sum(-1) * valid).sum() / (valid.sum() * ACT)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        schedule.step()

    for _ in range(10):
        step()
    t = time.perf_counter()
    for _ in range(updates):
        step()
    return updates / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunk", type=int, default=100, help="updates fused per JAX call")
    parser.add_argument("--torch-updates", type=int, default=100)
    args = parser.parse_args()
    import torch

    print(f"{pinned()}; torch {torch.__version__}, jax {jax.__version__}")
    rate, flops, roofline, config = jax_updates_per_second(args.chunk)
    print(f"matmul rate beside the timed calls (JAX, 256x256 @ 256x256): {roofline / 1e9:.1f} GFLOP/s\n")
    twin = torch_updates_per_second(config, args.torch_updates)
    print("| model | o2o upd/s | PyTorch-eager twin | ratio | GFLOP/update (XLA) | of roofline |")
    print("|---|---|---|---|---|---|")
    print(f"| DT K={config.context_length}, {config.num_layers}x{config.embedding_dim}, batch {config.batch_size} | "
          f"{rate:.1f} | {twin:.1f} | {rate / twin:.2f} | {flops / 1e9:.2f} | {rate * flops / roofline:.0%} |")


if __name__ == "__main__":
    main()
