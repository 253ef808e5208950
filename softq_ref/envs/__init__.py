"""Gymnasium tasks of the paper, registered under the `SoftQ/` namespace on import of softq_ref.

Entry points are strings, so MuJoCo is only imported when a MuJoCo task is made.
"""
from gymnasium.envs.registration import register, registry

# id -> (entry point, max_episode_steps); paper D.2: horizon 500, multi-goal 20.
TASKS: dict[str, tuple[str, int]] = {
    "SoftQ/MultiGoal-v0": ("softq_ref.envs.multigoal:MultiGoalEnv", 20),
    # Paper tasks (section 5.2, 5.3; README in this folder): horizon 500.
    "SoftQ/SwimmerFinishLine-v0": ("softq_ref.envs.swimmer:SwimmerFinishLineEnv", 500),
    "SoftQ/AntMaze2Passage-v0": ("softq_ref.envs.maze:make_ant_maze_2passage", 500),
    "SoftQ/AntArena-v0": ("softq_ref.envs.locomotion:make_ant_arena", 500),
    "SoftQ/AntHallwayWide-v0": ("softq_ref.envs.locomotion:make_ant_hallway_wide", 500),
    "SoftQ/AntHallwayNarrow-v0": ("softq_ref.envs.locomotion:make_ant_hallway_narrow", 500),
    "SoftQ/AntUMaze-v0": ("softq_ref.envs.locomotion:make_ant_umaze", 500),
    # Point-mass versions for the CI tier: 0.5 m per step, so 100 steps cover 50 m, twice the
    # longest route in these layouts; 5x cheaper than 500.
    "SoftQ/PointMaze2Passage-v0": ("softq_ref.envs.maze:PointMaze2PassageEnv", 100),
    "SoftQ/PointArena-v0": ("softq_ref.envs.locomotion:PointArenaEnv", 100),
    "SoftQ/PointHallwayWide-v0": ("softq_ref.envs.locomotion:PointHallwayWideEnv", 100),
    "SoftQ/PointHallwayNarrow-v0": ("softq_ref.envs.locomotion:PointHallwayNarrowEnv", 100),
    "SoftQ/PointUMaze-v0": ("softq_ref.envs.locomotion:PointUMazeEnv", 100),
}


def register_tasks() -> None:
    for env_id, (entry_point, horizon) in TASKS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point, max_episode_steps=horizon)


register_tasks()
