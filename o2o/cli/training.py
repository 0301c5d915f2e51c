"""`o2o train`, `online`, `finetune`, `run` and `eval`: runs started, resumed, handed on and evaluated."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from o2o.algorithms import names
from o2o.cli.common import (BonusNeighboursOption, BonusOption, BonusScaleOption, EnvOption, EvalEpisodesOption,
                            JsonFlag, LoggerOption, OverridesOption, PresetOption, QuietFlag, SamplerOption,
                            SamplerTemperatureOption, UtdOption, WandbProjectOption, WarmupOption, _given, _logging,
                            _parse_overrides, _print_summary, app)
from o2o.errors import O2OError


def _resume_refusals(run_dir: str, algo: str | None, given: dict[str, Any], extends: bool = True,
                     named: str | None = None) -> Any:
    """--resume continues a run as recorded: an option it would ignore is refused (`given`: {flag name: value};
    `extends`: --steps may extend it; `named`: the directory as the user named it). Returns the run (`runs.RunDir`)."""
    from o2o.agents import canonical_name
    from o2o.train import runs

    run, named = runs.RunDir.open(run_dir), named or run_dir
    if algo and canonical_name(algo) != canonical_name(run.settings["algo"]):
        raise O2OError(f"{named}: a {run.settings['algo']} run; drop ALGO ({algo}) to resume it")
    ignored = [f"--{name.replace('_', '-')}" for name, value in given.items() if value not in (None, [], False)]
    if ignored:
        raise O2OError(f"--resume continues {named} with its recorded settings; drop {', '.join(ignored)}"
                       + (" (--steps N extends a run)" if extends else ""))
    return run


@app.command("train")
def train(
    algo: Annotated[Optional[str], typer.Argument(help=f"Algorithm: {', '.join(names('offline'))} (see `o2o algos`); "
                                                  "not needed with --resume.")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset SOURCE (see `o2o data info`).")] = None,
    env: EnvOption = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="Gradient updates per seed (default 100000; with "
                                                 "--resume: a larger budget extends a finished run).")] = None,
    seeds: Annotated[Optional[int], typer.Option("--seeds", help="Independent seeds trained together in one process "
                                                 "(default 1).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="First seed; the run uses seed, seed+1, ... (default 0).")] = None,
    eval_every: Annotated[Optional[int], typer.Option("--eval-every", help="Updates between evaluations (default 10000).")] = None,
    eval_episodes: EvalEpisodesOption = None,
    out: Annotated[Optional[str], typer.Option("--out", help="Run directory (default runs/ALGO-DATASET-TIME).")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="Continue the run in this directory as recorded "
                                                  "(a finished run: nothing to do unless --steps is larger).")] = None,
    preset: PresetOption = None,
    sampler: SamplerOption = None,
    sampler_temperature: SamplerTemperatureOption = None,
    overrides: OverridesOption = None,
    logger: LoggerOption = None,
    wandb_project: WandbProjectOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Train an agent offline on a dataset, evaluating every --eval-every updates."""
    from o2o.train import offline

    logging = _logging(logger, wandb_project)
    options = dict(dataset=dataset, env=env, steps=steps, seeds=seeds, seed=seed, eval_every=eval_every,
                   eval_episodes=eval_episodes, out=out, preset=preset, sampler=sampler,
                   sampler_temperature=sampler_temperature)
    if resume:
        _resume_refusals(resume, algo, {**options, "steps": None, "set": overrides})
        summary = offline.resume(resume, steps=steps, progress=not quiet, logging=logging)
    else:
        if not algo or not dataset:
            raise O2OError("o2o train needs ALGO and --dataset SOURCE (or --resume RUN_DIR)")
        settings = offline.OfflineSettings(algo=algo, agent_overrides=_parse_overrides(overrides), **_given(**options))
        summary = offline.train(settings, progress=not quiet, logging=logging)
    _print_summary(summary, as_json)


@app.command("online")
def online_cmd(
    algo: Annotated[Optional[str], typer.Argument(help=f"{', '.join(names('online'))} (rlpd needs --dataset), or any "
                                                  "offline algorithm with a critic; not needed with --resume.")] = None,
    env: EnvOption = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="Environment steps per seed (default 100000; with "
                                                 "--resume: a larger budget extends a finished run).")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Offline data to mix in (RLPD).")] = None,
    seeds: Annotated[Optional[int], typer.Option("--seeds", help="Independent seeds, one env each, vmapped (default 1).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="First seed (default 0).")] = None,
    utd: UtdOption = None,
    warmup_steps: WarmupOption = None,
    eval_every: Annotated[Optional[int], typer.Option("--eval-every", help="Env steps between evaluations (default 10000).")] = None,
    eval_episodes: EvalEpisodesOption = None,
    out: Annotated[Optional[str], typer.Option("--out", help="Run directory.")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="Continue the online run in this directory as "
                                                  "recorded (fine-tuning runs too).")] = None,
    overrides: OverridesOption = None,
    bonus: BonusOption = None,
    bonus_neighbours: BonusNeighboursOption = None,
    bonus_scale: BonusScaleOption = None,
    logger: LoggerOption = None,
    wandb_project: WandbProjectOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Train an agent online (SAC and TD3 baselines; RLPD with --dataset)."""
    from o2o.train import online

    logging = _logging(logger, wandb_project)
    options = dict(env=env, seeds=seeds, seed=seed, utd=utd, warmup_steps=warmup_steps, eval_every=eval_every,
                   eval_episodes=eval_episodes, out=out, bonus_neighbours=bonus_neighbours, bonus_scale=bonus_scale)
    if resume:
        _resume_refusals(resume, algo, {**options, "dataset": dataset, "with": bonus, "set": overrides})
        _print_summary(online.resume(resume, steps=steps, progress=not quiet, logging=logging), as_json)
        return
    if not algo:
        raise O2OError("o2o online needs ALGO (or --resume RUN_DIR)")
    settings = online.settings_for(algo, steps=steps, agent_overrides=_parse_overrides(overrides),
                                   offline_dataset=dataset, reward_bonus=bonus, **options)
    _print_summary(online.train(settings, progress=not quiet, logging=logging), as_json)


@app.command("finetune")
def finetune(
    run_dir: Annotated[str, typer.Argument(help="An offline run directory (from o2o train).")],
    online_steps: Annotated[int, typer.Option("--online-steps", help="Environment steps per seed.")] = 100_000,
    algo: Annotated[Optional[str], typer.Option("--algo", help="Online algorithm (default: the offline one); wsrl "
                                                "after cql/calql, rlpd after any SAC-family actor.")] = None,
    utd: UtdOption = None,
    warmup_steps: WarmupOption = None,
    eval_every: Annotated[int, typer.Option("--eval-every", help="Env steps between evaluations.")] = 10_000,
    eval_episodes: Annotated[int, typer.Option("--eval-episodes", help="Episodes per seed and evaluation (0: none).")] = 10,
    out: Annotated[Optional[str], typer.Option("--out", help="Run directory (default RUN_DIR-finetune-ALGO).")] = None,
    overrides: OverridesOption = None,
    bonus: BonusOption = None,
    bonus_neighbours: BonusNeighboursOption = None,
    bonus_scale: BonusScaleOption = None,
    logger: LoggerOption = None,
    wandb_project: WandbProjectOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Fine-tune an offline run online, with its paper's mechanism; reports before -> after and the dip at the switch."""
    from o2o.train import phases

    logging = _logging(logger, wandb_project)
    _print_summary(phases.finetune(run_dir, online_steps, algo=algo, out=out, progress=not quiet, logging=logging,
                                   agent_overrides=_parse_overrides(overrides),
                                   **_given(utd=utd, warmup_steps=warmup_steps, eval_every=eval_every,
                                            eval_episodes=eval_episodes, reward_bonus=bonus,
                                            bonus_neighbours=bonus_neighbours, bonus_scale=bonus_scale)), as_json)


@app.command("run")
def run_cmd(
    algo: Annotated[Optional[str], typer.Argument(help=f"Offline algorithm ({', '.join(names('offline'))}); not "
                                                  "needed with --resume.")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset SOURCE.")] = None,
    offline_steps: Annotated[Optional[int], typer.Option("--offline-steps", help="Offline updates per seed (default "
                                                         "100000).")] = None,
    online_steps: Annotated[Optional[int], typer.Option("--online-steps", help="Online env steps per seed (default "
                                                        "100000).")] = None,
    online_algo: Annotated[Optional[str], typer.Option("--online-algo", help="Online algorithm (default: ALGO).")] = None,
    env: EnvOption = None,
    seeds: Annotated[Optional[int], typer.Option("--seeds", help="Independent seeds (default 1).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="First seed (default 0).")] = None,
    eval_every: Annotated[Optional[int], typer.Option("--eval-every", help="Updates / env steps between evaluations "
                                                      "(default 10000).")] = None,
    eval_episodes: EvalEpisodesOption = None,
    out: Annotated[Optional[str], typer.Option("--out", help="Directory for both runs (default "
                                               "runs/ALGO-o2o-DATASET).")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="Finish the job in this directory (an interrupted "
                                                  "o2o run's --out) as recorded: a finished phase is kept, an "
                                                  "interrupted one resumed.")] = None,
    preset: PresetOption = None,
    sampler: SamplerOption = None,
    sampler_temperature: SamplerTemperatureOption = None,
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="Agent config FIELD=VALUE (repeatable), for "
                                                           "both phases where the algorithm reads FIELD.")] = None,
    bonus: BonusOption = None,
    bonus_neighbours: BonusNeighboursOption = None,
    bonus_scale: BonusScaleOption = None,
    logger: LoggerOption = None,
    wandb_project: WandbProjectOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Offline pre-training then online fine-tuning, in one command; settings and the pairing are checked first."""
    from pathlib import Path

    from o2o.train import offline, phases

    logging = _logging(logger, wandb_project)
    if resume:
        given = dict(dataset=dataset, offline_steps=offline_steps, online_steps=online_steps, online_algo=online_algo,
                     env=env, seeds=seeds, seed=seed, eval_every=eval_every, eval_episodes=eval_episodes, out=out,
                     preset=preset, sampler=sampler, sampler_temperature=sampler_temperature,
                     bonus_neighbours=bonus_neighbours, bonus_scale=bonus_scale)
        _resume_refusals(str(Path(resume) / "offline"), algo, {**given, "with": bonus, "set": overrides},
                         extends=False, named=resume)
        _print_summary(phases.resume_offline_then_online(resume, progress=not quiet, logging=logging), as_json)
        return
    if not algo or not dataset:
        raise O2OError("o2o run needs ALGO and --dataset SOURCE (or --resume OUT)")
    parsed = _parse_overrides(overrides)
    settings = offline.OfflineSettings(algo=algo, dataset=dataset, env=env, agent_overrides=parsed,
                                       **_given(steps=offline_steps, seeds=seeds, seed=seed, eval_every=eval_every,
                                                eval_episodes=eval_episodes, preset=preset, sampler=sampler,
                                                sampler_temperature=sampler_temperature))
    online_given = {"eval_every": settings.eval_every, "eval_episodes": settings.eval_episodes,
                    "agent_overrides": phases.overrides_read_by(online_algo or algo, parsed),
                    **_given(reward_bonus=bonus, bonus_neighbours=bonus_neighbours, bonus_scale=bonus_scale)}
    summary = phases.offline_then_online(settings, out or Path("runs") / f"{algo}-o2o-{Path(dataset).name}",
                                         100_000 if online_steps is None else online_steps, online_algo, online_given,
                                         progress=not quiet, logging=logging)
    _print_summary(summary, as_json)


@app.command("eval")
def evaluate(
    run_dir: str,
    episodes: Annotated[int, typer.Option("--episodes", help="Episodes per seed.")] = 10,
    best: Annotated[bool, typer.Option("--best", help="Evaluate the best checkpoint instead of the latest.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Evaluate a run's checkpoint (every seed) in its environment, from the run directory alone (no dataset)."""
    from o2o.train import phases

    _print_summary(phases.evaluate_run(run_dir, episodes, best=best), as_json)
