"""--logger: metrics.jsonl always, TensorBoard by default, W&B on request (offline mode here: nothing leaves the machine).

The W&B checks read back the offline run W&B writes (DIR/wandb/offline-run-*/run-ID.wandb) record by record, so they
test what a `wandb sync` would upload, not what o2o meant to send."""

import json
import struct
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli

from o2o.collect.scripted import collect_pendulum
from o2o.data import write_o2o
from o2o.train import loggers, runs

TINY = ["--set", "hidden_dims=16,16", "--set", "batch_size=32"]


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory):
    return str(write_o2o(collect_pendulum(episodes=3), tmp_path_factory.mktemp("data") / "pendulum"))


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """W&B in offline mode, every file it keeps (settings, cache, artifacts) in the test's directory."""
    pytest.importorskip("wandb")
    for name, folder in (("WANDB_DIR", "wandb"), ("WANDB_CONFIG_DIR", "wandb-config"), ("WANDB_CACHE_DIR", "wandb-cache"),
                         ("WANDB_DATA_DIR", "wandb-data")):
        monkeypatch.setenv(name, str(tmp_path / folder))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_PROJECT", raising=False)


def train_args(dataset, out, *extra, steps=200):
    return ["train", "iql", "--dataset", dataset, "--steps", str(steps), "--eval-every", "100", "--eval-episodes", "1",
            "--out", str(out), "--quiet", *TINY, *extra]


def wandb_runs(run_dir: Path) -> list[dict]:
    """Each offline W&B run under RUN_DIR/wandb, oldest first: its run record, config, history rows and exit code."""
    from wandb.proto import wandb_internal_pb2

    found = []
    for file in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        out = {"file": file, "history": [], "config": {}, "exit_code": None}
        for record in _leveldb_records(file.read_bytes()):
            message = wandb_internal_pb2.Record()
            message.ParseFromString(record)
            kind = message.WhichOneof("record_type")
            if kind == "run":
                out["run"] = message.run
                out["config"].update({item.key: json.loads(item.value_json) for item in message.run.config.update})
            elif kind == "config":
                out["config"].update({item.key: json.loads(item.value_json) for item in message.config.update})
            elif kind == "history":
                out["history"].append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                       for item in message.history.item})
            elif kind == "exit":
                out["exit_code"] = message.exit.exit_code
        found.append(out)
    return found


def _leveldb_records(data: bytes):
    """The records of a .wandb file: a 7-byte header (':W&B', key, version), then LevelDB's log format: 32 KiB blocks of
    chunks, each a 7-byte header (crc32c, length, type: 1 full, 2 first, 3 middle, 4 last) and its bytes."""
    assert data[:4] == b":W&B", data[:7]
    position, pending = 7, b""
    while position + 7 <= len(data):
        left_in_block = 32768 - position % 32768
        if left_in_block < 7:  # a block's tail too short for a header is padding
            position += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if kind == 0:
            break
        chunk = data[position + 7:position + 7 + length]
        position += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            yield pending


def evaluation_steps(logged: dict) -> list[int]:
    return [row["_step"] for row in logged["history"] if "offline/return_mean" in row]


def metric_records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_logger_wandb_writes_the_runs_config_and_its_evaluation_curve_beside_tensorboard(pendulum, tmp_path, capsys,
                                                                                       offline_wandb):
    out = tmp_path / "iql-pendulum"
    started = time.perf_counter()
    code, stdout, err = run_cli(train_args(pendulum, out, "--logger", "tensorboard,wandb", "--seed", "3", "--json"), capsys)
    seconds = time.perf_counter() - started
    assert code == 0, err
    assert json.loads(stdout.splitlines()[-1])["run_dir"] == str(out)  # W&B writes nothing into --json's stdout
    assert list(out.glob("events.out.tfevents.*"))  # both sinks
    [logged] = wandb_runs(out)
    run = logged["run"]
    assert (run.project, run.display_name, run.run_group, run.job_type) == ("o2o", "iql-pendulum", "iql", "offline")
    config = json.loads((out / "config.json").read_text())
    assert run.run_id == config["wandb_run_id"]  # a resume continues this W&B run
    assert logged["config"]["settings"]["algo"] == "iql" and logged["config"]["seeds"] == [3]
    assert logged["config"]["agent_config"] == config["agent_config"]
    evaluations = [r for r in metric_records(out) if "return_mean" in r]
    curve = [(row["_step"], row["offline/return_mean"]) for row in logged["history"] if "offline/return_mean" in row]
    assert curve == [(r["step"], r["return_mean"]) for r in evaluations] and [s for s, _ in curve] == [100, 200]
    losses = {key for row in logged["history"] for key in row if not key.startswith("_")}
    assert losses == {f"offline/{key}" for r in metric_records(out) for key, value in r.items()
                      if isinstance(value, (int, float)) and key != "step"}
    assert logged["exit_code"] == 0
    print(f"o2o train with --logger tensorboard,wandb: {seconds:.1f} s")


def test_an_interrupted_wandb_run_is_marked_failed_and_its_resume_continues_the_same_wandb_run(
        pendulum, tmp_path, capsys, ctrl_c_at_chunk, offline_wandb):
    out = tmp_path / "cut"
    release = ctrl_c_at_chunk(3)
    code, _, err = run_cli(train_args(pendulum, out, "--logger", "wandb", "--wandb-project", "o2o-tests", steps=300),
                           capsys)
    assert code == 130 and "interrupted at update 200" in err
    release()
    time.sleep(1.1)  # W&B names an offline run's directory by the second it started
    code, _, err = run_cli(["train", "--resume", str(out), "--quiet"], capsys)  # no --logger: as recorded
    assert code == 0, err
    first, second = wandb_runs(out)
    assert first["run"].run_id == second["run"].run_id and second["run"].project == "o2o-tests"
    assert first["exit_code"] == 1 and second["exit_code"] == 0
    assert evaluation_steps(first) == [100, 200] and evaluation_steps(second) == [300]
    assert not list(out.glob("events.out.tfevents.*"))  # --logger wandb alone


def test_a_bench_cell_logs_to_the_benchs_wandb_group_tagged_with_algorithm_dataset_and_seeds(pendulum, tmp_path,
                                                                                          offline_wandb):
    from o2o import bench

    grid = bench.Grid(algos=["iql"], datasets=[pendulum], seeds=1, seed=5, steps=100, eval_every=100, eval_episodes=1,
                      overrides={"hidden_dims": "16,16", "batch_size": "32"})
    [cell] = bench.cells(grid)
    outcome = bench.execute_cell(cell, grid, str(tmp_path / "my-bench"), loggers.LogSettings(("wandb",)))
    assert outcome["status"] == "completed", outcome
    [logged] = wandb_runs(tmp_path / "my-bench" / "runs" / cell.id / "offline")
    assert logged["run"].run_group == "my-bench" and logged["run"].display_name == f"{cell.id}/offline"
    assert list(logged["run"].tags) == ["algo:iql", "dataset:pendulum", "seed:5"]


@pytest.mark.parametrize("extra, tensorboard", [([], True), (["--logger", "none"], False)])
def test_tensorboard_is_the_default_and_none_leaves_metrics_jsonl_alone(pendulum, tmp_path, capsys, extra, tensorboard):
    out = tmp_path / "run"
    code, _, err = run_cli(train_args(pendulum, out, *extra, steps=100), capsys)
    assert code == 0, err
    assert bool(list(out.glob("events.out.tfevents.*"))) == tensorboard
    assert [r["step"] for r in metric_records(out)] == [100]  # the run's record, whatever the logger
    assert not (out / "wandb").exists()


@pytest.mark.parametrize("extra, message", [
    (["--logger", "bogus"], "--logger bogus: choose tensorboard, wandb or none, or a comma-separated list"),
    (["--logger", "none,wandb"], "--logger none,wandb: choose tensorboard, wandb or none"),
    (["--wandb-project", "p"], "--wandb-project p: a W&B project, for runs that log to W&B; give it with --logger wandb"),
    (["--logger", "tensorboard", "--wandb-project", "p"], "--wandb-project p: a W&B project"),
])
def test_a_bad_logger_fails_in_one_line_before_anything_runs(pendulum, tmp_path, capsys, extra, message):
    code, _, err = run_cli(train_args(pendulum, tmp_path / "run", *extra), capsys)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_wandb_not_installed_says_how_to_install_it_before_anything_runs(pendulum, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if absent: find_spec gives None, importing it fails
    for command in (train_args(pendulum, tmp_path / "run", "--logger", "wandb"),
                    ["bench", "--algos", "iql", "--datasets", pendulum, "--out", str(tmp_path / "bench"), "--logger",
                     "tensorboard,wandb"]):
        code, _, err = run_cli(command, capsys)
        assert code == 1 and 'pip install -e ".[wandb]"' in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists() and not (tmp_path / "bench").exists()


def test_a_resume_keeps_the_recorded_logger_unless_given_and_records_a_new_one(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    run = runs.RunDir.create(tmp_path / "run", "offline", loggers.LogSettings((), wandb_group="bench", wandb_tags=["t"]),
                             settings={"steps": 10})
    assert runs.resumed_logging(run, None) == run.logging == loggers.LogSettings((), None, "bench", ("t",))
    before = (run.path / "config.json").read_bytes()
    runs.extend(run, None, runs.resumed_logging(run, None))
    assert (run.path / "config.json").read_bytes() == before  # nothing given: nothing rewritten
    given = loggers.LogSettings.parse("tensorboard", None)
    runs.extend(run, None, runs.resumed_logging(run, given))
    # the sinks change; a bench cell's W&B group and tags stay
    assert runs.RunDir.open(run.path).logging == loggers.LogSettings(("tensorboard",), None, "bench", ("t",))


def test_a_bench_rerun_keeps_its_recorded_logger_unless_given(tmp_path):
    from o2o import bench

    grid = bench.Grid(algos=["bc"], datasets=[str(tmp_path / "data")], seeds=1, steps=100)
    none = loggers.LogSettings(())
    assert bench.prepare_dir(grid, tmp_path / "b", none) == none
    assert bench.prepare_dir(grid, tmp_path / "b") == none  # `o2o bench --out B` again: as recorded
    assert bench.prepare_dir(grid, tmp_path / "b", loggers.LogSettings()) == loggers.LogSettings()  # changes no result
    assert bench.prepare_dir(grid, tmp_path / "b") == loggers.LogSettings()
