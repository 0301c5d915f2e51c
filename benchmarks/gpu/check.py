"""The GPU check (issue 32): what o2o does on one GPU, measured in one command within a wall-time budget.

Run through check.sh (it installs o2o and the carried wheels offline first):
    bash benchmarks/gpu/check.sh [--wheels DIR] [--out DIR] [--budget SECONDS]      on a GPU machine
    bash benchmarks/gpu/check.sh --cpu [--wheels DIR]                               the same steps at a tiny size
It prints and writes (OUT/check.json, OUT/check.md, as each part finishes, so that a check cut short keeps what it has):
1. the device, and its measured matmul rate (a jitted chain of float32 matmuls, 8192 x 8192 on the GPU, 256 x 256 with
   --cpu; at JAX's default precision, what the updates get, and at the highest);
2. updates/s of every registered algorithm (the online ones with their UTD schedule) at 1 and 8 seeds vmapped, fused
   `chunk` updates per call through the offline loop's own `make_train_chunk`, with XLA's FLOPs per update and the
   share of the matmul rate (the papers' batch sizes and networks, HalfCheetah's shapes; --cpu: small networks),
   beside JAX-CORL's published 1M-update times;
3. one run at the published budget: IQL on OGBench cube-single-play task 2, on data that `o2o collect` makes there
   (a worker per core but two, in the background while part 2 compiles), 8 seeds vmapped, 1M updates, evaluated with 50
   episodes at 800k, 900k and 1M (OGBench's protocol: their mean), beside the published 85. If the budget left cannot
   hold 1M updates, it runs the largest budget that fits (evaluated at 80%, 90% and 100% of it) and reports how long
   1M would take at the rate measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

OGBENCH_ENV, OGBENCH_LEVEL = "cube-single-v0", "play"
IQL_TASK = "cube-single-play-singletask-task2-v0"  # dataset + task, as `o2o train --dataset` takes it
TARGET_UPDATES = 1_000_000
# 1M updates on a GTX 1080 Ti, minutes (JAX-CORL's README, as issue 32 quotes it: "16-28x CORL's PyTorch")
JAX_CORL_MINUTES = {"iql": 9, "td3bc": 9, "awac": 11, "cql": 56, "dt": 11}


@dataclasses.dataclass(frozen=True)
class Sizes:
    """What the check measures at: the GPU's sizes, or --cpu's tiny ones (the same steps)."""

    matmul_n: int  # square matmul side
    matmul_repeats: int  # matmuls chained in one jitted call
    table_transitions: int  # synthetic dataset of the update table (HalfCheetah's shapes)
    table_episode: int  # its episode length
    table_chunk: int  # updates fused per timed call
    table_calls: int  # timed calls after the warm-up one (the best counts)
    table_seeds: tuple[int, ...]
    table_overrides: dict[str, str]  # config fields set where an algorithm has them ({}: the papers' networks)
    collect_episodes: int
    collect_episode_steps: int
    iql_seeds: int
    iql_target: int  # updates per seed
    iql_chunk: int
    iql_eval_episodes: int
    iql_overrides: dict[str, str]
    budget: float  # seconds of wall time for the whole check, check.sh's install included


GPU = Sizes(matmul_n=8192, matmul_repeats=20, table_transitions=100_000, table_episode=1000, table_chunk=1000,
            table_calls=2, table_seeds=(1, 8), table_overrides={}, collect_episodes=1000, collect_episode_steps=1001,
            iql_seeds=8, iql_target=TARGET_UPDATES, iql_chunk=1000, iql_eval_episodes=50, iql_overrides={},
            budget=480.0)
CPU = Sizes(matmul_n=256, matmul_repeats=200, table_transitions=2_000, table_episode=100, table_chunk=10,
            table_calls=1, table_seeds=(1, 8),
            table_overrides={"hidden_dims": "32,32", "batch_size": "32", "embedding_dim": "16", "num_layers": "1",
                             "context_length": "5", "flow_steps": "2"},
            collect_episodes=5, collect_episode_steps=201, iql_seeds=2, iql_target=300, iql_chunk=10,
            iql_eval_episodes=2, iql_overrides={"hidden_dims": "32,32", "batch_size": "32"}, budget=1800.0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="the same steps at a tiny size, on the CPU")
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu-check",
                        help="where check.json, check.md and the run's logs go (default $OUT, else ./gpu-check)")
    parser.add_argument("--work", help="datasets and the run directory (default: a new temporary directory)")
    parser.add_argument("--budget", type=float, help="seconds of wall time for the whole check, counted from "
                        "$O2O_CHECK_STARTED (check.sh sets it before installing); default 480, with --cpu 1800")
    parser.add_argument("--algos", help="comma-separated algorithms of the update table (default: every registered "
                        "one, the online ones with their UTD schedule)")
    parser.add_argument("--parts", default="matmul,updates,iql", help="comma-separated parts to run")
    parser.add_argument("--workers", type=int, help="`o2o collect` processes (default: cores - 2, with --cpu 1)")
    parser.add_argument("--compile-threads", type=int, help="update-table programs compiled at once while the data "
                        "is collected (default 8, with --cpu 2)")
    parser.add_argument("--cache", default=os.environ.get("O2O_CHECK_CACHE") or str(Path.home() / ".cache/o2o/gpu-check-jax"),
                        help="JAX's persistent compilation cache (a rerun on the same machine compiles nothing)")
    args = parser.parse_args(argv)
    args.sizes = CPU if args.cpu else GPU
    args.budget = args.budget if args.budget is not None else args.sizes.budget
    args.parts = [p for p in args.parts.split(",") if p]
    unknown = set(args.parts) - {"matmul", "updates", "iql"}
    if unknown:
        parser.error(f"--parts: unknown {', '.join(sorted(unknown))}; expected matmul, updates, iql")
    cores = os.cpu_count() or 1
    args.workers = args.workers or (1 if args.cpu else max(1, cores - 2))
    args.compile_threads = args.compile_threads or (2 if args.cpu else 8)
    started = os.environ.get("O2O_CHECK_STARTED")
    args.started = float(started) if started else time.time()
    return args


# ---------------------------------------------------------------------------------------------------------- the report

class Report:
    """The check's results as one JSON object, written with its markdown rendering after every part."""

    def __init__(self, out: Path, header: dict[str, Any]):
        self.out = out
        self.data: dict[str, Any] = {"check": header}

    def set(self, part: str, value: Any) -> None:
        self.data[part] = value
        self.write()

    def write(self) -> tuple[Path, Path]:
        return write_report(self.data, self.out)


def write_report(data: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """OUT/check.json and OUT/check.md, each written whole (a temporary file renamed into place)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "check.json", out / "check.md"
    for path, text in zip(paths, (json.dumps(data, indent=1, default=_plain) + "\n", markdown(data))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return paths


def _plain(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _flops(value: float | None) -> str:
    """FLOP/s in the unit that reads best: 412.3 TFLOP/s, 85.2 GFLOP/s."""
    if value is None:
        return ""
    return f"{value / 1e12:,.1f} TFLOP/s" if value >= 1e12 else f"{value / 1e9:,.1f} GFLOP/s"


def _num(value: Any, digits: int = 1, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value * scale:,.{digits}f}"


def markdown(data: dict[str, Any]) -> str:
    """The report as markdown: what was measured, on what, and beside which published numbers."""
    check = data.get("check", {})
    lines = [f"# o2o GPU check ({check.get('mode', '?')})", "",
             f"Started {check.get('started', '?')}; wall {_num(check.get('wall_seconds'), 0)} s of a "
             f"{_num(check.get('budget_seconds'), 0)} s budget (installation included); command: "
             f"`{check.get('command', '')}`; o2o {check.get('o2o_commit') or '(commit unknown)'}.", ""]
    device = data.get("device")
    if device:
        lines += ["## Device", "", f"- devices: {', '.join(device['devices'])} ({device['platform']})",
                  f"- jax {device['jax']}, jaxlib {device['jaxlib']}"
                  + (f", {device['plugin']}" if device.get("plugin") else ""),
                  f"- {device['cpu_count']} CPU cores, Python {device['python']}"]
        if device.get("nvidia_smi"):
            lines.append(f"- nvidia-smi: {device['nvidia_smi']}")
        lines.append("")
    matmul = data.get("matmul")
    if matmul:
        lines += ["## Matmul rate", "",
                  f"A jitted chain of {matmul['repeats']} float32 {matmul['n']} x {matmul['n']} matmuls, best of 5 "
                  f"calls: **{_flops(matmul['default'])}** at JAX's default precision (what the updates "
                  f"get; TF32 on NVIDIA tensor cores), {_flops(matmul['highest'])} at the highest (true float32).", ""]
    updates = data.get("updates")
    if updates:
        lines += ["## Update speed", "",
                  f"Synthetic data ({updates['transitions']:,} transitions, observation {updates['observation_dim']}, "
                  f"action {updates['action_dim']}: HalfCheetah's shapes), {updates['chunk']} updates fused per call "
                  f"(`o2o.train.offline.make_train_chunk`, seeds vmapped), best of {updates['calls']} calls after a "
                  f"warm-up; networks and batch sizes: {updates['networks']}. GFLOP per update per seed as XLA counts "
                  "them (a loop inside an update counts once); share of the default-precision matmul rate above. "
                  "JAX-CORL: 1M updates on a GTX 1080 Ti (its README).", "",
                  "| algorithm | batch | networks | seeds | updates/s per seed | updates/s, all seeds | GFLOP/update "
                  "| matmul rate | 1M updates | JAX-CORL 1M | compile s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in updates["rows"]:
            if row.get("error"):
                lines.append(f"| {row['algo']} | | | {row['seeds']} | {row['error']} | | | | | | |")
                continue
            corl = JAX_CORL_MINUTES.get(row["algo"])
            lines.append(
                f"| {row['algo']} | {row['batch_size']} | {row['networks']} | {row['seeds']} | "
                f"{_num(row['updates_per_second_per_seed'], 0)} | {_num(row['updates_per_second'], 0)} | "
                f"{_num(row['gflop_per_update'], 3)} | {_num(row['matmul_share'], 2, 100)}% | "
                f"{_num(row['minutes_for_1m'], 1)} min | {f'{corl} min' if corl else ''} | "
                f"{_num(row['compile_seconds'], 1)} |")
        lines.append("")
    collect = data.get("collect")
    if collect:
        lines += ["## Data", ""]
        beside = ", beside the update table's compilation" if updates else ""
        if collect.get("error"):
            lines += [f"`o2o collect` failed: {collect['error']}", ""]
        else:
            lines += [f"`{collect['command']}`: {collect['summary']['episodes']} + "
                      f"{collect['summary']['validation_episodes']} episodes, {collect['summary']['rows']:,} rows in "
                      f"{_num(collect['seconds'], 0)} s ({_num(collect['steps_per_second'], 0)} env steps/s with "
                      f"{collect['workers']} workers{beside}).", ""]
    iql = data.get("iql")
    if iql:
        lines += ["## IQL on cube-single-play task 2 at the published budget", ""]
        if iql.get("error"):
            lines += [f"Not run: {iql['error']}", ""]
        else:
            lines += [f"{iql['seeds']} seeds vmapped, {iql['steps']:,} updates (target {iql['target']:,}), "
                      f"{iql['eval_episodes']} episodes per seed at each evaluation; the OGBench preset "
                      f"({iql['preset']})"
                      + (f", then {', '.join(f'{k}={v}' for k, v in iql['overrides'].items())}" if iql["overrides"] else "")
                      + ".", ""]
            if iql.get("evaluations"):
                lines += ["| step | success per seed (%) | mean |", "|---|---|---|"]
                for e in iql["evaluations"]:
                    lines.append(f"| {e['step']:,} | {', '.join(f'{v:.0f}' for v in e['per_seed'])} | "
                                 f"{e['mean']:.1f} |")
                lines.append("")
            if iql.get("final_mean") is not None:
                lines += [f"Mean of the last three evaluations: **{iql['final_mean']:.1f}** (± {iql['final_std']:.1f} "
                          f"over seeds); published: {_num(iql['published'], 0)} ({iql['published_source']}).", ""]
            ran = iql.get("run_updates_per_second_per_seed")
            lines += [f"Updates: {_num(iql['updates_per_second_per_seed'], 0)} per second per seed ({iql['seeds']} "
                      "seeds vmapped, a calibration chunk"
                      + (f"; {_num(ran, 0)} over the run, its compilations and per-chunk checks included" if ran else "")
                      + f"). {iql['target']:,} updates take {_num(iql['target_update_seconds'], 0)} s of updates, "
                      f"{_num(iql['target_seconds_published_schedule'], 0)} s with the published schedule's "
                      f"{iql['published_evaluations']} evaluations of {iql['eval_episodes']} episodes per seed (one "
                      f"took {_num(iql['eval_seconds_each'], 0)} s here, on one CPU core).", ""]
            if iql.get("note"):
                lines += [iql["note"], ""]
    if data.get("errors"):
        lines += ["## Errors", ""] + [f"- {e}" for e in data["errors"]] + [""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------- the device

def device_info() -> dict[str, Any]:
    from importlib import metadata

    import jax
    import jaxlib

    plugin = None
    for name in ("jax-cuda13-plugin", "jax-cuda12-plugin"):
        try:
            plugin = f"{name} {metadata.version(name)}"
            break
        except metadata.PackageNotFoundError:
            continue
    smi = None
    if shutil.which("nvidia-smi"):
        result = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, check=False)
        smi = result.stdout.strip() or None
    return {"devices": [f"{d} ({d.device_kind})" for d in jax.devices()], "platform": jax.default_backend(),
            "jax": jax.__version__, "jaxlib": jaxlib.__version__, "plugin": plugin, "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "nvidia_smi": smi}


def matmul_rate(n: int, repeats: int, precision: str | None = None, calls: int = 5) -> float:
    """FLOP/s of `repeats` chained float32 n x n matmuls in one jitted call, the best of `calls` calls after a warm-up."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32) / math.sqrt(n)  # keeps the chain's scale
    chain = jax.jit(lambda x, a: jax.lax.fori_loop(0, repeats, lambda i, x: jnp.dot(x, a, precision=precision), x))
    chain(a, a).block_until_ready()
    best = math.inf
    for _ in range(calls):
        start = time.perf_counter()
        chain(a, a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return repeats * 2 * n**3 / best


# ------------------------------------------------------------------------------------------------- the update table

@dataclasses.dataclass
class Cell:
    """One algorithm at one seed count: its compiled chunk of fused updates and what it runs on."""

    algo: str
    seeds: int
    config: Any
    compiled: Any = None
    states: Any = None
    keys: Any = None
    data: Any = None
    flops: float = math.nan  # per update, all seeds
    compile_seconds: float = math.nan
    error: str | None = None


def synthetic_dataset(path: Path, transitions: int, episode: int, observation_dim: int = 17, action_dim: int = 6):
    """HalfCheetah-shaped random transitions in o2o's format, episodes of `episode` steps cut by time limits."""
    import numpy as np

    from o2o.data import Dataset, write_o2o

    rng = np.random.default_rng(0)
    timeouts = np.zeros(transitions, bool)
    timeouts[episode - 1::episode] = True
    data = Dataset(rng.normal(size=(transitions, observation_dim)).astype(np.float32),
                   rng.uniform(-1, 1, (transitions, action_dim)).astype(np.float32),
                   rng.normal(size=transitions).astype(np.float32),
                   rng.normal(size=(transitions, observation_dim)).astype(np.float32),
                   np.zeros(transitions, bool), timeouts, {"source": "o2o GPU check (synthetic)"})
    return write_o2o(data, path)


def overrides_for(algo: str, wanted: dict[str, str]) -> dict[str, str]:
    """The fields of `wanted` that the algorithm's config has and reads (an override of another is an error)."""
    from o2o.agents import get_algorithm
    from o2o.algorithms import record

    _, config = get_algorithm(algo)
    fields = {f.name for f in dataclasses.fields(config)} - set(record(algo).unread)
    return {k: v for k, v in wanted.items() if k in fields}


def network_label(config: Any) -> str:
    if hasattr(config, "num_layers"):  # DT (FamO2O's embedding_dim is its coefficient's features)
        return f"{config.num_layers} x {config.embedding_dim} transformer, K {config.context_length}"
    label = " x ".join(str(h) for h in config.hidden_dims) if hasattr(config, "hidden_dims") else ""
    critics = getattr(config, "num_critics", None)
    return label + (f", {critics} critics" if critics and critics != 2 else "")


def lower_algorithm(algo: str, seed_counts: tuple[int, ...], dataset: str, overrides: dict[str, str],
                    chunk: int) -> Callable[[], list[Cell]]:
    """The algorithm's pieces through the offline loop's own preparation (its dataset transform, extra transition
    fields, observation statistics), and its programs lowered here: the seeds' initialisation and, for each seed
    count, the chunk of fused updates (lowered on the states' shapes alone). Returns the rest as a job for a thread:
    compile them (XLA compiles without Python's lock, so jobs overlap; the initialisation's compilation alone takes
    10 s on a busy 2-core CPU), initialise the most seeds once (a seed's state does not depend on the others': the
    fewer-seed cells take the first seeds'), and give one cell per seed count."""
    import jax
    import jax.numpy as jnp

    from o2o.algorithms import online_schedule
    from o2o.train import offline

    most = max(seed_counts)
    settings = offline.OfflineSettings(algo=algo, dataset=dataset, seeds=most, eval_episodes=0, preset="none",
                                       agent_overrides={**online_schedule(algo), **overrides_for(algo, overrides)})
    p = offline.prepare(settings)
    data = offline.device_data(p)
    initialise = jax.jit(lambda: offline.init_seeds(p.agent, p.config, p.spec, p.seeds))
    init, shapes = initialise.lower(), jax.eval_shape(initialise)
    programs = []
    for seeds in seed_counts:
        states = jax.tree.map(lambda x, n=seeds: jax.ShapeDtypeStruct((n, *x.shape[1:]), x.dtype), shapes)
        keys = jnp.stack([jax.random.PRNGKey(s) for s in p.seeds[:seeds]])
        # the arguments as the offline loop passes them (trajectories None: the agent's own uniform batches)
        programs.append((seeds, keys, offline.make_train_chunk(p.agent, p.config, chunk).lower(states, keys, 0, data,
                                                                                            None)))

    def job() -> list[Cell]:
        cells = [compile_cell(Cell(algo, seeds, p.config, keys=keys, data=data), lowered)
                 for seeds, keys, lowered in programs]
        states = init.compile()()
        for cell in cells:  # copies: the updates donate their states, and target networks must not alias
            cell.states = jax.tree.map(lambda x, n=cell.seeds: jnp.copy(x[:n]), states)
        return cells

    return job


def compile_cell(cell: Cell, lowered: Any) -> Cell:
    """Compile once (bench_updates' `fused_rate_and_flops` compiles twice: its AOT call for XLA's count, then the jit
    call); XLA's FLOPs of one loop body = one update of every seed."""
    start = time.perf_counter()
    cell.compiled = lowered.compile()
    cell.compile_seconds = time.perf_counter() - start
    cost = cell.compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    cell.flops = float((cost or {}).get("flops", math.nan))
    return cell


def time_cell(cell: Cell, chunk: int, calls: int) -> float:
    """Updates per second per seed: the best of `calls` calls of `chunk` fused updates, after a warm-up call."""
    import jax

    states, _ = cell.compiled(cell.states, cell.keys, 0, cell.data, None)
    jax.block_until_ready(states)
    best = math.inf
    for c in range(1, calls + 1):
        start = time.perf_counter()
        states, _ = cell.compiled(states, cell.keys, c, cell.data, None)
        jax.block_until_ready(states)
        best = min(best, time.perf_counter() - start)
    cell.states = states
    return chunk / best


def table_row(cell: Cell, rate: float | None, matmul: float | None) -> dict[str, Any]:
    if cell.error:
        return {"algo": cell.algo, "seeds": cell.seeds, "error": cell.error}
    flops_per_seed = cell.flops / cell.seeds
    return {"algo": cell.algo, "seeds": cell.seeds, "batch_size": getattr(cell.config, "batch_size", None),
            "networks": network_label(cell.config), "updates_per_second_per_seed": rate,
            "updates_per_second": rate * cell.seeds if rate else None, "gflop_per_update": flops_per_seed / 1e9,
            "matmul_share": rate * cell.flops / matmul if rate and matmul else None,
            "minutes_for_1m": TARGET_UPDATES / rate / 60 if rate else None, "compile_seconds": cell.compile_seconds}


# ------------------------------------------------------------------------------------------------------------ the run

class Collect:
    """`o2o collect cube-single-v0 --level play` in the background (its JAX on the CPU: it only acts through NumPy
    oracles), and when it ended."""

    def __init__(self, args: argparse.Namespace, datasets: Path, log: Path):
        o2o = Path(sysconfig.get_path("scripts")) / "o2o"
        self.command = [str(o2o) if o2o.exists() else "o2o", "collect", OGBENCH_ENV, "--level", OGBENCH_LEVEL,
                        "--episodes", str(args.sizes.collect_episodes),
                        "--episode-steps", str(args.sizes.collect_episode_steps), "--workers", str(args.workers),
                        "--out", str(datasets / f"{OGBENCH_ENV[:-3]}-{OGBENCH_LEVEL}-v0"), "--quiet", "--json"]
        self.shown = " ".join(["o2o"] + self.command[1:])
        self.workers, self.log = args.workers, log
        self.started = time.time()
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
                                        env={**os.environ, "JAX_PLATFORMS": "cpu"})
        self.stdout, self.ended = "", None
        self.watcher = threading.Thread(target=self._wait, daemon=True)
        self.watcher.start()

    def _wait(self) -> None:
        self.stdout, _ = self.process.communicate()
        self.ended = time.time()

    def result(self) -> dict[str, Any]:
        """Waits for it to end; what it made, or its error."""
        self.watcher.join()
        seconds = self.ended - self.started
        if self.process.returncode != 0:
            tail = self.log.read_text().strip().splitlines()[-3:]
            return {"command": self.shown, "error": f"exit {self.process.returncode}: {' | '.join(tail)}",
                    "seconds": seconds}
        summary = json.loads(self.stdout.strip().splitlines()[-1])
        rows = summary["rows"] * (1 + summary["validation_episodes"] / max(1, summary["episodes"]))
        return {"command": self.shown, "summary": summary, "seconds": seconds, "steps_per_second": rows / seconds,
                "workers": self.workers}


def plan_steps(target: int, rate: float, seconds_left: float, eval_seconds: float, overhead_seconds: float,
               unit: int) -> int:
    """The updates per seed of the run: the target, or else the largest multiple of `unit` whose updates (at `rate`
    per second per seed) and three evaluations (plus `overhead_seconds` per train/resume call) fit in `seconds_left`;
    0 when not even one unit fits."""
    usable = seconds_left - 3 * (eval_seconds + overhead_seconds)
    if usable <= 0 or rate <= 0:
        return 0
    return min(target, int(usable * rate // unit) * unit)


def eval_seconds_estimate(env_id: str, seeds: int, episodes: int, probe_steps: int = 100) -> dict[str, float]:
    """What one evaluation of `seeds` x `episodes` episodes should take, from the env's measured step and creation
    times: `expected` counts 70% of the steps of every episode running to its time limit (a trained policy ends most
    episodes early, at success), plus the policy's calls (20%); `envs` is the time to create one wave's envs."""
    import numpy as np

    from o2o.envs import make_env
    from o2o.train.evaluation import wave_width

    start = time.perf_counter()
    env = make_env(env_id)
    make_seconds = time.perf_counter() - start
    try:
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        for _ in range(probe_steps):
            _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
            if terminated or truncated:
                env.reset()
        step_seconds = (time.perf_counter() - start) / probe_steps
        limit = env.spec.max_episode_steps or 1000
    finally:
        env.close()
    worst = seeds * episodes * limit * step_seconds * 1.2
    return {"expected": 0.7 * worst, "worst": worst, "envs": seeds * wave_width(seeds, episodes) * make_seconds,
            "step_seconds": step_seconds, "episode_limit": limit}


def iql_run(args: argparse.Namespace, work: Path, deadline: float, log: Callable[[str], None]) -> dict[str, Any]:
    """IQL on cube-single-play task 2 with the OGBench preset, through `o2o.train.offline`: trained to 80% of its budget
    and evaluated, then resumed to 90% and to 100% (a resume ends with an evaluation), so that exactly the protocol's
    three evaluations run. The budget is the target, or what fits before `deadline` at the rate of a calibration
    chunk compiled first (which also fills the persistent compilation cache that the run's own compilations read)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from o2o.report.tables import published
    from o2o.train import offline, runs
    from o2o.train.loggers import LogSettings

    sizes = args.sizes
    run_dir = work / "iql-cube-single-task2"
    settings = offline.OfflineSettings(algo="iql", dataset=IQL_TASK, seeds=sizes.iql_seeds, chunk=sizes.iql_chunk,
                                       eval_episodes=sizes.iql_eval_episodes, out=str(run_dir),
                                       agent_overrides=dict(sizes.iql_overrides))
    start = time.time()
    prepared = offline.prepare(settings)
    prepare_seconds = time.time() - start
    cell = Cell("iql", sizes.iql_seeds, prepared.config, states=offline.init_states(prepared),
                data=offline.device_data(prepared), keys=jnp.stack([jax.random.PRNGKey(s) for s in prepared.seeds]))
    lowered = offline.make_train_chunk(prepared.agent, prepared.config, sizes.iql_chunk).lower(
        cell.states, cell.keys, 0, cell.data, None)
    rate = time_cell(compile_cell(cell, lowered), sizes.iql_chunk, 2)
    del cell, lowered
    evaluation = eval_seconds_estimate(prepared.env_id, sizes.iql_seeds, sizes.iql_eval_episodes)
    overhead = prepare_seconds + evaluation["envs"] + 5.0  # each train / resume call loads the data and makes envs
    unit = 10 * sizes.iql_chunk  # 80% and 90% of the budget stay whole chunks
    steps = plan_steps(sizes.iql_target, rate, deadline - time.time(), evaluation["expected"], overhead, unit)
    published_value, source = published("iql", None, prepared.env_id, None)
    result: dict[str, Any] = {
        "dataset": IQL_TASK, "env": prepared.env_id, "seeds": sizes.iql_seeds, "target": sizes.iql_target,
        "steps": steps, "eval_episodes": sizes.iql_eval_episodes,
        "preset": ", ".join(f"{k}={v}" for k, v in (prepared.preset or {}).get("values", {}).items()) or "none",
        "overrides": sizes.iql_overrides, "calibration_updates_per_second_per_seed": rate,
        "prepare_seconds": prepare_seconds, "eval_estimate": evaluation, "published": published_value,
        "published_source": source, "published_evaluations": 10, "run_dir": str(run_dir)}
    log(f"IQL: {rate:,.0f} updates/s per seed ({sizes.iql_seeds} seeds); an evaluation should take "
        f"{evaluation['expected']:.0f} s (at most {evaluation['worst']:.0f}); running {steps:,} of "
        f"{sizes.iql_target:,} updates")
    if steps == 0:
        result.update(updates_per_second_per_seed=rate, eval_seconds_each=evaluation["expected"],
                      note=f"Not run: the budget left could not hold {unit:,} updates and three evaluations; the "
                           "times below come from a calibration chunk and the estimated evaluation.")
        return _projection(result)
    quiet = LogSettings.parse("none", None)  # metrics.jsonl only (no TensorBoard files to carry back)
    first = (8 * steps) // 10
    summaries = [offline.train(dataclasses.replace(settings, steps=first, eval_every=first), progress=False,
                               prepared=prepared, logging=quiet)]
    for budget in ((9 * steps) // 10, steps):
        summaries.append(offline.resume(run_dir, steps=budget, progress=False))
    result["updates_per_second_per_seed"] = rate
    result["run_updates_per_second_per_seed"] = steps / sum(s["update_seconds"] for s in summaries)
    result["eval_seconds_each"] = float(np.mean([s["eval_seconds"] for s in summaries]))
    result["wall_seconds"] = sum(s["wall_seconds"] for s in summaries)
    evaluations = runs.RunDir.open(run_dir).evaluations()[-3:]
    result["evaluations"] = [{"step": e["step"], "per_seed": e["success_rate_per_seed"], "mean": e["success_rate"]}
                             for e in evaluations]
    per_seed = np.mean([e["success_rate_per_seed"] for e in evaluations], axis=0)
    result.update(final_per_seed=per_seed.tolist(), final_mean=float(per_seed.mean()), final_std=float(per_seed.std()))
    if steps < sizes.iql_target:
        result["note"] = (f"The budget held {steps:,} of the {sizes.iql_target:,} updates, evaluated at 80%, 90% and "
                          "100% of them: not the published budget, so the score is not comparable with it.")
    return _projection(result)


def _projection(result: dict[str, Any]) -> dict[str, Any]:
    rate = result["updates_per_second_per_seed"]
    result["target_update_seconds"] = result["target"] / rate if rate else None
    result["target_seconds_published_schedule"] = (result["target_update_seconds"] or 0.0) + \
        result["published_evaluations"] * result["eval_seconds_each"]
    return result


# ----------------------------------------------------------------------------------------------------------- the check

def configure_jax(cache: str) -> None:
    import jax

    Path(cache).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", cache)
    for option, value in (("jax_persistent_cache_min_compile_time_secs", 0.0),
                          ("jax_persistent_cache_min_entry_size_bytes", 0)):
        try:
            jax.config.update(option, value)
        except AttributeError:  # an older JAX without the option
            pass


def git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        result = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return result.stdout.strip() or None


def update_table(args: argparse.Namespace, work: Path, matmul: float | None, report: Report,
                 collect: Collect | None, log: Callable[[str], None]) -> None:
    """Part 2: each algorithm's programs lowered here and compiled by a thread pool as soon as they are lowered,
    while the data is collected; the updates are timed once the collection has ended, with the CPU cores free."""
    from o2o.algorithms import names

    sizes = args.sizes
    algos = args.algos.split(",") if args.algos else names()
    dataset = str(synthetic_dataset(work / "table-data", sizes.table_transitions, sizes.table_episode))

    def failed(algo: str, error: Exception) -> list[Cell]:  # one algorithm's failure is rows of the table
        return [Cell(algo, seeds, None, error=f"{type(error).__name__}: {error}") for seeds in sizes.table_seeds]

    def run(algo: str, job: Callable[[], list[Cell]]) -> list[Cell]:
        try:
            return job()
        except Exception as e:
            return failed(algo, e)

    futures = []
    with ThreadPoolExecutor(args.compile_threads) as pool:
        for algo in algos:
            try:
                job = lower_algorithm(algo, sizes.table_seeds, dataset, sizes.table_overrides, sizes.table_chunk)
            except Exception as e:
                job = lambda algo=algo, e=e: failed(algo, e)  # noqa: E731
            futures.append(pool.submit(run, algo, job))
        log(f"lowered the update programs of {len(algos)} algorithms ({args.compile_threads} compiling at once)")
        cells = [cell for future in futures for cell in future.result()]
    log("compiled")
    if collect is not None:
        report.set("collect", collect.result())
        log(f"collected in {report.data['collect']['seconds']:.0f} s")
    rows: list[dict[str, Any]] = []
    for cell in cells:
        rate = None
        if not cell.error:
            if time.time() > args.started + 0.6 * args.budget:
                cell.error = "not timed: the budget's share for this table was spent"
            else:
                try:
                    rate = time_cell(cell, sizes.table_chunk, sizes.table_calls)
                except Exception as e:
                    cell.error = f"{type(e).__name__}: {e}"
        rows.append(table_row(cell, rate, matmul))
        cell.compiled = cell.states = cell.data = None  # frees its device memory
        log(f"{cell.algo:6} x {cell.seeds} seeds: " + (f"{rate:,.0f} updates/s per seed" if rate else str(cell.error)))
        report.set("updates", {"transitions": sizes.table_transitions, "observation_dim": 17, "action_dim": 6,
                               "chunk": sizes.table_chunk, "calls": sizes.table_calls,
                               "networks": "the papers' defaults" if not sizes.table_overrides else
                               "small (" + ", ".join(f"{k}={v}" for k, v in sizes.table_overrides.items()) + ")",
                               "rows": rows})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = args.sizes
    deadline = args.started + args.budget - 20.0  # the last seconds write the report
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="o2o-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["O2O_DATASETS"] = str(work / "datasets")  # where `--dataset cube-single-play-...` is found

    def log(message: str) -> None:
        print(f"[{time.time() - args.started:5.0f} s] {message}", flush=True)

    report = Report(out, {"mode": "cpu (tiny sizes)" if args.cpu else "gpu",
                          "started": datetime.fromtimestamp(args.started, UTC).isoformat(timespec="seconds"),
                          "budget_seconds": args.budget,
                          "command": " ".join(["check.sh"] + (sys.argv[1:] if argv is None else argv)),
                          "o2o_commit": git_commit(), "sizes": dataclasses.asdict(sizes), "work": str(work)})
    collect = Collect(args, work / "datasets", out / "collect.log") if "iql" in args.parts else None
    if collect:
        log(f"collecting in the background: {collect.shown}")
    configure_jax(args.cache)
    report.set("device", device_info())
    log(f"device: {', '.join(report.data['device']['devices'])}")
    matmul = None
    if "matmul" in args.parts:
        from jax import lax

        matmul = matmul_rate(sizes.matmul_n, sizes.matmul_repeats)
        report.set("matmul", {"n": sizes.matmul_n, "repeats": sizes.matmul_repeats, "default": matmul,
                              "highest": matmul_rate(sizes.matmul_n, sizes.matmul_repeats, lax.Precision.HIGHEST)})
        log(f"matmul: {_flops(matmul)} (default precision)")
    if "updates" in args.parts:
        update_table(args, work, matmul, report, collect, log)
    errors: list[str] = []
    if collect is not None:
        if "collect" not in report.data:
            report.set("collect", collect.result())
            log(f"collected in {report.data['collect']['seconds']:.0f} s")
        if report.data["collect"].get("error"):
            report.set("iql", {"error": "no data: `o2o collect` failed (see collect.log)"})
        else:
            try:
                report.set("iql", iql_run(args, work, deadline, log))
                run_dir = Path(report.data["iql"]["run_dir"])
                for name in ("metrics.jsonl", "summary.json", "config.json"):
                    if (run_dir / name).is_file():
                        shutil.copy(run_dir / name, out / f"iql-{name}")
            except Exception as e:
                report.set("iql", {"error": f"{type(e).__name__}: {e}"})
        iql = report.data["iql"]
        if iql.get("error"):
            errors.append(f"iql: {iql['error']}")
        elif iql.get("final_mean") is not None:
            log(f"IQL cube-single task 2: {iql['final_mean']:.1f} (mean of the last three evaluations; published "
                f"{iql['published']}) after {iql['steps']:,} updates x {iql['seeds']} seeds")
    errors += [f"{r['algo']} x {r['seeds']}: {r['error']}" for r in report.data.get("updates", {}).get("rows", [])
               if r.get("error") and not r["error"].startswith("not timed")]
    report.data["check"]["wall_seconds"] = time.time() - args.started
    if errors:
        report.data["errors"] = errors
    json_path, md_path = report.write()
    print(md_path.read_text())
    log(f"wrote {json_path} and {md_path}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
