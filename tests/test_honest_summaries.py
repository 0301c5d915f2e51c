"""Summaries say what they measured: the behaviour score counts complete episodes only, a report never pools different
experiments or one seed twice as seeds, says when 'last 3' had fewer than three evaluations, refuses to be empty, and
the bench's progress line counts its failures."""

import functools
import json
import types
import warnings

import jax
import numpy as np
import pytest
from conftest import run_cli

from o2o import report, results
from o2o.bench import GridProgress
from o2o.collect import levels
from o2o.data import Dataset
from o2o.data.stats import describe
from o2o.envs import normalized_score
from o2o.errors import O2OError


def test_describe_scores_complete_episodes_and_counts_them():
    # a terminated episode (return 3), one that ran to the 4-step time limit (return 4) and one cut after 1 step (return
    # 9, a stub that would lift the mean from 3.5 to 5.33)
    rewards = np.array([1, 1, 1, 1, 1, 1, 1, 9], np.float32)
    terminals = np.array([0, 0, 1, 0, 0, 0, 0, 0], bool)
    timeouts = np.array([0, 0, 0, 0, 0, 0, 1, 1], bool)
    observations = np.zeros((8, 1), np.float32)
    data = Dataset(observations, observations, rewards, observations, terminals, timeouts, {})
    info = describe(data, reference_returns=(0.0, 7.0), time_limit=4)
    assert info["return_mean"] == pytest.approx(16 / 3)  # every episode, as stored
    assert info["return_episodes_complete"] == info["behaviour_episodes"] == 2
    assert info["behaviour_return_mean"] == pytest.approx(3.5) and info["tq"] == pytest.approx(0.5)
    # where no episode is complete (the data's time limit is not the env's), all are averaged, and the count says so
    none_complete = Dataset(observations, observations, rewards, observations, np.zeros(8, bool), timeouts, {})
    info = describe(none_complete, reference_returns=(0.0, 7.0), time_limit=100)
    assert info["return_episodes_complete"] == 0 and info["behaviour_episodes"] == 2
    assert info["tq"] == pytest.approx(info["return_mean"] / 7.0)


@pytest.fixture
def fast_random_level(monkeypatch):
    """`o2o collect --level random` with a uniform policy in 2 envs: the real rollout and bookkeeping in seconds (the
    SAC initialisation alone takes longer; which policy acts does not matter here)."""
    monkeypatch.setattr(levels, "random_policy", lambda env_id, seed: lambda observations, key: jax.random.uniform(
        key, (observations.shape[0], 1), minval=-1.0, maxval=1.0))
    monkeypatch.setattr(levels, "collect", functools.partial(levels.collect, num_envs=2))


def test_collect_and_data_info_score_the_complete_episodes_only(tmp_path, capsys, fast_random_level):
    # 2 envs x 250 steps of Pendulum (time limit 200): per env a complete episode and a 50-step stub cut by the end of
    # collection, whose return (about a quarter of a full one, rewards being negative) would flatter the policy
    code, out, err = run_cli(["collect", "Pendulum-v1", "--level", "random", "--transitions", "500", "--out",
                              str(tmp_path / "p"), "--json"], capsys)
    assert code == 0, err
    collected = json.loads(out.strip().splitlines()[-1])
    from o2o.data import load_dataset

    data = load_dataset(tmp_path / "p")
    np.testing.assert_array_equal(data.episode_lengths, [200, 50, 200, 50])
    complete_mean = data.episode_returns[[0, 2]].mean()
    assert data.episode_returns.mean() > complete_mean + 300  # the bug this guards against is not a rounding error
    expected = float(normalized_score("Pendulum-v1", complete_mean))
    assert collected["return_episodes_complete"] == 2 and collected["episodes"] == 4
    assert collected["behaviour_return_mean"] == pytest.approx(complete_mean)
    assert collected["normalized_return_mean"] == pytest.approx(expected)

    code, out, err = run_cli(["data", "info", str(tmp_path / "p"), "--json"], capsys)
    assert code == 0, err
    info = json.loads(out.strip().splitlines()[-1])
    assert info["return_episodes_complete"] == info["behaviour_episodes"] == 2
    assert info["normalized_return_mean"] == pytest.approx(expected)
    assert info["tq"] == pytest.approx(expected / 100)
    code, out, err = run_cli(["collect", "Pendulum-v1", "--level", "random", "--transitions", "500", "--out",
                              str(tmp_path / "q")], capsys)
    assert code == 0 and "over its 2 complete episodes" in out, out + err


def fake_run(path, scores, seed=0, steps=8000, algo="iql", dataset="datasets/pendulum-mixed", agent_config=None):
    """A finished offline run directory as `o2o train` writes it, evaluated at steps 100, 200, ... with `scores`."""
    path.mkdir(parents=True)
    config = {"kind": "offline", "env_id": "Pendulum-v1", "seeds": [seed], "versions": {"o2o": "test"},
              "settings": {"algo": algo, "dataset": dataset, "steps": steps},
              "agent_config": agent_config or {"expectile": 0.7, "hidden_dims": [32, 32]}}
    (path / "config.json").write_text(json.dumps(config))
    records = [{"step": 100 * (i + 1), "phase": "offline", "return_per_seed": [10 * s - 1000],
                "normalized_score_per_seed": [s]} for i, s in enumerate(scores)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (path / "summary.json").write_text(json.dumps({"wall_seconds": 1.0}))
    return str(path)


def build_quietly(sources, out, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = report.build(sources, out, reps=100, **kwargs)
    return summary, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("difference, labels", [
    ({"steps": 2000}, ["iql (2000 steps)", "iql (8000 steps)"]),
    ({"agent_config": {"expectile": 0.9, "hidden_dims": [32, 32]}}, ["iql (expectile=0.7)", "iql (expectile=0.9)"]),
])
def test_report_never_pools_different_experiments_as_seeds(tmp_path, difference, labels):
    runs = [fake_run(tmp_path / "a", [40, 50, 60]), fake_run(tmp_path / "b", [10, 20, 30], **difference)]
    summary, _ = build_quietly(runs, tmp_path / "report")
    assert sorted((e["method"], e["seeds"]) for e in summary["entries"]) == [(label, 1) for label in labels]
    assert set(summary["aggregate"]) == set(labels)
    assert f"| {labels[0]} | pendulum-mixed | 1 |" in (tmp_path / "report" / "report.md").read_text()


def test_a_config_that_changes_only_between_datasets_keeps_the_plain_name(tmp_path):
    # per-dataset presets: one config per dataset is one method, with two seeds on each
    runs = [fake_run(tmp_path / f"{d}{seed}", [50], seed=seed, dataset=f"datasets/{d}", agent_config={"expectile": e})
            for d, e in (("x", 0.7), ("y", 0.9)) for seed in (0, 1)]
    summary, _ = build_quietly(runs, tmp_path / "report")
    entries = sorted((e["method"], e["dataset"], e["seeds"]) for e in summary["entries"])
    assert entries == [("iql", "x", 2), ("iql", "y", 2)]


def test_one_seed_run_twice_counts_once(tmp_path):
    runs = [fake_run(tmp_path / "first", [40, 50, 60]), fake_run(tmp_path / "again", [10, 20, 30]),
            fake_run(tmp_path / "other-seed", [70, 80, 90], seed=1)]
    summary, messages = build_quietly(runs, tmp_path / "report")
    [entry] = summary["entries"]
    assert entry["seeds"] == 2 and entry["final_mean"] == pytest.approx((60 + 90) / 2)  # the first run of seed 0 counts
    assert any("iql / pendulum-mixed / seed 0" in m and "each seed counts once" in m for m in messages), messages
    written = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [f["status"] for f in written["failures"]] == ["repeated seed"]


def test_last3_says_when_a_run_has_fewer_than_three_evaluations(tmp_path):
    runs = [fake_run(tmp_path / "short", [20, 40]), fake_run(tmp_path / "long", [10, 20, 30, 40], seed=1)]
    summary, messages = build_quietly(runs, tmp_path / "report", final="last3")
    assert summary["entries"][0]["final_mean"] == pytest.approx((30 + 30) / 2)  # (20 + 40) / 2 and (20 + 30 + 40) / 3
    [message] = [m for m in messages if "last3" in m]
    assert "iql / pendulum-mixed / seed 0 (2 evaluations)" in message and "seed 1" not in message
    assert "iql / pendulum-mixed / seed 0 (2 of 3)" in (tmp_path / "report" / "report.md").read_text()
    written = json.loads((tmp_path / "report" / "report.json").read_text())
    assert written["last3_short"] == [{"name": "iql / pendulum-mixed / seed 0", "evaluations": 2}]
    _, messages = build_quietly(runs, tmp_path / "report-last", final="last")  # the note stays, the warning goes
    assert not [m for m in messages if "last3" in m]


def test_report_without_a_completed_run_is_an_error(tmp_path, capsys):
    bench_dir = tmp_path / "bench"
    conn = results.connect(bench_dir / "results.sqlite")
    for algo in ("bc", "iql"):
        results.set_cell(conn, f"{algo}--broken", algo=algo, dataset="broken", seeds=[0], status="failed",
                         error="broken.npz has no rewards")
    conn.close()
    code, out, err = run_cli(["report", str(bench_dir), "--reps", "100"], capsys)
    assert code == 1 and out == ""
    assert err.strip() == (f"error: {bench_dir}: no completed run to report: 2 cell(s) failed, the first "
                           "bc--broken: broken.npz has no rewards")
    unfinished = fake_run(tmp_path / "unfinished", [10])
    (tmp_path / "unfinished" / "summary.json").unlink()
    with pytest.raises(O2OError, match="no completed run to report: none of its 1 run"):
        report.build([unfinished], tmp_path / "r", reps=100)


def test_bench_progress_line_counts_a_failure_at_once():
    progress = GridProgress(True, total=1, already_done=0)
    try:
        progress.update(running=1, queued=0)
        progress.finished(types.SimpleNamespace(id="bc--broken"), {"status": "failed", "error": "no rewards"})
        state = progress.bar.tasks[0].fields["state"]
    finally:
        progress.close()
    assert state == "running 0, queued 0, failed 1"  # the last line shown: no update follows the last cell
