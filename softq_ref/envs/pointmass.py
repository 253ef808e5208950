"""Wall layouts shared by all navigation tasks, and a cheap point-mass body that moves in them.

One `Task` (axis-aligned wall rectangles, a start, and either a Gaussian target or the
"speed in any direction" reward) describes a layout in metres. The same `Task` drives two bodies:

* `PointMassEnv` (this module, pure numpy): a kinematic point that moves `max_step` metres per
  step at most; used by the CI tier because it is thousands of times cheaper than MuJoCo.
* `AntWallsEnv` (`ant_walls.py`): gymnasium's Ant with the same rectangles added as boxes.

Point-mass conventions (our construction; the paper has no point-mass versions of these tasks):

* Observation: the xy position only (the body has no other state). Bounds are infinite in every
  point task so that the arena and all fine-tuning tasks share one observation space.
* Action: a step direction in [-1, 1]^2, projected onto the unit disc before scaling by
  `max_step` = 0.5 m. The projection makes the reachable speed the same in every direction;
  a box would make diagonals sqrt(2) faster, biasing "run in any direction" pretraining.
* Collision: the move is applied one axis at a time and clamped at the first wall face it would
  cross (sliding along walls, like the MuJoCo ant). A point never enters a wall, whatever the
  step size or wall thickness, so there is no tunnelling; wall edges count as solid, so it
  cannot slip through the seam between two walls that touch.
* Time: dt = 1, so the speed reward is the length of the step actually taken.
"""
from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces


@dataclass(frozen=True)
class Wall:
    """Axis-aligned rectangle [x_min, x_max] x [y_min, y_max], in metres."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float

    def __post_init__(self):
        if not (self.x_min < self.x_max and self.y_min < self.y_max):
            raise ValueError(f"Wall needs x_min < x_max and y_min < y_max, got {self}")


@dataclass(frozen=True)
class Task:
    """A navigation layout and its reward.

    target=None: reward = speed of the centre of mass in any direction (arena, hallways).
    Otherwise: reward = exp(-||p - target||^2 / (2 target_sigma^2)) (maze, U-maze).
    threshold_distance: optional scalar reported in info (the two-passage maze's local optimum).
    """

    walls: tuple[Wall, ...]
    start: tuple[float, float]
    target: tuple[float, float] | None = None
    target_sigma: float = 4.0
    threshold_distance: float | None = None

    def __post_init__(self):
        if self.target_sigma <= 0:
            raise ValueError(f"target_sigma must be > 0, got {self.target_sigma}")

    def reward(self, xy: np.ndarray, xy_velocity: np.ndarray) -> float:
        if self.target is None:
            return float(np.linalg.norm(xy_velocity))
        squared_distance = float(np.sum((xy - np.asarray(self.target)) ** 2))
        return float(np.exp(-squared_distance / (2.0 * self.target_sigma**2)))

    def info(self, xy: np.ndarray) -> dict:
        info = {"xy_position": np.array(xy, dtype=np.float64)}
        if self.target is not None:
            info["distance_to_target"] = float(np.linalg.norm(xy - np.asarray(self.target)))
        if self.threshold_distance is not None:
            info["threshold_distance"] = self.threshold_distance
        return info


def move_with_walls(position: np.ndarray, step: np.ndarray, walls: tuple[Wall, ...]) -> np.ndarray:
    """Move `position` by `step`, x first then y, stopping at the first wall face on the way."""
    x, y = float(position[0]), float(position[1])
    # Along x: walls whose closed y-interval contains y can be hit. Closed, so that a point
    # sliding along the seam where two walls meet (e.g. y == one's y_max == other's y_min)
    # is stopped instead of slipping between them.
    new_x = x + float(step[0])
    for wall in walls:
        if wall.y_min <= y <= wall.y_max:
            if x <= wall.x_min < new_x:
                new_x = wall.x_min
            elif new_x < wall.x_max <= x:
                new_x = wall.x_max
    # Along y at the new x.
    new_y = y + float(step[1])
    for wall in walls:
        if wall.x_min <= new_x <= wall.x_max:
            if y <= wall.y_min < new_y:
                new_y = wall.y_min
            elif new_y < wall.y_max <= y:
                new_y = wall.y_max
    return np.array([new_x, new_y], dtype=np.float64)


class PointMassEnv(gym.Env):
    """Kinematic 2-D point mass in a `Task` layout (see module docstring for conventions)."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        task: Task,
        max_step: float = 0.5,
        ctrl_cost_weight: float = 0.0,
        start_noise: float = 0.1,
    ):
        if not isinstance(task, Task):
            raise ValueError(f"task must be a Task, got {type(task).__name__}")
        if max_step <= 0:
            raise ValueError(f"max_step must be > 0 (metres per step), got {max_step}")
        if ctrl_cost_weight < 0:
            raise ValueError(f"ctrl_cost_weight must be >= 0, got {ctrl_cost_weight}")
        if start_noise < 0:
            raise ValueError(f"start_noise must be >= 0 (metres), got {start_noise}")
        self.task = task
        self.max_step = float(max_step)
        self.ctrl_cost_weight = float(ctrl_cost_weight)
        self.start_noise = float(start_noise)
        self.threshold_distance = task.threshold_distance
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float64)
        self.position = np.asarray(task.start, dtype=np.float64).copy()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        noise = self.np_random.uniform(-self.start_noise, self.start_noise, size=2)
        # Noise is applied as a move, so a start near a wall never lands inside it.
        start = np.asarray(self.task.start, dtype=np.float64)
        self.position = move_with_walls(start, noise, self.task.walls)
        return self.position.copy(), self.task.info(self.position)

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        direction = action / max(1.0, float(np.linalg.norm(action)))
        previous = self.position
        self.position = move_with_walls(previous, self.max_step * direction, self.task.walls)
        velocity = self.position - previous  # dt = 1
        ctrl_cost = self.ctrl_cost_weight * float(np.sum(action**2))
        reward = self.task.reward(self.position, velocity) - ctrl_cost
        info = self.task.info(self.position)
        info["reward_ctrl"] = -ctrl_cost
        return self.position.copy(), reward, False, False, info
