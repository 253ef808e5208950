"""The quadruped of the paper (gymnasium's Ant) with a `Task`'s walls added to its MJCF.

One builder serves every ant task (two-passage maze, arena, hallways, U-maze). Choices, all ours
because the paper's ant tasks are not public:

* Body: gymnasium's `ant.xml` (the paper's quadruped is rllab's ant, "adapted from Schulman et
  al. 2015b", which is the same model). Walls are boxes `wall_height` = 1 m tall, higher than the
  torso (z ~ 0.55-0.75), added to the worldbody at construction time; the edited XML goes to a
  temporary file that is deleted once MuJoCo has compiled it.
* Observation: joint positions and velocities *including* the torso's xy (29-D). The maze and
  U-maze rewards depend on position, and arena and fine-tuning tasks must share one observation
  space, so every ant task includes xy. Contact forces (Ant-v5's default extra 78-D) are left out
  to keep the observation small; rllab-era code did not rely on them either.
* Reward: the task reward of the centre of mass (the paper says "speed of the center of mass"),
  minus rllab's control cost 0.5e-2 * sum(a^2) (the same weight as the authors' swimmer). No
  alive bonus and no contact cost: the paper describes the reward as the speed / the Gaussian only.
* Termination (paper D.2, "additional termination condition ... to discourage it from flipping
  over"): the episode ends when the torso's up axis points below the horizon, on top of Ant-v5's
  own unhealthy test (torso z outside [0.2, 1.0] or a non-finite state).
"""
from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET

import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco import ant_v5

from softq_ref.envs.pointmass import Task

ANT_XML = os.path.join(os.path.dirname(ant_v5.__file__), "assets", "ant.xml")


def ant_xml_with_walls(walls, wall_height: float) -> str:
    """gymnasium's ant.xml with one collidable box per wall."""
    tree = ET.parse(ANT_XML)
    worldbody = tree.getroot().find("worldbody")
    for index, wall in enumerate(walls):
        center_x, center_y = (wall.x_min + wall.x_max) / 2, (wall.y_min + wall.y_max) / 2
        half_x, half_y = (wall.x_max - wall.x_min) / 2, (wall.y_max - wall.y_min) / 2
        ET.SubElement(
            worldbody,
            "geom",
            name=f"wall_{index}",
            type="box",
            pos=f"{center_x} {center_y} {wall_height / 2}",
            size=f"{half_x} {half_y} {wall_height / 2}",
            # ant geoms have contype=1, conaffinity=0: the wall needs conaffinity=1 to be hit.
            contype="1",
            conaffinity="1",
            condim="3",
            rgba="0.4 0.4 0.5 1",
        )
    return ET.tostring(tree.getroot(), encoding="unicode")


class AntWallsEnv(ant_v5.AntEnv):
    """Ant in a `Task` layout: task reward at the centre of mass, terminates when flipped."""

    def __init__(
        self,
        task: Task,
        ctrl_cost_weight: float = 0.5e-2,
        reset_noise_scale: float = 0.1,
        wall_height: float = 1.0,
        **kwargs,
    ):
        if not isinstance(task, Task):
            raise ValueError(f"task must be a Task, got {type(task).__name__}")
        if ctrl_cost_weight < 0:
            raise ValueError(f"ctrl_cost_weight must be >= 0, got {ctrl_cost_weight}")
        if reset_noise_scale < 0:
            raise ValueError(f"reset_noise_scale must be >= 0, got {reset_noise_scale}")
        if wall_height <= 0:
            raise ValueError(f"wall_height must be > 0 (metres), got {wall_height}")
        self.task = task
        self.threshold_distance = task.threshold_distance
        with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as xml_file:
            xml_file.write(ant_xml_with_walls(task.walls, wall_height))
        try:
            super().__init__(
                xml_file=xml_file.name,
                ctrl_cost_weight=ctrl_cost_weight,
                contact_cost_weight=0.0,
                healthy_reward=0.0,
                reset_noise_scale=reset_noise_scale,
                exclude_current_positions_from_observation=False,
                include_cfrc_ext_in_observation=False,
                **kwargs,
            )
        finally:
            os.unlink(xml_file.name)
        # Pickle/copy must rebuild this class from the task, not AntEnv from a deleted file.
        utils.EzPickle.__init__(self, task, ctrl_cost_weight, reset_noise_scale, wall_height, **kwargs)
        self.init_qpos[:2] = task.start

    def com_xy(self) -> np.ndarray:
        return self.data.body("torso").subtree_com[:2].copy()

    @property
    def is_healthy(self) -> bool:
        w, x, y, z = self.data.qpos[3:7]
        torso_up_z = 1.0 - 2.0 * (x * x + y * y)  # z component of the torso's up axis
        return bool(super().is_healthy and torso_up_z > 0.0)

    def step(self, action):
        xy_before = self.com_xy()
        self.do_simulation(action, self.frame_skip)
        xy_after = self.com_xy()
        xy_velocity = (xy_after - xy_before) / self.dt
        ctrl_cost = self.control_cost(action)
        reward = self.task.reward(xy_after, xy_velocity) - ctrl_cost
        terminated = not self.is_healthy
        info = self.task.info(xy_after)
        info.update(xy_velocity=xy_velocity, reward_ctrl=-ctrl_cost)
        if self.render_mode == "human":
            self.render()
        return self._get_obs(), reward, terminated, False, info

    def _get_reset_info(self):
        return self.task.info(self.com_xy())
