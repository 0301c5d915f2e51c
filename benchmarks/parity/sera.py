"""SERA's reward bonus against the estimator it is built on, VCSE's (kingdy2002/VCSE, PyTorch; refs .venv), without
o2o: SERA has no published code, and its intrinsic reward is VCSE's with the value V(s) replaced by Q(s, a)
(o2o/agents/sera.py). For each case, fixed random states (B, d) and values (B,) from numpy.random.RandomState(0) go
through what VCSE_SAC/agent/sac.py's `update` does before its estimator (the values standardized across the batch by a
fresh `torch.nn.LayerNorm(B)`, the states divided by d: those two lines, re-typed here, are the only code not called
from the reference) and then through `VCSE.__call__` of VCSE_SAC/vcse.py (called as is); the fixture keeps the inputs
and its reward, eps (the k-th nearest distance, the point itself counted) and n_v.

    python benchmarks/parity/sera.py --reference REFS/VCSE [--out tests/fixtures/parity/sera.npz]

One case has values on a grid of 0.25 (many exact ties: VCSE's strict < in n_v decides them; its standardized values
are kept too, since two gaps between grid levels that are equal in exact arithmetic differ by an ulp after any
standardization, and which side of eps an ulp falls on is the implementation's rounding) and one has k = 2 (the
nearest other point)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "parity"
# (name, batch, state dimension, k, values on a grid of this step or 0 for continuous)
CASES = (("hopper", 256, 11, 10, 0.0), ("ties", 128, 3, 12, 0.25), ("nearest", 64, 17, 2, 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=FIXTURES / "sera.npz")
    args = parser.parse_args()
    sys.path.insert(0, str(args.reference / "VCSE_SAC"))
    sys.path.insert(0, str(Path(__file__).parent))
    from fixture import stub_training_imports
    stub_training_imports("gym", "dmc2gym", "pandas")  # vcse.py's imports (and its utils') for the training script
    from vcse import VCSE

    rng = np.random.RandomState(0)
    arrays = {}
    for name, batch, dim, k, grid in CASES:
        states = (rng.standard_normal((batch, dim)) * rng.uniform(0.5, 3.0, dim)).astype(np.float32)
        values = (rng.standard_normal(batch) * 40.0 + 100.0).astype(np.float32)
        if grid:
            values = (np.round(values / 40.0 / grid) * grid * 40.0).astype(np.float32)
        with torch.no_grad():
            q = torch.nn.LayerNorm(batch)(torch.from_numpy(values).reshape(-1)).reshape(-1, 1)
            obs = torch.from_numpy(states)
            reward, n_v, _, eps, _, _ = VCSE(k, "cpu")(obs / obs.shape[-1], q)
        arrays.update({f"{name}/states": states, f"{name}/values": values, f"{name}/k": np.array(k),
                       f"{name}/standardized": q.numpy().reshape(-1),
                       f"{name}/reward": reward.numpy().reshape(-1), f"{name}/eps": eps.numpy().reshape(-1),
                       f"{name}/n_v": n_v.numpy().reshape(-1)})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    commit = subprocess.run(["git", "-C", str(args.reference), "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    record = {"algo": "sera", "kind": "estimator",  # no update: tests/test_sera.py reads it, not test_parity.py
              "reference": {"repository": "https://github.com/kingdy2002/VCSE", "commit": commit,
                            "why": "SERA has no published code; its bonus is VCSE's estimator on Q(s, a) (VCSE's "
                                   "authors' code, VCSE_SAC/vcse.py VCSE.__call__)"},
              "command": "benchmarks/parity/regenerate.sh sera",
              "stages": ["python benchmarks/parity/sera.py --reference REFERENCE"],
              "versions": {"torch": torch.__version__, "numpy": np.__version__},
              "cases": [dict(zip(("name", "batch", "state_dim", "k", "value_grid"), case)) for case in CASES],
              "tolerance": {"standardized": 1e-6, "reward": 1e-5, "eps": 1e-5, "n_v": 0}}
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{args.out}, {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
