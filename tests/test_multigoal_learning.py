"""A CI-sized soft Q-learning run on the multi-goal task (paper 5.1) keeps several goals.

Calibration (preset multigoal_ci, 6000 env steps, 100 evaluation episodes), seeds 0-9 goals
reached: 2, 2, 2, 4, 1, 4, 3, 4, 2, 2 (seed 4 collapsed onto one goal), so a single run keeps
two or more goals ~90% of the time and the test pins seed 0. A random uniform policy does reach goals (15.6% of 100,000 episodes, all four
goals), so "a random policy reaches none" is not a usable contrast; a collapsed policy is.
"""
import numpy as np
import torch

from softq_ref.config import preset
from softq_ref.envs.multigoal import goals_reached
from softq_ref.sql import SoftQLearning
from softq_ref.training import train


def test_sql_reaches_at_least_two_goals(tmp_path):
    torch.set_num_threads(1)
    agent = SoftQLearning(2, 2, preset("multigoal_ci"), seed=0)
    train(agent, "SoftQ/MultiGoal-v0", 6000, seed=0, out_dir=tmp_path, progress=False)
    n_goals, counts = goals_reached(agent.act, n_episodes=100, seed=1000)
    assert n_goals >= 2, f"goals reached per goal: {counts}"
    # the same rollouts with the policy's mean-free collapse (zero action) reach nothing
    assert goals_reached(lambda obs: np.zeros(2, np.float32), n_episodes=20, seed=1000)[0] == 0
