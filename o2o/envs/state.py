"""An episode's state, saved and restored exactly, so that a run checkpointed mid-episode resumes as if uninterrupted.

Supported: gymnasium's MuJoCo envs whose whole episode state is the simulator's (Hopper, HalfCheetah, Walker2d, Ant,
...) and classic-control envs whose state is the `state` array (Pendulum). MuJoCo's integration state is not enough:
rewards read positions that `mj_step` computed before its last substep (Ant's torso), so the whole `MjData` is kept.
Other envs (OGBench's tasks keep goals and task info in Python) give None: their runs resume with a fresh episode.
"""

from __future__ import annotations

import io
import pickle

import numpy as np

_SIMULATION_ONLY = {"HopperEnv", "HalfCheetahEnv", "Walker2dEnv", "AntEnv", "SwimmerEnv", "HumanoidEnv",
                    "HumanoidStandupEnv", "InvertedPendulumEnv", "InvertedDoublePendulumEnv", "ReacherEnv", "PusherEnv"}
_STATE_ARRAY = {"PendulumEnv"}


def snapshot(env) -> np.ndarray | None:
    """The episode's state as bytes in a uint8 array, or None if this env's episodes cannot be saved."""
    inner = env.unwrapped
    kind = type(inner).__name__
    if kind in _SIMULATION_ONLY:
        episode = inner.data
    elif kind in _STATE_ARRAY:
        episode = np.asarray(inner.state, np.float64)
    else:
        return None
    blob = pickle.dumps((kind, int(env.get_wrapper_attr("_elapsed_steps")), episode))
    return np.frombuffer(blob, np.uint8)


def restore(env, saved: np.ndarray) -> bool:
    """Put a freshly reset env back into the episode `snapshot` took; False (env untouched) if it cannot."""
    try:
        kind, elapsed, episode = _Unpickler(io.BytesIO(np.asarray(saved, np.uint8).tobytes())).load()
    except (pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError):
        return False  # another MuJoCo version, or not a snapshot
    inner = env.unwrapped
    if kind != type(inner).__name__:
        return False
    if kind in _SIMULATION_ONLY:
        inner.data = episode
    else:
        inner.state = episode
    env.set_wrapper_attr("_elapsed_steps", elapsed)
    return True


class _Unpickler(pickle.Unpickler):
    """Only what snapshots hold: MuJoCo's model and data, NumPy arrays (a checkpoint is not a channel for code)."""

    def find_class(self, module: str, name: str):
        if module.startswith("mujoco") or (module.startswith("numpy") and name in {"ndarray", "dtype", "_reconstruct",
                                                                                   "_frombuffer"}):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of an env snapshot")
