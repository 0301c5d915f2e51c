"""Every bad input gets one clear first line on stderr naming the place and the expectation, a non-zero exit, and the
input file is left exactly as it was."""

import hashlib
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import make_dataset, run_cli

from o2o.data import write_o2o


def d4rl_arrays(n=200, obs_dim=11, act_dim=3):
    d = make_dataset(n=n, obs_dim=obs_dim, act_dim=act_dim)
    return {k: np.array(v) for k, v in d.arrays().items()}


def write_hdf5(path, arrays):
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f[k] = v
    return path


def with_value(field, index, value, **kw):
    arrays = d4rl_arrays(**kw)
    arrays[field] = arrays[field].astype(np.float32) if field in ("terminals", "timeouts") else arrays[field]
    arrays[field][index] = value
    return arrays


def fingerprint(path: Path):
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.exists() else []
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def bad_hdf5(arrays_fn):
    def make(tmp):
        return write_hdf5(tmp / "bad.hdf5", arrays_fn())
    return make


def without(key):
    def arrays():
        a = d4rl_arrays()
        del a[key]
        return a
    return arrays


def replaced(key, value_fn):
    def arrays():
        a = d4rl_arrays()
        a[key] = value_fn(a)
        return a
    return arrays


def truncated_hdf5(tmp):
    path = write_hdf5(tmp / "full.hdf5", d4rl_arrays(n=20000))
    data = path.read_bytes()
    cut = tmp / "truncated.hdf5"
    cut.write_bytes(data[: len(data) // 2])
    return cut


def garbage_hdf5(tmp):
    path = tmp / "corrupt.hdf5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(4096))
    return path


def unknown_format(tmp):
    path = tmp / "data.csv"
    path.write_text("obs,act\n1,2\n")
    return path


def unknown_directory(tmp):
    (tmp / "stuff").mkdir()
    (tmp / "stuff" / "readme.txt").write_text("hi")
    return tmp / "stuff"


def o2o_dir_without(field):
    def make(tmp):
        path = write_o2o(make_dataset(n=100), tmp / "ds")
        (path / f"{field}.npy").unlink()
        return path
    return make


def o2o_bad_metadata(text):
    def make(tmp):
        path = write_o2o(make_dataset(n=100), tmp / "ds")
        (path / "metadata.json").write_text(text)
        return path
    return make


def npz_bad_metadata(tmp):
    path = tmp / "meta.npz"
    np.savez(path, metadata_json=np.array("[1, 2]"), **make_dataset(n=100).arrays())
    return path


def o2o_truncated_npy(tmp):
    path = write_o2o(make_dataset(n=1000), tmp / "ds")
    f = path / "observations.npy"
    f.write_bytes(f.read_bytes()[:5000])
    return path


def o2o_edited_without_revalidation(tmp):
    """An o2o dataset edited by hand loses its 'validated' mark and is scanned in full."""
    path = write_o2o(make_dataset(n=100), tmp / "ds")
    meta = json.loads((path / "metadata.json").read_text())
    meta["o2o"]["validated"] = False
    (path / "metadata.json").write_text(json.dumps(meta))
    rewards = np.load(path / "rewards.npy")
    rewards[42] = np.nan
    np.save(path / "rewards.npy", rewards)
    return path


def npz_missing_key(tmp):
    a = d4rl_arrays()
    del a["terminals"]
    np.savez(tmp / "d.npz", **a)
    return tmp / "d.npz"


def npz_without_timeouts(tmp):
    """A user's own .npz with terminals but no timeouts: not OGBench's layout (it has rewards and no masks or qpos)."""
    a = d4rl_arrays()
    del a["timeouts"]
    np.savez(tmp / "user.npz", **a)
    return tmp / "user.npz"


def ogbench_layout_with_rewards_without_masks(tmp):
    a = d4rl_arrays()
    del a["timeouts"]
    np.savez(tmp / "ogbench.npz", **a, qpos=np.zeros((200, 4)))
    return tmp / "ogbench.npz"


def empty_npz(tmp):
    (tmp / "empty.npz").write_bytes(b"")  # what an interrupted download or copy leaves
    return tmp / "empty.npz"


def o2o_empty_npy(tmp):
    path = write_o2o(make_dataset(n=100), tmp / "ds")
    (path / "rewards.npy").write_bytes(b"")
    return path


def hdf5_bad_o2o_metadata(text):
    def make(tmp):
        path = write_hdf5(tmp / "meta.hdf5", d4rl_arrays())
        with h5py.File(path, "a") as f:
            f.attrs["o2o_metadata"] = text
        return path
    return make


def minari_with(observation_space=None, action_space=None, obs_extra=0):
    def make(tmp):
        import gymnasium as gym
        from minari.data_collector.episode_buffer import EpisodeBuffer
        from minari.dataset.minari_storage import MinariStorage

        obs_space = observation_space or gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
        act_space = action_space or gym.spaces.Box(-1, 1, (1,), np.float32)
        (tmp / "m").mkdir()
        storage = MinariStorage.new(tmp / "m" / "data", observation_space=obs_space, action_space=act_space)
        storage.update_metadata({"dataset_id": "bad/m-v0", "minari_version": "0.5.4"})
        t = 5
        obs = [obs_space.sample() for _ in range(t + 1 + obs_extra)]
        if isinstance(obs_space, gym.spaces.Dict):
            obs = {k: np.stack([o[k] for o in obs]) for k in obs_space.spaces}
        else:
            obs = np.stack(obs)
        storage.update_episodes([EpisodeBuffer(
            id=0, observations=obs, actions=np.stack([act_space.sample() for _ in range(t)]),
            rewards=np.zeros(t), terminations=np.zeros(t, bool), truncations=np.eye(t, dtype=bool)[-1], infos={},
        )])
        return tmp / "m"
    return make


def discrete_space():
    import gymnasium as gym
    return gym.spaces.Discrete(4)


def dict_space():
    import gymnasium as gym
    return gym.spaces.Dict({"a": gym.spaces.Box(-1, 1, (2,), np.float32), "b": gym.spaces.Discrete(3)})


CASES = {
    # name: (make(tmp) -> path, extra CLI args, substrings the first stderr line must contain)
    "missing path": (lambda tmp: tmp / "nope.hdf5", [], ["nope.hdf5", "no such file"]),
    "directory of unknown content": (unknown_directory, [], ["neither an o2o dataset nor a Minari"]),
    "unknown format": (unknown_format, [], ["unknown dataset format"]),
    "truncated hdf5": (truncated_hdf5, [], ["truncated or corrupt"]),
    "corrupt hdf5": (garbage_hdf5, [], ["cannot be opened as HDF5"]),
    "missing observations": (bad_hdf5(without("observations")), [], ["missing key(s) observations"]),
    "missing actions": (bad_hdf5(without("actions")), [], ["missing key(s) actions"]),
    "missing rewards": (bad_hdf5(without("rewards")), [], ["missing key(s) rewards"]),
    "missing terminals": (bad_hdf5(without("terminals")), [], ["missing key(s) terminals"]),
    "missing timeouts": (bad_hdf5(without("timeouts")), [], ["missing key(s) timeouts"]),
    "NaN observation": (bad_hdf5(lambda: with_value("observations", (17, 2), np.nan)), [], ["observations[17] is NaN"]),
    "NaN action": (bad_hdf5(lambda: with_value("actions", (33, 0), np.nan)), [], ["actions[33] is NaN"]),
    "NaN reward": (bad_hdf5(lambda: with_value("rewards", 150, np.nan)), [], ["rewards[150] is NaN"]),
    "NaN next observation": (bad_hdf5(lambda: with_value("next_observations", (5, 0), np.nan)), [], ["next_observations[5] is NaN"]),
    "Inf observation": (bad_hdf5(lambda: with_value("observations", (9, 1), np.inf)), [], ["observations[9] is infinite"]),
    "Inf action": (bad_hdf5(lambda: with_value("actions", (8, 2), -np.inf)), [], ["actions[8] is infinite"]),
    "Inf reward": (bad_hdf5(lambda: with_value("rewards", 199, np.inf)), [], ["rewards[199] is infinite"]),
    "Inf next observation": (bad_hdf5(lambda: with_value("next_observations", (64, 3), np.inf)), [], ["next_observations[64] is infinite"]),
    "length mismatch": (bad_hdf5(replaced("actions", lambda a: a["actions"][:-3])), [], ["actions has 197 entries", "observations has 200"]),
    "rewards not scalar": (bad_hdf5(replaced("rewards", lambda a: np.zeros((200, 2)))), [], ["rewards has shape (200, 2)"]),
    "observations 1-D": (bad_hdf5(replaced("observations", lambda a: np.zeros(200))), [], ["observations has shape (200,)"]),
    "observation shape vs env": (bad_hdf5(lambda: d4rl_arrays(obs_dim=17)), ["--env", "Hopper-v5"], ["observations have shape (17,)", "Hopper-v5 expects (11,)"]),
    "action shape vs env": (bad_hdf5(lambda: d4rl_arrays(act_dim=6)), ["--env", "Hopper-v5"], ["actions have shape (6,)", "Hopper-v5 expects (3,)"]),
    "action outside bounds": (bad_hdf5(lambda: with_value("actions", (120, 1), 1.5)), ["--env", "Hopper-v5"], ["actions[120]", "outside the action bounds"]),
    "empty dataset": (bad_hdf5(lambda: {k: v[:0] for k, v in d4rl_arrays().items()}), [], ["empty"]),
    "string observations": (bad_hdf5(replaced("observations", lambda a: np.array([b"x"] * 200))), [], ["observations has dtype", "expected numbers"]),
    "non-boolean terminal": (bad_hdf5(lambda: with_value("terminals", 77, 0.5)), [], ["terminals[77] = 0.5", "expected a boolean"]),
    "terminals as strings": (bad_hdf5(replaced("terminals", lambda a: np.array([b"no"] * 200))), [], ["terminals has dtype"]),
    "group instead of array": (lambda tmp: _group_file(tmp), [], ["rewards is an HDF5 group"]),
    "npz missing key": (npz_missing_key, [], ["missing key(s) terminals"]),
    "npz terminals without timeouts": (npz_without_timeouts, [], ["user.npz: missing key(s) timeouts"]),
    "OGBench layout, rewards without masks": (ogbench_layout_with_rewards_without_masks, [],
                                              ["ogbench.npz: rewards without masks in OGBench's layout"]),
    "empty npz": (empty_npz, [], ["empty.npz: cannot be read as .npz"]),
    "o2o empty npy": (o2o_empty_npy, [], ["rewards.npy: cannot be memory-mapped"]),
    "hdf5 o2o_metadata not JSON": (hdf5_bad_o2o_metadata("{not json"), [], ["meta.hdf5: its o2o_metadata attribute "
                                                                              "is not valid JSON"]),
    "hdf5 o2o_metadata not an object": (hdf5_bad_o2o_metadata("[1, 2]"), [], ["o2o_metadata attribute holds a list"]),
    "o2o missing field file": (o2o_dir_without("actions"), [], ["missing key(s) actions"]),
    "o2o unreadable metadata": (o2o_bad_metadata("{not json"), [], ["ds: its metadata.json is not valid JSON"]),
    "o2o metadata not an object": (o2o_bad_metadata("[1, 2]"), [], ["ds: its metadata.json holds a list"]),
    "npz metadata not an object": (npz_bad_metadata, [], ["meta.npz: its metadata_json holds a list"]),
    "o2o truncated npy": (o2o_truncated_npy, [], ["observations.npy: cannot be memory-mapped"]),
    "o2o hand-edited NaN": (o2o_edited_without_revalidation, [], ["rewards[42] is NaN"]),
    "minari T+1 observations": (minari_with(obs_extra=1), [], ["episode 0 has 7 observations for 5 steps", "T+1"]),
    "minari dict observations": (minari_with(observation_space=dict_space()), [], ["'b' is a Discrete space", "flattens only Dicts of Box spaces"]),
    "minari discrete actions": (minari_with(action_space=discrete_space()), [], ["Discrete space", "only continuous Box actions"]),
    "env mismatch": (lambda tmp: write_o2o(make_dataset(n=100, env_id="Hopper-v5"), tmp / "ds"), ["--env", "Walker2d-v5"], ["recorded on Hopper-v5", "--env Walker2d-v5"]),
    "unknown env": (bad_hdf5(d4rl_arrays), ["--env", "Hoppr-v5"], ["'Hoppr-v5' is not registered"]),
}


def _group_file(tmp):
    a = d4rl_arrays()
    with h5py.File(tmp / "g.hdf5", "w") as f:
        for k, v in a.items():
            if k == "rewards":
                f.create_group(k)["x"] = v
            else:
                f[k] = v
    return tmp / "g.hdf5"


def test_at_least_25_distinct_bad_inputs_are_covered():
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_one_clear_line_and_nonzero_exit(case, tmp_path, capsys):
    make, extra, expected = CASES[case]
    path = make(tmp_path)
    before = fingerprint(Path(path))
    code, out, err = run_cli(["data", "info", str(path), *extra], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert code != 0, (case, out, err)
    assert len(errors) == 1, err
    for text in expected:
        assert text in errors[0], (case, errors[0])
    assert fingerprint(Path(path)) == before, "the input was modified"


def test_terminal_and_timeout_on_same_step_warns_and_counts_as_terminal(tmp_path, capsys):
    arrays = d4rl_arrays()
    arrays["terminals"][50] = True
    arrays["timeouts"][50] = True
    path = write_hdf5(tmp_path / "both.hdf5", arrays)
    code, out, err = run_cli(["data", "info", str(path), "--json"], capsys)
    assert code == 0, err
    assert "flagged both terminal and timeout (first at index 50)" in err
    info = json.loads(out.strip().splitlines()[-1])
    assert info["terminals"] == 1


def test_error_from_the_installed_command_line(tmp_path):
    """The real console script prints one error line and exits non-zero."""
    import subprocess
    import sys

    bin_dir = Path(sys.executable).parent
    result = subprocess.run([str(bin_dir / "o2o"), "data", "info", str(tmp_path / "missing.hdf5")],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0].startswith("error: ")
    assert "missing.hdf5" in result.stderr.splitlines()[0]


def test_optional_config_fields_take_values_and_none(capsys):
    from o2o.agents import get_algorithm
    from o2o.errors import O2OError

    assert get_algorithm("calql", {"sparse_failure_reward": "-1"})[1].sparse_failure_reward == -1.0
    assert get_algorithm("calql", {"sparse_failure_reward": "none"})[1].sparse_failure_reward is None
    with pytest.raises(O2OError, match="sparse_failure_reward = 'low' is not a valid float"):
        get_algorithm("calql", {"sparse_failure_reward": "low"})
    assert get_algorithm("iql", {"hidden_dims": "64,64"})[1].hidden_dims == (64, 64)


def test_minari_writer_takes_a_relative_destination(tmp_path, monkeypatch, capsys):
    write_o2o(make_dataset(n=200, obs_dim=3, act_dim=1, env_id="Pendulum-v1"), tmp_path / "src")
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["data", "convert", "src", "mdir", "--format", "minari"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["data", "info", "mdir", "--json"], capsys)
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["transitions"] == 200


def test_unknown_environment_is_one_line_without_notices(capsys):
    code, out, err = run_cli(["online", "sac", "--env", "NoSuchEnv-v1", "--steps", "10"], capsys)
    assert code == 1 and err == "error: environment 'NoSuchEnv-v1' is not registered with gymnasium\n"


@pytest.mark.parametrize("env_id, command", [("Hopper-v2", ["collect", "Hopper-v2", "--level", "random"]),
                                             ("Walker2d-v3", ["online", "sac", "--env", "Walker2d-v3"])])
def test_d4rl_mujoco_versions_are_one_line_naming_the_v5_id(env_id, command, tmp_path, capsys):
    """gymnasium registers D4RL's v2/v3 ids, but making one needs mujoco-py: a traceback without the version check."""
    code, _, err = run_cli([*command, "--steps" if "online" in command else "--transitions", "10",
                            "--out", str(tmp_path / "out")], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: environment {env_id}: MuJoCo v") and err.strip().endswith(f"use {env_id[:-3]}-v5")
    assert not (tmp_path / "out").exists()


def test_ctrl_c_outside_a_training_loop_is_one_line_and_exit_130(capsys, monkeypatch):
    """typer turns a KeyboardInterrupt into a silent exit 130 before `o2o.cli.main` sees it; the line is still said."""
    from o2o import external

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(external, "import_files", interrupted)
    code, _, err = run_cli(["results", "import", "a.csv", "--into", "db"], capsys)
    assert code == 130 and err == "error: interrupted\n"
    code, _, err = run_cli(["quickstart", "--help"], capsys)  # an exit of typer's own is left as it is
    assert code == 0 and err == ""
