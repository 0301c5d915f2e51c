"""The algorithm registry: one record per algorithm (its module, the config overrides that define the variant, how it
runs online, aliases, a one-line summary, the paper) and what each update was checked against (`CHECKS`). The CLI's
help and choices, `o2o algos`, `o2o bench`, the README's table and the documentation site's algorithm pages read it.
Pure data, no JAX import, so that `o2o --help` stays fast; `o2o.agents.get_algorithm` turns a record into the agent
module and its config.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Iterable
from pathlib import PurePath
from typing import Any

from o2o.errors import O2OError
from o2o.presets import (CALQL_ANTMAZE, CQL_ANTMAZE, DT_PRESETS, EDAC_PRESETS, FQL_OGBENCH, IQL_ANTMAZE, IQL_OGBENCH,
                         LBSAC_BATCH, LBSAC_LR, LBSAC_PRESETS, OGBENCH_PRESET, REBRAC_ANTMAZE, REBRAC_OGBENCH,
                         REBRAC_PRESETS, RIQL_PRESETS, RO2O_PRESETS, SACN_PRESETS)


@dataclasses.dataclass(frozen=True)
class Check:
    """What an algorithm's update was checked against: a reference implementation run on o2o's initial parameters, one
    batch and the same random draws (its fixture tests/fixtures/parity/NAME.json, which tests/test_parity.py compares
    and tests/test_checked_against.py holds this record to), and its learning curve at equal budget."""

    code: str  # the reference: OWNER/REPO on GitHub (the authors' code where it runs, else a trusted reimplementation)
    fixture: str = ""  # the fixture's name where it is not the algorithm's (bc10: bc's update on the selected episodes)
    commit: str = ""  # the commit its update ran at for the fixture; "": no fixture yet
    deviations: tuple[str, ...] = ()  # differences o2o keeps by design, as the fixture names them (its JSON: the effect)
    learning: str = ""  # learning parity at equal budget: the verdict, data, budget and seeds; "": not measured

    def summary(self) -> str:
        """One table cell: the reference, its commit, update parity and learning parity."""
        if not self.commit:
            return f"{self.code}: not yet checked"
        kept = f", {len(self.deviations)} deviation{'s' * (len(self.deviations) > 1)} kept" if self.deviations else ""
        learning = f"; learning: {self.learning}" if self.learning else ""
        return f"{self.code}@{self.commit[:7]}: update ✓{kept}{learning}"


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
    # Config overrides per dataset, from the paper's tables: keys "ENV-LEVEL" (hopper-medium-replay) or "ENV" (hopper)
    presets: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    # Config fields nothing of this algorithm reads (taken over from the Config it extends, or switched off by its variant
    # or its module's defaults): a user's --set of one is an error
    unread: tuple[str, ...] = ()
    # online: one actor and temperature step per env step, after all its UTD critic steps (Config.actor_every = the
    # run's UTD) instead of one after every critic step
    actor_step_per_env_step: bool = False

    @property
    def checked(self) -> Check | None:
        """What this algorithm's update was checked against (`CHECKS`); None: not yet checked."""
        return CHECKS.get(self.name)


# Q-chunking's main.py: start_training 5,000 online steps (acting by the policy), uniform offline + online replay
QC_ONLINE = {"offline_sampling": "union", "warmup_steps": 5_000, "warmup_policy": "pretrained"}
# SUNG's code (both bases): one update per env step from the first, 90% of every batch from the newest 20,000 online
# steps and 10% from the offline data and every online step (its OORB), acting by optimistic exploration.
SUNG_ONLINE = {"offline_sampling": "recent", "offline_fraction": 0.1, "recent_steps": 20_000, "warmup_steps": 0}


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
              "Kostrikov, Nair & Levine, ICLR 2022", "offline", online={"offline_sampling": "union", "warmup_steps": 0},
              presets={**IQL_OGBENCH, **IQL_ANTMAZE}),
    # FamO2O's code: IQL's fine-tuning (offline data kept in the buffer, no warm-up, one update per env step).
    Algorithm("famo2o", "famo2o",
              "IQL with a universal policy over balance coefficients, a balance model picking one per state",
              "Wang et al., FamO2O, NeurIPS 2023", "offline", online={"offline_sampling": "union", "warmup_steps": 0},
              unread=("temperature",)),  # IQL's one beta, replaced by the family
    # RIQL's paper learns offline only, and its deterministic policy has no exploration noise to fine-tune with.
    Algorithm("riql", "riql", "IQL for corrupted data: normalized states, Q-ensemble quantile, Huber critic loss",
              "Yang et al., Towards Robust Offline RL under Diverse Data Corruption, ICLR 2024", "offline",
              presets=RIQL_PRESETS),
    # AWAC paper: the replay buffer is seeded with the offline data.
    Algorithm("awac", "awac", "advantage-weighted actor-critic", "Nair et al., AWAC, 2020", "offline",
              online={"offline_sampling": "union", "warmup_steps": 0}),
    Algorithm("cql", "cql", "conservative Q-learning on SAC", "Kumar et al., NeurIPS 2020", "offline",
              online={"offline_sampling": "union", "warmup_steps": 0}, presets=CQL_ANTMAZE,
              unread=("sparse_failure_reward",)),  # Cal-QL's returns-to-go, which CQL never computes
    # Cal-QL paper: mixing ratio 0.5 offline/online.
    Algorithm("calql", "cql", "CQL with Q-values bounded below by Monte-Carlo returns", "Nakamoto et al., NeurIPS 2023",
              "offline", variant={"calibrated": True}, online={"offline_sampling": "symmetric", "warmup_steps": 0},
              presets=CALQL_ANTMAZE, aliases=("cal-ql",)),
    # ReBRAC's fine-tuning code: half of every batch offline, critic penalty dropped, actor penalty decayed.
    Algorithm("rebrac", "rebrac", "TD3+BC with actor and critic behaviour penalties, LayerNorm critics, batch 1024",
              "Tarasov et al., Revisiting the Minimalist Approach to Offline RL, NeurIPS 2023", "offline",
              online={"offline_sampling": "symmetric", "warmup_steps": 0}, presets={**REBRAC_PRESETS, **REBRAC_OGBENCH, **REBRAC_ANTMAZE},
              unread=("alpha", "behavior_cloning")),  # its own actor loss replaces TD3+BC's
    # FQL paper: fine-tuning keeps the objective, with the offline data in the replay buffer.
    Algorithm("fql", "fql", "flow-matching behaviour policy distilled into a one-step policy that maximises Q",
              "Park, Li & Levine, Flow Q-Learning, ICML 2025", "offline",
              online={"offline_sampling": "union", "warmup_steps": 0}, presets=FQL_OGBENCH),
    # QC's code: the offline data stays in the one replay buffer; 5,000 env steps by the policy before updates resume.
    Algorithm("qc", "qc", "FQL's flow and critics over chunks of 5 actions, acting by the best of 32 flow chunks "
              "under Q",
              "Li, Zhou & Levine, Reinforcement Learning with Action Chunking, NeurIPS 2025", "offline",
              online=QC_ONLINE, aliases=("q-chunking",),
              unread=("alpha", "normalize_q_loss")),  # the one-step policy's terms, which QC never trains
    Algorithm("qc-fql", "qc", "Q-chunking with FQL's one-step policy distilled from the chunk flow (alpha 100)",
              "Li, Zhou & Levine, Reinforcement Learning with Action Chunking, NeurIPS 2025", "offline",
              variant={"policy": "distill"}, online=QC_ONLINE, unread=("num_samples",)),
    Algorithm("dt", "dt", "a causal transformer over (return-to-go, state, action) windows, conditioned on a target return",
              "Chen et al., Decision Transformer, NeurIPS 2021", "offline", aliases=("decision-transformer",),
              presets=DT_PRESETS),
    Algorithm("sacn", "edac", "SAC with N critics and the ensemble minimum as pessimism",
              "An et al., Uncertainty-Based Offline RL with Diversified Q-Ensemble, NeurIPS 2021", "offline",
              variant={"edac_init": True}, online={"offline_sampling": "union", "warmup_steps": 0},
              aliases=("sac-n",), presets=SACN_PRESETS),
    Algorithm("edac", "edac", "SAC-N with a term that diversifies the critics' action gradients",
              "An et al., Uncertainty-Based Offline RL with Diversified Q-Ensemble, NeurIPS 2021", "offline",
              variant={"edac_init": True, "eta": 1.0}, online={"offline_sampling": "union", "warmup_steps": 0},
              presets=EDAC_PRESETS),
    Algorithm("lbsac", "edac", "SAC-N with batch 10,000 and square-root-scaled learning rates, fewer critics",
              "Nikulin et al., Q-Ensemble for Offline RL: Don't Scale the Ensemble, Scale the Batch Size, 2022",
              "offline", variant={"batch_size": LBSAC_BATCH, "actor_lr": LBSAC_LR, "critic_lr": LBSAC_LR,
                                  "temperature_lr": LBSAC_LR},
              online={"offline_sampling": "union", "warmup_steps": 0}, aliases=("lb-sac",), presets=LBSAC_PRESETS),
    Algorithm("sung", "sung", "TD3+BC with a VAE's density of (s, a): acts with rare actions among high-Q ones and "
              "keeps the BC term on the rarest policy actions only, online",
              "Guo et al., A Simple Unified Uncertainty-Guided Framework for Offline-to-Online RL, IEEE TNNLS 2025",
              "offline", online=SUNG_ONLINE,
              unread=("behavior_cloning",)),  # TD3+BC's switch: SUNG's BC term has its weight, bc_weight
    Algorithm("sung-cql", "sung_cql", "CQL with a VAE's density of (s, a): acts with the highest-Q of the rarest "
              "candidates and keeps the conservative term on rare transitions only, online",
              "Guo et al., A Simple Unified Uncertainty-Guided Framework for Offline-to-Online RL, IEEE TNNLS 2025",
              "offline", online=SUNG_ONLINE,
              # Cal-QL's bound and JaxCQL's options, which SUNG's CQL runs never apply
              unread=("calibrated", "sparse_failure_reward", "max_target_backup", "cql_target_action_gap")),
    # RO2O's fine-tuning code: a new replay buffer of online steps only, 2,500 steps by the pre-trained policy before
    # the first update, one update per step, the offline terms dropped (ro2o.online_overrides).
    Algorithm("ro2o", "ro2o", "SAC-N with Q and policy smoothness under state perturbations and a pessimism term on "
              "perturbed states",
              "Wen et al., Towards Robust Offline-to-Online RL via Uncertainty and Smoothness, 2023", "offline",
              variant={"edac_init": True},
              online={"offline_sampling": "none", "warmup_policy": "pretrained", "warmup_steps": 2_500},
              presets=RO2O_PRESETS, unread=("eta",)),  # EDAC's diversity term, which RO2O's code does not add
    Algorithm("sac", "sac", "soft actor-critic with automatic temperature", "Haarnoja et al., 2018", "online",
              online={"warmup_steps": 5_000}),
    # TD3 paper: 25k random steps (start_timesteps).
    Algorithm("td3", "td3_bc", "twin delayed DDPG", "Fujimoto et al., ICML 2018", "online",
              variant={"behavior_cloning": False, "normalize_observations": False}, online={"warmup_steps": 25_000},
              unread=("alpha",)),  # TD3+BC's weight of the Q term against its BC term
    # RLPD paper: 50/50 batches, UTD 20.
    Algorithm("rlpd", "sac", "SAC with LayerNorm, 10 critics (2 for the target), UTD 20, half of every batch offline",
              "Ball et al., ICML 2023", "online",
              variant={"num_critics": 10, "critic_subset": 2, "critic_layer_norm": True, "actor_uses_mean_q": True,
                       "target_entropy_per_action_dim": -0.5},
              online={"offline_sampling": "symmetric", "utd": 20, "warmup_steps": 0}, actor_step_per_env_step=True),
    # WSRL paper and code: 5k warm-up steps by the pre-trained policy, no offline data kept, UTD 4.
    Algorithm("wsrl", "sac", "SAC warm-started from a CQL/Cal-QL run, warmed up by its policy, no offline data kept",
              "Zhou et al., WSRL, ICLR 2025", "online",
              online={"offline_sampling": "none", "warmup_policy": "pretrained", "warmup_steps": 5_000, "utd": 4},
              actor_step_per_env_step=True),
)
# What each update was checked against: the fixtures tests/fixtures/parity/NAME.json (benchmarks/parity/README.md has
# each reference, why it was chosen, and every deviation with its measured effect); tests/test_checked_against.py
# holds these records to the fixtures.
CHECKS = {
    "bc": Check("tinkoff-ai/CORL", commit="6afec90484bbf47dee05fdf525e26a3ebe028e9b"),
    "bc10": Check("tinkoff-ai/CORL", fixture="bc", commit="6afec90484bbf47dee05fdf525e26a3ebe028e9b"),
    "td3bc": Check("sfujim/TD3_BC", commit="8791ad7d7656cb8396f1b3ac8c37f170b2a2dd5f",
               learning="equal at 10 + 10 seeds, 10k updates, Hopper-v5 medium (27.6 vs 27.9)"),
    "iql": Check("ikostrikov/implicit_q_learning", commit="09d700248117881a75cb21f0adb95c6c8a694cb2",
               learning="equal at 10 + 10 seeds, 10k updates, Hopper-v5 medium (28.9 vs 28.2)"),
    "famo2o": Check("LeapLabTHU/FamO2O", commit="ea9cb01c86ca7d8cbd782b21cab5d7e1614bc6d7",
                 deviations=("one key for two draws",),
                 learning="equal at 8 + 8 seeds, 10k offline updates, Hopper-v5 medium (28.2 vs 28.5)"),
    "riql": Check("YangRui2015/RIQL", commit="cc07d81201e4cd44415560523fcd719f57bbf12c",
               deviations=("critic initialisation", "state statistics")),
    "awac": Check("tinkoff-ai/CORL", commit="6afec90484bbf47dee05fdf525e26a3ebe028e9b",
               deviations=("policy mean", "log-std lower bound")),
    "cql": Check("nakamotoo/Cal-QL", commit="ac6eafec22e8d60836573e1f488c7f626ce8a77e",
               deviations=("update order", "log-std scalars", "samples per loss", "target")),
    "calql": Check("nakamotoo/Cal-QL", commit="ac6eafec22e8d60836573e1f488c7f626ce8a77e",
               deviations=("update order", "log-std scalars", "samples per loss", "target"),
               learning="equal at 50 + 50 seeds, 10k offline updates, Pendulum-v1 mixed data (22.6 vs 23.1)"),
    "rebrac": Check("tinkoff-ai/ReBRAC", commit="694385b72fcef2ae318e3f0ff41ca36122355343",
               deviations=("actor schedule", "actor target"),
               learning="equal at 5 + 5 seeds, 10k updates, Hopper-v5 medium (9.5 vs 7.4)"),
    "fql": Check("seohongpark/fql", commit="719d04417cb0b206deddbc7d761b3e710c3d750c",
               deviations=("target critic", "one optimiser or three"),
               learning="equal at 50 + 50 seeds, 10k updates, Pendulum-v1 mixed data (77.1 vs 80.7); OGBench "
                        "cube-single task 2 (o2o-made): AUC equal, final inconclusive at 9 + 9, 20k updates (35.8 vs "
                        "28.4)"),
    "qc": Check("ColinQiyangLi/qc", commit="48283b4f662bd1c127ec9fa80647b49759f10653",
                deviations=("one optimiser or three", "two discounts"),
                learning="equal at 30 + 30 seeds, 10k updates, Pendulum-v1 mixed data, chunks of 2 (33.2 vs 32.5)"),
    "qc-fql": Check("ColinQiyangLi/qc", commit="48283b4f662bd1c127ec9fa80647b49759f10653",
                    deviations=("one optimiser or three", "two discounts")),
    "dt": Check("kzl/decision-transformer", commit="e2d82e68f330c00f763507b3b01d774740bee53f",
               deviations=("window layout", "LayerNorm epsilon", "embedding dropout", "gradient clipping")),
    "sacn": Check("snu-mllab/EDAC", commit="198d5708701b531fd97a918a33152e1914ea14d7",
               deviations=("which critics the actor loss reads", "log pi's tanh correction")),
    "edac": Check("snu-mllab/EDAC", commit="198d5708701b531fd97a918a33152e1914ea14d7",
               deviations=("which critics the actor loss reads", "log pi's tanh correction"),
               learning="equal at 3 + 3 seeds, 10k updates, HalfCheetah-v5 medium-replay (22.4 vs 23.8)"),
    "sung": Check("guosyjlu/SUNG", commit="88dc872fe4920c098fe6cff0d5cc4dee713929c5",
                  learning="fine-tuning inconclusive at 5 + 5 seeds, 6k env steps from a poor Pendulum-v1 agent "
                           "(91.0 vs 93.4)"),
    "sung-cql": Check("guosyjlu/SUNG", commit="88dc872fe4920c098fe6cff0d5cc4dee713929c5",
                      deviations=("update order", "log-std scalars"),
                      learning="fine-tuning AUC equal, final inconclusive at 15 + 15 seeds, 6k env steps from a "
                               "poor Pendulum-v1 agent (44.3 vs 41.0)"),
    "ro2o": Check("BattleWen/RO2O", commit="d066702273944fa5ec15a3050c05cf30f1ce9e05",
                  deviations=("update order", "log pi's tanh correction"),
                  learning="final equal, AUC inconclusive at 3 + 3 seeds, 10k updates, Pendulum-v1 medium-replay "
                           "(100.9 vs 99.5)"),
    "lbsac": Check("tinkoff-ai/lb-sac", commit="7253267492b144985e765399aa382f0aa7916863",
               deviations=("update order", "critic loss reduction", "log pi's tanh correction",
                           "critic LayerNorm (the hopper-medium preset only)")),
    "sac": Check("ikostrikov/jaxrl", commit="4a9abaff1c915b00ca73d35a30faf16b165e52ec",
               deviations=("temperature loss", "log-std clip")),
    "td3": Check("sfujim/TD3", commit="34770ccdcb51df6f6c7d85c1ba7e40d71b940d16"),
    "rlpd": Check("ikostrikov/rlpd", commit="c90fd4baf28c9c9ef40a81460a2e395092844f88",
               deviations=("temperature loss", "critic loss scale", "log-std clip", "LayerNorm variance"),
               learning="equal at 3 + 3 seeds, 6k env steps, Hopper-v5 with medium data (14.9 vs 16.0) with the "
                        "reference's LayerNorm variance in two passes (as published: 7.7)"),
    "wsrl": Check("zhouzypaul/wsrl", commit="891ee353afe5303835da421c60d4ac35f6e2ef10",
               deviations=("LayerNorm variance", "critic ensemble output layer", "policy LayerNorm", "update order",
                           "critic loss scale", "temperature", "target critic subset",
                           "policy standard deviation bounds", "actor batch")),
}
REGISTRY = {r.name: r for r in RECORDS}
_ALIASES = {alias: r.name for r in RECORDS for alias in r.aliases}


def canonical_name(name: str) -> str:
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in REGISTRY:
        raise O2OError(f"unknown algorithm {name!r}; choose one of {', '.join(REGISTRY)}")
    return key


def record(name: str) -> Algorithm:
    return REGISTRY[canonical_name(name)]


def dataset_key(env_id: str | None, level: str | None, minari_id: str | None = None) -> str | None:
    """The name presets use for a dataset: "hopper-medium-replay" for Hopper-v5's medium-replay data (D4RL's names),
    "ogbench-cube-single" for any OGBench cube-single task, "antmaze-medium-play" for Minari's D4RL/antmaze/medium-play
    (D4RL's name again; its env, AntMaze_Medium_Diverse_GR, is shared with medium-diverse)."""
    if minari_id and minari_id.startswith("D4RL/") and minari_id.count("/") == 2:
        _, domain, name = minari_id.split("/")
        return f"{domain}-{name.rsplit('-v', 1)[0]}".lower()
    if not env_id:
        return None
    from o2o.envs.ogbench import (
        parse,  # here, not at the top: `o2o --help` reads this registry and stays fast
    )

    ogbench_name = parse(env_id)
    if ogbench_name and ogbench_name.singletask:
        return f"{OGBENCH_PRESET}-{ogbench_name.env}"
    env = env_id.lower().rsplit("-v", 1)[0] if "-v" in env_id.lower() else env_id.lower()
    return f"{env}-{level}" if level and not env.endswith(level) else env


D4RL_LEVELS = ("random", "medium", "medium-replay", "medium-expert", "expert", "full-replay")
_D4RL_NAME = re.compile(rf"([a-z0-9]+)-({'|'.join(D4RL_LEVELS)})-v\d+")


def d4rl_level(env_id: str | None, source: str | None) -> str | None:
    """The level a D4RL file's name states (hopper-medium-replay-v2.hdf5: medium-replay), since D4RL's files record it
    nowhere else; None unless the name's env is `env_id`'s (walker2d data evaluated as HalfCheetah, of equal shapes)."""
    # D4RL's downloads are named hopper_medium_replay-v2.hdf5
    found = _D4RL_NAME.fullmatch(PurePath(source).stem.lower().replace("_", "-")) if source and env_id else None
    return found[2] if found and found[1] == dataset_key(env_id, None) else None


def preset(name: str, choice: str | None, env_id: str | None = None, level: str | None = None,
           corruption: str | None = None, minari_id: str | None = None) -> tuple[str | None, dict[str, Any]]:
    """(key, overrides) of the algorithm's preset: `choice` "auto" picks it by the dataset (`dataset_key`; for data
    corrupted as "MODE-TARGET", `o2o.data.corrupt.corruption_key`, "ENV-MODE-TARGET" first; then exact "ENV-LEVEL",
    then "ENV", then the env's family: "antmaze" for AntMaze_UMaze or antmaze-large-play; none if the paper has none),
    "ogbench" the OGBench one of the dataset's env (an error if there is none), "none" or None applies none, anything
    else names one."""
    presets = record(name).presets
    if choice in (None, "none"):
        return None, {}
    if choice == OGBENCH_PRESET:
        key = dataset_key(env_id, level) or ""
        if not key.startswith(f"{OGBENCH_PRESET}-") or key not in presets:
            known = ", ".join(k for k in presets if k.startswith(f"{OGBENCH_PRESET}-")) or "none"
            raise O2OError(f"--preset ogbench: {canonical_name(name)} has no OGBench preset for {env_id or 'this dataset'}"
                           f" (its OGBench presets: {known})")
        return key, dict(presets[key])
    if choice != "auto":
        if choice not in presets:
            known = ", ".join(presets) or "none"
            raise O2OError(f"{canonical_name(name)} has no preset {choice!r}; its presets: {known}")
        return choice, dict(presets[choice])
    key = dataset_key(env_id, level, minari_id)
    corrupted = (f"{key.split('-')[0]}-{corruption}",) if key and corruption else ()
    families = (key.split("-")[0], key.split("-")[0].split("_")[0]) if key and not _ogbench(env_id) else ()
    for candidate in (*corrupted, key, *families) if key else ():
        if candidate in presets:
            return candidate, dict(presets[candidate])
    env = families[-1] if families else None
    tuned = [f"{env}-{known}" for known in D4RL_LEVELS if f"{env}-{known}" in presets]
    if tuned:  # the paper tunes this env per dataset, not this one: said, lest its defaults pass for the paper's
        data = f"{env} data of no known level" if key == env else key
        warnings.warn(f"--preset auto: {canonical_name(name)} has no preset for {data}, so its defaults apply (its "
                      f"presets for {env}: {', '.join(tuned)}; --preset NAME applies one)")
    return None, {}


def _ogbench(env_id: str | None) -> bool:
    """An OGBench task or navigation dataset, whose antmaze is not D4RL's (D4RL's antmaze-medium-play-v2 parses as an
    OGBench name too, but OGBench's mazes come as navigate, stitch and explore)."""
    from o2o.envs.ogbench import parse

    name = parse(env_id) if env_id else None
    return bool(name and (name.singletask or name.kind in ("navigate", "stitch", "explore")))


def names(kind: str | None = None) -> list[str]:
    return [r.name for r in RECORDS if kind is None or r.kind == kind]


def fine_tunes(name: str) -> bool:
    """Whether a run of this algorithm can continue online (it learns a critic)."""
    return record(name).online is not None


def online_defaults(name: str) -> dict[str, Any]:
    return dict(record(name).online or {})


def online_schedule(name: str) -> dict[str, str]:
    """Config overrides under which one update runs as in the algorithm's online runs at its paper's UTD (RLPD's and
    WSRL's actor step after every `utd`-th critic step): what the speed benchmarks time."""
    r = record(name)
    return {"actor_every": str(r.online["utd"])} if r.actor_step_per_env_step else {}


def markdown_table(algos: Iterable[str] | None = None, links: dict[str, str] | None = None) -> str:
    """The README's algorithm table; the docs' pages give `algos` (a subset) and `links` (a page per name)."""
    lines = ["| name | kind | what it is | paper | online: offline data, UTD, warm-up | checked against |",
             "|---|---|---|---|---|---|"]
    for r in RECORDS if algos is None else [record(name) for name in algos]:
        if r.online is None:
            online = "offline only"
        else:
            steps = r.online.get("warmup_steps", 0)
            warmup = f"{steps:,} steps ({r.online.get('warmup_policy', 'random')} actions)" if steps else "none"
            online = f"{r.online.get('offline_sampling', 'none')}, {r.online.get('utd', 1)}, {warmup}"
        aliases = f" ({', '.join(r.aliases)})" if r.aliases else ""
        name = f"[`{r.name}`]({links[r.name]})" if links else f"`{r.name}`"
        checked = r.checked.summary() if r.checked else "not yet checked"
        lines.append(f"| {name}{aliases} | {r.kind} | {r.summary} | {r.paper} | {online} | {checked} |")
    return "\n".join(lines)
