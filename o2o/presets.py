"""The papers' per-dataset settings (presets) that the algorithm registry (`o2o.algorithms`) attaches to its records:
config overrides by dataset, keyed "ENV-LEVEL" (hopper-medium-replay), "ENV" (hopper), "ogbench-ENV" (any task of an
OGBench env) or a name a user picks with --preset. Pure data, no JAX import."""

from __future__ import annotations

from typing import Any

def per_dataset(fields: tuple[str, ...], table: dict[str, tuple]) -> dict[str, dict[str, Any]]:
    return {dataset: dict(zip(fields, values)) for dataset, values in table.items()}


# ReBRAC paper, Table 8 (the authors' configs): (actor_bc_coef, critic_bc_coef)
REBRAC_PRESETS = per_dataset(("actor_bc_coef", "critic_bc_coef"), {
    "halfcheetah-medium": (0.001, 0.01), "halfcheetah-medium-replay": (0.01, 0.001), "halfcheetah-medium-expert": (0.01, 0.1),
    "hopper-medium": (0.01, 0.01), "hopper-medium-replay": (0.05, 0.5), "hopper-medium-expert": (0.1, 0.01),
    "walker2d-medium": (0.05, 0.1), "walker2d-medium-replay": (0.05, 0.01), "walker2d-medium-expert": (0.01, 0.01)})
# EDAC paper, Table 5, as CORL's configs: (num_critics, eta)
EDAC_PRESETS = per_dataset(("num_critics", "eta"), {
    "halfcheetah-medium": (10, 1.0), "halfcheetah-medium-replay": (10, 1.0), "halfcheetah-medium-expert": (10, 5.0),
    "hopper-medium": (50, 1.0), "hopper-medium-replay": (50, 1.0), "hopper-medium-expert": (50, 1.0),
    "walker2d-medium": (10, 1.0), "walker2d-medium-replay": (10, 1.0), "walker2d-medium-expert": (10, 5.0)})
# EDAC paper, Table 5 (SAC-N column), as CORL's configs: num_critics
SACN_PRESETS = per_dataset(("num_critics",), {
    "halfcheetah": (10,), "hopper-medium": (500,), "hopper-medium-replay": (200,), "hopper-medium-expert": (200,),
    "walker2d": (20,)})
# LB-SAC's configs (Nikulin et al.'s code): num_critics; LayerNorm for hopper-medium
LBSAC_PRESETS = per_dataset(("num_critics",), {
    "halfcheetah-medium": (4,), "halfcheetah-medium-replay": (10,), "halfcheetah-medium-expert": (8,),
    "hopper-medium": (25,), "hopper-medium-replay": (20,), "hopper-medium-expert": (40,),
    "walker2d-medium": (10,), "walker2d-medium-replay": (10,), "walker2d-medium-expert": (10,)})
LBSAC_PRESETS["hopper-medium"]["critic_layer_norm"] = True
# LB-SAC: batch 10,000 and every learning rate scaled by sqrt(10000 / 256) from 3e-4 (the authors' configs: 0.0018)
LBSAC_BATCH, LBSAC_LR = 10_000, 0.0018

# OGBench singletask, the FQL paper's settings (Park, Li & Levine, ICML 2025, Table 6 and Appendix): discount 0.99,
# batch 256, 4 hidden layers (IQL 4 x 256 on the state-based manipulation tasks, the others 4 x 512), rewards as
# relabelled (no scaling), states as observed. Keys "ogbench-ENV".
_OGBENCH_ENVS = ("cube-single", "cube-double", "scene", "puzzle-3x3", "puzzle-4x4", "antmaze-large", "humanoidmaze-medium")
IQL_OGBENCH = per_dataset(("temperature",), dict(zip((f"ogbench-{e}" for e in _OGBENCH_ENVS), (
    (1.0,), (0.3,), (10.0,), (10.0,), (3.0,), (10.0,), (10.0,)))))
for _env, _values in IQL_OGBENCH.items():
    _values.update(expectile=0.9, scale_rewards_by_return_range=False, batch_size=256, discount=0.99,
                   hidden_dims=(256,) * 4 if _env.startswith(("ogbench-cube", "ogbench-scene", "ogbench-puzzle"))
                   else (512,) * 4)
REBRAC_OGBENCH = per_dataset(("actor_bc_coef", "critic_bc_coef"), dict(zip((f"ogbench-{e}" for e in _OGBENCH_ENVS), (
    (1.0, 0.0), (0.1, 0.0), (0.1, 0.01), (0.3, 0.01), (0.3, 0.01), (0.003, 0.01), (0.01, 0.01)))))
for _values in REBRAC_OGBENCH.values():  # lr 3e-4 for both: seohongpark/fql agents/rebrac.py (ReBRAC's D4RL 1e-3)
    _values.update(hidden_dims=(512,) * 4, batch_size=256, discount=0.99, actor_lr=3e-4, critic_lr=3e-4)
# FQL: alpha per env (Table 6; the paper's commands), the mean of the critics but for antmaze (min)
FQL_OGBENCH = per_dataset(("alpha",), dict(zip((f"ogbench-{e}" for e in _OGBENCH_ENVS), (
    (300.0,), (300.0,), (300.0,), (1000.0,), (1000.0,), (10.0,), (30.0,)))))
FQL_OGBENCH["ogbench-antmaze-large"]["q_aggregation"] = "min"
for _values in FQL_OGBENCH.values():
    _values.update(hidden_dims=(512,) * 4, batch_size=256, discount=0.99)
for _presets in (IQL_OGBENCH, REBRAC_OGBENCH, FQL_OGBENCH):  # the paper's longer horizon for humanoidmaze
    _presets["ogbench-humanoidmaze-medium"]["discount"] = 0.995
OGBENCH_PRESET = "ogbench"
# RIQL's configs (YangRui2015/RIQL, RIQL_config.py; paper, Table 6): (huber_sigma, quantile, num_critics) per env and
# corruption, keys "ENV-MODE-TARGET" (`o2o data corrupt` records the corruption; clean data keeps the defaults 1, 0.25, 5)
RIQL_PRESETS = per_dataset(("huber_sigma", "quantile", "num_critics"), {
    f"{env}-{mode}-{target}": values for (mode, target), per_env in {
        ("random", "states"): ((0.1, 0.1, 5), (0.1, 0.25, 5), (0.1, 0.25, 3)),
        ("random", "actions"): ((0.5, 0.25, 3), (0.5, 0.1, 5), (0.1, 0.25, 5)),
        ("random", "rewards"): ((3.0, 0.25, 5), (3.0, 0.1, 5), (1.0, 0.25, 3)),
        ("random", "dynamics"): ((3.0, 0.25, 5), (1.0, 0.25, 3), (1.0, 0.5, 5)),
        ("adversarial", "states"): ((0.1, 0.1, 5), (1.0, 0.25, 5), (1.0, 0.25, 5)),
        ("adversarial", "actions"): ((1.0, 0.1, 5), (1.0, 0.1, 5), (1.0, 0.25, 5)),
        ("adversarial", "rewards"): ((1.0, 0.1, 5), (3.0, 0.1, 5), (0.1, 0.25, 5)),
        ("adversarial", "dynamics"): ((1.0, 0.1, 5), (1.0, 0.25, 5), (1.0, 0.5, 5)),
    }.items() for env, values in zip(("halfcheetah", "walker2d", "hopper"), per_env)})
# Decision Transformer paper, Appendix (gym): the return evaluation is conditioned on
DT_PRESETS = per_dataset(("target_return",), {"hopper": (3600.0,), "halfcheetah": (6000.0,), "walker2d": (5000.0,)})

# RO2O's AntMaze commands (the authors' README: ro2o_antmaze_LCB.py on umaze, ro2o_antmaze_min.py on large-play; the
# other settings their scripts' defaults, as o2o's), picked by name: per-critic targets, a BC term, their pessimism
# settings, the LCB actor (beta -4) or the minimum on 4 (r - 0.5), and the matching fine-tuning script (the min script
# standardizes states by std + 1e-6, o2o by std + 1e-3 as the LCB one)
_RO2O_ANTMAZE = dict(per_critic_targets=True, q_smooth_eps=0.0, policy_smooth_eps=0.005, ood_smooth_eps=0.01,
                     ood_uncertainty_min=1.0)
RO2O_PRESETS = {
    "antmaze-lcb": {**_RO2O_ANTMAZE, "actor_std_weight": -4.0, "bc_weight": 5.0, "ood_weight": 0.3,
                    "ood_uncertainty": 1.0, "ood_uncertainty_decay": 0.0, "finetuning": "antmaze-lcb"},
    "antmaze-min": {**_RO2O_ANTMAZE, "bc_weight": 1.0, "ood_weight": 0.5, "ood_uncertainty": 2.0,
                    "ood_uncertainty_decay": 1e-6, "reward_scale": 4.0, "reward_bias": -2.0,
                    "finetuning": "antmaze-min"}}

# AntMaze (D4RL's, Minari's D4RL/antmaze, gymnasium's AntMaze_*: the family key "antmaze"), the authors' settings.
# IQL (ikostrikov/implicit_q_learning, configs/antmaze_config.py; train_offline.py trains on r - 1, as CQL's AntMaze
# script; fine-tuning subtracts 1 from every batch's rewards too)
IQL_ANTMAZE = {"antmaze": {"expectile": 0.9, "temperature": 10.0, "scale_rewards_by_return_range": False,
                           "reward_bias": -1.0}}
# Cal-QL (nakamotoo/Cal-QL, scripts/run_antmaze.sh): CQL's Lagrange form (weight 5, tau 0.8), the target from the best
# of N next actions (its default), a 2 x 256 policy and 4 x 256 critics, rewards 10 r - 5, so that a failed episode's
# returns-to-go are -5 / (1 - gamma); CQL as the same script runs it with enable_calql=False
CQL_ANTMAZE = {"antmaze": {"cql_alpha": 5.0, "cql_target_action_gap": 0.8, "max_target_backup": True,
                           "hidden_dims": (256, 256), "critic_hidden_dims": (256,) * 4, "reward_scale": 10.0,
                           "reward_bias": -5.0}}
CALQL_ANTMAZE = {"antmaze": {**CQL_ANTMAZE["antmaze"], "sparse_failure_reward": -5.0}}
# ReBRAC (tinkoff-ai/ReBRAC, configs/rebrac/antmaze/*.yaml): (actor_bc_coef, critic_bc_coef) per dataset, the family
# key taking umaze's; rewards x 100 ("like in LAPO"), discount 0.999, critic lr 5e-5, actor lr 3e-4, batch 256
REBRAC_ANTMAZE = per_dataset(("actor_bc_coef", "critic_bc_coef"), {
    "antmaze": (0.003, 0.002), "antmaze-umaze": (0.003, 0.002), "antmaze-umaze-diverse": (0.003, 0.001),
    "antmaze-medium-play": (0.001, 0.0005), "antmaze-medium-diverse": (0.001, 0.0),
    "antmaze-large-play": (0.002, 0.001), "antmaze-large-diverse": (0.002, 0.002)})
for _values in REBRAC_ANTMAZE.values():
    _values.update(reward_scale=100.0, discount=0.999, critic_lr=5e-5, actor_lr=3e-4, batch_size=256)
