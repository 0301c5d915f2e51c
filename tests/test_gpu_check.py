"""The GPU check (benchmarks/gpu, issue 32): its options, its report, its time guard, the slimmed dm_control wheel, and
(slow) `check.sh --cpu` passing in a bare venv built from wheelhouses alone, with no index for pip.

The slow test needs two wheelhouses for this machine's Python, built once with network:
    benchmarks/gpu/wheels.sh W --python-version 3.11 --base B
    O2O_GPU_WHEELS=W O2O_GPU_BASE_WHEELS=B python -m pytest -m slow tests/test_gpu_check.py
B stands in for what the GPU image already has (JAX, Flax, Optax, NumPy, ...), W is what the check carries there.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GPU = ROOT / "benchmarks" / "gpu"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"gpu_{name}", GPU / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


check = load("check")


def test_options_default_to_the_gpu_sizes_and_dollar_out(monkeypatch):
    monkeypatch.setenv("OUT", "/tmp/device-out")
    monkeypatch.setenv("O2O_CHECK_STARTED", "1000.5")
    args = check.parse_args([])
    assert args.sizes is check.GPU and args.out == "/tmp/device-out" and args.started == 1000.5
    assert args.budget == 480 and args.parts == ["matmul", "updates", "iql"]
    assert (args.sizes.matmul_n, args.sizes.table_seeds, args.sizes.iql_seeds) == (8192, (1, 8), 8)
    assert (args.sizes.iql_target, args.sizes.iql_eval_episodes) == (1_000_000, 50)  # the published budget


def test_cpu_runs_the_same_parts_at_a_tiny_size(monkeypatch):
    monkeypatch.delenv("OUT", raising=False)
    args = check.parse_args(["--cpu", "--budget", "60", "--parts", "iql"])
    assert args.sizes is check.CPU and args.out == "gpu-check" and args.budget == 60 and args.parts == ["iql"]
    assert args.workers == 1 and args.sizes.matmul_n == 256 and args.sizes.iql_target < 1000


def test_an_unknown_part_is_refused(capsys):
    with pytest.raises(SystemExit):
        check.parse_args(["--parts", "matmul,speed"])
    assert "unknown speed" in capsys.readouterr().err


def test_the_run_shrinks_to_what_the_budget_holds_in_whole_units():
    # 100 s left, three evaluations of 10 s and 5 s overhead each: 55 s of updates at 1,000/s -> 55,000 -> 50,000
    assert check.plan_steps(1_000_000, 1000.0, 100.0, 10.0, 5.0, 10_000) == 50_000
    assert check.plan_steps(300, 1000.0, 100.0, 10.0, 5.0, 100) == 300  # the target when it fits
    assert check.plan_steps(1_000_000, 1000.0, 40.0, 10.0, 5.0, 10_000) == 0  # not even the evaluations fit


def report_data() -> dict:
    row = {"algo": "iql", "seeds": 8, "batch_size": 256, "networks": "256 x 256", "updates_per_second_per_seed": 5000.0,
           "updates_per_second": 40000.0, "gflop_per_update": 0.3, "matmul_share": 0.01, "minutes_for_1m": 3.3,
           "compile_seconds": 4.0}
    return {
        "check": {"mode": "gpu", "started": "2026-12-06T00:00:00+00:00", "budget_seconds": 480, "wall_seconds": 470,
                  "command": "check.sh", "o2o_commit": "abc1234"},
        "device": {"devices": ["cuda:0 (NVIDIA H100 80GB HBM3)"], "platform": "gpu", "jax": "0.11.2",
                   "jaxlib": "0.11.2", "plugin": "jax-cuda13-plugin 0.11.2", "cpu_count": 16, "python": "3.12.3",
                   "nvidia_smi": None},
        "matmul": {"n": 8192, "repeats": 20, "default": 4.0e14, "highest": 5.0e13},
        "updates": {"transitions": 100_000, "observation_dim": 17, "action_dim": 6, "chunk": 1000, "calls": 2,
                    "networks": "the papers' defaults", "rows": [row, {"algo": "dt", "seeds": 8, "error": "boom"}]},
        "collect": {"command": "o2o collect cube-single-v0 --level play", "seconds": 100.0, "steps_per_second": 11000.0,
                    "workers": 14, "summary": {"episodes": 1000, "validation_episodes": 100, "rows": 1_001_000}},
        "iql": {"seeds": 8, "steps": 200_000, "target": 1_000_000, "eval_episodes": 50, "preset": "temperature=1.0",
                "overrides": {}, "evaluations": [{"step": s, "per_seed": [80.0] * 8, "mean": 80.0}
                                                 for s in (160_000, 180_000, 200_000)],
                "final_mean": 80.0, "final_std": 0.0, "published": 85.0, "published_source": "FQL, Table 3",
                "updates_per_second_per_seed": 4000.0, "run_updates_per_second_per_seed": 3500.0,
                "target_update_seconds": 250.0, "target_seconds_published_schedule": 650.0,
                "published_evaluations": 10, "eval_seconds_each": 40.0, "note": "The budget held 200,000."},
    }


def test_the_report_is_written_as_json_and_markdown(tmp_path):
    data = report_data()
    json_path, md_path = check.write_report(data, tmp_path / "out")
    assert json.loads(json_path.read_text()) == data
    text = md_path.read_text()
    assert "400.0 TFLOP/s" in text and "50.0 TFLOP/s" in text
    assert "| iql | 256 | 256 x 256 | 8 | 5,000 | 40,000 | 0.300 | 1.00% | 3.3 min | 9 min | 4.0 |" in text
    assert "| dt | | | 8 | boom |" in text
    assert "| 200,000 | 80, 80, 80, 80, 80, 80, 80, 80 | 80.0 |" in text
    assert "**80.0**" in text and "published: 85" in text and "The budget held 200,000." in text
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_a_partial_report_renders(tmp_path):
    """A check cut short writes what it has: each part is optional."""
    data = report_data()
    for part in ("matmul", "updates", "collect", "iql"):
        data.pop(part)
        assert "# o2o GPU check (gpu)" in check.markdown(data)
    data["iql"] = {"error": "no data"}
    assert "Not run: no data" in check.markdown(data)


def test_the_slimmed_wheel_drops_the_folders_and_says_so_in_its_version(tmp_path):
    slim_wheel = load("slim_wheel")
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("pkg/__init__.py", "x = 1\n")
        z.writestr("pkg/assets/big.bin", b"0" * 1000)
        z.writestr("pkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n")
        z.writestr("pkg-1.0.dist-info/RECORD", "stale\n")
    slim = slim_wheel.slim(wheel, ["pkg/assets/"])
    assert slim.name == "pkg-1.0+slim-py3-none-any.whl"
    with zipfile.ZipFile(slim) as z:
        names = z.namelist()
        assert "pkg/assets/big.bin" not in names and "pkg/__init__.py" in names
        assert "Version: 1.0+slim\n" in z.read("pkg-1.0+slim.dist-info/METADATA").decode()
        record = z.read("pkg-1.0+slim.dist-info/RECORD").decode().splitlines()
    assert [line.split(",")[0] for line in record] == ["pkg/__init__.py", "pkg-1.0+slim.dist-info/METADATA",
                                                       "pkg-1.0+slim.dist-info/RECORD"]


@pytest.mark.slow
def test_check_cpu_passes_in_a_bare_venv_from_the_wheelhouses_alone(tmp_path):
    """What the GPU machine will do, at --cpu's tiny sizes: a venv holding only the base wheels (the GPU image's
    packages) gets o2o and the carried wheels from W with no index, then every part runs: the matmul rate, every
    registered algorithm at 1 and 8 seeds, `o2o collect` of cube-single play data and IQL's three evaluations."""
    wheels, base = os.environ.get("O2O_GPU_WHEELS"), os.environ.get("O2O_GPU_BASE_WHEELS")
    if not (wheels and base):
        pytest.skip("needs O2O_GPU_WHEELS and O2O_GPU_BASE_WHEELS (benchmarks/gpu/wheels.sh W --python-version "
                    f"{sys.version_info.major}.{sys.version_info.minor} --base B)")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    offline = {**os.environ, "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull}
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    *sorted(str(w) for w in Path(base).glob("*.whl"))], check=True, env=offline)
    out = tmp_path / "out"
    result = subprocess.run(["bash", str(GPU / "check.sh"), "--cpu", "--wheels", wheels, "--out", str(out),
                             "--work", str(tmp_path / "work")], cwd=ROOT, capture_output=True, text=True,
                            env={**offline, "PYTHON": str(python), "O2O_CHECK_CACHE": str(tmp_path / "jax-cache")},
                            timeout=3600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "check.json").read_text())
    assert report["device"]["platform"] == "cpu" and report["matmul"]["default"] > 0
    from o2o.algorithms import names

    rows = report["updates"]["rows"]
    assert {(r["algo"], r["seeds"]) for r in rows} == {(a, s) for a in names() for s in (1, 8)}
    assert all(r["updates_per_second_per_seed"] > 0 and r["gflop_per_update"] > 0 for r in rows)
    assert report["collect"]["summary"]["episodes"] == check.CPU.collect_episodes
    iql = report["iql"]
    assert iql["steps"] == check.CPU.iql_target and [e["step"] for e in iql["evaluations"]] == [240, 270, 300]
    assert 0 <= iql["final_mean"] <= 100 and iql["published"] == 85.0
    assert {"check.md", "check.log", "iql-metrics.jsonl"} <= {p.name for p in out.iterdir()}
