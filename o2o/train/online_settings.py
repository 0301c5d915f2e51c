"""An online run's settings: what defines it (saved as config.json, so that a resume rebuilds it) and its checks."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from o2o.agents import REWARD_BONUSES
from o2o.algorithms import online_defaults
from o2o.errors import O2OError
from o2o.train import runs
from o2o.train.online_step import SAMPLING

NO_UPDATE = "no online update will run"  # the start of the warning, which `o2o run` gives before its offline phase
WARMUP_POLICIES = ("random", "pretrained")


@dataclasses.dataclass
class OnlineSettings:
    """Everything that defines an online run; saved as config.json so that a resume rebuilds it."""

    algo: str
    env: str | None = None
    steps: int = 100_000
    seeds: int = 1
    seed: int = 0
    utd: int = 1
    warmup_steps: int = 5_000
    warmup_policy: str = "random"
    eval_every: int = 10_000
    eval_episodes: int = 10
    log_every: int = 1_000
    keep_policy_snapshots: bool = False
    buffer_capacity: int | None = None
    offline_dataset: str | None = None
    offline_sampling: str = "none"
    offline_fraction: float = 0.1  # sampling "recent": the share of every batch drawn from offline + online data
    recent_steps: int = 20_000  # sampling "recent": the newest online steps the rest of every batch is drawn from
    reward_bonus: str = "none"  # "sera": SERA's Q-conditioned state-entropy bonus added to every batch's rewards
    bonus_neighbours: int = 10  # reward bonus: k of its k-nearest-neighbour estimate (the point itself counted)
    bonus_scale: float = 1.0  # reward bonus: lambda in r + lambda tanh(r_int)
    init_from: str | None = None
    out: str | None = None
    agent_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)

    def check(self) -> None:
        runs.check_counts("online run", ("log_every", "buffer_capacity"), steps=self.steps, seeds=self.seeds,
                          utd=self.utd, warmup_steps_or_zero=self.warmup_steps, eval_every=self.eval_every,
                          eval_episodes_or_zero=self.eval_episodes, log_every=self.log_every,
                          buffer_capacity=self.buffer_capacity)
        if self.offline_sampling not in SAMPLING:
            raise O2OError(f"offline sampling {self.offline_sampling!r}; choose one of {', '.join(SAMPLING)}")
        if not 0.0 <= self.offline_fraction <= 1.0 or not (isinstance(self.recent_steps, int) and self.recent_steps >= 1):
            raise O2OError(f"sampling 'recent' takes an offline fraction in [0, 1] and at least 1 recent step, not "
                           f"{self.offline_fraction} and {self.recent_steps}")
        if self.reward_bonus not in ("none", *REWARD_BONUSES):
            raise O2OError(f"reward bonus {self.reward_bonus!r}; choose one of none, {', '.join(REWARD_BONUSES)}")
        if self.warmup_policy not in WARMUP_POLICIES:
            raise O2OError(f"warm-up policy {self.warmup_policy!r}; choose one of {', '.join(WARMUP_POLICIES)}")

    def warn_if_no_update(self) -> None:
        if self.warmup_steps >= self.steps:
            warnings.warn(f"{NO_UPDATE}: the warm-up ({self.warmup_steps:,} env steps) covers all {self.steps:,} "
                          "online steps; lower --warmup-steps or raise the online steps", RuntimeWarning, stacklevel=3)

    def check_windows(self, window: int) -> None:
        """Batch rows of `window` consecutive steps need a buffer that never overwrites (a window would join the
        newest steps to the oldest) and, where some of a batch comes from the buffer alone (sampling none or
        symmetric), `window` steps in it before the first update."""
        if window == 1:
            return
        if self.offline_sampling == "recent":
            raise O2OError(f"{self.algo} samples windows of {window} steps, which sampling 'recent' does not draw")
        if self.buffer_capacity is not None and self.buffer_capacity < self.steps:
            raise O2OError(f"{self.algo} samples windows of {window} steps: buffer_capacity must hold every online "
                           f"step ({self.steps}), not {self.buffer_capacity}")
        if self.offline_sampling != "union" and self.warmup_steps < window:
            raise O2OError(f"{self.algo} samples windows of {window} steps from the replay buffer with offline "
                           f"sampling {self.offline_sampling!r}: --warmup-steps must be at least {window}")

    @property
    def learning_steps(self) -> int:
        """Env steps with updates: those after the warm-up."""
        return max(0, self.steps - self.warmup_steps)


def settings_for(algo: str, **given: Any) -> OnlineSettings:
    """OnlineSettings for `algo`: the user's values where given (not None), else the algorithm's paper defaults."""
    defaults = online_defaults(algo)
    return OnlineSettings(algo=algo, **{**defaults, **{k: v for k, v in given.items() if v is not None}})
