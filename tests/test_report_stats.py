"""The report's statistics and final-score protocols on hand-computed cases."""

import gymnasium as gym
import numpy as np
import pytest

from o2o.report import stats, tables


def test_aggregates_on_a_known_array():
    # 8 runs on one task: the IQM drops the lowest and highest two (0, 10 and 60, 1000) and averages 20..50.
    scores = {"a": np.array([0.0, 10, 20, 30, 40, 50, 60, 1000]).reshape(-1, 1)}
    a = stats.aggregates(scores, reps=500)["a"]
    assert a["iqm"] == pytest.approx(35.0)
    assert a["mean"] == pytest.approx(151.25)
    assert a["median"] == pytest.approx(151.25)  # rliable: the median over tasks of per-task means (one task here)
    # optimality gap against 100: mean of max(0, 100 - x) = (100 + 90 + 80 + 70 + 60 + 50 + 40 + 0) / 8
    assert a["optimality_gap"] == pytest.approx(61.25)
    for name in stats.aggregate_functions():
        low, high = a[f"{name}_ci"]
        assert low <= a[name] <= high
    three_tasks = {"a": np.array([[10.0, 50.0, 90.0], [20.0, 60.0, 100.0]])}  # task means 15, 55, 95
    assert stats.aggregates(three_tasks, reps=200)["a"]["median"] == pytest.approx(55.0)


def test_iqm_interval_contains_the_iqm_and_is_reproducible():
    values = np.array([12.0, 40.0, 41.0, 45.0, 47.0, 90.0])
    iqm, ci = stats.iqm_with_ci(values, reps=1000)
    assert iqm == pytest.approx(np.mean([40.0, 41.0, 45.0, 47.0]))
    assert ci[0] < iqm < ci[1]
    assert stats.iqm_with_ci(values, reps=1000) == (iqm, ci)


def test_probability_of_improvement_of_a_dominating_method_is_one():
    scores = {"good": np.array([[10.0, 50.0], [11.0, 51.0], [12.0, 52.0]]),
              "bad": np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 7.0]]),
              "same": np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 7.0]])}
    result = stats.probability_of_improvement(scores, reps=500)
    assert result[("good", "bad")][0] == pytest.approx(1.0)
    assert result[("bad", "good")][0] == pytest.approx(0.0)
    assert result[("bad", "same")][0] == pytest.approx(0.5)  # ties count half
    assert result[("good", "bad")][1] == [pytest.approx(1.0), pytest.approx(1.0)]


def test_performance_profile_counts_runs_above_each_threshold():
    scores = {"a": np.array([[10.0], [20.0], [30.0], [40.0]])}
    profile, _ = stats.performance_profiles(scores, np.array([0.0, 15.0, 35.0, 50.0]), reps=200)
    np.testing.assert_allclose(profile["a"], [1.0, 0.75, 0.25, 0.0])


def test_rectangular_keeps_the_same_number_of_runs_per_task():
    matrix = stats.rectangular({"t1": [1.0, 2.0, 3.0], "t2": [4.0, 5.0]})
    np.testing.assert_array_equal(matrix, [[1.0, 4.0], [2.0, 5.0]])


def _evaluation(step, score):
    return {"step": step, "normalized_score": score, "success_rate": None, "return_mean": score * 10}


def test_final_score_protocols_and_o2o_quantities_of_a_run():
    run = {"algo": "iql", "online_algo": "iql", "dataset": "d", "env": "Hopper-v5", "level": "medium", "seed": 3,
           "status": "completed", "online_steps": 100, "cumulative_regret": None,
           "evaluations": {"offline": [_evaluation(s, v) for s, v in ((10, 10.0), (20, 20.0), (30, 30.0), (40, 40.0))],
                           "online": [_evaluation(s, v) for s, v in ((0, 50.0), (5, 30.0), (10, 45.0), (50, 60.0),
                                                                     (100, 70.0))]}}
    s = tables.run_scores(run)
    assert s.method == "iql\u2192iql" and s.final_phase == "online"
    assert s.last == 70.0 and s.last3 == pytest.approx((45.0 + 60.0 + 70.0) / 3) and s.best == 70.0
    assert s.offline_last == 40.0 and s.start == 50.0
    assert s.dip == pytest.approx(30.0 - 50.0)  # lowest score in the first 10% of online steps minus step 0
    offline_only = tables.run_scores({**run, "online_algo": None, "evaluations": {"offline": run["evaluations"]["offline"]}})
    assert (offline_only.last, offline_only.last3, offline_only.best) == (40.0, 30.0, 40.0)
    assert offline_only.start is None and offline_only.dip is None


def test_success_rate_is_the_score_where_no_normalized_score_exists():
    evaluation = {"step": 1, "normalized_score": None, "success_rate": 62.5, "return_mean": -40.0}
    run = {"algo": "qc", "online_algo": None, "dataset": "d", "seed": 0, "status": "completed",
           "evaluations": {"offline": [evaluation]}}
    scores = tables.run_scores(run)
    assert (scores.kind, scores.last) == ("success", 62.5)


def test_published_scores_cover_d4rl_locomotion_offline_only():
    value, source = tables.published("iql", None, "Hopper-v5", "medium")
    assert value == pytest.approx(67.53) and "different data" in source
    assert tables.published("td3bc", None, "Walker2d-v5", "medium-replay")[0] == pytest.approx(85.62)
    assert tables.published("iql", "iql", "Hopper-v5", "medium") == (None, None)  # fine-tuned: not the offline table
    assert tables.published("iql", None, "Pendulum-v1", "medium") == (None, None)
    assert tables.published("iql", None, "Hopper-v5", None) == (None, None)


class ReachEnv(gym.Env):
    """A one-dimensional task that reports success, as goal tasks do: pushing right (action > 0.5) reaches the goal
    and ends the episode with info["success"] = True; anything else runs into the 3-step time limit unsuccessful."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        reached = bool(action[0] > 0.5)
        return np.zeros(1, np.float32), float(reached), reached, False, {"success": reached}


def test_evaluation_records_success_at_each_episodes_last_step():
    from o2o.train.evaluation import evaluate, make_eval_envs, scores

    if "o2o-test/Reach-v0" not in gym.registry:
        gym.register("o2o-test/Reach-v0", entry_point=ReachEnv, max_episode_steps=3)
    envs = make_eval_envs("o2o-test/Reach-v0", 2, 2)
    actions = np.array([1.0, -1.0]).reshape(2, 1, 1)  # seed 0 pushes right, seed 1 left
    returns, successes = evaluate(lambda o, keys, t, r: np.broadcast_to(actions, o.shape[:2] + (1,)), envs, [0, 1], 2, round_seed=0)
    envs.close()
    np.testing.assert_array_equal(returns, [[1.0, 1.0], [0.0, 0.0]])
    np.testing.assert_array_equal(successes, [[1.0, 1.0], [0.0, 0.0]])
    record = scores((returns, successes), "o2o-test/Reach-v0", {})
    assert record["success_rate"] == 50.0 and record["success_rate_per_seed"] == [100.0, 0.0]
    assert record["episode_successes"] == [[1.0, 1.0], [0.0, 0.0]]
    assert record["normalized_score"] == 50.0  # a goal task without reference returns is scored by its success rate


def test_evaluation_in_waves_equals_evaluation_all_at_once(monkeypatch):
    """Capping the live envs runs the episodes in waves; every episode keeps its reset seed and its key, so nothing
    changes, not even for a policy that samples."""
    import jax

    from o2o.train.evaluation import evaluate, make_eval_envs

    def policy(observations, episode_keys, t, last_rewards):  # returns depend on the start state and on the episode's own draws
        noise = jax.vmap(jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, t), (1,))))(episode_keys)
        return np.tanh(observations[..., 2:3] + observations[..., :1] + 0.5 * np.asarray(noise))

    results = {}
    for cap in (100, 4, 3):  # all at once; waves of 2 episodes per seed; waves of 1 with the last one padded
        monkeypatch.setenv("O2O_EVAL_ENVS", str(cap))
        envs = make_eval_envs("Pendulum-v1", 2, 5)
        assert envs.num_envs == min(cap // 2, 5) * 2
        results[cap] = evaluate(policy, envs, [3, 7], 5, round_seed=11)[0]
        envs.close()
    assert len(np.unique(results[100])) == 10  # ten different episodes
    np.testing.assert_array_equal(results[4], results[100])
    np.testing.assert_array_equal(results[3], results[100])


def test_evaluation_of_an_env_without_success_has_no_success_rate():
    from o2o.train.evaluation import scores

    record = scores((np.array([[1.0, 3.0]]), np.full((1, 2), np.nan)), "Pendulum-v1", {})
    assert "success_rate" not in record and record["episode_returns"] == [[1.0, 3.0]]
