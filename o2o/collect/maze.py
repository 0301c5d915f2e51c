"""D4RL's maze2d data on gymnasium-robotics' PointMaze, as Minari regenerated it: `o2o collect PointMaze_UMaze-v3
--level waypoint` (Open, UMaze, Medium, Large; their Dense variants pay exp(-distance) instead of 1 at the goal).

A planner over the maze's cells (breadth-first shortest paths to the goal's cell) hands a PD controller one waypoint at
a time: force = 10 (waypoint - position) - velocity, plus Gaussian noise (std 0.5), clipped to [-1, 1]. Waypoints are
cell centres jittered by up to 0.1 per axis, the last one the goal itself; the next is taken within 0.1 of the current.
The task goes on past each goal and the env draws a new one (`continuing_task`, `reset_target`), so the data is one
stream of `transitions` steps, cut into episodes where a goal is reached; a new episode's observations carry its new
goal from its first step. Evaluation is Minari's: one fixed goal cell per maze, random starts, the registered episode
limit; the dataset records that env's arguments (`env_kwargs`), and o2o evaluates and fine-tunes in it.
"""

from __future__ import annotations

import re
from collections import deque

import numpy as np

from o2o.data import Dataset
from o2o.envs import make_env, observation_layout
from o2o.errors import O2OError

# Minari's evaluation goal (row, column) for each PointMaze layout: the far end of the maze from most starts
EVAL_GOAL_CELLS = {"Open": (2, 3), "UMaze": (1, 1), "Medium": (6, 6), "Large": (7, 9)}
P_GAIN, D_GAIN, ACTION_NOISE, WAYPOINT_RADIUS, WAYPOINT_JITTER = 10.0, 1.0, 0.5, 0.1, 0.1
EVAL_EPISODES = 100  # per measured return in the evaluation env (Minari's number for its reference returns)


def layout_of(env_id: str) -> str:
    """The maze of a PointMaze id (`PointMaze_UMazeDense-v3` -> `UMaze`); a one-line error for any other env."""
    match = re.fullmatch(r"PointMaze_(Open|UMaze|Medium|Large)(Dense)?-v\d+", env_id)
    if match is None:
        raise O2OError(f"--level waypoint is D4RL's maze2d protocol for gymnasium-robotics' PointMaze envs (PointMaze_"
                       f"Open, _UMaze, _Medium, _Large, each also Dense; e.g. PointMaze_UMaze-v3), not {env_id}")
    return match.group(1)


def eval_env_kwargs(env_id: str) -> dict:
    """The evaluation env's arguments: the registered maze with its one goal cell marked, the task going on at the goal
    (as D4RL's, which pays every step there) and the goal staying put."""
    import gymnasium as gym

    make_env(env_id).close()  # registers gymnasium-robotics' envs
    maze_map = [list(row) for row in gym.spec(env_id).kwargs["maze_map"]]
    row, column = EVAL_GOAL_CELLS[layout_of(env_id)]
    maze_map[row][column] = "g"
    return {"maze_map": maze_map, "continuing_task": True, "reset_target": False}


class WaypointController:
    """The planner and PD controller of the module docstring, for one env's maze (its cell <-> xy conversions)."""

    def __init__(self, maze, rng: np.random.Generator, noise: float = ACTION_NOISE):
        self.maze, self.rng, self.noise = maze, rng, noise
        self.free = {(r, c) for r, row in enumerate(maze.maze_map) for c, cell in enumerate(row) if cell != 1}
        self.goal, self.goal_cell, self.next_cell, self.waypoint_cell, self.waypoint = None, None, {}, None, None

    def _plan(self, goal_cell: tuple[int, int]) -> None:
        """next_cell[cell]: the neighbour one step closer to the goal's cell, by breadth-first search from it."""
        self.goal_cell, self.next_cell = goal_cell, {goal_cell: goal_cell}
        frontier = deque([goal_cell])
        while frontier:
            r, c = frontier.popleft()
            for neighbour in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if neighbour in self.free and neighbour not in self.next_cell:
                    self.next_cell[neighbour] = (r, c)
                    frontier.append(neighbour)

    def _aim(self, cell: tuple[int, int], goal: np.ndarray) -> None:
        self.waypoint_cell = cell
        if cell == self.goal_cell:
            self.waypoint = np.asarray(goal, np.float64)
        else:
            centre = self.maze.cell_rowcol_to_xy(np.array(cell))
            self.waypoint = centre + self.rng.uniform(-WAYPOINT_JITTER, WAYPOINT_JITTER, 2)

    def action(self, position: np.ndarray, velocity: np.ndarray, goal: np.ndarray) -> np.ndarray:
        if self.goal is None or not np.array_equal(goal, self.goal):  # a new goal, possibly in the same cell
            here = tuple(int(i) for i in self.maze.cell_xy_to_rowcol(position))
            self.goal = np.array(goal)
            self._plan(tuple(int(i) for i in self.maze.cell_xy_to_rowcol(goal)))
            self._aim(self.next_cell.get(here, self.goal_cell), goal)
        elif self.waypoint_cell != self.goal_cell and np.linalg.norm(self.waypoint - position) <= WAYPOINT_RADIUS:
            self._aim(self.next_cell[self.waypoint_cell], goal)
        push = P_GAIN * (self.waypoint - position) - D_GAIN * velocity
        return np.clip(push + self.rng.normal(0.0, self.noise, 2), -1.0, 1.0).astype(np.float32)


def _slices(layout: dict[str, list[int]]) -> tuple[slice, slice, slice]:
    position = slice(*layout["achieved_goal"])
    goal = slice(*layout["desired_goal"])
    start = layout["observation"][0]
    return position, goal, slice(start + 2, start + 4)  # PointMaze's observation: x, y, then the velocities


def collect(env_id: str, transitions: int, seed: int = 0) -> Dataset:
    """`transitions` steps of the noisy waypoint controller in one stream, cut into episodes at each goal reached."""
    layout_of(env_id)
    env = make_env(env_id, continuing_task=True, reset_target=True, max_episode_steps=transitions + 1)
    layout = observation_layout(env)
    position, goal, velocity = _slices(layout)
    controller = WaypointController(env.unwrapped.maze, np.random.default_rng(seed))
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    observations = np.empty((transitions, obs_dim), np.float32)
    next_observations = np.empty((transitions, obs_dim), np.float32)
    actions = np.empty((transitions, act_dim), np.float32)
    rewards = np.empty(transitions, np.float32)
    timeouts = np.zeros(transitions, bool)
    try:
        obs, _ = env.reset(seed=seed)
        for t in range(transitions):
            action = controller.action(obs[position], obs[velocity], obs[goal])
            observations[t], actions[t] = obs, action
            obs, rewards[t], _, _, info = env.step(action)
            next_observations[t] = obs
            if info["success"]:  # the env drew the next goal; the step's own next observation keeps the reached one
                timeouts[t] = True
                obs = obs.copy()
                obs[goal] = env.unwrapped.goal
    finally:
        env.close()
    timeouts[-1] = True
    return Dataset(observations, actions, rewards, next_observations, np.zeros(transitions, bool), timeouts,
                   {"env_id": env_id, "observation_layout": layout})


def eval_returns(env_id: str, policy: str, seed: int, episodes: int) -> np.ndarray:
    """Returns over `episodes` episodes of the evaluation env of `policy`: "noisy" (the data's controller), "expert"
    (the controller without noise) or "random" (uniform actions). The last two are the dataset's reference returns, as
    Minari measures them: D4RL's maze2d references do not describe gymnasium's PointMaze, where the noisy controller
    scores 140 (UMaze), 153 (Medium) and 208 (Large) on their scale."""
    env = make_env(env_id, **eval_env_kwargs(env_id))
    position, goal, velocity = _slices(observation_layout(env))
    env.action_space.seed(seed)
    returns = np.zeros(episodes)
    try:
        for episode in range(episodes):
            rng = np.random.default_rng([seed, episode])
            controller = WaypointController(env.unwrapped.maze, rng, ACTION_NOISE if policy == "noisy" else 0.0)
            obs, _ = env.reset(seed=10_000 + 1_000 * seed + episode)
            done = False
            while not done:
                action = (env.action_space.sample() if policy == "random" else
                          controller.action(obs[position], obs[velocity], obs[goal]))
                obs, reward, terminated, truncated, _ = env.step(action)
                returns[episode] += reward
                done = terminated or truncated
    finally:
        env.close()
    return returns
