"""From the results database's runs to the report's numbers: per-run scores under each final-score protocol, entries
per (method, dataset), aggregates over datasets, pairwise probabilities of improvement, curves and O2O rows.

A method is an algorithm (`ALGO+RW-0.1` where a weighted sampler drew its offline batches, `o2o.data.samplers`), or
`ALGO→ONLINE_ALGO` for a cell fine-tuned online, or the name runs imported from other code carry (`o2o results
import`; `(imported)` is added where o2o has a method of that name). Runs of one method that
differ in budget, algorithm config or online settings are never pooled as seeds: each variant is a method of its own,
named with what differs (`distinguish_variants`); runs in different envs or on different data are on different datasets
(`distinguish_datasets`); and a seed counts once per entry (`mark_repeated_seeds`). A run's scores are its normalized
scores, else its success rates (%), else its returns, chosen once per run (`run_kind`). The final score of a run, on
its last phase (online for a fine-tuned run: without an online evaluation it has none):
- `last`: the last evaluation (D4RL / CORL);
- `last3`: the mean of the last three evaluations (OGBench / FQL); of all of them for a run with fewer, which the report
  says (`RunScores.evaluations`);
- `best`: the best evaluation — optimistic, as it selects a checkpoint with evaluation episodes; shown only so labelled.
"""

from __future__ import annotations

import dataclasses
import json
import math
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from o2o.data import samplers
from o2o.report import stats
from o2o.train.online_settings import OnlineSettings


@dataclasses.dataclass
class RunScores:
    method: str
    algo: str
    online_algo: str | None
    dataset: str
    env: str | None
    level: str | None
    seed: int
    status: str
    final_phase: str
    kind: str  # normalized | success | return
    last: float | None
    last3: float | None
    best: float | None
    offline_last: float | None
    start: float | None  # online step 0
    dip: float | None
    regret: float | None
    curves: dict[str, tuple[list[int], list[float]]]
    evaluations: int  # of the final phase: `last3` averages fewer than three when it has fewer
    variant: dict[str, Any]  # what tells this run's experiment from another of its method: see `variant`
    imported: bool = False  # another code's run (`o2o results import`), not trained by o2o
    sampler: str = "uniform"  # what drew the offline batches (`o2o.data.samplers.label`): part of the method's name
    source: str | None = None  # imported: where it comes from
    file: str | None = None  # imported: the file it was read from
    data_hash: str | None = None  # the content hash of the data it trained on, where the run recorded it
    not_counted: str | None = None  # why a completed run has no final score (then last, last3 and best are None)


SCORE_COLUMNS = {"normalized": "normalized_score", "success": "success_rate", "return": "return_mean"}
UNITS = {"normalized": "normalized score", "success": "success rate (%)", "return": "return"}


def run_kind(evaluations: dict[str, list[dict[str, Any]]]) -> str:
    """A run's unit, chosen once from all its evaluations (the first of SCORE_COLUMNS that any of them has): an
    evaluation missing it (a NaN, which SQLite stores as NULL) is a missing score, never one in another unit."""
    rows = [e for phase in evaluations.values() for e in phase]
    return next((kind for kind, key in SCORE_COLUMNS.items() if any(e.get(key) is not None for e in rows)), "return")


def _value(evaluation: dict[str, Any], column: str) -> float:
    return math.nan if evaluation.get(column) is None else float(evaluation[column])


def method_name(algo: str, online_algo: str | None) -> str:
    return f"{algo}\u2192{online_algo}" if online_algo else algo


def run_scores(run: dict[str, Any]) -> RunScores:
    evaluations = run["evaluations"]
    kind = run_kind(evaluations)
    column = SCORE_COLUMNS[kind]
    curves = {phase: ([e["step"] for e in rows], [_value(e, column) for e in rows])
              for phase, rows in evaluations.items() if rows}
    # a fine-tuned run is scored after fine-tuning: without an online evaluation it has no final score
    fine_tuned = run.get("online_algo")  # set only where an online phase continued an offline one
    final_phase = "online" if "online" in curves or fine_tuned else "offline"
    steps, values = curves.get(final_phase, ([], []))
    missing = [t for t, v in zip(steps, values) if math.isnan(v)]
    not_counted = ("fine-tuned, but no online evaluation to score it by" if fine_tuned and not values else
                   "no evaluation" if not values else
                   f"no {UNITS[kind]} at {final_phase} step {missing[0]} (NaN)" if missing else None)
    counted = not_counted is None
    offline = curves.get("offline")
    start = dip = None
    if "online" in curves and steps and steps[0] == 0:
        start = values[0]
        online_steps = run.get("online_steps") or steps[-1]
        early = [v for t, v in zip(steps, values) if 0 < t <= 0.1 * online_steps]
        dip = min(0.0, min(early) - start) if early else None
    imported = run.get("origin") == "imported"
    configs = json.loads(run.get("config") or "{}")
    offline_settings = configs.get("offline", {}).get("settings", {})
    sampler = offline_settings.get("sampler", "uniform")
    temperature = offline_settings.get("sampler_temperature", samplers.DEFAULT_TEMPERATURE)
    algo = samplers.method_name(run["algo"], sampler, temperature)
    data = (configs.get("offline") or configs.get("online") or {}).get("dataset") or {}
    return RunScores(
        method=run["algo"] if imported else method_name(algo, run.get("online_algo")), algo=run["algo"],
        online_algo=run.get("online_algo"),
        dataset=run["dataset"], env=run.get("env"), level=run.get("level"), seed=run["seed"], status=run["status"],
        final_phase=final_phase, kind=kind,
        last=values[-1] if counted else None, last3=float(np.mean(values[-3:])) if counted else None,
        best=max(values) if counted else None, offline_last=offline[1][-1] if offline else None,
        start=start, dip=dip, regret=run.get("cumulative_regret"), curves=curves, evaluations=len(values),
        variant=variant(run), imported=imported, source=run.get("source") if imported else None,
        file=configs.get("imported", {}).get("file") if imported else None,
        sampler=samplers.label(sampler, temperature), data_hash=data.get("content_hash"), not_counted=not_counted)


def separate_imported(scores: list[RunScores]) -> list[RunScores]:
    """Imported runs never pool with o2o's: an imported method named like one of o2o's becomes `NAME (imported)`."""
    own = {s.method for s in scores if not s.imported}
    return [dataclasses.replace(s, method=f"{s.method} (imported)") if s.imported and s.method in own else s
            for s in scores]


REPEATED_SEED = "repeated seed"  # the status of a run whose seed its entry already counts


ONLINE_FACETS = ("utd", "warmup_steps", "warmup_policy", "offline_sampling", "buffer_capacity")
RECENT_FACETS = ("offline_fraction", "recent_steps")  # read only by offline sampling "recent"
BONUS_FACETS = ("bonus_neighbours", "bonus_scale")  # read only with a reward bonus


def variant(run: dict[str, Any]) -> dict[str, Any]:
    """The budget (`steps`, `online steps`), each algorithm-config field (its value in each phase) and the online
    phase's settings that change the experiment (`online utd`, ...; a setting an older run lacks is its default) of a
    run, from the configs the results database holds: runs of one method that differ here are different experiments."""
    configs = json.loads(run.get("config") or "{}")
    phases = [configs[phase].get("agent_config") or {} for phase in ("offline", "online") if configs.get(phase)]
    fields = sorted(set().union(*phases))
    online = {}
    if configs.get("online"):
        settings = {**dataclasses.asdict(OnlineSettings(algo="")), **configs["online"].get("settings", {})}
        names = (ONLINE_FACETS + (RECENT_FACETS if settings["offline_sampling"] == "recent" else ())
                 + (BONUS_FACETS if settings["reward_bonus"] != "none" else ()))
        online = {f"online {name}": settings[name] for name in names}
    return {"steps": run.get("offline_steps"), "online steps": run.get("online_steps"),
            **{field: [config[field] for config in phases if field in config] for field in fields}, **online}


def distinguish_datasets(scores: list[RunScores]) -> list[RunScores]:
    """Runs on different data never share a dataset label, so they are never pooled as seeds of one entry: where runs
    of one label ran in different envs (a database from before Minari ids were named in full), each gets its env,
    `medium-v0 (Walker2d-v5)`; where they trained on data of different content, the content hash's start,
    `pendulum-mixed [3fa2c1d0]`. A run that records no env or hash (an imported one) keeps the label it has."""
    envs: dict[str, set[str]] = {}
    hashes: dict[tuple[str, str | None], set[str]] = {}
    for s in scores:
        if s.env:
            envs.setdefault(s.dataset, set()).add(s.env)
        if s.data_hash:
            hashes.setdefault((s.dataset, s.env), set()).add(s.data_hash)
    renamed = []
    for s in scores:
        label = s.dataset
        if s.env and len(envs[s.dataset]) > 1:
            label += f" ({s.env})"
        if s.data_hash and len(hashes[(s.dataset, s.env)]) > 1:
            label += f" [{s.data_hash.rpartition(':')[2][:8]}]"
        renamed.append(dataclasses.replace(s, dataset=label))
    return renamed


def distinguish_variants(scores: list[RunScores]) -> list[RunScores]:
    """Renames the runs of a method whose runs on some dataset differ in budget or algorithm config, with what differs
    there, e.g. `iql (8000 steps)` and `iql (2000 steps)`: they become separate methods, never seeds of one entry. The
    same facets name the method's runs on every dataset, so a variant keeps one name across datasets; a method whose
    config changes only from one dataset to another (per-dataset presets) keeps its plain name."""
    varying: dict[str, set[str]] = {}
    groups: dict[tuple[str, str], list[RunScores]] = {}
    for s in scores:
        groups.setdefault((s.method, s.dataset), []).append(s)
    for (method, _), group in groups.items():
        for facet in set().union(*(s.variant for s in group)):
            if len({json.dumps(s.variant.get(facet), sort_keys=True) for s in group}) > 1:
                varying.setdefault(method, set()).add(facet)
    renamed = []
    for s in scores:
        facets = [facet for facet in s.variant if facet in varying.get(s.method, ())]
        label = f"{s.method} ({', '.join(_facet_label(facet, s.variant[facet]) for facet in facets)})"
        renamed.append(dataclasses.replace(s, method=label) if facets else s)
    return renamed


def _facet_label(facet: str, value: Any) -> str:
    if facet == "steps":
        return "online only" if value is None else f"{value} steps"
    if facet == "online steps":
        return "offline only" if value is None else f"{value} online steps"
    if facet.startswith("online "):
        return f"{facet}={value}"
    shown = list(dict.fromkeys(",".join(map(str, v)) if isinstance(v, list) else str(v) for v in value))
    return f"{facet}={'→'.join(shown)}"  # offline→online where fine-tuning changed it


def mark_repeated_seeds(scores: list[RunScores]) -> list[RunScores]:
    """A seed counts once per entry: of the completed runs of one method and dataset that share a seed (the same
    experiment run twice), the first in the database counts and the others get the status `repeated seed`."""
    counted: set[tuple[str, str, int]] = set()
    marked = []
    for s in scores:
        key = (s.method, s.dataset, s.seed)
        if s.status == "completed" and s.last is not None:
            if key in counted:
                s = dataclasses.replace(s, status=REPEATED_SEED)
            counted.add(key)
        marked.append(s)
    return marked


@lru_cache(maxsize=1)
def _published() -> dict[str, Any]:
    return json.loads(resources.files("o2o.report").joinpath("published.json").read_text())


def published(algo: str, online_algo: str | None, env: str | None, level: str | None) -> tuple[float | None, str | None]:
    """The published score of the method on the dataset this one reproduces, with the table's source and caveat:
    D4RL locomotion offline (CORL's table), OGBench singletask offline (FQL's Table 3) and after fine-tuning (its
    Table 4, by the fine-tuning algorithm); (None, None) where no published table covers it."""
    if not env:
        return None, None
    from o2o.envs import ogbench

    if ogbench.is_task_env(env):
        table = _published()["ogbench_online" if online_algo else "ogbench"]
        key = ogbench.task_env_of(env).rsplit("-v", 1)[0]
        value = table["scores"].get(key, {}).get(online_algo or algo)
    elif online_algo or not level:
        return None, None
    else:
        from o2o.envs.scores import d4rl_task

        table = _published()["d4rl"]
        value = table["scores"].get(f"{d4rl_task(env)}-{level}", {}).get(algo)
    return (value, f"{table['source']}; {table['caveat']}") if value is not None else (None, None)


def _mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


PROTOCOLS = {"last": "the last evaluation (D4RL/CORL)", "last3": "the mean of the last three evaluations (OGBench/FQL)"}


def entries(scores: list[RunScores], reps: int, final: str = "last") -> list[dict[str, Any]]:
    """One entry per (method, dataset) over its completed runs (sorted by seed); `final` (a key of PROTOCOLS) is the
    final score the IQM, the aggregates and the comparisons use."""
    groups: dict[tuple[str, str], list[RunScores]] = {}
    for s in sorted(scores, key=lambda s: (s.method, s.dataset, s.seed)):
        if s.status == "completed" and s.last is not None:
            groups.setdefault((s.method, s.dataset), []).append(s)
    out = []
    for (method, dataset), group in groups.items():
        first = group[0]
        chosen = [getattr(s, final) for s in group]
        iqm, ci = stats.iqm_with_ci(np.array(chosen), reps=reps)
        value, source = (published(first.algo, first.online_algo, first.env, first.level) if first.sampler == "uniform"
                         else (None, None))  # the published tables sample uniformly
        entry = {
            "method": method, "algo": first.algo, "online_algo": first.online_algo, "dataset": dataset,
            "env": first.env, "level": first.level, "kind": first.kind, "seeds": len(group),
            "seed_values": [s.seed for s in group], "protocol": final, "final_per_seed": chosen,
            "final_mean": _mean_std(chosen)[0], "final_std": _mean_std(chosen)[1], "iqm": iqm, "iqm_ci": ci,
            **{f"{key}_{name}": value for key in PROTOCOLS
               for name, value in zip(("mean", "std"), _mean_std([getattr(s, key) for s in group]))},
            "best_mean_optimistic": float(np.mean([s.best for s in group])),
            "published": value, "published_source": source, "imported": first.imported,
            "sources": list(dict.fromkeys(s.source for s in group if s.source)),
            "files": list(dict.fromkeys(s.file for s in group if s.file)),
        }
        if first.online_algo:
            entry.update(offline_mean=_maybe_mean([s.offline_last for s in group]),
                         start_mean=_maybe_mean([s.start for s in group]), dip_mean=_maybe_mean([s.dip for s in group]),
                         cumulative_regret=_maybe_mean([s.regret for s in group]))
        out.append(entry)
    return out


def imported_methods(entry_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each imported method with its datasets, seeds, sources and files, for the report to say where it comes from."""
    out: dict[str, dict[str, Any]] = {}
    for e in entry_list:
        if e["imported"]:
            m = out.setdefault(e["method"], {"method": e["method"], "datasets": [], "runs": 0, "sources": [],
                                             "files": []})
            m["datasets"].append(e["dataset"])
            m["runs"] += e["seeds"]
            m["sources"] += [x for x in e["sources"] if x not in m["sources"]]
            m["files"] += [f for f in e["files"] if f not in m["files"]]
    return list(out.values())


def _maybe_mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def score_matrices(entry_list: list[dict[str, Any]], key: str = "final_per_seed") -> dict[str, dict[str, list[float]]]:
    """method -> dataset -> per-seed scores, for entries on a 0-100 scale (normalized or success rate)."""
    out: dict[str, dict[str, list[float]]] = {}
    for e in entry_list:
        if e["kind"] in ("normalized", "success"):
            out.setdefault(e["method"], {})[e["dataset"]] = e[key]
    return out


def aggregate(entry_list: list[dict[str, Any]], reps: int) -> dict[str, dict[str, Any]]:
    """Per method, over its datasets: IQM, mean, median and optimality gap with 95% stratified-bootstrap intervals."""
    matrices = score_matrices(entry_list)
    if not matrices:
        return {}
    scores = {m: stats.rectangular(per_task) for m, per_task in matrices.items()}
    out = stats.aggregates(scores, reps=reps)
    for method, matrix in scores.items():
        out[method].update(datasets=len(matrices[method]), runs_per_dataset=int(matrix.shape[0]))
    return out


def common_matrices(entry_list: list[dict[str, Any]]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Score matrices restricted to the datasets every method has (for profiles and pairwise comparisons)."""
    matrices = score_matrices(entry_list)
    if not matrices:
        return {}, []
    common = sorted(set.intersection(*(set(per_task) for per_task in matrices.values())))
    if not common:
        return {}, []
    return {m: stats.rectangular({d: per_task[d] for d in common}) for m, per_task in matrices.items()}, common


def improvement(entry_list: list[dict[str, Any]], reps: int) -> list[dict[str, Any]]:
    scores, common = common_matrices(entry_list)
    if len(scores) < 2:
        return []
    result = stats.probability_of_improvement(scores, reps=reps)  # each method with all its runs (rliable allows it)
    return [{"x": x, "y": y, "probability": p, "ci": ci, "datasets": common,
             "runs": {x: int(scores[x].shape[0]), y: int(scores[y].shape[0])}} for (x, y), (p, ci) in result.items()]


def curves(scores: list[RunScores], phase: str, reps: int) -> dict[str, dict[str, Any]]:
    """Per method: the IQM over runs and datasets at every evaluation step its runs share, with a 95% band."""
    out = {}
    by_method: dict[str, list[RunScores]] = {}
    for s in scores:
        if (s.status == "completed" and s.last is not None and phase in s.curves and s.kind in ("normalized", "success")
                and not any(math.isnan(v) for v in s.curves[phase][1])):  # runs that count, with every score
            by_method.setdefault(s.method, []).append(s)
    for method, group in sorted(by_method.items()):
        steps = sorted(set.intersection(*(set(s.curves[phase][0]) for s in group)))
        if not steps:
            continue
        per_task: dict[str, list[list[float]]] = {}
        for s in sorted(group, key=lambda s: s.seed):
            lookup = dict(zip(*s.curves[phase]))
            per_task.setdefault(s.dataset, []).append([lookup[t] for t in steps])
        runs = min(len(v) for v in per_task.values())
        matrix = np.stack([np.array(v[:runs]) for v in per_task.values()], axis=1)  # (runs, tasks, steps)
        point, band = stats.iqm_curve(matrix, reps=reps)
        out[method] = {"steps": steps, "iqm": point.tolist(), "ci_low": band[0].tolist(), "ci_high": band[1].tolist(),
                       "runs": runs, "datasets": len(per_task), "imported": group[0].imported}
    return out
