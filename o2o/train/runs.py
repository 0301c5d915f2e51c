"""Run directories: config.json, metrics.jsonl (and the other sinks of `loggers`), atomic checkpoints, summary.json.

`RunDir` is the one reader and writer of a run's config.json and summary.json: every other module goes through it."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import warnings
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from o2o import files
from o2o.errors import O2OError
from o2o.files import atomic_write_bytes, jsonable
from o2o.train import loggers

CONFIG = "config.json"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoints/latest.msgpack"
PREVIOUS_CHECKPOINT = "checkpoints/previous.msgpack"
BEST_CHECKPOINT = "checkpoints/best.msgpack"
FINE_TUNING = "fine_tuning"  # in the config.json of `o2o run`'s offline phase: the settings of the online phase


def versions() -> dict[str, Any]:
    """Package versions and the machine facts that can change a run's numbers (XLA's thread flags among them)."""
    out: dict[str, Any] = {"python": platform.python_version()}
    for package in ("o2o", "jax", "jaxlib", "flax", "optax", "numpy", "gymnasium", "mujoco", "minari", "h5py"):
        try:
            out[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            out[package] = "not installed"
    out.update(backend=jax.default_backend(), cpu_count=os.cpu_count(), xla_flags=os.environ.get("XLA_FLAGS", ""))
    return out


class RunDir:
    """One run directory: its config.json (what the run is: kind, settings, the resolved agent config, env, seeds, the
    dataset it reads; and where its metrics go, `logging`, which changes no result) read once, its summary.json, checkpoints and metrics. Made by `create` (a new run; refuses a
    directory that holds one) or `open` (an existing run, optionally of one kind)."""

    def __init__(self, path: Path, record: dict[str, Any]):
        self.path, self.record = path, record

    @classmethod
    def create(cls, path: str | Path, kind: str, logging: loggers.LogSettings | None = None, **record: Any) -> "RunDir":
        path = Path(path)
        refuse_existing_run(path)
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path, {"kind": kind, **record, "logging": _plain(logging or loggers.LogSettings()),
                         "versions": versions()})
        files.write_json(path / CONFIG, run.record)
        return run

    @classmethod
    def open(cls, path: str | Path, kind: str | None = None) -> "RunDir":
        path = Path(path)
        if not (path / CONFIG).is_file():
            raise O2OError(f"{path}: not a run directory (no {CONFIG})")
        run = cls(path, files.read_json(path / CONFIG))
        if kind is not None and run.kind != kind:
            raise O2OError(f"{path}: not an {kind} run directory (it holds an {run.kind!r} run)")
        return run

    @staticmethod
    def exists(path: str | Path) -> bool:
        return (Path(path) / CONFIG).is_file()

    kind = property(lambda self: self.record.get("kind"))
    settings = property(lambda self: self.record["settings"])
    agent_config = property(lambda self: self.record["agent_config"])
    env_id = property(lambda self: self.record.get("env_id"))
    seeds = property(lambda self: list(self.record["seeds"]))
    dataset_metadata = property(lambda self: self.record.get("dataset_metadata") or {})

    @property
    def logging(self) -> loggers.LogSettings:
        """Where its metrics go besides metrics.jsonl (runs made before o2o recorded it: TensorBoard)."""
        return loggers.LogSettings(**self.record.get("logging") or {})

    def update(self, **changes: Any) -> None:
        """Rewrite config.json with `changes` (an extended budget), atomically."""
        self.record = {**self.record, **changes}
        files.write_json(self.path / CONFIG, self.record)

    @property
    def summary(self) -> dict[str, Any] | None:
        """The final numbers, or None while the run is unfinished."""
        file = self.path / SUMMARY
        return files.read_json(file) if file.is_file() else None

    def write_summary(self, summary: dict[str, Any]) -> None:
        files.write_json(self.path / SUMMARY, summary)

    def check_dataset(self, content_hash: str) -> None:
        """Refuse to go on with data that differs from what the run trained on (runs made before o2o recorded the hash
        are not checked)."""
        recorded = (self.record.get("dataset") or {}).get("content_hash")
        if recorded is not None and recorded != content_hash:
            raise O2OError(f"{self.path}: its dataset {self.record['dataset']['source']} changed since the run started "
                           f"(content hash {recorded[:16]} then, {content_hash[:16]} now); resume it with the data it "
                           "started on, or start a new run")

    def evaluations(self) -> list[dict[str, Any]]:
        """The evaluation records of metrics.jsonl (those carrying per-seed returns), in step order; where a resumed
        run repeated a step, the last record of it."""
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return []
        records = {}
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise O2OError(f"{path}: line {number} is not valid JSON") from None
            if "return_per_seed" in record:
                records[(record.get("phase"), record["step"])] = record
        return sorted(records.values(), key=lambda r: r["step"])

    def last_evaluation(self, step: int) -> dict[str, Any] | None:
        """The latest evaluation record at or before `step`: a resumed run's last score (its summary's, when no step is
        left to run), as the uninterrupted run had it."""
        earlier = [record for record in self.evaluations() if record["step"] <= step]
        return earlier[-1] if earlier else None


def dataset_reference(source: str, content_hash: str, transitions: int) -> dict[str, Any]:
    """How a run names its dataset: an existing path made absolute (the run is then usable from any directory), a
    dataset id as given, with the content hash that a resume checks."""
    return {"source": files.absolute_source(source), "content_hash": content_hash, "transitions": transitions}


class MetricsLog:
    """Every log point of a run, to metrics.jsonl (always: the run's record) and to the sinks its logging chose
    (TensorBoard events, a W&B run: `loggers`); opened by the training loop, closed in its `finally`."""

    def __init__(self, run: RunDir, resume_from_step: int | None = None):
        self.sinks: list[loggers.Sink] = [loggers.JsonLines(run.path / "metrics.jsonl", resume_from_step)]
        try:
            logging = run.logging
            if "tensorboard" in logging.sinks:
                self.sinks.append(loggers.TensorBoard(run.path, resume_from_step))
            if "wandb" in logging.sinks:
                self.sinks.append(_wandb(run, logging))
        except BaseException:
            self.close()
            raise

    def write(self, record: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.write(record)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def _wandb(run: RunDir, logging: loggers.LogSettings) -> loggers.WandB:
    """The run's W&B run: config.json as its config, grouped by the bench or the algorithm, its job type the phase. Its
    id is kept in config.json, so that a resumed run continues the same W&B run."""
    name = run.path.name
    if name in ("offline", "online"):  # a phase of `o2o run` or of a bench cell: named by its directory, too
        name = f"{run.path.parent.name}/{name}"
    recorded = run.record.get("wandb_run_id")
    sink = loggers.WandB(run.path, recorded, project=logging.wandb_project, name=name,
                         group=logging.wandb_group or run.settings["algo"], job_type=run.kind,
                         tags=list(logging.wandb_tags) or None, config=json.loads(json.dumps(run.record, default=jsonable)))
    if sink.id != recorded:
        run.update(wandb_run_id=sink.id)
    return sink


def _plain(logging: loggers.LogSettings) -> dict[str, Any]:
    """As config.json holds it."""
    return json.loads(json.dumps(dataclasses.asdict(logging)))


def resumed_logging(run: RunDir, given: loggers.LogSettings | None) -> loggers.LogSettings:
    """Where a resumed run logs: where it recorded, or the sinks and W&B project given again (a logger changes no
    result, so unlike the settings it may change; a bench cell's W&B group and tags stay). Recorded by `extend`."""
    if given is None:
        return run.logging
    recorded = run.record.get("logging") or {}
    return dataclasses.replace(given, wandb_group=given.wandb_group or recorded.get("wandb_group"),
                               wandb_tags=given.wandb_tags or recorded.get("wandb_tags", ()))


def divergence(metrics: dict[str, Any], states: Any) -> str | None:
    """What went non-finite, or None. The agent's parameters decide: a metric may be NaN by design (a delayed actor's
    loss on the updates that skip the actor) while a loss averaged over many updates can hide the NaN that started
    mid-way."""
    infinite = [k for k, v in metrics.items() if np.isinf(v).any()]
    if infinite:
        return f"{infinite[0]} became {np.asarray(metrics[infinite[0]]).tolist()} (per seed)"
    if bool(_all_finite(states)):
        return None
    undefined = [k for k, v in metrics.items() if np.isnan(v).any()]
    if undefined:
        return f"{undefined[0]} became {np.asarray(metrics[undefined[0]]).tolist()} (per seed)"
    return "the agent's parameters became non-finite"


@jax.jit
def _all_finite(tree: Any) -> jax.Array:
    return jax.tree.reduce(lambda ok, x: ok & jnp.isfinite(x).all(), tree, jnp.asarray(True))


def save_checkpoint(run_dir: Path, target: Any, path: str = CHECKPOINT) -> None:
    """Write a checkpoint atomically; the latest checkpoint it replaces is kept as the previous one, so that a latest
    file damaged after the fact (a full disk, a copy cut short) still leaves a good checkpoint to resume from."""
    data = flax.serialization.to_bytes(target)
    if path == CHECKPOINT and (run_dir / CHECKPOINT).is_file():
        os.replace(run_dir / CHECKPOINT, run_dir / PREVIOUS_CHECKPOINT)
    atomic_write_bytes(run_dir / path, data)


def deleted(tree: Any) -> bool:
    """Whether arrays of `tree` were donated to a jitted call (their buffers freed): it can no longer be saved."""
    return any(isinstance(x, jax.Array) and x.is_deleted() for x in jax.tree.leaves(tree))


def last_good_checkpoint(run_dir: Path, step: int) -> str:
    """Where a stopped run can be taken up again, in words (a run can diverge before its first checkpoint)."""
    if not has_checkpoint(run_dir):
        return "no checkpoint was written before it (lower the learning rates, or check the data)"
    return f"the last good checkpoint is {run_dir / CHECKPOINT} (step {step})"


def resume_hint(run: RunDir, step: int, saved_step: int) -> str:
    """How a run interrupted at `step` goes on from its checkpoint at `saved_step`. A phase of `o2o run` (or of a bench
    cell: its offline run records the online phase) by `o2o run --resume ROOT`, which finishes both phases and starts
    again one interrupted before its first checkpoint; a run of its own by its `--resume`, or, before its first
    checkpoint, started again."""
    root, saved = run.path.parent, has_checkpoint(run.path)
    offline = root / "offline"
    if run.path.name in ("offline", "online") and RunDir.exists(offline) and FINE_TUNING in RunDir.open(offline).record:
        command = f"o2o run --resume {root}"
    elif saved:
        command = f"o2o {'train' if run.kind == 'offline' else 'online'} --resume {run.path}"
    else:
        return f"no checkpoint was written yet: delete {run.path} and start the run again"
    last = f"its last checkpoint is at step {saved_step}; " if saved and saved_step != step else ""
    return f"{last}resume with `{command}`"


def has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / CHECKPOINT).is_file() or (run_dir / PREVIOUS_CHECKPOINT).is_file()


def load_checkpoint(run_dir: Path, template: Any, path: str = CHECKPOINT) -> Any:
    """Restore the entries of `template` (a dict) from a checkpoint; entries absent from the template come back raw.
    An unreadable or missing latest checkpoint falls back to the previous one, with a warning."""
    try:
        return _restore(run_dir / path, template)
    except O2OError as error:
        if path != CHECKPOINT or not (run_dir / PREVIOUS_CHECKPOINT).is_file():
            if not (run_dir / path).is_file():
                raise O2OError(f"{run_dir}: no checkpoint at {path}; was this run started by o2o?") from None
            raise
        checkpoint = _restore(run_dir / PREVIOUS_CHECKPOINT, template)
        warnings.warn(f"{error}; using the previous checkpoint {run_dir / PREVIOUS_CHECKPOINT} "
                      f"(step {int(checkpoint.get('step', -1))}) instead", RuntimeWarning, stacklevel=2)
        return checkpoint


def _restore(file: Path, template: Any) -> Any:
    try:
        raw = flax.serialization.msgpack_restore(file.read_bytes())
        return {key: flax.serialization.from_state_dict(template[key], value) if key in template else value
                for key, value in raw.items()}
    except FileNotFoundError:
        raise O2OError(f"{file}: checkpoint missing") from None
    except Exception as e:  # noqa: BLE001 — msgpack and flax raise many types for a damaged or foreign file
        raise O2OError(f"{file}: unreadable checkpoint ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


class ProgressBar:
    """A rich progress bar on stderr (step, updates/s, ETA, last score), or nothing."""

    def __init__(self, enabled: bool, total: int, completed: int, phase: str, rate_unit: str):
        self.bar, self.rate_unit = None, rate_unit
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn(phase), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                            TimeRemainingColumn(), TextColumn("{task.fields[score]}"), console=Console(stderr=True))
        self.task = self.bar.add_task("train", total=total, completed=completed, rate="", score="")
        self.bar.start()

    def advance(self, size: int, rate: float, last_eval: dict | None) -> None:
        if self.bar is None:
            return
        score = ""
        if last_eval:
            score = (f"score {last_eval['normalized_score']:.1f}" if "normalized_score" in last_eval
                     else f"return {last_eval['return_mean']:.1f}")
        self.bar.update(self.task, advance=size, rate=f"{rate:,.0f} {self.rate_unit}", score=score)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def check_counts(owner: str, not_options: tuple[str, ...] = (), **values: int | None) -> None:
    """Settings that count something (steps, seeds, episodes) are whole numbers of at least 1; those given with the
    suffix `_or_zero` may also be 0 (meaning none). The error names the command-line option to change, or for the
    settings in `not_options` (which no command sets: Python API only) the setting itself."""
    for name, value in values.items():
        if value is None:
            continue
        allow_zero = name.endswith("_or_zero")
        setting = name.removesuffix("_or_zero")
        option = setting if setting in not_options else "--" + setting.replace("_", "-")
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
            raise O2OError(f"{owner}: {option} must be {'0 or more' if allow_zero else 'at least 1'} (got {value!r})")


def refuse_existing_run(path: str | Path) -> None:
    """A new run never writes over another: checked before any data loads or training starts."""
    if RunDir.exists(path):
        raise O2OError(f"{path}: already holds a run; use --resume {path} to continue it or choose another --out")
    files.check_destination(path, may_exist=True)


def finished_summary(run: RunDir, steps: int | None, unit: str) -> dict[str, Any] | None:
    """What `--resume` finds first: a finished run's summary, untouched and marked `already_finished`, when `steps`
    asks for no more than it had (None: go on, to finish it or to extend it with `extend`). A smaller `steps` is
    refused: a run is never cut back."""
    recorded = run.settings["steps"]
    if steps is not None and steps < recorded:
        raise O2OError(f"{run.path}: --steps {steps} is below the run's {recorded} {unit}; a run is never cut back")
    summary = run.summary
    if summary is None or (steps is not None and steps > recorded):
        return None
    return {**summary, "already_finished": True}


def extend(run: RunDir, steps: int | None, logging: loggers.LogSettings | None = None) -> dict[str, Any]:
    """The run's settings with a larger budget `steps` recorded in config.json (with the extension's history), and the
    logging it resumes with (`resumed_logging`); called once every check of the resume has passed, so that a refused
    resume leaves the directory as it was."""
    if logging is not None and _plain(logging) != run.record.get("logging", _plain(loggers.LogSettings())):
        run.update(logging=_plain(logging))
    recorded = run.settings["steps"]
    if steps is not None and steps > recorded:
        extensions = run.record.get("extensions", []) + [{"from_steps": recorded, "to_steps": steps}]
        run.update(settings={**run.settings, "steps": steps}, extensions=extensions)
    return run.settings
