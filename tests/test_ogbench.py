"""OGBench: data made by its oracles here, read in its layout, relabelled by its own functions for one task, masks kept
apart from episode boundaries, success-rate evaluation, presets, and clear errors for what cannot work."""

import json
import re
import warnings

import numpy as np
import pytest

from conftest import make_dataset, run_cli
from o2o.collect import ogbench as collect_ogbench
from o2o.data import load_dataset, write_d4rl_hdf5, write_minari, write_npz, write_o2o
from o2o.data.dataset import Dataset
from o2o.envs import load_for_env
from o2o.errors import DatasetError, O2OError

TASK = "cube-single-singletask-task2-v0"
EPISODES, STEPS = 10, 41  # 10 training episodes + 1 validation episode of 41 rows (40 transitions) each


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A small cube-single play dataset in OGBench's layout, made by two worker processes."""
    folder = tmp_path_factory.mktemp("ogbench")
    with pytest.warns(UserWarning, match="10 episodes of 41 steps under the name of OGBench's cube-single-play-v0"):
        summary = collect_ogbench.collect_to("cube-single-v0", "play", folder / "cube-single-play-v0", EPISODES, STEPS,
                                             seed=3, workers=2)
    return folder, summary


def test_generation_writes_ogbench_layout_and_o2o_format(generated):
    folder, summary = generated
    with np.load(folder / "cube-single-play-v0.npz") as npz:
        assert sorted(npz.files) == ["actions", "observations", "qpos", "qvel", "terminals"]
        assert npz["observations"].shape == (EPISODES * STEPS, 28) and npz["terminals"].dtype == bool
        assert np.flatnonzero(npz["terminals"]).tolist() == list(range(STEPS - 1, EPISODES * STEPS, STEPS))
        assert np.abs(npz["actions"]).max() <= 1.0
    with np.load(folder / "cube-single-play-v0-val.npz") as val:
        assert val["observations"].shape == (STEPS, 28)
    data = load_dataset(folder / "cube-single-play-v0")
    assert len(data) == summary["transitions"] == EPISODES * (STEPS - 1) and data.num_episodes == EPISODES
    assert data.metadata["goal_conditioned"] and data.metadata["provenance"]["oracle"] == "plan"
    assert set(data.extras) == {"qpos", "qvel"}


def test_same_seed_same_bytes_whatever_the_number_of_workers(generated):
    folder, _ = generated
    one_worker, _ = collect_ogbench.generate("cube-single-v0", "play", EPISODES, STEPS, seed=3, workers=1)
    with np.load(folder / "cube-single-play-v0.npz") as two_workers:
        for name, value in one_worker.items():
            np.testing.assert_array_equal(value, two_workers[name], err_msg=name)
    other_seed, _ = collect_ogbench.generate("cube-single-v0", "play", 1, STEPS, seed=4, workers=1)
    assert not np.array_equal(other_seed["actions"], one_worker["actions"][:STEPS])


def test_noisy_level_same_seed_same_bytes():
    """The Markov oracles with noise and random actions (p = 0.1) draw only from the seeded streams."""
    first, _ = collect_ogbench.generate("cube-single-v0", "noisy", 1, STEPS, seed=5, workers=1)
    second, _ = collect_ogbench.generate("cube-single-v0", "noisy", 1, STEPS, seed=5, workers=1)
    for name, value in first.items():
        np.testing.assert_array_equal(value, second[name], err_msg=name)


# OGBench's data_gen_scripts/commands.sh: --num_episodes of each published manipulation dataset (all 1001 steps)
PUBLISHED_EPISODES = {"cube-single-v0": 1000, "cube-double-v0": 1000, "cube-triple-v0": 3000, "cube-quadruple-v0": 5000,
                      "scene-v0": 1000, "puzzle-3x3-v0": 1000, "puzzle-4x4-v0": 1000, "puzzle-4x5-v0": 3000,
                      "puzzle-4x6-v0": 5000}


def oracle_like_rows(episodes, steps, observation=0.0):
    """Rows in OGBench's layout, without running the oracles."""
    terminals = np.zeros(episodes * steps, bool)
    terminals[steps - 1::steps] = True
    return {"observations": np.full((episodes * steps, 2), observation, np.float32),
            "actions": np.zeros((episodes * steps, 1), np.float32), "terminals": terminals}


@pytest.mark.parametrize("env_name, flags, expected", [("cube-single-v0", [], 1000), ("cube-triple-v0", [], 3000),
                                                       ("puzzle-4x6-v0", [], 5000),
                                                       ("cube-quadruple-v0", ["--episodes", "7"], 7)])
def test_collect_makes_as_many_episodes_as_the_published_dataset_unless_told(env_name, flags, expected, tmp_path,
                                                                            capsys, monkeypatch):
    assert {env: collect_ogbench.check_request(env, "play") for env in collect_ogbench.MANIPULATION_ENVS} \
        == PUBLISHED_EPISODES
    asked = []
    monkeypatch.setattr(collect_ogbench, "collect_to", lambda env, level, out, episodes, *a, **k: asked.append(episodes)
                        or {"episodes": episodes})
    code, _, err = run_cli(["collect", env_name, "--level", "play", *flags, "--out", str(tmp_path / "d"), "--quiet",
                            "--json"], capsys)
    assert code == 0 and asked == [expected], err
    code, out, _ = run_cli(["collect", "--help"], capsys)
    assert "5000 for cube-quadruple" in " ".join(out.replace("│", " ").split())


def test_another_size_under_the_official_name_warns(tmp_path, monkeypatch):
    """o2o finds ./datasets/NAME before OGBench's download: a smaller dataset there would stand in for the published."""
    monkeypatch.setattr(collect_ogbench, "generate", lambda *a, **k: (oracle_like_rows(2, 3), {}))
    with pytest.warns(UserWarning, match=r"2 episodes of 3 steps under the name of OGBench's cube-triple-play-v0, "
                                         r"which has 3000 of 1001; o2o finds it before the official download"):
        collect_ogbench.collect_to("cube-triple-v0", "play", tmp_path / "cube-triple-play-v0", 2, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        collect_ogbench.collect_to("cube-triple-v0", "play", tmp_path / "small", 2, 3)  # not the official name
        collect_ogbench.collect_to("cube-triple-v0", "play", tmp_path / "default" / "cube-triple-play-v0")
    assert not [w for w in caught if "under the name of" in str(w.message)]


@pytest.mark.parametrize("option, counts, message", [
    ("--episodes", {"episodes": 0}, "--episodes must be at least 1 (got 0)"),
    ("--episodes", {"episodes": -3}, "--episodes must be at least 1 (got -3)"),
    ("--episode-steps", {"steps": 0}, "--episode-steps must be at least 2 (got 0)"),
    ("--episode-steps", {"steps": 1}, "--episode-steps must be at least 2 (got 1)")])
def test_bad_counts_are_one_line_errors_before_any_env_is_built(option, counts, message, tmp_path, capsys,
                                                                monkeypatch):
    monkeypatch.setattr(collect_ogbench, "_start_worker", lambda *a: pytest.fail("an env was built"))
    code, _, err = run_cli(["collect", "cube-single-v0", "--level", "play", option, str(*counts.values()),
                            "--workers", "1", "--out", str(tmp_path / "d"), "--quiet"], capsys)
    assert code == 1 and err.startswith(f"error: o2o collect: {message}") and len(err.strip().splitlines()) == 1, err
    with pytest.raises(O2OError, match=re.escape(message)):
        collect_ogbench.generate("cube-single-v0", "play", **{"episodes": 2, **counts}, workers=1)
    assert list(tmp_path.iterdir()) == []


def test_a_collection_that_fails_after_writing_leaves_nothing_behind(tmp_path, monkeypatch):
    """Three files are written; a failure after the first removes what was written, so that a rerun is not refused."""
    monkeypatch.setattr(collect_ogbench, "generate",
                        lambda *a, **k: (oracle_like_rows(10, 3, observation=np.nan), oracle_like_rows(1, 3)))
    with pytest.raises(DatasetError, match="observations"):
        collect_ogbench.collect_to("cube-single-v0", "play", tmp_path / "data", 10, 3)
    assert list(tmp_path.iterdir()) == []


def test_the_single_process_collector_closes_its_env_even_on_failure(monkeypatch):
    closed = []
    start = collect_ogbench._start_worker

    def start_and_watch_close(*args):
        start(*args)
        env = collect_ogbench._worker["env"]
        close = env.close
        env.close = lambda: closed.append(env) or close()

    monkeypatch.setattr(collect_ogbench, "_start_worker", start_and_watch_close)
    collect_ogbench.generate("cube-single-v0", "play", 1, 3, workers=1)
    assert len(closed) == 1 and collect_ogbench._worker == {}
    monkeypatch.setattr(collect_ogbench, "_episodes", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        collect_ogbench.generate("cube-single-v0", "play", 1, 3, workers=1)
    assert len(closed) == 2 and collect_ogbench._worker == {}


def test_reader_and_relabelling_agree_with_ogbench_itself(generated):
    from ogbench.utils import make_env_and_datasets

    folder, _ = generated
    path = str(folder / "cube-single-play-v0.npz")
    env, theirs, _ = make_env_and_datasets("cube-single-play-singletask-task2-v0", dataset_path=path)
    env.close()
    ours, env_id = load_for_env(path, TASK)
    assert env_id == TASK
    for name in ("observations", "actions", "next_observations", "rewards"):
        np.testing.assert_array_equal(getattr(ours, name), theirs[name], err_msg=name)
    np.testing.assert_array_equal(ours.bootstrap, theirs["masks"].astype(bool))
    np.testing.assert_array_equal(ours.timeouts, theirs["terminals"].astype(bool))  # episode ends, not masks
    # the o2o copy, given the task in its combined form, relabels identically
    copy, _ = load_for_env(str(folder / "cube-single-play-v0"), "cube-single-play-singletask-task2-v0")
    np.testing.assert_array_equal(copy.rewards, ours.rewards)


def test_dataset_names_are_found_in_the_dataset_directories(generated, monkeypatch):
    folder, _ = generated
    monkeypatch.setenv("O2O_DATASETS", str(folder))
    data, env_id = load_for_env("cube-single-play-singletask-task2-v0", None)
    assert env_id == TASK and data.metadata["relabelled_for"] == TASK
    with pytest.raises(DatasetError, match=r"cube-double-play-v0 not found .*o2o collect cube-double-v0 --level play"):
        load_for_env("cube-double-play-singletask-task2-v0", None)


def goal_dataset() -> Dataset:
    """Two 4-step episodes; the goal is reached at step 1 of the first episode, which goes on (mask 0, no end)."""
    data = make_dataset(n=8, obs_dim=2, act_dim=1, episode_length=4, env_id=None)
    rewards = np.array([-1, 0, -1, -1, -1, -1, -1, -1], np.float32)
    masks = np.array([1, 0, 1, 1, 1, 1, 1, 1], bool)
    return Dataset(**{**data.arrays(), "rewards": rewards}, masks=masks, extras={"qpos": np.arange(16.0).reshape(8, 2)})


def test_a_success_mid_trajectory_stops_bootstrapping_but_not_the_episode():
    data = goal_dataset()
    assert data.num_episodes == 2 and data.episode_returns.tolist() == [-3.0, -4.0]
    # returns-to-go follow r + 0.5 * mask * G': the success step is its own reward, the stretch after it goes on to
    # the episode's end, and the second episode never succeeded
    np.testing.assert_allclose(data.returns_to_go(0.5), [-1, 0, -1.5, -1, -1.875, -1.75, -1.5, -1])
    np.testing.assert_allclose(data.returns_to_go(0.5, sparse_failure_reward=-1.0), [-1, 0, -2, -2, -2, -2, -2, -2])
    assert np.isnan(data.next_actions()[[3, 7]]).all() and not np.isnan(data.next_actions()[1]).any()


@pytest.mark.parametrize("writer", [write_o2o, write_npz, write_d4rl_hdf5])
def test_masks_and_extras_survive_every_writer(tmp_path, writer):
    data = goal_dataset()
    back = load_dataset(writer(data, tmp_path / "copy"))
    np.testing.assert_array_equal(back.bootstrap, data.bootstrap)
    np.testing.assert_array_equal(back.extras["qpos"], data.extras["qpos"])
    np.testing.assert_array_equal(back.take(np.array([1, 5])).bootstrap, [False, True])


def test_masks_equal_to_not_terminal_are_not_stored(tmp_path):
    data = make_dataset(n=20, episode_length=10, terminal_at=(4,))
    back = load_dataset(write_o2o(Dataset(**data.arrays(), masks=~data.terminals), tmp_path / "d"))
    assert back.masks is None and not (tmp_path / "d" / "masks.npy").exists()


def test_minari_refuses_what_it_cannot_hold(tmp_path):
    with pytest.raises(DatasetError, match="no place for bootstrap masks apart from episode ends;"):
        write_minari(goal_dataset(), tmp_path / "m")


def test_bad_inputs_are_clear_one_line_errors(generated, tmp_path, capsys):
    folder, _ = generated
    with np.load(folder / "cube-single-play-v0.npz") as rows:  # OGBench's layout without the simulator state
        collect_ogbench.write_npz({k: rows[k] for k in ("observations", "actions", "terminals")}, tmp_path / "no-qpos.npz")
    with pytest.raises(DatasetError, match=r"no-qpos.npz: no qpos per step; relabelling rewards for the single task"):
        load_for_env(str(tmp_path / "no-qpos.npz"), TASK)
    with pytest.raises(O2OError, match="cube-single has tasks 1-5, not task 9"):
        load_for_env(str(folder / "cube-single-play-v0.npz"), "cube-single-singletask-task9-v0")
    code, _, err = run_cli(["train", "iql", "--dataset", str(folder / "cube-single-play-v0.npz"), "--steps", "1",
                            "--eval-episodes", "0"], capsys)
    assert code == 1 and "a goal-conditioned dataset (no task rewards)" in err
    assert "--env cube-single-singletask-task1-v0" in err and len(err.strip().splitlines()) == 1


def test_data_info_reports_reward_mean_and_mask_zero_fraction(capsys):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = write_o2o(goal_dataset(), f"{folder}/goal")
        code, out, _ = run_cli(["data", "info", str(path), "--json"], capsys)
    info = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and info["reward_mean"] == -0.875 and info["mask_zero_fraction"] == 0.125


def test_training_on_a_task_applies_the_ogbench_preset_and_scores_success(generated, tmp_path, capsys, monkeypatch):
    folder, _ = generated
    monkeypatch.setenv("O2O_EVAL_ENVS", "32")
    code, out, err = run_cli(["--eval-envs", "1", "train", "iql", "--dataset", str(folder / "cube-single-play-v0.npz"),
                              "--env", TASK, "--steps", "2", "--eval-every", "2", "--eval-episodes", "2",
                              "--out", str(tmp_path / "run"), "--quiet", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert summary["preset"]["name"] == "ogbench-cube-single"
    assert config["agent_config"]["expectile"] == 0.9 and config["agent_config"]["hidden_dims"] == [256] * 4
    assert not config["agent_config"]["scale_rewards_by_return_range"]
    assert summary["success_rate"] == summary["normalized_score"] == 0.0  # an untrained policy in 200-step episodes


def test_published_tables_cover_the_ogbench_tasks():
    from o2o.report.tables import published

    assert published("iql", None, TASK, "play")[0] == 85.0
    assert published("rebrac", None, "cube-single-play-singletask-task2-v0", "play")[0] == 92.0
    assert published("rebrac", "rebrac", "scene-singletask-task2-v0", "play")[0] == 100.0  # after fine-tuning
    assert published("td3bc", None, TASK, "play") == (None, None)


def test_the_ogbench_suite_evaluates_each_dataset_in_its_own_task():
    from o2o import bench

    suite = bench.load_suite("ogbench")
    grid = bench.Grid(**suite)
    assert {bench.cell_env(c.dataset, grid.env) for c in bench.cells(grid)} == {
        "cube-single-singletask-task2-v0", "cube-double-singletask-task2-v0", "scene-singletask-task2-v0",
        "puzzle-3x3-singletask-task4-v0", "puzzle-4x4-singletask-task4-v0"}
    assert bench.cell_env("hopper-medium", "Hopper-v5") == "Hopper-v5"


def test_a_bench_finds_an_ogbench_dataset_where_o2o_looks(generated, tmp_path, monkeypatch):
    from o2o import bench

    folder, _ = generated
    monkeypatch.setenv("O2O_DATASETS", str(folder))
    assert bench.materialize("cube-single-play-singletask-task2-v0", tmp_path) == str(folder / "cube-single-play-v0")


def test_offline_to_online_on_a_task_reports_success_and_regret(generated, tmp_path, capsys):
    folder, _ = generated
    code, out, err = run_cli(["run", "iql", "--dataset", str(folder / "cube-single-play-v0"), "--env", TASK,
                              "--offline-steps", "2", "--online-steps", "250", "--eval-every", "250",
                              "--eval-episodes", "1", "--set", "hidden_dims=32,32", "--out", str(tmp_path / "o2o"),
                              "--quiet", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["env"] == TASK and 0.0 <= summary["cumulative_regret"] <= 1.0
    assert summary["success_rate"] == summary["normalized_score"]
    online_config = json.loads((tmp_path / "o2o" / "online" / "config.json").read_text())
    assert online_config["dataset_metadata"]["relabelled_for"] == TASK


@pytest.mark.parametrize("compact", [False, True])
def test_datasets_saved_from_ogbenchs_loader_read_the_same(generated, tmp_path, compact):
    """The regular (next_observations) and compact (valids) layouts OGBench's loader returns, saved as .npz and
    relabelled for a task, read as the same transitions, rewards and masks as the file itself."""
    from ogbench.utils import make_env_and_datasets

    folder, _ = generated
    env, rows, _ = make_env_and_datasets("cube-single-play-singletask-task2-v0", compact_dataset=compact,
                                         dataset_path=str(folder / "cube-single-play-v0.npz"), add_info=True)
    env.close()
    np.savez(tmp_path / "saved.npz", **rows)
    saved = load_dataset(tmp_path / "saved.npz")
    reference, _ = load_for_env(str(folder / "cube-single-play-v0.npz"), TASK)
    assert not saved.metadata["goal_conditioned"] and len(saved) == len(reference)
    for name in ("observations", "actions", "next_observations", "rewards", "timeouts", "bootstrap"):
        np.testing.assert_array_equal(getattr(saved, name), getattr(reference, name), err_msg=name)


def test_a_tasks_sparse_variant_is_q_chunkings_reward_in_the_data_and_online(generated):
    """`...-sparse-v0`: reward 0 once every subtask is done, else -1 (Q-chunking's --sparse), in the relabelled data
    and from the env; masks, episodes and success as the dense task's."""
    from o2o.envs import make_env
    from o2o.envs import ogbench as names

    np.testing.assert_array_equal(names.sparse_rewards(np.array([-3.0, -1.0, 0.0])), [-1.0, -1.0, 0.0])
    name = names.parse("puzzle-3x3-play-singletask-task1-sparse-v0")
    assert name.sparse and name.task_env == "puzzle-3x3-singletask-task1-sparse-v0"
    assert names.registered_id(name.task_env) == "puzzle-3x3-singletask-task1-v0"
    assert names.parse("cube-single-sparse-v0") is None  # only a single task has a sparse variant
    folder, _ = generated
    sparse_task = "cube-single-singletask-task2-sparse-v0"
    dense, _ = load_for_env(str(folder / "cube-single-play-v0.npz"), TASK)
    sparse, env_id = load_for_env(str(folder / "cube-single-play-v0.npz"),
                                  "cube-single-play-singletask-task2-sparse-v0")
    assert env_id == sparse_task and "sparse" in sparse.metadata["rewards"]
    np.testing.assert_array_equal(sparse.rewards, names.sparse_rewards(dense.rewards))
    np.testing.assert_array_equal(sparse.bootstrap, dense.bootstrap)
    envs = [make_env(env) for env in ("puzzle-3x3-singletask-task1-v0", name.task_env)]  # 9 buttons: dense in [-9, 0]
    rng = np.random.default_rng(0)
    for env in envs:
        env.reset(seed=7)
    rewards = []
    for _ in range(20):
        action = rng.uniform(-1, 1, envs[0].action_space.shape)
        (_, dense_reward, *_), (_, sparse_reward, *_) = (env.step(action) for env in envs)
        rewards.append((dense_reward, sparse_reward))
    for env in envs:
        env.close()
    dense_rewards, sparse_rewards = np.array(rewards).T
    assert dense_rewards.min() < -1  # the two differ here
    np.testing.assert_array_equal(sparse_rewards, names.sparse_rewards(dense_rewards))
