"""`o2o bench`, `report`, `results import`, `algos` and `quickstart`: grids of runs, other code's results beside
them, and what they show."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from o2o.algorithms import REGISTRY
from o2o.cli.common import (EnvOption, JsonFlag, QuietFlag, SamplerTemperatureOption, WandbProjectOption, _logging,
                            _parse_overrides, _print_entries, _print_json, app, results_app)
from o2o.errors import O2OError


@app.command("bench")
def bench_cmd(
    algos: Annotated[Optional[str], typer.Option("--algos", help="Comma-separated algorithms, e.g. bc,td3bc,iql.")] = None,
    datasets: Annotated[Optional[str], typer.Option("--datasets", help="Comma-separated dataset SOURCEs or "
                                                    "collect:ENV_ID:LEVEL[:TRANSITIONS] (collected once).")] = None,
    suite: Annotated[Optional[str], typer.Option("--suite", help="A suite TOML file, or a shipped suite: quick, zoo, "
                                                 "finetuning, ogbench. Options given on the command line win.")] = None,
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
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="FIELD=VALUE for every algorithm that reads "
                                                           "FIELD, or ALGO.FIELD=VALUE (repeatable).")] = None,
    samplers: Annotated[Optional[str], typer.Option("--samplers", help="Comma-separated batch samplers, each a cell "
                                                    "dimension: uniform (the default), return-weighted, "
                                                    "advantage-weighted (see `o2o train --help`); the report names a "
                                                    "weighted method ALGO+RW-0.1 or ALGO+AW-0.1.")] = None,
    sampler_temperature: SamplerTemperatureOption = None,
    bonuses: Annotated[Optional[str], typer.Option("--bonuses", help="Comma-separated reward bonuses of the online "
                                                   "phase, each a cell dimension of the fine-tuned cells: none (the "
                                                   "default), sera (see `o2o finetune --help`); the report names a "
                                                   "bonus's method ALGO\u2192ALGO+sera.")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="CPUs of the local Ray instance (default: "
                                                   "the cores available).")] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="Join this Ray cluster instead of starting "
                                                   "a local one (BENCH_DIR must be shared storage).")] = None,
    cpus_per_cell: Annotated[int, typer.Option(
        "--cpus-per-cell", help="CPUs Ray reserves per cell (1: XLA single-threaded; more: XLA uses every core).")] = 1,
    logger: Annotated[Optional[str], typer.Option("--logger", help="Where each run's metrics go besides metrics.jsonl: "
                                                  "tensorboard (the default), wandb (one W&B group per bench, tags "
                                                  "for algorithm, dataset and seed), none, or a list such as "
                                                  "tensorboard,wandb. A re-run keeps the bench's unless given.")] = None,
    wandb_project: WandbProjectOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Run a grid of algorithms x samplers x datasets x seeds (optionally fine-tuned online) as Ray tasks, with every result in
    BENCH_DIR/results.sqlite; exits non-zero if a cell failed. Re-running the same command (or `o2o bench --out
    BENCH_DIR` alone) finishes the grid."""
    from pathlib import Path

    from o2o import bench

    logging = _logging(logger, wandb_project)
    values: dict[str, Any] = bench.load_suite(suite) if suite else {}
    given = {"algos": algos and [a.strip() for a in algos.split(",") if a.strip()],
             "datasets": datasets and [d.strip() for d in datasets.split(",") if d.strip()],
             "env": env, "seeds": seeds, "seed": seed, "steps": steps, "online_steps": online_steps,
             "online_algo": online_algo, "eval_every": eval_every, "online_eval_every": online_eval_every,
             "eval_episodes": eval_episodes, "split_seeds": split_seeds or None,
             "samplers": samplers and [s.strip() for s in samplers.split(",") if s.strip()],
             "sampler_temperature": sampler_temperature,
             "bonuses": bonuses and [b.strip() for b in bonuses.split(",") if b.strip()]}
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
    summary = bench.run(grid, out, workers=workers, address=address, cpus_per_cell=cpus_per_cell, progress=not quiet,
                        logging=logging)
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
    sources: Annotated[list[str], typer.Argument(help="Bench directories, results databases (.sqlite) and/or run "
                                                       "directories.")],
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


class ImportFormat(str, Enum):
    auto = "auto"
    csv = "csv"
    json = "json"
    d3rlpy = "d3rlpy"


class ScoreMetric(str, Enum):
    normalized = "normalized"
    success = "success"
    return_ = "return"


IMPORT_HELP = (  # the whole format, for `o2o results import --help`; the docstring is the short version
    "Import other code's per-seed evaluation curves (the authors' reference code, another library) into a results "
    "database, where `o2o report` shows them as a method of their own beside o2o's runs, with the same statistics, "
    "marked as imported. CSV: a header line, then one line per evaluation of one seed, with columns method (the name "
    "the report shows), dataset (named as o2o's runs on it are), seed, step (gradient updates offline; environment "
    "steps since the switch online, 0 = before fine-tuning), score, and optional phase (offline, the default, or "
    "online), metric (what score is: normalized, the default, 0 = random and 100 = expert; success, a rate in %; or "
    "return: with env it also gets o2o's normalized score), env (gymnasium id) and source (repository, commit, "
    "command). env, metric and source are one per run (method, dataset, seed); a step appears once per run and phase. "
    "JSON: a list of such records, or {\"records\": [...], \"source\": ...} whose other keys apply to every record. "
    "d3rlpy: a d3rlpy_logs/RUN directory (environment.csv: offline, evaluation.csv: online; epoch,step,value lines; "
    "returns) with --method, --dataset and --seed. --method, --dataset, --seed, --phase, --env, --metric and "
    "--source fill a field a file lacks or rename its one value. Bad input is refused with a one-line error naming "
    "the file, line and field, before anything is written; the files are never changed; the database is written in one transaction. An "
    "imported run replaces the one of the same method, dataset and seed, and re-importing a file replaces what it "
    "imported before."
)


@results_app.command("import", help=IMPORT_HELP, short_help="Import other code's per-seed evaluation curves "
                     "into a results database, for `o2o report` to show beside o2o's runs.")
def results_import(
    files: Annotated[list[str], typer.Argument(
        metavar="FILE", help="CSV or JSON files in the import format, or d3rlpy logs (a d3rlpy_logs/RUN directory "
        "or its environment.csv / evaluation.csv).")],
    into: Annotated[str, typer.Option("--into", help="A bench directory (its results.sqlite) or a results database "
                                      "file (.sqlite); made if missing.")],
    method: Annotated[Optional[str], typer.Option("--method", help="The method's name in the report, e.g. \"ReBRAC "
                                                  "(authors' code)\", for files without a method column (or to "
                                                  "rename a file's one method).")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="The dataset, named as o2o's runs on it are, for "
                                                   "files without a dataset column (or to rename a file's one "
                                                   "dataset).")] = None,
    seeds: Annotated[Optional[list[int]], typer.Option("--seed", help="The seed of each FILE, in order, for files "
                                                       "without a seed column (d3rlpy logs).")] = None,
    phase: Annotated[Optional[str], typer.Option("--phase", help="offline or online, for files without a phase "
                                                 "column (or to rename a file's one phase).")] = None,
    env: Annotated[Optional[str], typer.Option("--env", help="Gymnasium environment id, for files without an env "
                                               "column: with it a return also gets its normalized score.")] = None,
    metric: Annotated[Optional[ScoreMetric], typer.Option("--metric", help="What score is, for files without a metric "
                                                  "column: normalized (0 = random, 100 = expert; the "
                                                  "CSV/JSON default), success (a rate in %) or return (d3rlpy's "
                                                  "default).")] = None,
    source: Annotated[Optional[str], typer.Option("--source", help="Where the curves come from: the reference's "
                                                  "repository, commit and command (shown in the report).")] = None,
    format: Annotated[ImportFormat, typer.Option("--format", help="auto: a directory or a headerless .csv is a "
                                                 "d3rlpy log, .json json, anything else csv.")] = ImportFormat.auto,
    as_json: JsonFlag = False,
) -> None:
    """Import other code's per-seed evaluation curves (CSV or JSON of method, dataset, seed, step, score; d3rlpy
    logs) into a results database, where `o2o report` shows them beside o2o's runs with the same statistics, marked
    as imported. `o2o results import --help` describes the format."""
    from o2o import external

    summary = external.import_files(files, into, format=format.value, seeds=seeds, method=method, dataset=dataset,
                                    phase=phase, env=env, metric=metric and metric.value, source=source)
    if as_json:
        _print_json(summary)
        return
    for entry in summary["imported"]:
        print(f"{entry['method']} on {entry['dataset']}: seeds {', '.join(map(str, entry['seeds']))}, "
              f"{entry['evaluations']} evaluations from {entry['file']} ({entry['format']})")
    if summary["replaced"]:
        print(f"replaced {summary['replaced']} run(s) imported before" +
              (f" from {', '.join(summary['replaced_from'])}" if summary["replaced_from"] else ""))
    print(f"{summary['runs']} run(s) imported into {summary['database']}; report: o2o report {into}")


@app.command("algos")
def algos_cmd(as_json: JsonFlag = False) -> None:
    """The algorithms o2o trains: kind, what each is, its paper, how it runs online and what its update was checked
    against (the reference implementation and commit, update and learning parity)."""
    if as_json:
        # `checked` is a property (from CHECKS), not a field: vars() leaves it out
        _print_json({name: {**{k: v for k, v in vars(r).items() if k != "name"},
                            "checked": r.checked and dataclasses.asdict(r.checked)} for name, r in REGISTRY.items()})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="o2o algorithms (o2o train / online / finetune / bench)")
    for column in ("name", "kind", "what it is", "paper", "online", "checked against"):
        table.add_column(column)
    for r in REGISTRY.values():
        online = "offline only" if r.online is None else ", ".join(f"{k} {v}" for k, v in r.online.items())
        table.add_row(r.name + (f" ({', '.join(r.aliases)})" if r.aliases else ""), r.kind, r.summary, r.paper, online,
                      r.checked.summary() if r.checked else "not yet checked")
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
