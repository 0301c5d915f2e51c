"""Every reader/writer pair returns exactly what was written; Minari datasets are real ones made by minari's own API."""

import json

import h5py
import numpy as np
import pytest
from conftest import make_dataset, record_minari
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from o2o.data import (
    Dataset,
    content_hash,
    load_dataset,
    write_d4rl_hdf5,
    write_minari,
    write_npz,
    write_o2o,
)
from o2o.data.dataset import FIELDS


@st.composite
def datasets(draw):
    n = draw(st.integers(1, 60))
    obs_dim = draw(st.integers(1, 5))
    act_dim = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    ends = rng.random(n) < 0.15
    ends[-1] = True
    terminal = ends & (rng.random(n) < 0.5)
    return Dataset(
        observations=rng.normal(size=(n, obs_dim)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        next_observations=rng.normal(size=(n, obs_dim)).astype(np.float32),
        terminals=terminal,
        timeouts=ends & ~terminal,
        metadata={"note": f"seed {seed}"},
    )


def assert_same_transitions(a: Dataset, b: Dataset):
    for name in FIELDS:
        np.testing.assert_array_equal(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)), err_msg=name)
        assert np.asarray(getattr(b, name)).dtype == (np.bool_ if name in ("terminals", "timeouts") else np.float32)


ROUND_TRIP = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@ROUND_TRIP
@given(data=datasets())
def test_o2o_format_round_trip(tmp_path, data):
    path = tmp_path / f"ds-{content_hash(data)[7:19]}"
    write_o2o(data, path, overwrite=True)
    back = load_dataset(path)
    assert_same_transitions(data, back)
    assert back.metadata["note"] == data.metadata["note"]
    assert back.metadata["o2o"]["content_hash"] == content_hash(data)


@ROUND_TRIP
@given(data=datasets())
def test_npz_round_trip(tmp_path, data):
    path = write_npz(data, tmp_path / "ds.npz")
    assert_same_transitions(data, load_dataset(path))


@ROUND_TRIP
@given(data=datasets())
def test_d4rl_hdf5_round_trip(tmp_path, data):
    path = write_d4rl_hdf5(data, tmp_path / "ds.hdf5")
    back = load_dataset(path)
    assert_same_transitions(data, back)
    assert back.metadata["note"] == data.metadata["note"]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=datasets())
def test_minari_round_trip_through_minari_load_dataset(tmp_path, data):
    import minari

    # Minari stores T+1 observations per episode, so within an episode next_observations[i] must be observations[i + 1].
    obs = np.array(data.observations)
    nxt = np.array(data.next_observations)
    inside = np.setdiff1d(np.arange(len(data) - 1), data.episode_ends)
    nxt[inside] = obs[inside + 1]
    data = Dataset(**{**data.arrays(), "next_observations": nxt}, metadata=data.metadata)

    root = tmp_path / "minari"
    dataset_id = f"o2o/rt{content_hash(data)[7:15]}-v0"
    path = write_minari(data, root / dataset_id)
    loaded = minari.load_dataset(dataset_id)
    assert loaded.total_steps == len(data)
    assert loaded.total_episodes == data.num_episodes
    back = load_dataset(path)
    assert_same_transitions(data, back)
    assert back.metadata["note"] == data.metadata["note"]


def test_d4rl_layout_written_by_h5py_derives_next_observations(tmp_path):
    """A D4RL file without next_observations: derived within episodes; steps cut by timeout are dropped (D4RL rule)."""
    obs = np.arange(12, dtype=np.float32).reshape(6, 2)
    with h5py.File(tmp_path / "d.hdf5", "w") as f:
        f["observations"] = obs
        f["actions"] = np.zeros((6, 1), np.float32)
        f["rewards"] = np.arange(6, dtype=np.float64)
        f["terminals"] = np.array([0, 1, 0, 0, 0, 0], np.float32)  # float flags as in D4RL files
        f["timeouts"] = np.array([0, 0, 0, 1, 0, 0], bool)
    with pytest.warns(UserWarning, match="dropped 2 step"):
        d = load_dataset(tmp_path / "d.hdf5")
    # kept steps 0,1 | 2 | 4 ; step 3 (timeout) and step 5 (dataset end) have no recorded next observation
    np.testing.assert_array_equal(d.rewards, [0, 1, 2, 4])
    np.testing.assert_array_equal(d.next_observations, [obs[1], obs[1], obs[3], obs[5]])
    np.testing.assert_array_equal(d.terminals, [False, True, False, False])
    np.testing.assert_array_equal(d.timeouts, [False, False, True, True])
    np.testing.assert_array_equal(d.episode_returns, [1, 2, 4])


def test_o2o_format_memory_maps_and_leaves_input_untouched(tmp_path):
    data = make_dataset(n=500)
    path = write_o2o(data, tmp_path / "ds")
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in path.iterdir()}
    back = load_dataset(path)
    assert isinstance(back.observations, np.memmap)
    assert back.num_episodes == data.num_episodes
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in path.iterdir()}
    assert before == after


def test_o2o_writer_refuses_to_overwrite(tmp_path):
    data = make_dataset(n=50)
    write_o2o(data, tmp_path / "ds")
    with pytest.raises(ValueError, match="already exists"):
        write_o2o(data, tmp_path / "ds")


def real_minari_dataset(tmp_path, dataset_id="o2o-test/pendulum/random-v0", episodes=3):
    """A Minari dataset recorded by minari's own DataCollector on a real gymnasium environment."""
    import gymnasium as gym

    return record_minari(gym.make("Pendulum-v1", max_episode_steps=50), dataset_id, episodes)


def test_reads_real_minari_dataset_by_id_and_directory(tmp_path):
    minari_ds = real_minari_dataset(tmp_path)
    by_id = load_dataset("o2o-test/pendulum/random-v0")
    by_dir = load_dataset(tmp_path / "minari" / "o2o-test/pendulum/random-v0")
    assert len(by_id) == minari_ds.total_steps == 150
    assert by_id.num_episodes == 3
    assert by_id.env_id == "Pendulum-v1"
    assert_same_transitions(by_id, by_dir)
    episode = next(minari_ds.iterate_episodes())
    np.testing.assert_allclose(by_id.observations[:50], episode.observations[:-1], rtol=1e-6)
    np.testing.assert_allclose(by_id.next_observations[49], episode.observations[-1], rtol=1e-6)
    np.testing.assert_allclose(by_id.rewards[:50], episode.rewards, rtol=1e-6)
    assert by_id.timeouts[49] and not by_id.terminals[:50].any()


def test_minari_dataset_is_converted_once_and_cached(tmp_path, monkeypatch):
    from o2o.data import io

    real_minari_dataset(tmp_path)
    first = load_dataset("o2o-test/pendulum/random-v0")
    monkeypatch.setattr(io, "_convert_minari", lambda *a: pytest.fail("re-parsed a cached Minari dataset"))
    second = load_dataset("o2o-test/pendulum/random-v0")
    assert_same_transitions(first, second)
    assert isinstance(second.observations, np.memmap)


def test_converted_minari_metadata_is_json(tmp_path):
    real_minari_dataset(tmp_path)
    d = load_dataset("o2o-test/pendulum/random-v0")
    json.dumps(d.metadata)
    assert d.metadata["minari_dataset_id"] == "o2o-test/pendulum/random-v0"


def test_episode_boundaries_and_returns():
    d = make_dataset(n=10, episode_length=4, terminal_at=(5,))
    # timeouts at 3, 7, 9 (last step); terminal at 5
    np.testing.assert_array_equal(d.episode_starts, [0, 4, 6, 8])
    np.testing.assert_array_equal(d.episode_ends, [3, 5, 7, 9])
    np.testing.assert_array_equal(d.episode_lengths, [4, 2, 2, 2])
    r = np.asarray(d.rewards, np.float64)
    np.testing.assert_allclose(d.episode_returns, [r[:4].sum(), r[4:6].sum(), r[6:8].sum(), r[8:].sum()])
    sub = d.select_episodes(np.array([2, 0]))
    np.testing.assert_array_equal(sub.rewards, np.concatenate([d.rewards[6:8], d.rewards[:4]]))


def test_next_actions_stop_at_episode_ends():
    from o2o.data import Dataset
    actions = np.arange(5, dtype=np.float32)[:, None]
    data = Dataset(np.zeros((5, 1), np.float32), actions, np.zeros(5, np.float32), np.zeros((5, 1), np.float32),
                   np.array([0, 1, 0, 0, 0], bool), np.array([0, 0, 0, 1, 0], bool))
    following = data.next_actions()[:, 0]
    np.testing.assert_array_equal(following[[0, 2]], [1.0, 3.0])
    assert np.isnan(following[[1, 3, 4]]).all()  # a terminal, a timeout and the data's last step


def test_o2o_writer_checks_every_value_before_marking_the_dataset_validated(tmp_path):
    """A Dataset built in Python (or by corrupt, take, concatenate) is not checked on the way in; the writer's
    'validated' mark lets readers skip the scan, so the writer must scan first and write nothing on a bad value."""
    from o2o.errors import DatasetError

    data = make_dataset(n=50)
    rewards = np.array(data.rewards)
    rewards[5] = np.nan
    with pytest.raises(DatasetError, match=r"ds \(not written\): rewards\[5\] is NaN; every reward value must be"):
        write_o2o(Dataset(**{**data.arrays(), "rewards": rewards}), tmp_path / "ds")
    observations = np.array(data.observations)
    observations[7, 1] = -np.inf
    with pytest.raises(DatasetError, match=r"observations\[7\] is infinite"):
        write_o2o(Dataset(**{**data.arrays(), "observations": observations}), tmp_path / "ds")
    assert not any(tmp_path.iterdir())  # neither the dataset nor a temporary copy


def test_d4rl_files_with_qpos_and_qvel_convert_to_minari_and_back(tmp_path, capsys):
    """Every D4RL file carries infos/qpos and infos/qvel: they travel as Minari per-step infos (one row per
    observation, as minari's own loader shows them) and come back as the same extras."""
    import minari
    from conftest import run_cli

    data = make_dataset(n=120, obs_dim=3, act_dim=1, episode_length=50, env_id="Pendulum-v1", terminal_at=(70,))
    rng = np.random.default_rng(1)
    extras = {"qpos": rng.normal(size=(120, 2)), "qvel": rng.normal(size=(120, 2)).astype(np.float32),
              "corrupted": rng.random(120) < 0.3}
    write_d4rl_hdf5(Dataset(**data.arrays(), extras=extras, metadata=data.metadata), tmp_path / "d.hdf5")
    dest = tmp_path / "minari" / "o2o" / "pendulum-qpos-v0"
    code, _, err = run_cli(["data", "convert", str(tmp_path / "d.hdf5"), str(dest), "--format", "minari"], capsys)
    assert code == 0, err
    episodes = list(minari.load_dataset("o2o/pendulum-qpos-v0").iterate_episodes())
    assert [len(e.rewards) for e in episodes] == [50, 21, 29, 20]
    first = episodes[1]  # steps 50..70, ended by the terminal at 70
    assert first.infos["qpos"].shape == (22, 2)  # T + 1 rows: the last repeats the one before
    np.testing.assert_array_equal(first.infos["qpos"][:21], extras["qpos"][50:71])
    np.testing.assert_array_equal(first.infos["qpos"][21], extras["qpos"][70])
    back = load_dataset(dest)
    assert_same_transitions(data, back)
    assert set(back.extras) == set(extras)
    for name, value in extras.items():
        np.testing.assert_array_equal(back.extras[name], value, err_msg=name)
        assert back.extras[name].dtype == value.dtype


def test_minari_writer_refuses_next_observations_it_would_drop(tmp_path):
    """A Minari episode stores T+1 observations: a next observation that is not the following step's (corrupted
    dynamics, say) has no place there, and is refused rather than lost."""
    from o2o.errors import DatasetError

    data = make_dataset(n=100, obs_dim=3, act_dim=1, episode_length=50, env_id=None)
    following = np.array(data.next_observations)
    following[49] += 1.0  # the last step of an episode: not the next episode's first observation, as it should be
    write_minari(Dataset(**{**data.arrays(), "next_observations": following}), tmp_path / "ok")
    following[20] += 1.0
    with pytest.raises(DatasetError, match=r"next_observations\[20\] differs from observations\[21\] within an"):
        write_minari(Dataset(**{**data.arrays(), "next_observations": following}), tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_minari_conversion_racing_another_process_reads_its_copy_and_never_replaces_it(tmp_path, monkeypatch):
    """Bench workers open one Minari dataset at once: each converts it, and the one that finishes second finds the
    cache already there. It must leave that copy alone (another worker may be reading it) and read it."""
    from o2o.data import io

    real_minari_dataset(tmp_path)
    data_dir = io.detect_format("o2o-test/pendulum/random-v0")[1]
    cache = io._minari_cache_dir(data_dir)
    convert = io._convert_minari

    def convert_while_another_process_finishes_first(directory):
        theirs = convert(directory)
        write_o2o(theirs, cache)
        (cache / "their-copy").write_text("")
        return theirs

    monkeypatch.setattr(io, "_convert_minari", convert_while_another_process_finishes_first)
    data = load_dataset("o2o-test/pendulum/random-v0")
    assert len(data) == 150 and isinstance(data.observations, np.memmap)
    assert (cache / "their-copy").exists()
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # our own copy discarded


def test_overwriting_an_o2o_dataset_keeps_the_old_one_until_the_new_one_is_in_place(tmp_path, monkeypatch):
    import os

    old, new = make_dataset(n=50, seed=0), make_dataset(n=60, seed=1)
    path = write_o2o(old, tmp_path / "ds")
    replace = os.replace

    def fail_to_move_the_new_copy_in(src, dst):
        if os.fspath(dst) == os.fspath(path) and not os.fspath(src).endswith("-old"):
            raise OSError(28, "No space left on device")
        replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_to_move_the_new_copy_in)
    with pytest.raises(OSError, match="No space left"):
        write_o2o(new, path, overwrite=True)
    monkeypatch.setattr(os, "replace", replace)
    assert_same_transitions(old, load_dataset(path))
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no copy left behind
    write_o2o(new, path, overwrite=True)
    assert_same_transitions(new, load_dataset(path))
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_d4rl_hdf5_writer_takes_numpy_values_in_metadata(tmp_path):
    from pathlib import Path

    data = make_dataset(n=20)
    metadata = {"max_episode_steps": np.int64(1000), "ref_max_score": np.float32(3.5), "origin": Path("/data/x")}
    back = load_dataset(write_d4rl_hdf5(Dataset(**data.arrays(), metadata=metadata), tmp_path / "d.hdf5"))
    assert (back.metadata["max_episode_steps"], back.metadata["ref_max_score"], back.metadata["origin"]) == (
        1000, 3.5, "/data/x")
