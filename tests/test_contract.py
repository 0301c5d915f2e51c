"""The agent contract, checked for every registered algorithm: init, a jitted update that changes the parameters and
reports finite losses, act within [-1, 1], vmap over two seeds equal to each seed alone, a checkpoint round trip, and a
short run through the command line."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_cli

from o2o.agents import Spec, get_algorithm, read_fields
from o2o.algorithms import REGISTRY, fine_tunes, names
from o2o.collect.scripted import collect_pendulum
from o2o.data import write_o2o
from o2o.train import runs

OBS, ACT, BATCH = 3, 2, 8
SPEC = Spec(OBS, ACT, np.full(OBS, 0.5, np.float32), np.full(OBS, 2.0, np.float32), episode_return_max=10.0)


def small(name):
    tiny = {"hidden_dims": "16,16", "batch_size": str(BATCH), "embedding_dim": "16", "num_layers": "1",
            "context_length": "4", "flow_steps": "2", "num_samples": "4", "vae_hidden_dims": "16,16",
            "num_candidates": "4", "top_q": "2", "top_uncertain": "2", "num_perturbations": "2"}
    return get_algorithm(name, {k: v for k, v in tiny.items() if k in read_fields(name)})


N = 40  # steps of the data batches are drawn from: episodes of 10 steps


def data(seed=0):
    """Every field of o2o.agents.TRANSITION_FIELDS over N steps."""
    rng = np.random.default_rng(seed)
    last = np.arange(N) % 10 == 9
    return {"observations": jnp.asarray(rng.normal(size=(N, OBS)), jnp.float32),
            "actions": jnp.asarray(rng.uniform(-1, 1, size=(N, ACT)), jnp.float32),
            "rewards": jnp.asarray(rng.normal(size=N), jnp.float32),
            "next_observations": jnp.asarray(rng.normal(size=(N, OBS)), jnp.float32),
            "dones": jnp.asarray(rng.integers(0, 2, size=N), jnp.float32),
            "mc_returns": jnp.asarray(rng.normal(size=N), jnp.float32),
            "next_actions": jnp.asarray(np.where(last[:, None], np.nan, rng.uniform(-1, 1, size=(N, ACT))), jnp.float32),
            "returns_to_go": jnp.asarray(rng.normal(size=N), jnp.float32),
            "timesteps": jnp.asarray(np.arange(N) % 10, jnp.int32),
            "steps_to_episode_end": jnp.asarray(9 - np.arange(N) % 10, jnp.float32)}


def batch(agent, config, seed=0):
    return agent.sample_batch(config, data(seed), jax.random.PRNGKey(seed))


# agents whose evaluation draws from the policy, as their paper evaluates (FQL's one-step policy draws its noise, QC's
# best-of-n its candidates)
EVALUATION_SAMPLES = {"fql", "qc", "qc-fql"}
# the network that acts, where it is not `actor` (best-of-n QC acts with its behaviour flow and critics)
ACTING_NETWORK = {"qc": "bc_flow"}


def leaves_equal(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# variants of another algorithm's module (its functions with other config values) run with -m slow
CONTRACT_VARIANTS = ("bc10", "calql", "sacn", "lbsac", "td3", "rlpd", "wsrl")


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name in CONTRACT_VARIANTS else name
                                  for name in names()])
def test_agent_contract(name, tmp_path):
    agent, config = small(name)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    states = jax.vmap(lambda k: agent.init(k, SPEC, config))(keys)
    update = jax.jit(jax.vmap(agent.update, in_axes=(0, None, 0)))
    new, metrics = update(states, batch(agent, config), keys)
    new, metrics = update(new, batch(agent, config, 1), keys)  # TD3's actor learns every second update
    assert metrics and all(np.isfinite(np.asarray(v)).all() for v in metrics.values()), metrics
    acting = ACTING_NETWORK.get(name, "actor")
    assert not leaves_equal(getattr(states, acting).params, getattr(new, acting).params)
    assert int(new.step[0]) == 2

    alone = jax.jit(agent.update)
    one = jax.tree.map(lambda x: x[1], states)
    one, _ = alone(one, batch(agent, config), keys[1])
    one, _ = alone(one, batch(agent, config, 1), keys[1])
    for x, y in zip(jax.tree.leaves(one), jax.tree.leaves(jax.tree.map(lambda x: x[1], new))):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)

    obs = jnp.asarray(np.random.default_rng(2).normal(size=(2, 5, OBS)), jnp.float32)
    act = jax.jit(jax.vmap(agent.act, in_axes=(0, 0, None, None)), static_argnums=3)
    for deterministic in (True, False):
        actions = np.asarray(act(new, obs, jax.random.PRNGKey(3), deterministic))
        assert actions.shape == (2, 5, ACT) and np.all(np.abs(actions) <= 1.0)
    same_key = act(new, obs, jax.random.PRNGKey(3), True)
    assert np.array_equal(same_key, act(new, obs, jax.random.PRNGKey(3), True))
    other_key = act(new, obs, jax.random.PRNGKey(4), True)
    assert np.array_equal(same_key, other_key) != (name in EVALUATION_SAMPLES)

    runs.save_checkpoint(tmp_path, {"states": new, "step": 2})
    restored = runs.load_checkpoint(tmp_path, {"states": states, "step": 0})
    assert leaves_equal(restored["states"], new) and int(restored["step"]) == 2


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory):
    return str(write_o2o(collect_pendulum(episodes=3, seed=0), tmp_path_factory.mktemp("data") / "pendulum"))


# The default suite runs from the command line what other tests do not: DT's windows and rolling context, Q-chunking's
# windows and open-loop chunks, Cal-QL then WSRL, RLPD online with its offline data; each of the others costs about
# 10 s of compilation and evaluation, so they run with -m slow.
COMMAND_LINE_PATHS = (("dt", "qc"), ("rlpd",))


@pytest.mark.parametrize("offline_algos, online_algos", [COMMAND_LINE_PATHS, pytest.param(
    tuple(name for name in names("offline") if name not in COMMAND_LINE_PATHS[0]), ("sac", "td3"),
    marks=pytest.mark.slow)], ids=["paths", "the-rest"])
def test_every_algorithm_runs_from_the_command_line(offline_algos, online_algos, pendulum, tmp_path, capsys):
    tiny = ["--set", "hidden_dims=16,16", "--set", "batch_size=16", "--eval-episodes", "1", "--quiet", "--json"]
    tiny_transformer = ["--set", "embedding_dim=16", "--set", "num_layers=1", *tiny[2:]]
    for name in dict.fromkeys((*offline_algos, "calql")):  # calql: wsrl's start below
        code, out, err = run_cli(["train", name, "--dataset", pendulum, "--steps", "4", "--eval-every", "4",
                                  "--out", str(tmp_path / name), *(tiny_transformer if name == "dt" else tiny)], capsys)
        assert code == 0, (name, err)
        assert json.loads(out.strip().splitlines()[-1])["algo"] == name
    online_args = {"sac": [], "td3": [], "rlpd": ["--dataset", pendulum]}
    for name, extra in ((name, online_args[name]) for name in online_algos):
        code, out, err = run_cli(["online", name, "--env", "Pendulum-v1", "--steps", "6", "--warmup-steps", "3",
                                  "--eval-every", "6", "--out", str(tmp_path / name), *extra, *tiny], capsys)
        assert code == 0, (name, err)
    code, out, err = run_cli(["finetune", str(tmp_path / "calql"), "--algo", "wsrl", "--online-steps", "6",
                              "--warmup-steps", "3", "--eval-every", "6", "--eval-episodes", "1", "--quiet", "--json"],
                             capsys)
    assert code == 0, err
    assert set(names("offline")) | set(online_args) | {"wsrl"} == set(REGISTRY)


# one algorithm per fine-tuning path: symmetric batches with next actions and recipe changes (ReBRAC), with Monte-Carlo
# returns (Cal-QL), a universal policy whose training coefficients come from its balance model once online (FamO2O),
# batches mostly of the newest online steps and actions chosen among candidates (SUNG);
# with -m slow: union batches of reward-scaled data (IQL), an ensemble (EDAC), a flow carried over (FQL), terms dropped
# and no offline data kept (RO2O, its 2,500-step warm-up cut to 3), SUNG's density model carried over to CQL
# (sung-cql). The CLI test above covers the rest; QC's fine-tuning runs in test_online_engine.
FINE_TUNING_PATHS = ("rebrac", "calql", "famo2o", "sung")
MORE_FINE_TUNING_PATHS = ("iql", "edac", "fql", "ro2o", "sung-cql")


@pytest.mark.parametrize("paths", [FINE_TUNING_PATHS, pytest.param(MORE_FINE_TUNING_PATHS, marks=pytest.mark.slow)],
                         ids=["paths", "more"])
def test_fine_tuning_paths_and_the_online_run_stands_on_its_own(paths, pendulum, tmp_path, capsys):
    tiny = ["--set", "hidden_dims=16,16", "--set", "batch_size=16", "--eval-episodes", "1", "--quiet", "--json"]
    online = ["--online-steps", "6", "--eval-every", "6", "--eval-episodes", "1", "--quiet", "--json"]
    assert all(fine_tunes(name) for name in paths)
    for name in paths:
        offline_dir, online_dir = tmp_path / name, tmp_path / f"{name}-online"
        code, _, err = run_cli(["train", name, "--dataset", pendulum, "--steps", "4", "--eval-every", "4",
                                "--out", str(offline_dir), *tiny], capsys)
        assert code == 0, (name, err)
        warmup = ["--warmup-steps", "3"] if name == "ro2o" else []
        code, out, err = run_cli(["finetune", str(offline_dir), "--out", str(online_dir), *online, *warmup], capsys)
        assert code == 0, (name, err)
        assert json.loads(out.strip().splitlines()[-1])["algo"] == name
    if paths != FINE_TUNING_PATHS:
        return
    # ReBRAC's recipe is resolved into the online run's config; evaluation and resume read that file alone
    recorded = json.loads((tmp_path / "rebrac-online" / "config.json").read_text())
    assert recorded["agent_config"]["critic_bc_coef"] == 0.0 and recorded["agent_config"]["actor_bc_decay_steps"] == 6
    famo2o = [json.loads((tmp_path / run / "config.json").read_text())["agent_config"]["coefficient_source"]
              for run in ("famo2o", "famo2o-online")]
    assert famo2o == ["uniform", "balance"]
    (tmp_path / "rebrac").rename(tmp_path / "rebrac-moved")
    code, out, err = run_cli(["eval", str(tmp_path / "rebrac-online"), "--episodes", "1", "--json"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["online", "rebrac", "--resume", str(tmp_path / "rebrac-online"), "--quiet", "--json"], capsys)
    assert code == 0, err
