"""Swimmer with a finish line (paper section 5.2, Figures 3a and 6): `SoftQ/SwimmerFinishLine-v0`.

The paper: the snake "receives a reward equal to its speed along the x-axis, either forward or
backward. However, once the swimmer swims far enough forward, it crosses a 'finish line' and
receives a larger reward." The task is not public; this is our construction on gymnasium's
Swimmer-v5 model (3 links, 2 actuated joints, viscous fluid, dt = 0.04 s).

Parameters and why:

* Speed term `|v_x|`, with v_x the velocity of the centre of mass (rllab's swimmer, which the
  authors' 2017 code wraps, rewards the COM velocity; the COM is also symmetric between the two
  swimming directions, unlike the head's frame). Control cost 0.5e-2 * sum(a^2) as in the
  authors' 2017 code `|v_x| - 0.5e-2 * sum(a^2)`.
* `finish_line` = 2.0 m (COM x; the swimmer starts at x = 0 +- 0.1). A fixed open-loop
  travelling-wave gait (period 40 steps, phase lag 1.0 rad, see `travelling_wave_action`) swims
  ~3.1 m in 500 steps either way and crosses the line around step 330; a trained swimmer does so
  much earlier; random actions do not move the COM by more than a few centimetres. So the line
  is reachable within the horizon T = 500 only by committing to forward swimming.
* `finish_bonus` = 1.0 per step while the COM is past the line: 6-7x the speed term of the gait
  (~0.15) and ~3x that of a good Swimmer-v5 policy (~0.35), so forward swimming clearly beats the
  backward mode once discovered. Paying it per step on the current x (rather than once on the
  crossing) keeps the reward a function of the observed state.
* Observation includes the torso's xy (10-D, `exclude_current_positions_from_observation=False`):
  the bonus depends on x, so without it the reward would not be Markov in the observation.
* Before the line, the backward mode earns the same: reversing the gait's phase lag reverses the
  direction, and the measured speed-term returns agree within a few percent (README, tests).
"""
from __future__ import annotations

import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco import swimmer_v5


def travelling_wave_action(step: int, forward: bool = True, period: int = 40, phase_lag: float = 1.0):
    """Open-loop gait: joint 2 lags joint 1 by `phase_lag`; the sign of the lag sets the direction."""
    phase = 2.0 * np.pi * step / period
    lag = phase_lag if forward else -phase_lag
    return np.array([np.sin(phase), np.sin(phase - lag)], dtype=np.float32)


class SwimmerFinishLineEnv(swimmer_v5.SwimmerEnv):
    def __init__(
        self,
        finish_line: float = 2.0,
        finish_bonus: float = 1.0,
        ctrl_cost_weight: float = 0.5e-2,
        reset_noise_scale: float = 0.1,
        **kwargs,
    ):
        if finish_line <= reset_noise_scale:
            raise ValueError(
                f"finish_line must lie ahead of the start region (> reset_noise_scale = "
                f"{reset_noise_scale}), got {finish_line}"
            )
        if finish_bonus <= 0:
            raise ValueError(f"finish_bonus must be > 0, got {finish_bonus}")
        if ctrl_cost_weight < 0:
            raise ValueError(f"ctrl_cost_weight must be >= 0, got {ctrl_cost_weight}")
        if reset_noise_scale < 0:
            raise ValueError(f"reset_noise_scale must be >= 0, got {reset_noise_scale}")
        super().__init__(
            ctrl_cost_weight=ctrl_cost_weight,
            reset_noise_scale=reset_noise_scale,
            exclude_current_positions_from_observation=False,
            **kwargs,
        )
        utils.EzPickle.__init__(
            self, finish_line, finish_bonus, ctrl_cost_weight, reset_noise_scale, **kwargs
        )
        self.finish_line = float(finish_line)
        self.finish_bonus = float(finish_bonus)

    def com_x(self) -> float:
        return float(self.data.body("torso").subtree_com[0])

    def step(self, action):
        x_before = self.com_x()
        self.do_simulation(action, self.frame_skip)
        x_after = self.com_x()
        x_velocity = (x_after - x_before) / self.dt
        crossed = x_after >= self.finish_line
        speed_reward = abs(x_velocity)
        ctrl_cost = self.control_cost(action)
        finish_reward = self.finish_bonus if crossed else 0.0
        reward = speed_reward - ctrl_cost + finish_reward
        info = {
            "x_position": x_after,
            "x_velocity": x_velocity,
            "crossed_finish_line": crossed,
            "reward_speed": speed_reward,
            "reward_ctrl": -ctrl_cost,
            "reward_finish": finish_reward,
        }
        if self.render_mode == "human":
            self.render()
        return self._get_obs(), reward, False, False, info

    def _get_reset_info(self):
        x = self.com_x()
        return {"x_position": x, "crossed_finish_line": x >= self.finish_line}


def gait_returns(forward: bool, steps: int = 500, seed: int = 0, **env_kwargs) -> dict:
    """Roll out the open-loop gait; the backward-mode demonstration in the README and tests."""
    env = SwimmerFinishLineEnv(**env_kwargs)
    env.reset(seed=seed)
    total, speed_return, crossed_at, x_positions = 0.0, 0.0, None, []
    for step in range(steps):
        _, reward, _, _, info = env.step(travelling_wave_action(step, forward))
        total += reward
        speed_return += info["reward_speed"] + info["reward_ctrl"]
        x_positions.append(info["x_position"])
        if crossed_at is None and info["crossed_finish_line"]:
            crossed_at = step
    env.close()
    return {"return": total, "return_without_bonus": speed_return, "crossed_at": crossed_at,
            "x_positions": np.array(x_positions)}


if __name__ == "__main__":  # python -m softq_ref.envs.swimmer
    for horizon in (250, 500):
        for forward in (True, False):
            result = gait_returns(forward, steps=horizon)
            print(
                f"{'forward ' if forward else 'backward'} gait, {horizon} steps: "
                f"return {result['return']:7.2f} (without bonus {result['return_without_bonus']:6.2f}), "
                f"final x {result['x_positions'][-1]:+.2f} m, "
                f"min/max x {result['x_positions'].min():+.2f}/{result['x_positions'].max():+.2f}, "
                f"crossed at step {result['crossed_at']}"
            )
