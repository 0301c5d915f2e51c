"""The `o2o` command. Thin: parse, call the library, print. Errors are one line on stderr and a non-zero exit."""

from __future__ import annotations

import json
import os
import sys
import warnings
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from o2o.algorithms import REGISTRY, names
from o2o.errors import O2OError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="o2o: offline-to-online reinforcement learning.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect and convert datasets.")
app.add_typer(data_app, name="data")


@app.callback()
def root_options(
    eval_envs: Annotated[Optional[int], typer.Option(
        "--eval-envs", help="Most evaluation envs alive at once (default 16, or $O2O_EVAL_ENVS); more episodes run "
        "in waves with unchanged results. Lower it for memory-hungry envs (OGBench: ~165 MB each).")] = None,
) -> None:
    """o2o: offline-to-online reinforcement learning."""
    if eval_envs is not None:
        if eval_envs < 1:
            raise O2OError(f"--eval-envs must be at least 1 (got {eval_envs})")
        os.environ["O2O_EVAL_ENVS"] = str(eval_envs)


class DatasetFormat(str, Enum):
    o2o = "o2o"
    minari = "minari"
    hdf5 = "hdf5"
    npz = "npz"


JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object as the last line of standard output.")]
EnvOption = Annotated[Optional[str], typer.Option("--env", help="Gymnasium environment id, e.g. Hopper-v5, or an "
                                                  "OGBench task, e.g. cube-single-singletask-task2-v0.")]
QuietFlag = Annotated[bool, typer.Option("--quiet", help="No progress bar.")]
PresetOption = Annotated[str, typer.Option("--preset", help="The paper's per-dataset settings (see `o2o algos "
                                          "--json`): auto (chosen by the dataset's env and level), none, or a name.")]
OverridesOption = Annotated[Optional[list[str]], typer.Option("--set", help="Agent config FIELD=VALUE (repeatable).")]
UtdOption = Annotated[Optional[int], typer.Option("--utd", help="Updates per env step (default: the algorithm's).")]
WarmupOption = Annotated[Optional[int], typer.Option("--warmup-steps", help="Steps before learning starts "
                                                     "(default: the algorithm's).")]
EvalEpisodesOption = Annotated[int, typer.Option("--eval-episodes", help="Episodes per seed and evaluation (0: none).")]


def _print_json(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, default=float))


@data_app.command("info")
def data_info(source: str, env: EnvOption = None, as_json: JsonFlag = False) -> None:
    """Validate a dataset and describe it: size, returns, episode lengths, TQ and SACo."""
    from o2o.data import describe
    from o2o.envs import load_for_env, normalized_score, reference_returns

    dataset, _ = load_for_env(source, env, goal_conditioned=True)
    references = reference_returns(dataset.env_id, dataset.metadata)
    summary = {"source": source, **describe(dataset, references)}
    if references is not None:
        summary["normalized_return_mean"] = float(normalized_score(dataset.env_id, summary["return_mean"], dataset.metadata))
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
    from o2o.data import write_d4rl_hdf5, write_minari, write_npz, write_o2o
    from o2o.envs import load_for_env

    dataset, _ = load_for_env(source, env, goal_conditioned=True)
    writer = {"o2o": write_o2o, "minari": write_minari, "hdf5": write_d4rl_hdf5, "npz": write_npz}[format.value]
    path = writer(dataset, dest)
    if as_json:
        _print_json({"source": source, "dest": str(path), "format": format.value, "transitions": len(dataset)})
    else:
        print(f"wrote {len(dataset)} transitions ({dataset.num_episodes} episodes) to {path} as {format.value}")


def _parse_overrides(pairs: list[str] | None) -> dict[str, str]:
    overrides = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise O2OError(f"--set {pair!r}: expected FIELD=VALUE, e.g. --set expectile=0.9")
        overrides[key.strip()] = value.strip()
    return overrides


@app.command("train")
def train(
    algo: Annotated[str, typer.Argument(help=f"Algorithm: {', '.join(names('offline'))} (see `o2o algos`).")],
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset SOURCE (see `o2o data info`).")] = None,
    env: EnvOption = None,
    steps: Annotated[int, typer.Option("--steps", help="Gradient updates per seed.")] = 100_000,
    seeds: Annotated[int, typer.Option("--seeds", help="Independent seeds trained together in one process.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="First seed; the run uses seed, seed+1, ...")] = 0,
    eval_every: Annotated[int, typer.Option("--eval-every", help="Updates between evaluations.")] = 10_000,
    eval_episodes: EvalEpisodesOption = 10,
    out: Annotated[Optional[str], typer.Option("--out", help="Run directory (default runs/ALGO-DATASET-TIME).")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="Continue the killed run in this directory.")] = None,
    preset: PresetOption = "auto",
    overrides: OverridesOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Train an agent offline on a dataset, evaluating every --eval-every updates."""
    from o2o.train import offline

    if resume:
        summary = offline.resume(resume, progress=not quiet)
    else:
        if not dataset:
            raise O2OError("o2o train needs --dataset SOURCE (or --resume RUN_DIR)")
        settings = offline.OfflineSettings(
            algo=algo, dataset=dataset, env=env, steps=steps, seeds=seeds, seed=seed, eval_every=eval_every,
            eval_episodes=eval_episodes, out=out, agent_overrides=_parse_overrides(overrides), preset=preset)
        summary = offline.train(settings, progress=not quiet)
    _print_summary(summary, as_json)


@app.command("online")
def online_cmd(
    algo: Annotated[str, typer.Argument(help=f"{', '.join(names('online'))} (rlpd needs --dataset), or any offline "
                                                    "algorithm with a critic.")],
    env: EnvOption = None,
    steps: Annotated[int, typer.Option("--steps", help="Environment steps per seed.")] = 100_000,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Offline data to mix in (RLPD).")] = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Independent seeds, one env each, vmapped.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="First seed.")] = 0,
    utd: UtdOption = None,
    warmup_steps: WarmupOption = None,
    eval_every: Annotated[int, typer.Option("--eval-every", help="Env steps between evaluations.")] = 10_000,
    eval_episodes: EvalEpisodesOption = 10,
    out: Annotated[Optional[str], typer.Option("--out", help="Run directory.")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="Continue the killed online run in this directory.")] = None,
    overrides: OverridesOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Train an agent online (SAC and TD3 baselines; RLPD with --dataset)."""
    from o2o.train import online

    if resume:
        _print_summary(online.resume(resume, progress=not quiet), as_json)
        return
    settings = online.settings_for(algo, env=env, steps=steps, seeds=seeds, seed=seed, utd=utd, warmup_steps=warmup_steps,
                                   eval_every=eval_every, eval_episodes=eval_episodes, offline_dataset=dataset, out=out,
                                   agent_overrides=_parse_overrides(overrides))
    _print_summary(online.train(settings, progress=not quiet), as_json)


@app.command("finetune")
def finetune(
    run_dir: Annotated[str, typer.Argument(help="An offline run directory (from o2o train).")],
    online_steps: Annotated[int, typer.Option("--online-steps", help="Environment steps per seed.")] = 100_000,
    algo: Annotated[Optional[str], typer.Option("--algo", help="Online algorithm (default: the offline one); wsrl "
                                                "after cql/calql, rlpd after any SAC-family actor.")] = None,
    utd: UtdOption = None,
    warmup_steps: WarmupOption = None,
    eval_every: Annotated[int, typer.Option("--eval-every", help="Env steps between evaluations.")] = 10_000,
    eval_episodes: EvalEpisodesOption = 10,
    out: Annotated[Optional[str], typer.Option("--out", help="Run directory (default RUN_DIR-finetune-ALGO).")] = None,
    overrides: OverridesOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Fine-tune an offline run online, with its paper's mechanism; reports before -> after and the dip at the switch."""
    from o2o.train import online

    _print_summary(online.finetune(run_dir, online_steps, algo=algo, utd=utd, warmup_steps=warmup_steps,
                                   eval_every=eval_every, eval_episodes=eval_episodes, out=out,
                                   agent_overrides=_parse_overrides(overrides), progress=not quiet), as_json)


@app.command("run")
def run_cmd(
    algo: Annotated[str, typer.Argument(help=f"Offline algorithm ({', '.join(names('offline'))}).")],
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset SOURCE.")],
    offline_steps: Annotated[int, typer.Option("--offline-steps", help="Offline updates per seed.")] = 100_000,
    online_steps: Annotated[int, typer.Option("--online-steps", help="Online env steps per seed.")] = 100_000,
    online_algo: Annotated[Optional[str], typer.Option("--online-algo", help="Online algorithm (default: ALGO).")] = None,
    env: EnvOption = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Independent seeds.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="First seed.")] = 0,
    eval_every: Annotated[int, typer.Option("--eval-every", help="Updates / env steps between evaluations.")] = 10_000,
    eval_episodes: EvalEpisodesOption = 10,
    out: Annotated[Optional[str], typer.Option("--out", help="Directory for both runs.")] = None,
    preset: PresetOption = "auto",
    overrides: OverridesOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Offline pre-training then online fine-tuning, in one command."""
    from pathlib import Path

    from o2o.train import offline, online

    root = Path(out) if out else Path("runs") / f"{algo}-o2o-{Path(dataset).name}"
    offline_summary = offline.train(offline.OfflineSettings(
        algo=algo, dataset=dataset, env=env, steps=offline_steps, seeds=seeds, seed=seed, eval_every=eval_every,
        eval_episodes=eval_episodes, out=str(root / "offline"), agent_overrides=_parse_overrides(overrides),
        preset=preset), progress=not quiet)
    summary = online.finetune(offline_summary["run_dir"], online_steps, algo=online_algo, eval_every=eval_every,
                              eval_episodes=eval_episodes, out=str(root / "online"), progress=not quiet)
    _print_summary(summary, as_json)


@app.command("eval")
def evaluate(
    run_dir: str,
    episodes: Annotated[int, typer.Option("--episodes", help="Episodes per seed.")] = 10,
    best: Annotated[bool, typer.Option("--best", help="Evaluate the best checkpoint instead of the latest.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Evaluate a run's checkpoint (every seed) in its environment; offline and online runs alike."""
    from o2o.train import online

    _print_summary(online.evaluate_run(run_dir, episodes, best=best), as_json)


@app.command("collect")
def collect_cmd(
    env_id: Annotated[str, typer.Argument(help="Gymnasium environment id, e.g. Hopper-v5, or an OGBench manipulation "
                                          "env, e.g. cube-single-v0.")],
    level: Annotated[str, typer.Option("--level", help="random, medium, medium-replay, expert or medium-expert; "
                                       "OGBench: play or noisy.")],
    transitions: Annotated[int, typer.Option("--transitions", help="Transitions to collect (D4RL: 1M).")] = 1_000_000,
    episodes: Annotated[int, typer.Option("--episodes", help="OGBench: training episodes (plus 10% for the "
                                          "validation split).")] = 1000,
    episode_steps: Annotated[int, typer.Option("--episode-steps", help="OGBench: steps per episode.")] = 1001,
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
        ogbench.check_request(env_id, level)
        if format != DatasetFormat.o2o:
            raise O2OError(f"--format {format.value}: OGBench data is written in o2o's format and OGBench's .npz layout "
                           "together; convert afterwards with `o2o data convert`")
        dest = out or f"datasets/{env_id[:-3]}-{level}-v0"
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
    from o2o.collect.levels import collect_to

    dest = out or f"datasets/{env_id}-{level}-s{seed}"
    path, data = collect_to(env_id, level, dest, format.value, transitions=transitions, seed=seed)
    summary = {"dataset": str(path), "env": env_id, "level": level, "transitions": len(data),
               "episodes": data.num_episodes, "return_mean": float(data.episode_returns.mean())}
    if as_json:
        _print_json(summary)
    else:
        print(f"wrote {summary['transitions']} transitions ({summary['episodes']} episodes, mean return "
              f"{summary['return_mean']:.1f}) of {env_id} {level} to {path}")


zoo_app = typer.Typer(no_args_is_help=True, help="Train and export o2o's behaviour policies (the zoo).")
app.add_typer(zoo_app, name="zoo")


@zoo_app.command("train")
def zoo_train(
    env_id: Annotated[str, typer.Argument(help="Gymnasium environment id.")],
    steps: Annotated[int, typer.Option("--steps", help="SAC env steps.")] = 1_000_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed.")] = 0,
    eval_every: Annotated[int, typer.Option("--eval-every", help="Env steps between evaluations and snapshots.")] = 10_000,
    out: Annotated[Optional[str], typer.Option("--out", help="Run directory (default runs/zoo-ENV-sSEED).")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="Continue a killed zoo run.")] = None,
    overrides: OverridesOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Train the SAC run whose snapshots become an env's medium and expert policies (resumable)."""
    from o2o.collect import zoo
    from o2o.train import online

    if resume:
        summary = online.resume(resume, progress=not quiet)
    else:
        summary = zoo.train(env_id, steps, seed=seed, out=out, eval_every=eval_every, progress=not quiet,
                            agent_overrides=_parse_overrides(overrides))
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


@app.command("bench")
def bench_cmd(
    algos: Annotated[Optional[str], typer.Option("--algos", help="Comma-separated algorithms, e.g. bc,td3bc,iql.")] = None,
    datasets: Annotated[Optional[str], typer.Option("--datasets", help="Comma-separated dataset SOURCEs or "
                                                    "collect:ENV_ID:LEVEL[:TRANSITIONS] (collected once).")] = None,
    suite: Annotated[Optional[str], typer.Option("--suite", help="A suite TOML file, or a shipped suite: "
                                                 "quick, zoo. Options given on the command line win.")] = None,
    out: Annotated[Optional[str], typer.Option("--out", help="Bench directory (re-running the same grid into it "
                                               "resumes).")] = None,
    env: EnvOption = None,
    seeds: Annotated[Optional[int], typer.Option("--seeds", help="Seeds per cell (default 3).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="First seed (default 0).")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="Offline updates per seed (default 100000).")] = None,
    online_steps: Annotated[Optional[int], typer.Option("--online-steps", help="Fine-tune each offline run online "
                                                        "for this many env steps (default 0: offline only).")] = None,
    online_algo: Annotated[Optional[str], typer.Option("--online-algo", help="Online algorithm for every cell "
                                                       "(default: each algorithm's own fine-tuning).")] = None,
    eval_every: Annotated[Optional[int], typer.Option("--eval-every", help="Updates between offline evaluations.")] = None,
    online_eval_every: Annotated[Optional[int], typer.Option("--online-eval-every", help="Env steps between online "
                                                             "evaluations (default: a tenth of the online steps).")] = None,
    eval_episodes: Annotated[Optional[int], typer.Option("--eval-episodes", help="Episodes per seed and "
                                                         "evaluation (default 10).")] = None,
    split_seeds: Annotated[bool, typer.Option("--split-seeds", help="One cell per seed (spreads seeds over "
                                              "workers) instead of all seeds vmapped in one cell.")] = False,
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="FIELD=VALUE for every algorithm that has "
                                                           "FIELD, or ALGO.FIELD=VALUE (repeatable).")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="CPUs of the local Ray instance (default: "
                                                   "the cores available).")] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="Join this Ray cluster instead of starting "
                                                   "a local one (BENCH_DIR must be shared storage).")] = None,
    cpus_per_cell: Annotated[int, typer.Option("--cpus-per-cell", help="CPUs (and XLA threads) per cell.")] = 1,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Run a grid of algorithms x datasets x seeds (optionally fine-tuned online) as Ray tasks, with every result in
    BENCH_DIR/results.sqlite; exits non-zero if a cell failed. Re-running the same command (or `o2o bench --out
    BENCH_DIR` alone) finishes the grid."""
    from pathlib import Path

    from o2o import bench

    values: dict[str, Any] = bench.load_suite(suite) if suite else {}
    given = {"algos": algos and [a.strip() for a in algos.split(",") if a.strip()],
             "datasets": datasets and [d.strip() for d in datasets.split(",") if d.strip()],
             "env": env, "seeds": seeds, "seed": seed, "steps": steps, "online_steps": online_steps,
             "online_algo": online_algo, "eval_every": eval_every, "online_eval_every": online_eval_every,
             "eval_episodes": eval_episodes, "split_seeds": split_seeds or None}
    values.update({k: v for k, v in given.items() if v is not None})
    values["overrides"] = {**values.get("overrides", {}), **_parse_overrides(overrides)}
    if not out:
        raise O2OError("o2o bench needs --out BENCH_DIR")
    if not suite and not any(v is not None for k, v in given.items()) and not overrides:
        grid = bench.saved_grid(Path(out))  # `o2o bench --out BENCH_DIR` alone resumes the grid saved there
    elif "algos" not in values or "datasets" not in values:
        raise O2OError("o2o bench needs --algos and --datasets, or --suite SUITE (or only --out BENCH_DIR to resume)")
    else:
        grid = bench.Grid(**values)
    summary = bench.run(grid, out, workers=workers, address=address, cpus_per_cell=cpus_per_cell, progress=not quiet)
    if as_json:
        _print_json(summary)
    else:
        print(f"{summary['completed']} of {summary['cells']} cells completed; results in {summary['database']}")
        for failure in summary["failed"]:
            print(f"failed: {failure['cell']}: {failure['error']}")
        print(f"report: o2o report {summary['bench_dir']}")
    if summary["failed"] or summary["completed"] < summary["cells"]:
        raise typer.Exit(1)


@app.command("report")
def report_cmd(
    sources: Annotated[list[str], typer.Argument(help="Bench directories and/or run directories.")],
    out: Annotated[Optional[str], typer.Option("--out", help="Report directory (default BENCH_DIR/report for one "
                                               "bench, else ./report).")] = None,
    reps: Annotated[int, typer.Option("--reps", help="Bootstrap samples for confidence intervals.")] = 2000,
    final: Annotated[str, typer.Option("--final", help="Final score of a run: last (its last evaluation, D4RL/CORL) "
                                       "or last3 (mean of its last three, OGBench/FQL).")] = "last",
    as_json: JsonFlag = False,
) -> None:
    """Statistics over seeds and datasets (IQM with bootstrap CIs, performance profiles, probability of improvement),
    figures, report.md, report.json and a self-contained report.html."""
    from o2o import report

    summary = report.build(sources, out, reps=reps, final=final)
    if as_json:
        _print_json(summary)
        return
    _print_entries(summary)
    print(f"report: {summary['html']}")


def _print_entries(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    final = summary["protocol"]
    other = "last3" if final == "last" else "last"
    table = Table(title="final score over seeds")
    for column in ("method", "dataset", "seeds", f"{final}: mean ± std", "IQM [95% CI]", other, "published"):
        table.add_column(column, justify="left" if column in ("method", "dataset") else "right")
    for e in summary["entries"]:
        table.add_row(e["method"], e["dataset"], str(e["seeds"]), f"{e['final_mean']:.1f} ± {e['final_std']:.1f}",
                      f"{e['iqm']:.1f} [{e['iqm_ci'][0]:.1f}, {e['iqm_ci'][1]:.1f}]", f"{e[other + '_mean']:.1f}",
                      "" if e["published"] is None else f"{e['published']:.1f}")
    Console(width=None if sys.stdout.isatty() else 160).print(table)  # piped output: no wrapping at 80 columns


@app.command("algos")
def algos_cmd(as_json: JsonFlag = False) -> None:
    """The algorithms o2o trains: kind, what each is, its paper and how it runs online."""
    if as_json:
        _print_json({name: {k: v for k, v in vars(r).items() if k != "name"} for name, r in REGISTRY.items()})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="o2o algorithms (o2o train / online / finetune / bench)")
    for column in ("name", "kind", "what it is", "paper", "online"):
        table.add_column(column)
    for r in REGISTRY.values():
        online = "offline only" if r.online is None else ", ".join(f"{k} {v}" for k, v in r.online.items())
        table.add_row(r.name + (f" ({', '.join(r.aliases)})" if r.aliases else ""), r.kind, r.summary, r.paper, online)
    Console().print(table)


@app.command("quickstart")
def quickstart(
    out: Annotated[str, typer.Option("--out", help="Directory for the dataset, the runs and the report.")] = "runs/quickstart",
    steps: Annotated[Optional[int], typer.Option("--steps", help="Offline updates per algorithm and seed (default 20000).")] = None,
    seeds: Annotated[Optional[int], typer.Option("--seeds", help="Seeds per algorithm (default 2).")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="CPUs of the local Ray instance (default: all).")] = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """The whole pipeline on a small built-in default: collect a dataset with a shipped policy, train BC, TD3+BC and IQL
    offline, fine-tune TD3+BC and IQL online, and report with confidence intervals (the `quick` bench suite)."""
    import time

    from o2o import quickstart as job

    start = time.perf_counter()
    result = job.run(out, steps=steps, seeds=seeds, workers=workers, progress=not quiet)
    result["wall_seconds"] = time.perf_counter() - start
    if as_json:
        _print_json(result)
        return
    _print_entries(result["report"])
    for e in result["report"]["entries"]:
        if e["online_algo"]:
            print(f"{e['method']}: offline {e['offline_mean']:.1f} -> online step 0 {e['start_mean']:.1f} -> "
                  f"{e['final_mean']:.1f} after fine-tuning")
    print(f"Pendulum-v1 normalized score: 0 = random torques, 100 = a scripted controller; the behaviour policy scores "
          f"{result['behaviour_normalized_score']:.1f}. Done in {result['wall_seconds']:.0f} s.")
    failed = result["bench"]["failed"]
    if failed:
        print(f"{len(failed)} cell(s) failed: " + "; ".join(f"{f['cell']}: {f['error']}" for f in failed))
    print(f"report: {result['report']['html']}")
    if failed:
        raise typer.Exit(1)


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(summary)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['algo']} on {summary['dataset']} ({summary['env']})")
    table.add_column("seed")
    table.add_column("return", justify="right")
    table.add_column("normalized score", justify="right")
    scores = summary.get("normalized_score_per_seed") or [None] * len(summary["seed_values"])
    for seed, ret, score in zip(summary["seed_values"], summary["return_per_seed"] or [], scores):
        table.add_row(str(seed), f"{ret:.1f}", "" if score is None else f"{score:.1f}")
    if summary.get("return_mean") is not None:
        norm = summary.get("normalized_score")
        table.add_row("mean", f"{summary['return_mean']:.1f}", "" if norm is None else f"{norm:.1f}")
    Console().print(table)
    if summary.get("preset"):
        values = ", ".join(f"{k}={v}" for k, v in summary["preset"]["values"].items())
        print(f"the paper's settings for {summary['preset']['name']}: {values} (--preset none to train without)")
    if summary.get("start_score") is not None and summary.get("normalized_score") is not None:
        dip = summary.get("dip")
        print(f"normalized score {summary['start_score']:.1f} at online step 0 -> {summary['normalized_score']:.1f} after "
              f"{summary['steps']} online steps" + (f"; dip {dip:.1f}" if dip is not None else ""))
    if "env_steps_per_second" in summary:
        print(f"{summary['steps']} env steps x {summary['seeds']} seeds at {summary['env_steps_per_second']:,.0f} env "
              f"steps/s; run directory: {summary['run_dir']}")
    elif "updates_per_second" in summary:
        print(f"{summary['steps']} updates x {summary['seeds']} seeds at {summary['updates_per_second']:,.0f} updates/s; "
              f"run directory: {summary['run_dir']}")


def _warn_on_stderr(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main() -> None:
    warnings.showwarning = _warn_on_stderr
    try:
        app()
    except O2OError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
