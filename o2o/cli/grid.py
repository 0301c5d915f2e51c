"""`o2o bench`, `report`, `algos` and `quickstart`: grids of runs and what they show."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from o2o.algorithms import REGISTRY
from o2o.cli.common import (EnvOption, JsonFlag, QuietFlag, WandbProjectOption, _logging,
                            _parse_overrides, _print_entries, _print_json, app)
from o2o.errors import O2OError


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
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="FIELD=VALUE for every algorithm that reads "
                                                           "FIELD, or ALGO.FIELD=VALUE (repeatable).")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="CPUs of the local Ray instance (default: "
                                                   "the cores available).")] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="Join this Ray cluster instead of starting "
                                                   "a local one (BENCH_DIR must be shared storage).")] = None,
    cpus_per_cell: Annotated[int, typer.Option("--cpus-per-cell", help="CPUs (and XLA threads) per cell.")] = 1,
    logger: Annotated[Optional[str], typer.Option("--logger", help="Where each run's metrics go besides metrics.jsonl: "
                                                  "tensorboard (the default), wandb (one W&B group per bench, tags "
                                                  "for algorithm, dataset and seed), none, or a list such as "
                                                  "tensorboard,wandb. A re-run keeps the bench's unless given.")] = None,
    wandb_project: WandbProjectOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Run a grid of algorithms x datasets x seeds (optionally fine-tuned online) as Ray tasks, with every result in
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
