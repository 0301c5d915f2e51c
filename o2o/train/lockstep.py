"""Seeds vmapped in lockstep, their update counter shared.

Every seed of a run updates together, so an agent's `state.step` is the same number in each. Stacked like the rest of
the state it would be a batched value, and a `lax.cond` on it (TD3's delayed actor step, every second update) would
become a select that runs both branches on every update: the actor's step and the targets' Polyak steps paid twice as
often as they happen. Vmapped with `step` unbatched, the branch stays a branch. The stacked states outside keep one
`step` per seed (checkpoints, resumes and evaluation are unchanged).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def vmap_seeds(fn: Callable[..., tuple[Any, Any]], in_axes: tuple) -> Callable[..., tuple[Any, Any]]:
    """`jax.vmap(fn, in_axes=(0, *in_axes))` for `fn(state, *args) -> (state, outputs)` over stacked seed states,
    with `state.step` (where the state has one) taken from seed 0 and left unbatched inside."""

    def run(states, *args):
        if not hasattr(states, "step"):
            return jax.vmap(fn, in_axes=(0, *in_axes))(states, *args)
        seeds = states.step.shape[0]
        axes = jax.tree.map(lambda _: 0, states).replace(step=None)
        states, outputs = jax.vmap(fn, in_axes=(axes, *in_axes), out_axes=(axes, 0))(
            states.replace(step=states.step[0]), *args)
        return states.replace(step=jnp.broadcast_to(states.step, (seeds,))), outputs

    return run
