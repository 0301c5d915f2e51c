"""`o2o data`, `o2o collect` and `o2o zoo`: datasets in, datasets made, behaviour policies trained."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from o2o.cli.common import (DatasetFormat, EnvOption, JsonFlag, OverridesOption, QuietFlag,
                     _parse_overrides, _print_json, _print_summary,
                     app, data_app)
from o2o.errors import O2OError


@data_app.command("info")
def data_info(
    source: str,
    env: EnvOption = None,
    quality: Annotated[bool, typer.Option("--quality", help="Also estimate the action variance and transition noise "
                                          "(Belkhale et al. 2023; o2o.data.quality): seconds to a minute on a "
                                          "million transitions.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Validate a dataset and describe it: size, returns, episode lengths, TQ and SACo. TQ and the normalized score
    measure the complete episodes (terminated or at the env's time limit), counted in return_episodes_complete."""
    from o2o.collect.episodes import time_limit
    from o2o.data import describe
    from o2o.envs import load_for_env, normalized_score, reference_returns

    dataset, _ = load_for_env(source, env, goal_conditioned=True)
    references = reference_returns(dataset.env_id, dataset.metadata)
    summary = {"source": source, **describe(dataset, references, time_limit(dataset), quality)}
    if references is not None:
        summary["normalized_return_mean"] = float(normalized_score(dataset.env_id, summary["behaviour_return_mean"],
                                                                   dataset.metadata))
        summary["reference_returns"] = {"random": references[0], "expert": references[1]}
    if as_json:
        _print_json(summary)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"dataset {source}", show_header=False)
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.4g}"
        table.add_row(key, str(value))
    Console().print(table)


@data_app.command("convert")
def data_convert(
    source: str,
    dest: str,
    format: Annotated[DatasetFormat, typer.Option("--format", help="Format to write.")] = DatasetFormat.o2o,
    env: EnvOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Convert a dataset to o2o's format (default), Minari, D4RL-layout HDF5 or .npz; the source is never changed."""
    from o2o.envs import load_for_env
    from o2o.files import check_destination

    check_destination(dest, name="DEST")
    dataset, _ = load_for_env(source, env, goal_conditioned=True)
    path = _writer(format)(dataset, dest)
    if as_json:
        _print_json({"source": source, "dest": str(path), "format": format.value, "transitions": len(dataset)})
    else:
        print(f"wrote {len(dataset)} transitions ({dataset.num_episodes} episodes) to {path} as {format.value}")


@data_app.command("corrupt")
def data_corrupt(
    source: str,
    dest: str,
    target: Annotated[str, typer.Option("--target", help="What to corrupt: states, actions, rewards or dynamics (next "
                                        "states).")] = "states",
    mode: Annotated[str, typer.Option("--mode", help="random (uniform noise) or adversarial (gradient attack on a "
                                      "Q-ensemble trained on the clean data).")] = "random",
    rate: Annotated[float, typer.Option("--rate", help="Fraction of the transitions corrupted.")] = 0.3,
    scale: Annotated[float, typer.Option("--scale", help="Noise (or attack) budget in standard deviations of each "
                                         "dimension.")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the rows chosen and the noise.")] = 0,
    attacker: Annotated[Optional[str], typer.Option("--attacker", help="Run directory of an offline sacn/edac run on "
                                                    "SOURCE: the Q-ensemble an adversarial attack lowers.")] = None,
    format: Annotated[DatasetFormat, typer.Option("--format", help="Format to write: o2o, hdf5, npz, or minari for "
                                                  "corrupted actions or rewards (a Minari episode holds one sequence "
                                                  "of observations).")] = DatasetFormat.o2o,
    env: EnvOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Corrupt a fraction of a dataset's transitions with RIQL's protocol (Yang et al., ICLR 2024): SOURCE is never
    changed; DEST records the protocol, its parameters and which transitions were corrupted (the per-step field
    `corrupted`)."""
    import time

    from o2o.data import content_hash
    from o2o.data.corrupt import check_parameters, corrupt
    from o2o.envs import env_spaces, load_for_env, recorded_env_kwargs
    from o2o.files import check_destination

    check_parameters(target, mode, rate, scale)
    if format == DatasetFormat.minari and target in ("states", "dynamics"):  # before the work write_minari refuses
        raise O2OError(f"--format minari cannot hold corrupted {target}: a Minari episode holds one sequence of "
                       "observations, where each next observation is the following step's; write o2o, hdf5 or npz")
    check_destination(dest, name="DEST")
    dataset, env_id = load_for_env(source, env, goal_conditioned=True)
    bounds = None
    if env_id:
        spaces = env_spaces(env_id, recorded_env_kwargs(dataset.metadata))
        bounds = (spaces.action_low, spaces.action_high)
    adversary = None
    if mode == "adversarial" and target != "rewards":
        if attacker is None:
            raise O2OError(f"--mode adversarial --target {target} needs --attacker RUN_DIR: an offline run of sacn or "
                           f"edac on {source} (e.g. `o2o train edac --dataset {source}`)")
        from o2o.train.attacker import attacker_from_run

        adversary = attacker_from_run(attacker, dataset)
    start = time.perf_counter()
    corrupted = corrupt(dataset, target, mode, rate, scale, seed, adversary, bounds)
    seconds = time.perf_counter() - start
    corrupted.metadata["corruption"][-1]["source"] = {"path": source, "content_hash": content_hash(dataset)}
    path = _writer(format)(corrupted, dest)
    record = corrupted.metadata["corruption"][-1]
    if as_json:
        _print_json({"source": source, "dest": str(path), **record, "transitions": len(corrupted), "seconds": seconds})
    else:
        print(f"corrupted {record['corrupted_transitions']} of {len(corrupted)} transitions ({mode} {target}, scale "
              f"{scale:g}, seed {seed}) in {seconds:.1f} s; wrote {path} as {format.value}")


def _writer(format: DatasetFormat):
    from o2o.data import write_d4rl_hdf5, write_minari, write_npz, write_o2o

    return {"o2o": write_o2o, "minari": write_minari, "hdf5": write_d4rl_hdf5, "npz": write_npz}[format.value]


@app.command("collect")
def collect_cmd(
    env_id: Annotated[str, typer.Argument(help="Gymnasium environment id, e.g. Hopper-v5, or an OGBench manipulation "
                                          "env, e.g. cube-single-v0.")],
    level: Annotated[str, typer.Option("--level", help="random, medium, medium-replay, expert or medium-expert; "
                                       "PointMaze: waypoint (D4RL's maze2d protocol); OGBench: play or noisy.")],
    transitions: Annotated[int, typer.Option("--transitions", help="Transitions to collect (D4RL: 1M).")] = 1_000_000,
    episodes: Annotated[Optional[int], typer.Option("--episodes", help="OGBench: training episodes (plus 10% for the "
                                                    "validation split); default: the published dataset's, 1000, or "
                                                    "3000 for cube-triple and puzzle-4x5, 5000 for cube-quadruple "
                                                    "and puzzle-4x6.")] = None,
    episode_steps: Annotated[int, typer.Option("--episode-steps", help="OGBench: steps per episode (published: "
                                               "1001).")] = 1001,
    workers: Annotated[Optional[int], typer.Option("--workers", help="OGBench: processes (default: one per core).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of envs and policy noise: same seed, same dataset.")] = 0,
    out: Annotated[Optional[str], typer.Option("--out", help="Destination (default datasets/ENV-LEVEL-sSEED; "
                                               "OGBench: datasets/ENV-LEVEL-v0, plus .npz and -val.npz).")] = None,
    format: Annotated[DatasetFormat, typer.Option("--format", help="o2o or minari.")] = DatasetFormat.o2o,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Make a D4RL-protocol dataset by rolling out a behaviour policy in many envs at once, or an OGBench manipulation
    dataset with the oracles that ship in the ogbench package (its published protocol)."""
    from o2o.collect import ogbench
    from o2o.train import runs

    if env_id in ogbench.MANIPULATION_ENVS:
        episodes = ogbench.check_request(env_id, level, episodes, episode_steps)
        if format != DatasetFormat.o2o:
            raise O2OError(f"--format {format.value}: OGBench data is written in o2o's format and OGBench's .npz layout "
                           "together; convert afterwards with `o2o data convert`")
        dest = out or f"datasets/{ogbench.official_name(env_id, level)}"
        ogbench.check_destinations(dest)  # before the progress bar, so that a refusal is the only line printed
        bar = runs.ProgressBar(not quiet, episodes + episodes // 10, 0, "collect", "episodes")
        try:
            summary = ogbench.collect_to(env_id, level, dest, episodes, episode_steps, seed, workers,
                                         progress=lambda n: bar.advance(n, 0.0, None))
        finally:
            bar.close()
        if as_json:
            _print_json(summary)
        else:
            print(f"wrote {summary['episodes']} + {summary['validation_episodes']} episodes of {env_id} {level} "
                  f"({summary['transitions']} training transitions) to {summary['o2o']} and {summary['npz']}")
        return
    from o2o.collect import levels

    dest = out or f"datasets/{env_id}-{level}-s{seed}"
    path, data = levels.collect_to(env_id, level, dest, format.value, transitions=transitions, seed=seed)
    summary = levels.summary(data, path)
    if as_json:
        _print_json(summary)
        return
    complete = summary["return_episodes_complete"]
    score = summary["normalized_return_mean"]
    print(f"wrote {summary['transitions']} transitions ({summary['episodes']} episodes) of {env_id} {level} to {path}; "
          f"mean return {summary['behaviour_return_mean']:.1f}" + ("" if score is None else f", normalized {score:.1f}")
          + (f" over {complete} episodes in its evaluation env" if summary.get("measured_in") else
             f" over its {complete} complete episodes" if complete else
             " over all its episodes: none is complete (collect more transitions for a representative score)"))


zoo_app = typer.Typer(no_args_is_help=True, help="Train and export o2o's behaviour policies (the zoo).")
app.add_typer(zoo_app, name="zoo")


@zoo_app.command("train")
def zoo_train(
    env_id: Annotated[Optional[str], typer.Argument(help="Gymnasium environment id; not needed with --resume.")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="SAC env steps (default 1000000).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed (default 0).")] = None,
    eval_every: Annotated[Optional[int], typer.Option("--eval-every", help="Env steps between evaluations and "
                                                      "snapshots (default 10000).")] = None,
    out: Annotated[Optional[str], typer.Option("--out", help="Run directory (default runs/zoo-ENV-sSEED).")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="Continue a killed zoo run as recorded.")] = None,
    overrides: OverridesOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Train the SAC run whose snapshots become an env's medium and expert policies (resumable)."""
    from o2o.cli.common import _given
    from o2o.cli.training import _resume_refusals
    from o2o.collect import zoo
    from o2o.train import online

    if resume:
        # --steps too: the run's replay buffer was sized to its recorded steps, so an extended run would no longer be
        # what the `o2o zoo train --steps N` command on its cards makes
        run = _resume_refusals(resume, None, dict(steps=steps, seed=seed, eval_every=eval_every, out=out,
                                                  set=overrides), extends=False)
        if not run.settings.get("keep_policy_snapshots"):
            command = "online" if run.kind == "online" else "train"
            raise O2OError(f"{resume}: not a zoo training run (made by `o2o zoo train`); `o2o {command} --resume` "
                           "resumes it")
        if env_id and env_id != run.env_id:
            raise O2OError(f"{resume}: a {run.env_id} run; drop ENV_ID ({env_id}) to resume it")
        summary = online.resume(resume, progress=not quiet)
    elif not env_id:
        raise O2OError("o2o zoo train needs ENV_ID (or --resume RUN_DIR)")
    else:
        summary = zoo.train(env_id, 1_000_000 if steps is None else steps, out=out, progress=not quiet,
                            agent_overrides=_parse_overrides(overrides), **_given(seed=seed, eval_every=eval_every))
    _print_summary(summary, as_json)


@zoo_app.command("export")
def zoo_export(
    run_dir: Annotated[str, typer.Argument(help="A zoo training run.")],
    dest: Annotated[Optional[str], typer.Option("--dest", help="Folder (default: the package's zoo/ENV_ID).")] = None,
    upto: Annotated[Optional[int], typer.Option("--upto", help="Choose among snapshots up to this env step "
                                                "(default: all so far).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Pick the medium and expert policies from a zoo run, measure them over 100 episodes, write them with cards."""
    from o2o.collect import zoo

    cards = zoo.export(run_dir, dest, upto)
    if as_json:
        _print_json(cards)
        return
    for level in ("medium", "expert"):
        card = cards[level]
        print(f"{card['env_id']} {level}: return {card['return_mean']:.1f} ± {card['return_std']:.1f} over "
              f"{card['return_episodes']} episodes ({card['selected_by']})")
    replay = cards["medium-replay"]
    print(f"{replay['env_id']} medium-replay: {replay['transitions']:,} transitions, {replay['episodes']} episodes, "
          f"{replay['content_hash']} (a card: `o2o collect` regenerates the data on demand)")
