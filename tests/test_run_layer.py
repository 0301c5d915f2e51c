"""Starting, resuming and handing on runs: each test is a defect found by trying the command line as a new user would
(a finished run rewritten by --resume, a run that worked only from its launch directory, options silently dropped or
ignored, a pairing refused only after the whole offline phase, a Ctrl-C that left no resume command)."""

import json
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_dataset, run_cli

from o2o.collect.scripted import collect_pendulum
from o2o.data import write_o2o
from o2o.errors import O2OError
from o2o.train import loggers, offline, online, runs

TINY = ["--set", "hidden_dims=16,16", "--set", "batch_size=32"]


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory):
    return str(write_o2o(collect_pendulum(episodes=3), tmp_path_factory.mktemp("data") / "pendulum"))


@pytest.fixture(scope="module")
def finished(pendulum, tmp_path_factory):
    """A finished 100-update IQL run on Pendulum with one evaluation."""
    out = tmp_path_factory.mktemp("runs") / "iql"
    offline.train(offline.OfflineSettings(algo="iql", dataset=pendulum, steps=100, eval_every=100, eval_episodes=1,
                                          out=str(out), agent_overrides={"hidden_dims": "16,16", "batch_size": "32"}),
                  progress=False)
    return out


def train_args(dataset, out, *extra):
    return ["train", "iql", "--dataset", dataset, "--steps", "100", "--eval-every", "100", "--eval-episodes", "1",
            "--out", str(out), "--quiet", *TINY, *extra]


def test_resuming_a_finished_run_changes_nothing_and_says_so(finished, capsys):
    before = {name: (finished / name).read_bytes() for name in ("summary.json", "config.json", "metrics.jsonl")}
    code, out, err = run_cli(["train", "--resume", str(finished), "--json"], capsys)
    assert code == 0 and "finished already" in err
    assert json.loads(out.splitlines()[-1])["normalized_score"] is not None
    assert {name: (finished / name).read_bytes() for name in before} == before


@pytest.mark.parametrize("extra, refusal", [
    (["--dataset", "elsewhere"], "drop --dataset"),
    (["--seeds", "3"], "drop --seeds"),
    (["--set", "expectile=0.8"], "drop --set"),
    (["--eval-every", "50"], "drop --eval-every"),
])
def test_resume_refuses_options_it_would_ignore(finished, capsys, extra, refusal):
    code, _, err = run_cli(["train", "--resume", str(finished), *extra], capsys)
    assert code == 1 and refusal in err and len(err.strip().splitlines()) == 1


def test_resume_refuses_another_algorithm_and_a_smaller_budget(finished, capsys):
    code, _, err = run_cli(["train", "td3bc", "--resume", str(finished)], capsys)
    assert code == 1 and "a iql run; drop ALGO (td3bc)" in err
    code, _, err = run_cli(["train", "--resume", str(finished), "--steps", "50"], capsys)
    assert code == 1 and "never cut back" in err


def recorded_run(path: Path, **record) -> Path:
    """A run directory holding only its config.json: enough for what --resume checks before it loads anything."""
    path.mkdir()
    (path / "config.json").write_text(json.dumps(record))
    return path


@pytest.mark.parametrize("extra, refusal", [(["--dataset", "hm"], "drop --dataset"),
                                            (["--with", "sera"], "drop --with")])
def test_online_resume_refusals_name_the_flags_given(tmp_path, capsys, extra, refusal):
    run = recorded_run(tmp_path / "rlpd", kind="online", settings={"algo": "rlpd"})
    code, _, err = run_cli(["online", "--resume", str(run), *extra], capsys)
    assert code == 1 and err == f"error: --resume continues {run} with its recorded settings; {refusal} (--steps N " \
        "extends a run)\n"


def test_zoo_resume_refuses_what_it_would_ignore_and_runs_that_are_not_zoo_runs(tmp_path, capsys):
    zoo = recorded_run(tmp_path / "zoo", kind="online", env_id="Pendulum-v1",
                       settings={"algo": "sac", "keep_policy_snapshots": True})
    for extra, refusal in ((["--steps", "20"], "drop --steps"), (["--seed", "1"], "drop --seed"),
                           (["--eval-every", "5"], "drop --eval-every"), (["--out", "x"], "drop --out"),
                           (["--set", "batch_size=8"], "drop --set"),
                           (["Hopper-v5"], "a Pendulum-v1 run; drop ENV_ID")):
        code, _, err = run_cli(["zoo", "train", "--resume", str(zoo), *extra], capsys)
        assert code == 1 and refusal in err and err.count("\n") == 1, (extra, err)
    online_run = recorded_run(tmp_path / "sac", kind="online", env_id="Pendulum-v1", settings={"algo": "sac"})
    code, _, err = run_cli(["zoo", "train", "--resume", str(online_run)], capsys)
    assert code == 1 and "not a zoo training run" in err and "`o2o online --resume` resumes it" in err
    code, _, err = run_cli(["zoo", "train"], capsys)
    assert code == 1 and err == "error: o2o zoo train needs ENV_ID (or --resume RUN_DIR)\n"


def test_a_larger_budget_extends_a_finished_run_and_records_it(pendulum, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(train_args(pendulum, out), capsys)[0] == 0
    code, stdout, _ = run_cli(["train", "--resume", str(out), "--steps", "200", "--json", "--quiet"], capsys)
    assert code == 0
    assert json.loads(stdout.splitlines()[-1])["steps"] == 200
    config = runs.RunDir.open(out)
    assert config.settings["steps"] == 200 and config.record["extensions"] == [{"from_steps": 100, "to_steps": 200}]
    assert [r["step"] for r in config.evaluations()] == [100, 200]


def test_resume_refuses_a_dataset_that_changed(pendulum, tmp_path, capsys, kill_after_checkpoint):
    data = tmp_path / "data"
    shutil.copytree(pendulum, data)
    out = tmp_path / "run"
    kill_after_checkpoint(lambda: offline.train(offline.OfflineSettings(
        algo="bc", dataset=str(data), steps=200, eval_every=100, eval_episodes=0, out=str(out)), progress=False), 100)
    shutil.rmtree(data)
    write_o2o(collect_pendulum(episodes=3, seed=1), data)  # replaced under the killed run
    code, _, err = run_cli(["train", "--resume", str(out)], capsys)
    assert code == 1 and "changed since the run started (content hash" in err


def test_a_run_works_from_any_directory_and_evaluates_without_its_dataset(pendulum, tmp_path, capsys, monkeypatch):
    launch, elsewhere = tmp_path / "launch", tmp_path / "elsewhere"
    launch.mkdir(), elsewhere.mkdir()
    shutil.copytree(pendulum, launch / "pendulum")
    monkeypatch.chdir(launch)
    assert run_cli(train_args("pendulum", "run"), capsys)[0] == 0  # paths relative to the launch directory
    assert runs.RunDir.open("run").settings["dataset"] == str(launch / "pendulum")
    monkeypatch.chdir(elsewhere)
    code, out, _ = run_cli(["finetune", str(launch / "run"), "--online-steps", "20", "--eval-every", "20",
                            "--eval-episodes", "1", "--quiet", "--json"], capsys)
    assert code == 0 and json.loads(out.splitlines()[-1])["online_updates"] == 20
    shutil.rmtree(launch / "pendulum")
    code, out, _ = run_cli(["eval", str(launch / "run"), "--episodes", "1", "--json"], capsys)
    assert code == 0 and np.isfinite(json.loads(out.splitlines()[-1])["return_mean"])


def test_run_hands_set_to_a_different_online_algorithm_and_warns_when_warmup_leaves_no_update(pendulum, tmp_path, capsys):
    code, out, err = run_cli(["run", "cql", "--dataset", pendulum, "--offline-steps", "20", "--online-steps", "30",
                              "--online-algo", "sac", "--eval-every", "10", "--eval-episodes", "0", "--out",
                              str(tmp_path / "o2o"), "--quiet", *TINY], capsys)
    assert code == 0
    online_config = runs.RunDir.open(tmp_path / "o2o" / "online").agent_config
    assert online_config["batch_size"] == 32 and online_config["hidden_dims"] == [16, 16]
    assert "no online update will run: the warm-up (5,000 env steps) covers all 30 online steps" in err
    assert err.count("no online update will run") == 1
    assert "no online update ran" in out and "->" not in out


def test_run_refuses_a_pairing_before_training(pendulum, tmp_path, capsys):
    code, _, err = run_cli(["run", "iql", "--dataset", pendulum, "--offline-steps", "100000", "--online-algo", "sac",
                            "--out", str(tmp_path / "o2o"), "--quiet"], capsys)
    assert code == 1 and "does not fit sac's policy network" in err
    assert not (tmp_path / "o2o" / "offline").exists()


def test_finetune_refuses_what_would_not_learn(pendulum, finished, tmp_path, capsys):
    bc = tmp_path / "bc"
    offline.train(offline.OfflineSettings(algo="bc", dataset=pendulum, steps=10, eval_every=10, eval_episodes=0,
                                          out=str(bc)), progress=False)
    code, _, err = run_cli(["finetune", str(bc), "--online-steps", "10"], capsys)
    assert code == 1 and "bc learns no critic and cannot fine-tune" in err
    for option, value, message in (("--utd", "0", "--utd must be at least 1"),
                                   ("--warmup-steps", "-5", "--warmup-steps must be 0 or more"),
                                   ("--eval-every", "0", "--eval-every must be at least 1")):
        code, _, err = run_cli(["finetune", str(finished), "--online-steps", "10", option, value], capsys)
        assert code == 1 and message in err, (option, err)
        assert not (finished.parent / f"{finished.name}-finetune-iql").exists()


@pytest.mark.parametrize("chunk", [1, 2])
def test_ctrl_c_keeps_the_work_and_prints_the_resume_command(pendulum, tmp_path, capsys, ctrl_c_while_chunk_runs,
                                                            chunk):
    """A Ctrl-C while a chunk of 1,000 updates runs (its input states donated): the chunk's output is kept, before an
    evaluation step (chunk 1) and at one (chunk 2, whose evaluation and record the resume writes)."""
    args = ["train", "bc", "--dataset", pendulum, "--steps", "2300", "--eval-every", "2000", "--eval-episodes", "1",
            "--quiet", "--json", *TINY]
    assert run_cli([*args, "--out", str(tmp_path / "whole")], capsys)[0] == 0
    release = ctrl_c_while_chunk_runs(chunk)
    code, _, err = run_cli([*args, "--out", str(tmp_path / "cut")], capsys)
    step = 1000 * chunk
    assert code == 130 and err.strip() == (f"error: {tmp_path / 'cut'}: interrupted at update {step} of 2300; resume "
                                           f"with `o2o train --resume {tmp_path / 'cut'}`"), err
    release()
    code, out, _ = run_cli(["train", "--resume", str(tmp_path / "cut"), "--quiet", "--json"], capsys)
    assert code == 0
    lines = lambda run: (run / "metrics.jsonl").read_text().splitlines()  # noqa: E731
    assert lines(tmp_path / "cut") == lines(tmp_path / "whole")
    for checkpoint in (runs.CHECKPOINT, runs.BEST_CHECKPOINT):
        assert (tmp_path / "cut" / checkpoint).read_bytes() == (tmp_path / "whole" / checkpoint).read_bytes()


def test_run_directories_from_before_the_rebuild_evaluate_resume_and_fine_tune(tmp_path, capsys, monkeypatch):
    """A run directory of o2o c03eb16 (dataset recorded relative to its launch directory, no content hash)."""
    shutil.copytree(Path(__file__).parent / "fixtures" / "run_dirs_c03eb16", tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    write_o2o(collect_pendulum(episodes=3), "pendulum")
    for run in ("old-iql", "old-iql-ft"):
        code, out, _ = run_cli(["eval", run, "--episodes", "1", "--json"], capsys)
        assert code == 0 and len(json.loads(out.splitlines()[-1])["return_per_seed"]) == 2
    code, out, _ = run_cli(["train", "--resume", "old-iql", "--steps", "200", "--quiet", "--json"], capsys)
    assert code == 0 and json.loads(out.splitlines()[-1])["steps"] == 200
    code, out, _ = run_cli(["online", "--resume", "old-iql-ft", "--steps", "40", "--quiet", "--json"], capsys)
    assert code == 0 and json.loads(out.splitlines()[-1])["online_updates"] == 40
    code, out, _ = run_cli(["finetune", "old-iql", "--online-steps", "20", "--eval-every", "20", "--eval-episodes", "1",
                            "--out", "new-ft", "--quiet", "--json"], capsys)
    assert code == 0 and json.loads(out.splitlines()[-1])["start_score"] is not None


def test_a_diverging_run_stops_with_exit_1_and_says_no_checkpoint_exists(pendulum, tmp_path, capsys):
    code, _, err = run_cli(["train", "td3bc", "--dataset", pendulum, "--steps", "400", "--eval-every", "200",
                            "--eval-episodes", "0", "--set", "critic_lr=1e30", "--set", "actor_lr=1e30", "--set",
                            "hidden_dims=16,16", "--quiet", "--out", str(tmp_path / "nan")], capsys)
    assert code == 1 and "critic_loss became [inf] (per seed) in updates 1-200; stopped" in err
    assert "no checkpoint was written before it" in err and not (tmp_path / "nan" / "summary.json").exists()


def test_an_online_run_records_its_offline_data_absolutely_and_refuses_it_changed(pendulum, tmp_path, capsys,
                                                                                monkeypatch):
    launch, elsewhere = tmp_path / "launch", tmp_path / "elsewhere"
    launch.mkdir(), elsewhere.mkdir()
    shutil.copytree(pendulum, launch / "pendulum")
    monkeypatch.chdir(launch)
    args = ["online", "rlpd", "--env", "Pendulum-v1", "--dataset", "pendulum", "--steps", "20", "--utd", "1",
            "--eval-every", "20", "--eval-episodes", "0", "--out", "rlpd", "--quiet", *TINY]
    assert run_cli(args, capsys)[0] == 0
    assert runs.RunDir.open("rlpd").settings["offline_dataset"] == str(launch / "pendulum")
    monkeypatch.chdir(elsewhere)
    code, out, _ = run_cli(["online", "--resume", str(launch / "rlpd"), "--steps", "40", "--quiet", "--json"], capsys)
    assert code == 0 and json.loads(out.splitlines()[-1])["online_updates"] == 40
    shutil.rmtree(launch / "pendulum")
    write_o2o(collect_pendulum(episodes=3, seed=1), launch / "pendulum")
    config = (launch / "rlpd" / "config.json").read_bytes()
    code, _, err = run_cli(["online", "--resume", str(launch / "rlpd"), "--steps", "60"], capsys)
    assert code == 1 and "changed since the run started (content hash" in err
    assert (launch / "rlpd" / "config.json").read_bytes() == config  # a refused extension is not recorded


def tensorboard_points(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of `tag` as TensorBoard shows them: the events files in order, where a restart (a SessionLog START
    at step T, tensorboardX's purge_step) hides the events of step T and later written before it."""
    from tensorboardX.proto import event_pb2

    points: list[tuple[int, float]] = []
    for file in sorted(run_dir.glob("events.out.tfevents.*")):
        data, at = file.read_bytes(), 0
        while at < len(data):  # TFRecords: length (8 bytes), its CRC (4), the event, its CRC (4)
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            if event.session_log.status == event_pb2.SessionLog.START:
                points = [(step, value) for step, value in points if step < event.step]
            points += [(event.step, value.simple_value) for value in event.summary.value if value.tag == tag]
    return points


def test_a_resume_keeps_the_tensorboard_point_of_its_checkpoint_step(tmp_path):
    killed = loggers.TensorBoard(tmp_path)
    for step in (100, 200, 300):  # killed after writing step 300, before its checkpoint there
        killed.write({"step": step, "phase": "offline", "loss": float(step)})
    killed.close()
    time.sleep(1.1)  # tensorboardX names an events file by the second it opens
    resumed = loggers.TensorBoard(tmp_path, resume_from_step=200)  # resumed from the checkpoint at step 200
    resumed.write({"step": 300, "phase": "offline", "loss": 3.0})
    resumed.close()
    assert tensorboard_points(tmp_path, "offline/loss") == [(100, 100.0), (200, 200.0), (300, 3.0)]


@pytest.mark.parametrize("command", ["train", "online"])
def test_a_refused_resume_of_a_run_without_checkpoint_records_no_extension(command, pendulum, tmp_path, capsys):
    out = tmp_path / "run"
    if command == "train":
        args = train_args(pendulum, out)
    else:
        args = ["online", "sac", "--env", "Pendulum-v1", "--steps", "20", "--eval-every", "20", "--eval-episodes", "0",
                "--warmup-steps", "10", "--out", str(out), "--quiet", *TINY]
    assert run_cli(args, capsys)[0] == 0
    shutil.rmtree(out / "checkpoints")  # as a run killed before its first checkpoint
    (out / "summary.json").unlink()
    config = (out / "config.json").read_bytes()
    code, _, err = run_cli([command, "--resume", str(out), "--steps", "200", "--logger", "none"], capsys)
    assert code == 1 and "no checkpoint at checkpoints/latest.msgpack" in err
    assert (out / "config.json").read_bytes() == config  # neither the extension nor the logger recorded


def test_errors_name_only_options_their_command_has(tmp_path, capsys):
    data = str(write_o2o(make_dataset(env_id=None), tmp_path / "no-env"))  # Hopper-shaped data that records no env
    run = tmp_path / "iql"
    offline.train(offline.OfflineSettings(algo="iql", dataset=data, steps=10, eval_every=10, eval_episodes=0,
                                          out=str(run), agent_overrides={"hidden_dims": "16,16"}), progress=False)
    code, _, err = run_cli(["finetune", str(run), "--online-steps", "10"], capsys)  # finetune has no --env
    assert code == 1 and err.startswith(f"error: {run}: trained without an environment") and len(err.splitlines()) == 1
    assert "online fine-tuning needs one: train the offline run with --env ENV_ID" in err
    code, _, err = run_cli(["run", "iql", "--dataset", data, "--offline-steps", "10", "--online-steps", "10",
                            "--eval-episodes", "0", "--out", str(tmp_path / "o2o"), "--quiet"], capsys)
    assert code == 1 and "records no environment; online fine-tuning needs one: give --env ENV_ID" in err
    assert not (tmp_path / "o2o" / "offline").exists()  # refused before the offline phase
    # settings no command has are named as in the Python API
    with pytest.raises(O2OError, match=r"^offline run: chunk must be at least 1 \(got 0\)$"):
        offline.OfflineSettings(algo="bc", dataset=data, chunk=0).check()
    with pytest.raises(O2OError, match=r"^online run: log_every must be at least 1 \(got 0\)$"):
        online.settings_for("sac", env="Pendulum-v1", log_every=0).check()


def test_a_finetuned_run_records_its_offline_run_absolutely(finished, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(finished.parent)
    code, _, err = run_cli(["finetune", finished.name, "--online-steps", "10", "--eval-every", "10", "--eval-episodes",
                            "0", "--out", str(tmp_path / "ft"), "--quiet"], capsys)
    assert code == 0, err
    assert runs.RunDir.open(tmp_path / "ft").settings["init_from"] == str(finished.resolve())


def test_run_resume_finishes_both_phases_of_an_interrupted_run(pendulum, tmp_path, capsys, monkeypatch,
                                                               ctrl_c_while_chunk_runs):
    monkeypatch.chdir(tmp_path)
    args = ["run", "cql", "--dataset", pendulum, "--offline-steps", "200", "--online-steps", "20", "--eval-every",
            "100", "--eval-episodes", "0", "--quiet", "--json", *TINY]
    code, whole, err = run_cli([*args, "--out", "whole"], capsys)
    assert code == 0, err
    release = ctrl_c_while_chunk_runs(1)
    code, _, err = run_cli([*args, "--out", "cut"], capsys)
    assert code == 130 and err.strip().endswith("interrupted at update 100 of 200; resume with `o2o run --resume cut`")
    release()
    make_env_step = online.make_env_step

    def interrupted_at_step_5(*args, **kwargs):
        step = make_env_step(*args, **kwargs)

        def call(*inputs):  # inputs[5]: the env step this call completes
            if inputs[5] == 5:
                raise KeyboardInterrupt
            return step(*inputs)
        return call

    monkeypatch.setattr(online, "make_env_step", interrupted_at_step_5)  # the online phase, before its checkpoint
    code, _, err = run_cli(["run", "--resume", "cut", "--quiet"], capsys)
    assert code == 130 and err.strip().endswith("interrupted at env step 4 of 20; resume with `o2o run --resume cut`")
    monkeypatch.setattr(online, "make_env_step", make_env_step)
    code, _, err = run_cli(["run", "--resume", "cut", "--seeds", "2"], capsys)
    assert code == 1 and err.strip() == "error: --resume continues cut with its recorded settings; drop --seeds"
    code, out, err = run_cli(["run", "--resume", "cut", "--quiet", "--json"], capsys)
    assert code == 0, err

    def rows(root, phase):  # wall time is the one thing allowed to differ
        return [{k: v for k, v in json.loads(line).items() if k != "wall_seconds"}
                for line in (tmp_path / root / phase / "metrics.jsonl").read_text().splitlines()]

    for phase in ("offline", "online"):
        assert rows("cut", phase) == rows("whole", phase), phase
    assert any("critic_loss" in row for row in rows("cut", "online"))  # the online phase learned
    assert json.loads(out.splitlines()[-1])["online_updates"] == json.loads(whole.splitlines()[-1])["online_updates"]
    assert runs.RunDir.open("cut/online").settings["init_from"] == str(tmp_path.resolve() / "cut" / "offline")
