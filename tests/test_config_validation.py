"""Agent configs are checked where they are built (`get_algorithm`): every field of every Config has a rule, defaults
and presets keep to it, a value outside it fails in one line naming the algorithm, the field, the value and the range,
and a user's override of a field the algorithm never reads is refused. The registry's `unread` declarations are held
to the code: changing such a field leaves everything the agent computes bit-identical."""

import dataclasses
import importlib
import pkgutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_dataset, run_cli

import o2o.agents
from o2o import bench
from o2o.agents import Spec, get_algorithm, read_fields, validation
from o2o.algorithms import RECORDS, REGISTRY, fine_tunes
from o2o.errors import O2OError


def config_fields(module_name):
    return [f.name for f in dataclasses.fields(importlib.import_module(f"o2o.agents.{module_name}").Config)]


def test_every_field_of_every_agent_config_has_a_rule():
    """A new Config field (or agent module) fails here until o2o/agents/validation.py gives it a range."""
    modules = [m.name for m in pkgutil.iter_modules(o2o.agents.__path__)
               if hasattr(importlib.import_module(f"o2o.agents.{m.name}"), "Config")]
    assert {r.module for r in RECORDS} <= set(modules)
    uncovered = []
    for module in modules:
        for field in config_fields(module):
            try:
                validation.rule_for(module, field)
            except KeyError:
                uncovered.append(f"{module}.{field}")
    assert not uncovered, f"no rule in o2o/agents/validation.py for {', '.join(uncovered)}"


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.name)
def test_unread_declarations_name_fields_that_no_variant_or_preset_sets(record):
    fields = set(config_fields(record.module))
    assert set(record.unread) <= fields
    for values in (record.variant, *record.presets.values()):
        assert not set(record.unread) & set(values)
    assert read_fields(record.name) == fields - set(record.unread)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_defaults_every_preset_and_the_fine_tuning_changes_are_valid(name):
    get_algorithm(name)
    for values in REGISTRY[name].presets.values():
        get_algorithm(name, preset=values)
    if fine_tunes(name):
        get_algorithm(name, online_updates=1000)


@pytest.mark.parametrize("name, settings, error", [
    ("iql", {"overrides": {"batch_size": "0"}}, "iql: batch_size = 0 is outside the integers >= 1"),
    ("iql", {"overrides": {"expectile": "1.5"}}, "iql: expectile = 1.5 is outside (0, 1)"),
    ("iql", {"overrides": {"discount": "1.5"}}, "iql: discount = 1.5 is outside (0, 1]"),
    ("iql", {"overrides": {"tau": "0"}}, "iql: tau = 0.0 is outside (0, 1]"),
    ("iql", {"overrides": {"actor_lr": "nan"}}, "iql: actor_lr = nan is outside (0, inf)"),
    ("iql", {"overrides": {"hidden_dims": ""}}, "iql: hidden_dims = () is outside non-empty tuples of integers >= 1"),
    ("iql", {"overrides": {"batch_size": 2.5}}, "iql: batch_size = 2.5 is outside the integers >= 1"),
    ("iql", {"preset": {"expectile": 1.0}}, "iql: expectile = 1.0 is outside (0, 1)"),
    ("awac", {"overrides": {"temperature": "0"}}, "awac: temperature = 0.0 is outside (0, inf)"),
    ("td3bc", {"overrides": {"policy_frequency": "0"}}, "td3bc: policy_frequency = 0 is outside the integers >= 1"),
    ("td3bc", {"overrides": {"behavior_cloning": 1}}, "td3bc: behavior_cloning = 1 is outside {True, False}"),
    ("bc10", {"overrides": {"top_fraction": "0"}}, "bc10: top_fraction = 0.0 is outside (0, 1]"),
    ("rlpd", {"overrides": {"num_critics": "1"}},
     "rlpd: critic_subset = 2 is outside None or the integers in [1, num_critics = 1]"),
    ("edac", {"overrides": {"num_critics": "1"}}, "edac: num_critics = 1 is outside the integers >= 2 where eta > 0"),
    ("dt", {"overrides": {"num_heads": "3"}}, "dt: num_heads = 3 is outside the divisors of embedding_dim = 128"),
    ("fql", {"overrides": {"q_aggregation": "max"}}, "fql: q_aggregation = 'max' is outside {'mean', 'min'}"),
    ("calql", {"overrides": {"sparse_failure_reward": "-1", "discount": "1"}},
     ("calql: sparse_failure_reward = -1.0 is outside None where discount = 1 (the returns-to-go of a failed episode "
      "would be infinite)")),
])
def test_a_value_outside_its_range_fails_naming_algorithm_field_value_and_range(name, settings, error):
    with pytest.raises(O2OError) as raised:
        get_algorithm(name, **settings)
    assert str(raised.value) == error


def test_the_command_line_refuses_a_batch_of_zero_before_reading_data(tmp_path, capsys):
    """It used to train and log NaN losses."""
    args = ["train", "iql", "--dataset", str(tmp_path / "absent.hdf5"), "--set", "batch_size=0"]
    code, _, err = run_cli(args, capsys)
    assert code != 0 and "iql: batch_size = 0 is outside the integers >= 1" in err.splitlines()[0]


def test_setting_a_field_the_algorithm_never_reads_is_refused_even_at_its_value():
    with pytest.raises(O2OError) as raised:
        get_algorithm("rebrac", {"alpha": "2.5"})
    read = [f for f in config_fields("rebrac") if f not in ("alpha", "behavior_cloning")]
    assert str(raised.value) == f"rebrac does not read alpha; its fields: {', '.join(read)}"
    with pytest.raises(O2OError, match="^td3 does not read alpha; "):
        get_algorithm("td3", {"alpha": "0.5"})
    with pytest.raises(O2OError, match="^cql does not read sparse_failure_reward; "):
        get_algorithm("cql", {"sparse_failure_reward": "-1"})
    assert get_algorithm("calql", {"sparse_failure_reward": "-1"})[1].sparse_failure_reward == -1.0
    assert get_algorithm("td3bc", {"alpha": "0.5"})[1].alpha == 0.5


def test_inherited_and_preset_values_of_an_unread_field_are_no_override():
    """A fine-tuning run takes its offline run's whole config, unread fields included."""
    offline = dataclasses.asdict(get_algorithm("td3bc", {"alpha": "5"})[1])
    assert get_algorithm("rebrac", inherited=offline, preset={"behavior_cloning": False})[1].alpha == 5.0


def test_a_bench_applies_a_bare_field_to_the_algorithms_that_read_it():
    grid = bench.Grid(algos=["td3bc", "rebrac", "td3"], datasets=["x"], overrides={"alpha": "2", "policy_noise": "0.1"})
    assert grid.overrides_for("td3bc") == {"alpha": "2", "policy_noise": "0.1"}
    assert grid.overrides_for("rebrac") == grid.overrides_for("td3") == {"policy_noise": "0.1"}
    with pytest.raises(O2OError, match="^rebrac does not read alpha; "):
        bench.Grid(algos=["td3bc", "rebrac"], datasets=["x"], overrides={"rebrac.alpha": "2"})


OBS, ACT, STEPS = 3, 2, 40
SPEC = Spec(OBS, ACT, np.full(OBS, 0.5, np.float32), np.full(OBS, 2.0, np.float32), episode_return_max=10.0)
TINY = {"hidden_dims": (8, 8), "batch_size": 8, "embedding_dim": 8, "num_layers": 1, "context_length": 4}
DATASET = make_dataset(n=STEPS, obs_dim=OBS, act_dim=ACT, episode_length=10)


def device_data():
    """Every transition field an update may read, over STEPS steps in episodes of 10."""
    rng = np.random.default_rng(0)
    last = np.arange(STEPS) % 10 == 9
    arrays = {"observations": DATASET.observations, "actions": DATASET.actions, "rewards": DATASET.rewards,
              "next_observations": DATASET.next_observations, "dones": last.astype(np.float32),
              "mc_returns": rng.normal(size=STEPS).astype(np.float32),
              "next_actions": np.where(last[:, None], np.nan, np.roll(DATASET.actions, -1, axis=0)).astype(np.float32),
              "returns_to_go": rng.normal(size=STEPS).astype(np.float32), "timesteps": np.arange(STEPS) % 10,
              "steps_to_episode_end": (9 - np.arange(STEPS) % 10).astype(np.float32)}
    return {name: jnp.asarray(values) for name, values in arrays.items()}


def everything_the_agent_computes(name, config):
    """(the transition fields and the dataset's metadata, every array): the dataset transform, init, a batch, two
    updates (TD3's actor moves every second one) and both kinds of action."""
    agent = get_algorithm(name)[0]
    prepared = agent.prepare_dataset(DATASET, config)
    # compiled: op by op, every primitive compiles on its own, which takes longer
    init, sample, update, act = (jax.jit(agent.init, static_argnums=2), jax.jit(agent.sample_batch, static_argnums=0),
                                 jax.jit(agent.update), jax.jit(agent.act, static_argnums=3))
    state = init(jax.random.PRNGKey(0), SPEC, config)
    batch = sample(config, device_data(), jax.random.PRNGKey(1))
    outputs = [[getattr(prepared, f.name) for f in dataclasses.fields(prepared) if f.name != "metadata"], state, batch]
    for step in range(2):
        state, metrics = update(state, batch, jax.random.PRNGKey(2 + step))
        outputs += [state, metrics]
    observations = DATASET.observations[:4]
    outputs += [act(state, observations, jax.random.PRNGKey(4), deterministic) for deterministic in (True, False)]
    return (agent.transition_fields(config), prepared.metadata), [np.asarray(x) for x in jax.tree.leaves(outputs)]


def with_one_field_changed(name, field):
    """The record's config at tiny sizes, and the same with `field` at another valid value."""
    config = get_algorithm(name, {k: v for k, v in TINY.items() if k in read_fields(name)})[1]
    value = getattr(config, field)
    if isinstance(value, bool):
        other = not value
    elif value is None:
        other = -1.0
    else:
        other = value + 1 if isinstance(value, int) else (value / 2 if value else 0.5)
    changed = dataclasses.replace(config, **{field: other})
    validation.check(REGISTRY[name], changed, overridden=())
    return config, changed


def computes_alike(name, config, changed):
    (static, arrays), (other_static, other_arrays) = (everything_the_agent_computes(name, c) for c in (config, changed))
    return static == other_static and len(arrays) == len(other_arrays) and all(
        a.shape == b.shape and np.array_equal(a, b, equal_nan=True) for a, b in zip(arrays, other_arrays))


@pytest.mark.parametrize("name, field", [(r.name, f) for r in RECORDS for f in r.unread])
def test_a_field_declared_unread_changes_nothing_the_agent_computes(name, field):
    """What the train layer reads (sparse_failure_reward: Cal-QL's returns-to-go) is out of this test's sight; whether
    it computes those at all is `transition_fields`, compared here."""
    assert computes_alike(name, *with_one_field_changed(name, field))


@pytest.mark.parametrize("name, field", [("td3bc", "alpha"), ("td3bc", "behavior_cloning")])
def test_the_comparison_sees_a_change_of_a_field_that_is_read(name, field):
    """TD3+BC reads what TD3 and ReBRAC do not: the test above would see it if they did."""
    assert not computes_alike(name, *with_one_field_changed(name, field))


def test_rlpd_and_wsrl_step_their_actor_once_per_env_step():
    """RLPD's and WSRL's actor and temperature step once per env step of `utd` critic steps (their authors' update);
    SAC's after every update; a user's actor_every wins but must fit the UTD."""
    assert get_algorithm("rlpd", utd=20)[1].actor_every == 20 and get_algorithm("wsrl", utd=4)[1].actor_every == 4
    assert get_algorithm("rlpd")[1].actor_every == 1  # no online run: nothing to align with
    assert get_algorithm("sac", utd=20)[1].actor_every == 1
    assert get_algorithm("rlpd", {"actor_every": "1"}, utd=20)[1].actor_every == 1
    assert get_algorithm("sac", {"actor_every": "40"}, utd=20)[1].actor_every == 40  # every second env step
    with pytest.raises(O2OError, match="actor_every = 3 with 20 updates per env step"):
        get_algorithm("rlpd", {"actor_every": "3"}, utd=20)
    with pytest.raises(O2OError, match="actor_every"):
        get_algorithm("rlpd", {"actor_every": "0"})


def test_network_init_names_a_known_initialisation_that_takes_effect():
    assert get_algorithm("td3bc")[1].network_init == "pytorch" and get_algorithm("iql")[1].network_init == "orthogonal"
    with pytest.raises(O2OError, match="network_init = 'lecun' is outside"):
        get_algorithm("td3bc", {"network_init": "lecun"})
    with pytest.raises(O2OError, match="network_init has no effect while edac_init is true"):
        get_algorithm("rebrac", {"network_init": "flax"})
    assert get_algorithm("rebrac", {"network_init": "flax", "edac_init": "false"})[1].network_init == "flax"
