"""The algorithm registry: one record per algorithm (its module, the config overrides that define the variant, how it
runs online, aliases, a one-line summary and the paper). The CLI's help and choices, `o2o algos`, `o2o bench` and the
README's table read it. Pure data, no JAX import, so that `o2o --help` stays fast; `o2o.agents.get_algorithm` turns a
record into the agent module and its config.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from o2o.errors import O2OError


@dataclasses.dataclass(frozen=True)
class Algorithm:
    name: str
    module: str  # o2o.agents.<module>: a frozen Config and pure init / update / act
    summary: str
    paper: str
    kind: str  # "offline": learns from a dataset; "online": learns from interaction (given data at most as extra samples)
    variant: dict[str, Any] = dataclasses.field(default_factory=dict)  # Config overrides that define this algorithm
    # OnlineSettings for online runs and fine-tuning, from the paper; None: no critic, nothing to fine-tune with
    online: dict[str, Any] | None = None
    aliases: tuple[str, ...] = ()


RECORDS = (
    Algorithm("bc", "bc", "behaviour cloning with a deterministic tanh policy", "the BC baseline of TD3+BC and CORL",
              "offline"),
    Algorithm("bc10", "bc", "BC on the best 10% of episodes by return (any fraction: --set top_fraction=F)",
              "Chen et al., Decision Transformer, NeurIPS 2021 (Sec. 5)", "offline", variant={"top_fraction": 0.1},
              aliases=("10%bc", "%bc")),
    # TD3+BC's paper defines no fine-tuning; o2o keeps its BC term and the offline data, and never warms up at random.
    Algorithm("td3bc", "td3_bc", "TD3 with a behaviour-cloning term in the actor loss",
              "Fujimoto & Gu, A Minimalist Approach to Offline RL, NeurIPS 2021", "offline",
              online={"offline_sampling": "union", "warmup_steps": 0}, aliases=("td3+bc", "td3_bc")),
    # IQL paper, Sec. 5.3: the offline data stays in the replay buffer.
    Algorithm("iql", "iql", "implicit Q-learning: expectile values, advantage-weighted policy extraction",
              "Kostrikov, Nair & Levine, ICLR 2022", "offline", online={"offline_sampling": "union", "warmup_steps": 0}),
    # AWAC paper: the replay buffer is seeded with the offline data.
    Algorithm("awac", "awac", "advantage-weighted actor-critic", "Nair et al., AWAC, 2020", "offline",
              online={"offline_sampling": "union", "warmup_steps": 0}),
    Algorithm("cql", "cql", "conservative Q-learning on SAC", "Kumar et al., NeurIPS 2020", "offline",
              online={"offline_sampling": "union", "warmup_steps": 0}),
    # Cal-QL paper: mixing ratio 0.5 offline/online.
    Algorithm("calql", "cql", "CQL with Q-values bounded below by Monte-Carlo returns", "Nakamoto et al., NeurIPS 2023",
              "offline", variant={"calibrated": True}, online={"offline_sampling": "symmetric", "warmup_steps": 0},
              aliases=("cal-ql",)),
    Algorithm("sac", "sac", "soft actor-critic with automatic temperature", "Haarnoja et al., 2018", "online",
              online={"warmup_steps": 5_000}),
    # TD3 paper: 25k random steps (start_timesteps).
    Algorithm("td3", "td3_bc", "twin delayed DDPG", "Fujimoto et al., ICML 2018", "online",
              variant={"behavior_cloning": False, "normalize_observations": False}, online={"warmup_steps": 25_000}),
    # RLPD paper: 50/50 batches, UTD 20.
    Algorithm("rlpd", "sac", "SAC with LayerNorm, 10 critics (2 for the target), UTD 20, half of every batch offline",
              "Ball et al., ICML 2023", "online",
              variant={"num_critics": 10, "critic_subset": 2, "critic_layer_norm": True, "actor_uses_mean_q": True,
                       "target_entropy_per_action_dim": -0.5},
              online={"offline_sampling": "symmetric", "utd": 20, "warmup_steps": 0}),
    # WSRL paper and code: 5k warm-up steps by the pre-trained policy, no offline data kept, UTD 4.
    Algorithm("wsrl", "sac", "SAC warm-started from a CQL/Cal-QL run, warmed up by its policy, no offline data kept",
              "Zhou et al., WSRL, ICLR 2025", "online",
              online={"offline_sampling": "none", "warmup_policy": "pretrained", "warmup_steps": 5_000, "utd": 4}),
)
REGISTRY = {r.name: r for r in RECORDS}
_ALIASES = {alias: r.name for r in RECORDS for alias in r.aliases}


def canonical_name(name: str) -> str:
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in REGISTRY:
        raise O2OError(f"unknown algorithm {name!r}; choose one of {', '.join(REGISTRY)}")
    return key


def record(name: str) -> Algorithm:
    return REGISTRY[canonical_name(name)]


def names(kind: str | None = None) -> list[str]:
    return [r.name for r in RECORDS if kind is None or r.kind == kind]


def fine_tunes(name: str) -> bool:
    """Whether a run of this algorithm can continue online (it learns a critic)."""
    return record(name).online is not None


def online_defaults(name: str) -> dict[str, Any]:
    return dict(record(name).online or {})


def markdown_table() -> str:
    """The README's algorithm table."""
    lines = ["| name | kind | what it is | paper | online: offline data, UTD, warm-up |", "|---|---|---|---|---|"]
    for r in RECORDS:
        if r.online is None:
            online = "offline only"
        else:
            steps = r.online.get("warmup_steps", 0)
            warmup = f"{steps:,} steps ({r.online.get('warmup_policy', 'random')} actions)" if steps else "none"
            online = f"{r.online.get('offline_sampling', 'none')}, {r.online.get('utd', 1)}, {warmup}"
        aliases = f" ({', '.join(r.aliases)})" if r.aliases else ""
        lines.append(f"| `{r.name}`{aliases} | {r.kind} | {r.summary} | {r.paper} | {online} |")
    return "\n".join(lines)
