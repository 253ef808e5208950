"""Pretraining arena and fine-tuning tasks (paper section 5.3, Figures 4, 5 and 7).

Ant ids: `SoftQ/AntArena-v0`, `SoftQ/AntHallwayWide-v0`, `SoftQ/AntHallwayNarrow-v0`,
`SoftQ/AntUMaze-v0`; point-mass ids (CI tier): the same names with `Point`. The tasks are not
public; the layouts below (metres) are ours. Every task of one body has the same observation
space (the ant's and the point's both include xy), so an arena-pretrained policy can be
fine-tuned on the others without changing its input layer.

* Arena: no walls. Reward = speed of the centre of mass in any direction, ||v_xy|| (the paper:
  "a reward that simply equals the speed of the center of mass").
* Hallways: "the agent receives the same reward, but the walls block sideways motion, so the
  optimal solution requires learning to run in a particular direction". We keep the reward
  identical (||v_xy||) and make "a particular direction" literal with a dead end 2 m behind the
  start: side walls along +x and a back wall at x = -2. Running backward or sideways stops at a
  wall within a few metres; only +x can be sustained for the whole episode. The side walls are
  200 m long, beyond what any ant covers in 500 steps (25 s).
  Wide: 8 m between the walls (half-width 4), ~3.5 leg spans of the ant: a heading 30 deg off
  +x runs 8 m before meeting a wall. Narrow: 3 m (half-width 1.5), barely wider than the ant's
  ~2.3 m span: the same heading meets a wall after 3 m, but the walls can funnel the ant.
* U-maze: corridors 4 m wide around an 8 x 4 m inner wall; start (0, 0), target (0, 8), straight
  through the inner wall. Gaussian bump sigma = 4 m at the target (like the two-passage maze):
  0.14 at the start, ~0.3 pressed against the inner wall (the greedy local optimum), 1 at the
  target, so the agent must learn the curved route (~20-24 m, feasible for an ant in 25 s).
* Point mass: 0.5 m per step, horizon 100 (50 m: twice the U-maze route). Ant: T = 500.
"""
from __future__ import annotations

from softq_ref.envs.pointmass import PointMassEnv, Task, Wall

HALLWAY_LENGTH = 200.0
HALLWAY_BACK = -2.0  # the dead end behind the start
HALLWAY_HALF_WIDTHS = {"wide": 4.0, "narrow": 1.5}
WALL_THICKNESS = 1.0
UMAZE_TARGET_SIGMA = 4.0


def arena_task() -> Task:
    return Task(walls=(), start=(0.0, 0.0))


def hallway_task(width: str) -> Task:
    if width not in HALLWAY_HALF_WIDTHS:
        raise ValueError(f"width must be one of {sorted(HALLWAY_HALF_WIDTHS)}, got {width!r}")
    half, t = HALLWAY_HALF_WIDTHS[width], WALL_THICKNESS
    walls = (
        Wall(HALLWAY_BACK - t, -half - t, HALLWAY_LENGTH, -half),  # right side
        Wall(HALLWAY_BACK - t, half, HALLWAY_LENGTH, half + t),  # left side
        Wall(HALLWAY_BACK - t, -half, HALLWAY_BACK, half),  # dead end
    )
    return Task(walls=walls, start=(0.0, 0.0))


def umaze_task(target_sigma: float = UMAZE_TARGET_SIGMA) -> Task:
    t = WALL_THICKNESS
    x_min, x_max, y_min, y_max = -2.0, 10.0, -2.0, 10.0  # corridor interior
    walls = (
        Wall(x_min - t, y_min - t, x_min, y_max + t),
        Wall(x_max, y_min - t, x_max + t, y_max + t),
        Wall(x_min, y_max, x_max, y_max + t),
        Wall(x_min, y_min - t, x_max, y_min),
        Wall(x_min, 2.0, 6.0, 6.0),  # inner wall between start and target
    )
    return Task(walls=walls, start=(0.0, 0.0), target=(0.0, 8.0), target_sigma=target_sigma)


class PointArenaEnv(PointMassEnv):
    def __init__(self, **kwargs):
        super().__init__(arena_task(), **kwargs)


class PointHallwayWideEnv(PointMassEnv):
    def __init__(self, **kwargs):
        super().__init__(hallway_task("wide"), **kwargs)


class PointHallwayNarrowEnv(PointMassEnv):
    def __init__(self, **kwargs):
        super().__init__(hallway_task("narrow"), **kwargs)


class PointUMazeEnv(PointMassEnv):
    def __init__(self, target_sigma: float = UMAZE_TARGET_SIGMA, **kwargs):
        super().__init__(umaze_task(target_sigma), **kwargs)


# Ant entry points are functions so that MuJoCo is imported only when an ant task is made.
def _ant(task: Task, **kwargs):
    from softq_ref.envs.ant_walls import AntWallsEnv

    return AntWallsEnv(task, **kwargs)


def make_ant_arena(**kwargs):
    return _ant(arena_task(), **kwargs)


def make_ant_hallway_wide(**kwargs):
    return _ant(hallway_task("wide"), **kwargs)


def make_ant_hallway_narrow(**kwargs):
    return _ant(hallway_task("narrow"), **kwargs)


def make_ant_umaze(target_sigma: float = UMAZE_TARGET_SIGMA, **kwargs):
    return _ant(umaze_task(target_sigma), **kwargs)
