"""Multi-goal environment of section 5.1: spaces, dynamics and reward per formula, termination, metric."""
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import softq_ref.envs  # noqa: F401  (registers SoftQ/ ids)
from softq_ref.envs.multigoal import GOALS, MultiGoalEnv, goals_reached


def test_check_env_passes():
    env = gym.make("SoftQ/MultiGoal-v0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # check_env reports problems as warnings too: none allowed
        check_env(env.unwrapped)
    assert env.spec.max_episode_steps == 20  # paper D.2
    assert env.observation_space == gym.spaces.Box(-7, 7, (2,), np.float32)
    assert env.action_space == gym.spaces.Box(-1, 1, (2,), np.float32)


def test_start_distribution():
    env = MultiGoalEnv(init_sigma=0.1)
    starts = np.array([env.reset(seed=i)[0] for i in range(2000)])
    assert abs(starts.mean()) < 0.01 and abs(starts.std() - 0.1) < 0.01  # N(0, 0.1^2 I)
    assert np.array_equal(MultiGoalEnv(init_sigma=0.0).reset(seed=3)[0], np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="init_sigma"):
        MultiGoalEnv(init_sigma=-1)


def _at(position) -> MultiGoalEnv:
    env = MultiGoalEnv(init_sigma=0.0)
    env.reset(seed=0)
    env.position = np.asarray(position, dtype=np.float64)
    return env


@pytest.mark.parametrize("start, action, next_state, reward", [
    # s' = s + a; reward -(30 ||a||^2 + min_g ||s' - g||^2), computed by hand
    ((0, 0), (0.5, 0), (0.5, 0), -(30 * 0.25 + 4.5 ** 2)),
    ((1, 1), (0.2, -0.4), (1.2, 0.6), -(30 * 0.2 + (3.8 ** 2 + 0.6 ** 2))),
    # action clipped to [-1, 1] first: the cost uses the clipped action
    ((0, 0), (3.0, 0), (1, 0), -(30 * 1.0 + 4.0 ** 2)),
    # state clipped to [-7, 7]
    ((6.5, -6.8), (1, -1), (7, -7), -(30 * 2.0 + (2.0 ** 2 + 7.0 ** 2))),
])
def test_dynamics_and_reward(start, action, next_state, reward):
    obs, r, terminated, truncated, info = _at(start).step(np.array(action, np.float64))  # exact decimals
    np.testing.assert_allclose(obs, next_state, atol=1e-6)
    np.testing.assert_allclose(info["position"], next_state, atol=1e-12)
    assert r == pytest.approx(reward, rel=1e-9)
    assert not terminated and not truncated and info["goal_index"] == -1


@pytest.mark.parametrize("goal", range(4))
def test_goal_terminates_with_bonus(goal):
    g = GOALS[goal]
    start = g * 0.8  # distance 1 from the goal: one step of 0.5 toward it lands at distance 0.5
    action = g / np.linalg.norm(g) * 0.5
    obs, r, terminated, _, info = _at(start).step(action.astype(np.float32))
    assert terminated and info["goal_index"] == goal
    assert r == pytest.approx(-(30 * 0.25 + 0.5 ** 2) + 10.0)


def test_threshold_is_strict():
    # landing at distance exactly 1 (s' = (4, 0)) is not a goal: "reached when min distance < 1"
    _, _, terminated, _, info = _at((3.5, 0)).step(np.array([0.5, 0], np.float32))
    assert not terminated and info["goal_index"] == -1


def test_goals_reached_metric():
    assert goals_reached(lambda o: np.zeros(2), n_episodes=5) == (0, [0, 0, 0, 0])
    # straight left at full speed: 4-5 steps to (-5, 0) from near the origin
    n, counts = goals_reached(lambda o: np.array([-1.0, 0.0]), n_episodes=7)
    assert (n, counts) == (1, [0, 7, 0, 0])
    n, counts = goals_reached(lambda o: np.array([0.0, 1.0]) if o[0] > -0.5 else np.array([0.0, -1.0]),
                              n_episodes=3)
    assert n == 1 and counts[2] == 3


def test_random_policy_sometimes_reaches_a_goal():
    """The claim 'a uniform random policy reaches no goal in 20 steps' is false.

    A goal is 4 units from the start region (distance 5, threshold 1) and a random walk with
    Uniform[-1, 1]^2 steps has per-axis std sqrt(20/3) ~ 2.6 after 20 steps: 1e5 episodes gave a
    goal in 15.6% of them (~3.9% per goal). What is true: a random policy does not commit to one
    goal, it spreads its rare successes over all four; a zero-action policy reaches none.
    """
    rng = np.random.default_rng(0)
    n, counts = goals_reached(lambda o: rng.uniform(-1, 1, 2), n_episodes=2000, seed=0)
    frac = sum(counts) / 2000
    assert 0.12 < frac < 0.20, frac
    assert n == 4 and min(counts) > 40
