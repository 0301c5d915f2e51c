"""Loading a 1M-transition dataset in every format: wall time and peak RSS, each load in a fresh process.

Run: python benchmarks/bench_load.py [--transitions 1000000] [--dir /tmp/o2o-bench-load]
The reference row is the raw size of the arrays; o2o's format should open in well under a second with RSS far below it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
from o2o.data import load_dataset
from o2o.data.stats import describe

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20

base = rss_mb()
t0 = time.perf_counter()
d = load_dataset(sys.argv[1])
_ = d.episode_ends
opened = time.perf_counter() - t0
rss_open = rss_mb() - base
t1 = time.perf_counter()
total = float(np.asarray(d.observations).sum(dtype=np.float64)) + float(np.asarray(d.next_observations).sum(dtype=np.float64))
total += float(np.asarray(d.actions).sum(dtype=np.float64)) + float(np.asarray(d.rewards).sum(dtype=np.float64))
touched = time.perf_counter() - t1
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
print(json.dumps({"open_s": opened, "rss_after_open_mb": rss_open, "touch_all_s": touched,
                  "rss_after_touch_mb": rss_mb() - base, "peak_rss_mb": peak, "transitions": len(d)}))
"""


def make(n: int, obs_dim: int = 17, act_dim: int = 6, episode_length: int = 1000):
    from o2o.data import Dataset

    rng = np.random.default_rng(0)
    obs = rng.standard_normal((n + 1, obs_dim), dtype=np.float32)
    timeouts = np.zeros(n, bool)
    timeouts[episode_length - 1 :: episode_length] = True
    timeouts[-1] = True
    return Dataset(obs[:-1], rng.uniform(-1, 1, (n, act_dim)).astype(np.float32), rng.standard_normal(n, dtype=np.float32),
                   obs[1:], np.zeros(n, bool), timeouts, {"env_id": "HalfCheetah-v5"})


def load_in_child(path: Path, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from o2o.data import write_d4rl_hdf5, write_minari, write_npz, write_o2o

    parser = argparse.ArgumentParser()
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--dir", default="/tmp/o2o-bench-load")
    args = parser.parse_args()
    root = Path(args.dir)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    env = {**os.environ, "MINARI_DATASETS_PATH": str(root / "minari"), "O2O_CACHE_DIR": str(root / "cache"),
           "OMP_NUM_THREADS": "1"}

    data = make(args.transitions)
    raw_mb = sum(np.asarray(v).nbytes for v in data.arrays().values()) / 2**20
    targets = {"o2o": root / "ds", "d4rl-hdf5": root / "ds.hdf5", "npz": root / "ds.npz", "minari": root / "minari" / "o2o" / "bench-v0"}
    writers = {"o2o": write_o2o, "d4rl-hdf5": write_d4rl_hdf5, "npz": write_npz, "minari": write_minari}
    write_s = {}
    for name, path in targets.items():
        t0 = time.perf_counter()
        writers[name](data, path)
        write_s[name] = time.perf_counter() - t0
    del data

    rows = []
    for name, path in targets.items():
        if name == "minari":
            first = load_in_child(path, env)
            rows.append(("minari (first: convert + cache)", write_s[name], first))
            rows.append(("minari (cached)", None, load_in_child(path, env)))
        else:
            rows.append((name, write_s[name], load_in_child(path, env)))

    print(f"{args.transitions:,} transitions, obs 17, act 6; raw arrays {raw_mb:.0f} MB; each load in a fresh process")
    header = f"{'format':34} {'write s':>8} {'open s':>8} {'RSS open MB':>12} {'touch all s':>12} {'peak RSS MB':>12} {'peak/raw':>9}"
    print(header)
    print("-" * len(header))
    for name, w, r in rows:
        ws = f"{w:8.2f}" if w is not None else f"{'':>8}"
        print(f"{name:34} {ws} {r['open_s']:8.3f} {r['rss_after_open_mb']:12.1f} {r['touch_all_s']:12.3f} "
              f"{r['peak_rss_mb']:12.1f} {r['peak_rss_mb'] / raw_mb:9.2f}")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
