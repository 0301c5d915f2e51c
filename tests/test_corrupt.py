"""`o2o data corrupt` and `o2o.data.corrupt`: RIQL's corruption protocol (random and adversarial, four targets)."""

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_dataset, run_cli

from o2o.data import content_hash, load_dataset, write_o2o
from o2o.data.corrupt import CORRUPTED, TARGETS, Attacker, corrupt, corruption_key
from o2o.errors import O2OError

N, RATE, SCALE = 2000, 0.3, 0.5


@pytest.fixture(scope="module")
def clean():
    return make_dataset(n=N, obs_dim=5, act_dim=2, episode_length=200, seed=3)


def unchanged_except(before, after, field, rows):
    """Every field byte-identical but `field`, which differs on `rows` only."""
    for name, value in before.arrays().items():
        old, new = np.asarray(value), np.asarray(getattr(after, name))
        if name != field:
            assert old.tobytes() == new.tobytes(), name
        else:
            keep = np.ones(len(before), bool)
            keep[rows] = False
            assert old[keep].tobytes() == new[keep].tobytes(), f"{name}: a clean row changed"


@pytest.mark.parametrize("target", list(TARGETS))
def test_random_corruption_touches_exactly_the_fraction_with_the_scale(clean, target):
    corrupted = corrupt(clean, target, "random", RATE, SCALE, seed=1)
    flags = np.asarray(corrupted.extras[CORRUPTED])
    rows = np.flatnonzero(flags)
    assert rows.size == round(RATE * N)
    field = TARGETS[target]
    unchanged_except(clean, corrupted, field, rows)
    old, new = np.asarray(getattr(clean, field), np.float64)[rows], np.asarray(getattr(corrupted, field), np.float64)[rows]
    if target == "rewards":  # replaced by 30 U(-scale, scale)
        noise = new / 30.0
    else:  # U(-scale, scale) standard deviations of each dimension
        noise = (new - old) / np.asarray(getattr(clean, field), np.float64).std(axis=0)
        if target == "actions":  # no env: clipped to each dimension's range in the data; compare where none was
            low, high = np.asarray(clean.actions).min(axis=0), np.asarray(clean.actions).max(axis=0)
            np.testing.assert_array_equal(new.min(axis=0), low)
            np.testing.assert_array_equal(new.max(axis=0), high)
            noise = noise[((new > low) & (new < high)).all(axis=1)]
    assert np.abs(noise).max() <= SCALE + 1e-5
    assert np.abs(noise).max() > 0.95 * SCALE  # uniform over the whole interval ...
    assert abs(np.abs(noise).mean() - SCALE / 2) < 0.05 * SCALE  # ... E|U(-s, s)| = s / 2
    record = corrupted.metadata["corruption"][-1]
    assert (record["target"], record["mode"], record["rate"], record["scale"], record["seed"]) == (
        target, "random", RATE, SCALE, 1)
    assert record["corrupted_transitions"] == rows.size


def test_corruption_is_seeded_and_leaves_its_input_alone(clean):
    before = content_hash(clean)
    a, b = corrupt(clean, "states", seed=7), corrupt(clean, "states", seed=7)
    assert content_hash(a) == content_hash(b) != before
    assert content_hash(clean) == before
    assert content_hash(corrupt(clean, "states", seed=8)) != content_hash(a)


def test_corruptions_stack(clean):
    twice = corrupt(corrupt(clean, "rewards", rate=0.1, seed=1), "actions", rate=0.1, seed=2)
    assert [r["target"] for r in twice.metadata["corruption"]] == ["rewards", "actions"]
    changed = (np.asarray(twice.rewards) != np.asarray(clean.rewards)) | (
        np.asarray(twice.actions) != np.asarray(clean.actions)).any(axis=1)
    assert (np.asarray(twice.extras[CORRUPTED]) >= changed).all()
    assert corruption_key(twice.metadata) is None  # no preset fits two corruptions
    assert corruption_key(corrupt(clean, "dynamics", "random").metadata) == "random-dynamics"


def test_stacked_corruptions_with_one_seed_pick_their_own_rows(clean):
    """`--target states` then `--target actions`, both at the default seed, corrupt two independent 30% draws (about
    51% of the data flagged), as RIQL's moving generator does; the first draw is the seed's alone, as ever, so that
    corrupted datasets made before reproduce bit for bit."""
    once = corrupt(clean, "states", rate=RATE, seed=0)
    first = np.flatnonzero(np.asarray(once.extras[CORRUPTED]))
    np.testing.assert_array_equal(first, np.sort(np.random.default_rng(0).choice(N, round(RATE * N), replace=False)))
    twice = corrupt(once, "actions", rate=RATE, seed=0)
    second = np.flatnonzero((np.asarray(twice.actions) != np.asarray(clean.actions)).any(axis=1))
    assert second.size == round(RATE * N) and np.intersect1d(first, second).size < 0.5 * second.size
    assert abs(np.asarray(twice.extras[CORRUPTED]).mean() - (1 - (1 - RATE) ** 2)) < 0.05


def test_corrupted_actions_without_an_env_stay_in_the_datas_own_range():
    """Actions in [-2, 2] and no env to say the box: noise is clipped to what each dimension covers in the data,
    not collapsed onto [-1, 1], and the record says which bounds were used."""
    data = make_dataset(n=N, act_dim=2, env_id=None)
    data = dataclasses.replace(data, actions=(np.asarray(data.actions) * [2.0, 0.5]).astype(np.float32))
    low, high = np.asarray(data.actions).min(axis=0), np.asarray(data.actions).max(axis=0)
    corrupted = corrupt(data, "actions", rate=1.0, scale=1.0, seed=0)
    actions = np.asarray(corrupted.actions)
    np.testing.assert_array_equal(actions.min(axis=0), low)
    np.testing.assert_array_equal(actions.max(axis=0), high)
    assert (np.abs(actions[:, 0]) > 1.0).mean() > 0.3
    assert corrupted.metadata["corruption"][0]["action_bounds"] == {"low": low.tolist(), "high": high.tolist()}
    boxed = corrupt(data, "actions", rate=1.0, seed=0, action_bounds=(np.full(2, -3.0), np.full(2, 3.0)))
    assert boxed.metadata["corruption"][0]["action_bounds"] == {"low": [-3.0, -3.0], "high": [3.0, 3.0]}


def test_adversarial_rewards_flip_and_scale(clean):
    corrupted = corrupt(clean, "rewards", "adversarial", RATE, 2.0, seed=0)
    rows = np.flatnonzero(np.asarray(corrupted.extras[CORRUPTED]))
    np.testing.assert_allclose(np.asarray(corrupted.rewards)[rows], -2.0 * np.asarray(clean.rewards)[rows], rtol=1e-6)
    unchanged_except(clean, corrupted, "rewards", rows)


def quadratic_attacker():
    """Three critics Q_k(s, a) = -|s - c_k|^2 - |a - d_k|^2 (a known landscape): the attack must move away from c, d."""
    rng = np.random.default_rng(0)
    centers, action_centers = jnp.asarray(rng.normal(size=(3, 5))), jnp.asarray(rng.uniform(-0.5, 0.5, (3, 2)))

    def q_values(observations, actions):
        return -(((observations[None] - centers[:, None]) ** 2).sum(-1)
                 + ((actions[None] - action_centers[:, None]) ** 2).sum(-1))

    return Attacker(q_values, lambda observations: jnp.tanh(observations[:, :2]), {"kind": "test"})


@pytest.mark.parametrize("target", ["states", "actions", "dynamics"])
def test_adversarial_attack_lowers_the_attacked_ensembles_value(clean, target):
    attacker = quadratic_attacker()
    corrupted = corrupt(clean, target, "adversarial", RATE, SCALE, seed=0, attacker=attacker)
    rows = np.flatnonzero(np.asarray(corrupted.extras[CORRUPTED]))
    assert rows.size == round(RATE * N)
    field = TARGETS[target]
    unchanged_except(clean, corrupted, field, rows)

    def value(data):
        s, a, s2 = (jnp.asarray(np.asarray(getattr(data, f))[rows]) for f in ("observations", "actions", "next_observations"))
        return float((attacker.q_values(s2, attacker.policy(s2)) if target == "dynamics" else attacker.q_values(s, a)).mean())

    assert value(corrupted) < value(clean) - 0.1
    std = np.asarray(getattr(clean, field), np.float64).std(axis=0)
    offsets = (np.asarray(getattr(corrupted, field), np.float64) - np.asarray(getattr(clean, field), np.float64))[rows] / std
    assert np.abs(offsets).max() <= SCALE + 1e-4  # within the budget
    assert corrupted.metadata["corruption"][-1]["attacker"] == {"kind": "test"}


@pytest.mark.parametrize("kwargs, message", [
    ({"target": "weights"}, "unknown corruption target 'weights'"),
    ({"mode": "gaussian"}, "unknown corruption mode 'gaussian'"),
    ({"rate": 0.0}, "--rate must be a fraction in (0, 1]"),
    ({"rate": 1.5}, "--rate must be a fraction in (0, 1]"),
    ({"scale": -1.0}, "--scale must be a positive number"),
    ({"mode": "adversarial"}, "adversarial states corruption needs an attacker"),
])
def test_bad_parameters_are_one_line_errors(clean, kwargs, message):
    arguments = {"target": "states", "mode": "random", "rate": RATE, "scale": SCALE, **kwargs}
    with pytest.raises(O2OError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        corrupt(clean, **arguments)


def test_cli_writes_the_record_and_never_touches_the_source(tmp_path, capsys):
    source = write_o2o(dataclasses.replace(make_dataset(n=400, obs_dim=11, act_dim=3)), tmp_path / "clean")
    before = {p.name: p.read_bytes() for p in source.iterdir()}
    code, out, err = run_cli(["data", "corrupt", str(source), str(tmp_path / "bad"), "--target", "dynamics",
                              "--rate", "0.25", "--seed", "3", "--json"], capsys)
    assert code == 0, err
    assert {p.name: p.read_bytes() for p in source.iterdir()} == before
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["corrupted_transitions"] == 100 and summary["target"] == "dynamics"
    written = load_dataset(tmp_path / "bad")
    assert int(np.asarray(written.extras[CORRUPTED]).sum()) == 100
    assert written.metadata["corruption"][0]["source"]["content_hash"] == content_hash(load_dataset(source))
    code, _, err = run_cli(["data", "corrupt", str(source), str(tmp_path / "adv"), "--mode", "adversarial"], capsys)
    assert code != 0 and "needs --attacker RUN_DIR" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["data", "corrupt", str(source), str(tmp_path / "bad"), "--target", "rewards"], capsys)
    assert code != 0 and "exists" in err


def test_corrupted_actions_stay_in_the_envs_box(tmp_path, capsys):
    """Pendulum's torques lie in [-2, 2]: noise pushes some past it, and they are clipped to it, not to [-1, 1]."""
    source = write_o2o(make_dataset(n=400, obs_dim=3, act_dim=1, env_id="Pendulum-v1"), tmp_path / "clean")
    code, _, err = run_cli(["data", "corrupt", str(source), str(tmp_path / "noisy"), "--target", "actions", "--rate",
                            "1", "--scale", "3"], capsys)
    assert code == 0, err
    actions = np.asarray(load_dataset(tmp_path / "noisy").actions)
    assert np.abs(actions).max() == 2.0 and (np.abs(actions) > 1.0).mean() > 0.2
    code, _, err = run_cli(["data", "corrupt", str(source), str(tmp_path / "m"), "--format", "minari"], capsys)
    assert code != 0 and "--format minari cannot hold corrupted states" in err and not (tmp_path / "m").exists()
    code, _, err = run_cli(["data", "corrupt", str(source), str(tmp_path / "m"), "--target", "rewards", "--format",
                            "minari"], capsys)
    assert code == 0, err
    assert int(np.asarray(load_dataset(tmp_path / "m").extras[CORRUPTED]).sum()) == round(0.3 * 400)


def test_an_offline_runs_critics_attack_the_data_they_learned(tmp_path, capsys):
    """The attacker as the CLI builds it: an o2o run's critic ensemble (a few SAC-N updates), refused for other data."""
    from o2o.train import offline
    from o2o.train.attacker import attacker_from_run

    source = write_o2o(make_dataset(n=400, obs_dim=11, act_dim=3), tmp_path / "clean")
    offline.train(offline.OfflineSettings(algo="sacn", dataset=str(source), steps=20, eval_every=20, eval_episodes=0,
                                          chunk=20, out=str(tmp_path / "run"),
                                          agent_overrides={"num_critics": 3, "hidden_dims": (16, 16)}), progress=False)
    data = load_dataset(source)
    attacker = attacker_from_run(tmp_path / "run", data)
    corrupted = corrupt(data, "actions", "adversarial", 0.5, 1.0, seed=0, attacker=attacker)
    rows = np.flatnonzero(np.asarray(corrupted.extras[CORRUPTED]))
    q = lambda d: float(attacker.q_values(jnp.asarray(np.asarray(d.observations)[rows]),
                                          jnp.asarray(np.asarray(d.actions)[rows])).mean())
    assert q(corrupted) < q(data)
    assert corrupted.metadata["corruption"][0]["attacker"]["algo"] == "sacn"
    with pytest.raises(O2OError, match="trained on other data"):
        attacker_from_run(tmp_path / "run", make_dataset(n=400, obs_dim=11, act_dim=3, seed=5))


def test_riql_takes_the_papers_settings_for_the_recorded_corruption():
    from o2o.algorithms import preset

    assert preset("riql", "auto", "Hopper-v5", "medium-replay", "random-states") == (
        "hopper-random-states", {"huber_sigma": 0.1, "quantile": 0.25, "num_critics": 3})
    assert preset("riql", "auto", "Walker2d-v5", "medium", "adversarial-rewards")[1] == {
        "huber_sigma": 3.0, "quantile": 0.1, "num_critics": 5}
    assert preset("riql", "auto", "Hopper-v5", "medium-replay", None) == (None, {})  # clean: RIQL's defaults
    assert preset("riql", "auto", "Ant-v5", "medium", "random-states") == (None, {})  # an env the paper did not tune
