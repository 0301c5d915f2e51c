"""The learning-parity verdict (benchmarks/parity/verdict.py, issue 28): issue 28's rule on hand-made intervals, and
o2o's curves read from an `o2o online` run directory (RLPD's side) against a reference CSV."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from o2o.train.runs import RunDir

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("verdict", ROOT / "benchmarks" / "parity" / "verdict.py")
verdict = importlib.util.module_from_spec(spec)
spec.loader.exec_module(verdict)


def test_rule_equal_only_when_the_interval_holds_zero_and_is_narrower_than_ten_points():
    assert verdict.verdict(-3.0, 4.0) == "equal"
    assert verdict.verdict(-6.0, 4.5) == "inconclusive"  # 10.5 points wide
    assert verdict.verdict(0.5, 3.0) == "differs"
    assert verdict.verdict(-8.0, -0.1) == "differs"


def online_run(path: Path, scores: dict[int, list[float]]) -> None:
    """An `o2o online rlpd` run directory of 3 seeds with evaluations at env steps 0 and 1000."""
    run = RunDir.create(path, "online", settings={"algo": "rlpd", "steps": 1000}, seeds=[0, 1, 2])
    with open(run.path / "metrics.jsonl", "w") as file:
        for step, per_seed in scores.items():
            file.write(json.dumps({"step": step, "phase": "online", "return_per_seed": per_seed,
                                   "normalized_score_per_seed": per_seed}) + "\n")
            file.write(json.dumps({"step": step, "phase": "online", "critic_loss": 1.0}) + "\n")  # not an evaluation


def reference_csv(path: Path, scores: dict[int, list[float]]) -> Path:
    rows = ["method,dataset,seed,step,score"] + [f"rlpd (reference),hopper-medium,{seed},{step},{score}"
                                                 for step, per_seed in scores.items()
                                                 for seed, score in enumerate(per_seed)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_an_online_run_directory_against_a_reference_csv(tmp_path):
    online_run(tmp_path / "run", {0: [3.0, 3.0, 3.0], 1000: [10.0, 12.0, 14.0]})
    csv = reference_csv(tmp_path / "ref.csv", {0: [3.0, 3.0, 3.0], 500: [5.0, 5.0, 5.0], 1000: [11.0, 12.0, 13.0]})
    result = verdict.compare([tmp_path / "run"], "rlpd", [csv])
    assert result["unit"] == "env steps" and result["steps"] == [0, 1000]  # only the steps both sides evaluated
    assert result["seeds"] == [3, 3]
    assert result["final"]["o2o"] == pytest.approx(12.0) and result["final"]["reference"] == pytest.approx(12.0)
    assert result["final"]["verdict"] == "equal"
    assert result["auc"]["difference"] == pytest.approx(np.mean([3, 12]) - np.mean([3, 12]))
    far = reference_csv(tmp_path / "far.csv", {0: [3.0, 3.0, 3.0], 1000: [40.0, 41.0, 42.0]})
    assert verdict.compare([tmp_path / "run"], "rlpd", [far])["final"]["verdict"] == "differs"


def test_a_seed_found_twice_is_an_error(tmp_path):
    online_run(tmp_path / "run", {0: [3.0, 3.0, 3.0], 1000: [10.0, 12.0, 14.0]})
    csv = reference_csv(tmp_path / "ref.csv", {0: [3.0, 3.0, 3.0], 1000: [11.0, 12.0, 13.0]})
    with pytest.raises(SystemExit, match="found twice"):
        verdict.compare([tmp_path / "run"], "rlpd", [csv, csv])


def test_o2o_seeds_kept_in_a_csv_join_those_of_a_run_directory(tmp_path):
    online_run(tmp_path / "run", {0: [3.0, 3.0, 3.0], 1000: [10.0, 12.0, 14.0]})
    kept = tmp_path / "rlpd-o2o.csv"
    verdict.write_curves(kept, "rlpd", {3: {0: 3.0, 1000: 20.0}, 4: {0: 3.0, 1000: 24.0}})
    with open(kept, "a") as file:  # another algorithm's seeds in the same CSV are not rlpd's
        file.write("sac,7,0,3.0\nsac,7,1000,90.0\n")
    csv = reference_csv(tmp_path / "ref.csv", {0: [3.0, 3.0, 3.0], 1000: [11.0, 12.0, 13.0]})
    result = verdict.compare([tmp_path / "run", kept], "rlpd", [csv])
    assert result["seeds"] == [5, 3] and result["unit"] == "env steps"
    assert result["final"]["o2o"] == pytest.approx(np.mean([10, 12, 14, 20, 24]))
    with pytest.raises(SystemExit, match="found twice"):  # the same seeds from the run and from its CSV
        verdict.write_curves(kept, "rlpd", {0: {0: 3.0, 1000: 10.0}})
        verdict.compare([tmp_path / "run", kept], "rlpd", [csv])
