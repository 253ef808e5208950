"""The paper's benchmark tasks (softq_ref/envs/README.md): API, seeding, geometry, rewards."""
import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import softq_ref.envs  # noqa: F401  (registers the SoftQ/ ids)
from softq_ref.envs import TASKS
from softq_ref.envs.locomotion import hallway_task
from softq_ref.envs.maze import THRESHOLD_DISTANCE, PointMaze2PassageEnv
from softq_ref.envs.pointmass import PointMassEnv, Task, Wall
from softq_ref.envs.swimmer import SwimmerFinishLineEnv, gait_returns

BENCHMARK_IDS = [env_id for env_id in TASKS if env_id != "SoftQ/MultiGoal-v0"]
POINT_IDS = [env_id for env_id in BENCHMARK_IDS if env_id.startswith("SoftQ/Point")]
ANT_IDS = [env_id for env_id in BENCHMARK_IDS if env_id.startswith("SoftQ/Ant")]


@pytest.mark.filterwarnings("ignore:.*infinity")  # positions are unbounded, as in MuJoCo tasks
@pytest.mark.parametrize("env_id", BENCHMARK_IDS)
def test_passes_gymnasium_env_checker(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.spec.max_episode_steps == TASKS[env_id][1]
    env.close()


@pytest.mark.parametrize("env_id", BENCHMARK_IDS)
def test_same_seed_same_trajectory(env_id):
    actions = np.random.default_rng(0).uniform(-1, 1, size=(30, *gym.make(env_id).action_space.shape))
    trajectories = []
    for _ in range(2):
        env = gym.make(env_id)
        observation, _ = env.reset(seed=7)
        trajectory = [observation]
        for action in actions:
            observation, reward, terminated, _, info = env.step(action.astype(np.float32))
            trajectory.append(np.append(observation, reward))
            if terminated:
                break
        trajectories.append(np.concatenate(trajectory))
        env.close()
    np.testing.assert_array_equal(trajectories[0], trajectories[1])


@pytest.mark.parametrize("body", ["Point", "Ant"])
def test_pretraining_and_finetuning_tasks_share_observation_space(body):
    names = ["Arena", "HallwayWide", "HallwayNarrow", "UMaze"]
    spaces = [gym.make(f"SoftQ/{body}{name}-v0").observation_space for name in names]
    assert all(space == spaces[0] for space in spaces)


@pytest.mark.parametrize("env_id", [i for i in BENCHMARK_IDS if "Swimmer" not in i])
def test_info_reports_xy_position(env_id):
    env = gym.make(env_id)
    _, info = env.reset(seed=0)
    _, _, _, _, step_info = env.step(env.action_space.sample())
    for entry in (info, step_info):
        assert entry["xy_position"].shape == (2,)
        if "Maze" in env_id:
            assert "distance_to_target" in entry
        if "2Passage" in env_id:
            assert entry["threshold_distance"] == THRESHOLD_DISTANCE


def drive(env, waypoints, steps=100):
    """Greedy point-mass controller through `waypoints`; returns the positions visited."""
    position, _ = env.reset(seed=0)
    positions, index = [position], 0
    for _ in range(steps):
        delta = np.asarray(waypoints[index]) - position
        if np.linalg.norm(delta) < 0.5 and index < len(waypoints) - 1:
            index += 1
            delta = np.asarray(waypoints[index]) - position
        position, *_ = env.step(np.clip(delta, -1, 1))
        positions.append(position)
    return np.array(positions)


def test_maze_threshold_is_the_geometric_value_and_is_attained_only_by_the_upper_route():
    # Barrier's lower-left corner (3, 2) to the target (8, 0).
    assert THRESHOLD_DISTANCE == pytest.approx(math.sqrt(29.0))
    env = PointMaze2PassageEnv(start_noise=0.0)
    assert env.threshold_distance == THRESHOLD_DISTANCE
    target = np.array([8.0, 0.0])
    # Upper route, pushing straight at the target once in the passage: stops at the corner.
    upper = drive(env, [(-6.0, 5.0), (0.0, 5.0), (8.0, 0.0)])
    upper_distance = np.linalg.norm(upper - target, axis=1).min()
    assert upper_distance >= THRESHOLD_DISTANCE - 1e-9
    assert upper_distance == pytest.approx(THRESHOLD_DISTANCE, abs=0.05)
    lower = drive(env, [(-6.0, -5.0), (0.0, -5.0), (8.0, 0.0)])
    assert np.linalg.norm(lower - target, axis=1).min() < 0.5


def test_umaze_greedy_policy_is_stuck_and_the_curved_route_reaches_the_target():
    env = gym.make("SoftQ/PointUMaze-v0").unwrapped
    target = np.array([0.0, 8.0])
    greedy = drive(env, [target])
    assert greedy[-1][1] == pytest.approx(2.0)  # pressed against the inner wall
    curved = drive(env, [(8.0, 0.0), (8.0, 8.0), target])
    arrived = np.linalg.norm(curved - target, axis=1) < 0.5
    assert arrived.any() and arrived.argmax() < 60  # well within the horizon of 100


@pytest.mark.parametrize("push, wall_axis, wall_face", [((1, 0), 0, -4.0), ((0, 1), 1, 8.0)])
def test_point_mass_cannot_pass_maze_walls(push, wall_axis, wall_face):
    env = PointMaze2PassageEnv(max_step=0.9)  # steps larger than the barrier thickness
    env.reset(seed=0)
    for _ in range(40):
        position, *_ = env.step(np.array(push, dtype=np.float32))
    assert position[wall_axis] == pytest.approx(wall_face)


def test_point_mass_cannot_pass_barrier_or_thin_walls():
    env = PointMassEnv(Task(walls=(Wall(1.0, -5.0, 1.01, 5.0),), start=(0.0, 0.0)), max_step=3.0, start_noise=0.0)
    env.reset(seed=0)
    for _ in range(5):
        position, *_ = env.step(np.array([1.0, 0.3], dtype=np.float32))
    assert position[0] == pytest.approx(1.0)  # slid along the wall, never through it
    env = PointMaze2PassageEnv(start_noise=0.0)
    positions = drive(env, [(-6.0, 5.0), (0.0, 5.0), (20.0, 5.0)], steps=80)
    assert positions[:, 0].max() == pytest.approx(3.0)  # the barrier's face


def test_point_hallway_blocks_sideways_and_backward_motion():
    env = gym.make("SoftQ/PointHallwayNarrow-v0")
    env.reset(seed=0)
    for action in ([0.0, 1.0], [0.0, -1.0], [-1.0, 0.0]):
        for _ in range(20):
            position, reward, *_ = env.step(np.array(action, dtype=np.float32))
        assert reward == 0.0  # stuck against a wall: no speed, no reward
    assert position[0] == pytest.approx(-2.0) and abs(position[1]) == pytest.approx(1.5)
    # Running along the hallway earns the full speed, 0.5 m per step.
    assert env.step(np.array([1.0, 0.0], dtype=np.float32))[1] == pytest.approx(0.5)


def test_point_speed_reward_is_isotropic():
    env = gym.make("SoftQ/PointArena-v0").unwrapped
    env.reset(seed=0)
    rewards = [env.step(np.array(a, dtype=np.float32))[1] for a in ([1, 0], [1, 1], [-1, 1], [0, -0.5])]
    np.testing.assert_allclose(rewards, [0.5, 0.5, 0.5, 0.25])


def thrown_ant_max_y(env_id, y_velocity=8.0, steps=40):
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    qvel = env.data.qvel.copy()
    qvel[1] = y_velocity  # throw the ant sideways
    env.set_state(env.data.qpos.copy(), qvel)
    return max(env.step(np.zeros(8))[4]["xy_position"][1] for _ in range(steps))


def test_ant_walls_block_the_ant():
    assert thrown_ant_max_y("SoftQ/AntArena-v0") > 3.0  # the throw carries far without walls
    assert thrown_ant_max_y("SoftQ/AntHallwayNarrow-v0") < 1.5  # the wall's face


def test_ant_terminates_when_flipped():
    env = gym.make("SoftQ/AntArena-v0").unwrapped
    env.reset(seed=0)
    _, _, terminated, _, _ = env.step(np.zeros(8))
    assert not terminated
    qpos = env.data.qpos.copy()
    qpos[2], qpos[3:7] = 0.6, [0.0, 1.0, 0.0, 0.0]  # upside down, at a healthy height
    env.set_state(qpos, np.zeros_like(env.data.qvel))
    assert env.step(np.zeros(8))[2]


def test_swimmer_backward_mode_earns_as_much_as_forward_before_the_line():
    # First 250 steps: the forward gait is at ~1.4 m, short of the 2 m line.
    forward, backward = gait_returns(True, steps=250), gait_returns(False, steps=250)
    assert forward["crossed_at"] is None
    assert forward["x_positions"][-1] > 1.0 and backward["x_positions"][-1] < -1.0
    assert 1 / 1.15 < backward["return"] / forward["return"] < 1.15


def test_swimmer_finish_line_bonus_is_paid():
    forward, backward = gait_returns(True), gait_returns(False)
    assert forward["crossed_at"] is not None and backward["crossed_at"] is None
    steps_past_line = 500 - forward["crossed_at"]
    bonus = forward["return"] - forward["return_without_bonus"]
    assert bonus == pytest.approx(1.0 * steps_past_line)  # gait stays past the line once over
    assert forward["return"] > 2 * backward["return"]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SwimmerFinishLineEnv(finish_line=-1.0), "finish_line"),
        (lambda: SwimmerFinishLineEnv(finish_bonus=0.0), "finish_bonus"),
        (lambda: PointMaze2PassageEnv(max_step=0.0), "max_step"),
        (lambda: PointMaze2PassageEnv(target_sigma=-1.0), "target_sigma"),
        (lambda: hallway_task("medium"), "width"),
        (lambda: Wall(1.0, 0.0, 0.0, 1.0), "x_min < x_max"),
        (lambda: gym.make("SoftQ/AntArena-v0", wall_height=0.0), "wall_height"),
    ],
)
def test_bad_constructor_arguments_raise_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()
