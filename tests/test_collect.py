"""`o2o collect`: D4RL-protocol datasets from real environments, reproducible to the byte."""

import json

import numpy as np
import pytest
from conftest import run_cli

from o2o.collect.levels import collect
from o2o.data import content_hash, load_dataset
from o2o.errors import O2OError


def test_same_seed_gives_the_same_dataset_and_another_seed_does_not():
    a, b = collect("Hopper-v5", "random", transitions=3000, seed=7), collect("Hopper-v5", "random", transitions=3000, seed=7)
    assert content_hash(a) == content_hash(b)
    assert content_hash(collect("Hopper-v5", "random", transitions=3000, seed=8)) != content_hash(a)


def test_random_hopper_data_has_terminals_timeouts_and_exact_size():
    data = collect("Hopper-v5", "random", transitions=5000, seed=0, num_envs=8)
    assert len(data) == 5000
    assert data.terminals.sum() > 50  # a random hopper falls within tens of steps
    assert not (data.terminals & data.timeouts).any()
    # within an episode, the next observation is the following step's observation
    inside = np.setdiff1d(np.arange(len(data) - 1), data.episode_ends)
    np.testing.assert_array_equal(data.next_observations[inside], data.observations[inside + 1])
    assert data.metadata["env_id"] == "Hopper-v5" and data.metadata["level"] == "random"
    assert data.metadata["ref_min_score"] == -20.272305


def test_timeouts_mark_the_env_time_limit():
    data = collect("Pendulum-v1", "random", transitions=1000, seed=0, num_envs=2)
    assert (data.episode_lengths[:-1] <= 200).all() and data.timeouts.sum() == 6  # 2 full episodes per env + 2 cuts
    assert not data.terminals.any()


def test_reset_seeds_never_repeat_and_keep_the_values_collected_datasets_used():
    from o2o.collect.rollout import _reset_seed

    assert _reset_seed(3, 2, 5) == 3 * 1_000_003 + 2 * 10_007 + 5  # the datasets collected so far keep their bytes
    seeds = [_reset_seed(0, env, episode) for env in range(3) for episode in range(10_020)]
    assert len(set(seeds)) == len(seeds)  # env 0's 10,007th episode no longer starts where env 1's first did
    assert _reset_seed(0, 100, 0) != _reset_seed(1, 0, 697)  # nor env 100 where the next seed's env 0 does


def test_collect_command_writes_o2o_and_minari_that_their_readers_load(tmp_path, capsys):
    import minari

    code, out, err = run_cli(["collect", "Pendulum-v1", "--level", "random", "--transitions", "600", "--out",
                              str(tmp_path / "p"), "--json"], capsys)
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["transitions"] == 600
    code, out, err = run_cli(["data", "info", str(tmp_path / "p"), "--json"], capsys)
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["env"] == "Pendulum-v1"
    minari_dir = tmp_path / "minari" / "o2o" / "pendulum-random-v0"
    code, out, err = run_cli(["collect", "Pendulum-v1", "--level", "random", "--transitions", "600", "--out",
                              str(minari_dir), "--format", "minari"], capsys)
    assert code == 0, err
    assert minari.load_dataset("o2o/pendulum-random-v0").total_steps == 600


def test_levels_without_a_shipped_policy_say_so(capsys):
    code, _, err = run_cli(["collect", "Swimmer-v5", "--level", "expert", "--transitions", "10"], capsys)
    assert code == 1 and "no shipped expert policy for Swimmer-v5 yet" in err
    code, _, err = run_cli(["collect", "Hopper-v5", "--level", "superb"], capsys)
    assert code == 1 and "unknown level 'superb'" in err


def test_levels_order_random_medium_expert_with_the_shipped_pendulum_zoo():
    from o2o.envs import normalized_score

    means = {level: collect("Pendulum-v1", level, transitions=10_000, seed=1).metadata["measured_return_mean"]
             for level in ("random", "medium", "expert")}
    assert means["random"] < means["medium"] < means["expert"], means
    scores = {level: float(normalized_score("Pendulum-v1", value)) for level, value in means.items()}
    # D4RL's medium is about a third of the expert; Pendulum's returns swing with the start state, so the band is wide:
    # between 20% and 70% of the expert's normalized score
    assert 0.2 * scores["expert"] <= scores["medium"] <= 0.7 * scores["expert"], scores


@pytest.mark.parametrize("env_id", ["Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", "Ant-v5"])
def test_shipped_mujoco_zoo_orders_random_medium_expert(env_id):
    from o2o.envs import normalized_score

    # 8 envs x 1000 steps: at least 8 complete episodes per level (episodes last at most 1000 steps)
    scores = {level: float(normalized_score(env_id, collect(env_id, level, transitions=8000, seed=2, num_envs=8)
                                            .metadata["measured_return_mean"]))
              for level in ("random", "medium", "expert")}
    assert scores["random"] < scores["medium"] < scores["expert"], scores
    # the cards say medium is 26-37% of the expert's normalized score (D4RL: about a third)
    assert 0.15 * scores["expert"] <= scores["medium"] <= 0.6 * scores["expert"], scores


def test_measured_return_counts_only_complete_episodes():
    data = collect("Pendulum-v1", "medium", transitions=1000, seed=0, num_envs=2)  # per env: 2 episodes and a cut one
    complete = data.episode_returns[data.episode_lengths == 200]
    assert data.metadata["measured_episodes"] == 4 == complete.size
    assert data.metadata["measured_return_mean"] == pytest.approx(complete.mean())
    assert data.metadata["max_episode_steps"] == 200
    # medium-expert records the limit too: its episodes that ran to it count (Pendulum's always do), 4 from each policy
    mixed = collect("Pendulum-v1", "medium-expert", transitions=1000, seed=0, num_envs=2)
    assert mixed.metadata["max_episode_steps"] == 200 and mixed.metadata["measured_episodes"] == 8


def test_quickstart_collects_its_dataset_with_the_shipped_medium_policy(tmp_path):
    from o2o import quickstart
    from o2o.data import load_dataset

    data = load_dataset(quickstart.make_dataset(tmp_path))
    assert len(data) == 20_000 and data.env_id == "Pendulum-v1"
    assert data.metadata["level"] == data.metadata["policy"]["level"] == "medium"
    assert content_hash(load_dataset(quickstart.make_dataset(tmp_path))) == content_hash(data)


@pytest.fixture(scope="session")
def shipped_replay_cache(tmp_path_factory):
    """One cache for the session: regenerating the shipped Pendulum medium-replay (and checking its hash) takes ~30 s."""
    return tmp_path_factory.mktemp("zoo-cache")


def test_every_level_is_readable_by_data_info(tmp_path, capsys, monkeypatch, shipped_replay_cache):
    monkeypatch.setenv("O2O_CACHE_DIR", str(shipped_replay_cache))
    for level in ("random", "medium", "medium-replay", "expert", "medium-expert"):
        code, out, err = run_cli(["collect", "Pendulum-v1", "--level", level, "--transitions", "400", "--out",
                                  str(tmp_path / level), "--json"], capsys)
        assert code == 0, (level, err)
        code, out, err = run_cli(["data", "info", str(tmp_path / level), "--json"], capsys)
        info = json.loads(out.strip().splitlines()[-1])
        assert code == 0 and info["env"] == "Pendulum-v1", (level, err)
        expected = {"medium-expert": 800, "medium-replay": None}.get(level, 400)
        assert expected is None or info["transitions"] == expected, (level, info["transitions"])


def test_zoo_cards_record_what_retrains_them():
    from o2o.collect.zoo import zoo_root

    for level in ("medium", "expert"):
        card = json.loads((zoo_root() / "Pendulum-v1" / f"{level}.json").read_text())
        for key in ("env_id", "training_steps", "seed", "return_mean", "return_std", "return_episodes", "command"):
            assert key in card, (level, key)
        assert card["return_episodes"] == 100 and card["command"].startswith("o2o zoo train Pendulum-v1")
    for card_file in zoo_root().glob("*/medium-replay.json"):  # what reruns the SAC run, without a local path
        settings = json.loads(card_file.read_text())["run_config"]["settings"]
        assert settings["steps"] > 0 and "out" not in settings, card_file


def test_zoo_train_export_and_collect_round_trip(tmp_path):
    from o2o.collect import zoo

    zoo.train("Pendulum-v1", 600, out=str(tmp_path / "run"), eval_every=200, progress=False, warmup_steps=100,
              agent_overrides={"hidden_dims": "32,32"})
    cards = zoo.export(tmp_path / "run", tmp_path / "zoo")
    assert {cards[level]["training_steps"] for level in ("medium", "expert")} <= {200, 400, 600}
    assert cards["expert"]["command"].endswith("o2o zoo export RUN_DIR --upto 600")
    assert "--eval-every 200 --set hidden_dims=32,32 && o2o zoo export" in cards["medium"]["command"]  # as trained
    early = zoo.export(tmp_path / "run", tmp_path / "zoo-early", upto=450)  # the run may go on; the choice stays put
    assert {early[level]["training_steps"] for level in ("medium", "expert")} <= {200, 400}
    assert early["expert"]["command"].endswith("--upto 400")
    assert not (tmp_path / "zoo" / "medium-replay").exists()  # the card, not the buffer
    assert "out" not in cards["medium-replay"]["run_config"]["settings"]
    replay = zoo.load_medium_replay("Pendulum-v1", tmp_path / "zoo")  # the copy export cached
    assert len(replay) == cards["medium"]["training_steps"] == cards["medium-replay"]["transitions"]
    assert content_hash(replay) == cards["medium-replay"]["content_hash"]
    inside = np.setdiff1d(np.arange(len(replay) - 1), replay.episode_ends)
    np.testing.assert_array_equal(replay.next_observations[inside], replay.observations[inside + 1])
    assert replay.timeouts.sum() == len(replay) // 200  # 200-step Pendulum episodes
    data = collect("Pendulum-v1", "expert", transitions=400, seed=0, zoo=tmp_path / "zoo")
    assert len(data) == 400 and data.metadata["policy"]["level"] == "expert"


def test_medium_replay_is_regenerated_exactly_or_not_at_all(tmp_path, monkeypatch):
    from o2o.collect import zoo

    zoo.train("Pendulum-v1", 400, out=str(tmp_path / "run"), eval_every=200, progress=False, warmup_steps=100,
              agent_overrides={"hidden_dims": "32,32"})
    card = zoo.export(tmp_path / "run", tmp_path / "zoo")["medium-replay"]
    monkeypatch.setenv("O2O_CACHE_DIR", str(tmp_path / "fresh-cache"))  # nothing cached: a new machine
    regenerated = zoo.load_medium_replay("Pendulum-v1", tmp_path / "zoo", progress=False)
    assert content_hash(regenerated) == card["content_hash"] and len(regenerated) == card["transitions"]

    card_file = tmp_path / "zoo" / "medium-replay.json"
    card_file.write_text(json.dumps({**card, "content_hash": "sha256:" + "0" * 64}))
    with pytest.raises(O2OError, match="content hash .* is not the card's .* kept, unverified, at"):
        zoo.load_medium_replay("Pendulum-v1", tmp_path / "zoo", progress=False)
    kept = list((tmp_path / "fresh-cache" / "zoo" / "Pendulum-v1").glob("*-unverified"))
    assert len(kept) == 1 and content_hash(load_dataset(kept[0])) == card["content_hash"]  # the minutes are not lost


def test_making_halfcheetah_prints_no_mujoco_deprecation_notice(capfd, tmp_path, monkeypatch):
    from o2o.envs import make_env

    monkeypatch.chdir(tmp_path)  # MuJoCo's default handler would also write MUJOCO_LOG.TXT here
    make_env("HalfCheetah-v5").close()
    out, err = capfd.readouterr()
    assert "settotalmass" not in out + err and not (tmp_path / "MUJOCO_LOG.TXT").exists()
