"""Decision Transformer — Chen et al., "Decision Transformer: Reinforcement Learning via Sequence Modeling", NeurIPS 2021.

A causal GPT over windows of K steps of (return-to-go, state, action) tokens, each embedded with the step's timestep;
the output at a state token predicts that step's action (tanh):
    L = E[ sum_{k valid} ||pi(R_{<=k}, s_{<=k}, a_{<k})_k - a_k||^2 ] / (valid steps x action_dim)
R_k is the undiscounted return from step k to the episode's end, scaled by `return_scale`. Windows start at a uniformly
drawn step (so episodes are drawn in proportion to their length, as the paper's code) and are padded at the right
where the episode ends first: a causal model never attends to what lies right of a token, so the padding only leaves
the loss. Evaluation conditions on `target_return` (the paper's per-task values in the presets; else the best episode
return of the training data) and keeps a rolling context of the last K steps, the return-to-go decreasing by each
reward received.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from o2o.agents.common import Network, ObservationNormalizer, Spec, value_and_grad
from o2o.errors import O2OError


@dataclasses.dataclass(frozen=True)
class Config:
    context_length: int = 20
    """K: steps per window (paper, gym experiments)."""
    embedding_dim: int = 128
    """Width of every token embedding (paper, Table 8)."""
    num_layers: int = 3
    """Transformer blocks (paper, Table 8)."""
    num_heads: int = 1
    """Attention heads (paper, Table 8)."""
    dropout: float = 0.1
    """Dropout on embeddings, attention weights and residual branches (paper, Table 8)."""
    max_timestep: int = 1000
    """Size of the timestep embedding; later steps share the last entry (gym's episode length)."""
    learning_rate: float = 1e-4
    """AdamW learning rate after warm-up (paper, Table 8)."""
    weight_decay: float = 1e-4
    """AdamW weight decay (paper, Table 8)."""
    warmup_steps: int = 10_000
    """Updates over which the learning rate rises linearly from 0 (paper, Table 8)."""
    grad_clip: float = 0.25
    """Global gradient-norm clip (the paper's code)."""
    batch_size: int = 64
    """Windows per update (paper, Table 8)."""
    return_scale: float = 0.001
    """Returns-to-go are multiplied by this before embedding (the paper's code for gym)."""
    target_return: float | None = None
    """Return the policy is conditioned on in evaluation; None: the best episode return in the training data."""
    normalize_observations: bool = True
    """Standardize states with the dataset's mean and std (the paper's code)."""


def transition_fields(config: Config) -> tuple[str, ...]:
    return ("returns_to_go", "timesteps", "steps_to_episode_end")


class Block(nn.Module):
    """A GPT-2 block: pre-LayerNorm causal self-attention and MLP, each on a residual branch. The MLP's nonlinearity is
    ReLU, as the paper's code configures GPT-2 for the gym tasks (gym/experiment.py: --activation_function relu)."""

    embedding_dim: int
    num_heads: int
    dropout: float

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, deterministic: bool) -> jax.Array:
        h = nn.MultiHeadDotProductAttention(self.num_heads, dropout_rate=self.dropout, deterministic=deterministic)(
            nn.LayerNorm()(x), mask=mask)
        x = x + nn.Dropout(self.dropout, deterministic=deterministic)(h)
        h = nn.Dense(self.embedding_dim)(nn.relu(nn.Dense(4 * self.embedding_dim)(nn.LayerNorm()(x))))
        return x + nn.Dropout(self.dropout, deterministic=deterministic)(h)


class DecisionTransformer(nn.Module):
    """(returns_to_go (B, K), observations (B, K, obs), actions (B, K, act), timesteps (B, K)) -> actions (B, K, act)."""

    config: Config
    action_dim: int

    @nn.compact
    def __call__(self, returns_to_go, observations, actions, timesteps, deterministic: bool = True) -> jax.Array:
        c = self.config
        batch, steps = timesteps.shape
        time = nn.Embed(c.max_timestep, c.embedding_dim)(jnp.minimum(timesteps, c.max_timestep - 1))
        tokens = jnp.stack([nn.Dense(c.embedding_dim)(returns_to_go[..., None]) + time,
                            nn.Dense(c.embedding_dim)(observations) + time,
                            nn.Dense(c.embedding_dim)(actions) + time], axis=2).reshape(batch, 3 * steps, c.embedding_dim)
        x = nn.Dropout(c.dropout, deterministic=deterministic)(nn.LayerNorm()(tokens))
        mask = nn.make_causal_mask(jnp.zeros((batch, 3 * steps)))
        for _ in range(c.num_layers):
            x = Block(c.embedding_dim, c.num_heads, c.dropout)(x, mask, deterministic)
        state_tokens = nn.LayerNorm()(x).reshape(batch, steps, 3, c.embedding_dim)[:, :, 1]
        return jnp.tanh(nn.Dense(self.action_dim)(state_tokens))


@struct.dataclass
class State:
    actor: Network
    normalizer: ObservationNormalizer
    target_return: jax.Array  # scaled by return_scale
    step: jax.Array
    config: Config = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


def init(key: jax.Array, spec: Spec, config: Config = Config()) -> State:
    target = config.target_return if config.target_return is not None else spec.episode_return_max
    if target is None:
        raise O2OError("dt: no target return; set target_return (--set target_return=R) or train on a dataset")
    schedule = lambda step: config.learning_rate * jnp.minimum((step + 1) / max(config.warmup_steps, 1), 1.0)  # noqa: E731
    optimizer = optax.chain(optax.clip_by_global_norm(config.grad_clip),
                            optax.adamw(schedule, weight_decay=config.weight_decay))
    k = config.context_length
    model = DecisionTransformer(config, spec.action_dim)
    actor = Network.create(model, optimizer, key, jnp.zeros((1, k)), jnp.zeros((1, k, spec.observation_dim)),
                           jnp.zeros((1, k, spec.action_dim)), jnp.zeros((1, k), jnp.int32))
    return State(actor, ObservationNormalizer.from_spec(spec, config.normalize_observations),
                 jnp.asarray(target * config.return_scale, jnp.float32), jnp.zeros((), jnp.int32), config,
                 spec.shapes_only())


def sample_batch(config: Config, data: dict, key: jax.Array) -> dict:
    """`batch_size` windows of `context_length` steps, each from a uniformly drawn first step; steps past the episode's
    end are zeroed and masked out."""
    n, k = data["observations"].shape[0], config.context_length
    first = jax.random.randint(key, (config.batch_size,), 0, n)
    steps = first[:, None] + jnp.arange(k)
    valid = jnp.arange(k) <= data["steps_to_episode_end"][first][:, None]
    steps = jnp.minimum(steps, n - 1)
    window = {name: data[name][steps] for name in ("observations", "actions", "returns_to_go", "timesteps")}
    window = {name: jnp.where(valid.reshape(valid.shape + (1,) * (x.ndim - 2)), x, 0) for name, x in window.items()}
    return {**window, "mask": valid.astype(jnp.float32)}


def update(state: State, batch: dict, key: jax.Array) -> tuple[State, dict]:
    config = state.config
    inputs = (batch["returns_to_go"] * config.return_scale, state.normalizer(batch["observations"]), batch["actions"],
              batch["timesteps"])

    def loss_fn(params):
        predicted = state.actor.module.apply({"params": params}, *inputs, deterministic=False, rngs={"dropout": key})
        errors = ((predicted - batch["actions"]) ** 2).sum(axis=-1)
        return (errors * batch["mask"]).sum() / (batch["mask"].sum() * state.spec.action_dim), {}

    loss, _, grads = value_and_grad(loss_fn, state.actor.params)
    return state.replace(actor=state.actor.apply_gradients(grads), step=state.step + 1), {"action_loss": loss}


def begin_episode(state: State) -> dict:
    """One episode's empty context."""
    k, spec = state.config.context_length, state.spec
    return {"returns_to_go": jnp.zeros(k), "observations": jnp.zeros((k, spec.observation_dim)),
            "actions": jnp.zeros((k, spec.action_dim)), "timesteps": jnp.zeros(k, jnp.int32)}


def act_in_episode(state: State, context: dict, observation: jax.Array, last_reward: jax.Array, t: jax.Array,
                   key: jax.Array) -> tuple[jax.Array, dict]:
    """The action at step t of one episode, and the context with this step in it: at t = 0 the context starts afresh
    with the target return, later the return-to-go drops by the reward just received; once K steps are held the
    oldest leaves."""
    k = state.config.context_length
    position = jnp.minimum(t, k - 1)
    previous = context["returns_to_go"][jnp.maximum(jnp.minimum(t, k) - 1, 0)]
    return_to_go = jnp.where(t == 0, state.target_return, previous - last_reward * state.config.return_scale)
    context = jax.tree.map(lambda x, fresh: jnp.where(t == 0, fresh, jnp.where(t >= k, jnp.roll(x, -1, axis=0), x)),
                           context, begin_episode(state))
    context = {"returns_to_go": context["returns_to_go"].at[position].set(return_to_go),
               "observations": context["observations"].at[position].set(state.normalizer(observation)),
               "actions": context["actions"], "timesteps": context["timesteps"].at[position].set(t)}
    action = state.actor(context["returns_to_go"][None], context["observations"][None], context["actions"][None],
                         context["timesteps"][None])[0, position]
    return action, {**context, "actions": context["actions"].at[position].set(action)}


def act(state: State, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    """The first action of an episode from each observation (no history); evaluation uses `act_in_episode`."""
    def first(observation):
        return act_in_episode(state, begin_episode(state), observation, jnp.zeros(()), jnp.zeros((), jnp.int32), key)[0]

    return jax.vmap(first)(observations)
