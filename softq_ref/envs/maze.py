"""Two-passage maze (paper section 5.2, Figure 3b): `SoftQ/PointMaze2Passage-v0`, `SoftQ/AntMaze2Passage-v0`.

The paper: the quadruped "needs to find a path through a maze to a target position. The reward
function is a Gaussian centered at the target. The agent may choose either the upper or lower
passage, which appear identical at first, but the upper passage is blocked by a barrier."
The threshold in Figure 3b "equals the minimum possible distance if the robot chooses the upper
passage". The maze is not public; this layout (metres, seen from above) is ours:

    y= 8 +-----------------------------------------------+
         |  left chamber  |  upper passage   |##|  right  |
    y= 2 |                +------------------+##+ chamber |      ## barrier x in [3, 4]
         |    S (-8, 0)   |     divider      |   T (8, 0) |
    y=-2 |                +------------------+            |
         |                |  lower passage   |            |
    y=-8 +-----------------------------------------------+
       x=-12            x=-4               x=4          x=12

* Passages 6 m wide, 8 m long: wide enough for the ant (leg span ~2.3 m) to turn.
* Start and target mirror each other, 16 m apart; both passages have the same length, so the
  reward cannot tell them apart until the barrier is met.
* Gaussian bump sigma = 4 m: reward 1 at the target, ~0.4 at the barrier's best corner, ~0.06 in
  the middle of either passage, 3e-4 at the start. The upper passage's dead end is therefore a
  real local optimum, and the reward still points into both passages.
* Threshold: the closest the centre of mass can get to the target without the lower passage is
  the barrier's lower-left corner (3, 2): hypot(8 - 3, 2) = sqrt(29) ~ 5.385 m. A point reaches it
  exactly. For the ant it is a conservative lower bound: near that corner the whole body sits in
  the convex upper passage, so its COM does too, but the torso (radius 0.25 m) keeps the COM some
  decimetres off the walls. Any distance below the threshold proves the lower passage was taken.
* Point mass: 0.5 m per step, horizon 100 (the lower route is ~17 m, ~35 steps). Ant: T = 500.
"""
from __future__ import annotations

import math

from softq_ref.envs.pointmass import PointMassEnv, Task, Wall

HALF_LENGTH, HALF_WIDTH = 12.0, 8.0  # interior of the outer box
DIVIDER_HALF_LENGTH, DIVIDER_HALF_WIDTH = 4.0, 2.0
BARRIER_THICKNESS = 1.0
WALL_THICKNESS = 1.0
START, TARGET = (-8.0, 0.0), (8.0, 0.0)
TARGET_SIGMA = 4.0


def two_passage_walls() -> tuple[Wall, ...]:
    outer, t = (HALF_LENGTH, HALF_WIDTH), WALL_THICKNESS
    return (
        Wall(-outer[0] - t, -outer[1] - t, -outer[0], outer[1] + t),  # left
        Wall(outer[0], -outer[1] - t, outer[0] + t, outer[1] + t),  # right
        Wall(-outer[0], outer[1], outer[0], outer[1] + t),  # top
        Wall(-outer[0], -outer[1] - t, outer[0], -outer[1]),  # bottom
        Wall(-DIVIDER_HALF_LENGTH, -DIVIDER_HALF_WIDTH, DIVIDER_HALF_LENGTH, DIVIDER_HALF_WIDTH),
        # Barrier at the exit end of the upper passage, flush with the divider's right end.
        Wall(DIVIDER_HALF_LENGTH - BARRIER_THICKNESS, DIVIDER_HALF_WIDTH, DIVIDER_HALF_LENGTH, HALF_WIDTH),
    )


def blocked_passage_threshold() -> float:
    """Least distance to the target reachable through the blocked (upper) passage."""
    # Closest point of the upper passage's reachable part: the barrier's lower-left corner.
    corner = (DIVIDER_HALF_LENGTH - BARRIER_THICKNESS, DIVIDER_HALF_WIDTH)
    return math.hypot(TARGET[0] - corner[0], TARGET[1] - corner[1])


THRESHOLD_DISTANCE = blocked_passage_threshold()  # sqrt(29) ~ 5.385 m


def two_passage_task(target_sigma: float = TARGET_SIGMA) -> Task:
    return Task(
        walls=two_passage_walls(),
        start=START,
        target=TARGET,
        target_sigma=target_sigma,
        threshold_distance=THRESHOLD_DISTANCE,
    )


class PointMaze2PassageEnv(PointMassEnv):
    def __init__(self, target_sigma: float = TARGET_SIGMA, **kwargs):
        super().__init__(two_passage_task(target_sigma), **kwargs)


def make_ant_maze_2passage(target_sigma: float = TARGET_SIGMA, **kwargs):
    """Entry point of SoftQ/AntMaze2Passage-v0 (a function, so MuJoCo loads only when used)."""
    from softq_ref.envs.ant_walls import AntWallsEnv

    return AntWallsEnv(two_passage_task(target_sigma), **kwargs)
