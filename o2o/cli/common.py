"""What the commands share: the app, its options, and how summaries and tables are printed."""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from o2o.errors import O2OError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="o2o: offline-to-online reinforcement learning.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect and convert datasets.")
app.add_typer(data_app, name="data")
results_app = typer.Typer(no_args_is_help=True, help="Results databases: other code's per-seed curves.")
app.add_typer(results_app, name="results")


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
PresetOption = Annotated[Optional[str], typer.Option("--preset", help="The paper's per-dataset settings (see `o2o "
                                                    "algos --json`): auto (chosen by the dataset's env and level; the "
                                                    "default), none, or a name.")]
OverridesOption = Annotated[Optional[list[str]], typer.Option("--set", help="Agent config FIELD=VALUE (repeatable).")]
SamplerOption = Annotated[Optional[str], typer.Option("--sampler", help="Which transitions a batch holds: uniform (the "
                                                      "default), return-weighted or advantage-weighted (by their "
                                                      "trajectory's return, Hong et al. 2023; not with dt or bc10). "
                                                      "Online fine-tuning samples uniformly.")]
SamplerTemperatureOption = Annotated[Optional[float], typer.Option("--sampler-temperature", help="Temperature of the "
                                                                   "weighted samplers: lower favours the best "
                                                                   "trajectories more (default 0.1, the paper's).")]
UtdOption = Annotated[Optional[int], typer.Option("--utd", help="Updates per env step (default: the algorithm's).")]
WarmupOption = Annotated[Optional[int], typer.Option("--warmup-steps", help="Steps before learning starts "
                                                     "(default: the algorithm's).")]
EvalEpisodesOption = Annotated[Optional[int], typer.Option("--eval-episodes", help="Episodes per seed and evaluation "
                                                          "(0: none; default 10).")]
BonusOption = Annotated[Optional[str], typer.Option("--with", help="A reward bonus for the online phase: sera (SERA's "
                                                   "Q-conditioned state-entropy bonus, on any algorithm with a critic; "
                                                   "default none).")]
BonusNeighboursOption = Annotated[Optional[int], typer.Option("--bonus-neighbours", help="--with sera: k of its "
                                                              "nearest-neighbour estimate in each batch (default 10).")]
BonusScaleOption = Annotated[Optional[float], typer.Option("--bonus-scale", help="--with sera: lambda in r + lambda "
                                                           "tanh(r_int) (default 1).")]
LoggerOption = Annotated[Optional[str], typer.Option("--logger", help="Where metrics go besides metrics.jsonl (always "
                                                    "written): tensorboard (the default), wandb, none, or a list such "
                                                    "as tensorboard,wandb. It changes no result; a resumed run keeps "
                                                    "its own unless given.")]
WandbProjectOption = Annotated[Optional[str], typer.Option("--wandb-project", help="W&B project for --logger wandb "
                                                          "(default $WANDB_PROJECT, else o2o); W&B's mode comes from "
                                                          "$WANDB_MODE (online, offline, disabled).")]


def _print_json(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, default=float))


def _parse_overrides(pairs: list[str] | None) -> dict[str, str]:
    overrides = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise O2OError(f"--set {pair!r}: expected FIELD=VALUE, e.g. --set expectile=0.9")
        overrides[key.strip()] = value.strip()
    return overrides


def _logging(logger: str | None, wandb_project: str | None) -> Any:
    """`--logger` and `--wandb-project` as `LogSettings`, checked before any work; None when neither is given."""
    from o2o.train.loggers import LogSettings

    return LogSettings.parse(logger, wandb_project)


def _given(**values: Any) -> dict[str, Any]:
    """The options the user gave (None: left to the library's defaults)."""
    return {k: v for k, v in values.items() if v is not None}


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


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if summary.get("already_finished"):
        print(f"{summary['run_dir']}: finished already ({summary['steps']} steps); nothing to do (--steps N extends it)",
              file=sys.stderr)
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
    if summary.get("online_updates") == 0:
        print(f"no online update ran: the warm-up covered all {summary['steps']} env steps")
    elif summary.get("start_score") is not None and summary.get("normalized_score") is not None:
        dip = summary.get("dip")
        print(f"normalized score {summary['start_score']:.1f} at online step 0 -> {summary['normalized_score']:.1f} after "
              f"{summary['steps']} online steps" + (f"; dip {dip:.1f}" if dip is not None else ""))
    if "env_steps_per_second" in summary:
        print(f"{summary['steps']} env steps x {summary['seeds']} seeds at {summary['env_steps_per_second']:,.0f} env "
              f"steps/s; run directory: {summary['run_dir']}")
    elif "updates_per_second" in summary:
        print(f"{summary['steps']} updates x {summary['seeds']} seeds at {summary['updates_per_second']:,.0f} updates/s; "
              f"run directory: {summary['run_dir']}")


