"""The offline loop: same seed gives the same run, a resumed run ends exactly like an uninterrupted one, and seed i of
a K-seed run equals that seed trained alone."""

import json

import jax
import numpy as np
import pytest
from conftest import run_cli

from o2o.collect.scripted import collect_pendulum
from o2o.data import write_o2o
from o2o.errors import Interrupted, O2OError
from o2o.train import offline, runs



@pytest.fixture(scope="module")
def pendulum(tmp_path_factory):
    return str(write_o2o(collect_pendulum(episodes=6), tmp_path_factory.mktemp("data") / "pendulum"))


def settings(dataset, out, **kw):
    base = dict(algo="td3bc", dataset=dataset, steps=400, seeds=1, seed=0, eval_every=200, eval_episodes=2, chunk=100,
                out=str(out), agent_overrides={"hidden_dims": "32,32", "batch_size": "64"})
    return offline.OfflineSettings(**{**base, **kw})


def final_params(run_dir, s):
    p = offline.prepare(s)
    checkpoint = runs.load_checkpoint(run_dir, {"states": offline.init_states(p), "step": 0, "best": 0.0})
    return checkpoint["states"], checkpoint["step"]


def metric_lines(run_dir):
    return (run_dir / "metrics.jsonl").read_text().splitlines()


def test_same_seed_gives_identical_metrics(pendulum, tmp_path):
    offline.train(settings(pendulum, tmp_path / "a"), progress=False)
    offline.train(settings(pendulum, tmp_path / "b"), progress=False)
    assert metric_lines(tmp_path / "a") == metric_lines(tmp_path / "b")
    assert len(metric_lines(tmp_path / "a")) == 4  # one line per chunk of 100 updates


SMALL = {"iql": {"hidden_dims": "32,32", "batch_size": "64"}, "fql": {"hidden_dims": "32,32", "batch_size": "64"},
         "dt": {"embedding_dim": "32", "num_layers": "1", "context_length": "5", "batch_size": "16"}}


@pytest.mark.parametrize("algo", SMALL)
def test_resumed_run_ends_exactly_like_an_uninterrupted_one(algo, pendulum, tmp_path, kill_after_checkpoint):
    full = settings(pendulum, tmp_path / "full", algo=algo, agent_overrides=SMALL[algo])
    offline.train(full, progress=False)

    killed = settings(pendulum, tmp_path / "killed", algo=algo, agent_overrides=SMALL[algo])
    kill_after_checkpoint(lambda: offline.train(killed, progress=False), 200)
    assert len(metric_lines(tmp_path / "killed")) == 2
    summary = offline.resume(tmp_path / "killed", progress=False)

    assert metric_lines(tmp_path / "killed") == metric_lines(tmp_path / "full")
    a, step_a = final_params(tmp_path / "full", full)
    b, step_b = final_params(tmp_path / "killed", killed)
    assert step_a == step_b == 400
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert summary["return_mean"] == json.loads(metric_lines(tmp_path / "full")[-1])["return_mean"]


def test_an_extended_run_and_chunks_cut_by_evaluations_draw_as_one_straight_run(pendulum, tmp_path):
    """Update u's key is fold_in(stream, u), wherever chunks end: 250 updates in chunks cut at every evaluation (eval
    every 125 with chunks of 100: 100, 25, 100, 25), extended to 400, end with the states of 400 straight updates in
    chunks of 50 (by chunk index, the extension redrew the batches of updates 200-250)."""
    assert [offline.chunk_size(s, 5000, 1000, 1024) for s in (0, 1000, 1024, 2024, 4096)] == [1000, 24, 1000, 24, 904]
    straight = settings(pendulum, tmp_path / "straight", eval_every=400, chunk=50, eval_episodes=0)
    offline.train(straight, progress=False)
    cut = settings(pendulum, tmp_path / "cut", steps=250, eval_every=125, chunk=100, eval_episodes=0)
    offline.train(cut, progress=False)
    offline.resume(tmp_path / "cut", steps=400, progress=False)
    a, step_a = final_params(tmp_path / "straight", straight)
    b, step_b = final_params(tmp_path / "cut", cut)
    assert step_a == step_b == 400
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_run_recorded_before_update_keys_resumes_with_its_chunk_keys(pendulum, tmp_path, kill_after_checkpoint):
    full = settings(pendulum, tmp_path / "full", keys_by="chunk")
    offline.train(full, progress=False)
    offline.train(settings(pendulum, tmp_path / "new"), progress=False)
    assert metric_lines(tmp_path / "new")[0] != metric_lines(tmp_path / "full")[0]  # the two streams differ

    kill_after_checkpoint(lambda: offline.train(settings(pendulum, tmp_path / "old", keys_by="chunk"), progress=False),
                          200)
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["settings"]["keys_by"]  # as o2o wrote it before 2026-12-08
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    offline.resume(tmp_path / "old", progress=False)
    assert metric_lines(tmp_path / "old") == metric_lines(tmp_path / "full")


def test_an_old_run_extended_past_a_partial_chunk_still_evaluates_at_every_eval_step(pendulum, tmp_path):
    # chunk-keyed: 250 updates in chunks of 100, 100, 50, extended to 450; chunks of 100 from 250 skipped 400
    offline.train(settings(pendulum, tmp_path / "old", steps=250, eval_episodes=1, keys_by="chunk"), progress=False)
    offline.resume(tmp_path / "old", steps=450, progress=False)
    evaluated = [json.loads(line)["step"] for line in metric_lines(tmp_path / "old") if "return_mean" in line]
    assert evaluated == [200, 250, 400, 450]


def test_seed_of_a_multi_seed_run_equals_that_seed_alone(pendulum, tmp_path):
    both = offline.train(settings(pendulum, tmp_path / "both", seeds=2, seed=0), progress=False)
    alone = offline.train(settings(pendulum, tmp_path / "alone", seeds=1, seed=1), progress=False)
    states_both, _ = final_params(tmp_path / "both", settings(pendulum, tmp_path / "both", seeds=2, seed=0))
    states_alone, _ = final_params(tmp_path / "alone", settings(pendulum, tmp_path / "alone", seeds=1, seed=1))
    for x, y in zip(jax.tree.leaves(states_both), jax.tree.leaves(states_alone)):
        np.testing.assert_allclose(np.asarray(x)[1], np.asarray(y)[0], rtol=1e-4, atol=1e-5)
    assert both["return_per_seed"][1] == pytest.approx(alone["return_per_seed"][0], rel=1e-3, abs=1e-2)


def test_run_directory_records_config_versions_metrics_and_tensorboard(pendulum, tmp_path):
    summary = offline.train(settings(pendulum, tmp_path / "run", seeds=2), progress=False)
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["seeds"] == [0, 1] and config["agent_config"]["hidden_dims"] == [32, 32]
    assert {"jax", "gymnasium", "mujoco", "o2o"} <= set(config["versions"])
    assert (run / "checkpoints" / "latest.msgpack").is_file() and (run / "checkpoints" / "best.msgpack").is_file()
    assert list(run.glob("events.out.tfevents.*"))
    evals = [json.loads(line) for line in metric_lines(run) if "return_mean" in json.loads(line)]
    assert [e["step"] for e in evals] == [200, 400]
    assert len(evals[-1]["normalized_score_per_seed"]) == 2
    assert json.loads((run / "summary.json").read_text())["normalized_score"] == summary["normalized_score"]
    assert summary["updates_per_second"] > 0


def test_non_finite_loss_stops_the_run_with_a_clear_message(tmp_path):
    data = collect_pendulum(episodes=2)
    huge = data.__class__(**{**data.arrays(), "rewards": np.full(len(data), 1e30, np.float32)}, metadata=data.metadata)
    path = write_o2o(huge, tmp_path / "huge")
    with pytest.raises(O2OError, match=r"critic_loss became \[inf\].*stopped; no checkpoint was written before it"):
        offline.train(settings(str(path), tmp_path / "run", eval_episodes=0), progress=False)


def test_train_and_eval_commands_print_json(pendulum, tmp_path, capsys):
    code, out, err = run_cli(["train", "bc", "--dataset", pendulum, "--steps", "200", "--seeds", "2", "--eval-every",
                              "200", "--eval-episodes", "2", "--set", "hidden_dims=32,32", "--out", str(tmp_path / "r"),
                              "--quiet", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    for key in ("run_dir", "algo", "dataset", "env", "steps", "seeds", "return_mean", "normalized_score",
                "normalized_score_per_seed", "updates_per_second"):
        assert key in summary
    assert summary["env"] == "Pendulum-v1" and summary["seeds"] == 2
    code, out, err = run_cli(["eval", str(tmp_path / "r"), "--episodes", "3", "--json"], capsys)
    assert code == 0, err
    assert len(json.loads(out.strip().splitlines()[-1])["return_per_seed"]) == 2


def test_train_rejects_a_run_directory_in_use_and_unknown_algorithms(pendulum, tmp_path, capsys):
    offline.train(settings(pendulum, tmp_path / "r", steps=100, eval_every=100, eval_episodes=0), progress=False)
    code, _, err = run_cli(["train", "bc", "--dataset", pendulum, "--out", str(tmp_path / "r")], capsys)
    assert code == 1 and "already holds a run; use --resume" in err
    code, _, err = run_cli(["train", "dqn", "--dataset", pendulum], capsys)
    assert code == 1 and "unknown algorithm 'dqn'" in err
    code, _, err = run_cli(["train", "bc", "--dataset", pendulum, "--env", "Hopper-v5"], capsys)
    assert code == 1 and "recorded on Pendulum-v1 but --env Hopper-v5" in err


def test_a_damaged_latest_checkpoint_resumes_from_the_previous_one_exactly(pendulum, tmp_path, kill_after_checkpoint,
                                                                           capsys):
    full = settings(pendulum, tmp_path / "full", steps=600)
    offline.train(full, progress=False)
    killed = settings(pendulum, tmp_path / "killed", steps=600)
    kill_after_checkpoint(lambda: offline.train(killed, progress=False), 400)
    latest = tmp_path / "killed" / runs.CHECKPOINT
    latest.write_bytes(latest.read_bytes()[:100])  # cut short, as by a full disk

    with pytest.warns(RuntimeWarning, match=r"latest.msgpack: unreadable checkpoint.*previous checkpoint.*step 200"):
        offline.resume(tmp_path / "killed", progress=False)
    assert metric_lines(tmp_path / "killed") == metric_lines(tmp_path / "full")
    a, _ = final_params(tmp_path / "full", full)
    b, _ = final_params(tmp_path / "killed", killed)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

    best = tmp_path / "killed" / runs.BEST_CHECKPOINT
    best.write_bytes(b"not a checkpoint")
    code, _, stderr = run_cli(["eval", str(tmp_path / "killed"), "--best", "--episodes", "1"], capsys)
    assert code == 1 and stderr.startswith(f"error: {best}: unreadable checkpoint")


@pytest.mark.parametrize("stop", ["ctrl-c in evaluation 2 of 3", "ctrl-c in evaluation 3 of 3",
                                  "killed after the last checkpoint"])
def test_a_run_stopped_around_an_evaluation_resumes_to_the_uninterrupted_end(stop, pendulum, tmp_path, monkeypatch,
                                                                              kill_after_checkpoint):
    """The resume writes the evaluation a Ctrl-C cut short (its record, its best checkpoint), and a run stopped after
    its last checkpoint but before its summary reports its last evaluation, not null scores."""
    def run(out):
        return offline.train(settings(pendulum, out, algo="bc", steps=300, eval_every=100, eval_episodes=1),
                             progress=False)

    whole = run(tmp_path / "whole")
    if stop.startswith("ctrl-c"):
        n, real, calls = int(stop.split()[3]), offline.evaluate, []

        def evaluate(*args, **kwargs):
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        monkeypatch.setattr(offline, "evaluate", evaluate)
        with pytest.raises(Interrupted, match=f"interrupted at update {100 * n} of 300; resume with"):
            run(tmp_path / "cut")
        monkeypatch.setattr(offline, "evaluate", real)
    else:
        kill_after_checkpoint(lambda: run(tmp_path / "cut"), 300)
    resumed = offline.resume(tmp_path / "cut", progress=False)

    assert metric_lines(tmp_path / "cut") == metric_lines(tmp_path / "whole")
    for checkpoint in (runs.CHECKPOINT, runs.BEST_CHECKPOINT):
        assert (tmp_path / "cut" / checkpoint).read_bytes() == (tmp_path / "whole" / checkpoint).read_bytes()
    assert resumed["return_per_seed"] == whole["return_per_seed"] and whole["return_mean"] is not None
