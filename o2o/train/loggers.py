"""Where a run's metrics go (`--logger`): metrics.jsonl always (the run's record, which o2o reads back), and beside it
TensorBoard events, a Weights & Biases run, both, or neither.

Each sink is a small class with `write(record)` and `close()`; `runs.MetricsLog` fans every record out to them. The
choice changes no result: config.json records it as `logging`, beside the settings rather than among them, and a
resume may change it. wandb is imported only when a W&B sink opens: o2o imports and trains without it."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any, Protocol

from o2o.errors import O2OError
from o2o.files import atomic_write_bytes, jsonable

LOGGERS = ("tensorboard", "wandb", "none")
DEFAULT_WANDB_PROJECT = "o2o"
CHOICES = "choose tensorboard, wandb or none, or a comma-separated list such as tensorboard,wandb"


@dataclasses.dataclass(frozen=True)
class LogSettings:
    """Where a run's metrics go besides metrics.jsonl. A W&B sink needs wandb installed: checked when made, so a run
    that asks for it (on the command line, or recorded by the run it resumes) stops before any work."""

    sinks: tuple[str, ...] = ("tensorboard",)  # tensorboard and/or wandb; empty: metrics.jsonl alone (`--logger none`)
    wandb_project: str | None = None  # --wandb-project, else $WANDB_PROJECT, else "o2o"; fixed when the run starts
    wandb_group: str | None = None  # a bench cell's: the bench's name; a run's: its algorithm (None)
    wandb_tags: tuple[str, ...] = ()  # a bench cell's algorithm, dataset and seeds

    def __post_init__(self) -> None:
        object.__setattr__(self, "sinks", tuple(dict.fromkeys(self.sinks)))  # JSON gives lists; repeats said once
        object.__setattr__(self, "wandb_tags", tuple(self.wandb_tags))
        unknown = [name for name in self.sinks if name not in LOGGERS or name == "none"]
        if unknown:
            raise O2OError(f"logger {unknown[0]!r}: {CHOICES}")
        if "wandb" in self.sinks:
            if importlib.util.find_spec("wandb") is None:
                raise O2OError('logging to W&B (--logger wandb) needs the wandb package, which is not installed: '
                               'pip install -e ".[wandb]"')
            if self.wandb_project is None:
                object.__setattr__(self, "wandb_project", os.environ.get("WANDB_PROJECT") or DEFAULT_WANDB_PROJECT)

    @classmethod
    def parse(cls, logger: str | None, wandb_project: str | None = None) -> LogSettings | None:
        """From the command line (`--logger tensorboard|wandb|none|A,B`, `--wandb-project`); None when neither is given:
        a new run then logs to TensorBoard, a resumed run as it recorded."""
        if logger is None and wandb_project is None:
            return None
        names = [name.strip() for name in (logger or "tensorboard").split(",") if name.strip()]
        if not names or any(name not in LOGGERS for name in names) or ("none" in names and len(names) > 1):
            raise O2OError(f"--logger {logger}: {CHOICES} (metrics.jsonl is always written)")
        sinks = tuple(name for name in names if name != "none")
        if wandb_project is not None and "wandb" not in sinks:
            raise O2OError(f"--wandb-project {wandb_project}: a W&B project, for runs that log to W&B; give it "
                           "with --logger wandb (or a list that holds wandb, e.g. tensorboard,wandb)")
        return cls(sinks, wandb_project)


class Sink(Protocol):
    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """A record's numeric fields keyed PHASE/NAME (TensorBoard's tags, W&B's keys); its step is the axis, not a value."""
    phase = record.get("phase", "train")
    return {f"{phase}/{key}": value for key, value in record.items()
            if isinstance(value, (int, float)) and key != "step"}


class JsonLines:
    """metrics.jsonl: one JSON object per record, flushed as it is written. A resume first drops the records after
    its checkpoint's step (the resumed run writes them again)."""

    def __init__(self, path: Path, resume_from_step: int | None = None):
        if resume_from_step is not None and path.exists():
            kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= resume_from_step]
            atomic_write_bytes(path, "".join(line + "\n" for line in kept).encode())
        self.file = open(path, "a")  # noqa: SIM115 — open for the run's life, closed by `close`

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record, default=jsonable) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class TensorBoard:
    """TensorBoard events in the run directory; a resume purges the events after its checkpoint's step."""

    def __init__(self, directory: Path, resume_from_step: int | None = None):
        from tensorboardX import SummaryWriter

        # TensorBoard hides the events at and after `purge_step`: the checkpoint's own step was logged and is not
        # logged again
        purge_step = None if resume_from_step is None else resume_from_step + 1
        self.writer = SummaryWriter(str(directory), purge_step=purge_step)

    def write(self, record: dict[str, Any]) -> None:
        for tag, value in scalars(record).items():
            self.writer.add_scalar(tag, value, record["step"])

    def close(self) -> None:
        self.writer.close()


class WandB:
    """A W&B run, its files under DIRECTORY/wandb; `run_id` continues an earlier one (a resumed o2o run). `init` are
    `wandb.init`'s project, name, group, job_type, tags and config; its mode comes from $WANDB_MODE (online, offline,
    disabled), else wandb's own default. Each record's scalars are logged at W&B step `step`."""

    def __init__(self, directory: Path, run_id: str | None, **init: Any):
        import wandb

        try:
            self.run = wandb.init(dir=str(directory), id=run_id, resume="allow", **init)
        except Exception as e:  # noqa: BLE001 — wandb raises many types: no API key, no network, a bad project name
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise O2OError(f"{directory}: W&B could not start its run ({reason}); log in (`wandb login`), set "
                           "WANDB_MODE=offline to keep it on this machine (`wandb sync` later), or drop wandb from "
                           "--logger") from None
        self.id = self.run.id
        self.first_step = self.run.starting_step  # a resumed W&B run holds the steps before it already

    def write(self, record: dict[str, Any]) -> None:
        if record["step"] >= self.first_step:
            self.run.log(scalars(record), step=record["step"])

    def close(self) -> None:
        """Finish the W&B run; called from the training loop's `finally`, so an exception on its way out (an error,
        Ctrl-C) marks it failed."""
        self.run.finish(exit_code=0 if sys.exc_info()[1] is None else 1)
