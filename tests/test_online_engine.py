"""The online loop and fine-tuning: resume equivalence, WSRL's buffer provenance, clear errors."""

import json
import pickle
import shutil

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_cli

from o2o import results
from o2o.collect.scripted import collect_pendulum
from o2o.data import load_dataset, replay, write_o2o
from o2o.train import offline, online, phases, runs


SMALL = {"hidden_dims": "32,32", "batch_size": "64"}


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory):
    return str(write_o2o(collect_pendulum(episodes=4), tmp_path_factory.mktemp("data") / "pendulum"))


@pytest.fixture(scope="module")
def calql_run(pendulum, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "calql"
    offline.train(offline.OfflineSettings(algo="calql", dataset=pendulum, steps=200, seeds=2, eval_every=200,
                                          eval_episodes=2, chunk=100, out=str(out), agent_overrides=dict(SMALL)),
                  progress=False)
    return out


def sac_settings(out, **kw):
    given = dict(env="Pendulum-v1", steps=800, seeds=1, warmup_steps=200, eval_every=400, eval_episodes=2, log_every=200,
                 out=str(out), agent_overrides=dict(SMALL))
    return online.settings_for("sac", **{**given, **kw})


def assert_killed_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path, kill_after_checkpoint, train,
                                                                  kill_at: int):
    """`train(out)` runs once whole and once killed right after its checkpoint at env step `kill_at`, then resumed."""
    train(tmp_path / "full")
    kill_after_checkpoint(lambda: train(tmp_path / "killed"), kill_at)
    online.resume(tmp_path / "killed", progress=False)
    assert_runs_end_alike(tmp_path / "full", tmp_path / "killed")


def assert_runs_end_alike(full, other):
    """Two online runs wrote the same metrics (but wall time) and the same last checkpoint (envs by their state)."""
    def rows(run_dir):  # wall time is the one thing allowed to differ
        return [{k: v for k, v in json.loads(line).items() if k != "wall_seconds"}
                for line in (run_dir / "metrics.jsonl").read_text().splitlines()]

    assert rows(other) == rows(full)
    a = runs.load_checkpoint(full, {})
    b = runs.load_checkpoint(other, {})
    assert a.pop("wall_seconds") > 0 and b.pop("wall_seconds") > 0
    # a pickled MjData holds more than the simulation (buffers, timers): the envs are compared by their state
    envs_a, envs_b = a["episodes_in_progress"].pop("envs"), b["episodes_in_progress"].pop("envs")
    assert [_physics(x) for x in envs_a.values()] == [_physics(x) for x in envs_b.values()]
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _physics(snapshot) -> tuple:
    kind, elapsed, episode = pickle.loads(np.asarray(snapshot, np.uint8).tobytes())
    arrays = (episode,) if isinstance(episode, np.ndarray) else (episode.qpos, episode.qvel, episode.act, [episode.time])
    return kind, elapsed, [np.asarray(x).tolist() for x in arrays]


@pytest.mark.parametrize("env", ["Pendulum-v1", "Hopper-v5"])
def test_online_run_killed_mid_episode_resumes_exactly(env, tmp_path, kill_after_checkpoint):
    # checkpoints at 300 and 600: mid-episode for Pendulum's 200-step episodes and, almost surely, for Hopper's
    def train(out):
        online.train(sac_settings(out, env=env, steps=600, eval_every=300, eval_episodes=1), progress=False)

    assert_killed_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path, kill_after_checkpoint, train, kill_at=300)
    saved = runs.load_checkpoint(tmp_path / "killed", {})["episodes_in_progress"]
    assert set(saved["envs"]) == {"0"} and saved["observations"].shape[0] == saved["actions"].shape[0] == 1


def test_an_online_run_killed_after_its_last_checkpoint_resumes_to_its_last_scores(tmp_path, kill_after_checkpoint):
    """Killed between its last checkpoint and its summary, a run has no step left: its summary still reports the last
    evaluation (not null scores)."""
    summaries = {}

    def train(out):
        summaries[out.name] = online.train(sac_settings(out, steps=40, warmup_steps=10, eval_every=20, log_every=20,
                                                        eval_episodes=1), progress=False)

    assert_killed_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path, kill_after_checkpoint, train, kill_at=40)
    resumed = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert resumed["return_per_seed"] == summaries["full"]["return_per_seed"] and resumed["return_mean"] is not None


def test_calql_finetuning_killed_mid_episode_writes_the_same_monte_carlo_bounds(calql_run, tmp_path,
                                                                                 kill_after_checkpoint):
    def train(out):
        phases.finetune(calql_run, 500, eval_every=250, eval_episodes=1, out=str(out), progress=False)

    assert_killed_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path, kill_after_checkpoint, train, kill_at=250)
    bounds = np.asarray(runs.load_checkpoint(tmp_path / "killed", {})["buffers"]["data"]["mc_returns"])
    assert np.isfinite(bounds[:, :400]).all()  # both seeds' first two 200-step episodes, one cut by the kill


def test_a_buffer_refilled_into_a_larger_capacity_keeps_its_transitions_in_time_order():
    def transitions(buffer, rewards):
        for r in rewards:
            buffer = replay.add(buffer, {"observations": jnp.full(2, r), "actions": jnp.zeros(1),
                                         "rewards": jnp.float32(r), "next_observations": jnp.full(2, r + 1),
                                         "dones": jnp.float32(0)})
        return buffer

    def saved(buffer):  # as a checkpoint holds it
        return jax.tree.map(np.asarray, flax.serialization.to_state_dict(replay.filled(buffer)))

    full = transitions(replay.create(4, 2, 1), [1, 2, 3, 4])  # a finished run: its ring full, the next insert at 0
    grown = transitions(replay.refill(replay.create(8, 2, 1), saved(full)), [5])
    assert np.asarray(grown.data["rewards"]).tolist() == [1, 2, 3, 4, 5, 0, 0, 0] and int(grown.size) == 5
    wrapped = transitions(replay.create(4, 2, 1), [1, 2, 3, 4, 5, 6])  # [5, 6, 3, 4]: the oldest at slot 2
    grown = transitions(replay.refill(replay.create(8, 2, 1), saved(wrapped)), [7])
    assert np.asarray(grown.data["rewards"]).tolist() == [3, 4, 5, 6, 7, 0, 0, 0] and int(grown.size) == 5
    same = replay.refill(replay.create(4, 2, 1), saved(wrapped))  # a resume: the ring as it was
    assert np.asarray(same.data["rewards"]).tolist() == [5, 6, 3, 4] and int(same.insert_index) == 2


def test_an_extended_finetuning_run_continues_its_buffer_as_a_longer_run_would(calql_run, tmp_path):
    """A finished 300-step Cal-QL fine-tuning extended to 500 steps ends exactly as a 500-step run: its buffer keeps the
    first transitions, counts no empty slot as valid and has the Monte-Carlo returns of each episode in its slots."""
    from o2o.data.dataset import episode_returns_to_go

    def finetune(out, steps):
        phases.finetune(calql_run, steps, eval_every=300, eval_episodes=0, out=str(out), progress=False)

    finetune(tmp_path / "full", 500)
    finetune(tmp_path / "extended", 300)
    online.resume(tmp_path / "extended", steps=500, progress=False)
    assert_runs_end_alike(tmp_path / "full", tmp_path / "extended")

    buffers = runs.load_checkpoint(tmp_path / "extended", {})["buffers"]
    data = {k: np.asarray(v) for k, v in buffers["data"].items()}
    assert np.asarray(buffers["size"]).tolist() == [500, 500]
    assert (np.abs(data["observations"]).sum(axis=-1) > 0).all()  # no empty slot among the valid ones
    discount = json.loads((tmp_path / "extended" / "config.json").read_text())["agent_config"]["discount"]
    for start in (0, 200):  # the two finished 200-step Pendulum episodes, the second across the extension
        expected = [episode_returns_to_go(rewards, discount) for rewards in data["rewards"][:, start:start + 200]]
        np.testing.assert_allclose(data["mc_returns"][:, start:start + 200], expected, rtol=1e-5)


def test_an_online_ctrl_c_names_a_resume_only_once_a_checkpoint_exists(tmp_path, capsys, monkeypatch):
    make, calls = online.make_env_step, []

    def interrupted(*args, **kwargs):
        step = make(*args, **kwargs)

        def call(*inputs):
            calls.append(1)
            if len(calls) in (5, 28):  # env step 5 of the first try, env step 23 of the second
                raise KeyboardInterrupt
            return step(*inputs)
        return call

    monkeypatch.setattr(online, "make_env_step", interrupted)
    out = tmp_path / "sac"
    args = ["online", "sac", "--env", "Pendulum-v1", "--steps", "40", "--eval-every", "20", "--eval-episodes", "0",
            "--warmup-steps", "10", "--out", str(out), "--quiet", "--set", "hidden_dims=32,32", "--set",
            "batch_size=64"]
    code, _, err = run_cli(args, capsys)
    assert code == 130 and err.strip() == (f"error: {out}: interrupted at env step 4 of 40; no checkpoint was written "
                                           f"yet: delete {out} and start the run again"), err
    shutil.rmtree(out)
    code, _, err = run_cli(args, capsys)
    assert code == 130 and err.strip().endswith("interrupted at env step 22 of 40; its last checkpoint is at step 20; "
                                                f"resume with `o2o online --resume {out}`"), err
    code, _, err = run_cli(["online", "--resume", str(out), "--quiet"], capsys)
    assert code == 0, err


def test_eval_command_reads_online_runs(tmp_path, capsys):
    trained = online.train(sac_settings(tmp_path / "run", steps=400, eval_every=200), progress=False)
    # the summary says where the wall time went (the online benchmark's breakdown reads it): the parts it names leave
    # only the loop's own Python, which costs microseconds per step, unnamed
    named = sum(trained[k] for k in ("env_seconds", "update_seconds", "warmup_call_seconds", "compile_seconds",
                                     "eval_seconds", "checkpoint_seconds"))
    assert 0.97 * trained["wall_seconds"] < named <= trained["wall_seconds"], trained
    code, out, err = run_cli(["eval", str(tmp_path / "run"), "--episodes", "2", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["steps"] == 400 and summary["env"] == "Pendulum-v1" and len(summary["return_per_seed"]) == 1
    code, _, err = run_cli(["eval", str(tmp_path / "run"), "--best"], capsys)
    assert code == 1 and "keeps only its latest checkpoint" in err


def test_wsrl_keeps_no_offline_transition(calql_run, pendulum, tmp_path):
    summary = phases.finetune(calql_run, 600, algo="wsrl", warmup_steps=200, eval_every=300, eval_episodes=2,
                              out=str(tmp_path / "wsrl"), progress=False)
    config = json.loads((tmp_path / "wsrl" / "config.json").read_text())
    assert config["settings"]["offline_sampling"] == "none" and config["settings"]["warmup_policy"] == "pretrained"
    # one actor step per env step, after its 4 critic steps (WSRL's update_high_utd)
    assert config["settings"]["utd"] == config["agent_config"]["actor_every"] == 4
    checkpoint = runs.load_checkpoint(tmp_path / "wsrl", {})
    assert set(np.asarray(checkpoint["states"]["step"]).tolist()) == {400 * 4}  # updates after the warm-up, from 0
    buffers = checkpoint["buffers"]
    assert np.asarray(buffers["size"]).tolist() == [600, 600]  # exactly the online steps of each seed
    # no stored (observation, action) pair is an offline one (a reset observation alone may coincide)
    stored = np.concatenate([np.asarray(buffers["data"]["observations"]).reshape(-1, 3),
                             np.asarray(buffers["data"]["actions"]).reshape(-1, 1)], axis=1)
    data = load_dataset(pendulum)
    offline_pairs = np.concatenate([np.asarray(data.observations), np.asarray(data.actions) / 2.0], axis=1)
    matches = (np.abs(stored[:, None, :] - offline_pairs[None, :, :]).max(axis=-1) < 1e-6).any(axis=1)
    assert not matches.any(), "an offline transition is in WSRL's replay buffer"
    assert summary["start_score"] is not None and len(summary["online_curve"]) == 3


def test_finetune_carries_the_offline_agent_over(calql_run, tmp_path):
    """At the switch (step 0) the fine-tuning run evaluates exactly the offline checkpoint's policy."""
    phases.finetune(calql_run, 200, eval_every=200, eval_episodes=2, out=str(tmp_path / "ft"), progress=False)
    offline_states = runs.load_checkpoint(calql_run, {})["states"]
    first_online = runs.load_checkpoint(tmp_path / "ft", {})["states"]
    assert jax.tree.structure(offline_states["actor"]) == jax.tree.structure(first_online["actor"])
    curve = json.loads((tmp_path / "ft" / "summary.json").read_text())["online_curve"]
    assert curve[0][0] == 0


@pytest.mark.parametrize("algo, restarted", [("sung-cql", ("actor", "critic", "vae")), ("sung", ("vae",))])
def test_sung_finetuning_starts_as_the_authors_loops_load_their_agents(algo, restarted, pendulum, tmp_path):
    """SUNG's main.py loops restart what their `load` does not restore: on CQL every Adam state and alpha (1), on
    TD3+BC the VAE's Adam state; both copy the targets from the networks. restart_as_authors=false carries all on."""
    from o2o.train import handoff

    run = tmp_path / algo
    offline.train(offline.OfflineSettings(algo=algo, dataset=pendulum, steps=30, eval_every=30, eval_episodes=0,
                                          out=str(run), agent_overrides={**SMALL, "vae_hidden_dims": "16,16"}),
                  progress=False)
    trained = runs.load_checkpoint(run, {})["states"]
    counts = lambda tree: {int(c) for x in jax.tree.leaves(tree) if x.dtype == np.int32 for c in np.ravel(x)}  # noqa
    same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))  # noqa

    def start(**overrides):
        return handoff.start(run, algo, 1, 0, overrides, online_updates=100, utd=1).states

    authors, carried_on = start(), start(restart_as_authors="false")
    for name in ("actor", "critic", "vae"):
        for states in (authors, carried_on):  # the networks themselves always carry over
            assert same(getattr(states, name).params, trained[name]["params"]), name
        steps = counts(trained[name]["opt_state"])  # Adam's step counts: 30 updates (TD3's actor: 15)
        assert counts(getattr(carried_on, name).opt_state) == steps and 0 not in steps
        assert counts(getattr(authors, name).opt_state) == ({0} if name in restarted else steps), name
    targets = [("target_critic_params", "critic")] + [("target_actor_params", "actor")] * (algo == "sung")
    for target, network in targets:
        assert same(getattr(authors, target), getattr(authors, network).params)
        assert not same(getattr(carried_on, target), getattr(carried_on, network).params)
    if algo == "sung-cql":
        assert float(authors.log_temperature.params["log_temperature"][0]) == 0.0  # alpha back at 1
        assert float(carried_on.log_temperature.params["log_temperature"][0]) != 0.0


def test_calql_online_buffer_gets_monte_carlo_returns_of_finished_episodes(calql_run, tmp_path):
    from o2o.data.dataset import episode_returns_to_go

    phases.finetune(calql_run, 500, eval_every=500, eval_episodes=0, out=str(tmp_path / "ft"), progress=False)
    data = runs.load_checkpoint(tmp_path / "ft", {})["buffers"]["data"]
    rewards, mc = np.asarray(data["rewards"]), np.asarray(data["mc_returns"])
    discount = json.loads((tmp_path / "ft" / "config.json").read_text())["agent_config"]["discount"]
    for seed in range(2):
        for start in (0, 200):  # two finished 200-step Pendulum episodes
            expected = episode_returns_to_go(rewards[seed, start:start + 200], discount)
            np.testing.assert_allclose(mc[seed, start:start + 200], expected, rtol=1e-5)
        assert np.isneginf(mc[seed, 400:]).all()  # the episode still running has no bound yet


def test_finetune_errors_are_one_clear_line(calql_run, pendulum, tmp_path, capsys):
    code, _, err = run_cli(["finetune", str(tmp_path), "--online-steps", "10"], capsys)
    assert code == 1 and "not a run directory (no config.json)" in err
    iql_run = tmp_path / "iql"
    offline.train(offline.OfflineSettings(algo="iql", dataset=pendulum, steps=100, eval_every=100, eval_episodes=0,
                                          out=str(iql_run), agent_overrides=dict(SMALL)), progress=False)
    code, _, err = run_cli(["finetune", str(iql_run), "--algo", "sac", "--online-steps", "10"], capsys)
    assert code == 1 and "iql's policy does not fit sac's policy network; fine-tune it with --algo iql" in err
    code, _, err = run_cli(["online", "rlpd", "--env", "Hopper-v5", "--dataset", pendulum, "--steps", "10"], capsys)
    assert code == 1 and "recorded on Pendulum-v1 but --env Hopper-v5" in err
    code, _, err = run_cli(["online", "rlpd", "--env", "Pendulum-v1", "--steps", "10"], capsys)
    assert code == 1 and "needs offline data: pass --dataset" in err


def test_qc_finetuning_killed_mid_chunk_resumes_exactly(pendulum, tmp_path, kill_after_checkpoint):
    """Q-chunking acts on chunks of 5 actions: a run killed with a chunk half executed resumes with its rest."""
    run = tmp_path / "qc"
    offline.train(offline.OfflineSettings(algo="qc-fql", dataset=pendulum, steps=50, eval_every=50, eval_episodes=1,
                                          chunk=50, out=str(run), agent_overrides={**SMALL, "flow_steps": "2"}),
                  progress=False)

    def train(out):
        phases.finetune(run, 306, eval_every=153, eval_episodes=1, out=str(out), progress=False, warmup_steps=100)

    assert_killed_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path, kill_after_checkpoint, train, kill_at=153)
    acting = runs.load_checkpoint(tmp_path / "killed", {})["episodes_in_progress"]["acting"]
    assert int(acting["episode_steps"][0]) % 5 != 0 and np.asarray(acting["memory"]).shape == (1, 5, 1)


def sera_finetune(run, out, **given):
    phases.finetune(run, 300, out=str(out), eval_every=300, eval_episodes=1, progress=False, **given)
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_finetuning_with_sera_reads_the_bonus_and_a_zero_scale_changes_nothing(calql_run, tmp_path, capsys):
    plain = sera_finetune(calql_run, tmp_path / "plain")
    zero = sera_finetune(calql_run, tmp_path / "zero", reward_bonus="sera", bonus_scale=0.0)
    code, _, err = run_cli(["finetune", str(calql_run), "--online-steps", "300", "--eval-every", "300",
                            "--eval-episodes", "1", "--out", str(tmp_path / "sera"), "--with", "sera",
                            "--bonus-neighbours", "8", "--quiet"], capsys)
    assert code == 0, err
    with_bonus = [json.loads(line) for line in (tmp_path / "sera" / "metrics.jsonl").read_text().splitlines()]
    settings = json.loads((tmp_path / "sera" / "config.json").read_text())["settings"]
    assert settings["reward_bonus"] == "sera" and settings["bonus_neighbours"] == 8

    def losses(rows):
        return [row["critic_loss"] for row in rows if "critic_loss" in row]

    assert losses(zero) == losses(plain) and losses(zero)
    assert all(row["sera_bonus"] == 0.0 for row in zero if "sera_bonus" in row)
    bonuses = [row["sera_bonus"] for row in with_bonus if "sera_bonus" in row]
    assert bonuses and all(-1.0 <= b <= 1.0 and b != 0.0 for b in bonuses)
    assert losses(with_bonus) != losses(plain)
    conn = results.connect(tmp_path / "results.sqlite")  # results and the report name the method with its bonus
    results.ingest_run(conn, calql_run, tmp_path / "sera")
    assert {row["online_algo"] for row in conn.execute("SELECT online_algo FROM runs")} == {"calql+sera"}


def test_an_online_run_with_offline_data_standardizes_states_by_that_data(pendulum):
    """TD3+BC standardizes states (normalize_observations, its default): from scratch with --dataset, by the data's
    statistics, as offline; without data it has none to take (identity)."""
    observations = np.asarray(load_dataset(pendulum).observations, np.float64)
    with_data = online.prepare(online.settings_for("td3bc", env="Pendulum-v1", offline_dataset=pendulum, steps=10,
                                                   agent_overrides={"hidden_dims": "8,8"}))
    normalizer = jax.tree.map(lambda x: np.asarray(x)[0], with_data.states.normalizer)
    np.testing.assert_allclose(normalizer.mean, observations.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(normalizer.std, observations.std(0) + 1e-3, rtol=1e-5)
    alone = online.prepare(online.settings_for("td3bc", env="Pendulum-v1", steps=10, offline_sampling="none",
                                               agent_overrides={"hidden_dims": "8,8"}))
    np.testing.assert_array_equal(np.asarray(alone.states.normalizer.mean)[0], np.zeros(3))
