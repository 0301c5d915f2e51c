"""The valid values of every agent config field, checked by `o2o.agents.get_algorithm` on each config it builds, so that
a bad value (a batch of 0, an expectile of 1.5) or an override the algorithm ignores fails before any work, in one line.

A field's rule is looked up by module first (MODULE_RULES: a name whose range the module's math sets apart), then by
name (FIELD_RULES: one rule for every module that has the field). A rule may depend on other fields of the config
(`critic_subset` at most `num_critics`): then the table holds a function of the config that returns it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Iterable

from o2o.algorithms import Algorithm
from o2o.errors import O2OError
from o2o.nets import INITIALISATIONS


@dataclasses.dataclass(frozen=True)
class Rule:
    """A field's valid values, as a test and as the words an error ends with ("... is outside {description}")."""

    description: str
    allows: Callable[[Any], bool]


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def interval(low: float, high: float, low_closed: bool = False, high_closed: bool = False) -> Rule:
    """Real numbers between `low` and `high`, each end in or out (NaN is in no interval)."""
    def allows(value: Any) -> bool:
        return (_is_real(value) and (low <= value if low_closed else low < value)
                and (value <= high if high_closed else value < high))

    return Rule(f"{'[' if low_closed else '('}{low:g}, {high:g}{']' if high_closed else ')'}", allows)


def integers(low: int, high: int | None = None) -> Rule:
    if high is None:
        return Rule(f"the integers >= {low}", lambda value: _is_integer(value) and value >= low)
    return Rule(f"the integers in [{low}, {high}]", lambda value: _is_integer(value) and low <= value <= high)


def one_of(*choices: Any) -> Rule:
    # by type too: 1 == True, but 1 is not a valid bool
    return Rule("{" + ", ".join(map(repr, choices)) + "}",
                lambda value: any(type(value) is type(c) and value == c for c in choices))


def optional(rule: Rule) -> Rule:
    return Rule(f"None or {rule.description}", lambda value: value is None or rule.allows(value))


POSITIVE = interval(0, math.inf)
NON_NEGATIVE = interval(0, math.inf, low_closed=True)
FINITE = interval(-math.inf, math.inf)
FRACTION = interval(0, 1, high_closed=True)
FRACTION_CLOSED = interval(0, 1, low_closed=True, high_closed=True)
TRUE_OR_FALSE = one_of(True, False)
LAYER_WIDTHS = Rule("non-empty tuples of integers >= 1", lambda value: isinstance(value, tuple) and len(value) > 0
                    and all(_is_integer(width) and width >= 1 for width in value))

RuleEntry = Rule | Callable[[Any], Rule]  # a rule, or a function of the whole config giving one

FIELD_RULES: dict[str, RuleEntry] = {
    **dict.fromkeys(("actor_lr", "critic_lr", "value_lr", "temperature_lr", "learning_rate", "balance_lr",
                     "balance_temperature_lr"), POSITIVE),
    "batch_size": integers(1),
    "hidden_dims": LAYER_WIDTHS,
    "discount": interval(0, 1, high_closed=True),
    "tau": FRACTION,  # 1: the targets copy the online networks
    "expectile": interval(0, 1),  # 0 or 1 weighs one side of the residual only: V runs off to -inf or +inf
    "top_fraction": FRACTION,
    **dict.fromkeys(("policy_noise", "noise_clip", "exploration_noise"), NON_NEGATIVE),
    "policy_frequency": integers(1),
    "actor_every": integers(1),
    "network_init": one_of(*INITIALISATIONS),
    "alpha": NON_NEGATIVE,  # a loss term's weight: TD3+BC's Q term, FQL's distillation; 0 drops the term
    **dict.fromkeys(("actor_bc_coef", "critic_bc_coef", "eta", "cql_alpha", "weight_decay"), NON_NEGATIVE),
    **dict.fromkeys(("actor_decay_steps", "actor_bc_decay_steps", "warmup_steps"), integers(0)),  # 0: none
    "actor_bc_min_scale": interval(0, 1, low_closed=True, high_closed=True),
    "initial_temperature": POSITIVE,  # the temperature is learned as its log
    "target_entropy_per_action_dim": FINITE,
    "num_critics": integers(1),
    "critic_subset": lambda config: Rule(  # drawn without replacement
        f"None or the integers in [1, num_critics = {config.num_critics}]",
        optional(integers(1, config.num_critics)).allows),
    "cql_num_actions": integers(1),
    "cql_temperature": POSITIVE,  # divides the Q-values in the log-sum-exp
    # a failed episode's returns-to-go are sparse_failure_reward / (1 - discount)
    "sparse_failure_reward": lambda config: optional(FINITE) if config.discount < 1 else Rule(
        "None where discount = 1 (the returns-to-go of a failed episode would be infinite)",
        lambda value: value is None),
    "cql_target_action_gap": optional(FINITE),
    "critic_hidden_dims": optional(LAYER_WIDTHS),
    "reward_scale": POSITIVE,  # the rewards trained on: reward_scale r + reward_bias
    "reward_bias": FINITE,
    "flow_steps": integers(1),
    "q_aggregation": one_of("mean", "min"),
    **dict.fromkeys(("context_length", "embedding_dim", "num_layers", "max_timestep"), integers(1)),
    # attention splits the embedding evenly among the heads
    "num_heads": lambda config: Rule(
        f"the divisors of embedding_dim = {config.embedding_dim}",
        lambda value: _is_integer(value) and value >= 1 and config.embedding_dim % value == 0),
    "dropout": interval(0, 1, low_closed=True),
    **dict.fromkeys(("grad_clip", "return_scale"), POSITIVE),
    "target_return": optional(FINITE),
    **dict.fromkeys(("normalize_observations", "behavior_cloning", "critic_layer_norm", "critic_norm_after_activation",
                     "edac_init", "normalize_q", "scale_rewards_by_return_range", "actor_uses_mean_q", "backup_entropy",
                     "calibrated", "normalize_q_loss", "actor_layer_norm", "max_target_backup", "restart_as_authors"),
                    TRUE_OR_FALSE),
}

# SUNG's density model and the share of each batch its conservative term reads (sung, sung_cql)
SUNG_DENSITY = {"uncertain_fraction": interval(0, 1, high_closed=True), "vae_hidden_dims": LAYER_WIDTHS,
                "vae_latent_per_action_dim": integers(1), "vae_lr": POSITIVE, "vae_kl_weight": NON_NEGATIVE,
                "num_candidates": integers(1)}

MODULE_RULES: dict[str, dict[str, RuleEntry]] = {
    "iql": {"temperature": NON_NEGATIVE},  # beta multiplies the advantage: 0 weighs every action alike (BC)
    "riql": {"temperature": NON_NEGATIVE, "quantile": FRACTION_CLOSED, "huber_sigma": POSITIVE,
             "target_min": FINITE, "target_max": lambda config: Rule(
                 f"numbers above target_min = {config.target_min}", lambda value: _is_real(value) and value > config.target_min)},
    "awac": {"temperature": POSITIVE},  # lambda divides the advantage
    "famo2o": {"temperature": NON_NEGATIVE, "coefficient_min": FINITE, "coefficient_max": lambda config: Rule(
                   f"numbers above coefficient_min = {config.coefficient_min}",
                   lambda value: _is_real(value) and math.isfinite(value) and value > config.coefficient_min),
               # sin and cos of each frequency
               "embedding_dim": Rule("the even integers >= 2", lambda value: _is_integer(value) and value >= 2
                                     and value % 2 == 0),
               "embedding_base": interval(1, math.inf), "balance_initial_temperature": POSITIVE,
               "balance_target_entropy": FINITE, "coefficient_source": one_of("uniform", "balance"),
               "batch_mean_weights": TRUE_OR_FALSE},
    "qc": {"horizon": integers(1), "policy": one_of("best-of-n", "distill"), "num_samples": integers(1)},
    # EDAC's term averages over pairs of critics, dividing by N - 1
    "edac": {"num_critics": lambda config: Rule("the integers >= 2 where eta > 0", integers(2).allows)
             if config.eta > 0 else integers(1)},
    "sung": {"bc_weight": NON_NEGATIVE, **SUNG_DENSITY, "top_q": lambda config: integers(1, config.num_candidates)},
    "sung_cql": {"conservative_weight": NON_NEGATIVE, **SUNG_DENSITY,
                 "top_uncertain": lambda config: integers(1, config.num_candidates)},
    # k counts the point itself: k = 1 makes eps 0 for every point
    "sera": {"neighbours": integers(2), "scale": NON_NEGATIVE},
    # the pessimism term's target reads the ensemble's standard deviation (N - 1 in its denominator)
    # and so does the LCB actor's
    "ro2o": {"num_critics": lambda config: Rule("the integers >= 2 where ood_weight > 0 or actor_std_weight is set",
                                                integers(2).allows)
             if config.ood_weight > 0 or config.actor_std_weight is not None else integers(1),
             "q_smooth_tau": FRACTION_CLOSED, "num_perturbations": integers(1),
             **dict.fromkeys(("q_smooth_weight", "ood_weight", "policy_smooth_weight", "q_smooth_eps", "ood_smooth_eps",
                              "policy_smooth_eps", "ood_uncertainty", "ood_uncertainty_min", "ood_uncertainty_decay",
                              "bc_weight"), NON_NEGATIVE),
             "per_critic_targets": TRUE_OR_FALSE, "actor_std_weight": optional(FINITE),
             "finetuning": one_of("mujoco", "antmaze-lcb", "antmaze-min")},
}


def rule_for(module: str, field: str) -> RuleEntry:
    """The rule of `field` in o2o.agents.<module>'s Config; KeyError for a field no table covers."""
    return MODULE_RULES.get(module, {}).get(field) or FIELD_RULES[field]


def check(algorithm: Algorithm, config: Any, overridden: Iterable[str]) -> None:
    """Raise O2OError where a field the user set (`overridden`) is one `algorithm` never reads, or where a field of
    `config` lies outside its valid values."""
    names = [f.name for f in dataclasses.fields(config)]
    ignored = [name for name in overridden if name in algorithm.unread]
    if ignored:
        read = ", ".join(name for name in names if name not in algorithm.unread)
        raise O2OError(f"{algorithm.name} does not read {', '.join(ignored)}; its fields: {read}")
    if "network_init" in overridden and getattr(config, "edac_init", False):
        raise O2OError(f"{algorithm.name}: network_init has no effect while edac_init is true (EDAC's initialisation "
                       "replaces it); set edac_init=false with it")
    entries = [(name, rule_for(algorithm.module, name)) for name in names]
    # fixed rules first, then those made from the config, which read fields checked before them
    for name, entry in sorted(entries, key=lambda item: not isinstance(item[1], Rule)):
        rule = entry if isinstance(entry, Rule) else entry(config)
        value = getattr(config, name)
        if not rule.allows(value):
            raise O2OError(f"{algorithm.name}: {name} = {value!r} is outside {rule.description}")
