"""`o2o bench`: a grid of cells run as Ray tasks, resumable, with every result in `BENCH_DIR/results.sqlite`.

A cell is one algorithm with one batch sampler (uniform, or weighted by return: `o2o.data.samplers`) on one dataset
with a group of seeds (the grid's seeds under `vmap`, or one per cell with `split_seeds`), optionally fine-tuned online
after its offline phase; its runs live in `BENCH_DIR/runs/CELL/offline` and `.../online`. Re-running the grid into the
same directory skips completed cells and resumes interrupted ones from their checkpoints, so a driver killed at any
point loses at most a cell's work since its last checkpoint. A failed cell is recorded with a one-line error.

Datasets are sources (anything `o2o data info` reads), `collect:ENV_ID:LEVEL[:TRANSITIONS]` specs or OGBench task
names (`o2o.bench_datasets`). A cell's phases are composed by `o2o.train.phases.offline_then_online`, as `o2o run`'s.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import time
import tomllib
import traceback
from importlib import resources
from pathlib import Path
from typing import Any, Collection

from o2o import files, results
from o2o.agents import get_algorithm, read_fields, reward_bonus
from o2o.algorithms import canonical_name, fine_tunes
from o2o.bench_datasets import (COLLECT, cell_env, check_datasets, dataset_label, locked, materialize,
                                parse_collect)
from o2o.data import samplers
from o2o.data.samplers import DEFAULT_TEMPERATURE
from o2o.errors import O2OError
from o2o.train import loggers, runs

GRID_FILE = "bench.json"
DATABASE = "results.sqlite"


@dataclasses.dataclass
class Grid:
    """What a bench runs; saved as BENCH_DIR/bench.json so that re-running the same command resumes it."""

    algos: list[str]
    datasets: list[str]
    env: str | None = None
    seeds: int = 3
    seed: int = 0
    steps: int = 100_000
    online_steps: int = 0
    online_algo: str | None = None
    eval_every: int = 10_000
    online_eval_every: int | None = None  # default: a tenth of the online steps
    eval_episodes: int = 10
    split_seeds: bool = False
    overrides: dict[str, str] = dataclasses.field(default_factory=dict)  # FIELD or ALGO.FIELD -> value
    samplers: list[str] = dataclasses.field(default_factory=lambda: ["uniform"])  # every algorithm runs with each
    sampler_temperature: float = DEFAULT_TEMPERATURE  # alpha of the weighted samplers (o2o.data.samplers)
    bonuses: list[str] = dataclasses.field(default_factory=lambda: ["none"])  # each fine-tuned cell runs with each

    def __post_init__(self) -> None:
        if not self.algos or not self.datasets or not self.samplers:
            raise O2OError("a bench needs at least one algorithm (--algos), one dataset (--datasets) and one sampler")
        self.algos = [canonical_name(a) for a in self.algos]
        self.samplers = list(dict.fromkeys(self.samplers))
        if self.online_algo:
            self.online_algo = canonical_name(self.online_algo)
        for name, value in (("seeds", self.seeds), ("steps", self.steps), ("eval_every", self.eval_every)):
            if value < 1:
                raise O2OError(f"bench: {name} must be at least 1 (got {value})")
        if self.online_steps < 0 or self.eval_episodes < 0:
            raise O2OError("bench: online steps and evaluation episodes cannot be negative")
        for dataset in self.datasets:
            if dataset.startswith(COLLECT):
                parse_collect(dataset)
        algorithms = self.algos + ([self.online_algo] if self.online_algo else [])
        for key in self.overrides:
            target, _, field = key.rpartition(".")
            if target and canonical_name(target) not in algorithms:
                raise O2OError(f"--set {key}: {target} is not among the bench's algorithms ({', '.join(algorithms)})")
            if not target and not any(field in read_fields(a) for a in algorithms):
                raise O2OError(f"--set {key}: no algorithm of the bench reads a config field {field!r}")
        for algo in algorithms:
            get_algorithm(algo, self.overrides_for(algo))  # bad values fail now, not in a worker
        from o2o.train.offline import check_sampler_fits

        self.bonuses = list(dict.fromkeys(self.bonuses or ["none"]))
        if self.bonuses != ["none"] and self.online_steps <= 0:
            raise O2OError("bench: a reward bonus (--bonuses) acts online; give --online-steps")
        tuned = {self.online_algo or a for a in self.algos if fine_tunes(a)}
        for bonus, algo in itertools.product(set(self.bonuses) - {"none"}, tuned):  # unknown, or no critic: refused
            reward_bonus(bonus, *get_algorithm(algo, self.overrides_for(algo)))
        for sampler in self.samplers:
            samplers.check(sampler, self.sampler_temperature)
            for algo in self.algos:
                check_sampler_fits(algo, get_algorithm(algo)[0], sampler)

    def overrides_for(self, algo: str) -> dict[str, str]:
        """`FIELD=V` applies to every algorithm that reads FIELD (`o2o.algorithms.Algorithm.unread`); `ALGO.FIELD=V`
        to ALGO alone (and wins)."""
        fields = read_fields(algo)
        chosen = {k: v for k, v in self.overrides.items() if "." not in k and k in fields}
        chosen.update({k.rpartition(".")[2]: v for k, v in self.overrides.items()
                       if "." in k and canonical_name(k.rpartition(".")[0]) == algo})
        return chosen


@dataclasses.dataclass(frozen=True)
class Cell:
    id: str
    algo: str
    dataset: str  # a source or a collect: spec
    label: str
    seeds: tuple[int, ...]
    online_algo: str | None
    sampler: str = "uniform"
    bonus: str = "none"  # the online phase's reward bonus


def cells(grid: Grid, recorded_labels: Collection[str] = ()) -> list[Cell]:
    """The grid's cells in a stable order, each with a stable id: seed-major, then algorithm, sampler and dataset, so
    that a grid stopped part-way holds every algorithm and dataset at its first seeds. An id names the method as the
    report does (`td3bc+RW-0.1`), the dataset as results do (`recorded_labels`: those the bench's database holds)."""
    groups = [[grid.seed + i] for i in range(grid.seeds)] if grid.split_seeds else [[grid.seed + i for i in range(grid.seeds)]]
    # a path or `collect:` spec by `dataset_label`; a dataset id (Minari's) in full, unless the database records only
    # its last part (o2o's name for ids before) and no other dataset of the grid has that name
    shorts = [dataset_label(d) for d in grid.datasets]
    labels = [short if d.startswith(COLLECT) or Path(d).exists()
              or (short in recorded_labels and shorts.count(short) == 1
                  and results.dataset_label(d, is_id=True) not in recorded_labels)
              else results.dataset_label(d, is_id=True) for d, short in zip(grid.datasets, shorts)]
    out, named = [], {}
    for group in groups:
        for algo in grid.algos:
            online = (grid.online_algo or algo) if grid.online_steps > 0 and fine_tunes(algo) else None
            for sampler, bonus in itertools.product(grid.samplers, grid.bonuses if online else ["none"]):
                method = samplers.method_name(algo, sampler, grid.sampler_temperature)
                for dataset, label in zip(grid.datasets, labels):
                    name = (f"{method}--{label}" + (f"--{results.online_method(online, bonus)}" if online else "")
                            + (f"--s{group[0]}" if grid.split_seeds else ""))
                    cell = Cell(re.sub(r"[^A-Za-z0-9_.+-]", "_", name), algo, dataset, label, tuple(group), online,
                                sampler, bonus)
                    if named.setdefault(cell.id, cell) is not cell:  # two cells would share one run directory
                        raise O2OError(f"bench: datasets {named[cell.id].dataset} and {dataset} both make cell "
                                       f"{cell.id}; give them names that differ in letters, digits or _.+-")
                    out.append(cell)
    return out


def load_suite(path_or_name: str) -> dict[str, Any]:
    """A suite's grid fields from a TOML file, or a shipped suite by name (`o2o/suites/NAME.toml`)."""
    path = Path(path_or_name)
    if path.is_file():
        text = path.read_text()
    else:
        shipped = resources.files("o2o.suites").joinpath(f"{path_or_name}.toml")
        if not shipped.is_file():
            raise O2OError(f"suite {path_or_name!r}: no such file, and no shipped suite of that name "
                           f"({', '.join(shipped_suites())})")
        text = shipped.read_text()
    try:
        suite = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise O2OError(f"suite {path_or_name}: invalid TOML ({e})") from None
    suite.pop("description", None)
    overrides = suite.pop("set", {})
    flat = {}
    for key, value in overrides.items():  # [set] FIELD = V and [set.ALGO] FIELD = V
        if isinstance(value, dict):
            flat.update({f"{key}.{field}": str(v) for field, v in value.items()})
        else:
            flat[key] = str(value)
    known = {f.name for f in dataclasses.fields(Grid)}
    unknown = sorted(set(suite) - known)
    if unknown:
        raise O2OError(f"suite {path_or_name}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return {**suite, "overrides": flat}


def shipped_suites() -> dict[str, str]:
    """name -> description of the suites shipped with o2o."""
    out = {}
    for entry in sorted(resources.files("o2o.suites").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".toml"):
            out[entry.name[:-5]] = tomllib.loads(entry.read_text()).get("description", "")
    return out


# ---- one cell, inside a Ray worker ----

def execute_cell(cell: Cell, grid: Grid, bench_dir: str, logging: loggers.LogSettings | None = None) -> dict[str, Any]:
    """Run (or finish) one cell; never raises: a failure comes back as a one-line error. Its runs log as `logging`
    says, in the bench's W&B group, tagged with the cell's algorithm, dataset and seeds."""
    from o2o.train import offline, phases

    started = time.perf_counter()
    cell_dir = Path(bench_dir) / "runs" / cell.id
    tags = [f"algo:{cell.algo}", f"dataset:{cell.label}", *(f"seed:{seed}" for seed in cell.seeds)]
    if cell.sampler != "uniform":
        tags.append(f"sampler:{samplers.label(cell.sampler, grid.sampler_temperature)}")
    logging = dataclasses.replace(logging or loggers.LogSettings(), wandb_group=Path(bench_dir).name,
                                  wandb_tags=tags + ([f"online_algo:{cell.online_algo}"] if cell.online_algo else []))
    try:
        with locked(cell_dir / ".lock"):
            settings = offline.OfflineSettings(
                algo=cell.algo, dataset=materialize(cell.dataset, Path(bench_dir)), env=cell_env(cell.dataset, grid.env),
                steps=grid.steps, seeds=len(cell.seeds), seed=cell.seeds[0], eval_every=grid.eval_every,
                eval_episodes=grid.eval_episodes, agent_overrides=grid.overrides_for(cell.algo), sampler=cell.sampler,
                sampler_temperature=grid.sampler_temperature)
            online_given = {"eval_every": grid.online_eval_every or max(1, grid.online_steps // 10),
                            "eval_episodes": grid.eval_episodes,
                            "agent_overrides": grid.overrides_for(cell.online_algo) if cell.online_algo else {},
                            "reward_bonus": cell.bonus}
            phases.offline_then_online(settings, cell_dir, grid.online_steps if cell.online_algo else 0, cell.online_algo,
                                       online_given, progress=False, resume=True, logging=logging)
        return {"status": "completed", "wall_seconds": time.perf_counter() - started}
    except Exception as e:  # noqa: BLE001 — a cell's failure is data for the report, not the end of the grid
        return {"status": "failed", "error": one_line(e), "traceback": traceback.format_exc(),
                "wall_seconds": time.perf_counter() - started}


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    message = text[0] if text else ""
    return message if isinstance(error, O2OError) else f"{type(error).__name__}: {message}"


# ---- the driver ----

def prepare_dir(grid: Grid, bench_dir: Path, logging: loggers.LogSettings | None = None) -> loggers.LogSettings:
    """Write bench.json, or check that the directory's grid is this one (re-running resumes it). Returns where the
    cells log: `logging` (recorded in bench.json; a re-run may change it), else what it recorded, else TensorBoard."""
    bench_dir.mkdir(parents=True, exist_ok=True)
    path = bench_dir / GRID_FILE
    payload = dataclasses.asdict(grid)
    if path.is_file():
        recorded = files.read_json(path)
        saved = {**_added_fields(), **recorded.get("grid", {})}
        differ = sorted(k for k in payload if saved.get(k) != json.loads(json.dumps(payload[k])))
        if differ:
            raise O2OError(f"{bench_dir}: holds a bench with a different grid (differs in {', '.join(differ)}); "
                           f"re-run its own command to resume it, or choose another --out")
        if logging is None:
            return loggers.LogSettings(**recorded.get("logging") or {})
        files.write_json(path, {**recorded, "logging": dataclasses.asdict(logging)})
        return logging
    logging = logging or loggers.LogSettings()
    files.write_json(path, {"grid": payload, "logging": dataclasses.asdict(logging), "versions": runs.versions()})
    return logging


def _added_fields() -> dict[str, Any]:
    """Defaults of the Grid fields added after the first bench.json: an older bench.json means them by lacking them."""
    return {"samplers": ["uniform"], "sampler_temperature": DEFAULT_TEMPERATURE, "bonuses": ["none"]}


def saved_grid(bench_dir: Path) -> Grid:
    path = bench_dir / GRID_FILE
    if not path.is_file():
        raise O2OError(f"{bench_dir}: no {GRID_FILE}; not a bench directory")
    return Grid(**files.read_json(path)["grid"])


def xla_flags(threads: int) -> str:
    """One reserved CPU: XLA single-threaded; XLA:CPU takes no other count, so more CPUs mean every core it sees."""
    own = os.environ.get("XLA_FLAGS", "")
    return f"{own} --xla_cpu_multi_thread_eigen=false".strip() if threads == 1 else own


def run(grid: Grid, bench_dir: str | Path, workers: int | None = None, address: str | None = None,
        cpus_per_cell: int = 1, progress: bool = True, logging: loggers.LogSettings | None = None) -> dict[str, Any]:
    """Run every cell that is not completed yet, its runs logged as `logging` says (`prepare_dir`); returns
    {bench_dir, database, cells, completed, failed}."""
    bench_dir = Path(bench_dir).resolve()
    grid = dataclasses.replace(grid, datasets=[files.absolute_source(d) for d in grid.datasets])
    cells(grid)  # a grid whose cells would share a directory is refused before anything is written
    for flag, value in (("--workers", workers), ("--cpus-per-cell", cpus_per_cell)):
        if value is not None and value < 1:
            raise O2OError(f"{flag} must be at least 1 (got {value})")
    check_datasets(grid.datasets)
    logging = prepare_dir(grid, bench_dir, logging)
    conn = results.connect(bench_dir / DATABASE)
    all_cells = cells(grid, {row["dataset"] for row in conn.execute("SELECT dataset FROM cells")})
    status = results.cell_status(conn)
    for cell in all_cells:
        if cell.id not in status:
            results.set_cell(conn, cell.id, algo=cell.algo, dataset=cell.label,
                             online_algo=cell.online_algo and results.online_method(cell.online_algo, cell.bonus),
                             seeds=list(cell.seeds), status="pending")
    todo = [c for c in all_cells if status.get(c.id) != "completed"]
    if todo:
        _dispatch(todo, grid, bench_dir, conn, workers, address, cpus_per_cell, progress, len(all_cells), logging)
    status = results.cell_status(conn)
    failed = [{"cell": row["cell"], "error": row["error"]}
              for row in conn.execute("SELECT cell, error FROM cells WHERE status = 'failed' ORDER BY cell")
              if row["cell"] in {c.id for c in all_cells}]
    conn.close()
    return {"bench_dir": str(bench_dir), "database": str(bench_dir / DATABASE), "cells": len(all_cells),
            "completed": sum(status.get(c.id) == "completed" for c in all_cells), "failed": failed}


def _record(conn, cell: Cell, bench_dir: Path, outcome: dict[str, Any]) -> None:
    cell_dir = bench_dir / "runs" / cell.id
    offline_dir, online_dir = cell_dir / "offline", cell_dir / "online"
    if runs.RunDir.exists(offline_dir):
        results.ingest_run(conn, offline_dir, online_dir if runs.RunDir.exists(online_dir) else None,
                           cell=cell.id, status=outcome["status"], error=outcome.get("error"), label=cell.label)
    attempts = conn.execute("SELECT attempts FROM cells WHERE cell = ?", (cell.id,)).fetchone()["attempts"]
    results.set_cell(conn, cell.id, status=outcome["status"], error=outcome.get("error"),
                     wall_seconds=outcome.get("wall_seconds"), attempts=attempts + 1)
    if outcome.get("traceback"):
        files.atomic_write_bytes(cell_dir / "error.txt", outcome["traceback"].encode())


def _dispatch(todo: list[Cell], grid: Grid, bench_dir: Path, conn, workers: int | None, address: str | None,
              cpus_per_cell: int, progress: bool, total: int, logging: loggers.LogSettings) -> None:
    import warnings
    from logging import ERROR

    import ray

    # Ray starts its processes by fork + exec, which is safe; JAX's warning about fork in a threaded process is not.
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
    if address:
        try:
            ray.init(address=address, logging_level=ERROR, log_to_driver=False)
        except (ConnectionError, RuntimeError) as e:
            raise O2OError(f"--address {address}: cannot join the Ray cluster ({one_line(e)})") from None
        capacity = int(ray.cluster_resources().get("CPU", 1))
    else:
        capacity = len(os.sched_getaffinity(0)) if workers is None else workers
        # Ray starts its workers at nice 15 by default: beside any other process a cell then got 4% of a core
        # (an EDAC cell beside two reference runs). A bench is the user's own job: its cells run at the driver's
        # priority unless RAY_worker_niceness says otherwise. Read by the raylet this process starts.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(address="local", num_cpus=capacity, include_dashboard=False, logging_level=ERROR,
                 log_to_driver=False)
    slots = max(1, capacity // cpus_per_cell)
    task = ray.remote(execute_cell).options(
        num_cpus=cpus_per_cell, max_retries=0,
        runtime_env={"env_vars": {"XLA_FLAGS": xla_flags(cpus_per_cell), "PYTHONWARNINGS": "ignore"}})
    display = GridProgress(progress, total, total - len(todo))
    queue, running = list(todo), {}
    try:
        while queue or running:
            while queue and len(running) < slots:
                cell = queue.pop(0)
                results.set_cell(conn, cell.id, status="running", error=None)
                running[task.remote(cell, grid, str(bench_dir), logging)] = cell
            display.update(len(running), len(queue))
            done, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in done:
                cell = running.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as e:  # noqa: BLE001 — the worker died (out of memory, killed): record it
                    outcome = {"status": "failed", "error": one_line(e)}
                _record(conn, cell, bench_dir, outcome)
                display.finished(cell, outcome)
    finally:
        display.close()
        ray.shutdown()


class GridProgress:
    """One rich progress line for the grid: cells done of total, running, queued, failed, elapsed and ETA."""

    def __init__(self, enabled: bool, total: int, already_done: int):
        self.bar, self.failed, self.running, self.queued = None, 0, 0, 0
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("bench"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[state]}"),
                            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                            console=Console(stderr=True))
        self.task = self.bar.add_task("cells", total=total, completed=already_done, state="")
        self.bar.start()

    def update(self, running: int, queued: int) -> None:
        self.running, self.queued = running, queued
        if self.bar is not None:
            self.bar.update(self.task, state=f"running {running}, queued {queued}, failed {self.failed}")

    def finished(self, cell: Cell, outcome: dict[str, Any]) -> None:
        if outcome["status"] == "failed":
            self.failed += 1
        # the state text now, not at the next `update`: after the last cell there is none, and the line would stay stale
        self.update(self.running - 1, self.queued)
        if self.bar is not None:
            self.bar.update(self.task, advance=1)
            if outcome["status"] == "failed":
                self.bar.console.print(f"cell {cell.id} failed: {outcome['error']}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
