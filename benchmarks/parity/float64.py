"""The float64 check behind the float32 tolerances: each reference run again in float64 on the same inputs, and o2o in
float64 (jax_enable_x64) against it. Agreement to ~1e-9 after 100 updates says the float32 differences of the fixtures
are rounding (amplified by Adam), not a difference in the math.

    .venv/bin/python benchmarks/parity/float64.py [ALGO ...]          (o2o's environment; REFS as in regenerate.sh)

Prints the largest relative error of each kind per algorithm. Nothing is written to tests/fixtures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFS = Path(os.environ.get("REFS", "/work/refs"))
REFERENCES = {"td3bc": ("TD3_BC", ".venv"), "iql": ("implicit_q_learning", ".venv-iql"), "bc": ("CORL", ".venv"),
              "rebrac": ("ReBRAC", ".venv"), "awac": ("CORL", ".venv"), "cql": ("Cal-QL", ".venv-calql"),
              "calql": ("Cal-QL", ".venv-calql"), "fql": ("fql", ".venv"), "dt": ("decision-transformer", ".venv-dt"),
              "sacn": ("EDAC", ".venv"), "edac": ("EDAC", ".venv"), "lbsac": ("lb-sac", ".venv"),
              "td3": ("TD3", ".venv"), "sac": ("jaxrl", ".venv-iql"), "rlpd": ("rlpd", ".venv-iql"),
              "wsrl": ("wsrl", ".venv-wsrl"), "riql": ("RIQL", ".venv"), "famo2o": ("FamO2O", ".venv-iql"),
              "qc": ("qc", ".venv"), "qc-fql": ("qc", ".venv"), "ro2o": ("RO2O", ".venv"),
              "ro2o-antmaze": ("RO2O", ".venv"), "ro2o-antmaze-finetuning": ("RO2O", ".venv"),
              "sung": ("SUNG", ".venv"), "sung-finetuning": ("SUNG", ".venv"), "sung-cql": ("SUNG", ".venv"),
              "sung-cql-finetuning": ("SUNG", ".venv")}


def adapter(case: str) -> Path:
    """A case's adapter, as regenerate.sh finds it: an algorithm named with a hyphen has its own (sung-cql ->
    sung_cql.py, its -finetuning case too), a variant case its algorithm's (qc-fql -> qc.py)."""
    own = ROOT / f"benchmarks/parity/{case.removesuffix('-finetuning').replace('-', '_')}.py"
    return own if own.exists() else ROOT / f"benchmarks/parity/{case.split('-')[0]}.py"


def main() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    import json

    import numpy as np

    sys.path.insert(0, str(ROOT / "tests"))
    import test_parity as parity

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for algo in sys.argv[1:] or list(REFERENCES):
            tree, venv = REFERENCES[algo]
            subprocess.run([sys.executable, ROOT / "benchmarks/parity/inputs.py", algo, "--out", tmp / "inputs.npz"],
                           check=True, capture_output=True)
            subprocess.run([REFS / venv / "bin/python", adapter(algo), "--reference",
                            REFS / tree, "--inputs", tmp / "inputs.npz", "--float64", "--out", tmp / f"{algo}.npz"],
                           check=True, capture_output=True)
            parity.FIXTURES, parity.RECORDS[algo] = tmp, json.loads((tmp / f"{algo}.json").read_text())
            parity.initial.cache_clear()
            load = parity.Fixture.load.__func__

            def in_float64(cls, name, load=load):
                fixture = load(cls, name)
                fixture.arrays = {k: v.astype(np.float64) if k.startswith(("init/", "batch/", "draws/"))
                                  and v.dtype.kind == "f" else v  # integer draws (critic subsets) stay
                                  for k, v in fixture.arrays.items()}
                return fixture

            parity.Fixture.load = classmethod(in_float64)
            try:
                fixture, _ = parity.initial(algo)
                errs = parity.errors(fixture, *parity.run_o2o(algo))
            finally:
                parity.Fixture.load = classmethod(load)
            print(algo, {kind: f"{max(by_name.values()):.1e}" for kind, by_name in errs.items()})


if __name__ == "__main__":
    main()
