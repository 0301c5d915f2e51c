"""Seeds vmapped in lockstep (o2o/train/lockstep.py): TD3's delayed actor step stays a branch when seeds are vmapped,
so it runs every `policy_frequency` updates instead of on every update with its result thrown away; the stacked states
keep one update counter per seed."""

import jax
import jax.numpy as jnp
import numpy as np

from o2o.agents import Spec, get_algorithm
from o2o.train import lockstep
from o2o.train.offline import init_seeds, make_train_chunk


def all_primitives(closed) -> set[str]:
    """Every primitive of a jaxpr, nested ones included."""
    names = set()

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            names.add(eqn.primitive.name)
            for value in eqn.params.values():
                for item in value if isinstance(value, (tuple, list)) else (value,):
                    if isinstance(item, jax.extend.core.ClosedJaxpr):
                        walk(item.jaxpr)
                    elif isinstance(item, jax.extend.core.Jaxpr):
                        walk(item)

    walk(closed.jaxpr)
    return names


def td3bc_chunk(seeds: int):
    agent, config = get_algorithm("td3bc", {"hidden_dims": "8,8", "batch_size": 4})
    states = init_seeds(agent, config, Spec.unnormalized(3, 2), list(range(seeds)))
    n = 32
    rng = np.random.default_rng(0)
    data = {"observations": jnp.asarray(rng.normal(size=(n, 3)), jnp.float32),
            "actions": jnp.asarray(rng.uniform(-1, 1, (n, 2)), jnp.float32),
            "rewards": jnp.asarray(rng.normal(size=n), jnp.float32),
            "next_observations": jnp.asarray(rng.normal(size=(n, 3)), jnp.float32), "dones": jnp.zeros(n, jnp.float32)}
    keys = jnp.stack([jax.random.PRNGKey(s) for s in range(seeds)])
    return make_train_chunk(agent, config, 6), states, keys, data


def test_the_delayed_actor_step_stays_a_branch_with_seeds_vmapped():
    train, states, keys, data = td3bc_chunk(3)
    assert "cond" in all_primitives(jax.make_jaxpr(train)(states, keys, 0, data))
    # what a plain vmap over the stacked states makes of it: both branches every update
    agent, _ = get_algorithm("td3bc", {"hidden_dims": "8,8", "batch_size": 4})
    batch = {k: v[:4] for k, v in data.items()}
    plain = jax.make_jaxpr(jax.vmap(agent.update, in_axes=(0, None, 0)))(states, batch, keys)
    assert "cond" not in all_primitives(plain)


def test_states_keep_one_counter_per_seed_and_every_seed_learns_as_alone():
    train, states, keys, data = td3bc_chunk(3)
    alone_states = jax.tree.map(lambda x: jnp.copy(x[1:2]), states)  # seed 1 by itself (train donates `states`)
    together, _ = train(states, keys, 0, data)
    assert together.step.shape == (3,) and (np.asarray(together.step) == 6).all()
    alone, _ = td3bc_chunk(1)[0](alone_states, keys[1:2], 0, data)
    for a, b in zip(jax.tree.leaves(jax.tree.map(lambda x: x[1], together)), jax.tree.leaves(alone)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b)[0], rtol=1e-5, atol=1e-6)


def test_a_state_without_a_counter_is_vmapped_as_it_is():
    run = lockstep.vmap_seeds(lambda state, x: (state * x, state + x), in_axes=(None,))
    state, out = run(jnp.arange(3.0), 2.0)
    np.testing.assert_array_equal(state, [0.0, 2.0, 4.0])
    np.testing.assert_array_equal(out, [2.0, 3.0, 4.0])
