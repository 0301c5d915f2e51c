"""How far a run directory and a batch travel through o2o: the call stops and the climbs back up the layers.

Run (a minute on 2 cores):  python benchmarks/trace_paths.py [--json]
Another commit:  git worktree add /tmp/old REV && PYTHONPATH=/tmp/old python benchmarks/trace_paths.py

1. `o2o finetune RUN`: a *stop* is an o2o function that receives the offline run directory or a file in it (a path,
   as str or Path, or a `RunDir` of it) as an argument; a *climb* is any call from a module of a lower layer into a module of a
   higher one (a callback handed down counts: control goes back up). Layers, low to high: errors/files, data,
   envs/nets, agents/algorithms, train, results/collect, bench/report/quickstart, cli.
2. A batch from the dataset to an agent's update: a *stop* is an o2o function that receives the data on its way (the
   `Dataset`, the device arrays or a batch: a dict with "observations") while the offline loop builds its device data
   and compiles one chunk of updates.
Counts are distinct functions (file:function), each listed.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import tempfile
from pathlib import Path

LAYERS = [("o2o.errors", 0), ("o2o.files", 0), ("o2o.data", 1), ("o2o.envs", 2), ("o2o.nets", 2), ("o2o.agents", 3),
          ("o2o.algorithms", 3), ("o2o.train", 4), ("o2o.results", 5), ("o2o.collect", 5), ("o2o.bench", 6),
          ("o2o.report", 6), ("o2o.quickstart", 6), ("o2o.cli", 7)]
ROOT = ""  # the o2o package's folder, set by main (the one imported: a checkout of another commit via PYTHONPATH too)


def module_of(frame) -> str | None:
    file = frame.f_code.co_filename
    if not file.startswith(ROOT):
        return None
    return "o2o." + os.path.relpath(file, ROOT).removesuffix(".py").replace(os.sep, ".").removesuffix(".__init__")


def layer(module: str) -> int:
    return max((rank for prefix, rank in LAYERS if module == prefix or module.startswith(prefix + ".")), default=-1)


def trace(run, matches):
    """Call `run()` under a profiler; returns (stops, climbs, calls): the distinct o2o functions whose arguments
    `matches`, the distinct (caller -> callee) calls from a lower layer to a higher one, and how many calls each stop
    received."""
    stops, climbs, calls = set(), set(), []

    def profile(frame, event, arg):
        if event != "call":
            return
        callee = module_of(frame)
        if callee is None:
            return
        name = f"{callee}:{frame.f_code.co_qualname}"
        caller_frame = frame.f_back
        while caller_frame is not None and module_of(caller_frame) is None:
            caller_frame = caller_frame.f_back  # through library frames (typer, jax) to the o2o caller
        if caller_frame is not None:
            caller = module_of(caller_frame)
            if layer(caller) < layer(callee):
                climbs.add(f"{caller}:{caller_frame.f_code.co_qualname} -> {name}")
        arguments = frame.f_code.co_varnames[: frame.f_code.co_argcount + frame.f_code.co_kwonlyargcount]
        if any(matches(frame.f_locals.get(a)) for a in arguments):
            stops.add(name)
            calls.append(name)

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return sorted(stops), sorted(climbs), collections.Counter(calls)


def main() -> None:
    global ROOT
    import jax

    import o2o

    from o2o.collect.scripted import collect_pendulum
    from o2o.data import Dataset, write_o2o
    from o2o.train import offline

    ROOT = str(Path(o2o.__file__).parent)
    try:
        from o2o.train.runs import RunDir
    except ImportError:  # a commit before RunDir: the path alone
        RunDir = type("NoRunDir", (), {})

    work = Path(tempfile.mkdtemp())
    dataset = str(write_o2o(collect_pendulum(episodes=3), work / "pendulum"))
    run_dir = work / "iql"
    offline.train(offline.OfflineSettings(algo="iql", dataset=dataset, steps=100, eval_every=100, eval_episodes=1,
                                          out=str(run_dir), agent_overrides={"hidden_dims": "16,16"}), progress=False)

    def is_run_dir(value) -> bool:
        path = getattr(value, "path", None) if isinstance(value, RunDir) else value  # None: still being built
        return isinstance(path, (str, Path)) and (os.path.abspath(path) + os.sep).startswith(str(run_dir) + os.sep)

    def is_data(value) -> bool:
        return isinstance(value, (Dataset, offline.Prepared)) or (isinstance(value, dict) and "observations" in value)

    def finetune() -> None:
        from o2o.cli import main as cli_main
        sys.argv = ["o2o", "finetune", str(run_dir), "--online-steps", "10", "--eval-every", "10", "--eval-episodes", "1",
                    "--quiet", "--out", str(work / "ft")]
        try:
            cli_main()
        except SystemExit as e:
            assert not e.code, e.code

    stops, climbs, calls = trace(finetune, is_run_dir)
    p = offline.prepare(offline.OfflineSettings(algo="iql", dataset=dataset, eval_episodes=0))
    keys = jax.numpy.stack([jax.random.PRNGKey(0)])
    batch_stops, _, batch_calls = trace(lambda: offline.make_train_chunk(p.agent, p.config, 2)(
        offline.init_states(p), keys, 0, offline.device_data(p)), is_data)
    result = {"finetune_stops": stops, "finetune_files": sorted({s.split(":")[0] for s in stops}),
              "finetune_calls": calls, "finetune_climbs": climbs, "batch_stops": batch_stops, "batch_calls": batch_calls}
    if "--json" in sys.argv[1:]:
        print(json.dumps(result))
        return
    print(f"o2o finetune RUN: {len(stops)} stops ({sum(calls.values())} calls) in {len(result['finetune_files'])} "
          f"modules, {len(climbs)} climbs")
    for s in stops:
        print(f"  stop  {s} x{calls[s]}")
    for c in climbs:
        print("  climb", c)
    print(f"a batch from the dataset to the update: {len(batch_stops)} stops ({sum(batch_calls.values())} calls)")
    for s in batch_stops:
        print("  stop ", s)


if __name__ == "__main__":
    main()
