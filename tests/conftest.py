import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from o2o.agents import Spec
from o2o.data import Dataset

# A two-transition batch for hand-computed losses: obs_dim 2, action_dim 1; the second transition is terminal.
SPEC = Spec.unnormalized(2, 1)
BATCH = {
    "observations": jnp.array([[0.5, -1.0], [2.0, 0.0]]),
    "actions": jnp.array([[0.5], [-1.0]]),
    "rewards": jnp.array([1.0, 0.0]),
    "next_observations": jnp.array([[1.0, 1.0], [0.0, 3.0]]),
    "dones": jnp.array([0.0, 1.0]),
}


def constant(params, output_bias):
    """Zero every weight; the network's last layer bias becomes `output_bias` (its output everywhere)."""
    zeroed = jax.tree.map(jnp.zeros_like, params)
    mlp = zeroed["VmapCritic_0"]["MLP_0"] if "VmapCritic_0" in zeroed else zeroed["MLP_0"]
    last = max(mlp, key=lambda name: int(name.split("_")[1]))
    mlp[last]["bias"] = jnp.full_like(mlp[last]["bias"], output_bias)
    return zeroed


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Minari datasets and o2o's cache live in the test's own directory, never in the user's home."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("O2O_CACHE_DIR", str(tmp_path / "cache"))


def make_dataset(n=300, obs_dim=11, act_dim=3, episode_length=100, seed=0, env_id="Hopper-v5", terminal_at=()):
    rng = np.random.default_rng(seed)
    observations = rng.normal(size=(n + 1, obs_dim)).astype(np.float32)
    timeouts = np.zeros(n, bool)
    timeouts[episode_length - 1 :: episode_length] = True
    terminals = np.zeros(n, bool)
    terminals[list(terminal_at)] = True
    timeouts &= ~terminals
    timeouts[-1] = not terminals[-1]
    return Dataset(
        observations=observations[:-1],
        actions=rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        next_observations=observations[1:],
        terminals=terminals,
        timeouts=timeouts,
        metadata={"env_id": env_id} if env_id else {},
    )


def run_cli(args, capsys):
    """Run `o2o ARGS` in this process; returns (exit code, stdout, stderr)."""
    from o2o import cli

    old_argv, old_show = sys.argv, warnings.showwarning
    sys.argv = ["o2o", *args]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            cli.main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv, warnings.showwarning = old_argv, old_show
    out = capsys.readouterr()
    return code, out.out, out.err


def pytest_configure(config):
    """One persistent XLA compilation cache for the session (and the processes it starts): tests compile the same
    small programs again and again (every algorithm at tiny sizes, evaluation policies)."""
    import os
    import tempfile

    cache = os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="o2o-test-xla-cache-"))
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


class Killed(BaseException):
    """A hard kill (SIGKILL, power loss): unlike Ctrl-C, no handler of the run gets to act."""


@pytest.fixture
def kill_after_checkpoint(monkeypatch):
    """`kill_after_checkpoint(train, step)`: `train()` is killed right after it writes its latest checkpoint at `step`
    (its record of that step may or may not be written, as a real kill leaves it); checkpoints save normally after."""
    from o2o.train import runs

    def kill(train, step: int) -> None:
        save = runs.save_checkpoint

        def save_then_die(run_dir, target, path=runs.CHECKPOINT):
            save(run_dir, target, path)
            if path == runs.CHECKPOINT and int(target["step"]) == step:
                raise Killed

        monkeypatch.setattr(runs, "save_checkpoint", save_then_die)
        try:
            with pytest.raises(Killed):
                train()
        finally:
            monkeypatch.setattr(runs, "save_checkpoint", save)
    return kill


@pytest.fixture
def ctrl_c_at_chunk(monkeypatch):
    """`release = ctrl_c_at_chunk(n)`: the offline loop's n-th fused chunk raises KeyboardInterrupt before it runs, as a
    Ctrl-C between two chunks does; `release()` gives the loop its chunks back (for the resume)."""
    from o2o.train import offline

    def arm(n: int):
        make, calls = offline.make_train_chunk, []

        def interrupted(*a, **k):
            train = make(*a, **k)

            def call(*inputs):
                calls.append(1)
                if len(calls) == n:
                    raise KeyboardInterrupt
                return train(*inputs)
            return call

        monkeypatch.setattr(offline, "make_train_chunk", interrupted)
        return lambda: monkeypatch.setattr(offline, "make_train_chunk", make)
    return arm


@pytest.fixture
def ctrl_c_while_chunk_runs(monkeypatch):
    """`release = ctrl_c_while_chunk_runs(n)`: a Ctrl-C while the offline loop waits for its n-th fused chunk, where
    nearly every real one lands: the chunk runs (its input states donated to it, so deleted), then the wait for its
    metrics (`jax.device_get`) ends in KeyboardInterrupt. `release()` gives the loop its chunks back."""
    from o2o.train import offline

    def arm(n: int):
        make, get, calls = offline.make_train_chunk, jax.device_get, []

        def wait_interrupted(tree):
            monkeypatch.setattr(jax, "device_get", get)
            jax.block_until_ready(tree)  # Python raises a Ctrl-C once the wait it came in returns
            raise KeyboardInterrupt

        def interrupted(*a, **k):
            train = make(*a, **k)

            def call(*inputs):
                outputs = train(*inputs)
                calls.append(1)
                if len(calls) == n:
                    monkeypatch.setattr(jax, "device_get", wait_interrupted)
                return outputs
            return call

        monkeypatch.setattr(offline, "make_train_chunk", interrupted)
        return lambda: monkeypatch.setattr(offline, "make_train_chunk", make)
    return arm


def record_minari(env, dataset_id: str, episodes: int):
    """A Minari dataset recorded by minari's own DataCollector from `episodes` random-action episodes of `env`."""
    import minari

    env = minari.DataCollector(env)
    env.action_space.seed(0)
    for episode in range(episodes):
        env.reset(seed=episode)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
    return env.create_dataset(dataset_id=dataset_id, algorithm_name="random", author="o2o tests",
                              author_email="tests@o2o", code_permalink="none", description="test")
