"""Learning tests a broken algorithm fails, with the quickstart's offline settings on a mixed-quality Pendulum-v1 dataset (30%
episodes by a good scripted controller, 70% by the same controller with a constant torque bias; behaviour scores 35
normalized).

Behaviour cloning averages the two behaviours and lands near the behaviour level; TD3+BC and IQL must pick the good
actions and clearly beat it. 20k updates, 2 seeds, 30 evaluation episodes per seed. Measured on the 2-core CPU:
BC 25.2, TD3+BC 61.7, IQL 45.3 (normalized; 0 = random torques, 100 = the controller).
"""

import pytest

from o2o import quickstart
from o2o.collect.scripted import collect_pendulum
from o2o.data import write_o2o
from o2o.train import offline


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The quick suite's offline settings (small networks, discount 0.95, 20k updates, 2 seeds, 30 episodes)."""
    out = tmp_path_factory.mktemp("learning")
    dataset = write_o2o(collect_pendulum(episodes=50, seed=0), out / "dataset-pendulum-mixed")
    grid = quickstart.grid()
    results = {}
    for algo in grid.algos:
        results[algo] = offline.train(offline.OfflineSettings(
            algo=algo, dataset=str(dataset), steps=grid.steps, seeds=grid.seeds, eval_every=grid.eval_every,
            eval_episodes=grid.eval_episodes, out=str(out / algo), agent_overrides=grid.overrides_for(algo)),
            progress=False)
    return {"results": results, "behaviour_normalized_score": quickstart.behaviour_score(dataset)}


def score(report, algo):
    return report["results"][algo]["normalized_score"]


def test_dataset_is_mixed_quality(report):
    assert 25 < report["behaviour_normalized_score"] < 45


def test_bc_reaches_the_behaviour_level(report):
    # BC cannot separate the two behaviours; it must still be within 15 points of their average.
    assert score(report, "bc") >= report["behaviour_normalized_score"] - 15


def test_td3_bc_clearly_beats_bc(report):
    assert score(report, "td3bc") >= score(report, "bc") + 15


def test_iql_clearly_beats_bc(report):
    assert score(report, "iql") >= score(report, "bc") + 12
