"""Phases composed: fine-tuning an offline run, offline pre-training then online fine-tuning (`o2o run` and every bench
cell call `offline_then_online`), and evaluating any run directory. Every setting and the offline/online pairing are
checked before the first update."""

from __future__ import annotations

import dataclasses
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable

from o2o.agents import canonical_name, get_algorithm, read_fields, restore_algorithm, reward_bonus
from o2o.algorithms import fine_tunes
from o2o.errors import O2OError
from o2o.train import handoff, loggers, offline, online, runs


def finetune(run_dir: str | Path, online_steps: int, algo: str | None = None, out: str | None = None,
             progress: bool = True, logging: loggers.LogSettings | None = None, **given: Any) -> dict[str, Any]:
    """Fine-tune an offline run online: same seeds, same env, the algorithm's paper mechanism (its registry record's
    `online`); `given` are OnlineSettings the user chose, `logging` where its metrics go (`online.train`)."""
    run = runs.RunDir.open(run_dir, "offline")
    algo = algo or run.settings["algo"]
    if not fine_tunes(algo):
        raise O2OError(f"{run.path}: {canonical_name(algo)} learns no critic and cannot fine-tune; pass --algo with an "
                       "algorithm that does (see `o2o algos`)")
    if not run.env_id:  # before its dataset loads
        raise O2OError(f"{run.path}: {online.NO_ENV}")
    settings = online_settings(run.path, algo, online_steps, run.env_id, run.seeds, out, given)
    return online.train(settings, progress=progress, offline_run=run, logging=logging)


def online_settings(offline_dir: Path, algo: str, steps: int, env: str | None, seeds: list[int], out: str | None,
                    given: dict[str, Any]) -> online.OnlineSettings:
    # the offline run recorded absolutely, so that the online run (and `o2o report`) finds it from any directory
    settings = online.settings_for(algo, env=env, steps=steps, seeds=len(seeds), seed=seeds[0],
                                   init_from=str(offline_dir.resolve()),
                                   out=out or str(offline_dir.parent / f"{offline_dir.name}-finetune-{canonical_name(algo)}"),
                                   **given)
    settings.check()
    if settings.reward_bonus != "none":  # refused before any offline phase runs
        reward_bonus(settings.reward_bonus, *get_algorithm(algo, settings.agent_overrides), settings.bonus_neighbours,
                     settings.bonus_scale)
    return settings


def offline_then_online(settings: offline.OfflineSettings, root: str | Path, online_steps: int = 0,
                        online_algo: str | None = None, online_given: dict[str, Any] | None = None,
                        progress: bool = True, resume: bool = False,
                        logging: loggers.LogSettings | None = None) -> dict[str, Any]:
    """Train ROOT/offline, then (with `online_steps`) fine-tune it into ROOT/online with `online_algo` (default: the
    same algorithm); returns the last phase's summary. The online settings and the pairing are checked before the
    offline phase starts. With `resume`, a finished phase is kept, a killed one resumes from its checkpoint (a bench
    re-run); without, an existing run directory is refused. Both phases log as `logging` says (a resumed one too), in
    one W&B group: `logging`'s, else the offline algorithm."""
    root = Path(root)
    logging = logging or loggers.LogSettings()
    logging = dataclasses.replace(logging, wandb_group=logging.wandb_group or settings.algo)
    offline_dir, online_dir = root / "offline", root / "online"
    settings = dataclasses.replace(settings, out=str(offline_dir))
    settings.check()
    if not resume:
        runs.refuse_existing_run(offline_dir)
        runs.refuse_existing_run(online_dir)
    prepared = offline.prepare(settings)
    fine_tuning = None
    if online_steps:
        if not prepared.env_id:
            raise O2OError(f"{settings.dataset}: records no environment; online fine-tuning needs one: "
                           "give --env ENV_ID")
        algo = online_algo or settings.algo
        fine_tuning = online_settings(offline_dir, algo, online_steps, prepared.env_id, prepared.seeds, str(online_dir),
                                      online_given or {})
        handoff.check_pairing(settings.algo, dataclasses.asdict(prepared.config), algo,
                              fine_tuning.agent_overrides, prepared.spec)
        fine_tuning.warn_if_no_update()
    plan = dataclasses.asdict(fine_tuning) if fine_tuning is not None else None
    summary = _phase(offline_dir, lambda: offline.train(settings, progress, prepared, logging, plan), offline.resume,
                     resume, logging, progress)
    if fine_tuning is not None:
        with warnings.catch_warnings():  # said above, once
            warnings.filterwarnings("ignore", message=online.NO_UPDATE)
            summary = _phase(online_dir, lambda: online.train(fine_tuning, progress, logging=logging), online.resume,
                             resume, logging, progress)
    return summary


def resume_offline_then_online(root: str | Path, progress: bool = True,
                               logging: loggers.LogSettings | None = None) -> dict[str, Any]:
    """Finish what `offline_then_online` started in ROOT (`o2o run --resume ROOT`): as its offline run recorded it,
    logged as recorded unless `logging` says otherwise."""
    root = Path(root)
    run = runs.RunDir.open(root / "offline", "offline")
    if runs.FINE_TUNING not in run.record:
        raise O2OError(f"{root}: its offline run records no online phase to follow (made by `o2o train`, by an older "
                       f"o2o, or with --online-steps 0); resume it with `o2o train --resume {run.path}`")
    plan = run.record[runs.FINE_TUNING]
    given = {k: v for k, v in plan.items() if k not in ("algo", "env", "steps", "seeds", "seed", "init_from", "out")}
    return offline_then_online(offline.OfflineSettings(**run.settings), root, plan["steps"], plan["algo"], given,
                               progress=progress, resume=True, logging=logging or run.logging)


def overrides_read_by(algo: str, overrides: dict[str, str]) -> dict[str, str]:
    """The `--set` overrides that `algo` reads (an `o2o run` passes its overrides on to the online algorithm)."""
    fields = read_fields(algo)
    return {k: v for k, v in overrides.items() if k in fields}


def _phase(run_dir: Path, start: Callable[[], dict], resume: Callable[..., dict], resumable: bool,
           logging: loggers.LogSettings, progress: bool) -> dict[str, Any]:
    """Run a phase; with `resumable`, a finished one is kept and a killed one resumed from its checkpoint."""
    if resumable and runs.RunDir.exists(run_dir):
        if runs.RunDir.open(run_dir).summary is not None or runs.has_checkpoint(run_dir):
            return resume(run_dir, progress=progress, logging=logging)
        shutil.rmtree(run_dir)  # killed before its first checkpoint: nothing to keep
    return start()


def evaluate_run(run_dir: str | Path, episodes: int, best: bool = False) -> dict[str, Any]:
    """Evaluate any run directory's latest checkpoint (offline runs: or their best), without its dataset."""
    runs.check_counts("o2o eval", episodes=episodes)
    run = runs.RunDir.open(run_dir)
    if run.kind == "offline":
        return offline.evaluate_run(run.path, episodes, best)
    if best:
        raise O2OError(f"{run.path}: an online run keeps only its latest checkpoint; drop --best")
    return _evaluate_online(run, episodes)


def _evaluate_online(run: runs.RunDir, episodes: int) -> dict[str, Any]:
    """Evaluate an online run's latest checkpoint from its directory alone (no offline data is read)."""
    algo = run.settings["algo"]
    agent, config = restore_algorithm(algo, run.agent_config)
    checkpoint = runs.load_checkpoint(run.path, {"states": offline.checkpoint_template(agent, config, run.env_id,
                                                                                       run.seeds, run.dataset_metadata)})
    return {"run_dir": str(run.path), "algo": algo,
            "dataset": run.settings.get("offline_dataset") or run.settings.get("init_from"), "env": run.env_id,
            "steps": int(checkpoint["step"]), "seeds": len(run.seeds), "seed_values": run.seeds, "episodes": episodes,
            **offline.evaluate_checkpoint(agent, checkpoint["states"], run.env_id, run.seeds, episodes,
                                          run.dataset_metadata)}
